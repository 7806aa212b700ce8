#!/usr/bin/env bash
# Installs what the browser tests need: Debian's Chromium (never a downloaded browser) and playwright-core.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium > /dev/null
fi
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)
