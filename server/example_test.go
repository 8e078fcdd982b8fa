package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/streamtier/durable-streams/hooks"
	"github.com/streamtier/durable-streams/server"
)

// Mount the streams server under /streams/ in an application's own mux.
func Example() {
	dir, _ := os.MkdirTemp("", "ds-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	srv, err := server.New(ctx, server.Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close(ctx)

	mux := http.NewServeMux()
	mux.Handle("/streams/", http.StripPrefix("/streams", srv.Handler()))
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "the application's own route\n") })
	hs := httptest.NewServer(mux)
	defer hs.Close()

	url := hs.URL + "/streams/v1/stream/chat/room-1"
	status, header, _ := do("PUT", url, "application/json", "")
	fmt.Println("create:", status, strings.TrimPrefix(header.Get("Location"), hs.URL))
	do("POST", url, "application/json", `[{"user":"ann","text":"hi"},{"user":"bob","text":"hello"}]`)
	_, _, body := do("GET", url+"?offset=-1", "", "")
	fmt.Println("read:", body)
	// Output:
	// create: 201 /streams/v1/stream/chat/room-1
	// read: [{"user":"ann","text":"hi"},{"user":"bob","text":"hello"}]
}

// Veto appends and observe acknowledged ones with hooks.
func ExampleConfig_hooks() {
	dir, _ := os.MkdirTemp("", "ds-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	srv, err := server.New(ctx, server.Config{
		DataDir: dir,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Hooks: hooks.Hooks{
			BeforeAppend: func(ctx context.Context, a *hooks.AppendInfo) error {
				if a.Size() > 16 {
					return hooks.Reject(http.StatusRequestEntityTooLarge, "messages are limited to 16 bytes")
				}
				return nil
			},
			AfterAppend: func(ctx context.Context, r hooks.AppendResult) {
				fmt.Printf("appended %d bytes to %s\n", r.EndByte-r.StartByte, r.Path)
			},
			OnStreamCreated: func(ctx context.Context, s hooks.StreamInfo) {
				fmt.Println("created", s.Path, s.ContentType)
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close(ctx)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	url := hs.URL + "/v1/stream/notes"
	// Hooks run off the request path; the example waits for them only so
	// that its output has a fixed order.
	do("PUT", url, "text/plain", "")
	srv.WaitHooks(ctx)
	do("POST", url, "text/plain", "short note")
	srv.WaitHooks(ctx)
	status, _, body := do("POST", url, "text/plain", "a note that is far too long")
	fmt.Print("rejected: ", status, " ", body)
	// Output:
	// created notes text/plain
	// appended 10 bytes to notes
	// rejected: 413 {"error":"REQUEST_ENTITY_TOO_LARGE","message":"messages are limited to 16 bytes"}
}

func do(method, url, contentType, body string) (int, http.Header, string) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		log.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(errors.Join(errors.New(method+" "+url), err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}
