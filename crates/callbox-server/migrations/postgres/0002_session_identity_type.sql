-- The identity type the session's ticket named (username, email or number), so that a signed call can answer
-- the user's profile from the session alone, without a second read. Existing sessions of platform-managed
-- users take their user's type (what the profile answered for them before); the others read as username.
ALTER TABLE sessions ADD COLUMN identity_type TEXT NOT NULL DEFAULT 'username';

UPDATE sessions
SET identity_type = (
    SELECT users.identity_type FROM users WHERE users.app_key = sessions.app_key AND users.user_id = sessions.user_id
)
WHERE EXISTS (SELECT 1 FROM users WHERE users.app_key = sessions.app_key AND users.user_id = sessions.user_id);
