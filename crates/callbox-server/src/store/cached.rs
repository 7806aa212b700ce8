//! [`CachedStore`]: a read cache in front of another [`Store`] for the reads on every request: a session (each
//! signed call); an application, its active secrets and the ticket's user (each ticket exchange, which asks
//! whether the user is a disabled platform user); the list of all applications (each browser request's CORS
//! check).
//!
//! Why: with SQLite every statement crosses to sqlx's connection thread and back, and with PostgreSQL it is a
//! network round trip; on a signed call that hand-off cost several times the HMAC work (docs/benchmarks.md).
//!
//! Coherence:
//! - **On this node, exact.** Every write that changes a cached row goes through this store and drops the copy
//!   before returning, so the next read here sees the change. A read that raced with such a write cannot leave a
//!   stale copy behind: writers bump an epoch after writing, and a reader that sees the epoch move while it read
//!   drops what it inserted.
//! - **Across nodes (PostgreSQL), bounded.** Another node's write is seen when the copy here ages out: after at
//!   most [`CacheConfig`]'s `ttl_milliseconds` (the cache is off by default on PostgreSQL; an operator who turns
//!   it on chooses that bound). Expiry is never stale: the domain compares `expires_at` with the clock on every
//!   call. A renewal or re-authorization made on another node changes the session's secret; the domain re-reads a
//!   cached session whose signature does not verify (see [`Store::forget_session`]), so a client is never refused
//!   for using its new secret.
//!
//! Unknown sessions and applications are not remembered (they always reach the database); unknown users are
//! (most exchanges are for users of the customer's backend, who are not platform users), and creating the user
//! drops that answer.

use super::{
    AppRecord, CallRecord, CallWrite, InboxEntry, LegacyCallRecord, MessageRecord, SecretRecord, SessionRecord, Store,
    StoreError, StoreResult, UserRecord,
};
use crate::config::CacheConfig;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use moka::sync::Cache;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Most applications (and, separately, secret lists) kept.
const MAX_APPS: u64 = 10_000;

/// A [`Store`] that answers repeated reads of sessions, applications and active secrets from memory.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    sessions: Cache<String, SessionRecord>,
    apps: Cache<String, AppRecord>,
    active_secrets: Cache<String, Vec<SecretRecord>>,
    /// Users by `app_key + "\n" + user_id` (neither can hold a control character), `None` for "no such user":
    /// every exchange asks whether its user is a disabled platform user, and most users of backend tickets are
    /// not platform users at all.
    users: Cache<String, Option<UserRecord>>,
    /// The list of every application under one key: browsers' CORS checks read it on each request.
    all_apps: Cache<(), Vec<AppRecord>>,
    /// Bumped after every write that drops cached copies (see the module docs).
    epoch: AtomicU64,
    ttl: Duration,
}

impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("inner", &self.inner)
            .field("ttl", &self.ttl)
            .field("sessions", &self.sessions.entry_count())
            .field("apps", &self.apps.entry_count())
            .finish_non_exhaustive()
    }
}

impl CachedStore {
    /// Wraps `inner`; copies live at most `ttl` and at most `max_sessions` sessions are kept.
    pub fn new(inner: Arc<dyn Store>, ttl: Duration, max_sessions: u64) -> Self {
        Self {
            inner,
            sessions: Cache::builder().max_capacity(max_sessions).time_to_live(ttl).build(),
            apps: Cache::builder().max_capacity(MAX_APPS).time_to_live(ttl).build(),
            active_secrets: Cache::builder().max_capacity(MAX_APPS).time_to_live(ttl).build(),
            all_apps: Cache::builder().max_capacity(1).time_to_live(ttl).build(),
            users: Cache::builder().max_capacity(max_sessions).time_to_live(ttl).build(),
            epoch: AtomicU64::new(0),
            ttl,
        }
    }

    /// `inner` behind a cache as `config` says, or `inner` itself when the cache is off (`ttl_milliseconds = 0`).
    /// `default_ttl` applies when the configuration leaves the age unset (it depends on the engine).
    pub fn wrap(inner: Arc<dyn Store>, config: &CacheConfig, default_ttl: Duration) -> Arc<dyn Store> {
        let ttl = config.ttl_milliseconds.map_or(default_ttl, Duration::from_millis);
        if ttl.is_zero() || config.max_sessions == 0 {
            inner
        } else {
            Arc::new(Self::new(inner, ttl, config.max_sessions))
        }
    }

    /// Reads through `cache`: a hit is answered from memory; a miss reads `load` and keeps the answer unless a
    /// write ran meanwhile.
    async fn read_through<K, Q, T, F>(&self, cache: &Cache<K, T>, key: &Q, load: impl FnOnce() -> F) -> StoreResult<T>
    where
        K: std::borrow::Borrow<Q> + std::hash::Hash + Eq + Send + Sync + 'static,
        Q: ToOwned<Owned = K> + std::hash::Hash + Eq + ?Sized,
        T: Clone + Send + Sync + 'static,
        F: std::future::Future<Output = StoreResult<T>>,
    {
        if let Some(hit) = cache.get(key) {
            return Ok(hit);
        }
        let before = self.epoch.load(Ordering::SeqCst);
        let value = load().await?;
        cache.insert(key.to_owned(), value.clone());
        if self.epoch.load(Ordering::SeqCst) != before {
            // A write may have landed between our read and our insert: the copy could be older than it.
            cache.invalidate(key);
        }
        Ok(value)
    }

