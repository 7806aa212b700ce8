//! The domain: what Callbox does, independent of HTTP. Handlers parse and render; this module decides; the
//! [`Store`] persists.

use crate::audit::{event, AuditLog, AuthEvent, EventKind};
use crate::config::Config;
use crate::crypto::{new_app_secret, random_token, MasterKey};
use crate::error::ApiError;
use crate::limits::{AttemptLimiter, Limits, SharedLimits};
use crate::passwords::{check_password_length, PasswordHasher};
use crate::realtime::SessionEvent;
use crate::store::{AppRecord, Capability, SecretRecord, SessionRecord, Store, StoreError, UserRecord};
use callbox_core::credential::Identity;
use callbox_core::signing::{self, SignedParts};
use callbox_core::ticket::{self, NewTicket};
use callbox_core::{AnyTicket, IdentityType, Reason, Secret, TicketFormat, TicketPolicy, VerifiedCredential};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Metadata name of the admin token's SHA-256 (hex).
pub const ADMIN_TOKEN_META: &str = "admin_token_sha256";

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

/// What a client asks for when it creates or renews a session.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRequest {
    /// Client version information (ignored).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub version: serde_json::Value,
    /// Services wanted: an object of flags (`{"im": true}`) or a list of names.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub services: serde_json::Value,
    /// Session lifetime wanted, seconds (capped by the application's `sessionTtl`).
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// For re-authorization: the session id (must match the path).
    #[serde(default)]
    pub instance_id: Option<String>,
}

impl InstanceRequest {
    /// Capabilities asked for, mapping legacy service names (`im` → messaging; `voip`, `p2p`, `srtp` → calling).
    pub fn requested_capabilities(&self) -> Vec<Capability> {
        let names: Vec<String> = match &self.services {
            serde_json::Value::Object(map) => map
                .iter()
                .filter(|(_, v)| !matches!(v, serde_json::Value::Bool(false) | serde_json::Value::Null))
                .map(|(k, _)| k.to_ascii_lowercase())
                .collect(),
            serde_json::Value::Array(items) => {
                items.iter().filter_map(|v| v.as_str()).map(str::to_ascii_lowercase).collect()
            }
            _ => Vec::new(),
        };
        let mut caps: Vec<Capability> = names
            .iter()
            .filter_map(|name| match name.as_str() {
                "im" | "messaging" => Some(Capability::Messaging),
                "voip" | "p2p" | "srtp" | "calling" => Some(Capability::Calling),
                "video" => Some(Capability::Video),
                _ => None,
            })
            .collect();
        caps.sort();
        caps.dedup();
        caps
    }
}

/// A session as handed to its client.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionGrant {
    /// Session id.
    pub id: String,
    /// Session secret (base64): shown only in this answer.
    pub secret: String,
    /// Seconds until expiry.
    pub expires_in: u64,
    /// Capabilities granted.
    pub capabilities: Vec<Capability>,
}

/// Application settings that can be changed, each optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppSettingsPatch {
    /// Display name.
    pub name: Option<String>,
    /// Platform-managed users on or off.
    pub platform_user_auth: Option<bool>,
    /// CORS origins.
    pub allowed_origins: Option<Vec<String>>,
    /// Capabilities sessions may get.
    pub capabilities: Option<Vec<Capability>>,
    /// Lifetime of tickets without `expiresIn`, seconds.
    pub default_ticket_ttl: Option<u64>,
    /// Maximum ticket lifetime, seconds.
    pub max_ticket_ttl: Option<u64>,
    /// Session lifetime, seconds.
    pub session_ttl: Option<u64>,
    /// Allowed clock skew, seconds.
    pub clock_skew: Option<u64>,
}

