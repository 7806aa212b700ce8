//! Either ticket format behind one type, and the step-by-step diagnosis that `callbox ticket verify` and the
//! dashboard's ticket debugger show.

use crate::credential::{Identity, TicketError, TicketPolicy};
use crate::jwt::DecodedJwt;
use crate::secret::Secret;
use crate::ticket::DecodedTicket;
use crate::Reason;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Which of the two formats a ticket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketFormat {
    /// `base64(json):base64(mac)` (PROTOCOL §2).
    Legacy,
    /// A registration JWT (PROTOCOL §3).
    Jwt,
}

/// A decoded ticket of either format, not yet verified.
#[derive(Debug, Clone)]
pub enum AnyTicket {
    /// Legacy user ticket.
    Legacy(DecodedTicket),
    /// Registration JWT.
    Jwt(DecodedJwt),
}

/// What a verified ticket of either format grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCredential {
    /// Which format it was.
    pub format: TicketFormat,
    /// The user.
    pub identity: Identity,
    /// Its single-use nonce, if any (always present for JWTs).
    pub nonce: Option<String>,
    /// End of its validity: how long the nonce must be remembered.
    pub expires_at: DateTime<Utc>,
    /// Index of the secret that verified it.
    pub secret_index: usize,
}

impl AnyTicket {
    /// Decodes `text`, telling the formats apart by shape: a JWT is three dot-separated parts and has no `:`.
    pub fn decode(text: &str) -> Result<Self, TicketError> {
        let text = text.trim();
        if text.len() > crate::ticket::MAX_TICKET_BYTES {
            return Err(TicketError::TooLarge { len: text.len(), max: crate::ticket::MAX_TICKET_BYTES });
        }
        if !text.contains(':') && text.matches('.').count() == 2 {
            DecodedJwt::decode(text).map(AnyTicket::Jwt)
        } else {
            DecodedTicket::decode(text).map(AnyTicket::Legacy)
        }
    }

    /// The format.
    pub fn format(&self) -> TicketFormat {
        match self {
            AnyTicket::Legacy(_) => TicketFormat::Legacy,
            AnyTicket::Jwt(_) => TicketFormat::Jwt,
        }
    }

    /// The application key the ticket names, unverified (only for routing to the application's secrets).
    pub fn peek_application_key(&self) -> Option<String> {
        match self {
            AnyTicket::Legacy(ticket) => ticket.peek_application_key(),
            AnyTicket::Jwt(jwt) => jwt.peek_application_key(),
        }
    }

    /// The claims as JSON, unverified: what `callbox ticket inspect` prints.
    pub fn claims_json(&self) -> Result<serde_json::Value, TicketError> {
        let value = match self {
            AnyTicket::Legacy(ticket) => serde_json::to_value(ticket.claims_unverified()?),
            AnyTicket::Jwt(jwt) => serde_json::to_value(jwt.claims_unverified()?),
        };
        value.map_err(|_| TicketError::Malformed("the claims cannot be shown as JSON"))
    }

    /// Full verification.
    pub fn verify(
        &self,
        expected_application_key: &str,
        secrets: &[Secret],
        policy: &TicketPolicy,
        now: DateTime<Utc>,
    ) -> Result<VerifiedCredential, TicketError> {
        match self {
            AnyTicket::Legacy(ticket) => {
                let verified = ticket.verify(expected_application_key, secrets, policy, now)?;
                Ok(VerifiedCredential {
                    format: TicketFormat::Legacy,
                    identity: verified.claims.identity,
                    nonce: verified.claims.nonce,
                    expires_at: verified.expires_at,
                    secret_index: verified.secret_index,
                })
            }
            AnyTicket::Jwt(jwt) => {
                let verified = jwt.verify(expected_application_key, secrets, policy, now)?;
                Ok(VerifiedCredential {
                    format: TicketFormat::Jwt,
                    identity: verified.identity,
                    nonce: Some(verified.nonce),
                    expires_at: verified.expires_at,
                    secret_index: verified.secret_index,
                })
            }
        }
    }

    /// Signature check alone against one secret (for the per-secret lines of a diagnosis).
    fn signature_matches(&self, secret: &Secret, expected_application_key: &str, now: DateTime<Utc>) -> bool {
        // A policy that cannot fail on time isolates the signature: any error other than BadSignature means the
        // MAC itself was good.
        let lenient = TicketPolicy { default_ttl: 0, max_ttl: u64::MAX, skew: u64::MAX / 4 };
        !matches!(
            self.verify(expected_application_key, std::slice::from_ref(secret), &lenient, now),
            Err(TicketError::BadSignature)
        )
    }

    /// The lifetime and window checks on the unverified claims: the start (`created` or `iat`) and the end of the
    /// window, both without the skew.
    fn time_check(
        &self,
        expected_application_key: &str,
        policy: &TicketPolicy,
        now: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), TicketError> {
        match self {
            AnyTicket::Legacy(ticket) => {
                let claims = ticket.claims_unverified()?;
                let claims = crate::ticket::TicketClaims { application_key: expected_application_key.into(), ..claims };
                crate::ticket::check_claims(&claims, expected_application_key, policy, now)
                    .map(|expires_at| (claims.created, expires_at))
            }
            AnyTicket::Jwt(jwt) => {
                let mut claims = jwt.claims_unverified()?;
                // Judge time alone: pretend the issuer matched so the window is still reported.
                if let Some(user) = claims.user_id().map(str::to_owned) {
                    claims.iss = format!("{}{expected_application_key}", crate::jwt::ISSUER_PREFIX);
                    claims.sub = format!("{}/users/{user}", claims.iss);
                }
                let verified = jwt.check_claims(claims, expected_application_key, policy, now)?;
                let issued_at = chrono::TimeZone::timestamp_opt(&Utc, verified.claims.iat, 0)
                    .single()
                    .ok_or(TicketError::Malformed("iat is out of range"))?;
                Ok((issued_at, verified.expires_at))
            }
        }
    }
}

