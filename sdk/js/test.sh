#!/usr/bin/env bash
# The JS SDK's tests, from a fresh clone: npm packages, the committed dist/ matches a rebuild (the server embeds
# it), node unit tests, then the browser end-to-end tests in Debian's Chromium against real `callbox serve` and
# `partner-backend` processes (the crash test also needs PostgreSQL and Redis: scripts/test.sh starts them; the
# call test a coturn, which it starts itself).
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)

echo "== sdk/js: npm ci"
npm ci --no-audit --no-fund --loglevel=error

echo "== sdk/js: dist/ is what the sources build"
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
node build.mjs "$fresh"
if ! diff -r dist "$fresh" > /dev/null; then
  diff -r dist "$fresh" | head -20 || true
  echo "sdk/js/dist is stale: run 'npm run build' in sdk/js and commit dist/" >&2
  exit 1
fi

echo "== sdk/js: unit tests"
node --test test/sdk.test.mjs test/realtime.test.mjs test/calls.test.mjs

echo "== sdk/js: legacy-shaped code type-checks against dist/callbox.d.ts"
node node_modules/typescript/bin/tsc --noEmit --strict --target ES2022 --module ES2022 --moduleResolution bundler \
  --lib ES2022,DOM --skipLibCheck test/types.ts

cd "$root"
bash scripts/install-browser.sh
echo "== building callbox and partner-backend"
cargo build --locked -p callbox -p partner-backend
echo "== browser end-to-end tests"
node --test e2e/sdk.test.mjs e2e/messaging.test.mjs e2e/calls.test.mjs e2e/crash.test.mjs
