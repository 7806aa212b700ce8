#!/usr/bin/env bash
# Every test: formatting, lints, the Rust test suites (unit, integration, property, scale-out against a real
# PostgreSQL and Redis), the browser tests, the real legacy SDK in Node (e2e/legacy), and the shell walk-through
# against a real `callbox serve`.
#
# Needs: the Rust toolchain pinned in rust-toolchain.toml (with rustfmt and clippy), Node 20+ with npm, Python 3,
# and either the Debian packages below already installed or root to apt-get them. Stops with one line otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

missing() { echo "scripts/test.sh: $*" >&2; exit 1; }

# What the tests run, checked before anything starts, so a fresh machine fails in one clear line.
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
command -v cargo > /dev/null ||
  missing "cargo not found: install Rust with rustup (https://rustup.rs), which then uses the toolchain $toolchain pinned in rust-toolchain.toml"
if command -v rustup > /dev/null; then
  rustup toolchain list | grep -q "^$toolchain" ||
    missing "the pinned Rust toolchain $toolchain is not installed: rustup toolchain install $toolchain --component rustfmt clippy"
fi
rustc --version | grep -q "^rustc $toolchain" ||
  missing "rustc is $(rustc --version | cut -d' ' -f2), not the $toolchain pinned in rust-toolchain.toml: install it with rustup"
for component in fmt clippy; do
  cargo "$component" --version > /dev/null 2>&1 ||
    missing "cargo $component is missing: rustup component add --toolchain $toolchain ${component/fmt/rustfmt}"
done
command -v node > /dev/null && command -v npm > /dev/null || missing "node and npm not found: install Node 20 or newer"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || missing "node is $(node --version), the SDK and browser tests need Node 20 or newer"
command -v python3 > /dev/null || missing "python3 not found (scripts/services.sh picks free ports with it): install Python 3"
packages=()
for tool in curl jq openssl xxd; do command -v "$tool" > /dev/null || packages+=("$tool"); done
ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 || packages+=(postgresql)
command -v redis-server > /dev/null || packages+=(redis-server)
[ -x /usr/bin/chromium ] || packages+=(chromium)
command -v turnserver > /dev/null || packages+=(coturn)
if [ ${#packages[@]} -gt 0 ]; then
  command -v apt-get > /dev/null || missing "missing ${packages[*]}, and no apt-get to install them: install them first"
  [ "$(id -u)" -eq 0 ] || missing "missing ${packages[*]}: run as root so that apt-get can install them, or install them first"
fi

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
echo "== the legacy SDK (sinch-rtc 1.4.12) end-to-end"
CALLBOX_BIN="${CARGO_TARGET_DIR:-target}/debug/callbox" bash e2e/legacy.sh
echo "== dashboard in a browser"; bash e2e/dashboard.sh
echo "== README walk-through"
CALLBOX_BIN="${CARGO_TARGET_DIR:-target}/debug/callbox" bash scripts/walkthrough.sh