/// One line of a diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `format`, `application`, `signature` or `time_window`.
    pub name: &'static str,
    /// Whether it passed; `None` when it could not be run (an earlier check failed in a way that hides it).
    pub passed: Option<bool>,
    /// What was checked, in plain words (never a secret).
    pub detail: String,
}

/// Every check of a ticket, and the verdict the server would give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// The format, when it could be told.
    pub format: Option<TicketFormat>,
    /// Decoded claims (unverified), when they decode.
    pub claims: Option<serde_json::Value>,
    /// Each check in order.
    pub checks: Vec<Check>,
    /// Whether the server would accept it.
    pub valid: bool,
    /// The §7 reason when it would not.
    pub reason: Option<&'static str>,
    /// The explanation that goes with the reason.
    pub message: Option<String>,
}

/// Runs every check on `text` for `application_key` with `secrets` (labelled by position) under `policy` at `now`.
pub fn diagnose(
    text: &str,
    application_key: &str,
    secrets: &[Secret],
    policy: &TicketPolicy,
    now: DateTime<Utc>,
) -> Diagnosis {
    let refuse = |checks: Vec<Check>, format, claims, error: TicketError| Diagnosis {
        format,
        claims,
        checks,
        valid: false,
        reason: Some(error.reason().as_str()),
        message: Some(error.to_string()),
    };
    let ticket = match AnyTicket::decode(text) {
        Ok(ticket) => ticket,
        Err(error) => {
            let checks = vec![Check { name: "format", passed: Some(false), detail: error.to_string() }];
            return refuse(checks, None, None, error);
        }
    };
    let format = Some(ticket.format());
    let claims = ticket.claims_json().ok();
    let mut checks = vec![Check {
        name: "format",
        passed: Some(claims.is_some()),
        detail: match (ticket.format(), claims.is_some()) {
            (TicketFormat::Legacy, true) => "legacy user ticket; TicketData decodes to a ticket object".into(),
            (TicketFormat::Jwt, true) => "registration JWT; HS256 with an hkdfv1 kid".into(),
            (_, false) => "the claims do not decode".into(),
        },
    }];
    let named = ticket.peek_application_key();
    checks.push(Check {
        name: "application",
        passed: Some(named.as_deref() == Some(application_key)),
        detail: match &named {
            Some(named) if named == application_key => format!("ticket is for {application_key}"),
            Some(named) => format!("ticket is for {named}, expected {application_key}"),
            None => "ticket names no application key".into(),
        },
    });
    let matched: Vec<usize> = secrets
        .iter()
        .enumerate()
        .filter(|(_, secret)| ticket.signature_matches(secret, application_key, now))
        .map(|(index, _)| index)
        .collect();
    checks.push(Check {
        name: "signature",
        passed: Some(!matched.is_empty()),
        detail: match matched.first() {
            Some(index) => format!(
                "matches secret #{} of {} (fingerprint {})",
                index + 1,
                secrets.len(),
                secrets[*index].fingerprint()
            ),
            None if secrets.is_empty() => "no secret given to check against".into(),
            None => format!("matches none of the {} secret(s) given", secrets.len()),
        },
    });
    let time = ticket.time_check(application_key, policy, now);
    checks.push(Check {
        name: "time_window",
        passed: match &time {
            Ok(_) => Some(true),
            Err(
                TicketError::Expired { .. }
                | TicketError::NotYetValid { .. }
                | TicketError::KeyDateOutOfRange { .. }
                | TicketError::TtlExceedsMax { .. },
            ) => Some(false),
            Err(_) => None,
        },
        detail: match &time {
            Ok((start, expires_at)) => window_detail(*start, *expires_at, policy.skew, now),
            Err(error) => error.to_string(),
        },
    });
    match ticket.verify(application_key, secrets, policy, now) {
        Ok(_) => Diagnosis { format, claims, checks, valid: true, reason: None, message: None },
        Err(error) => refuse(checks, format, claims, error),
    }
}

/// The sentence of a time window that passed. A pass that only the clock skew allows is said so, with the
/// seconds beyond the window, because the same ticket fails as soon as the clocks drift a little further.
fn window_detail(start: DateTime<Utc>, expires_at: DateTime<Utc>, skew: u64, now: DateTime<Utc>) -> String {
    let window = format!(
        "valid until {} (server time {})",
        crate::time::format_iso_seconds(expires_at),
        crate::time::format_iso_seconds(now)
    );
    let beyond = |duration: chrono::Duration| duration.num_milliseconds().unsigned_abs().div_ceil(1000).max(1);
    if now > expires_at {
        format!(
            "passed within the allowed clock skew: expired {} s ago, skew {skew} s; {window}",
            beyond(now - expires_at)
        )
    } else if now < start {
        format!(
            "passed within the allowed clock skew: created {} s in the future, skew {skew} s; {window}",
            beyond(start - now)
        )
    } else {
        window
    }
}

/// The reason a [`Diagnosis`] ended with, typed.
pub fn diagnosis_reason(diagnosis: &Diagnosis) -> Option<Reason> {
    diagnosis.reason.and_then(Reason::from_wire)
}