impl AppSettingsPatch {
    /// Applies the patch, validating the result as a whole.
    pub fn apply(self, app: &mut AppRecord) -> Result<(), ApiError> {
        if let Some(name) = self.name {
            let name = name.trim().to_owned();
            if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
                return Err(ApiError::bad_request("name must be 1-200 characters without control characters"));
            }
            app.name = name;
        }
        if let Some(on) = self.platform_user_auth {
            app.platform_user_auth = on;
        }
        if let Some(origins) = self.allowed_origins {
            if origins.len() > 100 {
                return Err(ApiError::bad_request("allowedOrigins takes at most 100 origins"));
            }
            for origin in &origins {
                if !is_valid_origin(origin) {
                    return Err(ApiError::bad_request(
                        "allowedOrigins: each origin must be scheme://host[:port] (no path), or *",
                    ));
                }
            }
            app.allowed_origins = origins;
        }
        if let Some(mut capabilities) = self.capabilities {
            capabilities.sort();
            capabilities.dedup();
            app.capabilities = capabilities;
        }
        app.default_ticket_ttl = self.default_ticket_ttl.unwrap_or(app.default_ticket_ttl);
        app.max_ticket_ttl = self.max_ticket_ttl.unwrap_or(app.max_ticket_ttl);
        app.session_ttl = self.session_ttl.unwrap_or(app.session_ttl);
        app.clock_skew = self.clock_skew.unwrap_or(app.clock_skew);
        if app.max_ticket_ttl > MAX_TICKET_TTL_LIMIT || app.max_ticket_ttl == 0 {
            return Err(ApiError::bad_request("maxTicketTtl must be between 1 and 604800 seconds"));
        }
        if app.default_ticket_ttl == 0 || app.default_ticket_ttl > app.max_ticket_ttl {
            return Err(ApiError::bad_request("defaultTicketTtl must be between 1 and maxTicketTtl"));
        }
        if !(SESSION_TTL_RANGE.0..=SESSION_TTL_RANGE.1).contains(&app.session_ttl) {
            return Err(ApiError::bad_request("sessionTtl must be between 60 and 2592000 seconds"));
        }
        if app.clock_skew > MAX_CLOCK_SKEW {
            return Err(ApiError::bad_request("clockSkew must be at most 3600 seconds"));
        }
        Ok(())
    }
}

/// The user id a ticket claims, before verification (for audit events only).
fn claimed_user(ticket: &AnyTicket) -> Option<String> {
    let claims = ticket.claims_json().ok()?;
    let user = match ticket.format() {
        TicketFormat::Legacy => claims.pointer("/identity/endpoint")?.as_str()?.to_owned(),
        TicketFormat::Jwt => claims.get("sub")?.as_str()?.rsplit_once("/users/")?.1.to_owned(),
    };
    callbox_core::is_valid_user_id(&user).then_some(user)
}

/// Whether `origin` is `*` or `scheme://host[:port]` with no path.
pub fn is_valid_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some((scheme, rest)) = origin.split_once("://") else { return false };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && rest.len() <= 253
        && rest.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// A newly created application, with its first secret shown once.
#[derive(Debug, Clone)]
pub struct CreatedApp {
    /// The application.
    pub app: AppRecord,
    /// The first secret, base64.
    pub secret: Zeroizing<String>,
    /// Its id.
    pub secret_id: String,
}

/// The Callbox domain service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Callbox {
    /// Persistence.
    pub store: Arc<dyn Store>,
    master: MasterKey,
    /// Password hashing pool.
    pub passwords: PasswordHasher,
    /// Login limits (shared through Redis when configured).
    pub limiter: Limits,
    /// Recent authentication events.
    pub audit: AuditLog,
    /// Server configuration.
    pub config: Arc<Config>,
    secret_touches: Arc<Mutex<HashMap<String, DateTime<Utc>>>>,
    auth_counters: Arc<AuthCounters>,
    /// This node's live realtime connections; told of every session revocation below.
    pub realtime: crate::realtime::Hub,
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

