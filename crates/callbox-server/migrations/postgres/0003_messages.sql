-- Realtime messaging (docs/realtime.md): every user's inbox of messages and delivery receipts, in the order they
-- were committed for that user.
--
-- One row per (recipient, message) and per receipt: the message's content is copied into each recipient's row
-- (at most maxRecipients copies of a few KiB) so that retention is one DELETE on one table, with no orphaned
-- message rows to collect.

-- The last sequence number given in each user's inbox. Incremented (and its row locked, on PostgreSQL) inside
-- the transaction that adds to the inbox, so that a user's sequence numbers commit in increasing order.
CREATE TABLE inbox_counters (
    app_key  TEXT    NOT NULL REFERENCES apps (key) ON DELETE CASCADE,
    user_id  TEXT    NOT NULL,
    last_seq BIGINT  NOT NULL CHECK (last_seq >= 0),
    PRIMARY KEY (app_key, user_id)
);

-- kind 'message': a message to user_id (peer_id NULL; delivered_at set when the recipient confirms).
-- kind 'receipt': user_id sent message_id and peer_id confirmed it at created_at (text, headers empty).
CREATE TABLE inbox (
    app_key      TEXT    NOT NULL REFERENCES apps (key) ON DELETE CASCADE,
    user_id      TEXT    NOT NULL,
    seq          BIGINT  NOT NULL CHECK (seq > 0),
    kind         TEXT    NOT NULL CHECK (kind IN ('message', 'receipt')),
    message_id   TEXT    NOT NULL,
    sender_id    TEXT    NOT NULL,
    recipients   TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    headers      TEXT    NOT NULL,
    peer_id      TEXT,
    created_at   BIGINT  NOT NULL,
    delivered_at BIGINT,
    PRIMARY KEY (app_key, user_id, seq)
);

-- Retention by age.
CREATE INDEX inbox_by_created ON inbox (created_at);
