//! The SQL [`Store`], one implementation for both engines: SQLite (one database file, WAL journal, a small
//! connection pool) and PostgreSQL (many Callbox nodes sharing one database). sqlx's `Any` driver picks the engine
//! at run time; the queries are the same text for both.
//!
//! Queries are checked at run time (`sqlx::query`), not by the compile-time macros: no database is needed to
//! build. They use `$N` placeholders and no engine-only functions; where an engine difference matters (the write
//! lock of a transaction, connection settings, migrations) it goes through [`Engine`] and is said next to the
//! query. Flags are stored as 0/1 integers on both engines (the `Any` driver cannot read a SQLite integer as a
//! boolean), so both schemas hold the same shapes.
//!
//! Times are stored as INTEGER epoch milliseconds (sub-millisecond precision is dropped on the way in).
//!
//! ## Durability
//!
//! Every connection runs with `journal_mode=WAL` and `synchronous=FULL`. In WAL mode, `NORMAL` only syncs the
//! log at checkpoints: a commit survives a crash of the process (SIGKILL) but the last commits can be lost on a
//! power failure or kernel crash. Callbox acknowledges a session to the client as soon as `create_session`
//! returns (its secret is handed out), so a lost row means a client holding credentials the server no longer
//! knows. `FULL` syncs the WAL on every commit, which makes an acknowledged write survive power loss too; the cost
//! is one fsync per write transaction. Measured on the 2-core development machine (ext4, virtual disk): about
//! 0.55 ms per single-row commit with `FULL` against 0.075 ms with `NORMAL`, i.e. some 1,800 writes a second
//! from the one SQLite writer. Writes here are sign-ins, renewals and admin calls, so `FULL` it is.
//!
//! ## Group commit (SQLite)
//!
//! One synced commit per session capped ticket exchanges at the disk's sync rate (about 2,000 a second here)
//! however many clients waited. New sessions therefore go through one writer task: it takes every session that
//! arrived while the previous commit was syncing and inserts them with one multi-row `INSERT` (one statement, one
//! transaction, one sync), then acknowledges each. A lone session is written at once, as before; under load a
//! commit carries as many as queued up (at most [`MAX_SESSION_BATCH`]). Nothing is acknowledged before its commit
//! has synced, so the durability promise is unchanged. If a batch fails (an application deleted meanwhile, say),
//! its sessions are written one by one so that each gets its own answer.
//!
//! SIGKILL of the process loses nothing acknowledged with either setting (the WAL is in the OS's cache once
//! the commit returns); `tests/server/store.rs` kills a writing process and checks every acknowledged row.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use callbox_core::IdentityType;
use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::error::ErrorKind;
use sqlx::AnyPool;
use sqlx::{Executor, Row};

use super::{
    AppRecord, CallRecord, CallWrite, Capability, InboxEntry, InboxItem, LegacyCallRecord, MessageRecord, SecretRecord,
    SessionRecord, Store, StoreError, StoreResult, UserRecord,
};

/// Connections in the pool. SQLite runs one writer at a time whatever the pool size; a few connections let
/// readers proceed beside it (WAL); the two group-commit writers each keep one of them ([`WriterConnection`]).
const POOL_SIZE: u32 = 6;

/// How long a connection waits for the write lock before the engine reports `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The most rows a list call returns, whatever `limit` asks for.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// How long expired sessions are kept before `purge_expired` forgets them (so that a client presenting one soon
/// after expiry is told "expired", not "unknown").
const EXPIRED_SESSION_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// Most sessions written by one commit (9 bound values each, far below SQLite's 32,766).
pub const MAX_SESSION_BATCH: usize = 256;

/// A session waiting for the group commit, with where to send its outcome.
type PendingSession = (SessionRecord, tokio::sync::oneshot::Sender<StoreResult<()>>);

/// Connections in a PostgreSQL pool (per node).
const POSTGRES_POOL_SIZE: u32 = 16;

/// Which engine a [`SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// One SQLite file.
    Sqlite,
    /// A PostgreSQL server shared by every node.
    Postgres,
}

/// The SQL store.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    engine: Engine,
    /// SQLite has one writer at a time; a connection that finds the lock taken sleeps in SQLite's busy handler
    /// (1, 2, 5, 10 ... 100 ms), which under concurrent sign-ins cut exchanges/s and sent p99 past 100 ms
    /// (docs/benchmarks.md). The hot single-statement writes queue here instead, in the process, and never sleep.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// SQLite: the group-commit writer of new sessions (see the module documentation). PostgreSQL: `None`
    /// (concurrent commits there share WAL flushes by themselves).
    new_sessions: Option<tokio::sync::mpsc::Sender<PendingSession>>,
    /// SQLite: the group-commit writer of inbox appends and confirmations. PostgreSQL: `None`.
    inbox_writer: Option<tokio::sync::mpsc::Sender<InboxWrite>>,
}

/// Kept for readability at call sites that only ever use SQLite.
pub type SqliteStore = SqlStore;

impl SqlStore {
    /// Opens (creating it if missing) the SQLite database file at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> StoreResult<SqlStore> {
        sqlx::any::install_default_drivers();
        let text = path
            .to_str()
            .filter(|p| !p.contains(['?', '#']))
            .ok_or_else(|| StoreError::Unavailable(format!("unsupported database path {}", path.display())))?;
        let url = format!("sqlite://{text}?mode=rwc");
        let pool = AnyPoolOptions::new()
            .max_connections(POOL_SIZE)
            .min_connections(1)
            // A connection to a local file cannot go stale: pinging it before every use (sqlx's default) was one
            // more hop to its worker thread per query, ~10% of an exchange's CPU in the profile.
            .test_before_acquire(false)
            .after_connect(|connection, _| {
                Box::pin(async move {
                    // See the module documentation: acknowledged writes must survive power loss.
                    let busy_timeout = format!("PRAGMA busy_timeout = {}", BUSY_TIMEOUT.as_millis());
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = FULL",
                        "PRAGMA foreign_keys = ON",
                        // Checkpoints run in the background (below); this is only the backstop should that task
                        // fall behind: 16,384 pages (64 MiB) of WAL before a commit checkpoints inline.
                        "PRAGMA wal_autocheckpoint = 16384",
                        busy_timeout.as_str(),
                    ] {
                        connection.execute(pragma).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|error| StoreError::Unavailable(format!("cannot open {}: {error}", path.display())))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|error| StoreError::Unavailable(format!("cannot migrate {}: {error}", path.display())))?;
        let writer = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        // The task ends when the last store clone (and so the last sender) is dropped.
        let (new_sessions, pending) = tokio::sync::mpsc::channel(4 * MAX_SESSION_BATCH);
        tokio::spawn(write_sessions_in_groups(pool.clone(), writer.clone(), pending));
        tokio::spawn(checkpoint_in_the_background(pool.clone(), std::sync::Arc::downgrade(&writer)));
        let (inbox_writer, inbox_pending) = tokio::sync::mpsc::channel(4 * MAX_INBOX_BATCH);
        tokio::spawn(write_inboxes_in_groups(pool.clone(), writer.clone(), inbox_pending));
        Ok(SqlStore {
            pool,
            engine: Engine::Sqlite,
            writer,
            new_sessions: Some(new_sessions),
            inbox_writer: Some(inbox_writer),
        })
    }

    /// Connects to PostgreSQL at `url` and brings its schema up to date. Safe when several nodes start at once:
    /// sqlx's migrator holds a PostgreSQL advisory lock while it migrates.
    pub async fn connect_postgres(url: &str) -> StoreResult<SqlStore> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(POSTGRES_POOL_SIZE)
            .min_connections(1)
            // Fail fast when the server is down instead of queueing requests (they answer 503 and retry).
            .acquire_timeout(Duration::from_secs(3))
            .connect(url)
            .await
            .map_err(|error| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {error}")))?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|error| StoreError::Unavailable(format!("cannot migrate PostgreSQL: {error}")))?;
        Ok(SqlStore {
            pool,
            engine: Engine::Postgres,
            writer: Default::default(),
            new_sessions: None,
            inbox_writer: None,
        })
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// SQLite: waits for this process's turn to write (see [`SqlStore::writer`]). PostgreSQL: nothing.
    async fn sqlite_writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.engine {
            Engine::Sqlite => Some(self.writer.lock().await),
            Engine::Postgres => None,
        }
    }

    /// Starts a transaction that writes. SQLite takes the database's write lock at once (`BEGIN IMMEDIATE`), so
    /// a read inside cannot go stale before the write; PostgreSQL locks rows explicitly (see [`Self::lock_app`]).
    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.engine {
            Engine::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Engine::Postgres => self.pool.begin().await?,
        })
    }

    /// PostgreSQL: locks an application's row until the transaction ends, serialising changes to its secrets.
    /// SQLite: nothing to do, `BEGIN IMMEDIATE` already serialises every writer.
    async fn lock_app(&self, connection: &mut sqlx::AnyConnection, app_key: &str) -> StoreResult<()> {
        if self.engine == Engine::Postgres {
            sqlx::query("SELECT key FROM apps WHERE key = $1 FOR UPDATE")
                .bind(app_key)
                .fetch_optional(connection)
                .await?;
        }
        Ok(())
    }

    /// Closes every connection, waiting for them to finish (the WAL is checkpointed by the last one).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The connection a SQLite group-commit loop writes with, kept from one group to the next. SQLite empties a
