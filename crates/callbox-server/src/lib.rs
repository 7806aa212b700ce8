//! # callbox-server
//!
//! The Callbox server as a library, so tests can drive it in-process and the `callbox` binary stays thin.
//! Requests flow handlers → domain → store (docs/architecture.md; `scripts/check-architecture.sh` keeps it so):
//!
//! - [`http::router`] builds every route over an [`http::AppState`]: the client API of PROTOCOL §6 ([`http::client`]),
//!   the admin API ([`http::admin`], docs/admin-api.md), the dashboard ([`http::dashboard`], docs/dashboard.md),
//!   health, readiness, metrics and `/openapi.json`. Handlers parse and render with the `callbox-wire` bodies and
//!   call one [`domain::Callbox`] method; [`http::ApiError`] renders every refusal as the PROTOCOL §7 JSON.
//! - [`domain::Callbox`] is the domain, one module per group of use cases: [`domain::apps`], [`domain::sessions`]
//!   (exchange, signed calls, renewal), [`domain::users`] (platform-managed users), [`domain::admin`]. It refuses
//!   with [`domain::DomainError`], reads time from a [`domain::Clock`], and alone holds the store. It owns the
//!   [`passwords::PasswordHasher`] pool, the [`limits::Limits`] and the [`audit::AuditLog`].
//! - [`store::Store`] is the persistence trait; [`store::sql::SqlStore`] implements it on SQLite or PostgreSQL, and
//!   [`store::cached::CachedStore`] is the read cache in front of it.
//! - [`crypto::MasterKey`] seals application secrets at rest and derives session secrets, so a copy of the
//!   database alone can neither mint tickets nor sign session calls.
//! - [`config::Config`] is the layered configuration (defaults, TOML file, `CALLBOX_*`, flags).
//! - [`listener`] is the accept loop: header and idle timeouts, connection caps, graceful shutdown; [`tls`] is
//!   its optional TLS (certificate loading, SIGHUP reload).
//! - [`open`] and [`run`] are the composition root: first-start bootstrap, bind, print the `listening` line, serve
//!   until SIGTERM.

pub mod audit;
pub mod config;
pub mod config_reference;
pub mod crypto;
pub mod data_dir;
pub mod domain;
pub mod http;
pub mod limits;
pub mod listener;
pub mod openapi;
pub mod passwords;
pub mod realtime;
pub mod store;
pub mod tls;

use crate::config::{Config, LogFormat};
use crate::crypto::{random_token, write_private_file, MasterKey};
use crate::domain::{Callbox, Clock, SystemClock, ADMIN_TOKEN_META};
use crate::http::AppState;
use crate::limits::SharedLimits;
use crate::store::cached::CachedStore;
use crate::store::sql::SqlStore;
use crate::store::Store;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::{Arc, OnceLock};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Data directory, key file or token file.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The master key in the configuration is not base64 of 32 bytes.
    #[error("the master key is invalid: {0}")]
    MasterKey(#[from] crypto::CryptoError),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    /// Password hashing parameters.
    #[error("password hashing parameters: {0}")]
    Argon2(String),
    /// The admin API refused something during bootstrap.
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    /// The data directory could not be prepared, or another server holds it.
    #[error(transparent)]
    DataDir(#[from] data_dir::DataDirError),
    /// `[tls]`: one file without the other, or files that cannot be read or used. (Not a `source`: the message
    /// already says it all, and error chains would print it twice.)
    #[error("tls: {0}")]
    Tls(tls::TlsError),
    /// A configuration value that cannot work, found before anything starts.
    #[error("{0}")]
    Config(String),
}

impl From<tls::TlsError> for ServeError {
    fn from(error: tls::TlsError) -> Self {
        ServeError::Tls(error)
    }
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let context = context.into();
    move |source| ServeError::Io { context, source }
}

/// Installs the log subscriber (text or JSON, filtered by `RUST_LOG`, default `info`). Logs go to stderr so that
/// stdout carries only the machine-readable `listening` line.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder (installed once, shared by every server in the process).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|()| handle)
        })
        .clone()
}

