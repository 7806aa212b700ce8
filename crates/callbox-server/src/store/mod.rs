//! Persistence behind one trait, [`Store`], so that the domain never sees SQL and a second engine
//! (PostgreSQL) can be added without a second code path for the auth logic.
//!
//! Records hold no usable secret: application secrets are stored sealed by the master key
//! ([`crate::crypto::MasterKey`]), session secrets are derived from it and never stored, passwords are argon2id
//! PHC strings, the admin token is a SHA-256.

pub mod cached;
pub mod sql;

/// The SQLite store (the same implementation as PostgreSQL's, on a file).
pub mod sqlite {
    pub use super::sql::SqliteStore;
}

use async_trait::async_trait;
use callbox_core::IdentityType;
use chrono::{DateTime, Utc};

/// What can go wrong in a store. Domain code maps these to PROTOCOL §7 reasons.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist (in this application).
    #[error("not found")]
    NotFound,
    /// A user with this id already exists in the application.
    #[error("user exists")]
    UserExists,
    /// Refused: retiring the application's only active secret.
    #[error("the last active secret cannot be retired")]
    LastSecret,
    /// The engine cannot be reached or failed; the request may succeed later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// Result alias.
pub type StoreResult<T> = Result<T, StoreError>;

pub use callbox_core::Capability;

/// An application and its settings (secrets are separate rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    /// Public application key.
    pub key: String,
    /// Display name.
    pub name: String,
    /// Whether Callbox-managed sign-up and login are on.
    pub platform_user_auth: bool,
    /// CORS origins (`scheme://host[:port]`, or `*`).
    pub allowed_origins: Vec<String>,
    /// Capabilities sessions may be granted.
    pub capabilities: Vec<Capability>,
    /// Lifetime of tickets without `expiresIn`, seconds.
    pub default_ticket_ttl: u64,
    /// Maximum ticket lifetime, seconds.
    pub max_ticket_ttl: u64,
    /// Session lifetime, seconds.
    pub session_ttl: u64,
    /// Allowed clock skew, seconds.
    pub clock_skew: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// One application secret, sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRecord {
    /// Secret id (`s_` + random), public.
    pub id: String,
    /// Owning application key.
    pub app_key: String,
    /// The secret sealed by the master key (nonce + ciphertext + tag).
    pub sealed: Vec<u8>,
    /// First 8 hex digits of SHA-256 of the secret bytes, for display.
    pub fingerprint: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last time a ticket verified with it (updated at most about once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was retired; retired secrets verify nothing.
    pub retired_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRecord")
            .field("id", &self.id)
            .field("app_key", &self.app_key)
            .field("fingerprint", &self.fingerprint)
            .field("created_at", &self.created_at)
            .field("last_used_at", &self.last_used_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// A platform-managed user.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Owning application key.
    pub app_key: String,
    /// User id (the identity's endpoint); unique within the application.
    pub user_id: String,
    /// `username`, `email` or `number`.
    pub identity_type: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Disabled users cannot log in, and their sessions are revoked.
    pub disabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("app_key", &self.app_key)
            .field("user_id", &self.user_id)
            .field("identity_type", &self.identity_type)
            .field("disabled", &self.disabled)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A session ("instance"). Its secret is derived from the master key, the id and `secret_generation`, and is
/// not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Session id, public.
    pub id: String,
    /// Owning application key.
    pub app_key: String,
    /// The user it belongs to.
    pub user_id: String,
    /// Granted capabilities.
    pub capabilities: Vec<Capability>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// When it was ended or revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Bumped on re-authorization and renewal, which changes the derived secret.
    pub secret_generation: u32,
    /// The identity type the ticket named (what `/v1/user/profile` answers).
    pub identity_type: IdentityType,
}

/// A message as stored in each recipient's inbox (the realtime layer, docs/realtime.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// Server-given id (UUIDv7), public.
    pub id: String,
    /// The application both ends belong to.
    pub app_key: String,
    /// Who sent it.
    pub sender_id: String,
    /// Every recipient the sender named that was accepted (each one's copy lists them all).
    pub recipient_ids: Vec<String>,
    /// The text body.
    pub text: String,
    /// The headers, a JSON object as text (`{}` when none).
    pub headers: String,
    /// Server time of acceptance.
    pub created_at: DateTime<Utc>,
}

