#!/usr/bin/env bash
# Every test: formatting, lints, the Rust test suites (unit, integration, property, scale-out against a real
# PostgreSQL and Redis), the browser tests, and the shell walk-through against a real `callbox serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The walk-through needs a few everyday tools; install the missing ones on a fresh Debian machine.
need=()
for tool in curl jq openssl xxd; do command -v "$tool" > /dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" > /dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== architecture (docs/architecture.md)"
bash scripts/check-architecture.sh
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== PostgreSQL and Redis for the scale-out tests"
source scripts/services.sh
trap services_stop EXIT
services_start
export CALLBOX_REQUIRE_SCALE_TESTS=1
echo "== cargo test"
cargo test --workspace --locked
echo "== JS SDK and browser end-to-end"; bash sdk/js/test.sh
echo "== dashboard in a browser"; bash e2e/dashboard.sh
echo "== README walk-through"
CALLBOX_BIN="${CARGO_TARGET_DIR:-target}/debug/callbox" bash scripts/walkthrough.sh