/// connection's page cache whenever another connection wrote since its last transaction, so a loop that wrote
/// each group on whichever pooled connection was idle read the same index pages back every time (`pread`s and
/// cache reloads in the exchange profile). Let go after an error (the next group takes a fresh one) and when
/// the pool closes ([`sqlx::Pool::close`] waits for every connection to come back).
struct WriterConnection {
    pool: AnyPool,
    held: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
    closed: std::pin::Pin<Box<sqlx::pool::CloseEvent>>,
}

impl WriterConnection {
    fn new(pool: &AnyPool) -> Self {
        Self { pool: pool.clone(), held: None, closed: Box::pin(pool.close_event()) }
    }

    /// Waits for the next group: whatever queued in `pending`, up to `limit`, into `batch`. `false` when the loop
    /// is over: every sender is gone, or the pool is closing (it waits for the held connection; what is still
    /// queued then fails as the pool is closed).
    async fn next_group<T>(
        &mut self,
        pending: &mut tokio::sync::mpsc::Receiver<T>,
        batch: &mut Vec<T>,
        limit: usize,
    ) -> bool {
        tokio::select! {
            received = pending.recv_many(batch, limit) => received > 0,
            () = &mut self.closed => {
                self.held = None;
                false
            }
        }
    }

    async fn get(&mut self) -> StoreResult<&mut sqlx::AnyConnection> {
        if self.held.is_none() {
            self.held = Some(self.pool.acquire().await?);
        }
        self.held.as_deref_mut().ok_or_else(|| StoreError::Unavailable("no writer connection".into()))
    }

    /// Keeps the connection after a success, lets it go after a failure.
    fn keep_if<T>(&mut self, outcome: &StoreResult<T>) {
        if outcome.is_err() {
            self.held = None;
        }
    }
}

/// The SQLite group-commit loop: waits for a session, takes every other one already queued, writes them all with
/// one statement, answers each.
async fn write_sessions_in_groups(
    pool: AnyPool,
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    mut pending: tokio::sync::mpsc::Receiver<PendingSession>,
) {
    let mut batch: Vec<PendingSession> = Vec::with_capacity(MAX_SESSION_BATCH);
    let mut connection = WriterConnection::new(&pool);
    while connection.next_group(&mut pending, &mut batch, MAX_SESSION_BATCH).await {
        let outcome = {
            let _writer = writer.lock().await;
            let started = std::time::Instant::now();
            let sessions: Vec<&SessionRecord> = batch.iter().map(|(session, _)| session).collect();
            let outcome = match connection.get().await {
                Ok(held) => insert_sessions(held, Engine::Sqlite, &sessions).await,
                Err(error) => Err(error),
            };
            connection.keep_if(&outcome);
            metrics::histogram!("callbox_session_commit_seconds").record(started.elapsed().as_secs_f64());
            outcome
        };
        metrics::histogram!("callbox_session_commit_batch_size").record(batch.len() as f64);
        match outcome {
            Ok(()) => {
                for (_, answer) in batch.drain(..) {
                    let _ = answer.send(Ok(()));
                }
            }
            Err(error) if batch.len() == 1 => {
                if let Some((_, answer)) = batch.pop() {
                    let _ = answer.send(Err(error));
                }
            }
            // Which session failed is not known: write each alone, so each gets its own answer.
            Err(_) => {
                for (session, answer) in batch.drain(..) {
                    let result = {
                        let _writer = writer.lock().await;
                        insert_sessions(&pool, Engine::Sqlite, &[&session]).await
                    };
                    let _ = answer.send(result);
                }
            }
        }
    }
}

/// How often the WAL is checkpointed into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// Copies the WAL into the database file every [`CHECKPOINT_INTERVAL`] (`PASSIVE`: it waits for no reader or
/// writer). By default SQLite does this inside whichever commit crosses 1,000 WAL pages, so every few hundred
/// ticket exchanges one of them also waited for the copy and a sync of the database file: that was most of
/// the exchange p99 (docs/benchmarks.md). Stops when the store is closed or dropped (`alive` is the store's
/// writer lock).
async fn checkpoint_in_the_background(pool: AnyPool, alive: std::sync::Weak<tokio::sync::Mutex<()>>) {
    let mut ticks = tokio::time::interval(CHECKPOINT_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if alive.strong_count() == 0 || pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_all(&pool).await {
            tracing::warn!(%error, "background WAL checkpoint failed (the next commit past 64 MiB of WAL will do it)");
        }
    }
}

/// `rows` tuples of `columns` placeholders each, for a multi-row statement whose values are bound in order after
/// `before` others: `(?, ?), (?, ?)` on SQLite, `($1, $2), ($3, $4)` on PostgreSQL. SQLite resolves each *named*
/// parameter (`$N` is a name to it) by a linear search when the driver binds it, so a statement of a few hundred
/// `$N` spent a quadratic part of the group commit in `sqlite3_bind_parameter_name` (3.5% of an exchange's CPU);
/// anonymous `?` need no lookup.
fn value_tuples(engine: Engine, rows: usize, columns: usize, before: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            match engine {
                Engine::Sqlite => sql.push('?'),
                Engine::Postgres => {
                    let _ = write!(sql, "${}", before + row * columns + column + 1);
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// Inserts `sessions` with one statement (one implicit transaction: all or none, one sync).
async fn insert_sessions<'c>(
    executor: impl Executor<'c, Database = sqlx::Any>,
    engine: Engine,
    sessions: &[&SessionRecord],
) -> StoreResult<()> {
    let sql = format!("INSERT INTO sessions ({SESSION_COLUMNS}) VALUES {}", value_tuples(engine, sessions.len(), 9, 0));
    let mut query = sqlx::query(&sql);
    for session in sessions {
        query = query
            .bind(&session.id)
            .bind(&session.app_key)
            .bind(&session.user_id)
            .bind(Capability::join(&session.capabilities))
            .bind(to_millis(session.created_at))
            .bind(to_millis(session.expires_at))
            .bind(session.revoked_at.map(to_millis))
            .bind(i64::from(session.secret_generation))
            .bind(session.identity_type.as_str());
    }
    query.execute(executor).await.map_err(insert_error)?;
    Ok(())
}

// ----- conversions -------------------------------------------------------------------------------------------

fn call_from_row(row: &AnyRow) -> StoreResult<CallRecord> {
    Ok(CallRecord {
        id: row.try_get("id")?,
        app_key: row.try_get("app_key")?,
        caller_id: row.try_get("caller_id")?,
        callee_id: row.try_get("callee_id")?,
        // Only the listing joins the legacy ids in.
        legacy_call_id: row.try_get("legacy_call_id").unwrap_or(None),
        started_at: from_millis(row.try_get("started_at")?)?,
        answered_at: from_millis_opt(row.try_get("answered_at")?)?,
        ended_at: from_millis_opt(row.try_get("ended_at")?)?,
        end_cause: row.try_get("end_cause")?,
        ended_by: row.try_get("ended_by")?,
    })
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Unavailable(format!("corrupt {what}"))
}

fn to_millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(millis: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis).ok_or_else(|| corrupt("timestamp"))
}

fn from_millis_opt(millis: Option<i64>) -> StoreResult<Option<DateTime<Utc>>> {
    millis.map(from_millis).transpose()
}

/// A `u64` setting as an INTEGER column; values beyond `i64::MAX` cannot be stored.
fn to_i64(value: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Unavailable(format!("{what} out of range")))
}

fn get_u64(row: &AnyRow, column: &str) -> StoreResult<u64> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|_| corrupt(column))
}

fn get_bool(row: &AnyRow, column: &str) -> StoreResult<bool> {
    let value: i64 = row.try_get(column)?;
    Ok(value != 0)
}

fn get_time(row: &AnyRow, column: &str) -> StoreResult<DateTime<Utc>> {
    from_millis(row.try_get(column)?)
}

