//! Layered configuration: built-in defaults, then a TOML file, then `CALLBOX_*` environment variables, then
//! command-line flags (flags win). Nested keys use `__` in the environment: `CALLBOX_LOGIN__MAX_FAILURES_PER_USER=10`.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything `callbox serve` can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Data directory: SQLite database, master key and admin token files.
    pub data: PathBuf,
    /// The master key (base64 of 32 bytes). When unset, `<data>/master.key` is used (created on first start).
    /// Every node of a cluster must have the same one.
    pub master_key: Option<Redacted>,
    /// `postgres://...` to share one PostgreSQL database between nodes; unset: SQLite in the data directory.
    pub database_url: Option<Redacted>,
    /// `redis://...` to share login attempt counters, lockouts and sign-up rates between nodes; unset: kept in
    /// this node's memory.
    pub redis_url: Option<Redacted>,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
    /// Take the client address from the last `X-Forwarded-For` entry (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Create a demo application on first start.
    pub demo_app: bool,
    /// Request limits.
    pub limits: Limits,
    /// Password hashing.
    pub passwords: PasswordConfig,
    /// Login attempt limits.
    pub login: LoginConfig,
    /// The read cache of sessions and applications.
    pub cache: CacheConfig,
    /// The realtime connection (`/v1/realtime`): limits, heartbeats, message retention (docs/realtime.md).
    pub realtime: crate::realtime::RealtimeConfig,
    /// Calls over the realtime connection: timeouts and limits (docs/calls.md).
    pub calls: crate::realtime::CallsConfig,
    /// The STUN/TURN servers handed to sessions with `calling`, and coturn's shared secret (docs/calls.md).
    pub turn: TurnConfig,
    /// Connection timeouts and caps ([`crate::listener`]).
    pub connections: ConnectionConfig,
    /// A separate address for `GET /metrics` (e.g. `127.0.0.1:9090`); when set, the main listener answers 404
    /// for `/metrics`. Unset: `/metrics` is on the main listener.
    pub metrics_listen: Option<SocketAddr>,
    /// When set, `GET /metrics` needs `Authorization: Bearer <this token>` (on whichever listener serves it).
    pub metrics_token: Option<Redacted>,
    /// TLS on the main listener ([`crate::tls`]).
    pub tls: TlsConfig,
    /// What the legacy SDK is told (`GET /v1/configuration/user`).
    pub legacy: LegacyConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data: PathBuf::from("./callbox-data"),
            master_key: None,
            database_url: None,
            redis_url: None,
            log_format: LogFormat::Text,
            trust_forwarded_for: false,
            demo_app: true,
            limits: Limits::default(),
            passwords: PasswordConfig::default(),
            login: LoginConfig::default(),
            cache: CacheConfig::default(),
            realtime: crate::realtime::RealtimeConfig::default(),
            calls: crate::realtime::CallsConfig::default(),
            turn: TurnConfig::default(),
            connections: ConnectionConfig::default(),
            metrics_listen: None,
            metrics_token: None,
            tls: TlsConfig::default(),
            legacy: LegacyConfig::default(),
        }
    }
}

/// `[tls]`: the main listener speaks HTTPS when both are set ([`crate::tls`]); one without the other is a
/// start-up error.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct TlsConfig {
    /// PEM file with the server certificate first, then any intermediates.
    pub cert: Option<PathBuf>,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

impl TlsConfig {
    /// Whether TLS is asked for (both or either file given; [`crate::tls::ServerTls::load`] refuses either alone).
    pub fn is_enabled(&self) -> bool {
        self.cert.is_some() || self.key.is_some()
    }
}

/// `[legacy]`: what the legacy SDK is told.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LegacyConfig {
    /// The realtime host `GET /v1/configuration/user` hands out (`host[:port]`). Unset: the `Host` header of
    /// that request, i.e. this listener as the client reached it.
    pub realtime_host: Option<String>,
}