/// One entry of a user's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxItem {
    /// A message to this user.
    Message(MessageRecord),
    /// This user sent `message_id`; `recipient_id` confirmed it at `at`.
    Receipt {
        /// The message.
        message_id: String,
        /// The recipient who confirmed it.
        recipient_id: String,
        /// When.
        at: DateTime<Utc>,
    },
}

/// An inbox entry with its place in the user's sequence (the resume cursor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// Increasing per (application, user), from 1.
    pub seq: u64,
    /// What it is.
    pub item: InboxItem,
}

/// A call as stored (docs/calls.md section 5). Written behind the signaling: first when the call is placed, then
/// when it is answered and when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// Server-given id (UUIDv7), public.
    pub id: String,
    /// The application both ends belong to.
    pub app_key: String,
    /// Who called.
    pub caller_id: String,
    /// Who was called.
    pub callee_id: String,
    /// When `call.start` was accepted.
    pub started_at: DateTime<Utc>,
    /// When a callee device answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When it ended (`None` while it goes on, or when its home node died).
    pub ended_at: Option<DateTime<Utc>>,
    /// The end cause word (`hung_up`, `no_answer`, ...), with `ended_at`.
    pub end_cause: Option<String>,
    /// Which side ended it: `caller`, `callee` or `server`, with `ended_at`.
    pub ended_by: Option<String>,
}

/// A call placed by the legacy SDK: its own id, mapped to its call record, and the caller's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyCallRecord {
    /// The id the SDK gave the call (unique per application).
    pub call_id: String,
    /// Its call record (the record's `id` is server-made).
    pub record: CallRecord,
    /// The session that placed it.
    pub caller_session_id: String,
}

/// One change to the call records, applied in order by [`Store::write_calls`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallWrite {
    /// A new call (its `answered_at`/`ended_at` are `None`).
    Placed(CallRecord),
    /// The call was answered at this time.
    Answered {
        /// The call.
        id: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The call ended.
    Ended {
        /// The call.
        id: String,
        /// When.
        at: DateTime<Utc>,
        /// The end cause word.
        cause: String,
        /// `caller`, `callee` or `server`.
        by: String,
    },
}