fn get_time_opt(row: &AnyRow, column: &str) -> StoreResult<Option<DateTime<Utc>>> {
    from_millis_opt(row.try_get(column)?)
}

/// The engine's classification of a failed statement, if it is a constraint violation.
fn error_kind(error: &sqlx::Error) -> Option<ErrorKind> {
    match error {
        sqlx::Error::Database(database) => Some(database.kind()),
        _ => None,
    }
}

/// Maps an insert's failure: a foreign-key violation means the application does not exist.
fn insert_error(error: sqlx::Error) -> StoreError {
    match error_kind(&error) {
        Some(ErrorKind::ForeignKeyViolation) => StoreError::NotFound,
        _ => error.into(),
    }
}

fn one_row(rows_affected: u64) -> StoreResult<()> {
    if rows_affected == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

fn clamp_limit(limit: u32) -> i64 {
    i64::from(limit.min(MAX_LIST_LIMIT))
}

/// A `LIKE` pattern matching `text` anywhere, with `\` as the escape character (`ESCAPE '\'`), so that `%`, `_`
/// and `\` in the search are literal.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

// ----- rows --------------------------------------------------------------------------------------------------

const APP_COLUMNS: &str = "key, name, platform_user_auth, allowed_origins, capabilities, default_ticket_ttl, \
                           max_ticket_ttl, session_ttl, clock_skew, created_at";
const SECRET_COLUMNS: &str = "id, app_key, sealed, fingerprint, created_at, last_used_at, retired_at";
const USER_COLUMNS: &str = "app_key, user_id, identity_type, password_hash, disabled, created_at";
const SESSION_COLUMNS: &str =
    "id, app_key, user_id, capabilities, created_at, expires_at, revoked_at, secret_generation, identity_type";

fn app_from_row(row: &AnyRow) -> StoreResult<AppRecord> {
    let origins: String = row.try_get("allowed_origins")?;
    let allowed_origins = serde_json::from_str(&origins).map_err(|_| corrupt("allowed_origins"))?;
    let capabilities: String = row.try_get("capabilities")?;
    Ok(AppRecord {
        key: row.try_get("key")?,
        name: row.try_get("name")?,
        platform_user_auth: get_bool(row, "platform_user_auth")?,
        allowed_origins,
        capabilities: Capability::split(&capabilities),
        default_ticket_ttl: get_u64(row, "default_ticket_ttl")?,
        max_ticket_ttl: get_u64(row, "max_ticket_ttl")?,
        session_ttl: get_u64(row, "session_ttl")?,
        clock_skew: get_u64(row, "clock_skew")?,
        created_at: get_time(row, "created_at")?,
    })
}

fn secret_from_row(row: &AnyRow) -> StoreResult<SecretRecord> {
    Ok(SecretRecord {
        id: row.try_get("id")?,
        app_key: row.try_get("app_key")?,
        sealed: row.try_get("sealed")?,
        fingerprint: row.try_get("fingerprint")?,
        created_at: get_time(row, "created_at")?,
        last_used_at: get_time_opt(row, "last_used_at")?,
        retired_at: get_time_opt(row, "retired_at")?,
    })
}

fn user_from_row(row: &AnyRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        app_key: row.try_get("app_key")?,
        user_id: row.try_get("user_id")?,
        identity_type: row.try_get("identity_type")?,
        password_hash: row.try_get("password_hash")?,
        disabled: get_bool(row, "disabled")?,
        created_at: get_time(row, "created_at")?,
    })
}

fn session_from_row(row: &AnyRow) -> StoreResult<SessionRecord> {
    let capabilities: String = row.try_get("capabilities")?;
    let generation: i64 = row.try_get("secret_generation")?;
    let identity_type: String = row.try_get("identity_type")?;
    Ok(SessionRecord {
        id: row.try_get("id")?,
        app_key: row.try_get("app_key")?,
        user_id: row.try_get("user_id")?,
        capabilities: Capability::split(&capabilities),
        created_at: get_time(row, "created_at")?,
        expires_at: get_time(row, "expires_at")?,
        revoked_at: get_time_opt(row, "revoked_at")?,
        secret_generation: u32::try_from(generation).map_err(|_| corrupt("secret_generation"))?,
        identity_type: IdentityType::parse(&identity_type).ok_or_else(|| corrupt("identity_type"))?,
    })
}

fn collect<T>(rows: &[AnyRow], map: fn(&AnyRow) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(map).collect()
}