impl LegacyConfig {
    /// Refuses a `realtime_host` the SDK could not use: it adds the scheme and path itself, so the value is only
    /// `host` or `host:port`.
    pub fn check(&self) -> Result<(), String> {
        match self.realtime_host.as_deref() {
            Some(host) if host.trim().is_empty() || host.contains("://") || host.contains(['/', ' ', '?', '#']) => {
                Err(format!("legacy.realtime_host must be host or host:port (no scheme, no path), not {host:?}"))
            }
            _ => Ok(()),
        }
    }
}

/// `[turn]`: what `GET /v1/configuration/user` hands a session with `calling` as `iceServers`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct TurnConfig {
    /// TURN URLs (`turn:host:3478?transport=udp`, `turns:host:5349?transport=tcp`), given with a credential.
    pub urls: Vec<String>,
    /// STUN URLs (`stun:host:3478`), given without a credential.
    pub stun_urls: Vec<String>,
    /// coturn's `static-auth-secret`: TURN passwords are HMAC-SHA1 of the username with it. Unset: no TURN
    /// credentials are handed out (the TURN URLs are left out too).
    pub shared_secret: Option<Redacted>,
    /// Lifetime of a TURN credential, seconds (never beyond the session's expiry).
    pub credential_ttl_seconds: u64,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self { urls: Vec::new(), stun_urls: Vec::new(), shared_secret: None, credential_ttl_seconds: 3600 }
    }
}

/// Request limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Limits {
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Time a request may take before it is answered 503, seconds.
    pub request_timeout_seconds: u64,
    /// Allowed distance of `X-Timestamp` from server time on signed calls, seconds.
    pub signed_call_skew_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            request_timeout_seconds: 15,
            signed_call_skew_seconds: callbox_core::signing::DEFAULT_TIMESTAMP_SKEW_SECONDS,
        }
    }
}

/// Password hashing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct PasswordConfig {
    /// Hashes run at once (blocking threads); default: half the cores, at least 1, so that logins can never take
    /// every core from ticket exchanges.
    pub hash_workers: Option<usize>,
    /// Logins that may wait for a worker; more are refused with `rate_limited`.
    pub hash_queue: usize,
    /// How long a login or sign-up that finds the queue full waits for a place before it is refused with
    /// `rate_limited`, milliseconds.
    pub queue_wait_milliseconds: u64,
    /// argon2id memory, KiB (OWASP minimum 19456).
    pub memory_kib: u32,
    /// argon2id iterations (OWASP minimum 2).
    pub iterations: u32,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self { hash_workers: None, hash_queue: 32, queue_wait_milliseconds: 1000, memory_kib: 19_456, iterations: 2 }
    }
}

/// Login attempt limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LoginConfig {
    /// Failed logins for one account before it locks.
    pub max_failures_per_user: u32,
    /// Failed logins from one client address (over all accounts of an app) in one minute, beyond which that
    /// address's further attempts are refused with `rate_limited` until the minute ends. No account is locked
    /// because of its address. (`max_failures_per_ip` is read as this, for older configuration files.)
    #[serde(alias = "max_failures_per_ip")]
    pub max_failures_per_ip_per_minute: u32,
    /// First lockout of an account, seconds; each further failure after a lockout ends doubles it.
    pub lockout_base_seconds: u64,
    /// Longest lockout, seconds.
    pub lockout_max_seconds: u64,
    /// Sign-ups allowed per client address per minute.
    pub signups_per_ip_per_minute: u32,
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            max_failures_per_user: 5,
            max_failures_per_ip_per_minute: 20,
            lockout_base_seconds: 30,
            lockout_max_seconds: 900,
            signups_per_ip_per_minute: 30,
        }
    }
}

