#!/usr/bin/env bash
# Reproduces the table of docs/benchmarks.md in one run: builds the release binaries, starts `callbox serve`, the
# bare axum hello-world and the Node peer on 127.0.0.1:0, runs every scenario bounded in time with a fixed number
# of connections, writes the JSON results to bench/results/<UTC time>/ and prints the table.
#
#   bash bench/run.sh                      # 10 s per scenario, 32 connections
#   BENCH_SECONDS=5 BENCH_CONNECTIONS=16 bash bench/run.sh
#
# Needs cargo, node >= 20 and npm (the peer's dependencies are installed with `npm ci`). Loopback only.
#
# The Node peer runs with its own defaults (since issue 14: node:cluster with one worker a core, better-sqlite3's
# synchronous=NORMAL); PEER_WORKERS=1 PEER_SYNCHRONOUS=FULL gives the one-process, synced peer of the older runs
# in docs/benchmarks.md. For Callbox against the peer under wrk, see bench/wrk.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
FILL_SESSIONS=${BENCH_FILL_SESSIONS:-100000}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

echo "== building release binaries" >&2
cargo build --release --locked -p callbox -p callbox-loadgen >&2
LOADGEN=$TARGET_DIR/release/callbox-loadgen
if [ ! -d bench/peers/node/node_modules ]; then
  echo "== npm ci (Node peer)" >&2
  (cd bench/peers/node && npm ci --no-audit --no-fund >&2)
fi

RUN=bench/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN"
# WORK, PIDS (killed on exit) and wait_url.
source bench/lib.sh

RUST_LOG=warn "$TARGET_DIR/release/callbox" serve --listen 127.0.0.1:0 --data "$WORK/callbox" \
  > "$WORK/callbox.out" 2> "$WORK/callbox.err" &
CALLBOX_PID=$!
PIDS+=("$CALLBOX_PID")
"$TARGET_DIR/release/hello-axum" > "$WORK/hello.out" 2> "$WORK/hello.err" &
PIDS+=("$!")
PEER_KEY=$(cat /proc/sys/kernel/random/uuid)
PEER_SECRET=$(head -c 16 /dev/urandom | base64)
PEER_APP_KEY=$PEER_KEY PEER_APP_SECRET=$PEER_SECRET PEER_DB="$WORK/peer.db" \
  node bench/peers/node/server.js > "$WORK/peer.out" 2> "$WORK/peer.err" &
PIDS+=("$!")

CALLBOX_URL=$(wait_url "$WORK/callbox.out")
HELLO_URL=$(wait_url "$WORK/hello.out")
PEER_URL=$(wait_url "$WORK/peer.out")
TOKEN=$(tr -d '[:space:]' < "$WORK/callbox/admin-token")
export CALLBOX_ADMIN_TOKEN=$TOKEN
echo "== callbox $CALLBOX_URL, hello $HELLO_URL, node peer $PEER_URL; results in $RUN" >&2
sleep 1
"$LOADGEN" rss --pid "$CALLBOX_PID" --label idle --out "$RUN/rss-idle.json" > /dev/null

run() {
  local name=$1
  shift
  echo "== $name" >&2
  "$LOADGEN" run --duration "$SECONDS_EACH" --out "$RUN/$name.json" "$@" > /dev/null
}
run hello --scenario hello --url "$HELLO_URL" --connections "$CONNECTIONS"
run exchange --scenario exchange --url "$CALLBOX_URL" --connections "$CONNECTIONS"
run peer-exchange --scenario exchange --url "$PEER_URL" --connections "$CONNECTIONS" \
  --admin-token '' --app-key "$PEER_KEY" --app-secret "$PEER_SECRET"
run signed --scenario signed --url "$CALLBOX_URL" --connections "$CONNECTIONS"
run peer-signed --scenario signed --url "$PEER_URL" --connections "$CONNECTIONS" \
  --admin-token '' --app-key "$PEER_KEY" --app-secret "$PEER_SECRET"
# Logins: fewer connections than the hashing pool's workers + queue, so none is shed.
run login --scenario login --url "$CALLBOX_URL" --connections 8
# Mixed: 2 exchange connections while 48 login connections overfill the hashing pool (excess shed with 429).
run mixed --scenario mixed --url "$CALLBOX_URL" --connections 2 --login-connections 48
run sqlite-insert --scenario sqlite-insert --db-dir "$WORK/sqlite-insert"

echo "== filling to $FILL_SESSIONS live sessions" >&2
LIVE=$("$LOADGEN" sessions --db "$WORK/callbox/callbox.db")
if [ "$LIVE" -lt "$FILL_SESSIONS" ]; then
  "$LOADGEN" run --scenario exchange --url "$CALLBOX_URL" --connections "$CONNECTIONS" --duration 300 \
    --max-requests $((FILL_SESSIONS - LIVE)) --out "$RUN/fill.json" > /dev/null
fi
LIVE=$("$LOADGEN" sessions --db "$WORK/callbox/callbox.db")
"$LOADGEN" run --scenario signed --url "$CALLBOX_URL" --connections "$CONNECTIONS" --duration 3 \
  --out "$RUN/signed-100k.json" > /dev/null
"$LOADGEN" rss --pid "$CALLBOX_PID" --label 100k --sessions "$LIVE" --out "$RUN/rss-100k.json" > /dev/null

{
  echo "Run $RUN: $(nproc) cores, $(uname -sr), node $(node --version), ${SECONDS_EACH} s per scenario,"
  echo "$CONNECTIONS connections unless said otherwise."
  echo
  "$LOADGEN" report "$RUN"
} | tee "$RUN/table.md"
