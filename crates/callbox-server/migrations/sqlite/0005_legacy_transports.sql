-- The legacy SDK's transports (docs/legacy.md section 4): a set of users of one application who exchange messages.
-- The id is derived from the app and the sorted participants, so every node makes the same id for the same set
-- and a repeated POST /v1/transport is an upsert. The AES key is derived from the id with the master key and is
-- never stored.
CREATE TABLE legacy_transports (
    app_key      TEXT    NOT NULL REFERENCES apps (key) ON DELETE CASCADE,
    id           TEXT    NOT NULL,
    participants TEXT    NOT NULL,
    used_at      INTEGER NOT NULL,
    PRIMARY KEY (app_key, id)
);

-- Retention: transports unused for longer than the inbox keeps messages are purged with them.
CREATE INDEX legacy_transports_by_use ON legacy_transports (used_at);
