-- Callbox schema, version 1 (PostgreSQL): the SQLite file's shapes, with BIGINT for every integer and BYTEA for
-- blobs. user_id orders by code point (COLLATE "C"), as SQLite's BINARY collation does.
--
-- Conventions, shared with the PostgreSQL twin so that both engines hold the same shapes:
-- * every time is BIGINT epoch milliseconds, UTC (BIGINT in PostgreSQL);
-- * booleans are BIGINT 0/1 with a CHECK;
-- * lists are TEXT: allowed_origins a JSON array of strings, capabilities the sorted comma list of
--   `Capability::join`;
-- * every row of an application goes with it (ON DELETE CASCADE; the store turns foreign keys on).
-- No SQLite-only syntax (no WITHOUT ROWID, no STRICT) so the file ports by changing types only.

-- Server-wide facts: the admin token's SHA-256, schema notes.
CREATE TABLE meta (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE apps (
    key                TEXT    NOT NULL PRIMARY KEY,
    name               TEXT    NOT NULL,
    platform_user_auth BIGINT NOT NULL CHECK (platform_user_auth IN (0, 1)),
    allowed_origins    TEXT    NOT NULL,
    capabilities       TEXT    NOT NULL,
    default_ticket_ttl BIGINT NOT NULL CHECK (default_ticket_ttl >= 0),
    max_ticket_ttl     BIGINT NOT NULL CHECK (max_ticket_ttl >= 0),
    session_ttl        BIGINT NOT NULL CHECK (session_ttl >= 0),
    clock_skew         BIGINT NOT NULL CHECK (clock_skew >= 0),
    created_at         BIGINT NOT NULL
);

-- list_apps: oldest first.
CREATE INDEX apps_by_created ON apps (created_at);

-- Application secrets, sealed by the master key. A secret is active while retired_at IS NULL.
CREATE TABLE app_secrets (
    id           TEXT    NOT NULL PRIMARY KEY,
    app_key      TEXT    NOT NULL REFERENCES apps (key) ON DELETE CASCADE,
    sealed       BYTEA    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    retired_at   BIGINT
);

-- list_secrets (newest first), the active count of retire_secret, and the cascade.
CREATE INDEX app_secrets_by_app ON app_secrets (app_key, created_at);

-- Platform-managed users; the id is unique within its application only.
CREATE TABLE users (
    app_key       TEXT    NOT NULL REFERENCES apps (key) ON DELETE CASCADE,
    user_id       TEXT    COLLATE "C" NOT NULL,
    identity_type TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    disabled      BIGINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (app_key, user_id)
);

-- Sessions ("instances"). user_id is not a foreign key: sessions also belong to users that only exist
-- in the customer's backend (ticket sign-in).
CREATE TABLE sessions (
    id                TEXT    NOT NULL PRIMARY KEY,
    app_key           TEXT    NOT NULL REFERENCES apps (key) ON DELETE CASCADE,
    user_id           TEXT    NOT NULL,
    capabilities      TEXT    NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    revoked_at        BIGINT,
    secret_generation BIGINT NOT NULL DEFAULT 0 CHECK (secret_generation >= 0)
);

-- list_live_sessions and revoke_user_sessions for one user.
CREATE INDEX sessions_by_user ON sessions (app_key, user_id, created_at);
-- list_live_sessions for the whole application, revoke_app_sessions_before, and the cascade.
CREATE INDEX sessions_by_created ON sessions (app_key, created_at);
-- purge_expired.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- Ticket nonces seen, remembered until expires_at (replay protection).
CREATE TABLE used_nonces (
    app_key    TEXT    NOT NULL REFERENCES apps (key) ON DELETE CASCADE,
    nonce      TEXT    NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (app_key, nonce)
);

-- purge_expired.
CREATE INDEX used_nonces_by_expiry ON used_nonces (expires_at);
