#!/usr/bin/env bash
# Runs the upstream client conformance runner (packages/client-conformance-tests
# of durable-streams/durable-streams) with one of the upstream client adapters
# against a durable-streams server, and prints one summary line:
#
#   CLIENT-CONFORMANCE adapter=ts passed=N failed=N skipped=N total=N
#
# followed by one "FAIL suite/test: reason" line per failed test. The exit
# status is 0 when no test failed, 1 when some did, 2 on a setup error.
#
# Usage:
#   scripts/client-conformance.sh --adapter ts|go --server URL    [runner args...]
#   scripts/client-conformance.sh --adapter ts|go --binary PATH   [runner args...]
#   scripts/client-conformance.sh --adapter ts|go --reference     [runner args...]
#
#   --server URL   a running server, started with --enable-test-faults (the
#                  runner injects faults through /_test/inject-error) and a
#                  short --long-poll-timeout (the runner's own server uses 500ms)
#   --binary PATH  start PATH serve with those flags on a free loopback port
#                  and a temporary data directory, and stop it afterwards
#   --reference    the runner's own in-process reference server
#                  (DurableStreamTestServer of @durable-streams/server)
#   runner args    passed on, e.g. --suite consumer, --tag core, --verbose
#
# The runner and the Go client are not on npm/proxy: they come from the
# tarball DS_CLIENTS_TARBALL (default ../shared/upstream/ next to the
# repository), extracted into a temporary folder under
# test/interop/client-conformance (gitignored) and deleted afterwards; no
# upstream code is kept in the project. The runner's npm dependencies are
# pinned in test/interop/client-conformance/package-lock.json (installed by
# scripts/setup.sh). The runner always starts the reference in-process; the
# temporary copy's import of it is pointed at server-shim.mjs, which returns
# the URL of the server under test instead (DS_CONFORMANCE_SERVER_URL).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DIR=$ROOT/test/interop/client-conformance

TARBALL=${DS_CLIENTS_TARBALL:-$ROOT/../shared/upstream/durable-streams-clients-82f9963a.tar.gz}
# The tarball's sha256: the runner and adapters the pass lists were taken with.
TARBALL_SHA256=b954b7d1974ddca41f4257fb62eb555e5e8dd8f824e30f7bf353cb4d77aedb77
# The runner's own server uses a 500 ms long-poll timeout; its tests wait
# 1 s for a long poll to time out.
LONG_POLL=500ms

die() { printf 'client-conformance: %s\n' "$*" >&2; exit 2; }

adapter= server= binary= reference=
while [ $# -gt 0 ]; do
  case $1 in
    --adapter) adapter=${2:?--adapter needs ts or go}; shift 2 ;;
    --server) server=${2:?--server needs a URL}; shift 2 ;;
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --reference) reference=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
case $adapter in ts|go) ;; *) die "--adapter must be ts or go" ;; esac
[ $(( ${server:+1} + ${binary:+1} + ${reference:-0} )) -eq 1 ] ||
  die "give exactly one of --server URL, --binary PATH, --reference"

command -v node >/dev/null || die "node not found"
[ -f "$TARBALL" ] || die "tarball not found: $TARBALL (set DS_CLIENTS_TARBALL)"
echo "$TARBALL_SHA256  $TARBALL" | sha256sum --check --status ||
  die "$TARBALL is not the tarball this script was written for (sha256 differs)"
if [ ! -x "$DIR/node_modules/.bin/tsx" ]; then
  npm ci --prefix "$DIR" --no-audit --no-fund --loglevel=error >&2 ||
    die "npm ci in $DIR failed"
fi

WORK=$(mktemp -d "$DIR/.work.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

tar -xzf "$TARBALL" -C "$WORK" packages/client-conformance-tests packages/client-go
RUNNER=$WORK/packages/client-conformance-tests
# Point the runner's import of the reference server at the shim.
grep -q 'from "@durable-streams/server"' "$RUNNER/src/runner.ts" ||
  die "runner.ts no longer imports @durable-streams/server; update this script"
sed -i "s|from \"@durable-streams/server\"|from \"$DIR/server-shim.mjs\"|" "$RUNNER/src/runner.ts"

run_arg=ts
if [ "$adapter" = go ]; then
  command -v go >/dev/null || die "go not found"
  (cd "$WORK/packages/client-go" && GOFLAGS=-mod=mod go build -o "$WORK/go-adapter" ./cmd/conformance-adapter) >&2 ||
    die "building the Go conformance adapter failed"
  run_arg=$WORK/go-adapter
fi

if [ -n "$binary" ]; then
  [ -x "$binary" ] || die "not executable: $binary"
  mkdir "$WORK/data"
  "$binary" serve --addr 127.0.0.1:0 --data-dir "$WORK/data" --enable-test-faults \
    --long-poll-timeout "$LONG_POLL" --log-level info >"$WORK/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    addr=$(sed -n 's/.*"msg":"serving","addr":"\([0-9.:]*\)".*/\1/p' "$WORK/server.log" | head -1)
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$WORK/server.log" >&2; die "server exited"; }
    sleep 0.1
  done
  [ -n "$addr" ] || { cat "$WORK/server.log" >&2; die "server did not report its address"; }
  server=http://$addr
fi
if [ -n "$server" ]; then
  export DS_CONFORMANCE_SERVER_URL=$server
else
  unset DS_CONFORMANCE_SERVER_URL
fi

# The runner starts the TS adapter with `npx tsx`, found in $DIR's node_modules.
status=0
(cd "$DIR" && node_modules/.bin/tsx "$RUNNER/src/cli.ts" --run "$run_arg" "$@") >"$WORK/runner.log" 2>&1 || status=$?
cat "$WORK/runner.log" >&2

count() { sed -n "s/^$1: \([0-9]*\).*/\1/p" "$WORK/runner.log" | tail -1; }
total=$(count Total) passed=$(count Passed) failed=$(count Failed) skipped=$(count Skipped)
[ -n "$total" ] && [ -n "$failed" ] || die "no summary in the runner's output (exit status $status)"
printf 'CLIENT-CONFORMANCE adapter=%s passed=%s failed=%s skipped=%s total=%s\n' \
  "$adapter" "$passed" "$failed" "$skipped" "$total"
# The runner lists failures as "  - suite/test: reason" after "Failed tests:".
sed -n '/^Failed tests:/,/^$/s/^  - /FAIL /p' "$WORK/runner.log"
[ "$failed" -eq 0 ]
