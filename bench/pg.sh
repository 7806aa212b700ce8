#!/usr/bin/env bash
# PostgreSQL beside SQLite, measured the same way as bench/run.sh: one `callbox serve` on SQLite and one on a
# throw-away PostgreSQL + Redis (scripts/services.sh), ticket exchanges and Instance-signed calls, bounded in time
# with a fixed number of connections, in one run. Loopback only.
#
#   bash bench/pg.sh                       # 10 s per scenario, 32 connections
#   BENCH_SECONDS=5 BENCH_CONNECTIONS=16 bash bench/pg.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

echo "== building release binaries" >&2
cargo build --release --locked -p callbox -p callbox-loadgen >&2
LOADGEN=$TARGET_DIR/release/callbox-loadgen
RUN=bench/results/pg-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN"
WORK=$(mktemp -d)
PIDS=()
source scripts/services.sh
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  services_stop
  rm -rf "$WORK"
}
trap cleanup EXIT
services_start >&2

start() { # name, extra args...
  local name=$1
  shift
  RUST_LOG=warn CALLBOX_DEMO_APP=false "$TARGET_DIR/release/callbox" serve --listen 127.0.0.1:0 \
    --data "$WORK/$name" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
  PIDS+=("$!")
  for _ in $(seq 200); do grep -q listening "$WORK/$name.out" 2> /dev/null && break; sleep 0.05; done
  sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$WORK/$name.out" | head -n 1
}
SQLITE_URL=$(start sqlite)
PG_URL=$(start postgres --database-url "$CALLBOX_TEST_DATABASE_URL" --redis-url "$CALLBOX_TEST_REDIS_URL")
SQLITE_TOKEN=$(tr -d '[:space:]' < "$WORK/sqlite/admin-token")
PG_TOKEN=$(tr -d '[:space:]' < "$WORK/postgres/admin-token")

for scenario in exchange signed; do
  for engine in sqlite postgres; do
    if [ $engine = sqlite ]; then url=$SQLITE_URL token=$SQLITE_TOKEN; else url=$PG_URL token=$PG_TOKEN; fi
    echo "== $scenario on $engine" >&2
    "$LOADGEN" run --scenario $scenario --url "$url" --admin-token "$token" --connections "$CONNECTIONS" \
      --duration "$SECONDS_EACH" --out "$RUN/$scenario-$engine.json" > /dev/null
  done
done

python3 - "$RUN" <<'PY' | tee "$RUN/table.md"
import json, sys, pathlib
run = pathlib.Path(sys.argv[1])
print(f"| scenario | SQLite req/s | PostgreSQL req/s | PostgreSQL / SQLite | SQLite p50 / p99 ms | PostgreSQL p50 / p99 ms |")
print("|---|---|---|---|---|---|")
for scenario in ["exchange", "signed"]:
    s = json.loads((run / f"{scenario}-sqlite.json").read_text())
    p = json.loads((run / f"{scenario}-postgres.json").read_text())
    def ms(r, k): return r["latencyMs"][k]
    print(f"| {scenario} | {s['okPerSecond']:.0f} | {p['okPerSecond']:.0f} | "
          f"{p['okPerSecond'] / s['okPerSecond']:.2f} | "
          f"{ms(s,'p50'):.2f} / {ms(s,'p99'):.2f} | {ms(p,'p50'):.2f} / {ms(p,'p99'):.2f} |")
PY
