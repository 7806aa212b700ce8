#!/usr/bin/env bash
# The dashboard in a real browser: installs Debian's Chromium and playwright-core when missing, builds the
# callbox binary, then runs e2e/dashboard.test.mjs against a real `callbox serve`. Screenshots: e2e/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-browser.sh
cargo build -p callbox --locked
export CALLBOX_BIN="${CALLBOX_BIN:-$(realpath "${CARGO_TARGET_DIR:-target}")/debug/callbox}"
node --test --test-concurrency=1 e2e/dashboard.test.mjs
