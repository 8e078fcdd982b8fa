#!/usr/bin/env bash
# Builds the second comparison peer of scripts/bench-compare.sh: the
# protocol repository's Go server (durable-streams/durable-streams,
# packages/caddy-plugin: a Caddy v2 module), at a pinned commit, with its
# file store, into .tools/caddy-peer/ (gitignored):
#
#   .tools/caddy-peer/durable-streams-caddy   the Caddy binary with the module
#   .tools/caddy-peer/Caddyfile               its configuration for the benchmarks
#   .tools/caddy-peer/COMMIT                  the commit it was built from
#
#   scripts/build-caddy-peer.sh [-s SOURCE] [-f]
#
#   -s SOURCE  a git repository that holds the pinned commit: a local clone
#              (bare or not) or a URL; default $DS_UPSTREAM_REPO, else
#              https://github.com/durable-streams/durable-streams.git
#   -f         rebuild even when the binary of the pinned commit is there
#
# The plugin's source is exported into a temporary folder, built there and
# deleted: none of it is kept in the project. Its modules come from the Go
# module proxy, pinned by its go.sum (GOFLAGS=-mod=mod). The build takes
# several minutes on 2 cores (about 70 MB of binary).
#
# The Caddyfile serves /v1/stream/* on 127.0.0.1 only, with the file store
# (data_dir) and a 30 s long-poll timeout like the Node reference peer.
# Caddy fills in {$DS_PEER_PORT} and {$DS_PEER_DIR} from the environment.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The commit the upstream client tarball (shared/upstream) was taken at, so
# both peers and the client runner speak the same protocol revision.
COMMIT=82f9963ae0b489566352393be9b4796c788c99c2

source=${DS_UPSTREAM_REPO:-https://github.com/durable-streams/durable-streams.git}
force=""
while getopts "s:fh" opt; do
  case $opt in
    s) source=$OPTARG ;;
    f) force=1 ;;
    *) sed -n '2,25p' "$0"; exit 2 ;;
  esac
done
log() { printf 'build-caddy-peer: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

out=$PWD/.tools/caddy-peer
bin=$out/durable-streams-caddy
if [ -z "$force" ] && [ -x "$bin" ] && [ "$(cat "$out/COMMIT" 2>/dev/null)" = "$COMMIT" ]; then
  log "$bin is built from $COMMIT (-f rebuilds)"
  exit 0
fi
command -v go >/dev/null || die "go is not on PATH"

tmp=$(mktemp -d /tmp/caddy-peer.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if [ -d "$source" ]; then
  repo=$source
else
  log "cloning $source (no blobs but the plugin's)"
  git clone --quiet --bare --filter=blob:none "$source" "$tmp/repo.git" || die "cannot clone $source (use -s with a local clone)"
  repo=$tmp/repo.git
fi
git -C "$repo" cat-file -e "$COMMIT^{commit}" 2>/dev/null || die "$source does not hold commit $COMMIT"
mkdir "$tmp/src"
git -C "$repo" archive --format=tar "$COMMIT:packages/caddy-plugin" | tar -x -C "$tmp/src"
[ -f "$tmp/src/cmd/caddy/main.go" ] || die "packages/caddy-plugin/cmd/caddy is missing at $COMMIT"

log "building packages/caddy-plugin/cmd/caddy at ${COMMIT:0:12}"
mkdir -p "$out"
(cd "$tmp/src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$bin.new" ./cmd/caddy) ||
  die "the build failed (see above: a module the proxy does not serve is named there)"
mv "$bin.new" "$bin"

cat >"$out/Caddyfile" <<'EOF'
{
	admin off
	auto_https off
	persist_config off
	log default {
		level WARN
	}
}

:{$DS_PEER_PORT} {
	bind 127.0.0.1
	route /v1/stream/* {
		durable_streams {
			data_dir {$DS_PEER_DIR}
			long_poll_timeout 30s
		}
	}
}
EOF
echo "$COMMIT" >"$out/COMMIT"
log "built $bin ($("$bin" version | cut -d' ' -f1))"
