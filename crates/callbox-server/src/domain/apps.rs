//! Applications: creating one with its first secret, changing its settings, rotating and retiring secrets,
//! opening the active secrets for ticket checks.

use super::{
    AppContext, Callbox, DomainError, DomainResult, DEMO_APP_META, MAX_CLOCK_SKEW, MAX_TICKET_TTL_LIMIT,
    SESSION_TTL_RANGE,
};
use crate::crypto::{new_app_secret, random_token};
use crate::realtime::SessionEvent;
use crate::store::{AppRecord, Capability, SecretRecord, StoreError};
use callbox_core::{Reason, Secret, TicketPolicy};
use chrono::Duration;
use zeroize::Zeroizing;

/// Application settings to change, each optional (`None`: left as it is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppSettings {
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

impl AppSettings {
    /// Applies the patch, validating the result as a whole.
    pub fn apply(self, app: &mut AppRecord) -> DomainResult<()> {
        if let Some(name) = self.name {
            let name = name.trim().to_owned();
            if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
                return Err(DomainError::invalid("name must be 1-200 characters without control characters"));
            }
            app.name = name;
        }
        if let Some(on) = self.platform_user_auth {
            app.platform_user_auth = on;
        }
        if let Some(origins) = self.allowed_origins {
            if origins.len() > 100 {
                return Err(DomainError::invalid("allowedOrigins takes at most 100 origins"));
            }
            for origin in &origins {
                if !is_valid_origin(origin) {
                    return Err(DomainError::invalid(
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
            return Err(DomainError::invalid("maxTicketTtl must be between 1 and 604800 seconds"));
        }
        if app.default_ticket_ttl == 0 || app.default_ticket_ttl > app.max_ticket_ttl {
            return Err(DomainError::invalid("defaultTicketTtl must be between 1 and maxTicketTtl"));
        }
        if !(SESSION_TTL_RANGE.0..=SESSION_TTL_RANGE.1).contains(&app.session_ttl) {
            return Err(DomainError::invalid("sessionTtl must be between 60 and 2592000 seconds"));
        }
        if app.clock_skew > MAX_CLOCK_SKEW {
            return Err(DomainError::invalid("clockSkew must be at most 3600 seconds"));
        }
        Ok(())
    }
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

/// A secret just added to an application: its record and its value, shown once.
#[derive(Debug, Clone)]
pub struct NewSecret {
    /// The stored record (never the value).
    pub record: SecretRecord,
    /// The secret, base64.
    pub secret: Zeroizing<String>,
}

/// An application with the records of its active secrets, newest first (what the admin API shows).
#[derive(Debug, Clone)]
pub struct AppWithSecrets {
    /// The application.
    pub app: AppRecord,
    /// Active secrets' records.
    pub secrets: Vec<SecretRecord>,
}

impl Callbox {
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
            created_at: self.now(),
            last_used_at: None,
            retired_at: None,
        };
        (record, Zeroizing::new(secret.to_base64()))
    }

    /// An application with its active secrets opened. Unknown → `unknown_application`.
    pub async fn app_context(&self, key: &str) -> DomainResult<AppContext> {
        let app = match self.store.get_app(key).await {
            Ok(app) => app,
            Err(StoreError::NotFound) => return Err(DomainError::new(Reason::UnknownApplication)),
            Err(other) => return Err(other.into()),
        };
        let records = self.store.list_secrets(key, false).await?;
        let mut secrets = Vec::with_capacity(records.len());
        let mut secret_ids = Vec::with_capacity(records.len());
        for record in records {
            let opened = self.master.open(&Self::seal_context(key, &record.id), &record.sealed).map_err(|error| {
                tracing::error!(app = key, secret_id = %record.id, %error, "cannot open an application secret");
                DomainError::new(Reason::Internal)
            })?;
            let secret = Secret::from_bytes(&opened).map_err(|_| DomainError::new(Reason::Internal))?;
            secrets.push(secret);
            secret_ids.push(record.id);
        }
        Ok(AppContext { app, secrets, secret_ids })
    }

    /// Creates an application (settings validated) with a first secret.
    pub async fn create_app(&self, name: String, settings: AppSettings) -> DomainResult<CreatedApp> {
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
            created_at: self.now(),
        };
        AppSettings { name: Some(name), ..settings }.apply(&mut app)?;
        let (record, secret) = self.new_secret_record(&app.key);
        self.store.create_app(&app, &record).await?;
        tracing::info!(app = %app.key, name = %app.name, "application created");
        Ok(CreatedApp { app, secret, secret_id: record.id })
    }

    /// Applies a settings change; it takes effect on the next request.
    pub async fn update_app(&self, key: &str, patch: AppSettings) -> DomainResult<AppRecord> {
        let mut app = self.store.get_app(key).await?;
        patch.apply(&mut app)?;
        self.store.update_app(&app).await?;
        tracing::info!(app = %key, platform_user_auth = app.platform_user_auth, "application settings changed");
        Ok(app)
    }

    /// Deletes an application and everything in it.
    pub async fn delete_app(&self, key: &str) -> DomainResult<()> {
        self.store.delete_app(key).await?;
        self.realtime.session_event(SessionEvent::AppDeleted { app_key: key.to_owned() });
        self.audit.forget(key);
        Ok(())
    }

    /// Adds a secret (rotation). Returns the record and the secret, shown once.
    pub async fn rotate_secret(&self, key: &str) -> DomainResult<NewSecret> {
        self.store.get_app(key).await?;
        let (record, secret) = self.new_secret_record(key);
        self.store.add_secret(&record).await?;
        tracing::info!(app = %key, secret_id = %record.id, "application secret added");
        Ok(NewSecret { record, secret })
    }

    /// Retires a secret.
    pub async fn retire_secret(&self, key: &str, secret_id: &str) -> DomainResult<()> {
        self.store.retire_secret(key, secret_id, self.now()).await?;
        tracing::info!(app = %key, secret_id = %secret_id, "application secret retired");
        Ok(())
    }

    /// Records that a secret verified a ticket, at most once a minute per secret.
    pub(super) async fn touch_secret(&self, secret_id: &str) {
        let at = self.now();
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

    /// An application and its active secrets' records. Unknown → `not_found`.
    pub async fn app_with_secrets(&self, key: &str) -> DomainResult<AppWithSecrets> {
        let app = self.store.get_app(key).await?;
        self.with_secrets(app).await
    }

    async fn with_secrets(&self, app: AppRecord) -> DomainResult<AppWithSecrets> {
        let secrets = self.store.list_secrets(&app.key, false).await?;
        Ok(AppWithSecrets { app, secrets })
    }

    /// Every application with its active secrets' records.
    pub async fn list_apps(&self) -> DomainResult<Vec<AppWithSecrets>> {
        let mut all = Vec::new();
        for app in self.store.list_apps().await? {
            all.push(self.with_secrets(app).await?);
        }
        Ok(all)
    }

    /// Whether some application lets browser pages at `origin` call it (the CORS preflight, which carries no
    /// credential, so the application is not known yet).
    pub async fn some_app_allows_origin(&self, origin: &str) -> bool {
        match self.store.list_apps().await {
            Ok(apps) => apps.iter().any(|app| super::origin_allowed(app, Some(origin))),
            Err(_) => false,
        }
    }

    /// The demo application's key, when one was bootstrapped.
    pub async fn demo_app_key(&self) -> DomainResult<Option<String>> {
        Ok(self.store.get_meta(DEMO_APP_META).await?)
    }

    /// Creates the demo application on first start (and remembers that it did, so deleting it is final).
    pub async fn bootstrap_demo_app(&self) -> DomainResult<Option<CreatedApp>> {
        if self.store.get_meta(DEMO_APP_META).await?.is_some() {
            return Ok(None);
        }
        let settings = AppSettings { allowed_origins: Some(vec!["*".into()]), ..AppSettings::default() };
        let created = self.create_app("Demo".into(), settings).await?;
        self.store.set_meta(DEMO_APP_META, &created.app.key).await?;
        Ok(Some(created))
    }
}
