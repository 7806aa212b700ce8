//! The domain: what Callbox does, independent of HTTP. Handlers parse a request and render an answer; this
//! module decides; the [`Store`] persists, reachable from nowhere else. Refusals are [`DomainError`]s (a §7
//! reason, a sentence, a wait), rendered by `http`. Time comes from the [`Clock`] the service was built with.
//!
//! One module per group of use cases, each adding methods to [`Callbox`]:
//! - [`apps`]: applications, their settings and secrets.
//! - [`sessions`]: ticket → session exchange, re-authorization, signed calls, renewal, ending a session.
//! - [`users`]: platform-managed users (sign-up, login) and their administration.
//! - [`admin`]: the admin token, revocation, listings, the audit trail, the ticket debugger, readiness.
//! - [`calls`]: the STUN/TURN servers and TURN credentials of a session with `calling`.
//! - [`call_records`]: an application's recent calls, for the admin API, the CLI and the dashboard.
//! - [`legacy`]: the legacy SDK's keys, channels, transports and MXP frames, over the same inboxes;
//!   [`legacy_calls`]: its app-to-app calls, relayed between the SDKs and recorded.
//! - [`messaging`]: realtime messages (what is stored for whom, durably before acknowledgement) and inboxes.

pub mod admin;
pub mod apps;
pub mod call_records;
pub mod calls;
pub mod clock;
pub mod error;
pub mod legacy;
pub mod legacy_calls;
pub mod messaging;
pub mod sessions;
pub mod users;

/// The records the domain answers with (handlers read them; only the domain reaches the store).
pub use crate::store::{
    AppRecord, CallRecord, Capability, InboxEntry, InboxItem, MessageRecord, SecretRecord, SessionRecord, UserRecord,
};
pub use apps::{AppSettings, AppWithSecrets, CreatedApp, NewSecret};
pub use clock::{Clock, SystemClock, TestClock};
pub use error::{DomainError, DomainResult};
pub use sessions::{Grant, SessionRequest};

use crate::audit::{AuditLog, AuthEvent, EventKind};
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::limits::{AttemptLimiter, Limits, SharedLimits};
use crate::passwords::PasswordHasher;
use crate::store::Store;
use callbox_core::{Secret, TicketPolicy};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Metadata name of the admin token's SHA-256 (hex).
pub const ADMIN_TOKEN_META: &str = "admin_token_sha256";
/// Metadata name of the demo application's key (set once it was created).
pub const DEMO_APP_META: &str = "demo_app_created";

/// Largest lifetimes an operator may configure, seconds.
pub const MAX_TICKET_TTL_LIMIT: u64 = 7 * 24 * 3600;
/// Session lifetime bounds, seconds.
pub const SESSION_TTL_RANGE: (u64, u64) = (60, 30 * 24 * 3600);
/// Largest clock skew an operator may configure, seconds.
pub const MAX_CLOCK_SKEW: u64 = 3600;

/// Who is calling: the client address and, from browsers, the page's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMeta {
    /// Client address.
    pub ip: IpAddr,
    /// The `Origin` header, when sent.
    pub origin: Option<String>,
}

impl RequestMeta {
    /// A caller with no origin (backends, tests).
    pub fn from_ip(ip: IpAddr) -> Self {
        Self { ip, origin: None }
    }
}

/// Whether a browser page at `origin` may call `app` (no `Origin` header: not a browser, allowed).
pub fn origin_allowed(app: &AppRecord, origin: Option<&str>) -> bool {
    origin.is_none_or(|origin| app.allowed_origins.iter().any(|allowed| allowed == "*" || allowed == origin))
}

/// An application with its active secrets opened, newest first.
#[derive(Debug, Clone)]
pub struct AppContext {
    /// The application.
    pub app: AppRecord,
    /// Active secrets, newest first (the first one signs).
    pub secrets: Vec<Secret>,
    /// Their ids, in the same order.
    pub secret_ids: Vec<String>,
}

impl AppContext {
    /// The ticket rules of this application.
    pub fn policy(&self) -> TicketPolicy {
        TicketPolicy {
            default_ttl: self.app.default_ticket_ttl,
            max_ttl: self.app.max_ticket_ttl,
            skew: self.app.clock_skew,
        }
    }
}

/// The Callbox domain service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Callbox {
    store: Arc<dyn Store>,
    master: MasterKey,
    passwords: PasswordHasher,
    limiter: Limits,
    audit: AuditLog,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    secret_touches: Arc<Mutex<HashMap<String, DateTime<Utc>>>>,
    auth_counters: Arc<AuthCounters>,
    /// This node's live realtime connections; told of every session revocation.
    realtime: crate::realtime::Hub,
    /// This node's legacy transport state (multi-frame assembly, rate limiters, long-poll counts).
    legacy: Arc<legacy::LegacyNode>,
}

/// `callbox_auth_total{kind,outcome,reason}` handles, made once per label set: building one through
/// `metrics::counter!` allocates and sorts the labels and searches the registry, once per signed call.
#[derive(Debug, Default)]
struct AuthCounters {
    made: std::sync::RwLock<HashMap<(EventKind, &'static str, &'static str), metrics::Counter>>,
}

impl AuthCounters {
    fn get(&self, kind: EventKind, outcome: &'static str, reason: &'static str) -> metrics::Counter {
        let key = (kind, outcome, reason);
        if let Some(counter) = self.made.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return counter.clone();
        }
        let counter =
            metrics::counter!("callbox_auth_total", "kind" => kind.as_str(), "outcome" => outcome, "reason" => reason);
        self.made.write().unwrap_or_else(|p| p.into_inner()).insert(key, counter.clone());
        counter
    }
}

/// Seconds as a [`Duration`], saturating instead of overflowing.
fn seconds(s: u64) -> Duration {
    Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000).min(i64::MAX / 1000))
}

impl Callbox {
    /// Assembles the service.
    pub fn new(
        store: Arc<dyn Store>,
        master: MasterKey,
        config: Config,
        shared_limits: Option<SharedLimits>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, argon2::Error> {
        Ok(Self {
            passwords: PasswordHasher::new(&config.passwords)?,
            limiter: Limits { local: AttemptLimiter::new(&config.login), shared: shared_limits },
            audit: AuditLog::default(),
            realtime: crate::realtime::Hub::new(store.clone(), config.realtime.clone(), config.calls.clone()),
            legacy: Arc::new(legacy::LegacyNode::new(&config.realtime, &config.calls)),
            store,
            master,
            config: Arc::new(config),
            clock,
            secret_touches: Arc::new(Mutex::new(HashMap::new())),
            auth_counters: Arc::default(),
        })
    }

    /// The server configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Now, by the service's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn refuse(&self, mut ev: AuthEvent, error: &DomainError) {
        ev.outcome = "refused";
        ev.reason = Some(error.reason.as_str());
        ev.detail = Some(error.message.to_string());
        self.auth_counters.get(ev.kind, "refused", error.reason.as_str()).increment(1);
        self.audit.record(ev);
    }

    fn accept(&self, mut ev: AuthEvent) {
        ev.outcome = "accepted";
        self.auth_counters.get(ev.kind, "accepted", "").increment(1);
        self.audit.record(ev);
    }

    /// Records the outcome of an authentication in the audit trail and the metrics.
    fn audit_outcome<T>(&self, ev: AuthEvent, result: &DomainResult<T>) {
        match result {
            Ok(_) => self.accept(ev),
            Err(error) => self.refuse(ev, error),
        }
    }
}
