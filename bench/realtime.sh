#!/usr/bin/env bash
# The realtime side-by-side of docs/benchmarks.md (issue 11): Callbox's /v1/realtime against the Node 20 + ws +
# better-sqlite3 peer (bench/peers/node-ws), in one sitting, with the same load generator:
#   1. idle authenticated connections held, and the server's RSS delta per connection;
#   2. 1:1 messages with durable acknowledgement (message.accepted after the commit) and confirmation
#      (message.received -> stored receipt): delivered messages a second, send -> delivery latency p50/p99.
# Builds the release binaries, starts both servers on 127.0.0.1:0 with temporary data, runs each scenario bounded
# in time (RT_SECONDS) and count (RT_CONNECTIONS, RT_PAIRS x RT_WINDOW in flight), writes the JSON results to
# bench/results/realtime-<UTC time>/ and prints the table.
#
#   bash bench/realtime.sh
#   RT_CONNECTIONS=5000 RT_SECONDS=5 RT_WINDOWS="1 4" bash bench/realtime.sh
#
# Both servers get the per-session message limit raised (20/s by default on both) so that it does not cap the run.
# Connections: each process may hold at most `ulimit -Hn` descriptors (20,000 here, and it cannot be raised
# without CAP_SYS_RESOURCE): the server needs a few for its listener and database, so the default is 100 below the
# hard limit (at most 20,000). Loopback only; the load generator refuses any other target.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# WORK, PIDS (killed on exit), wait_url and raise_open_files.
source bench/lib.sh
raise_open_files
# The issue's 20,000, or as many as the open-file limit leaves room for.
MOST=$((FILES - 100))
CONNECTIONS=${RT_CONNECTIONS:-$((MOST < 20000 ? MOST : 20000))}
SECONDS_EACH=${RT_SECONDS:-10}
PAIRS=${RT_PAIRS:-16}
WINDOWS=${RT_WINDOWS:-1 4}
RATE=1000000


RUN=bench/results/realtime-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN"
build_realtime_bench

CALLBOX_DEMO_APP=false CALLBOX_REALTIME__MESSAGES_PER_SECOND=$RATE CALLBOX_REALTIME__MESSAGE_BURST=$RATE \
  RUST_LOG=warn "$TARGET_DIR/release/callbox" serve --listen 127.0.0.1:0 --data "$WORK/callbox" \
  > "$WORK/callbox.out" 2> "$WORK/callbox.err" &
CALLBOX_PID=$!
PIDS+=("$CALLBOX_PID")
PEER_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
PEER_ADMIN_TOKEN=$PEER_TOKEN PEER_DB="$WORK/peer-ws.db" PEER_MESSAGES_PER_SECOND=$RATE PEER_MESSAGE_BURST=$RATE \
  node bench/peers/node-ws/server.js > "$WORK/peer.out" 2> "$WORK/peer.err" &
PEER_PID=$!
PIDS+=("$PEER_PID")

CALLBOX_URL=$(wait_url "$WORK/callbox.out")
PEER_URL=$(wait_url "$WORK/peer.out")
CALLBOX_TOKEN=$(tr -d '[:space:]' < "$WORK/callbox/admin-token")
echo "== callbox $CALLBOX_URL (pid $CALLBOX_PID), node-ws peer $PEER_URL (pid $PEER_PID); results in $RUN" >&2
sleep 1

echo "{\"startedAt\":\"$(date -u +%FT%TZ)\",\"loadBefore\":$(load),\"connections\":$CONNECTIONS,\"seconds\":$SECONDS_EACH,\"pairs\":$PAIRS,\"windows\":\"$WINDOWS\"}" \
  > "$RUN/run.json"

# Interleaved (Callbox, peer, Callbox, peer) so both see the same machine in the same minutes.
step callbox-idle realtime-idle --url "$CALLBOX_URL" --admin-token "$CALLBOX_TOKEN" --connections "$CONNECTIONS" \
  --pid "$CALLBOX_PID"
step peer-idle realtime-idle --url "$PEER_URL" --admin-token "$PEER_TOKEN" --connections "$CONNECTIONS" \
  --pid "$PEER_PID"
for window in $WINDOWS; do
  for side in callbox peer; do
    if [ "$side" = callbox ]; then url=$CALLBOX_URL token=$CALLBOX_TOKEN; else url=$PEER_URL token=$PEER_TOKEN; fi
    step "$side-messages-w$window" realtime-messages --url "$url" --admin-token "$token" --pairs "$PAIRS" \
      --window "$window" --duration "$SECONDS_EACH"
  done
done
LOAD_AFTER=$(load)

j() { jq -r "$2" "$RUN/$1.json"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "Run $RUN: $(date -u +%FT%TZ), 1-min load $(jq .loadBefore "$RUN/run.json") before, $LOAD_AFTER after"
echo
echo "| scenario | Callbox | node-ws peer | Callbox / peer |"
echo "|---|---|---|---|"
cb_conn=$(j callbox-idle .connections) peer_conn=$(j peer-idle .connections)
cb_bpc=$(j callbox-idle '.bytesPerConnection // 0') peer_bpc=$(j peer-idle '.bytesPerConnection // 0')
printf '| idle authenticated connections held (of %s) | %s | %s | |\n' "$CONNECTIONS" "$cb_conn" "$peer_conn"
printf '| server RSS per connection (delta / held) | %.1f KiB | %.1f KiB | %s |\n' \
  "$(awk -v b="$cb_bpc" 'BEGIN{print b/1024}')" "$(awk -v b="$peer_bpc" 'BEGIN{print b/1024}')" "$(ratio "$cb_bpc" "$peer_bpc")"
printf '| time to open them | %.1f s | %.1f s | |\n' "$(j callbox-idle .connectSeconds)" "$(j peer-idle .connectSeconds)"
for window in $WINDOWS; do
  cb=callbox-messages-w$window pe=peer-messages-w$window
  cb_rate=$(j "$cb" .deliveredPerSecond) pe_rate=$(j "$pe" .deliveredPerSecond)
  printf '| 1:1 delivered msgs/s, %s pairs, %s in flight each | %.0f | %.0f | %s |\n' "$PAIRS" "$window" \
    "$cb_rate" "$pe_rate" "$(ratio "$cb_rate" "$pe_rate")"
  printf '| delivery latency p50 / p99 (ms) | %.1f / %.1f | %.1f / %.1f | p99 %s |\n' \
    "$(j "$cb" .deliveryLatencyMs.p50)" "$(j "$cb" .deliveryLatencyMs.p99)" \
    "$(j "$pe" .deliveryLatencyMs.p50)" "$(j "$pe" .deliveryLatencyMs.p99)" \
    "$(ratio "$(j "$cb" .deliveryLatencyMs.p99)" "$(j "$pe" .deliveryLatencyMs.p99)")"
  printf '| accepted / refused / delivered | %s / %s / %s | %s / %s / %s | |\n' \
    "$(j "$cb" .accepted)" "$(j "$cb" .refused)" "$(j "$cb" .delivered)" \
    "$(j "$pe" .accepted)" "$(j "$pe" .refused)" "$(j "$pe" .delivered)"
done
