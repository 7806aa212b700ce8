-- The legacy SDK's calls (docs/legacy-sdk.md section 6): the SDK names a call with an id of its own (a UUID it
-- makes before POST /v1/calls/data), which frames and call reports carry. This maps it, per application, to the
-- server-made id of the call record and keeps the caller's session, whose signal channel the callee answers on.
-- Any node reads it to relay a frame of the call; the call's AES key is derived from the record id, never stored.
CREATE TABLE legacy_calls (
    app_key           TEXT    NOT NULL REFERENCES apps (key) ON DELETE CASCADE,
    call_id           TEXT    NOT NULL,
    record_id         TEXT    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    caller_session_id TEXT    NOT NULL,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (app_key, call_id)
);

-- Retention: purged with the legacy transports.
CREATE INDEX legacy_calls_by_age ON legacy_calls (created_at);