/// What first-start bootstrap made, for the one-time human message.
#[derive(Debug, Default)]
pub struct Bootstrapped {
    /// The admin token, when it was just created.
    pub admin_token: Option<String>,
    /// The demo application's key and secret, when it was just created.
    pub demo_app: Option<(String, String)>,
    /// Whether the master key file was just created.
    pub master_key_created: bool,
    /// The data directory's lock: whoever serves must keep it until the server stops.
    pub data_dir_lock: Option<data_dir::DataDirLock>,
}

/// Opens the data directory (locked, see [`data_dir`]): master key, database (migrated), admin token, demo app;
/// the domain runs on the machine's clock.
pub async fn open(config: &Config) -> Result<(Callbox, Bootstrapped), ServeError> {
    open_with_clock(config, Arc::new(SystemClock)).await
}

/// [`open`] with the domain's time taken from `clock` (tests move it to expire sessions and lockouts).
pub async fn open_with_clock(config: &Config, clock: Arc<dyn Clock>) -> Result<(Callbox, Bootstrapped), ServeError> {
    let mut made = Bootstrapped { data_dir_lock: Some(data_dir::prepare(config)?), ..Bootstrapped::default() };
    let master = match &config.master_key {
        Some(text) => MasterKey::from_base64(&text.0)?,
        None => {
            let path = config.master_key_path();
            let (key, created) =
                MasterKey::load_or_create(&path).map_err(io_error(format!("master key {}", path.display())))?;
            made.master_key_created = created;
            key
        }
    };
    let store: Arc<dyn Store> = match &config.database_url {
        Some(url) => CachedStore::wrap(
            Arc::new(SqlStore::connect_postgres(&url.0).await?),
            &config.cache,
            config::SHARED_DATABASE_CACHE_TTL,
        ),
        None => CachedStore::wrap(
            Arc::new(SqlStore::open(&config.database_path()).await?),
            &config.cache,
            config::LOCAL_DATABASE_CACHE_TTL,
        ),
    };
    let shared_limits = match &config.redis_url {
        Some(url) => Some(
            SharedLimits::connect(&url.0, &config.login)
                .await
                .map_err(|error| ServeError::Bootstrap(format!("cannot reach Redis: {error}")))?,
        ),
        None => None,
    };
    if store.get_meta(ADMIN_TOKEN_META).await?.is_none() {
        let token = format!("cbadm_{}", random_token(32));
        let path = config.admin_token_path();
        if path.exists() {
            std::fs::remove_file(&path).map_err(io_error(format!("replacing {}", path.display())))?;
        }
        write_private_file(&path, format!("{token}\n").as_bytes())
            .map_err(io_error(format!("admin token {}", path.display())))?;
        store.set_meta(ADMIN_TOKEN_META, &hex::encode(Sha256::digest(token.as_bytes()))).await?;
        made.admin_token = Some(token);
    }
    check_master_key(&*store, &master).await?;
    // The composition root: the only place besides the domain that holds the store, for bootstrap before the
    // domain exists.
    let callbox = Callbox::new(store, master, config.clone(), shared_limits, clock)
        .map_err(|e| ServeError::Argon2(e.to_string()))?;
    let redis_url = config.redis_url.as_ref().map(|url| url.0.as_str());
    callbox
        .realtime()
        .start(redis_url)
        .await
        .map_err(|error| ServeError::Bootstrap(format!("realtime fan-out: {error}")))?;
    if config.demo_app {
        if let Some(created) =
            callbox.bootstrap_demo_app().await.map_err(|e| ServeError::Bootstrap(e.message.to_string()))?
        {
            made.demo_app = Some((created.app.key, created.secret.to_string()));
        }
    }
    Ok((callbox, made))
}

/// Metadata holding a value sealed by the master key, to recognise the key on later starts.
const MASTER_KEY_CHECK_META: &str = "master_key_check";

/// Refuses a master key that is not the one the database was started with (a wrong `CALLBOX_MASTER_KEY`,
/// another node's key file): every exchange would fail otherwise. The first start records the check.
async fn check_master_key(store: &dyn Store, master: &MasterKey) -> Result<(), ServeError> {
    const CONTEXT: &[u8] = b"callbox/master-key-check";
    match store.get_meta(MASTER_KEY_CHECK_META).await? {
        Some(sealed) => {
            let sealed = hex::decode(sealed.trim()).map_err(|_| crypto::CryptoError::Unseal)?;
            master.open(CONTEXT, &sealed)?;
        }
        None => store.set_meta(MASTER_KEY_CHECK_META, &hex::encode(master.seal(CONTEXT, b"callbox"))).await?,
    }
    Ok(())
}