    /// Marks that cached copies were dropped after a write (call after the write and after dropping).
    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn drop_session(&self, id: &str) {
        self.bump();
        self.sessions.invalidate(id);
    }

    fn drop_all_sessions(&self) {
        self.bump();
        self.sessions.invalidate_all();
    }

    fn user_key(app_key: &str, user_id: &str) -> String {
        format!("{app_key}\n{user_id}")
    }

    fn drop_user(&self, app_key: &str, user_id: &str) {
        self.bump();
        self.users.invalidate(&Self::user_key(app_key, user_id));
    }

    fn drop_app(&self, key: &str) {
        self.bump();
        self.apps.invalidate(key);
        self.active_secrets.invalidate(key);
        self.all_apps.invalidate_all();
    }
}

#[async_trait]
impl Store for CachedStore {
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }

    async fn get_meta(&self, name: &str) -> StoreResult<Option<String>> {
        self.inner.get_meta(name).await
    }

    async fn set_meta(&self, name: &str, value: &str) -> StoreResult<()> {
        self.inner.set_meta(name, value).await
    }

    async fn create_app(&self, app: &AppRecord, first_secret: &SecretRecord) -> StoreResult<()> {
        let result = self.inner.create_app(app, first_secret).await;
        self.drop_app(&app.key);
        result
    }

    async fn get_app(&self, key: &str) -> StoreResult<AppRecord> {
        self.read_through(&self.apps, key, || self.inner.get_app(key)).await
    }

    async fn list_apps(&self) -> StoreResult<Vec<AppRecord>> {
        self.read_through(&self.all_apps, &(), || self.inner.list_apps()).await
    }

    async fn update_app(&self, app: &AppRecord) -> StoreResult<()> {
        let result = self.inner.update_app(app).await;
        self.drop_app(&app.key);
        result
    }

    async fn delete_app(&self, key: &str) -> StoreResult<()> {
        let result = self.inner.delete_app(key).await;
        self.drop_app(key);
        self.drop_all_sessions();
        self.users.invalidate_all();
        result
    }

    async fn add_secret(&self, secret: &SecretRecord) -> StoreResult<()> {
        let result = self.inner.add_secret(secret).await;
        self.drop_app(&secret.app_key);
        result
    }

    async fn list_secrets(&self, app_key: &str, include_retired: bool) -> StoreResult<Vec<SecretRecord>> {
        if include_retired {
            return self.inner.list_secrets(app_key, true).await;
        }
        self.read_through(&self.active_secrets, app_key, || self.inner.list_secrets(app_key, false)).await
    }

    async fn retire_secret(&self, app_key: &str, secret_id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let result = self.inner.retire_secret(app_key, secret_id, at).await;
        self.drop_app(app_key);
        result
    }

    async fn touch_secret(&self, secret_id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        // Only `last_used_at` changes, which no cached reader looks at; admin listings read uncached.
        self.inner.touch_secret(secret_id, at).await
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        let result = self.inner.create_user(user).await;
        self.drop_user(&user.app_key, &user.user_id);
        result
    }

    async fn get_user(&self, app_key: &str, user_id: &str) -> StoreResult<UserRecord> {
        let key = Self::user_key(app_key, user_id);
        let found = self
            .read_through(&self.users, key.as_str(), || async {
                match self.inner.get_user(app_key, user_id).await {
                    Ok(user) => Ok(Some(user)),
                    Err(StoreError::NotFound) => Ok(None),
                    Err(other) => Err(other),
                }
            })
            .await?;
        found.ok_or(StoreError::NotFound)
    }

    async fn list_users(&self, app_key: &str, search: Option<&str>, limit: u32) -> StoreResult<Vec<UserRecord>> {
        self.inner.list_users(app_key, search, limit).await
    }

    async fn set_password_hash(&self, app_key: &str, user_id: &str, hash: &str) -> StoreResult<()> {
        let result = self.inner.set_password_hash(app_key, user_id, hash).await;
        self.drop_user(app_key, user_id);
        result
    }

    async fn set_user_disabled(&self, app_key: &str, user_id: &str, disabled: bool) -> StoreResult<()> {
        let result = self.inner.set_user_disabled(app_key, user_id, disabled).await;
        self.drop_user(app_key, user_id);
        result
    }

    async fn delete_user(&self, app_key: &str, user_id: &str) -> StoreResult<()> {
        let result = self.inner.delete_user(app_key, user_id).await;
        self.drop_user(app_key, user_id);
        result
    }

    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()> {
        // Not cached here: most sessions are exchanged and then used by another request, and a session made by
        // a client that never calls back should not push out one that does.
        self.inner.create_session(session).await
    }

    async fn get_session(&self, id: &str) -> StoreResult<SessionRecord> {
        self.read_through(&self.sessions, id, || self.inner.get_session(id)).await
    }

    fn forget_session(&self, id: &str) {
        self.sessions.invalidate(id);
    }

    async fn list_live_sessions(
        &self,
        app_key: &str,
        user_id: Option<&str>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<SessionRecord>> {
        self.inner.list_live_sessions(app_key, user_id, now, limit).await
    }

    async fn update_session(&self, id: &str, expires_at: DateTime<Utc>, secret_generation: u32) -> StoreResult<()> {
        let result = self.inner.update_session(id, expires_at, secret_generation).await;
        self.drop_session(id);
        result
    }

    async fn revoke_session(&self, app_key: &str, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let result = self.inner.revoke_session(app_key, id, at).await;
        self.drop_session(id);
        result
    }

    async fn revoke_user_sessions(&self, app_key: &str, user_id: &str, at: DateTime<Utc>) -> StoreResult<u64> {
        // Which ids changed is not known here; bulk revocations are rare admin actions, so drop every copy.
        let result = self.inner.revoke_user_sessions(app_key, user_id, at).await;
        self.drop_all_sessions();
        result
    }

    async fn revoke_app_sessions_before(
        &self,
        app_key: &str,
        before: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let result = self.inner.revoke_app_sessions_before(app_key, before, at).await;
        self.drop_all_sessions();
        result
    }

    async fn use_nonce(&self, app_key: &str, nonce: &str, expires_at: DateTime<Utc>) -> StoreResult<bool> {
        self.inner.use_nonce(app_key, nonce, expires_at).await
    }

    async fn known_users(&self, app_key: &str, user_ids: &[String]) -> StoreResult<Vec<String>> {
        self.inner.known_users(app_key, user_ids).await
    }

    async fn append_message(&self, message: &MessageRecord) -> StoreResult<Vec<u64>> {
        self.inner.append_message(message).await
    }

    async fn append_messages(&self, messages: &[MessageRecord]) -> Vec<StoreResult<Vec<u64>>> {
        self.inner.append_messages(messages).await
    }

    async fn confirm_delivery(
        &self,
        app_key: &str,
        user_id: &str,
        seq: u64,
        message_id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(String, InboxEntry)>> {
        self.inner.confirm_delivery(app_key, user_id, seq, message_id, at).await
    }

    async fn read_inbox(
        &self,
        app_key: &str,
        user_id: &str,
        after_seq: u64,
        limit: u32,
        unconfirmed_only: bool,
    ) -> StoreResult<Vec<InboxEntry>> {
        self.inner.read_inbox(app_key, user_id, after_seq, limit, unconfirmed_only).await
    }

    async fn find_inbox_message(&self, app_key: &str, user_id: &str, message_id: &str) -> StoreResult<Option<u64>> {
        self.inner.find_inbox_message(app_key, user_id, message_id).await
    }

    async fn inbox_last_seq(&self, app_key: &str, user_id: &str) -> StoreResult<u64> {
        self.inner.inbox_last_seq(app_key, user_id).await
    }

    async fn purge_inbox(&self, older_than: DateTime<Utc>, keep_per_user: u64) -> StoreResult<u64> {
        self.inner.purge_inbox(older_than, keep_per_user).await
    }

    async fn put_transport(
        &self,
        app_key: &str,
        id: &str,
        participants: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.inner.put_transport(app_key, id, participants, now).await
    }

    async fn get_transport(&self, app_key: &str, id: &str) -> StoreResult<Vec<String>> {
        self.inner.get_transport(app_key, id).await
    }

    async fn purge_transports(&self, older_than: DateTime<Utc>) -> StoreResult<u64> {
        self.inner.purge_transports(older_than).await
    }

    async fn put_legacy_call(&self, call: &LegacyCallRecord) -> StoreResult<bool> {
        self.inner.put_legacy_call(call).await
    }

    async fn get_legacy_call(&self, app_key: &str, call_id: &str) -> StoreResult<LegacyCallRecord> {
        self.inner.get_legacy_call(app_key, call_id).await
    }

    async fn write_calls(&self, writes: &[CallWrite]) -> StoreResult<()> {
        self.inner.write_calls(writes).await
    }

    async fn list_calls(&self, app_key: &str, user_id: Option<&str>, limit: u32) -> StoreResult<Vec<CallRecord>> {
        self.inner.list_calls(app_key, user_id, limit).await
    }

    async fn message_counts(&self, app_key: &str, since: DateTime<Utc>) -> StoreResult<(u64, u64)> {
        self.inner.message_counts(app_key, since).await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        // Purged sessions expired a week ago: a cached copy answers `session_expired` just the same.
        self.inner.purge_expired(now).await
    }
}
