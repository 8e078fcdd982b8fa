# syntax=docker/dockerfile:1

# Build: a static binary (the SQLite driver, modernc.org/sqlite, is pure Go,
# so no cgo and no C library is needed at run time).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/durable-streams ./cmd/durable-streams \
 && mkdir -p /out/data

# Run: distroless, as the unprivileged "nonroot" user. /data is created owned
# by that user so that a new named volume mounted there is writable.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/durable-streams /usr/local/bin/durable-streams
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot
VOLUME /data
EXPOSE 4437
ENTRYPOINT ["/usr/local/bin/durable-streams"]
CMD ["serve", "--addr", "0.0.0.0:4437", "--data-dir", "/data"]
