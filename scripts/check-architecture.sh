#!/usr/bin/env bash
# Fails when an import points the wrong way between the floors of docs/architecture.md:
#   http/ (handlers)  ->  domain/ (+ audit, passwords, limits, crypto)  ->  store/  ;  everything -> callbox-core
# - the domain and its services speak no HTTP: no axum, tower, hyper, utoipa or callbox-wire, no serde derives;
# - handlers (http/, and the realtime connection) reach the store only through the domain: they name no
#   crate::store and no `.store` field;
# - the pure core reads no clock and does no I/O: it builds alone without chrono's `clock` feature, tokio or sqlx.
set -euo pipefail
cd "$(dirname "$0")/.."
server=crates/callbox-server/src
failed=0
fail() { echo "architecture: $*" >&2; failed=1; }

domain_files=("$server"/domain "$server"/audit.rs "$server"/passwords.rs "$server"/limits.rs "$server"/crypto.rs)
if hits=$(grep -rnE '\b(axum|tower|tower_http|hyper|utoipa|callbox_wire)::|derive\([^)]*(Serialize|Deserialize|ToSchema)' "${domain_files[@]}"); then
  fail "the domain must not speak HTTP or the wire (axum/tower/hyper/utoipa/callbox_wire/serde derives):"; echo "$hits" >&2
fi
front_ends=("$server"/http "$server"/realtime/connection.rs "$server"/realtime/admin.rs "$server"/realtime/frames.rs "$server"/realtime/legacy.rs)
if hits=$(grep -rnE 'crate::store\b|\.store\b|callbox_server::store|\bStore\b' "${front_ends[@]}"); then
  fail "http/ and the realtime connection must reach the store only through the domain:"; echo "$hits" >&2
fi
if hits=$(grep -rnE 'Utc::now|Local::now|SystemTime::now|\btokio\b|\bsqlx\b|std::fs|std::net' crates/callbox-core/src); then
  fail "the core must not read the clock or do I/O:"; echo "$hits" >&2
fi
if hits=$(grep -rnE --exclude=clock.rs 'Utc::now\(' "$server"/domain); then
  fail "the domain reads time from its Clock, not the system clock:"; echo "$hits" >&2
fi
# Built on its own (features are unified only across the packages being built), the core must not need `clock`.
if ! out=$(cargo check -p callbox-core --lib --locked --quiet 2>&1); then
  fail "callbox-core does not build on its own (without chrono's clock feature):"; echo "$out" >&2
fi
if grep -qE '^chrono = .*"clock"' Cargo.toml; then
  fail "the workspace's chrono must not turn on \`clock\` for everyone (the core would get it)"
fi
[ "$failed" = 0 ] && echo "architecture: imports point the documented way"
exit "$failed"
