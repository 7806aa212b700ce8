//! Administration: the admin token, revocation, listings of live sessions and of the audit trail, the ticket
//! debugger, readiness and housekeeping.

use super::{Callbox, DomainError, DomainResult, ADMIN_TOKEN_META};
use crate::audit::AuthEvent;
use crate::realtime::SessionEvent;
use crate::store::SessionRecord;
use callbox_core::{Reason, Secret};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether the backing services answer, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// The database answered; otherwise why not.
    pub database: Result<(), String>,
    /// Redis: `not_configured`, `ok` or `degraded` (login limits then fall back to this node's memory).
    pub redis: &'static str,
}

impl Callbox {
    /// Replaces the admin token (stored as its SHA-256): the old one, and dashboard sessions made with it,
    /// stop working at once.
    pub async fn set_admin_token(&self, token: &str) -> DomainResult<()> {
        Ok(self.store.set_meta(ADMIN_TOKEN_META, &hex::encode(Sha256::digest(token.as_bytes()))).await?)
    }

    /// The admin token's SHA-256 (hex), which the dashboard binds its sessions to (a new token ends them).
    pub async fn admin_token_hash(&self) -> DomainResult<Option<String>> {
        Ok(self.store.get_meta(ADMIN_TOKEN_META).await?)
    }

    /// Whether `token` is the admin token (SHA-256 compared in constant time).
    pub async fn check_admin_token(&self, token: &str) -> DomainResult<bool> {
        let Some(stored) = self.store.get_meta(ADMIN_TOKEN_META).await? else { return Ok(false) };
        let presented = hex::encode(Sha256::digest(token.as_bytes()));
        Ok(bool::from(presented.as_bytes().ct_eq(stored.as_bytes())))
    }

    /// Admin: revokes one session of an application.
    pub async fn revoke_session(&self, app_key: &str, session_id: &str) -> DomainResult<()> {
        self.store.revoke_session(app_key, session_id, self.now()).await?;
        self.realtime.session_event(SessionEvent::session(app_key, session_id));
        Ok(())
    }

    /// Admin: revokes all of a user's sessions.
    pub async fn revoke_user_sessions(&self, app_key: &str, user_id: &str) -> DomainResult<u64> {
        self.store.get_app(app_key).await?;
        let revoked = self.store.revoke_user_sessions(app_key, user_id, self.now()).await?;
        self.realtime.session_event(SessionEvent::user(app_key, user_id, Reason::SessionRevoked));
        Ok(revoked)
    }

    /// Admin: revokes all of an application's sessions created before `before`.
    pub async fn revoke_sessions_before(&self, app_key: &str, before: DateTime<Utc>) -> DomainResult<u64> {
        self.store.get_app(app_key).await?;
        let revoked = self.store.revoke_app_sessions_before(app_key, before, self.now()).await?;
        self.realtime.session_event(SessionEvent::Before { app_key: app_key.to_owned(), before });
        Ok(revoked)
    }

    /// Admin: the ticket debugger against the application's active secrets (or `secret` instead, when given) and
    /// settings.
    pub async fn diagnose(
        &self,
        app_key: &str,
        ticket: &str,
        secret: Option<Secret>,
    ) -> DomainResult<callbox_core::Diagnosis> {
        let context = match self.app_context(app_key).await {
            Err(e) if e.reason == Reason::UnknownApplication => return Err(DomainError::new(Reason::NotFound)),
            other => other?,
        };
        let policy = context.policy();
        let secrets = match secret {
            Some(secret) => vec![secret],
            None => context.secrets,
        };
        Ok(callbox_core::diagnose(ticket, app_key, &secrets, &policy, self.now()))
    }

    /// Admin: live sessions of an application (or one of its users), at most `limit`.
    pub async fn list_live_sessions(
        &self,
        app_key: &str,
        user_id: Option<&str>,
        limit: u32,
    ) -> DomainResult<Vec<SessionRecord>> {
        self.store.get_app(app_key).await?;
        Ok(self.store.list_live_sessions(app_key, user_id, self.now(), limit).await?)
    }

    /// Admin: the latest authentication events of an application, newest first, filtered by user and reason.
    pub async fn list_events(
        &self,
        app_key: &str,
        user_id: Option<&str>,
        reason: Option<&str>,
        limit: usize,
    ) -> DomainResult<Vec<AuthEvent>> {
        self.store.get_app(app_key).await?;
        Ok(self.audit.list(app_key, user_id, reason, limit))
    }

    /// Whether the database and Redis answer.
    pub async fn readiness(&self) -> Readiness {
        // Redis only carries login limits: while it is down this node still serves, with node-local limits, so
        // it stays ready and says "degraded" rather than taking every node out of the load balancer at once.
        let redis = match &self.limiter.shared {
            None => "not_configured",
            Some(shared) => match shared.ping().await {
                Ok(()) => "ok",
                Err(_) => "degraded",
            },
        };
        let database = self.store.ping().await.map_err(|error| error.to_string());
        Readiness { database, redis }
    }

    /// Removes expired nonces and sessions; returns how many.
    pub async fn purge_expired(&self) -> DomainResult<u64> {
        Ok(self.store.purge_expired(self.now()).await?)
    }
}