/// The persistence operations Callbox needs. Every method is tenant-scoped where a tenant applies: a row of
/// another application is [`StoreError::NotFound`].
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Whether the engine answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;

    // Metadata (admin token hash, schema facts).
    /// Reads a metadata value.
    async fn get_meta(&self, name: &str) -> StoreResult<Option<String>>;
    /// Writes a metadata value.
    async fn set_meta(&self, name: &str, value: &str) -> StoreResult<()>;

    // Applications.
    /// Creates an application with its first secret, atomically.
    async fn create_app(&self, app: &AppRecord, first_secret: &SecretRecord) -> StoreResult<()>;
    /// One application.
    async fn get_app(&self, key: &str) -> StoreResult<AppRecord>;
    /// All applications, oldest first.
    async fn list_apps(&self) -> StoreResult<Vec<AppRecord>>;
    /// Replaces an application's settings (not its key or creation time).
    async fn update_app(&self, app: &AppRecord) -> StoreResult<()>;
    /// Deletes an application with its secrets, users and sessions.
    async fn delete_app(&self, key: &str) -> StoreResult<()>;

    // Secrets.
    /// Adds a secret to an application.
    async fn add_secret(&self, secret: &SecretRecord) -> StoreResult<()>;
    /// An application's secrets, newest first; retired ones only when `include_retired`.
    async fn list_secrets(&self, app_key: &str, include_retired: bool) -> StoreResult<Vec<SecretRecord>>;
    /// Retires a secret; [`StoreError::LastSecret`] if it is the only active one.
    async fn retire_secret(&self, app_key: &str, secret_id: &str, at: DateTime<Utc>) -> StoreResult<()>;
    /// Records a use of a secret.
    async fn touch_secret(&self, secret_id: &str, at: DateTime<Utc>) -> StoreResult<()>;

    // Platform-managed users.
    /// Creates a user; [`StoreError::UserExists`] if the id is taken in this application.
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// One user.
    async fn get_user(&self, app_key: &str, user_id: &str) -> StoreResult<UserRecord>;
    /// Users whose id contains `search` (all when `None`), ordered by id, at most `limit`.
    async fn list_users(&self, app_key: &str, search: Option<&str>, limit: u32) -> StoreResult<Vec<UserRecord>>;
    /// Replaces a user's password hash.
    async fn set_password_hash(&self, app_key: &str, user_id: &str, hash: &str) -> StoreResult<()>;
    /// Disables or enables a user.
    async fn set_user_disabled(&self, app_key: &str, user_id: &str, disabled: bool) -> StoreResult<()>;
    /// Deletes a user.
    async fn delete_user(&self, app_key: &str, user_id: &str) -> StoreResult<()>;

    // Sessions.
    /// Creates a session. Durable when this returns.
    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()>;
    /// One session by id (any application: the caller checks the tenant).
    async fn get_session(&self, id: &str) -> StoreResult<SessionRecord>;
    /// Drops any copy of a session kept in memory, so that the next [`Store::get_session`] reads the database
    /// (a cache may hold a copy made before another node renewed it). Nothing to do for an uncached store.
    fn forget_session(&self, _id: &str) {}
    /// Live (unrevoked, unexpired at `now`) sessions of an application, optionally of one user, newest first.
    async fn list_live_sessions(
        &self,
        app_key: &str,
        user_id: Option<&str>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<SessionRecord>>;
    /// Sets a session's expiry and secret generation (renewal, re-authorization).
    async fn update_session(&self, id: &str, expires_at: DateTime<Utc>, secret_generation: u32) -> StoreResult<()>;
    /// Revokes one session of an application; [`StoreError::NotFound`] if it is not there.
    async fn revoke_session(&self, app_key: &str, id: &str, at: DateTime<Utc>) -> StoreResult<()>;
    /// Revokes every unrevoked session of a user; returns how many.
    async fn revoke_user_sessions(&self, app_key: &str, user_id: &str, at: DateTime<Utc>) -> StoreResult<u64>;
    /// Revokes every unrevoked session of an application created before `before`; returns how many.
    async fn revoke_app_sessions_before(
        &self,
        app_key: &str,
        before: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<u64>;

    // Nonces.
    /// Records a nonce as used until `expires_at`. `Ok(true)` the first time, `Ok(false)` for a replay.
    async fn use_nonce(&self, app_key: &str, nonce: &str, expires_at: DateTime<Utc>) -> StoreResult<bool>;
    // Realtime messaging (docs/realtime.md).
    /// Which of `user_ids` are known in the application: a platform-managed user, a user who has (or had, until
    /// purged) a session, or a user with an inbox. Order of the answer is unspecified.
    async fn known_users(&self, app_key: &str, user_ids: &[String]) -> StoreResult<Vec<String>>;
    /// Appends `message` to the inbox of each of its recipients, atomically; durable when this returns. Returns
    /// each recipient's sequence number, in `recipient_ids` order.
    async fn append_message(&self, message: &MessageRecord) -> StoreResult<Vec<u64>>;
    /// Appends several messages in their order (each user's sequence numbers follow it), each answered like
    /// [`Store::append_message`]. Engines with a group commit put them in one commit.
    async fn append_messages(&self, messages: &[MessageRecord]) -> Vec<StoreResult<Vec<u64>>> {
        let mut answers = Vec::with_capacity(messages.len());
        for message in messages {
            answers.push(self.append_message(message).await);
        }
        answers
    }
    /// Marks entry `seq` of `user_id`'s inbox (a message with id `message_id`) as confirmed and, the first time
    /// only, appends the receipt to the sender's inbox, atomically. Returns the sender and the receipt's entry,
    /// or `None` when it was confirmed before. [`StoreError::NotFound`] when no such message entry exists.
    async fn confirm_delivery(
        &self,
        app_key: &str,
        user_id: &str,
        seq: u64,
        message_id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(String, InboxEntry)>>;
    /// `user_id`'s inbox entries after `after_seq`, in sequence order, at most `limit`; with `unconfirmed_only`,
    /// only messages the user has not confirmed.
    async fn read_inbox(
        &self,
        app_key: &str,
        user_id: &str,
        after_seq: u64,
        limit: u32,
        unconfirmed_only: bool,
    ) -> StoreResult<Vec<InboxEntry>>;
    /// The sequence number of message `message_id` in `user_id`'s inbox: the first unconfirmed copy, else the
    /// first; `None` when it is not there (the legacy SDK acknowledges by message id alone).
    async fn find_inbox_message(&self, app_key: &str, user_id: &str, message_id: &str) -> StoreResult<Option<u64>>;
    /// The last sequence number given in `user_id`'s inbox (0 when it has none).
    async fn inbox_last_seq(&self, app_key: &str, user_id: &str) -> StoreResult<u64>;
    /// Retention: removes inbox entries created before `older_than`, and of each user all but the newest
    /// `keep_per_user`; returns how many.
    async fn purge_inbox(&self, older_than: DateTime<Utc>, keep_per_user: u64) -> StoreResult<u64>;
    /// Message copies (one per recipient) committed to `app_key`'s inboxes since `since`, and how many of them
    /// their recipient has confirmed (the dashboard's "last hour").
    async fn message_counts(&self, app_key: &str, since: DateTime<Utc>) -> StoreResult<(u64, u64)>;

    /// Applies call record changes in order, in one transaction (a change to an unknown call does nothing).
    async fn write_calls(&self, writes: &[CallWrite]) -> StoreResult<()>;
    /// `app_key`'s calls, newest first, at most `limit`; with `user_id`, only those it placed or received.
    async fn list_calls(&self, app_key: &str, user_id: Option<&str>, limit: u32) -> StoreResult<Vec<CallRecord>>;

    /// Records the legacy transport `id` of `app_key` with its sorted `participants`, or marks it used at `now` if
    /// it exists. An application deleted meanwhile → `NotFound`.
    async fn put_transport(
        &self,
        app_key: &str,
        id: &str,
        participants: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The participants of legacy transport `id` of `app_key`; unknown (or another application's) → `NotFound`.
    async fn get_transport(&self, app_key: &str, id: &str) -> StoreResult<Vec<String>>;
    /// Retention: removes legacy transports not used since `older_than`, and legacy calls placed before it;
    /// returns how many.
    async fn purge_transports(&self, older_than: DateTime<Utc>) -> StoreResult<u64>;
    /// Records a legacy call and its call record in one transaction. `Ok(false)` when the application already
    /// has a legacy call with this id (nothing is written); an application deleted meanwhile → `NotFound`.
    async fn put_legacy_call(&self, call: &LegacyCallRecord) -> StoreResult<bool>;
    /// The legacy call `call_id` of `app_key`, with its record as it is now; unknown → `NotFound`.
    async fn get_legacy_call(&self, app_key: &str, call_id: &str) -> StoreResult<LegacyCallRecord>;

    /// Forgets nonces that expired before `now` and sessions that expired more than 7 days before it (kept that long
    /// so that their holders are told `session_expired`, not `session_revoked`); returns rows removed.
    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<u64>;
}