// ----- the store ---------------------------------------------------------------------------------------------

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn get_meta(&self, name: &str) -> StoreResult<Option<String>> {
        let value = sqlx::query_scalar::<_, String>("SELECT value FROM meta WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(value)
    }

    async fn set_meta(&self, name: &str, value: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn create_app(&self, app: &AppRecord, first_secret: &SecretRecord) -> StoreResult<()> {
        if first_secret.app_key != app.key {
            return Err(StoreError::Unavailable("the first secret belongs to another application".to_owned()));
        }
        let origins = serde_json::to_string(&app.allowed_origins)
            .map_err(|error| StoreError::Unavailable(format!("cannot encode allowed_origins: {error}")))?;
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!("INSERT INTO apps ({APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
            .bind(&app.key)
            .bind(&app.name)
            .bind(i64::from(app.platform_user_auth))
            .bind(origins)
            .bind(Capability::join(&app.capabilities))
            .bind(to_i64(app.default_ticket_ttl, "default_ticket_ttl")?)
            .bind(to_i64(app.max_ticket_ttl, "max_ticket_ttl")?)
            .bind(to_i64(app.session_ttl, "session_ttl")?)
            .bind(to_i64(app.clock_skew, "clock_skew")?)
            .bind(to_millis(app.created_at))
            .execute(&mut *tx)
            .await?;
        insert_secret(&mut tx, first_secret).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_app(&self, key: &str) -> StoreResult<AppRecord> {
        let row = sqlx::query(&format!("SELECT {APP_COLUMNS} FROM apps WHERE key = $1"))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        app_from_row(&row)
    }

    async fn list_apps(&self) -> StoreResult<Vec<AppRecord>> {
        let rows = sqlx::query(&format!("SELECT {APP_COLUMNS} FROM apps ORDER BY created_at, key"))
            .fetch_all(&self.pool)
            .await?;
        collect(&rows, app_from_row)
    }

    async fn update_app(&self, app: &AppRecord) -> StoreResult<()> {
        let origins = serde_json::to_string(&app.allowed_origins)
            .map_err(|error| StoreError::Unavailable(format!("cannot encode allowed_origins: {error}")))?;
        let done = sqlx::query(
            "UPDATE apps SET name = $2, platform_user_auth = $3, allowed_origins = $4, capabilities = $5, \
             default_ticket_ttl = $6, max_ticket_ttl = $7, session_ttl = $8, clock_skew = $9 WHERE key = $1",
        )
        .bind(&app.key)
        .bind(&app.name)
        .bind(i64::from(app.platform_user_auth))
        .bind(origins)
        .bind(Capability::join(&app.capabilities))
        .bind(to_i64(app.default_ticket_ttl, "default_ticket_ttl")?)
        .bind(to_i64(app.max_ticket_ttl, "max_ticket_ttl")?)
        .bind(to_i64(app.session_ttl, "session_ttl")?)
        .bind(to_i64(app.clock_skew, "clock_skew")?)
        .execute(&self.pool)
        .await?;
        one_row(done.rows_affected())
    }

    async fn delete_app(&self, key: &str) -> StoreResult<()> {
        // Secrets, users, sessions and nonces go by ON DELETE CASCADE (foreign keys are on for every
        // connection).
        let done = sqlx::query("DELETE FROM apps WHERE key = $1").bind(key).execute(&self.pool).await?;
        one_row(done.rows_affected())
    }

    async fn add_secret(&self, secret: &SecretRecord) -> StoreResult<()> {
        let mut connection = self.pool.acquire().await?;
        insert_secret(&mut connection, secret).await
    }

    async fn list_secrets(&self, app_key: &str, include_retired: bool) -> StoreResult<Vec<SecretRecord>> {
        // An unknown application has no secrets (an empty list, not NotFound).
        let query = if include_retired {
            format!("SELECT {SECRET_COLUMNS} FROM app_secrets WHERE app_key = $1 ORDER BY created_at DESC, id DESC")
        } else {
            format!(
                "SELECT {SECRET_COLUMNS} FROM app_secrets WHERE app_key = $1 AND retired_at IS NULL \
                 ORDER BY created_at DESC, id DESC"
            )
        };
        let rows = sqlx::query(&query).bind(app_key).fetch_all(&self.pool).await?;
        collect(&rows, secret_from_row)
    }

    async fn retire_secret(&self, app_key: &str, secret_id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        // BEGIN IMMEDIATE takes the write lock before the count, so two concurrent retirements of an
        // application's last two secrets cannot both see "two active" and leave none. (PostgreSQL: lock the
        // application row with SELECT ... FOR UPDATE first.) Dropping `tx` without commit rolls back.
        let mut tx = self.begin_write().await?;
        self.lock_app(&mut tx, app_key).await?;
        let retired_at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT retired_at FROM app_secrets WHERE app_key = $1 AND id = $2")
                .bind(app_key)
                .bind(secret_id)
                .fetch_optional(&mut *tx)
                .await?;
        match retired_at {
            None => return Err(StoreError::NotFound),
            // Already retired: nothing to do, and the first retirement time is kept.
            Some(Some(_)) => return Ok(()),
            Some(None) => {}
        }
        let active: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM app_secrets WHERE app_key = $1 AND retired_at IS NULL")
                .bind(app_key)
                .fetch_one(&mut *tx)
                .await?;
        if active <= 1 {
            return Err(StoreError::LastSecret);
        }
        sqlx::query("UPDATE app_secrets SET retired_at = $3 WHERE app_key = $1 AND id = $2 AND retired_at IS NULL")
            .bind(app_key)
            .bind(secret_id)
            .bind(to_millis(at))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn touch_secret(&self, secret_id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let _writer = self.sqlite_writer().await;
        let done = sqlx::query("UPDATE app_secrets SET last_used_at = $2 WHERE id = $1")
            .bind(secret_id)
            .bind(to_millis(at))
            .execute(&self.pool)
            .await?;
        one_row(done.rows_affected())
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        let _writer = self.sqlite_writer().await;
        sqlx::query(&format!("INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"))
            .bind(&user.app_key)
            .bind(&user.user_id)
            .bind(&user.identity_type)
            .bind(&user.password_hash)
            .bind(i64::from(user.disabled))
            .bind(to_millis(user.created_at))
            .execute(&self.pool)
            .await
            .map_err(|error| match error_kind(&error) {
                Some(ErrorKind::UniqueViolation) => StoreError::UserExists,
                _ => insert_error(error),
            })?;
        Ok(())
    }

    async fn get_user(&self, app_key: &str, user_id: &str) -> StoreResult<UserRecord> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE app_key = $1 AND user_id = $2"))
            .bind(app_key)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        user_from_row(&row)
    }

    async fn list_users(&self, app_key: &str, search: Option<&str>, limit: u32) -> StoreResult<Vec<UserRecord>> {
        // The search is a literal substring (`%`, `_` and `\` escaped), case-insensitive for ASCII letters:
        // LOWER on both sides behaves the same in SQLite (whose LOWER and LIKE fold ASCII only) and in
        // PostgreSQL. Ordering is by code point (SQLite's BINARY collation; PostgreSQL needs COLLATE "C").
        let rows = match search {
            Some(search) => {
                sqlx::query(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE app_key = $1 AND LOWER(user_id) LIKE LOWER($2) ESCAPE '\\' \
                     ORDER BY user_id LIMIT $3"
                ))
                .bind(app_key)
                .bind(contains_pattern(search))
                .bind(clamp_limit(limit))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE app_key = $1 ORDER BY user_id LIMIT $2"))
                    .bind(app_key)
                    .bind(clamp_limit(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        collect(&rows, user_from_row)
    }

    async fn set_password_hash(&self, app_key: &str, user_id: &str, hash: &str) -> StoreResult<()> {
        let _writer = self.sqlite_writer().await;
        let done = sqlx::query("UPDATE users SET password_hash = $3 WHERE app_key = $1 AND user_id = $2")
            .bind(app_key)
            .bind(user_id)
            .bind(hash)
            .execute(&self.pool)
            .await?;
        one_row(done.rows_affected())
    }

    async fn set_user_disabled(&self, app_key: &str, user_id: &str, disabled: bool) -> StoreResult<()> {
        let done = sqlx::query("UPDATE users SET disabled = $3 WHERE app_key = $1 AND user_id = $2")
            .bind(app_key)
            .bind(user_id)
            .bind(i64::from(disabled))
            .execute(&self.pool)
            .await?;
        one_row(done.rows_affected())
    }

    async fn delete_user(&self, app_key: &str, user_id: &str) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM users WHERE app_key = $1 AND user_id = $2")
            .bind(app_key)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        one_row(done.rows_affected())
    }

    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()> {
        // Durable on return: the commit is synced (synchronous=FULL), alone or in a group.
        let Some(new_sessions) = &self.new_sessions else {
            return insert_sessions(&self.pool, self.engine, &[session]).await;
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let gone = || StoreError::Unavailable("the session writer has stopped".into());
        new_sessions.send((session.clone(), answer)).await.map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }

    async fn get_session(&self, id: &str) -> StoreResult<SessionRecord> {
        let row = sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        session_from_row(&row)
    }

    async fn list_live_sessions(
        &self,
        app_key: &str,
        user_id: Option<&str>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<SessionRecord>> {
        let rows = match user_id {
            Some(user_id) => {
                sqlx::query(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE app_key = $1 AND user_id = $4 \
                     AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, id DESC LIMIT $3"
                ))
                .bind(app_key)
                .bind(to_millis(now))
                .bind(clamp_limit(limit))
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE app_key = $1 \
                     AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, id DESC LIMIT $3"
                ))
                .bind(app_key)
                .bind(to_millis(now))
                .bind(clamp_limit(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        collect(&rows, session_from_row)
    }

    async fn update_session(&self, id: &str, expires_at: DateTime<Utc>, secret_generation: u32) -> StoreResult<()> {
        let _writer = self.sqlite_writer().await;
        let done = sqlx::query("UPDATE sessions SET expires_at = $2, secret_generation = $3 WHERE id = $1")
            .bind(id)
            .bind(to_millis(expires_at))
            .bind(i64::from(secret_generation))
            .execute(&self.pool)
            .await?;
        one_row(done.rows_affected())
    }

    async fn revoke_session(&self, app_key: &str, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let _writer = self.sqlite_writer().await;
        let done =
            sqlx::query("UPDATE sessions SET revoked_at = $3 WHERE app_key = $1 AND id = $2 AND revoked_at IS NULL")
                .bind(app_key)
                .bind(id)
                .bind(to_millis(at))
                .execute(&self.pool)
                .await?;
        if done.rows_affected() > 0 {
            return Ok(());
        }
        // Nothing changed: either the session is not in this application (NotFound) or it was already revoked,
        // which is success (revoking is idempotent; the first revocation time is kept).
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM sessions WHERE app_key = $1 AND id = $2")
            .bind(app_key)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        exists.map(|_| ()).ok_or(StoreError::NotFound)
    }

    async fn revoke_user_sessions(&self, app_key: &str, user_id: &str, at: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $3 WHERE app_key = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(app_key)
        .bind(user_id)
        .bind(to_millis(at))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn revoke_app_sessions_before(
        &self,
        app_key: &str,
        before: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $3 WHERE app_key = $1 AND created_at < $2 AND revoked_at IS NULL",
        )
        .bind(app_key)
        .bind(to_millis(before))
        .bind(to_millis(at))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn use_nonce(&self, app_key: &str, nonce: &str, expires_at: DateTime<Utc>) -> StoreResult<bool> {
        let _writer = self.sqlite_writer().await;
        // One statement, so the check and the record are atomic (no window between "not seen" and "insert"):
        // * no row: inserted, 1 row changed → first use;
        // * a row still remembered (expires_at >= now): the WHERE of DO UPDATE is false, 0 rows → replay;
        // * a row whose time is up but that purge_expired has not removed yet: it is overwritten with the new
        //   expiry, 1 row → first use. Purging would have deleted it anyway; reusing it here makes the answer
        //   independent of when housekeeping last ran.
        // The nonce is remembered exactly until `expires_at`: the caller must pass the end of the window in which
        // the ticket carrying it is accepted, clock skew included, or a replay becomes possible in between.
        // `now` is this server's clock: the trait passes none (PostgreSQL could use its own, but the clock of
        // the process is the one the ticket was checked against).
        let now = to_millis(Utc::now());
        let done = sqlx::query(
            "INSERT INTO used_nonces (app_key, nonce, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (app_key, nonce) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE used_nonces.expires_at < $4",
        )
        .bind(app_key)
        .bind(nonce)
        .bind(to_millis(expires_at))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(insert_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn known_users(&self, app_key: &str, user_ids: &[String]) -> StoreResult<Vec<String>> {
        // One indexed probe per id (users' primary key, sessions_by_user, inbox_counters' primary key): a message
        // names at most a few dozen recipients.
        let mut known = Vec::with_capacity(user_ids.len());
        for user_id in user_ids {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM users WHERE app_key = $1 AND user_id = $2 \
                 UNION ALL SELECT 1 FROM sessions WHERE app_key = $1 AND user_id = $2 \
                 UNION ALL SELECT 1 FROM inbox_counters WHERE app_key = $1 AND user_id = $2 LIMIT 1",
            )
            .bind(app_key)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
            if found.is_some() {
                known.push(user_id.clone());
            }
        }
        Ok(known)
    }

    async fn append_message(&self, message: &MessageRecord) -> StoreResult<Vec<u64>> {
        if let Some(inbox_writer) = &self.inbox_writer {
            let (answer, answered) = tokio::sync::oneshot::channel();
            inbox_writer.send(InboxWrite::Append(message.clone(), answer)).await.map_err(|_| inbox_writer_gone())?;
            return answered.await.map_err(|_| inbox_writer_gone())?;
        }
        let mut tx = self.begin_write().await?;
        let seqs = append_in(&mut tx, message).await?;
        tx.commit().await?;
        Ok(seqs)
    }

    async fn append_messages(&self, messages: &[MessageRecord]) -> Vec<StoreResult<Vec<u64>>> {
        let Some(inbox_writer) = &self.inbox_writer else {
            let mut answers = Vec::with_capacity(messages.len());
            for message in messages {
                answers.push(self.append_message(message).await);
            }
            return answers;
        };
        // All queued before any answer is awaited: they join one group commit, in this order.
        let mut answered = Vec::with_capacity(messages.len());
        for message in messages {
            let (answer, waiting) = tokio::sync::oneshot::channel();
            answered.push(match inbox_writer.send(InboxWrite::Append(message.clone(), answer)).await {
                Ok(()) => Some(waiting),
                Err(_) => None,
            });
        }
        let mut answers = Vec::with_capacity(messages.len());
        for waiting in answered {
            answers.push(match waiting {
                Some(waiting) => waiting.await.unwrap_or_else(|_| Err(inbox_writer_gone())),
                None => Err(inbox_writer_gone()),
            });
        }
        answers
    }

    async fn confirm_delivery(
        &self,
        app_key: &str,
        user_id: &str,
        seq: u64,
        message_id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(String, InboxEntry)>> {
        let confirm = Confirm {
            app_key: app_key.to_owned(),
            user_id: user_id.to_owned(),
            seq,
            message_id: message_id.to_owned(),
            // The entry handed back is the one stored: milliseconds, like a later read of it.
            at: from_millis(to_millis(at))?,
        };
        if let Some(inbox_writer) = &self.inbox_writer {
            let (answer, answered) = tokio::sync::oneshot::channel();
            inbox_writer.send(InboxWrite::Confirm(confirm, answer)).await.map_err(|_| inbox_writer_gone())?;
            return answered.await.map_err(|_| inbox_writer_gone())?;
        }
        let mut tx = self.begin_write().await?;
        let outcome = confirm_in(&mut tx, &confirm).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn read_inbox(
        &self,
        app_key: &str,
        user_id: &str,
        after_seq: u64,
        limit: u32,
        unconfirmed_only: bool,
    ) -> StoreResult<Vec<InboxEntry>> {
        let only = if unconfirmed_only { " AND kind = 'message' AND delivered_at IS NULL" } else { "" };
        let rows = sqlx::query(&format!(
            "SELECT {INBOX_COLUMNS} FROM inbox WHERE app_key = $1 AND user_id = $2 AND seq > $3{only} \
             ORDER BY seq LIMIT $4"
        ))
        .bind(app_key)
        .bind(user_id)
        .bind(i64::try_from(after_seq).unwrap_or(i64::MAX))
        .bind(clamp_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| inbox_from_row(row, app_key)).collect()
    }

    async fn inbox_last_seq(&self, app_key: &str, user_id: &str) -> StoreResult<u64> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT last_seq FROM inbox_counters WHERE app_key = $1 AND user_id = $2")
                .bind(app_key)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        u64::try_from(last.unwrap_or(0)).map_err(|_| corrupt("inbox sequence"))
    }

    async fn message_counts(&self, app_key: &str, since: DateTime<Utc>) -> StoreResult<(u64, u64)> {
        let (sent, delivered): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(delivered_at) FROM inbox WHERE app_key = $1 AND kind = 'message' AND created_at >= $2",
        )
        .bind(app_key)
        .bind(to_millis(since))
        .fetch_one(&self.pool)
        .await?;
        let count = |n: i64| u64::try_from(n).map_err(|_| corrupt("message count"));
        Ok((count(sent)?, count(delivered)?))
    }

    async fn purge_inbox(&self, older_than: DateTime<Utc>, keep_per_user: u64) -> StoreResult<u64> {
        let keep = to_i64(keep_per_user, "keep_per_user")?;
        let _writer = self.sqlite_writer().await;
        let by_age = sqlx::query("DELETE FROM inbox WHERE created_at < $1")
            .bind(to_millis(older_than))
            .execute(&self.pool)
            .await?;
        // Sequence numbers of a user are contiguous and entries only leave from the old end, so "all but the
        // newest N" is "seq <= last_seq - N".
        let by_count = sqlx::query(
            "DELETE FROM inbox WHERE EXISTS (SELECT 1 FROM inbox_counters c WHERE c.app_key = inbox.app_key \
             AND c.user_id = inbox.user_id AND inbox.seq <= c.last_seq - $1)",
        )
        .bind(keep)
        .execute(&self.pool)
        .await?;
        Ok(by_age.rows_affected() + by_count.rows_affected())
    }

    async fn write_calls(&self, writes: &[CallWrite]) -> StoreResult<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let _writer = self.sqlite_writer().await;
        let mut tx = self.begin_write().await?;
        for write in writes {
            match write {
                CallWrite::Placed(call) => {
                    // A call of an application deleted meanwhile is dropped (the foreign key would refuse it).
                    sqlx::query(
                        "INSERT INTO calls (id, app_key, caller_id, callee_id, started_at) \
                         SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM apps WHERE key = $2) \
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(&call.id)
                    .bind(&call.app_key)
                    .bind(&call.caller_id)
                    .bind(&call.callee_id)
                    .bind(to_millis(call.started_at))
                    .execute(&mut *tx)
                    .await?;
                }
                CallWrite::Answered { id, at } => {
                    sqlx::query("UPDATE calls SET answered_at = $1 WHERE id = $2 AND answered_at IS NULL")
                        .bind(to_millis(*at))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                CallWrite::Ended { id, at, cause, by } => {
                    sqlx::query(
                        "UPDATE calls SET ended_at = $1, end_cause = $2, ended_by = $3 WHERE id = $4 AND ended_at IS NULL",
                    )
                    .bind(to_millis(*at))
                    .bind(cause)
                    .bind(by)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_calls(&self, app_key: &str, user_id: Option<&str>, limit: u32) -> StoreResult<Vec<CallRecord>> {
        // With the legacy SDK's own id of the calls it placed.
        const COLUMNS: &str = "c.id, c.app_key, c.caller_id, c.callee_id, c.started_at, c.answered_at, c.ended_at, \
             c.end_cause, c.ended_by, l.call_id AS legacy_call_id \
             FROM calls c LEFT JOIN legacy_calls l ON l.record_id = c.id";
        let limit = i64::from(limit.clamp(1, 1000));
        let rows = match user_id {
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} WHERE c.app_key = $1 ORDER BY c.started_at DESC, c.id DESC LIMIT $2"
                ))
                .bind(app_key)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            Some(user) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} WHERE c.app_key = $1 AND (c.caller_id = $2 OR c.callee_id = $2) \
                     ORDER BY c.started_at DESC, c.id DESC LIMIT $3"
                ))
                .bind(app_key)
                .bind(user)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(call_from_row).collect()
    }

    async fn find_inbox_message(&self, app_key: &str, user_id: &str, message_id: &str) -> StoreResult<Option<u64>> {
        // A user's inbox is at most `retention_per_user` rows, read through its primary key's (app, user) prefix.
        let row = sqlx::query(
            "SELECT seq FROM inbox WHERE app_key = $1 AND user_id = $2 AND kind = 'message' AND message_id = $3 \
             ORDER BY (CASE WHEN delivered_at IS NULL THEN 0 ELSE 1 END), seq LIMIT 1",
        )
        .bind(app_key)
        .bind(user_id)
        .bind(message_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let seq: i64 = row.try_get("seq")?;
                Ok(Some(u64::try_from(seq).map_err(|_| corrupt("inbox seq"))?))
            }
        }
    }

    async fn put_transport(
        &self,
        app_key: &str,
        id: &str,
        participants: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let participants = serde_json::to_string(participants).map_err(|_| corrupt("transport participants"))?;
        let _writer = self.sqlite_writer().await;
        let mut tx = self.begin_write().await?;
        // The id is derived from the participants, so an existing row has the same ones: only its use is noted.
        let written = sqlx::query(
            "INSERT INTO legacy_transports (app_key, id, participants, used_at) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM apps WHERE key = $1) \
             ON CONFLICT (app_key, id) DO UPDATE SET used_at = excluded.used_at",
        )
        .bind(app_key)
        .bind(id)
        .bind(&participants)
        .bind(to_millis(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if written.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn get_transport(&self, app_key: &str, id: &str) -> StoreResult<Vec<String>> {
        let row = sqlx::query("SELECT participants FROM legacy_transports WHERE app_key = $1 AND id = $2")
            .bind(app_key)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let text: String = row.try_get("participants")?;
        serde_json::from_str(&text).map_err(|_| corrupt("transport participants"))
    }

    async fn purge_transports(&self, older_than: DateTime<Utc>) -> StoreResult<u64> {
        let _writer = self.sqlite_writer().await;
        let mut tx = self.begin_write().await?;
        let transports = sqlx::query("DELETE FROM legacy_transports WHERE used_at < $1")
            .bind(to_millis(older_than))
            .execute(&mut *tx)
            .await?;
        // The call records stay (they have retention of their own); only the SDK's ids for them go.
        let calls = sqlx::query("DELETE FROM legacy_calls WHERE created_at < $1")
            .bind(to_millis(older_than))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(transports.rows_affected() + calls.rows_affected())
    }

    async fn put_legacy_call(&self, call: &LegacyCallRecord) -> StoreResult<bool> {
        let record = &call.record;
        let _writer = self.sqlite_writer().await;
        let mut tx = self.begin_write().await?;
        let app = sqlx::query("SELECT 1 AS one FROM apps WHERE key = $1")
            .bind(&record.app_key)
            .fetch_optional(&mut *tx)
            .await?;
        if app.is_none() {
            return Err(StoreError::NotFound);
        }
        let taken = sqlx::query("SELECT 1 AS one FROM legacy_calls WHERE app_key = $1 AND call_id = $2")
            .bind(&record.app_key)
            .bind(&call.call_id)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Ok(false);
        }
        sqlx::query("INSERT INTO calls (id, app_key, caller_id, callee_id, started_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&record.id)
            .bind(&record.app_key)
            .bind(&record.caller_id)
            .bind(&record.callee_id)
            .bind(to_millis(record.started_at))
            .execute(&mut *tx)
            .await?;
        // Two nodes placing the same id at once: the primary key lets one of them in; the other's transaction
        // fails and its caller is answered as for any store error (the SDK makes a fresh UUID per call).
        sqlx::query(
            "INSERT INTO legacy_calls (app_key, call_id, record_id, caller_session_id, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&record.app_key)
        .bind(&call.call_id)
        .bind(&record.id)
        .bind(&call.caller_session_id)
        .bind(to_millis(record.started_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn answer_legacy_call(
        &self,
        app_key: &str,
        call_id: &str,
        session_id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let _writer = self.sqlite_writer().await;
        let mut tx = self.begin_write().await?;
        let record_id: Option<String> =
            sqlx::query_scalar("SELECT record_id FROM legacy_calls WHERE app_key = $1 AND call_id = $2")
                .bind(app_key)
                .bind(call_id)
                .fetch_optional(&mut *tx)
                .await?;
        let record_id = record_id.ok_or(StoreError::NotFound)?;
        // First answer wins: the record must be unanswered and going on, and no session noted yet.
        let answered =
            sqlx::query("UPDATE calls SET answered_at = $1 WHERE id = $2 AND answered_at IS NULL AND ended_at IS NULL")
                .bind(to_millis(at))
                .bind(&record_id)
                .execute(&mut *tx)
                .await?;
        if answered.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE legacy_calls SET answered_session_id = $1 WHERE app_key = $2 AND call_id = $3")
            .bind(session_id)
            .bind(app_key)
            .bind(call_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn get_legacy_call(&self, app_key: &str, call_id: &str) -> StoreResult<LegacyCallRecord> {
        let row = sqlx::query(
            "SELECT l.call_id, l.caller_session_id, l.answered_session_id, l.call_id AS legacy_call_id, c.id, c.app_key, c.caller_id, c.callee_id, c.started_at, \
             c.answered_at, c.ended_at, c.end_cause, c.ended_by \
             FROM legacy_calls l JOIN calls c ON c.id = l.record_id WHERE l.app_key = $1 AND l.call_id = $2",
        )
        .bind(app_key)
        .bind(call_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(LegacyCallRecord {
            call_id: row.try_get("call_id")?,
            caller_session_id: row.try_get("caller_session_id")?,
            answered_session_id: row.try_get("answered_session_id")?,
            record: call_from_row(&row)?,
        })
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let now = to_millis(now);
        let mut tx = self.begin_write().await?;
        let nonces = sqlx::query("DELETE FROM used_nonces WHERE expires_at < $1").bind(now).execute(&mut *tx).await?;
        let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now.saturating_sub(EXPIRED_SESSION_RETENTION_MS))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(nonces.rows_affected() + sessions.rows_affected())
    }
}

// ----- realtime inbox ----------------------------------------------------------------------------------------

const INBOX_COLUMNS: &str = "seq, kind, message_id, sender_id, recipients, body, headers, peer_id, created_at";

/// Takes the next sequence number of a user's inbox inside `tx`. On PostgreSQL the counter row stays locked until
/// the transaction ends, so a user's entries commit in sequence order (a reader never sees N+1 before N).
async fn next_seq(connection: &mut sqlx::AnyConnection, app_key: &str, user_id: &str) -> StoreResult<u64> {
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO inbox_counters (app_key, user_id, last_seq) VALUES ($1, $2, 1) \
         ON CONFLICT (app_key, user_id) DO UPDATE SET last_seq = inbox_counters.last_seq + 1 RETURNING last_seq",
    )
    .bind(app_key)
    .bind(user_id)
    .fetch_one(connection)
    .await
    .map_err(insert_error)?;
    u64::try_from(seq).map_err(|_| corrupt("inbox sequence"))
}

/// A confirmation of one inbox entry.
#[derive(Debug, Clone)]
struct Confirm {
    app_key: String,
    user_id: String,
    seq: u64,
    message_id: String,
    at: DateTime<Utc>,
}

type ConfirmOutcome = StoreResult<Option<(String, InboxEntry)>>;

/// An inbox write waiting for the SQLite group commit, with where to send its outcome.
enum InboxWrite {
    Append(MessageRecord, tokio::sync::oneshot::Sender<StoreResult<Vec<u64>>>),
    Confirm(Confirm, tokio::sync::oneshot::Sender<ConfirmOutcome>),
}

/// Most inbox writes committed together.
const MAX_INBOX_BATCH: usize = 128;

fn inbox_writer_gone() -> StoreError {
    StoreError::Unavailable("the inbox writer has stopped".into())
}

/// Appends a message to each recipient's inbox inside a transaction; each recipient's sequence number, in
/// `recipient_ids` order.
async fn append_in(connection: &mut sqlx::AnyConnection, message: &MessageRecord) -> StoreResult<Vec<u64>> {
    let recipients = serde_json::to_string(&message.recipient_ids)
        .map_err(|error| StoreError::Unavailable(format!("cannot encode recipients: {error}")))?;
    // Recipients in a fixed (sorted) order so that two PostgreSQL transactions locking the same counters cannot
    // deadlock; the answer is given back in the caller's order.
    let mut ordered: Vec<(usize, &String)> = message.recipient_ids.iter().enumerate().collect();
    ordered.sort_by(|a, b| a.1.cmp(b.1));
    let mut by_index = vec![0u64; message.recipient_ids.len()];
    for (index, recipient) in ordered {
        let seq = next_seq(connection, &message.app_key, recipient).await?;
        insert_inbox_row(
            connection,
            &message.app_key,
            recipient,
            seq,
            "message",
            message,
            &recipients,
            None,
            message.created_at,
        )
        .await?;
        by_index[index] = seq;
    }
    Ok(by_index)
}

/// Confirms one entry inside a transaction (see [`Store::confirm_delivery`]).
async fn confirm_in(connection: &mut sqlx::AnyConnection, confirm: &Confirm) -> ConfirmOutcome {
    let Confirm { app_key, user_id, seq, message_id, at } = confirm;
    let seq_value = to_i64(*seq, "inbox sequence")?;
    // One statement decides "first confirmation" on both engines (no read-then-write window).
    let sender: Option<String> = sqlx::query_scalar(
        "UPDATE inbox SET delivered_at = $5 WHERE app_key = $1 AND user_id = $2 AND seq = $3 \
         AND message_id = $4 AND kind = 'message' AND delivered_at IS NULL RETURNING sender_id",
    )
    .bind(app_key)
    .bind(user_id)
    .bind(seq_value)
    .bind(message_id)
    .bind(to_millis(*at))
    .fetch_optional(&mut *connection)
    .await?;
    let Some(sender) = sender else {
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM inbox WHERE app_key = $1 AND user_id = $2 AND seq = $3 AND message_id = $4 \
             AND kind = 'message'",
        )
        .bind(app_key)
        .bind(user_id)
        .bind(seq_value)
        .bind(message_id)
        .fetch_optional(&mut *connection)
        .await?;
        return exists.map(|_| None).ok_or(StoreError::NotFound);
    };
    let receipt_seq = next_seq(connection, app_key, &sender).await?;
    let receipt = MessageRecord {
        id: message_id.clone(),
        app_key: app_key.clone(),
        sender_id: sender.clone(),
        recipient_ids: Vec::new(),
        text: String::new(),
        headers: "{}".to_owned(),
        created_at: *at,
    };
    insert_inbox_row(connection, app_key, &sender, receipt_seq, "receipt", &receipt, "[]", Some(user_id), *at).await?;
    let entry = InboxEntry {
        seq: receipt_seq,
        item: InboxItem::Receipt { message_id: message_id.clone(), recipient_id: user_id.clone(), at: *at },
    };
    Ok(Some((sender, entry)))
}

/// Rows of one multi-row statement of [`write_group`] at most (SQLite allows 32,766 parameters; 11 per row).
const GROUP_ROWS: usize = 200;

/// One inbox row of a group.
struct GroupRow<'a> {
    app_key: &'a str,
    user_id: &'a str,
    seq: i64,
    kind: &'static str,
    message_id: &'a str,
    sender_id: &'a str,
    recipients: String,
    body: &'a str,
    headers: &'a str,
    peer_id: Option<&'a str>,
    at: i64,
}

/// The writes of one SQLite group commit, with a handful of multi-row statements instead of some five statements
/// per message (each statement costs tens of microseconds through the driver, which capped the writer at a few
/// thousand messages a second): one `UPDATE ... IN (VALUES ...)` for the confirmations, one upsert of every
/// counter the group moves, one multi-row `INSERT` of every row. Sequence numbers are handed out in the batch's
/// order, so each user's entries follow arrival order as with one write at a time. Any error fails the group (and
/// the caller redoes each write alone, so that each gets its own answer).
async fn write_group(
    tx: &mut sqlx::AnyConnection,
    batch: &[InboxWrite],
) -> StoreResult<Vec<Result<Vec<u64>, ConfirmOutcome>>> {
    // 1. Confirmations: which ones are first (they get a receipt for the sender), already done, or unknown.
    let confirms: Vec<&Confirm> = batch
        .iter()
        .filter_map(|write| match write {
            InboxWrite::Confirm(confirm, _) => Some(confirm),
            InboxWrite::Append(..) => None,
        })
        .collect();
    let mut first: HashMap<(String, String, u64, String), String> = HashMap::new();
    for chunk in confirms.chunks(GROUP_ROWS) {
        let at = chunk.iter().map(|c| c.at).min().map(to_millis).unwrap_or(0);
        let sql = format!(
            "UPDATE inbox SET delivered_at = ? WHERE kind = 'message' AND delivered_at IS NULL \
             AND (app_key, user_id, seq, message_id) IN (VALUES {}) RETURNING app_key, user_id, seq, message_id, sender_id",
            value_tuples(Engine::Sqlite, chunk.len(), 4, 1)
        );
        let mut query = sqlx::query(&sql).bind(at);
        for confirm in chunk {
            query = query
                .bind(&confirm.app_key)
                .bind(&confirm.user_id)
                .bind(to_i64(confirm.seq, "inbox sequence")?)
                .bind(&confirm.message_id);
        }
        for row in query.fetch_all(&mut *tx).await? {
            let seq: i64 = row.try_get("seq")?;
            let key = (
                row.try_get("app_key")?,
                row.try_get("user_id")?,
                u64::try_from(seq).map_err(|_| corrupt("seq"))?,
                row.try_get("message_id")?,
            );
            first.insert(key, row.try_get("sender_id")?);
        }
    }
    // 2. Every counter the group moves, in the batch's order of first use, moved once each.
    let mut order: Vec<(&str, &str)> = Vec::new();
    let mut counts: HashMap<(&str, &str), i64> = HashMap::new();
    let mut receipt_senders: Vec<Option<String>> = Vec::with_capacity(batch.len());
    for write in batch {
        match write {
            InboxWrite::Append(message, _) => {
                for recipient in &message.recipient_ids {
                    let key = (message.app_key.as_str(), recipient.as_str());
                    *counts.entry(key).or_insert_with(|| {
                        order.push(key);
                        0
                    }) += 1;
                }
                receipt_senders.push(None);
            }
            InboxWrite::Confirm(confirm, _) => {
                let key = (confirm.app_key.clone(), confirm.user_id.clone(), confirm.seq, confirm.message_id.clone());
                // A second confirmation of the same entry in this group is "already confirmed".
                let sender = first.remove(&key);
                receipt_senders.push(sender);
            }
        }
    }
    for (write, sender) in batch.iter().zip(&receipt_senders) {
        if let (InboxWrite::Confirm(confirm, _), Some(sender)) = (write, sender) {
            let key = (confirm.app_key.as_str(), sender.as_str());
            *counts.entry(key).or_insert_with(|| {
                order.push(key);
                0
            }) += 1;
        }
    }
    let mut next: HashMap<(&str, &str), i64> = HashMap::with_capacity(order.len());
    for chunk in order.chunks(GROUP_ROWS) {
        let sql = format!(
            "INSERT INTO inbox_counters (app_key, user_id, last_seq) VALUES {} ON CONFLICT (app_key, user_id) \
             DO UPDATE SET last_seq = inbox_counters.last_seq + excluded.last_seq RETURNING app_key, user_id, last_seq",
            value_tuples(Engine::Sqlite, chunk.len(), 3, 0)
        );
        let mut query = sqlx::query(&sql);
        for key in chunk {
            query = query.bind(key.0).bind(key.1).bind(counts[key]);
        }
        for row in query.fetch_all(&mut *tx).await.map_err(insert_error)? {
            let (app_key, user_id): (String, String) = (row.try_get("app_key")?, row.try_get("user_id")?);
            let last: i64 = row.try_get("last_seq")?;
            if let Some(key) = chunk.iter().find(|k| k.0 == app_key && k.1 == user_id) {
                next.insert(*key, last - counts[key] + 1);
            }
        }
    }
    let mut seq_for = |app_key: &str, user_id: &str| -> StoreResult<i64> {
        // (A linear search: `get_mut` with keys borrowed for the closure alone does not type-check, and a group
        // moves at most a few hundred counters.)
        let seq = next.iter_mut().find(|(k, _)| k.0 == app_key && k.1 == user_id).map(|(_, v)| v);
        let seq = seq.ok_or_else(|| corrupt("inbox counter"))?;
        let given = *seq;
        *seq += 1;
        Ok(given)
    };
    // 3. The rows, and each write's answer.
    let mut rows: Vec<GroupRow<'_>> = Vec::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for (write, sender) in batch.iter().zip(&receipt_senders) {
        match write {
            InboxWrite::Append(message, _) => {
                let recipients = serde_json::to_string(&message.recipient_ids)
                    .map_err(|error| StoreError::Unavailable(format!("cannot encode recipients: {error}")))?;
                let mut seqs = Vec::with_capacity(message.recipient_ids.len());
                for recipient in &message.recipient_ids {
                    let seq = seq_for(&message.app_key, recipient)?;
                    seqs.push(u64::try_from(seq).map_err(|_| corrupt("inbox sequence"))?);
                    rows.push(GroupRow {
                        app_key: &message.app_key,
                        user_id: recipient,
                        seq,
                        kind: "message",
                        message_id: &message.id,
                        sender_id: &message.sender_id,
                        recipients: recipients.clone(),
                        body: &message.text,
                        headers: &message.headers,
                        peer_id: None,
                        at: to_millis(message.created_at),
                    });
                }
                outcomes.push(Ok(seqs));
            }
            InboxWrite::Confirm(confirm, _) => match sender {
                Some(sender) => {
                    let seq = seq_for(&confirm.app_key, sender)?;
                    rows.push(GroupRow {
                        app_key: &confirm.app_key,
                        user_id: sender,
                        seq,
                        kind: "receipt",
                        message_id: &confirm.message_id,
                        sender_id: sender,
                        recipients: "[]".to_owned(),
                        body: "",
                        headers: "{}",
                        peer_id: Some(&confirm.user_id),
                        at: to_millis(confirm.at),
                    });
                    let entry = InboxEntry {
                        seq: u64::try_from(seq).map_err(|_| corrupt("inbox sequence"))?,
                        item: InboxItem::Receipt {
                            message_id: confirm.message_id.clone(),
                            recipient_id: confirm.user_id.clone(),
                            at: confirm.at,
                        },
                    };
                    outcomes.push(Err(Ok(Some((sender.clone(), entry)))));
                }
                None => {
                    // Not first: confirmed before (nothing to do) or not in the inbox at all.
                    let exists: Option<i64> = sqlx::query_scalar(
                        "SELECT 1 FROM inbox WHERE app_key = $1 AND user_id = $2 AND seq = $3 AND message_id = $4 \
                         AND kind = 'message'",
                    )
                    .bind(&confirm.app_key)
                    .bind(&confirm.user_id)
                    .bind(to_i64(confirm.seq, "inbox sequence")?)
                    .bind(&confirm.message_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    outcomes.push(Err(exists.map(|_| None).ok_or(StoreError::NotFound)));
                }
            },
        }
    }
    for chunk in rows.chunks(GROUP_ROWS) {
        let sql = format!(
            "INSERT INTO inbox (app_key, user_id, seq, kind, message_id, sender_id, recipients, body, headers, \
             peer_id, created_at) VALUES {}",
            value_tuples(Engine::Sqlite, chunk.len(), 11, 0)
        );
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = query
                .bind(row.app_key)
                .bind(row.user_id)
                .bind(row.seq)
                .bind(row.kind)
                .bind(row.message_id)
                .bind(row.sender_id)
                .bind(row.recipients.as_str())
                .bind(row.body)
                .bind(row.headers)
                .bind(row.peer_id)
                .bind(row.at);
        }
        query.execute(&mut *tx).await.map_err(insert_error)?;
    }
    Ok(outcomes)
}

/// The SQLite group commit of inbox writes (as for new sessions, see the module documentation): every write
/// that queued while the previous commit synced goes into one transaction, in arrival order (so each user's
/// sequence numbers follow it), and is answered after that commit. If the transaction fails, each write is
/// redone in its own so that each gets its own answer.
async fn write_inboxes_in_groups(
    pool: AnyPool,
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    mut pending: tokio::sync::mpsc::Receiver<InboxWrite>,
) {
    let mut batch: Vec<InboxWrite> = Vec::with_capacity(MAX_INBOX_BATCH);
    let mut connection = WriterConnection::new(&pool);
    while connection.next_group(&mut pending, &mut batch, MAX_INBOX_BATCH).await {
        let _writer = writer.lock().await;
        let grouped: StoreResult<Vec<Result<Vec<u64>, ConfirmOutcome>>> = async {
            let mut tx = sqlx::Connection::begin_with(connection.get().await?, "BEGIN IMMEDIATE").await?;
            let outcomes = write_group(&mut tx, &batch).await?;
            tx.commit().await?;
            Ok(outcomes)
        }
        .await;
        connection.keep_if(&grouped);
        match grouped {
            Ok(outcomes) => {
                for (write, outcome) in batch.drain(..).zip(outcomes) {
                    match (write, outcome) {
                        (InboxWrite::Append(_, answer), Ok(seqs)) => {
                            let _ = answer.send(Ok(seqs));
                        }
                        (InboxWrite::Confirm(_, answer), Err(confirmed)) => {
                            let _ = answer.send(confirmed);
                        }
                        _ => {}
                    }
                }
            }
            Err(_) => {
                for write in batch.drain(..) {
                    match write {
                        InboxWrite::Append(message, answer) => {
                            let result = async {
                                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                                let seqs = append_in(&mut tx, &message).await?;
                                tx.commit().await?;
                                Ok(seqs)
                            }
                            .await;
                            let _ = answer.send(result);
                        }
                        InboxWrite::Confirm(confirm, answer) => {
                            let result = async {
                                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                                let outcome = confirm_in(&mut tx, &confirm).await?;
                                tx.commit().await?;
                                Ok(outcome)
                            }
                            .await;
                            let _ = answer.send(result);
                        }
                    }
                }
            }
        }
    }
}

/// Appends one row to a user's inbox.
#[allow(clippy::too_many_arguments)]
async fn insert_inbox_row(
    connection: &mut sqlx::AnyConnection,
    app_key: &str,
    user_id: &str,
    seq: u64,
    kind: &str,
    message: &MessageRecord,
    recipients: &str,
    peer_id: Option<&str>,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO inbox (app_key, user_id, seq, kind, message_id, sender_id, recipients, body, headers, peer_id, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(app_key)
    .bind(user_id)
    .bind(to_i64(seq, "inbox sequence")?)
    .bind(kind)
    .bind(&message.id)
    .bind(&message.sender_id)
    .bind(recipients)
    .bind(&message.text)
    .bind(&message.headers)
    .bind(peer_id)
    .bind(to_millis(at))
    .execute(connection)
    .await
    .map_err(insert_error)?;
    Ok(())
}

fn inbox_from_row(row: &AnyRow, app_key: &str) -> StoreResult<InboxEntry> {
    let kind: String = row.try_get("kind")?;
    let created_at = get_time(row, "created_at")?;
    let item = match kind.as_str() {
        "message" => {
            let recipients: String = row.try_get("recipients")?;
            InboxItem::Message(MessageRecord {
                id: row.try_get("message_id")?,
                app_key: app_key.to_owned(),
                sender_id: row.try_get("sender_id")?,
                recipient_ids: serde_json::from_str(&recipients).map_err(|_| corrupt("inbox recipients"))?,
                text: row.try_get("body")?,
                headers: row.try_get("headers")?,
                created_at,
            })
        }
        "receipt" => InboxItem::Receipt {
            message_id: row.try_get("message_id")?,
            recipient_id: row.try_get::<Option<String>, _>("peer_id")?.ok_or_else(|| corrupt("receipt"))?,
            at: created_at,
        },
        _ => return Err(corrupt("inbox kind")),
    };
    Ok(InboxEntry { seq: get_u64(row, "seq")?, item })
}

/// Inserts a secret row on a connection or in a transaction.
async fn insert_secret(connection: &mut sqlx::AnyConnection, secret: &SecretRecord) -> StoreResult<()> {
    sqlx::query(&format!("INSERT INTO app_secrets ({SECRET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
        .bind(&secret.id)
        .bind(&secret.app_key)
        .bind(&secret.sealed)
        .bind(&secret.fingerprint)
        .bind(to_millis(secret.created_at))
        .bind(secret.last_used_at.map(to_millis))
        .bind(secret.retired_at.map(to_millis))
        .execute(connection)
        .await
        .map_err(insert_error)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn patterns_escape_wildcards() {
        assert_eq!(contains_pattern("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
        assert_eq!(contains_pattern(""), "%%");
    }

    #[test]
    fn timestamps_round_trip_and_refuse_nonsense() {
        let at = DateTime::from_timestamp_millis(1_800_000_000_123).unwrap();
        assert_eq!(from_millis(to_millis(at)).unwrap(), at);
        assert!(matches!(from_millis(i64::MAX), Err(StoreError::Unavailable(_))));
        assert!(matches!(from_millis(i64::MIN), Err(StoreError::Unavailable(_))));
        assert_eq!(from_millis_opt(None).unwrap(), None);
        assert!(to_i64(u64::MAX, "ttl").is_err());
    }

    /// Every pooled connection has the durability and integrity settings.
    #[tokio::test]
    async fn connections_are_configured() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("callbox.db")).await.unwrap();
        let mut held = Vec::new();
        for _ in 0..POOL_SIZE {
            let mut connection = store.pool.acquire().await.unwrap();
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *connection).await.unwrap();
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *connection).await.unwrap();
            let foreign_keys: i64 =
                sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&mut *connection).await.unwrap();
            let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(&mut *connection).await.unwrap();
            assert_eq!(journal, "wal");
            assert_eq!(synchronous, 2, "FULL");
            assert_eq!(foreign_keys, 1);
            assert_eq!(busy, 5000);
            held.push(connection);
        }
        drop(held);
        store.close().await;
    }
}
