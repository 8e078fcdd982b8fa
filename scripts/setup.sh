#!/usr/bin/env bash
# Installs what the tests need; idempotent and cached, quiet on success.
# Called by scripts/test.sh; safe to run by hand. Everything a test needs must
# be installed from here (CI starts from a fresh clone on a bare machine).
#
# Project-local tools go to ./.tools/bin (gitignored; test.sh puts it on PATH).
# A step whose inputs have not changed since it last succeeded is skipped
# (stamp files in ./.tools/stamps).
#
# The Durable Streams conformance suite (npm) is NOT installed here:
# ../shared/conformance/run-conformance.sh installs it lazily into
# ~/.cache/ds-conformance on first use.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TOOLS="$PWD/.tools"
BIN="$TOOLS/bin"
STAMPS="$TOOLS/stamps"
mkdir -p "$BIN" "$STAMPS"
export PATH="$BIN:$PATH"

log() { printf 'setup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# quiet CMD...: run CMD, showing its output only if it fails.
quiet() {
  local out
  if ! out=$("$@" 2>&1); then
    printf '%s\n' "$out" >&2
    die "failed: $*"
  fi
}

# Stamps: stamp_ok NAME KEY is true if step NAME last succeeded with KEY.
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { printf '%s\n' "$2" >"$STAMPS/$1"; }
# hash_of ARGS/FILES...: a short key from strings and file contents.
hash_of() {
  local a
  for a in "$@"; do
    if [ -f "$a" ]; then cat "$a"; else printf '%s\n' "$a"; fi
  done | sha256sum | cut -c1-16
}

# go_install_tool NAME PKG@VERSION: `go install` a tool into ./.tools/bin.
go_install_tool() {
  local name=$1 pkg=$2
  if [ -x "$BIN/$name" ] && stamp_ok "tool-$name" "$pkg"; then return; fi
  log "installing $pkg"
  GOBIN="$BIN" quiet go install "$pkg"
  stamp_set "tool-$name" "$pkg"
}

# apt_install PKG...: install missing Debian packages (CI and dev machines run as root).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  log "apt-get install ${missing[*]}"
  quiet "${sudo[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive quiet "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
}

# --- steps ---------------------------------------------------------------

ensure_go() {
  command -v go >/dev/null || die "go not found on PATH (expected Go 1.26, e.g. /usr/local/go/bin)"
}

ensure_go_modules() {
  local key
  key=$(hash_of go.mod go.sum "$(go env GOMODCACHE)")
  if stamp_ok go-mod-download "$key" && [ -d "$(go env GOMODCACHE)/cache/download" ]; then return; fi
  quiet go mod download
  stamp_set go-mod-download "$key"
}

ensure_node() {
  # Node.js (with npm) runs the conformance suite (test/e2e). It is on the
  # machine image; TestConformance skips locally / fails in CI without it.
  command -v node >/dev/null || log "warning: node not found; TestConformance will be skipped (or fail in CI)"
}

ensure_minio() {
  # A real MinIO server for the S3 cold-tier tests (internal/miniotest);
  # built from source with go install, several minutes on a cold cache.
  quiet bash scripts/install-minio.sh
}

ensure_nginx() {
  # nginx as the reference CDN edge (deploy/nginx) for test/e2e/nginx_test.go,
  # which starts its own instance (daemon off, everything under a temp dir);
  # the package's system service is not used. The binary is /usr/sbin/nginx,
  # which the test also finds when /usr/sbin is not on PATH. The cluster
  # edge routes with njs: its nginx module (libnginx-mod-http-js, loaded by
  # test/e2e from /usr/lib/nginx/modules) and the njs CLI, with which
  # cluster/placement_njs_test.go checks the script against the placement.
  apt_install nginx libnginx-mod-http-js njs
  if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    die "nginx not found after apt-get install nginx"
  fi
  [ -f /usr/lib/nginx/modules/ngx_http_js_module.so ] || die "ngx_http_js_module.so not found after apt-get install libnginx-mod-http-js"
  command -v njs >/dev/null || die "njs not found after apt-get install njs"
}

ensure_postgres() {
  # PostgreSQL from Debian for the PostgreSQL catalog backend's tests
  # (internal/pgtest), which run their own server as the postgres user on a
  # temp data dir and a free loopback port; the package's system service is
  # not used. The binaries are in /usr/lib/postgresql/<major>/bin.
  apt_install postgresql
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || die "initdb not found after apt-get install postgresql"
}

ensure_iproute2() {
  # iproute2 (ip) for the network namespaces of the cluster tests
  # (internal/netnstest, test/e2e/cluster_*_test.go): bridge, veth pairs,
  # link down/up and blackhole routes, all from `ip`; no firewall tool.
  apt_install iproute2
  command -v ip >/dev/null || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || die "ip not found after apt-get install iproute2"
}

ensure_npm_packages() {
  # Exactly as locked in each folder's package-lock.json:
  # - test/interop/ts: the upstream TypeScript client for
  #   test/e2e/interop_ts_test.go;
  # - test/interop/client-conformance: the dependencies of the upstream
  #   client conformance runner (scripts/client-conformance.sh,
  #   test/e2e/client_conformance_test.go).
  # (The server conformance suite is installed by run-conformance.sh
  # itself, see the header.)
  if ! command -v npm >/dev/null; then
    log "warning: npm not found; TestInteropTS and TestClientConformance will be skipped (or fail in CI)"
    return
  fi
  # Both at once: npm ci mostly waits on the disk and the cache (measured
  # 12 s and 26 s one after the other, 27 s side by side, on a loaded
  # 2-core machine).
  local ts cc rc=0
  npm_ci test/interop/ts npm-interop-ts node_modules/@durable-streams/client &
  ts=$!
  npm_ci test/interop/client-conformance npm-client-conformance node_modules/.bin/tsx &
  cc=$!
  wait "$ts" || rc=$?
  wait "$cc" || rc=$?
  [ "$rc" -eq 0 ] || die "npm ci failed (its output is above)"
}

# npm_ci DIR STAMP MARKER: npm ci in DIR unless its lock file and node's
# version are unchanged since the last success and DIR/MARKER exists.
npm_ci() {
  local dir=$1 stamp=$2 marker=$3 key
  key=$(hash_of "$dir/package-lock.json" "$(node --version)")
  if stamp_ok "$stamp" "$key" && [ -e "$dir/$marker" ]; then return; fi
  log "npm ci in $dir"
  quiet npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  stamp_set "$stamp" "$key"
}

main() {
  ensure_go
  ensure_go_modules
  ensure_node
  ensure_minio
  ensure_nginx
  ensure_postgres
  ensure_iproute2
  ensure_npm_packages
}

main "$@"