fn now() -> DateTime<Utc> {
    Utc::now()
}

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
    ) -> Result<Self, argon2::Error> {
        Ok(Self {
            passwords: PasswordHasher::new(&config.passwords)?,
            limiter: Limits { local: AttemptLimiter::new(&config.login), shared: shared_limits },
            audit: AuditLog::default(),
            realtime: crate::realtime::Hub::new(store.clone(), config.realtime.clone()),
            store,
            master,
            config: Arc::new(config),
            secret_touches: Arc::new(Mutex::new(HashMap::new())),
            auth_counters: Arc::default(),
        })
    }

    // ----- applications -----------------------------------------------------------------------------------

    fn seal_context(app_key: &str, secret_id: &str) -> Vec<u8> {
        format!("app-secret/{app_key}/{secret_id}").into_bytes()
    }

    fn new_secret_record(&self, app_key: &str) -> (SecretRecord, Zeroizing<String>) {
        let secret = new_app_secret();
        let id = format!("s_{}", random_token(9));
        let record = SecretRecord {
            sealed: self.master.seal(&Self::seal_context(app_key, &id), secret.expose_bytes()),
            id,
            app_key: app_key.to_owned(),
            fingerprint: secret.fingerprint(),
            created_at: now(),
            last_used_at: None,
            retired_at: None,
        };
        (record, Zeroizing::new(secret.to_base64()))
    }

    /// An application with its active secrets opened. Unknown → `unknown_application`.
    pub async fn app_context(&self, key: &str) -> Result<AppContext, ApiError> {
        let app = match self.store.get_app(key).await {
            Ok(app) => app,
            Err(StoreError::NotFound) => return Err(ApiError::new(Reason::UnknownApplication)),
            Err(other) => return Err(other.into()),
        };
        let records = self.store.list_secrets(key, false).await?;
        let mut secrets = Vec::with_capacity(records.len());
        let mut secret_ids = Vec::with_capacity(records.len());
        for record in records {
            let opened = self.master.open(&Self::seal_context(key, &record.id), &record.sealed).map_err(|error| {
                tracing::error!(app = key, secret_id = %record.id, %error, "cannot open an application secret");
                ApiError::new(Reason::Internal)
            })?;
            let secret = Secret::from_bytes(&opened).map_err(|_| ApiError::new(Reason::Internal))?;
            secrets.push(secret);
            secret_ids.push(record.id);
        }
        Ok(AppContext { app, secrets, secret_ids })
    }

    /// Creates an application (settings validated) with a first secret.
    pub async fn create_app(&self, name: String, settings: AppSettingsPatch) -> Result<CreatedApp, ApiError> {
        let mut app = AppRecord {
            key: uuid::Uuid::new_v4().to_string(),
            name: String::new(),
            platform_user_auth: true,
            allowed_origins: Vec::new(),
            capabilities: Capability::ALL.to_vec(),
            default_ticket_ttl: TicketPolicy::default().default_ttl,
            max_ticket_ttl: TicketPolicy::default().max_ttl,
            session_ttl: 24 * 3600,
            clock_skew: TicketPolicy::default().skew,
            created_at: now(),
        };
        AppSettingsPatch { name: Some(name), ..settings }.apply(&mut app)?;
        let (record, secret) = self.new_secret_record(&app.key);
        self.store.create_app(&app, &record).await?;
        tracing::info!(app = %app.key, name = %app.name, "application created");
        Ok(CreatedApp { app, secret, secret_id: record.id })
    }

    /// Applies a settings change; it takes effect on the next request.
    pub async fn update_app(&self, key: &str, patch: AppSettingsPatch) -> Result<AppRecord, ApiError> {
        let mut app = self.store.get_app(key).await?;
        patch.apply(&mut app)?;
        self.store.update_app(&app).await?;
        tracing::info!(app = %key, platform_user_auth = app.platform_user_auth, "application settings changed");
        Ok(app)
    }

    /// Deletes an application and everything in it.
    pub async fn delete_app(&self, key: &str) -> Result<(), ApiError> {
        self.store.delete_app(key).await?;
        self.realtime.session_event(SessionEvent::AppDeleted { app_key: key.to_owned() });
        self.audit.forget(key);
        Ok(())
    }

    /// Adds a secret (rotation). Returns the record and the secret, shown once.
    pub async fn rotate_secret(&self, key: &str) -> Result<(SecretRecord, Zeroizing<String>), ApiError> {
        self.store.get_app(key).await?;
        let (record, secret) = self.new_secret_record(key);
        self.store.add_secret(&record).await?;
        tracing::info!(app = %key, secret_id = %record.id, "application secret added");
        Ok((record, secret))
    }

    /// Retires a secret.
    pub async fn retire_secret(&self, key: &str, secret_id: &str) -> Result<(), ApiError> {
        self.store.retire_secret(key, secret_id, now()).await?;
        tracing::info!(app = %key, secret_id = %secret_id, "application secret retired");
        Ok(())
    }

    /// Records that a secret verified a ticket, at most once a minute per secret.
    async fn touch_secret(&self, secret_id: &str) {
        let at = now();
        {
            let mut touches = self.secret_touches.lock().unwrap_or_else(|p| p.into_inner());
            if touches.get(secret_id).is_some_and(|last| at - *last < Duration::seconds(60)) {
                return;
            }
            touches.insert(secret_id.to_owned(), at);
        }
        if let Err(error) = self.store.touch_secret(secret_id, at).await {
            tracing::warn!(%error, "could not record secret use");
        }
    }

    // ----- admin token ------------------------------------------------------------------------------------

    /// Whether `token` is the admin token (SHA-256 compared in constant time).
    pub async fn check_admin_token(&self, token: &str) -> Result<bool, ApiError> {
        let Some(stored) = self.store.get_meta(ADMIN_TOKEN_META).await? else { return Ok(false) };
        let presented = hex::encode(Sha256::digest(token.as_bytes()));
        Ok(bool::from(presented.as_bytes().ct_eq(stored.as_bytes())))
    }

    // ----- ticket → session -------------------------------------------------------------------------------

    fn refuse(&self, mut ev: AuthEvent, error: &ApiError) {
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

    /// Verifies a ticket or JWT (format as the scheme says), its nonce, and that its user is not disabled.
    async fn verify_credential(
        &self,
        text: &str,
        expected: TicketFormat,
        meta: &RequestMeta,
        ev: &mut AuthEvent,
    ) -> Result<(AppContext, VerifiedCredential), ApiError> {
        ev.credential = Some(callbox_core::fingerprint(text.as_bytes()));
        let ticket = AnyTicket::decode(text)?;
        if ticket.format() != expected {
            return Err(ApiError::with_message(
                Reason::MalformedTicket,
                match expected {
                    TicketFormat::Legacy => "the User scheme takes a legacy user ticket; send a JWT with Bearer",
                    TicketFormat::Jwt => "the Bearer scheme takes a registration JWT; send a user ticket with User",
                },
            ));
        }
        let key = ticket
            .peek_application_key()
            .ok_or(ApiError::with_message(Reason::MalformedTicket, "the ticket names no application key"))?;
        ev.app_key = Some(key.clone());
        // The claimed user, unverified, so that refusals can be found by user in the audit trail.
        ev.user_id = claimed_user(&ticket);
        let context = self.app_context(&key).await?;
        if !origin_allowed(&context.app, meta.origin.as_deref()) {
            return Err(ApiError::new(Reason::OriginNotAllowed));
        }
        let verified = ticket.verify(&key, &context.secrets, &context.policy(), now())?;
        ev.user_id = Some(verified.identity.endpoint.clone());
        if let Some(nonce) = &verified.nonce {
            // Remembered as long as the ticket can verify at all: its expiry plus the allowed skew.
            let remember_until = verified.expires_at + seconds(context.app.clock_skew);
            if !self.store.use_nonce(&key, nonce, remember_until).await? {
                return Err(ApiError::new(Reason::TicketReplayed));
            }
        }
        match self.store.get_user(&key, &verified.identity.endpoint).await {
            Ok(user) if user.disabled => return Err(ApiError::new(Reason::UserDisabled)),
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(other) => return Err(other.into()),
        }
        if let Some(id) = context.secret_ids.get(verified.secret_index) {
            self.touch_secret(id).await;
        }
        Ok((context, verified))
    }

    fn grant(&self, session: &SessionRecord) -> SessionGrant {
        SessionGrant {
            id: session.id.clone(),
            secret: self.master.session_secret(&session.id, session.secret_generation).to_base64(),
            expires_in: u64::try_from((session.expires_at - now()).num_seconds()).unwrap_or(0),
            capabilities: session.capabilities.clone(),
        }
    }

    /// Exchanges a ticket (`User`) or JWT (`Bearer`) for a new session.
    pub async fn exchange(
        &self,
        credential: &str,
        format: TicketFormat,
        request: &InstanceRequest,
        meta: &RequestMeta,
    ) -> Result<SessionGrant, ApiError> {
        let mut ev = event(EventKind::Exchange, None, meta.ip);
        let result = self.exchange_inner(credential, format, request, meta, &mut ev).await;
        match &result {
            Ok(grant) => {
                ev.detail = Some(format!("session {}", grant.id));
                self.accept(ev);
            }
            Err(error) => self.refuse(ev, error),
        }
        result
    }

    async fn exchange_inner(
        &self,
        credential: &str,
        format: TicketFormat,
        request: &InstanceRequest,
        meta: &RequestMeta,
        ev: &mut AuthEvent,
    ) -> Result<SessionGrant, ApiError> {
        let (context, verified) = self.verify_credential(credential, format, meta, ev).await?;
        let wanted = request.requested_capabilities();
        let capabilities: Vec<Capability> =
            wanted.into_iter().filter(|c| context.app.capabilities.contains(c)).collect();
        let ttl = request.expires_in.unwrap_or(context.app.session_ttl).clamp(60, context.app.session_ttl);
        let created_at = now();
        let session = SessionRecord {
            // Time-ordered (UUIDv7: 48-bit millisecond time, 74 random bits): new rows land at the end of the
            // id index instead of on a random page, so a group commit writes about half the pages it did with v4
            // ids and exchanges went up ~20% (docs/benchmarks.md). The id is public, not a credential; 74 random
            // bits keep it unguessable, and what it reveals (when the session began) its holder already knows.
            id: uuid::Uuid::now_v7().to_string(),
            app_key: context.app.key.clone(),
            user_id: verified.identity.endpoint,
            identity_type: verified.identity.kind,
            capabilities,
            created_at,
            expires_at: created_at + seconds(ttl),
            revoked_at: None,
            secret_generation: 0,
        };
        self.store.create_session(&session).await?;
        Ok(self.grant(&session))
    }

    /// Re-authorizes an existing session with a fresh ticket: new secret, new expiry. Unknown id → 404.
    pub async fn reauthorize(
        &self,
        session_id: &str,
        credential: &str,
        format: TicketFormat,
        request: &InstanceRequest,
        meta: &RequestMeta,
    ) -> Result<SessionGrant, ApiError> {
        let mut ev = event(EventKind::Reauthorize, None, meta.ip);
        let result = async {
            if request.instance_id.as_deref().is_some_and(|id| id != session_id) {
                return Err(ApiError::bad_request("instanceId does not match the path"));
            }
            let (context, verified) = self.verify_credential(credential, format, meta, &mut ev).await?;
            let session = match self.store.get_session(session_id).await {
                Ok(s) if s.app_key == context.app.key && s.user_id == verified.identity.endpoint => s,
                Ok(_) | Err(StoreError::NotFound) => {
                    return Err(ApiError::with_message(Reason::NotFound, "no such instance"))
                }
                Err(other) => return Err(other.into()),
            };
            if session.revoked_at.is_some() {
                return Err(ApiError::new(Reason::SessionRevoked));
            }
            let ttl = request.expires_in.unwrap_or(context.app.session_ttl).clamp(60, context.app.session_ttl);
            let updated = SessionRecord {
                expires_at: now() + seconds(ttl),
                secret_generation: session.secret_generation.saturating_add(1),
                ..session
            };
            self.store.update_session(&updated.id, updated.expires_at, updated.secret_generation).await?;
            Ok(self.grant(&updated))
        }
        .await;
        match &result {
            Ok(_) => self.accept(ev),
            Err(error) => self.refuse(ev, error),
        }
        result
    }

    // ----- session-signed calls ---------------------------------------------------------------------------

    /// Authenticates an `Instance`-signed call: timestamp window, session, signature, then revocation and
    /// expiry (status is only revealed to a caller that holds the session secret).
    pub async fn authenticate_call(
        &self,
        session_id: &str,
        signature: &str,
        parts: &SignedParts<'_>,
        ip: IpAddr,
    ) -> Result<SessionRecord, ApiError> {
        // The event is only built when it is logged: an accepted signed call (most of all traffic) is counted,
        // and written out only when `callbox::audit` is at debug.
        let mut known: Option<(String, String)> = None;
        let result = async {
            let at = now();
            signing::check_timestamp(parts.timestamp, self.config.limits.signed_call_skew_seconds, at)
                .map_err(|e| ApiError::with_message(e.reason(), e.to_string()))?;
            let read = |session_id| async move {
                match self.store.get_session(session_id).await {
                    Ok(session) => Ok(session),
                    Err(StoreError::NotFound) => {
                        Err(ApiError::with_message(Reason::SessionRevoked, "unknown or ended session"))
                    }
                    Err(other) => Err(other.into()),
                }
            };
            let verify = |session: &SessionRecord| {
                let secret = self.master.session_secret(&session.id, session.secret_generation);
                signing::verify_signature_only(&secret, parts, signature)
                    .map_err(|e| ApiError::with_message(e.reason(), e.to_string()))
            };
            let mut session = read(session_id).await?;
            if verify(&session).is_err() {
                // The copy may be from a cache, older than a renewal made on another node (new secret): read
                // the database once more before refusing.
                self.store.forget_session(session_id);
                session = read(session_id).await?;
                if let Err(error) = verify(&session) {
                    known = Some((session.app_key, session.user_id));
                    return Err(error);
                }
            }
            if session.revoked_at.is_some() || session.expires_at <= at {
                known = Some((session.app_key.clone(), session.user_id.clone()));
            }
            if session.revoked_at.is_some() {
                return Err(ApiError::new(Reason::SessionRevoked));
            }
            if session.expires_at <= at {
                return Err(ApiError::new(Reason::SessionExpired));
            }
            Ok(session)
        }
        .await;
        let logged = |app: &str, user: &str| {
            let mut ev = event(EventKind::SignedCall, Some(app), ip);
            ev.user_id = Some(user.to_owned());
            ev
        };
        match &result {
            Ok(session) => {
                self.auth_counters.get(EventKind::SignedCall, "accepted", "").increment(1);
                if tracing::enabled!(target: "callbox::audit", tracing::Level::DEBUG) {
                    let mut ev = logged(&session.app_key, &session.user_id);
                    ev.outcome = "accepted";
                    self.audit.record(ev);
                }
            }
            Err(error) => {
                let ev = match &known {
                    Some((app, user)) => logged(app, user),
                    None => event(EventKind::SignedCall, None, ip),
                };
                self.refuse(ev, error);
            }
        }
        result
    }

    /// Extends a session (signed renewal): new expiry and a new secret.
    pub async fn renew(&self, session: SessionRecord, request: &InstanceRequest) -> Result<SessionGrant, ApiError> {
        let app = self.store.get_app(&session.app_key).await?;
        let ttl = request.expires_in.unwrap_or(app.session_ttl).clamp(60, app.session_ttl);
        let updated = SessionRecord {
            expires_at: now() + seconds(ttl),
            secret_generation: session.secret_generation.saturating_add(1),
            ..session
        };
        self.store.update_session(&updated.id, updated.expires_at, updated.secret_generation).await?;
        Ok(self.grant(&updated))
    }

    /// Ends a session (its own signed `DELETE`).
    pub async fn end_session(&self, session: &SessionRecord) -> Result<(), ApiError> {
        self.store.revoke_session(&session.app_key, &session.id, now()).await?;
        self.realtime.session_event(SessionEvent::session(&session.app_key, &session.id));
        Ok(())
    }

    /// The realtime configuration of the legacy shape; `key` is derived per session.
    pub fn realtime_configuration(&self, session: &SessionRecord, host: &str) -> serde_json::Value {
        let key = self.master.session_secret(&format!("rtc/{}", session.id), session.secret_generation).to_base64();
        let channel = |kind: &str| format!("{kind}-{}", session.id);
        let network = serde_json::json!({
            "publishKey": format!("pub-{}", session.app_key),
            "subscribeKey": format!("sub-{}", session.app_key),
            "host": host,
        });
        serde_json::json!({
            "rtcConfiguration": { "broadcastNetwork": network.clone(), "signalNetwork": network },
            "rtcProfile": {
                "broadcastChannel": channel("broadcast"),
                "transportChannel": channel("transport"),
                "signalChannel": channel("signal"),
                "key": key,
            }
        })
    }

    // ----- platform-managed users -------------------------------------------------------------------------

    /// The application for a public (`Application <key>`) call, refusing when platform users are off.
    pub async fn platform_app(&self, key: &str, origin: Option<&str>) -> Result<AppContext, ApiError> {
        let context = self.app_context(key).await?;
        if !origin_allowed(&context.app, origin) {
            return Err(ApiError::new(Reason::OriginNotAllowed));
        }
        if !context.app.platform_user_auth {
            return Err(ApiError::new(Reason::PlatformAuthDisabled));
        }
        Ok(context)
    }

    fn platform_ticket(
        &self,
        context: &AppContext,
        identity: Identity,
        expires_in: Option<u64>,
    ) -> Result<String, ApiError> {
        let secret = context.secrets.first().ok_or(ApiError::new(Reason::Internal))?;
        let ttl = expires_in.unwrap_or(context.app.default_ticket_ttl).clamp(1, context.app.max_ticket_ttl);
        Ok(ticket::mint(
            &NewTicket {
                application_key: context.app.key.clone(),
                identity,
                created: now(),
                expires_in: Some(ttl),
                // Platform tickets are single-use: one login, one session.
                nonce: Some(random_token(16)),
            },
            secret,
        ))
    }

    /// Platform-managed sign-up: creates the user and returns a ticket for it.
    pub async fn sign_up(
        &self,
        app_key: &str,
        identity: Identity,
        password: Zeroizing<String>,
        meta: &RequestMeta,
    ) -> Result<String, ApiError> {
        let ip = meta.ip;
        let mut ev = event(EventKind::Signup, Some(app_key), ip);
        ev.user_id = Some(identity.endpoint.clone());
        let result = async {
            let place = self.passwords.reserve().await?;
            let context = self.platform_app(app_key, meta.origin.as_deref()).await?;
            check_password_length(&password)?;
            self.limiter
                .check_signup(app_key, ip)
                .await
                .map_err(|wait| ApiError::retry_after(Reason::RateLimited, wait))?;
            match self.store.get_user(app_key, &identity.endpoint).await {
                Ok(_) => return Err(ApiError::new(Reason::UserExists)),
                Err(StoreError::NotFound) => {}
                Err(other) => return Err(other.into()),
            }
            let hash = self.passwords.hash_in(place, password).await?;
            let user = UserRecord {
                app_key: app_key.to_owned(),
                user_id: identity.endpoint.clone(),
                identity_type: identity.kind.as_str().to_owned(),
                password_hash: hash,
                disabled: false,
                created_at: now(),
            };
            self.store.create_user(&user).await?;
            self.platform_ticket(&context, identity, None)
        }
        .await;
        match &result {
            Ok(_) => self.accept(ev),
            Err(error) => self.refuse(ev, error),
        }
        result
    }

    /// Platform-managed login. Unknown user and wrong password answer alike, in time too.
    pub async fn log_in(
        &self,
        app_key: &str,
        identity: Identity,
        password: Zeroizing<String>,
        expires_in: Option<u64>,
        meta: &RequestMeta,
    ) -> Result<String, ApiError> {
        let ip = meta.ip;
        let mut ev = event(EventKind::Login, Some(app_key), ip);
        ev.user_id = Some(identity.endpoint.clone());
        let result = async {
            let place = self.passwords.reserve().await?;
            let context = self.platform_app(app_key, meta.origin.as_deref()).await?;
            let user_id = identity.endpoint.clone();
            self.limiter
                .check(app_key, &user_id, ip)
                .await
                .map_err(|wait| ApiError::retry_after(Reason::LockedOut, wait))?;
            if password.len() > crate::passwords::MAX_PASSWORD_BYTES {
                return Err(ApiError::new(Reason::InvalidPassword));
            }
            let user = match self.store.get_user(app_key, &user_id).await {
                Ok(user) => Some(user),
                Err(StoreError::NotFound) => None,
                Err(other) => return Err(other.into()),
            };
            let verified =
                self.passwords.verify_in(place, password, user.as_ref().map(|u| u.password_hash.clone())).await?;
            let Some(user) = user.filter(|_| verified.matches) else {
                return Err(match self.limiter.record_failure(app_key, &user_id, ip).await {
                    Some(wait) => ApiError::retry_after(Reason::LockedOut, wait),
                    None => ApiError::new(Reason::InvalidCredentials),
                });
            };
            // Only someone who knows the password learns that the account is disabled.
            if user.disabled {
                return Err(ApiError::new(Reason::UserDisabled));
            }
            self.limiter.record_success(app_key, &user_id).await;
            if let Some(rehash) = verified.rehash {
                self.store.set_password_hash(app_key, &user_id, &rehash).await?;
            }
            let kind = IdentityType::parse(&user.identity_type).unwrap_or(identity.kind);
            self.platform_ticket(&context, Identity { kind, endpoint: user.user_id }, expires_in)
        }
        .await;
        match &result {
            Ok(_) => self.accept(ev),
            Err(error) => self.refuse(ev, error),
        }
        result
    }

    // ----- admin: users and sessions ----------------------------------------------------------------------

    /// Admin: adds a user.
    pub async fn add_user(
        &self,
        app_key: &str,
        identity: Identity,
        password: Zeroizing<String>,
    ) -> Result<UserRecord, ApiError> {
        self.store.get_app(app_key).await?;
        check_password_length(&password)?;
        let user = UserRecord {
            app_key: app_key.to_owned(),
            user_id: identity.endpoint,
            identity_type: identity.kind.as_str().to_owned(),
            password_hash: self.passwords.hash(password).await?,
            disabled: false,
            created_at: now(),
        };
        self.store.create_user(&user).await?;
        Ok(user)
    }

    /// Admin: sets a user's password.
    pub async fn set_password(
        &self,
        app_key: &str,
        user_id: &str,
        password: Zeroizing<String>,
    ) -> Result<(), ApiError> {
        check_password_length(&password)?;
        self.store.get_user(app_key, user_id).await?;
        let hash = self.passwords.hash(password).await?;
        self.store.set_password_hash(app_key, user_id, &hash).await?;
        Ok(())
    }

    /// Admin: disables (revoking the user's sessions) or enables a user.
    pub async fn set_user_disabled(
        &self,
        app_key: &str,
        user_id: &str,
        disabled: bool,
    ) -> Result<UserRecord, ApiError> {
        self.store.set_user_disabled(app_key, user_id, disabled).await?;
        if disabled {
            let revoked = self.store.revoke_user_sessions(app_key, user_id, now()).await?;
            self.realtime.session_event(SessionEvent::user(app_key, user_id, Reason::UserDisabled));
            tracing::info!(app = %app_key, user = %user_id, revoked, "user disabled; sessions revoked");
        }
        Ok(self.store.get_user(app_key, user_id).await?)
    }

    /// Admin: removes a user and revokes their sessions.
    pub async fn remove_user(&self, app_key: &str, user_id: &str) -> Result<(), ApiError> {
        self.store.delete_user(app_key, user_id).await?;
        self.store.revoke_user_sessions(app_key, user_id, now()).await?;
        self.realtime.session_event(SessionEvent::user(app_key, user_id, Reason::SessionRevoked));
        Ok(())
    }

    /// Admin: revokes one session of an application.
    pub async fn revoke_session(&self, app_key: &str, session_id: &str) -> Result<(), ApiError> {
        self.store.revoke_session(app_key, session_id, now()).await?;
        self.realtime.session_event(SessionEvent::session(app_key, session_id));
        Ok(())
    }

    /// Admin: revokes all of a user's sessions.
    pub async fn revoke_user_sessions(&self, app_key: &str, user_id: &str) -> Result<u64, ApiError> {
        self.store.get_app(app_key).await?;
        let revoked = self.store.revoke_user_sessions(app_key, user_id, now()).await?;
        self.realtime.session_event(SessionEvent::user(app_key, user_id, Reason::SessionRevoked));
        Ok(revoked)
    }

    /// Admin: revokes all of an application's sessions created before `before`.
    pub async fn revoke_sessions_before(&self, app_key: &str, before: DateTime<Utc>) -> Result<u64, ApiError> {
        self.store.get_app(app_key).await?;
        let revoked = self.store.revoke_app_sessions_before(app_key, before, now()).await?;
        self.realtime.session_event(SessionEvent::Before { app_key: app_key.to_owned(), before });
        Ok(revoked)
    }

    /// Admin: the ticket debugger against the application's active secrets and settings.
    pub async fn diagnose(&self, app_key: &str, ticket: &str) -> Result<callbox_core::Diagnosis, ApiError> {
        let context = match self.app_context(app_key).await {
            Err(e) if e.reason == Reason::UnknownApplication => return Err(ApiError::new(Reason::NotFound)),
            other => other?,
        };
        Ok(callbox_core::diagnose(ticket, app_key, &context.secrets, &context.policy(), now()))
    }
}
