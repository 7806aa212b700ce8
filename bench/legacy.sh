#!/usr/bin/env bash
# The legacy transport beside the WebSocket, in one sitting, on one Callbox (docs/benchmarks.md, issue 13):
#   1. idle legacy long-poll subscribers held (one session and one waiting /subscribe each) and the server's RSS
#      delta per subscriber, beside idle authenticated WebSocket connections;
#   2. 1:1 messages through the legacy path (an MXP frame published, read by the receiver's long-poll, confirmed
#      with a receipt frame) beside the WebSocket path with one message in flight per sender.
# Builds the release binaries, starts Callbox on 127.0.0.1:0 with temporary data, each scenario bounded in time
# (LG_SECONDS) and count (LG_SUBSCRIBERS, LG_PAIRS), writes JSON results to bench/results/legacy-<UTC time>/ and
# prints the table.
#
#   bash bench/legacy.sh
#   LG_SUBSCRIBERS=2000 LG_SECONDS=5 bash bench/legacy.sh
#   LG_STORE=postgres bash bench/legacy.sh   # one node on a throw-away PostgreSQL + Redis (scripts/services.sh)
#
# The per-session message limit and the per-address connection and long-poll caps are raised so that they do not
# cap the run (every client here is 127.0.0.1). Loopback only; the load generator refuses any other target.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# WORK, PIDS (killed on exit), wait_url and raise_open_files.
source bench/lib.sh
raise_open_files
# Each held poll is a TCP connection at both ends (the load generator and the server are separate processes).
MOST=$((FILES - 200))
SUBSCRIBERS=${LG_SUBSCRIBERS:-$((MOST < 5000 ? MOST : 5000))}
SECONDS_EACH=${LG_SECONDS:-10}
PAIRS=${LG_PAIRS:-16}
RATE=1000000

STORE=${LG_STORE:-sqlite}
RUN=bench/results/legacy-$STORE-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN"
STORE_ARGS=()
if [ "$STORE" = postgres ]; then
  source scripts/services.sh
  trap 'cleanup; services_stop' EXIT
  services_start >&2
  STORE_ARGS=(--database-url "$CALLBOX_TEST_DATABASE_URL" --redis-url "$CALLBOX_TEST_REDIS_URL")
elif [ "$STORE" != sqlite ]; then
  echo "LG_STORE must be sqlite or postgres" >&2
  exit 2
fi
echo "== building release binaries" >&2
cargo build --release --locked -p callbox -p callbox-loadgen >&2
LOADGEN=$TARGET_DIR/release/callbox-loadgen

CALLBOX_DEMO_APP=false CALLBOX_REALTIME__MESSAGES_PER_SECOND=$RATE CALLBOX_REALTIME__MESSAGE_BURST=$RATE \
  CALLBOX_REALTIME__LEGACY_POLLS_PER_ADDRESS=$RATE CALLBOX_CONNECTIONS__MAX_PER_ADDRESS=$FILES \
  CALLBOX_CONNECTIONS__REALTIME_MAX_PER_ADDRESS=$FILES CALLBOX_CONNECTIONS__MAX_TOTAL=$FILES \
  RUST_LOG=warn "$TARGET_DIR/release/callbox" serve --listen 127.0.0.1:0 --data "$WORK/callbox" "${STORE_ARGS[@]}" \
  > "$WORK/callbox.out" 2> "$WORK/callbox.err" &
CALLBOX_PID=$!
PIDS+=("$CALLBOX_PID")
URL=$(wait_url "$WORK/callbox.out")
TOKEN=$(tr -d '[:space:]' < "$WORK/callbox/admin-token")
echo "== callbox $URL (pid $CALLBOX_PID); results in $RUN" >&2
sleep 1

echo "{\"startedAt\":\"$(date -u +%FT%TZ)\",\"loadBefore\":$(load),\"subscribers\":$SUBSCRIBERS,\"seconds\":$SECONDS_EACH,\"pairs\":$PAIRS}" \
  > "$RUN/run.json"
# Interleaved so that both paths see the same machine in the same minutes.
step ws-messages realtime-messages --url "$URL" --admin-token "$TOKEN" --pairs "$PAIRS" --window 1 --duration "$SECONDS_EACH"
step legacy-messages legacy-messages --url "$URL" --admin-token "$TOKEN" --pairs "$PAIRS" --duration "$SECONDS_EACH"
step ws-idle realtime-idle --url "$URL" --admin-token "$TOKEN" --connections "$SUBSCRIBERS" --pid "$CALLBOX_PID"
step legacy-idle legacy-idle --url "$URL" --admin-token "$TOKEN" --subscribers "$SUBSCRIBERS" --pid "$CALLBOX_PID"
LOAD_AFTER=$(load)

j() { jq -r "$2" "$RUN/$1.json"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "Run $RUN ($STORE): $(date -u +%FT%TZ), 1-min load $(jq .loadBefore "$RUN/run.json") before, $LOAD_AFTER after"
echo
echo "| scenario | legacy long-poll | WebSocket | legacy / WebSocket |"
echo "|---|---|---|---|"
lg_rate=$(j legacy-messages .deliveredPerSecond) ws_rate=$(j ws-messages .deliveredPerSecond)
printf '| 1:1 delivered msgs/s, %s pairs, 1 in flight each, every message confirmed | %.0f | %.0f | %s |\n' \
  "$PAIRS" "$lg_rate" "$ws_rate" "$(ratio "$lg_rate" "$ws_rate")"
printf '| delivery latency p50 / p99 (ms) | %.1f / %.1f | %.1f / %.1f | p99 %s |\n' \
  "$(j legacy-messages .deliveryLatencyMs.p50)" "$(j legacy-messages .deliveryLatencyMs.p99)" \
  "$(j ws-messages .deliveryLatencyMs.p50)" "$(j ws-messages .deliveryLatencyMs.p99)" \
  "$(ratio "$(j legacy-messages .deliveryLatencyMs.p99)" "$(j ws-messages .deliveryLatencyMs.p99)")"
printf '| accepted / delivered | %s / %s | %s / %s | |\n' \
  "$(j legacy-messages .accepted)" "$(j legacy-messages .delivered)" "$(j ws-messages .accepted)" "$(j ws-messages .delivered)"
lg_b=$(j legacy-idle '.bytesPerSubscriber // 0') ws_b=$(j ws-idle '.bytesPerConnection // 0')
printf '| idle subscribers held (of %s) | %s | %s | |\n' "$SUBSCRIBERS" "$(j legacy-idle .held)" "$(j ws-idle .connections)"
printf '| server RSS per subscriber (delta / held) | %.1f KiB | %.1f KiB | %s |\n' \
  "$(awk -v b="$lg_b" 'BEGIN{print b/1024}')" "$(awk -v b="$ws_b" 'BEGIN{print b/1024}')" "$(ratio "$lg_b" "$ws_b")"