/// The read cache of sessions, users, applications and active secrets ([`crate::store::cached`]). A change made on this
/// node is seen here at once; a change made on another node (PostgreSQL, when the cache is turned on there) is
/// seen here within `ttl_milliseconds`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct CacheConfig {
    /// Longest a copy is kept, milliseconds; 0 turns the cache off. Unset: 30 s with SQLite (this process is the
    /// only writer, so every change drops its copies at once), off with PostgreSQL (so that a revocation made on
    /// one node holds on every node from its next request; set e.g. 250 to trade that for read throughput, and
    /// another node's revocation is then seen within that time).
    pub ttl_milliseconds: Option<u64>,
    /// Most sessions kept (least recently used go first); 0 turns the cache off.
    pub max_sessions: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { ttl_milliseconds: None, max_sessions: 50_000 }
    }
}

/// Connection timeouts and caps, enforced by the accept loop ([`crate::listener`]). Caps count open TCP
/// connections; 0 means no cap.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ConnectionConfig {
    /// Time a new connection has to deliver its first request's headers, and a kept-alive one the next
    /// request's headers from their first byte, seconds; slower connections are closed.
    pub header_timeout_seconds: u64,
    /// Time a kept-alive connection may stay silent between requests, seconds. Keep it above the idle timeout of
    /// a proxy in front (60 s for most), so that the proxy, not Callbox, closes idle connections.
    pub idle_timeout_seconds: u64,
    /// Plain HTTP connections from one client address (an IPv6 /64 counts as one); more are answered 429
    /// `rate_limited` at once and closed. Unset: 256, or no cap when `trust_forwarded_for` is on (every
    /// connection then comes from the proxy).
    pub max_per_address: Option<usize>,
    /// Plain HTTP connections in all; more are answered 503 at once and closed. Unset: half of the
    /// file-descriptor limit left after a headroom of an eighth (at least 128).
    pub max_total: Option<usize>,
    /// Authenticated realtime connections (promoted by the realtime layer) from one client address. Unset: as
    /// `max_per_address`.
    pub realtime_max_per_address: Option<usize>,
    /// Authenticated realtime connections in all. Unset: the other half of the file descriptors.
    pub realtime_max_total: Option<usize>,
    /// Threads that serve the main listener's connections, each with a single-threaded runtime of its own (a
    /// connection stays on one thread: fewer thread switches per request than on shared workers). Unset: one per
    /// CPU core. 0: connections are served by the main runtime's workers, with everything else.
    pub threads: Option<usize>,
}

impl ConnectionConfig {
    /// The per-address cap when `max_per_address` is unset (and `trust_forwarded_for` is off).
    pub const DEFAULT_MAX_PER_ADDRESS: usize = 256;
    /// Each total cap when the file-descriptor limit cannot be read.
    pub const FALLBACK_MAX_TOTAL: usize = 4096;
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            header_timeout_seconds: 5,
            idle_timeout_seconds: 75,
            max_per_address: None,
            max_total: None,
            realtime_max_per_address: None,
            realtime_max_total: None,
            threads: None,
        }
    }
}

/// Default cache age with PostgreSQL (several nodes write): off.
pub const SHARED_DATABASE_CACHE_TTL: std::time::Duration = std::time::Duration::ZERO;
/// Default cache age with SQLite (this process is the only writer).
pub const LOCAL_DATABASE_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// Log output format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per event.
    Json,
}

