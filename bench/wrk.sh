#!/usr/bin/env bash
# Callbox and the Node peer side by side under wrk, in one run with the same settings: the ticket -> session
# exchange and the Instance-signed call (docs/benchmarks.md, "Against the Node peer with wrk").
#
#   bash bench/wrk.sh                                  # wrk -t2 -c64 -d8s, 2 s warm-up, peer with one worker a core
#   WRK_THREADS=2 WRK_CONNECTIONS=64 WRK_SECONDS=8 WRK_WARMUP=2 PEER_WORKERS=1 PEER_SYNCHRONOUS=FULL bash bench/wrk.sh
#   WRK_LOADGEN=1 bash bench/wrk.sh                   # also drive the same servers with bench/loadgen
#
# It builds `callbox` in release (CARGO_TARGET_DIR is honoured), runs `npm ci` for the peer when needed, starts
# `callbox serve --listen 127.0.0.1:0` on a fresh data directory and `bench/peers/node/server.js` (PEER_WORKERS,
# PEER_SYNCHRONOUS pass through) on a fresh SQLite file, makes an application with the admin API, mints 64 tickets
# per server with `callbox ticket mint`, exchanges each once (the sessions of the signed call) and signs each
# session's profile call once over a fixed X-Timestamp. Then, per path, Callbox and the peer in turn: a warm-up,
# then the measured wrk run. Beside wrk's figures it records the load average before each run and the CPU time
# the server (for the peer: its primary and every worker) and wrk itself used during it, from /proc. Everything
# is loopback and bounded in time; results go to bench/results/wrk-<UTC time>/ (raw wrk output, table.md).
#
# Needs wrk, curl, jq, openssl, xxd, node >= 20 and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
THREADS=${WRK_THREADS:-2}
CONNECTIONS=${WRK_CONNECTIONS:-64}
SECONDS_EACH=${WRK_SECONDS:-8}
WARMUP=${WRK_WARMUP:-2}
SESSIONS=64
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CALLBOX=$TARGET_DIR/release/callbox

for tool in wrk curl jq openssl xxd node npm; do
  command -v "$tool" > /dev/null || { echo "bench/wrk.sh needs $tool" >&2; exit 1; }
done
echo "== building callbox (release)" >&2
# The same packages as bench/run.sh, so that both scripts share one set of release artefacts (a different set
# of packages unifies features differently and rebuilds half the tree).
cargo build --release --locked -p callbox -p callbox-loadgen >&2
if [ ! -d bench/peers/node/node_modules ]; then
  echo "== npm ci (Node peer)" >&2
  (cd bench/peers/node && npm ci --no-audit --no-fund >&2)
fi

RUN=bench/results/wrk-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN"
# WORK, PIDS (killed on exit) and wait_url.
source bench/lib.sh

