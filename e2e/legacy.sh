#!/usr/bin/env bash
# The real legacy SDK (sinch-rtc 1.4.12, Node build) against a real `callbox serve`: e2e/legacy/messaging.test.mjs
# (and shims.test.mjs, the Node shims it needs, without a server), e2e/legacy/interop.test.mjs: a legacy client
# and a client of Callbox's own SDK in Debian's Chromium (playwright-core from e2e/package-lock.json) on one server,
# and e2e/legacy/calls.test.mjs: legacy app-to-app voice calls (WebRTC in Node, a real coturn for the TURN test).
# Installs the SDK, sinch-ticketgen and wrtc from the npm registry with `npm ci` (e2e/legacy/package-lock.json)
# into e2e/legacy/node_modules (git-ignored), npm's download cache in ~/.cache/callbox-legacy-sdk; builds the
# callbox binary unless CALLBOX_BIN names one. Needs root (the SDK only talks to port 443), openssl and Node 20+.
# Extra arguments go to `node --test` (e.g. --test-name-pattern=group).
set -euo pipefail
cd "$(dirname "$0")/.."

missing() { echo "e2e/legacy.sh: $*" >&2; exit 1; }
command -v node > /dev/null && command -v npm > /dev/null || missing "node and npm not found: install Node 20 or newer"
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || missing "node is $(node --version); Node 20 or newer is needed"
command -v openssl > /dev/null || missing "openssl not found (the test makes its TLS certificate with it)"
[ -x /usr/bin/chromium ] || missing "/usr/bin/chromium not found (interop.test.mjs): bash scripts/install-browser.sh"
[ -x /usr/bin/turnserver ] || missing "/usr/bin/turnserver not found (calls.test.mjs): apt-get install coturn"
[ "$(id -u)" -eq 0 ] || missing "run as root: the legacy SDK connects to port 443 only, so the test listens there"

cache="${CALLBOX_LEGACY_SDK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/callbox-legacy-sdk}"
echo "== legacy SDK packages (npm ci, cache $cache)"
(cd e2e/legacy && npm ci --no-audit --no-fund --loglevel=error --prefer-offline --cache "$cache/npm")
# playwright-core for interop.test.mjs, which Node finds in e2e/node_modules (the browser tests' packages).
(cd e2e && npm ci --no-audit --no-fund --loglevel=error --prefer-offline)

if [ -z "${CALLBOX_BIN:-}" ]; then
  echo "== cargo build -p callbox"
  cargo build -p callbox --locked
  CALLBOX_BIN="$(realpath "${CARGO_TARGET_DIR:-target}")/debug/callbox"
fi
[ -x "$CALLBOX_BIN" ] || missing "CALLBOX_BIN=$CALLBOX_BIN is not an executable"
CALLBOX_BIN=$(realpath "$CALLBOX_BIN")
export CALLBOX_BIN

cd e2e/legacy
# Callbox's own TLS (LEGACY_E2E_TLS unset: whatever the binary can do), then, unless LEGACY_E2E_TLS says which,
# the same server tests with callbox behind a TLS-terminating proxy (the realtime host from the Host header).
echo "== legacy SDK end-to-end ($CALLBOX_BIN)"
node --test --test-concurrency=1 "$@" shims.test.mjs messaging.test.mjs interop.test.mjs calls.test.mjs
if [ -z "${LEGACY_E2E_TLS:-}" ]; then
  echo "== legacy SDK end-to-end, callbox behind a TLS proxy"
  LEGACY_E2E_TLS=proxy node --test --test-concurrency=1 "$@" messaging.test.mjs interop.test.mjs calls.test.mjs
fi
