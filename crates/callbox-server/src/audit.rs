//! Audit events: one structured log event (target `callbox::audit`) per accepted or refused authentication,
//! and the latest few hundred per application kept in memory for the admin API and dashboard.
//!
//! Events carry the application, user, reason, client address and at most a fingerprint of a credential, never
//! the credential itself.

use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Events kept per application.
const KEEP_PER_APP: usize = 500;

/// What was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Ticket or JWT exchanged for a session.
    Exchange,
    /// Session re-authorized with a new ticket.
    Reauthorize,
    /// Platform-managed sign-up.
    Signup,
    /// Platform-managed login.
    Login,
    /// A session-signed call.
    SignedCall,
}

/// One authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub kind: EventKind,
    /// `accepted` or `refused`.
    pub outcome: &'static str,
    /// The §7 reason when refused.
    pub reason: Option<&'static str>,
    /// Application key (as claimed, when refused before it was known).
    pub app_key: Option<String>,
    /// The user, when known.
    pub user_id: Option<String>,
    /// Client address.
    pub client_ip: Option<IpAddr>,
    /// The refusal's explanation, or what was granted (never a credential).
    pub detail: Option<String>,
    /// Fingerprint of the credential presented, to correlate events without revealing it.
    pub credential: Option<String>,
}

/// The in-memory store of recent events.
#[derive(Debug, Clone, Default)]
pub struct AuditLog {
    recent: Arc<Mutex<HashMap<String, VecDeque<AuthEvent>>>>,
}

impl EventKind {
    /// The name in the admin API's event list (`signed_call`, ...).
    pub const fn wire_name(self) -> &'static str {
        match self {
            EventKind::SignedCall => "signed_call",
            other => other.as_str(),
        }
    }

    /// The lower-case name (metrics label).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Exchange => "exchange",
            EventKind::Reauthorize => "reauthorize",
            EventKind::Signup => "signup",
            EventKind::Login => "login",
            EventKind::SignedCall => "signedcall",
        }
    }
}

impl AuditLog {
    /// Logs `event` and keeps it for its application. Accepted signed calls, the bulk of all traffic, are logged
    /// at `debug` (not `info`) and not kept, so that they neither flood the log nor push exchanges and logins
    /// out of the window; metrics count them all.
    pub fn record(&self, event: AuthEvent) {
        let routine = event.kind == EventKind::SignedCall && event.outcome == "accepted";
        macro_rules! log_event {
            ($level:expr) => {
                tracing::event!(
                    target: "callbox::audit",
                    $level,
                    kind = event.kind.as_str(),
                    outcome = event.outcome,
                    reason = event.reason.unwrap_or(""),
                    app = event.app_key.as_deref().unwrap_or(""),
                    user = event.user_id.as_deref().unwrap_or(""),
                    client_ip = event.client_ip.map(tracing::field::display),
                    credential = event.credential.as_deref().unwrap_or(""),
                    detail = event.detail.as_deref().unwrap_or(""),
                    "authentication"
                )
            };
        }
        if routine {
            log_event!(tracing::Level::DEBUG);
            return;
        }
        log_event!(tracing::Level::INFO);
        let Some(app) = event.app_key.clone() else { return };
        let mut recent = self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if recent.len() > 10_000 && !recent.contains_key(&app) {
            return;
        }
        let events = recent.entry(app).or_default();
        if events.len() == KEEP_PER_APP {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// An application's events, newest first, filtered.
    pub fn list(&self, app: &str, user: Option<&str>, reason: Option<&str>, limit: usize) -> Vec<AuthEvent> {
        let recent = self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        recent
            .get(app)
            .map(|events| {
                events
                    .iter()
                    .rev()
                    .filter(|e| user.is_none_or(|u| e.user_id.as_deref() == Some(u)))
                    .filter(|e| reason.is_none_or(|r| e.reason == Some(r) || (r == "accepted" && e.reason.is_none())))
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Forgets an application's events (when it is deleted).
    pub fn forget(&self, app: &str) {
        self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(app);
    }
}

/// Builds an event.
pub fn event(kind: EventKind, app_key: Option<&str>, client_ip: IpAddr, at: DateTime<Utc>) -> AuthEvent {
    AuthEvent {
        at,
        kind,
        outcome: "accepted",
        reason: None,
        app_key: app_key.map(str::to_owned),
        user_id: None,
        client_ip: Some(client_ip),
        detail: None,
        credential: None,
    }
}
