#!/usr/bin/env bash
# The README's shell walk-through, run as a test: start Callbox, create an app, sign up a platform-managed user,
# exchange the ticket for a session, make a signed GET /v1/user/profile, switch platform-managed users off and
# see sign-up and login refused with platform_auth_disabled.
#
# Needs: a built `callbox` (CALLBOX_BIN, default target/debug/callbox), curl, jq, openssl, xxd.
set -euo pipefail
CALLBOX_BIN=${CALLBOX_BIN:-target/debug/callbox}
CALLBOX_BIN=$(realpath "$CALLBOX_BIN")
work=$(mktemp -d)
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"

fail() { echo "walkthrough: FAILED: $*" >&2; exit 1; }

# 1. Start the server on a free port; it prints {"event":"listening","url":...} once bound.
"$CALLBOX_BIN" serve --listen 127.0.0.1:0 --data ./walkthrough-data > server.out 2> server.log &
server_pid=$!
for _ in $(seq 100); do [ -s server.out ] && break; sleep 0.1; done
export CALLBOX_URL=$(jq -r .url server.out)
export CALLBOX_DATA=./walkthrough-data      # the CLI reads the admin token from here

# 2. Create an application.
"$CALLBOX_BIN" app create --name "Walkthrough" --json > app.json
KEY=$(jq -r .applicationKey app.json)

# 3. Sign up a platform-managed user: the answer carries a user ticket.
curl -s -X POST "$CALLBOX_URL/v1/users" \
  -H "Authorization: Application $KEY" -H 'Content-Type: application/json' \
  -d '{"password":"correct horse battery","identities":[{"type":"username","endpoint":"alice"}]}' > signup.json
TICKET=$(jq -r .authorization signup.json)
[ "$TICKET" != null ] || fail "sign-up: $(cat signup.json)"

# 4. Exchange the ticket for a session.
curl -s -X POST "$CALLBOX_URL/v1/instance" \
  -H "Authorization: User $TICKET" -H 'Content-Type: application/json' \
  -d '{"version":{"os":"shell"},"services":{"im":true}}' > session.json
SESSION_ID=$(jq -r .id session.json)
SESSION_SECRET=$(jq -r .secret session.json)
[ "$SESSION_ID" != null ] || fail "exchange: $(cat session.json)"

# 5. A signed call (PROTOCOL §4): HMAC-SHA256 over "GET\n\n\nx-timestamp:$TS\n/v1/user/profile", keyed with the
#    base64-decoded session secret. An empty body has an empty Content-MD5 and Content-Type.
TS=$(date -u +%Y-%m-%dT%H:%M:%SZ)
KEY_HEX=$(printf %s "$SESSION_SECRET" | base64 -d | xxd -p -c 256)
SIGNATURE=$(printf 'GET\n\n\nx-timestamp:%s\n/v1/user/profile' "$TS" \
  | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$KEY_HEX" -binary | base64)
curl -s "$CALLBOX_URL/v1/user/profile" \
  -H "Authorization: Instance $SESSION_ID:$SIGNATURE" -H "X-Timestamp: $TS" > profile.json
[ "$(jq -r '.identities[0].endpoint' profile.json)" = alice ] || fail "profile: $(cat profile.json)"

# 6. Switch platform-managed users off: the next sign-up and login are refused.
"$CALLBOX_BIN" app set "$KEY" --platform-user-auth false > /dev/null
curl -s -X POST "$CALLBOX_URL/v1/users" \
  -H "Authorization: Application $KEY" -H 'Content-Type: application/json' \
  -d '{"password":"another password","identities":[{"type":"username","endpoint":"bob"}]}' > signup2.json
[ "$(jq -r .reason signup2.json)" = platform_auth_disabled ] || fail "sign-up while off: $(cat signup2.json)"
curl -s -X POST "$CALLBOX_URL/v1/users/username/alice/authentication" \
  -H "Authorization: Application $KEY" -H 'Content-Type: application/json' \
  -d '{"password":"correct horse battery"}' > login.json
[ "$(jq -r .reason login.json)" = platform_auth_disabled ] || fail "login while off: $(cat login.json)"

# 7. A backend-made ticket still works, and each bad ticket has its own reason.
SECRET=$(jq -r .applicationSecret app.json)
BACKEND=$("$CALLBOX_BIN" ticket mint --key "$KEY" --secret "$SECRET" --user carol | jq -r .userTicket)
curl -s -X POST "$CALLBOX_URL/v1/instance" -H "Authorization: User $BACKEND" -H 'Content-Type: application/json' \
  -d '{}' | jq -e .id > /dev/null || fail "backend ticket refused"

# 8. Nothing secret reached the server's log.
for value in "$SECRET" "$SESSION_SECRET" "$TICKET" "$SIGNATURE" "correct horse battery"; do
  if grep -qF -- "$value" server.log; then fail "a secret value appears in the server log"; fi
done

# 9. SIGTERM drains and exits 0.
kill -TERM "$server_pid"
wait "$server_pid" || fail "server did not exit 0 on SIGTERM"
server_pid=
echo "walkthrough: 1 passed, 0 failed"
