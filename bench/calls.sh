#!/usr/bin/env bash
# The calls side-by-side of docs/benchmarks.md (issue 12): call setups a second through the signaling alone,
# Callbox's /v1/realtime against the Node 20 + ws + better-sqlite3 peer (bench/peers/node-ws), in one sitting,
# with the same load generator (`callbox-loadgen realtime-calls`: CALLS_PAIRS caller/callee pairs, each running
# start -> incoming -> answer -> answered -> a candidate each way -> hangup -> ended on both, back to back).
# Builds the release binaries, starts both servers on 127.0.0.1:0 with temporary data, runs Callbox, peer,
# Callbox, peer, ... (CALLS_ROUNDS rounds of CALLS_SECONDS each, interleaved so both see the same machine in the
# same minutes), writes the JSON results to bench/results/calls-<UTC time>/ and prints the table.
#
#   bash bench/calls.sh
#   CALLS_PAIRS=4 CALLS_SECONDS=3 CALLS_ROUNDS=1 bash bench/calls.sh     # a quick check
#
# Both servers get the per-session call.start limit (30 a minute, burst 10 by default on both) raised so that it
# does not cap the run: CALLBOX_CALLS__ATTEMPTS_PER_MINUTE / _ATTEMPT_BURST and PEER_CALL_ATTEMPTS_PER_MINUTE /
# _BURST. PEER_CALL_RECORDS=off runs the peer without call records (an experiment on what they cost it; the
# comparison keeps them on, like Callbox). Loopback only; the load generator refuses any other target.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PAIRS=${CALLS_PAIRS:-16}
SECONDS_EACH=${CALLS_SECONDS:-10}
ROUNDS=${CALLS_ROUNDS:-2}
RATE=1000000


RUN=bench/results/calls-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN"
# WORK, PIDS (killed on exit) and wait_url.
source bench/lib.sh
build_realtime_bench

CALLBOX_DEMO_APP=false CALLBOX_CALLS__ATTEMPTS_PER_MINUTE=$RATE CALLBOX_CALLS__ATTEMPT_BURST=$RATE \
  RUST_LOG=warn "$TARGET_DIR/release/callbox" serve --listen 127.0.0.1:0 --data "$WORK/callbox" \
  > "$WORK/callbox.out" 2> "$WORK/callbox.err" &
CALLBOX_PID=$!
PIDS+=("$CALLBOX_PID")
PEER_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
PEER_ADMIN_TOKEN=$PEER_TOKEN PEER_DB="$WORK/peer-ws.db" PEER_CALL_ATTEMPTS_PER_MINUTE=$RATE \
  PEER_CALL_ATTEMPT_BURST=$RATE PEER_CALL_RECORDS=${PEER_CALL_RECORDS:-on} node bench/peers/node-ws/server.js > "$WORK/peer.out" 2> "$WORK/peer.err" &
PEER_PID=$!
PIDS+=("$PEER_PID")

CALLBOX_URL=$(wait_url "$WORK/callbox.out")
PEER_URL=$(wait_url "$WORK/peer.out")
CALLBOX_TOKEN=$(tr -d '[:space:]' < "$WORK/callbox/admin-token")
echo "== callbox $CALLBOX_URL (pid $CALLBOX_PID), node-ws peer $PEER_URL (pid $PEER_PID); results in $RUN" >&2
sleep 1

echo "{\"startedAt\":\"$(date -u +%FT%TZ)\",\"loadBefore\":$(load),\"pairs\":$PAIRS,\"seconds\":$SECONDS_EACH,\"rounds\":$ROUNDS,\"peerCallRecords\":\"${PEER_CALL_RECORDS:-on}\"}" \
  > "$RUN/run.json"

for round in $(seq 1 "$ROUNDS"); do
  step "callbox-calls-$round" realtime-calls --url "$CALLBOX_URL" --admin-token "$CALLBOX_TOKEN" --pairs "$PAIRS" \
    --duration "$SECONDS_EACH"
  step "peer-calls-$round" realtime-calls --url "$PEER_URL" --admin-token "$PEER_TOKEN" --pairs "$PAIRS" \
    --duration "$SECONDS_EACH"
done
LOAD_AFTER=$(load)

# The call records both wrote behind the signaling (a record per setup, each ended), as a check of equal work.
sleep 1
records() { sqlite3 -readonly "$1" "SELECT count(*) || ' / ' || count(ended_at) FROM calls" 2> /dev/null || echo '?'; }

j() { jq -r "$2" "$RUN/$1.json"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "Run $RUN: $(date -u +%FT%TZ), 1-min load $(jq .loadBefore "$RUN/run.json") before, $LOAD_AFTER after"
echo "$PAIRS pairs, ${SECONDS_EACH} s per run, peer call records ${PEER_CALL_RECORDS:-on}, offer $(j callbox-calls-1 .offerBytes) B, answer $(j callbox-calls-1 .answerBytes) B"
echo
echo "| round | load before (Callbox / peer) | Callbox setups/s | peer setups/s | Callbox / peer | setup p50 / p99 ms Callbox | peer | p99 Callbox / peer |"
echo "|---|---|---:|---:|---:|---|---|---:|"
for round in $(seq 1 "$ROUNDS"); do
  cb=callbox-calls-$round pe=peer-calls-$round
  cb_rate=$(j "$cb" .setupsPerSecond) pe_rate=$(j "$pe" .setupsPerSecond)
  printf '| %s | %s / %s | %.0f | %.0f | **%s** | %.2f / %.2f | %.2f / %.2f | %s |\n' "$round" \
    "$(cat "$RUN/$cb.load")" "$(cat "$RUN/$pe.load")" "$cb_rate" "$pe_rate" "$(ratio "$cb_rate" "$pe_rate")" \
    "$(j "$cb" .setupLatencyMs.p50)" "$(j "$cb" .setupLatencyMs.p99)" \
    "$(j "$pe" .setupLatencyMs.p50)" "$(j "$pe" .setupLatencyMs.p99)" \
    "$(ratio "$(j "$cb" .setupLatencyMs.p99)" "$(j "$pe" .setupLatencyMs.p99)")"
done
echo
echo "completed (rate limited): Callbox $(for r in $(seq 1 "$ROUNDS"); do printf '%s (%s) ' "$(j callbox-calls-"$r" .completed)" "$(j callbox-calls-"$r" .rateLimited)"; done)," \
  "peer $(for r in $(seq 1 "$ROUNDS"); do printf '%s (%s) ' "$(j peer-calls-"$r" .completed)" "$(j peer-calls-"$r" .rateLimited)"; done)"
echo "call records written / ended: Callbox $(records "$WORK/callbox/callbox.db"), peer $(records "$WORK/peer-ws.db")"
