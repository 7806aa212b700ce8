//! Platform-managed users: sign-up and login (which answer with a platform-signed ticket), and their
//! administration (add, password, disable, remove, list).

use super::{origin_allowed, AppContext, Callbox, DomainError, DomainResult, RequestMeta};
use crate::audit::{event, EventKind};
use crate::crypto::random_token;
use crate::limits::Wait;
use crate::passwords::{check_password_length, MAX_PASSWORD_BYTES};
use crate::realtime::SessionEvent;
use crate::store::{StoreError, UserRecord};
use callbox_core::credential::Identity;
use callbox_core::ticket::{self, NewTicket};
use callbox_core::{IdentityType, Reason};
use zeroize::Zeroizing;

impl Callbox {
    /// The application for a public (`Application <key>`) call, refusing when platform users are off.
    pub async fn platform_app(&self, key: &str, origin: Option<&str>) -> DomainResult<AppContext> {
        let context = self.app_context(key).await?;
        if !origin_allowed(&context.app, origin) {
            return Err(DomainError::new(Reason::OriginNotAllowed));
        }
        if !context.app.platform_user_auth {
            return Err(DomainError::new(Reason::PlatformAuthDisabled));
        }
        Ok(context)
    }

    fn platform_ticket(
        &self,
        context: &AppContext,
        identity: Identity,
        expires_in: Option<u64>,
    ) -> DomainResult<String> {
        let secret = context.secrets.first().ok_or(DomainError::new(Reason::Internal))?;
        let ttl = expires_in.unwrap_or(context.app.default_ticket_ttl).clamp(1, context.app.max_ticket_ttl);
        Ok(ticket::mint(
            &NewTicket {
                application_key: context.app.key.clone(),
                identity,
                created: self.now(),
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
    ) -> DomainResult<String> {
        let ip = meta.ip;
        let mut ev = event(EventKind::Signup, Some(app_key), ip, self.now());
        ev.user_id = Some(identity.endpoint.clone());
        let result = async {
            let place = self.passwords.reserve().await?;
            let context = self.platform_app(app_key, meta.origin.as_deref()).await?;
            check_password_length(&password)?;
            self.limiter
                .check_signup(app_key, ip, self.now())
                .await
                .map_err(|wait| DomainError::retry_after(Reason::RateLimited, wait))?;
            match self.store.get_user(app_key, &identity.endpoint).await {
                Ok(_) => return Err(DomainError::new(Reason::UserExists)),
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
                created_at: self.now(),
            };
            self.store.create_user(&user).await?;
            self.platform_ticket(&context, identity, None)
        }
        .await;
        self.audit_outcome(ev, &result);
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
    ) -> DomainResult<String> {
        let ip = meta.ip;
        let mut ev = event(EventKind::Login, Some(app_key), ip, self.now());
        ev.user_id = Some(identity.endpoint.clone());
        let result = async {
            let place = self.passwords.reserve().await?;
            let context = self.platform_app(app_key, meta.origin.as_deref()).await?;
            let user_id = identity.endpoint.clone();
            self.limiter.check(app_key, &user_id, ip, self.now()).await.map_err(|wait| match wait {
                Wait::LockedOut(seconds) => DomainError::retry_after(Reason::LockedOut, seconds),
                Wait::Throttled(seconds) => DomainError::retry_after(Reason::RateLimited, seconds),
            })?;
            if password.len() > MAX_PASSWORD_BYTES {
                return Err(DomainError::new(Reason::InvalidPassword));
            }
            let user = match self.store.get_user(app_key, &user_id).await {
                // The identity type in the path is part of the name: `email/carol` is not the username `carol`,
                // and is answered exactly as a user that does not exist.
                Ok(user) if user.identity_type == identity.kind.as_str() => Some(user),
                Ok(_) | Err(StoreError::NotFound) => None,
                Err(other) => return Err(other.into()),
            };
            let verified =
                self.passwords.verify_in(place, password, user.as_ref().map(|u| u.password_hash.clone())).await?;
            let Some(user) = user.filter(|_| verified.matches) else {
                return Err(match self.limiter.record_failure(app_key, &user_id, ip, self.now()).await {
                    Some(wait) => DomainError::retry_after(Reason::LockedOut, wait),
                    None => DomainError::new(Reason::InvalidCredentials),
                });
            };
            // Only someone who knows the password learns that the account is disabled.
            if user.disabled {
                return Err(DomainError::new(Reason::UserDisabled));
            }
            self.limiter.record_success(app_key, &user_id).await;
            if let Some(rehash) = verified.rehash {
                self.store.set_password_hash(app_key, &user_id, &rehash).await?;
            }
            let kind = IdentityType::parse(&user.identity_type).unwrap_or(identity.kind);
            self.platform_ticket(&context, Identity { kind, endpoint: user.user_id }, expires_in)
        }
        .await;
        self.audit_outcome(ev, &result);
        result
    }

    /// Admin: adds a user.
    pub async fn add_user(
        &self,
        app_key: &str,
        identity: Identity,
        password: Zeroizing<String>,
    ) -> DomainResult<UserRecord> {
        self.store.get_app(app_key).await?;
        check_password_length(&password)?;
        let user = UserRecord {
            app_key: app_key.to_owned(),
            user_id: identity.endpoint,
            identity_type: identity.kind.as_str().to_owned(),
            password_hash: self.passwords.hash(password).await?,
            disabled: false,
            created_at: self.now(),
        };
        self.store.create_user(&user).await?;
        Ok(user)
    }

    /// Admin: sets a user's password.
    pub async fn set_password(&self, app_key: &str, user_id: &str, password: Zeroizing<String>) -> DomainResult<()> {
        check_password_length(&password)?;
        self.store.get_user(app_key, user_id).await?;
        let hash = self.passwords.hash(password).await?;
        self.store.set_password_hash(app_key, user_id, &hash).await?;
        Ok(())
    }

    /// Admin: disables (revoking the user's sessions) or enables a user.
    pub async fn set_user_disabled(&self, app_key: &str, user_id: &str, disabled: bool) -> DomainResult<UserRecord> {
        self.store.set_user_disabled(app_key, user_id, disabled).await?;
        if disabled {
            let revoked = self.store.revoke_user_sessions(app_key, user_id, self.now()).await?;
            self.realtime.session_event(SessionEvent::user(app_key, user_id, Reason::UserDisabled));
            tracing::info!(app = %app_key, user = %user_id, revoked, "user disabled; sessions revoked");
        }
        Ok(self.store.get_user(app_key, user_id).await?)
    }

    /// Admin: removes a user and revokes their sessions.
    pub async fn remove_user(&self, app_key: &str, user_id: &str) -> DomainResult<()> {
        self.store.delete_user(app_key, user_id).await?;
        self.store.revoke_user_sessions(app_key, user_id, self.now()).await?;
        self.realtime.session_event(SessionEvent::user(app_key, user_id, Reason::SessionRevoked));
        Ok(())
    }

    /// Admin: platform-managed users of an application whose id contains `search`, at most `limit`.
    pub async fn list_users(&self, app_key: &str, search: Option<&str>, limit: u32) -> DomainResult<Vec<UserRecord>> {
        self.store.get_app(app_key).await?;
        Ok(self.store.list_users(app_key, search, limit).await?)
    }
}
