#!/usr/bin/env bash
# Installs what the browser tests need: Debian's Chromium (never a downloaded browser), coturn (the TURN relay of
# e2e/calls.test.mjs) and playwright-core.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v turnserver > /dev/null || need+=(coturn)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" > /dev/null
fi
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)