/// Runs the server until SIGTERM or Ctrl-C: bootstrap, bind, print `{"event":"listening","url":...}` on stdout,
/// serve, drain in-flight requests, return.
pub async fn run(config: Config) -> Result<(), ServeError> {
    // Checks first: a bad certificate, key or realtime host is refused before the data directory is touched or a
    // port bound.
    config.legacy.check().map_err(ServeError::Config)?;
    let tls = tls::ServerTls::load(&config.tls)?.map(Arc::new);
    // The recorder first: metric handles made before it exists would count into nothing.
    let metrics = metrics_handle();
    let (callbox, mut made) = open(&config).await?;
    // Held until the server stops: a second server on this data directory is refused meanwhile.
    let _data_dir_lock = made.data_dir_lock.take();
    let file_descriptor_limit = listener::raise_file_descriptor_limit();
    let mut listeners = listener::Listeners::bind(&config)
        .await
        .map_err(|(address, source)| ServeError::Io { context: format!("binding {address}"), source })?;
    listeners.tls = tls.as_ref().map(|tls| tls.acceptor());
    listeners.threads = listener::ConnectionThreads::configured(&config.connections)
        .map_err(io_error("starting the connection threads"))?;
    let connection_threads = listeners.threads.as_ref().map_or(0, listener::ConnectionThreads::count);
    // Before the `listening` line: a SIGHUP sent once it is printed must find the handler (its default ends the
    // process).
    #[cfg(unix)]
    let reloader = match &tls {
        Some(tls) => Some(tls::reload_on_hangup(Arc::clone(tls)).map_err(io_error("installing the SIGHUP handler"))?),
        None => None,
    };
    let address = listeners.main_address().map_err(io_error("reading the bound address"))?;
    let metrics_address = listeners.metrics_address().map_err(io_error("reading the bound metrics address"))?;
    let connections = listener::ConnectionSettings::resolve(&config, file_descriptor_limit);
    announce_first_start(&made, &config);
    let state = AppState { callbox: Arc::new(callbox.clone()), metrics };

    let housekeeping = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tick.tick().await;
            match callbox.purge_expired().await {
                Ok(removed) if removed > 0 => tracing::info!(removed, "purged expired nonces and sessions"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "housekeeping failed"),
            }
        }
    });

    let mut stdout = std::io::stdout().lock();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut listening = serde_json::json!({ "event": "listening", "url": format!("{scheme}://{address}") });
    if let Some(metrics_address) = metrics_address {
        listening["metricsUrl"] = serde_json::json!(format!("http://{metrics_address}/metrics"));
    }
    let _ = writeln!(stdout, "{listening}");
    let _ = stdout.flush();
    drop(stdout);
    tracing::info!(
        %address,
        tls = tls.is_some(),
        metrics = %metrics_address.map_or_else(|| "on the main listener".to_owned(), |address| address.to_string()),
        data = %config.data.display(),
        file_descriptor_limit = %file_descriptor_limit.map_or_else(|| "unknown".to_owned(), |limit| limit.to_string()),
        max_connections = %listener::describe_cap(connections.max_total),
        max_connections_per_address = %listener::describe_cap(connections.max_per_address),
        connection_threads,
        "callbox listening"
    );

    listeners.serve(state, connections, shutdown_signal()).await;
    housekeeping.abort();
    #[cfg(unix)]
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    tracing::info!("callbox stopped");
    Ok(())
}

fn announce_first_start(made: &Bootstrapped, config: &Config) {
    // Shown once, to the human who started the server; stderr keeps stdout machine-readable.
    let mut err = std::io::stderr().lock();
    if let Some(token) = &made.admin_token {
        let _ = writeln!(
            err,
            "\nAdmin token (shown once; also in {}, mode 0600):\n  {token}\n",
            config.admin_token_path().display()
        );
    }
    if let Some((key, secret)) = &made.demo_app {
        let _ = writeln!(
            err,
            "Demo application created (secret shown once):\n  applicationKey:    {key}\n  applicationSecret: {secret}\n\
             WARNING: platform-managed users are ON for the demo app: anyone can sign up. Switch it off before going \
             live:\n  callbox app set {key} --platform-user-auth false\n"
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; draining in-flight requests");
}
