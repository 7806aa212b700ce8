//! Sessions: a ticket or JWT exchanged for a session, re-authorization with a fresh ticket, the check of every
//! `Instance`-signed call, renewal, and a session ending itself.

use super::{origin_allowed, seconds, AppContext, Callbox, DomainError, DomainResult, RequestMeta};
use crate::audit::{event, AuthEvent, EventKind};
use crate::realtime::SessionEvent;
use crate::store::{Capability, SessionRecord, StoreError};
use callbox_core::signing::{self, SignedParts};
use callbox_core::{AnyTicket, Reason, TicketFormat, VerifiedCredential};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use zeroize::Zeroizing;

/// What a client asks for when it creates or renews a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRequest {
    /// Capabilities wanted (intersected with what the application allows).
    pub capabilities: Vec<Capability>,
    /// Session lifetime wanted, seconds (capped by the application's `sessionTtl`).
    pub expires_in: Option<u64>,
    /// For re-authorization: the session id the client names (must match the one re-authorized).
    pub instance_id: Option<String>,
}

/// A session as handed to its client: the secret is shown only here.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Session id.
    pub id: String,
    /// Session secret (base64).
    pub secret: Zeroizing<String>,
    /// Seconds until expiry.
    pub expires_in: u64,
    /// Capabilities granted.
    pub capabilities: Vec<Capability>,
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

/// Whether a signed call with this method changes something (and so may not be replayed).
fn changes_state(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS")
}

impl Callbox {
    /// Verifies a ticket or JWT (format as the scheme says), its nonce, and that its user is not disabled.
    async fn verify_credential(
        &self,
        text: &str,
        expected: TicketFormat,
        meta: &RequestMeta,
        ev: &mut AuthEvent,
    ) -> DomainResult<(AppContext, VerifiedCredential)> {
        ev.credential = Some(callbox_core::fingerprint(text.as_bytes()));
        let ticket = AnyTicket::decode(text)?;
        if ticket.format() != expected {
            return Err(DomainError::with_message(
                Reason::MalformedTicket,
                match expected {
                    TicketFormat::Legacy => "the User scheme takes a legacy user ticket; send a JWT with Bearer",
                    TicketFormat::Jwt => "the Bearer scheme takes a registration JWT; send a user ticket with User",
                },
            ));
        }
        let key = ticket
            .peek_application_key()
            .ok_or(DomainError::with_message(Reason::MalformedTicket, "the ticket names no application key"))?;
        ev.app_key = Some(key.clone());
        // The claimed user, unverified, so that refusals can be found by user in the audit trail.
        ev.user_id = claimed_user(&ticket);
        let context = self.app_context(&key).await?;
        if !origin_allowed(&context.app, meta.origin.as_deref()) {
            return Err(DomainError::new(Reason::OriginNotAllowed));
        }
        let verified = ticket.verify(&key, &context.secrets, &context.policy(), self.now())?;
        ev.user_id = Some(verified.identity.endpoint.clone());
        if let Some(nonce) = &verified.nonce {
            // Remembered as long as the ticket can verify at all: its expiry plus the allowed skew.
            let remember_until = verified.expires_at + seconds(context.app.clock_skew);
            if !self.store.use_nonce(&key, nonce, remember_until).await? {
                return Err(DomainError::new(Reason::TicketReplayed));
            }
        }
        match self.store.get_user(&key, &verified.identity.endpoint).await {
            Ok(user) if user.disabled => return Err(DomainError::new(Reason::UserDisabled)),
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(other) => return Err(other.into()),
        }
        if let Some(id) = context.secret_ids.get(verified.secret_index) {
            self.touch_secret(id).await;
        }
        Ok((context, verified))
    }

    fn grant(&self, session: &SessionRecord) -> Grant {
        Grant {
            id: session.id.clone(),
            secret: Zeroizing::new(self.master.session_secret(&session.id, session.secret_generation).to_base64()),
            expires_in: u64::try_from((session.expires_at - self.now()).num_seconds()).unwrap_or(0),
            capabilities: session.capabilities.clone(),
        }
    }