/// A string that never shows in `Debug` (the master key).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Redacted(pub String);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Config {
    /// The layers below the flags: defaults, the TOML file (if given), then `CALLBOX_*` variables.
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        // CALLBOX_URL, CALLBOX_ADMIN_TOKEN and CALLBOX_CONFIG belong to the CLI, not to the server.
        figment.merge(Env::prefixed("CALLBOX_").ignore(&["URL", "ADMIN_TOKEN", "CONFIG"]).split("__"))
    }

    /// Loads every layer, with `flags` (only the flags actually given) on top.
    pub fn load(file: Option<&Path>, flags: impl Serialize) -> Result<Config, Box<figment::Error>> {
        Config::figment(file).merge(Serialized::globals(flags)).extract().map_err(Box::new)
    }

    /// Path of the SQLite database.
    pub fn database_path(&self) -> PathBuf {
        self.data.join("callbox.db")
    }

    /// Path of the master key file.
    pub fn master_key_path(&self) -> PathBuf {
        self.data.join("master.key")
    }

    /// Path of the admin token file.
    pub fn admin_token_path(&self) -> PathBuf {
        self.data.join("admin-token")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        listen: Option<SocketAddr>,
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure type is figment's, not ours
    fn flags_beat_environment_beat_file_beat_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "callbox.toml",
                "listen = \"127.0.0.1:1111\"\ndata = \"/from/file\"\ndemo_app = false\n[login]\nmax_failures_per_user = 7\n",
            )?;
            let file = Path::new("callbox.toml");
            let from_file = Config::load(Some(file), Flags { listen: None }).map_err(|e| e.to_string())?;
            assert_eq!(from_file.listen.port(), 1111);
            assert_eq!(from_file.login.max_failures_per_user, 7);
            assert!(!from_file.demo_app);
            assert_eq!(from_file.login.max_failures_per_ip_per_minute, 20, "unset keys keep their defaults");

            jail.set_env("CALLBOX_LISTEN", "127.0.0.1:2222");
            jail.set_env("CALLBOX_LOGIN__MAX_FAILURES_PER_USER", "9");
            jail.set_env("CALLBOX_URL", "http://ignored.example");
            let from_env = Config::load(Some(file), Flags { listen: None }).map_err(|e| e.to_string())?;
            assert_eq!(from_env.listen.port(), 2222);
            assert_eq!(from_env.login.max_failures_per_user, 9);
            assert_eq!(from_env.data, PathBuf::from("/from/file"));

            let from_flags =
                Config::load(Some(file), Flags { listen: Some("127.0.0.1:3333".parse().map_err(|_| "addr")?) })
                    .map_err(|e| e.to_string())?;
            assert_eq!(from_flags.listen.port(), 3333);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure type is figment's, not ours
    fn connection_and_metrics_keys_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            let defaults = Config::load(None, Flags { listen: None }).map_err(|e| e.to_string())?;
            assert_eq!(defaults.connections, ConnectionConfig::default());
            assert_eq!((defaults.metrics_listen, defaults.metrics_token), (None, None));
            jail.set_env("CALLBOX_METRICS_LISTEN", "127.0.0.1:9090");
            jail.set_env("CALLBOX_METRICS_TOKEN", "scrape-me");
            jail.set_env("CALLBOX_CONNECTIONS__HEADER_TIMEOUT_SECONDS", "2");
            jail.set_env("CALLBOX_CONNECTIONS__MAX_PER_ADDRESS", "0");
            let config = Config::load(None, Flags { listen: None }).map_err(|e| e.to_string())?;
            assert_eq!(config.metrics_listen, Some(SocketAddr::from(([127, 0, 0, 1], 9090))));
            assert_eq!(config.metrics_token, Some(Redacted("scrape-me".into())));
            assert_eq!(config.connections.header_timeout_seconds, 2);
            assert_eq!(config.connections.max_per_address, Some(0));
            assert_eq!(config.connections.idle_timeout_seconds, 75, "unset keys keep their defaults");
            Ok(())
        });
    }

    #[test]
    fn the_realtime_host_is_a_host_with_an_optional_port() {
        let host = |value: &str| LegacyConfig { realtime_host: Some(value.into()) }.check();
        assert_eq!(LegacyConfig::default().check(), Ok(()));
        assert_eq!(host("rt.example.com"), Ok(()));
        assert_eq!(host("rt.example.com:8443"), Ok(()));
        for bad in ["https://rt.example.com", "rt.example.com/v1", "", " "] {
            assert!(host(bad).is_err_and(|message| message.starts_with("legacy.realtime_host must be")), "{bad:?}");
        }
    }

    #[test]
    fn the_master_key_never_shows_in_debug() {
        let config = Config {
            master_key: Some(Redacted("c2VjcmV0LWtleS1ieXRlcw==".into())),
            metrics_token: Some(Redacted("bWV0cmljcy10b2tlbg".into())),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("c2VjcmV0"));
        assert!(!format!("{config:?}").contains("bWV0cmljcy10b2tlbg"));
    }
}
