#!/usr/bin/env bash
# Runs the bench/ workloads against this server and against its peers, several
# times in one run, and prints a Markdown table of medians with a ratio column
# (this server / peer) for each peer. The peers:
#
#   node   the upstream Node reference server (@durable-streams/server,
#          file-backed), installed from npm into bench/node
#   caddy  the protocol repository's Go server (its Caddy plugin, file
#          store), built by scripts/build-caddy-peer.sh into .tools/caddy-peer
#
#   scripts/bench-compare.sh [-r RUNS] [-w WORKLOADS] [-s SCALE] [-d DURATION] [-o OUTDIR] [-p PEERS]
#
# PEERS is a comma-separated list of node and caddy; by default node, and
# caddy too when its binary is built. Naming caddy builds it when missing
# (several minutes). WORKLOADS is a comma-separated list or a group (quick,
# all); see `go run ./bench -h`. Workloads only this server can run
# (read-cold-*, which need its cold tier) are skipped for the peers. This
# server runs with its embedded defaults (local cold directory); when
# read-cold-remote is asked for, a MinIO server (scripts/install-minio.sh)
# is started on loopback for that workload only. Everything runs on
# 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=3 workloads=quick scale=1 duration=5s out="" peers=""
while getopts "r:w:s:d:o:p:h" opt; do
  case $opt in
    r) runs=$OPTARG ;;
    w) workloads=$OPTARG ;;
    s) scale=$OPTARG ;;
    d) duration=$OPTARG ;;
    o) out=$OPTARG ;;
    p) peers=$OPTARG ;;
    *) sed -n '2,21p' "$0"; exit 2 ;;
  esac
done
out=${out:-$(mktemp -d /tmp/ds-bench.XXXXXX)}
mkdir -p "$out"
log() { printf 'bench-compare: %s\n' "$*" >&2; }

caddy=.tools/caddy-peer/durable-streams-caddy
if [ -z "$peers" ]; then
  peers=node
  [ -x "$caddy" ] && peers=node,caddy
fi
for p in ${peers//,/ }; do
  case $p in
    node | caddy) ;;
    *) log "unknown peer $p (node, caddy)"; exit 2 ;;
  esac
done
has_peer() { [[ ",$peers," == *",$1,"* ]]; }

bin=.tools/bench
mkdir -p "$bin"
log "building the server and the load program"
go build -o "$bin/durable-streams" ./cmd/durable-streams
go build -o "$bin/bench" ./bench
if has_peer node && [ ! -d bench/node/node_modules/@durable-streams/server ]; then
  log "installing the reference server (npm ci in bench/node)"
  (cd bench/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
if has_peer caddy; then
  bash scripts/build-caddy-peer.sh
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
declare -A peer_cmd=(
  [node]="node $PWD/bench/node/start.mjs {port} {dir}"
  # Caddy reads its port and data directory from the environment (see the
  # Caddyfile) and keeps its own state under {dir}, not in $HOME.
  [caddy]="env DS_PEER_PORT={port} DS_PEER_DIR={dir}/data XDG_DATA_HOME={dir}/xdg XDG_CONFIG_HOME={dir}/xdg $PWD/$caddy run --config $PWD/.tools/caddy-peer/Caddyfile --adapter caddyfile"
)
for r in $(seq 1 "$runs"); do
  log "run $r/$runs: this server"
  if [ -n "$local_list" ]; then
    "$bin/bench" -server "$ours" -ready-path /healthz -target ours -json -scale "$scale" -duration "$duration" -workload "$local_list" >>"$out/ours.jsonl" || log "some workloads failed on this server (see above)"
  fi
  if [ -n "$minio_pid" ]; then
    env "${s3env[@]}" "$bin/bench" -server "$ours" -ready-path /healthz -target ours -json -scale "$scale" -duration "$duration" -workload read-cold-remote >>"$out/ours.jsonl" || log "read-cold-remote failed on this server (see above)"
  fi
  for p in ${peers//,/ }; do
    log "run $r/$runs: peer $p"
    "$bin/bench" -server "${peer_cmd[$p]}" -target "$p" -json -scale "$scale" -duration "$duration" -workload "$peer_list" >>"$out/$p.jsonl" || log "some workloads failed on peer $p (see above)"
  done
done
log "results in $out"
files=("$out/ours.jsonl")
for p in ${peers//,/ }; do files+=("$out/$p.jsonl"); done
"$bin/bench" report -ours ours -peer "$peers" "${files[@]}"