# CPU time (clock ticks, user + system) of a process and its children's live processes (the peer's workers).
cpu_ticks() {
  local total=0 pid
  for pid in "$1" $(cat "/proc/$1/task/"*/children 2> /dev/null); do
    # Fields after the ") " that ends the command name: utime is the 12th, stime the 13th.
    total=$((total + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')))
  done
  echo "$total"
}
TICKS=$(getconf CLK_TCK)

RUST_LOG=warn "$CALLBOX" serve --listen 127.0.0.1:0 --data "$WORK/callbox" \
  > "$WORK/callbox.out" 2> "$WORK/callbox.err" &
CALLBOX_PID=$!
PIDS+=("$CALLBOX_PID")
PEER_KEY=$(cat /proc/sys/kernel/random/uuid)
PEER_SECRET=$(head -c 16 /dev/urandom | base64)
PEER_APP_KEY=$PEER_KEY PEER_APP_SECRET=$PEER_SECRET PEER_DB="$WORK/peer.db" \
  node bench/peers/node/server.js > "$WORK/peer.out" 2> "$WORK/peer.err" &
PEER_PID=$!
PIDS+=("$PEER_PID")
CALLBOX_URL=$(wait_url "$WORK/callbox.out")
PEER_URL=$(wait_url "$WORK/peer.out")
PEER_WORKERS_RUNNING=$(sed -n 's/.*"workers":\([0-9]*\).*/\1/p' "$WORK/peer.out" | head -n 1)
PEER_SYNCHRONOUS_RUNNING=$(sed -n 's/.*"synchronous":"\([A-Z]*\)".*/\1/p' "$WORK/peer.out" | head -n 1)
TOKEN=$(tr -d '[:space:]' < "$WORK/callbox/admin-token")
echo "== callbox $CALLBOX_URL, node peer $PEER_URL ($PEER_WORKERS_RUNNING workers," \
  "synchronous=$PEER_SYNCHRONOUS_RUNNING); results in $RUN" >&2

APP=$(curl -sf -X POST "$CALLBOX_URL/admin/v1/apps" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d '{"name":"wrk","sessionTtl":86400}')
CALLBOX_KEY=$(jq -r .application.applicationKey <<< "$APP")
CALLBOX_SECRET=$(jq -r .applicationSecret <<< "$APP")

# Tickets (one a line) for both servers, then one session per ticket and its signed profile call (one
# `<authorization>\t<x-timestamp>` a line), signed per PROTOCOL §4 over one fixed X-Timestamp.
prepare() {
  local name=$1 url=$2 key=$3 secret=$4 timestamp n ticket session id session_secret signature
  : > "$WORK/$name-tickets.txt"
  : > "$WORK/$name-signed.txt"
  timestamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for n in $(seq 1 "$SESSIONS"); do
    ticket=$("$CALLBOX" ticket mint --key "$key" --secret "$secret" --user "wrkuser$n" --ttl 3600 | jq -r .userTicket)
    echo "$ticket" >> "$WORK/$name-tickets.txt"
    session=$(curl -sf -X POST "$url/v1/instance" -H "Authorization: User $ticket" \
      -H 'Content-Type: application/json' -d '{"services":{"im":true}}')
    id=$(jq -r .id <<< "$session")
    session_secret=$(jq -r .secret <<< "$session")
    signature=$(printf 'GET\n\n\nx-timestamp:%s\n/v1/user/profile' "$timestamp" \
      | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(base64 -d <<< "$session_secret" | xxd -p -c 256)" -binary \
      | base64)
    printf 'Instance %s:%s\t%s\n' "$id" "$signature" "$timestamp" >> "$WORK/$name-signed.txt"
  done
  # One signed call each way, so that a signing mistake fails here and not as 401s counted by wrk.
  local first
  first=$(head -n 1 "$WORK/$name-signed.txt")
  curl -sf "$url/v1/user/profile" -H "Authorization: ${first%%$'\t'*}" -H "X-Timestamp: ${first#*$'\t'}" > /dev/null \
    || { echo "the $name server refused a signed call made by bench/wrk.sh" >&2; exit 1; }
}
echo "== minting $SESSIONS tickets and sessions per server" >&2
prepare callbox "$CALLBOX_URL" "$CALLBOX_KEY" "$CALLBOX_SECRET"
prepare peer "$PEER_URL" "$PEER_KEY" "$PEER_SECRET"

# One measured wrk run (after a warm-up with the same settings); writes $RUN/<label>.json.
measure() {
  local label=$1 url=$2 pid=$3 script=$4 data=$5 load before after
  if [ "$WARMUP" != 0 ]; then
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "bench/wrk/$script" "$url" -- "$data" > /dev/null
  fi
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  before=$(cpu_ticks "$pid")
  /usr/bin/time -f '%U %S' -o "$WORK/time" \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -s "bench/wrk/$script" "$url" -- "$data" \
    > "$RUN/$label.txt"
  after=$(cpu_ticks "$pid")
  tail -n 1 "$RUN/$label.txt" | jq --arg load "$load" --argjson ticks $((after - before)) --argjson hz "$TICKS" \
    --arg wrk "$(cat "$WORK/time")" \
    '. + {load: $load, serverCpuSeconds: ($ticks / $hz),
          wrkCpuSeconds: ($wrk | split(" ") | map(tonumber) | add)}' > "$RUN/$label.json"
  echo "   $label: $(jq -r '(.requests / .durationMicros * 1e6 | floor | tostring) + " req/s"' "$RUN/$label.json")" >&2
}
echo "== wrk -t$THREADS -c$CONNECTIONS -d${SECONDS_EACH}s (warm-up ${WARMUP}s), one server at a time" >&2
measure callbox-exchange "$CALLBOX_URL" "$CALLBOX_PID" exchange.lua "$WORK/callbox-tickets.txt"
measure peer-exchange "$PEER_URL" "$PEER_PID" exchange.lua "$WORK/peer-tickets.txt"
measure callbox-signed "$CALLBOX_URL" "$CALLBOX_PID" signed.lua "$WORK/callbox-signed.txt"
measure peer-signed "$PEER_URL" "$PEER_PID" signed.lua "$WORK/peer-signed.txt"

# WRK_LOADGEN=1: the same two paths against the same (warm) servers with bench/loadgen, same connections and
# seconds, to compare the load tools (its own CPU is measured the same way as wrk's).
loadgen() {
  local label=$1 url=$2 pid=$3 scenario=$4 load before after
  shift 4
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  before=$(cpu_ticks "$pid")
  /usr/bin/time -f '%U %S' -o "$WORK/time" "$TARGET_DIR/release/callbox-loadgen" run --scenario "$scenario" \
    --url "$url" --connections "$CONNECTIONS" --duration "$SECONDS_EACH" "$@" > "$RUN/$label.raw.json"
  after=$(cpu_ticks "$pid")
  # The set-up (an app and 64 sessions for the signed call) is inside the measured CPU; it is small beside a run.
  jq --arg load "$load" --argjson ticks $((after - before)) --argjson hz "$TICKS" --arg tool "$(cat "$WORK/time")" \
    '{requests: .requests, durationMicros: (.elapsedSeconds * 1e6), connectErrors: .errors, readErrors: 0,
      writeErrors: 0, non2xx: (.requests - .ok), timeouts: 0, p50Micros: (.latencyMs.p50 * 1000),
      p99Micros: (.latencyMs.p99 * 1000), load: $load, serverCpuSeconds: ($ticks / $hz),
      wrkCpuSeconds: ($tool | split(" ") | map(tonumber) | add)}' "$RUN/$label.raw.json" > "$RUN/$label.json"
  echo "   $label: $(jq -r '(.requests / .durationMicros * 1e6 | floor | tostring) + " req/s"' "$RUN/$label.json")" >&2
}
if [ "${WRK_LOADGEN:-0}" = 1 ]; then
  echo "== callbox-loadgen, $CONNECTIONS connections, ${SECONDS_EACH} s, the same servers" >&2
  export CALLBOX_ADMIN_TOKEN=$TOKEN
  PEER_APP=(--admin-token '' --app-key "$PEER_KEY" --app-secret "$PEER_SECRET")
  loadgen loadgen-callbox-exchange "$CALLBOX_URL" "$CALLBOX_PID" exchange
  loadgen loadgen-peer-exchange "$PEER_URL" "$PEER_PID" exchange "${PEER_APP[@]}"
  loadgen loadgen-callbox-signed "$CALLBOX_URL" "$CALLBOX_PID" signed
  loadgen loadgen-peer-signed "$PEER_URL" "$PEER_PID" signed "${PEER_APP[@]}"
fi

# req/s, p50/p99 ms, server and wrk CPU µs per request, non-2xx + socket errors, load average, and the cores the
# server and the load tool used together (2.0 = the whole machine; less = other processes had the rest).
figures() {
  jq -r '(.requests / .durationMicros * 1e6) as $rate
    | [($rate | floor), (.p50Micros / 1000 * 100 | round / 100), (.p99Micros / 1000 * 100 | round / 100),
       (.serverCpuSeconds / .requests * 1e6 | round), (.wrkCpuSeconds / .requests * 1e6 | round),
       (.non2xx + .connectErrors + .readErrors + .writeErrors + .timeouts), .load,
       ((.serverCpuSeconds + .wrkCpuSeconds) / (.durationMicros / 1e6) * 100 | round / 100)] | @tsv' "$RUN/$1.json"
}
{
  echo "Run $RUN: $(nproc) cores, $(uname -sr), node $(node --version), $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2),"
  echo "wrk -t$THREADS -c$CONNECTIONS -d${SECONDS_EACH}s after a ${WARMUP} s warm-up, peer with $PEER_WORKERS_RUNNING worker(s)," \
    "synchronous=$PEER_SYNCHRONOUS_RUNNING."
  echo
  echo "| path | Callbox req/s | p50 / p99 ms | CPU µs/req | Node peer req/s | p50 / p99 ms | CPU µs/req | ratio | CPU ratio | load tool CPU µs/req (Callbox / peer) | cores used, server + tool (Callbox / peer) | errors (Callbox / peer) | load avg before (Callbox / peer) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  rows=(exchange signed)
  [ "${WRK_LOADGEN:-0}" = 1 ] && rows+=(loadgen-exchange loadgen-signed)
  for path in "${rows[@]}"; do
    case $path in
      loadgen-*) callbox_label=loadgen-callbox-${path#loadgen-} peer_label=loadgen-peer-${path#loadgen-} ;;
      *) callbox_label=callbox-$path peer_label=peer-$path ;;
    esac
    IFS=$'\t' read -r c_rate c_p50 c_p99 c_cpu c_wrk c_err c_load c_cores <<< "$(figures "$callbox_label")"
    IFS=$'\t' read -r p_rate p_p50 p_p99 p_cpu p_wrk p_err p_load p_cores <<< "$(figures "$peer_label")"
    ratio=$(awk -v a="$c_rate" -v b="$p_rate" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }')
    cpu_ratio=$(awk -v a="$p_cpu" -v b="$c_cpu" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }')
    echo "| $path | $c_rate | $c_p50 / $c_p99 | $c_cpu | $p_rate | $p_p50 / $p_p99 | $p_cpu | **$ratio** | $cpu_ratio | $c_wrk / $p_wrk | $c_cores / $p_cores | $c_err / $p_err | $c_load / $p_load |"
  done
  echo
  echo "ratio = Callbox req/s ÷ peer req/s. CPU ratio = the peer's server CPU per request ÷ Callbox's (what the ratio"
  echo "would tend to if the load generator had cores of its own and both servers were CPU-bound). Rows loadgen-*:"
  echo "the same servers driven by bench/loadgen instead of wrk (WRK_LOADGEN=1)."
} | tee "$RUN/table.md"
