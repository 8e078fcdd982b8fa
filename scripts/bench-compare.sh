#!/usr/bin/env bash
# Runs the bench/ workloads against this server and against the upstream Node
# reference server (@durable-streams/server, file-backed, installed from npm
# into bench/node), several times in one run, and prints a Markdown table of
# medians with ratios (this server / reference).
#
#   scripts/bench-compare.sh [-r RUNS] [-w WORKLOADS] [-s SCALE] [-d DURATION] [-o OUTDIR]
#
# WORKLOADS is a comma-separated list or a group (quick, all); see
# `go run ./bench -h`. Workloads only this server can run (read-cold-*,
# which need its cold tier) are skipped for the reference server. This
# server runs with its embedded defaults (local cold directory); when
# read-cold-remote is asked for, a MinIO server (scripts/install-minio.sh)
# is started on loopback for that workload only. Everything runs on
# 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=3 workloads=quick scale=1 duration=5s out=""
while getopts "r:w:s:d:o:h" opt; do
  case $opt in
    r) runs=$OPTARG ;;
    w) workloads=$OPTARG ;;
    s) scale=$OPTARG ;;
    d) duration=$OPTARG ;;
    o) out=$OPTARG ;;
    *) sed -n '2,14p' "$0"; exit 2 ;;
  esac
done
out=${out:-$(mktemp -d /tmp/ds-bench.XXXXXX)}
mkdir -p "$out"
log() { printf 'bench-compare: %s\n' "$*" >&2; }

bin=.tools/bench
mkdir -p "$bin"
log "building the server and the load program"
go build -o "$bin/durable-streams" ./cmd/durable-streams
go build -o "$bin/bench" ./bench
if [ ! -d bench/node/node_modules/@durable-streams/server ]; then
  log "installing the reference server (npm ci in bench/node)"
  (cd bench/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# Expand groups so each target gets the list it can run.
mapfile -t all < <("$bin/bench" -h 2>&1 | sed -n 's/.*a group: quick, all (\(.*\)).*/\1/p' | tr ',' '\n' | tr -d ' ')
case $workloads in
  all) list=$(IFS=,; echo "${all[*]}") ;;
  quick) list="append-1x1,append-1x64,append-64x64,create-64,producer-binary,producer-json,read-hot,longpoll-latency,sse-latency,sse-fanout-1k" ;;
  *) list=$workloads ;;
esac
peer_list=$(tr ',' '\n' <<<"$list" | grep -v '^read-cold-' | paste -sd, -)

minio_pid=""
cleanup() { [ -n "$minio_pid" ] && kill "$minio_pid" 2>/dev/null || true; }
trap cleanup EXIT
if grep -q read-cold-remote <<<"$list"; then
  bash scripts/install-minio.sh
  mdir=$(mktemp -d) mport=$((20000 + RANDOM % 20000))
  MINIO_ROOT_USER=bench MINIO_ROOT_PASSWORD=bench-secret MINIO_BROWSER=off \
    .tools/bin/minio server "$mdir" --address "127.0.0.1:$mport" --console-address "127.0.0.1:$((mport + 1))" --quiet >"$out/minio.log" 2>&1 &
  minio_pid=$!
  until curl -sf "http://127.0.0.1:$mport/minio/health/ready" >/dev/null; do sleep 0.2; done
  s3env=(DS_COLD_STORE=s3 DS_S3_ENDPOINT="http://127.0.0.1:$mport" DS_S3_BUCKET=bench DS_S3_PATH_STYLE=true
    DS_S3_CREATE_BUCKET=true DS_S3_ACCESS_KEY_ID=bench DS_S3_SECRET_ACCESS_KEY=bench-secret)
  log "MinIO on 127.0.0.1:$mport (read-cold-remote uses it)"
fi
# Only read-cold-remote runs this server against MinIO; every other workload
# uses the embedded default (a local cold directory), as a laptop would.
local_list=$(tr ',' '\n' <<<"$list" | grep -vx 'read-cold-remote' | paste -sd, -)

# Every bench client is one loopback address (sse-fanout-10k holds 10,000
# connections from it): the connection bounds are off, as the reference
# server has none.
ours="$bin/durable-streams serve --addr {addr} --data-dir {dir} --log-level warn --max-conns 0 --max-conns-per-client 0"
peer="node $PWD/bench/node/start.mjs {port} {dir}"
for r in $(seq 1 "$runs"); do
  log "run $r/$runs: this server"
  if [ -n "$local_list" ]; then
    "$bin/bench" -server "$ours" -ready-path /healthz -target ours -json -scale "$scale" -duration "$duration" -workload "$local_list" >>"$out/ours.jsonl" || log "some workloads failed on this server (see above)"
  fi
  if [ -n "$minio_pid" ]; then
    env "${s3env[@]}" "$bin/bench" -server "$ours" -ready-path /healthz -target ours -json -scale "$scale" -duration "$duration" -workload read-cold-remote >>"$out/ours.jsonl" || log "read-cold-remote failed on this server (see above)"
  fi
  log "run $r/$runs: reference server"
  "$bin/bench" -server "$peer" -target node -json -scale "$scale" -duration "$duration" -workload "$peer_list" >>"$out/node.jsonl" || log "some workloads failed on the reference server (see above)"
done
log "results in $out"
"$bin/bench" report -ours ours -peer node "$out/ours.jsonl" "$out/node.jsonl"