    /// Exchanges a ticket (`User`) or JWT (`Bearer`) for a new session.
    pub async fn exchange(
        &self,
        credential: &str,
        format: TicketFormat,
        request: &SessionRequest,
        meta: &RequestMeta,
    ) -> DomainResult<Grant> {
        let mut ev = event(EventKind::Exchange, None, meta.ip, self.now());
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
        request: &SessionRequest,
        meta: &RequestMeta,
        ev: &mut AuthEvent,
    ) -> DomainResult<Grant> {
        let (context, verified) = self.verify_credential(credential, format, meta, ev).await?;
        let capabilities: Vec<Capability> =
            request.capabilities.iter().copied().filter(|c| context.app.capabilities.contains(c)).collect();
        let ttl = request.expires_in.unwrap_or(context.app.session_ttl).clamp(60, context.app.session_ttl);
        let created_at = self.now();
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
        request: &SessionRequest,
        meta: &RequestMeta,
    ) -> DomainResult<Grant> {
        let mut ev = event(EventKind::Reauthorize, None, meta.ip, self.now());
        let result = async {
            if request.instance_id.as_deref().is_some_and(|id| id != session_id) {
                return Err(DomainError::invalid("instanceId does not match the path"));
            }
            let (context, verified) = self.verify_credential(credential, format, meta, &mut ev).await?;
            let session = match self.store.get_session(session_id).await {
                Ok(s) if s.app_key == context.app.key && s.user_id == verified.identity.endpoint => s,
                Ok(_) | Err(StoreError::NotFound) => {
                    return Err(DomainError::with_message(Reason::NotFound, "no such instance"))
                }
                Err(other) => return Err(other.into()),
            };
            if session.revoked_at.is_some() {
                return Err(DomainError::new(Reason::SessionRevoked));
            }
            let ttl = request.expires_in.unwrap_or(context.app.session_ttl).clamp(60, context.app.session_ttl);
            let updated = SessionRecord {
                expires_at: self.now() + seconds(ttl),
                secret_generation: session.secret_generation.saturating_add(1),
                ..session
            };
            self.store.update_session(&updated.id, updated.expires_at, updated.secret_generation).await?;
            Ok(self.grant(&updated))
        }
        .await;
        self.audit_outcome(ev, &result);
        result
    }

    /// Authenticates an `Instance`-signed call: timestamp window, session, signature, then revocation and
    /// expiry (status is only revealed to a caller that holds the session secret).
    pub async fn authenticate_call(
        &self,
        session_id: &str,
        signature: &str,
        parts: &SignedParts<'_>,
        ip: IpAddr,
    ) -> DomainResult<SessionRecord> {
        // The event is only built when it is logged: an accepted signed call (most of all traffic) is counted,
        // and written out only when `callbox::audit` is at debug.
        let mut known: Option<(String, String)> = None;
        let result = async {
            let at = self.now();
            signing::check_timestamp(parts.timestamp, self.config.limits.signed_call_skew_seconds, at)
                .map_err(|e| DomainError::with_message(e.reason(), e.to_string()))?;
            let read = |session_id| async move {
                match self.store.get_session(session_id).await {
                    Ok(session) => Ok(session),
                    Err(StoreError::NotFound) => {
                        Err(DomainError::with_message(Reason::SessionRevoked, "unknown or ended session"))
                    }
                    Err(other) => Err(other.into()),
                }
            };
            let verify = |session: &SessionRecord| {
                let secret = self.master.session_secret(&session.id, session.secret_generation);
                signing::verify_signature_only(&secret, parts, signature)
                    .map_err(|e| DomainError::with_message(e.reason(), e.to_string()))
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
            if changes_state(parts.method) {
                // A signed renewal or ending, sent again unchanged within the timestamp window, is refused: a
                // replayed renewal would hand its sender the session's next secret. Remembered (in the shared
                // database) for as long as its X-Timestamp could be accepted. Reads stay replayable within the
                // window (docs/security.md): they change nothing and must stay cheap.
                let stamped = callbox_core::time::parse_timestamp(parts.timestamp).unwrap_or(at);
                let remember_until = stamped.max(at) + seconds(self.config.limits.signed_call_skew_seconds);
                let digest = hex::encode(Sha256::digest(signature.as_bytes()));
                let nonce = format!("signed-call/{}/{digest}", session.id);
                if !self.store.use_nonce(&session.app_key, &nonce, remember_until).await? {
                    known = Some((session.app_key.clone(), session.user_id.clone()));
                    return Err(DomainError::new(Reason::RequestReplayed));
                }
            }
            if session.revoked_at.is_some() || session.expires_at <= at {
                known = Some((session.app_key.clone(), session.user_id.clone()));
            }
            if session.revoked_at.is_some() {
                return Err(DomainError::new(Reason::SessionRevoked));
            }
            if session.expires_at <= at {
                return Err(DomainError::new(Reason::SessionExpired));
            }
            Ok(session)
        }
        .await;
        let logged = |app: &str, user: &str| {
            let mut ev = event(EventKind::SignedCall, Some(app), ip, self.now());
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
                    None => event(EventKind::SignedCall, None, ip, self.now()),
                };
                self.refuse(ev, error);
            }
        }
        result
    }

    /// Extends a session (signed renewal): new expiry and a new secret.
    pub async fn renew(&self, session: SessionRecord, request: &SessionRequest) -> DomainResult<Grant> {
        let app = self.store.get_app(&session.app_key).await?;
        let ttl = request.expires_in.unwrap_or(app.session_ttl).clamp(60, app.session_ttl);
        let updated = SessionRecord {
            expires_at: self.now() + seconds(ttl),
            secret_generation: session.secret_generation.saturating_add(1),
            ..session
        };
        self.store.update_session(&updated.id, updated.expires_at, updated.secret_generation).await?;
        Ok(self.grant(&updated))
    }

    /// Ends a session (its own signed `DELETE`).
    pub async fn end_session(&self, session: &SessionRecord) -> DomainResult<()> {
        self.store.revoke_session(&session.app_key, &session.id, self.now()).await?;
        self.realtime.session_event(SessionEvent::session(&session.app_key, &session.id));
        Ok(())
    }
}
