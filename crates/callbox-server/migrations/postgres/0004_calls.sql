-- Call records (docs/calls.md section 5): one row per call, written behind the signaling by the call's home node.
-- caller_id belongs to app_key; callee_id is the id the caller typed: a call to an unknown user, or to a user of
-- another application, is placed (and recorded here, in the caller's app) and ends at once as unavailable.
CREATE TABLE calls (
    id          TEXT    PRIMARY KEY,
    app_key     TEXT    NOT NULL REFERENCES apps (key) ON DELETE CASCADE,
    caller_id   TEXT    NOT NULL,
    callee_id   TEXT    NOT NULL,
    started_at  BIGINT NOT NULL,
    answered_at BIGINT,
    ended_at    BIGINT,
    end_cause   TEXT,
    ended_by    TEXT CHECK (ended_by IN ('caller', 'callee', 'server'))
);

-- The admin list: an application's newest calls, and a user's (as caller or as callee).
CREATE INDEX calls_by_app ON calls (app_key, started_at);
CREATE INDEX calls_by_caller ON calls (app_key, caller_id, started_at);
CREATE INDEX calls_by_callee ON calls (app_key, callee_id, started_at);
