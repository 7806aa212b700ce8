//! What the two ticket formats share: the user identity they carry, the verification policy, the validity
//! window and the typed refusal.

use crate::reason::Reason;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest user id (`identity.endpoint`) Callbox stores, in bytes.
pub const MAX_USER_ID_BYTES: usize = 255;

/// The kind of identity a user id is (`identity.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityType {
    /// A username (the common case, and what JWT `sub`s always are).
    Username,
    /// An e-mail address.
    Email,
    /// A phone number.
    Number,
}

impl IdentityType {
    /// The wire word.
    pub const fn as_str(self) -> &'static str {
        match self {
            IdentityType::Username => "username",
            IdentityType::Email => "email",
            IdentityType::Number => "number",
        }
    }

    /// Parses a wire word, ignoring ASCII case.
    pub fn parse(word: &str) -> Option<Self> {
        [IdentityType::Username, IdentityType::Email, IdentityType::Number]
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(word))
    }
}

impl fmt::Display for IdentityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a ticket speaks for: `{"type": "username", "endpoint": "alice"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    /// `type` on the wire.
    #[serde(rename = "type")]
    pub kind: IdentityType,
    /// The user id.
    pub endpoint: String,
}

impl Identity {
    /// A `username` identity.
    pub fn username(endpoint: impl Into<String>) -> Self {
        Self { kind: IdentityType::Username, endpoint: endpoint.into() }
    }
}

/// Whether `user_id` may be stored and shown: 1 to 255 bytes, no control characters. Everything else (SQL or
/// path metacharacters, any Unicode) is data, handled as such by every layer.
pub fn is_valid_user_id(user_id: &str) -> bool {
    !user_id.is_empty() && user_id.len() <= MAX_USER_ID_BYTES && !user_id.chars().any(char::is_control)
}

/// An application's rules for accepting tickets, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketPolicy {
    /// Lifetime of a ticket that carries no `expiresIn`.
    pub default_ttl: u64,
    /// Largest lifetime a ticket may ask for; above it the ticket is refused (`ticket_ttl_exceeds_max`).
    pub max_ttl: u64,
    /// Allowed clock difference between the ticket's maker and Callbox, on both ends of the window.
    pub skew: u64,
}

impl Default for TicketPolicy {
    /// 10 minutes by default, 24 hours at most (what the legacy generators write), 5 minutes of skew.
    fn default() -> Self {
        Self { default_ttl: 600, max_ttl: 86_400, skew: 300 }
    }
}

/// Why a ticket (legacy or JWT) was refused. [`TicketError::reason`] gives the PROTOCOL §7 word; the `Display`
/// text is safe to show to the caller: it never contains the ticket, a secret or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Over the size limit; refused before any decoding.
    #[error("the ticket is {len} bytes, over the limit of {max}")]
    TooLarge {
        /// Size received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Cannot be decoded; the text says which part.
    #[error("the ticket is malformed: {0}")]
    Malformed(&'static str),
    /// The MAC matches none of the secrets given.
    #[error("the signature does not match any active secret of the application")]
    BadSignature,
    /// Signed for (or naming) another application key.
    #[error("the ticket was made for another application key")]
    ApplicationMismatch,
    /// Past the end of the validity window.
    #[error(
        "the ticket expired {late_by} s ago: it was created at {created} and is valid for {ttl} s (plus {skew} s of \
         allowed clock skew); check your backend's clock or expiresIn"
    )]
    Expired {
        /// `created` (or `iat`).
        created: DateTime<Utc>,
        /// The lifetime applied.
        ttl: u64,
        /// The skew allowed.
        skew: u64,
        /// Seconds past the end of the window (rounded up).
        late_by: u64,
    },
    /// Before the start of the validity window.
    #[error(
        "the ticket is not valid for another {early_by} s: it says it was created at {created}, beyond the {skew} s \
         of allowed clock skew; check your backend's clock"
    )]
    NotYetValid {
        /// `created` (or `iat`).
        created: DateTime<Utc>,
        /// The skew allowed.
        skew: u64,
        /// Seconds before the start of the window (rounded up).
        early_by: u64,
    },
    /// A registration JWT whose `kid` date is more than one day from the server's date: the signing key of that
    /// day is no longer (or not yet) accepted, whatever `iat` says.
    #[error(
        "the JWT's signing-key date (kid) is {key_date}, more than one day from the server's date {server_date}; \
         make a new JWT with today's key"
    )]
    KeyDateOutOfRange {
        /// The date in `kid`.
        key_date: chrono::NaiveDate,
        /// The server's UTC date.
        server_date: chrono::NaiveDate,
    },
    /// Asks for a lifetime above the application's maximum.
    #[error("the ticket asks for a lifetime of {requested} s, above the application's maximum of {max} s")]
    TtlExceedsMax {
        /// Lifetime asked for.
        requested: u64,
        /// The application's maximum.
        max: u64,
    },
}

impl TicketError {
    /// The PROTOCOL §7 reason word.
    pub fn reason(&self) -> Reason {
        match self {
            TicketError::TooLarge { .. } => Reason::PayloadTooLarge,
            TicketError::Malformed(_) => Reason::MalformedTicket,
            TicketError::BadSignature => Reason::BadSignature,
            TicketError::ApplicationMismatch => Reason::UnknownApplication,
            TicketError::Expired { .. } => Reason::TicketExpired,
            TicketError::NotYetValid { .. } => Reason::TicketNotYetValid,
            TicketError::KeyDateOutOfRange { key_date, server_date } => {
                if key_date.gt(server_date) {
                    Reason::TicketNotYetValid
                } else {
                    Reason::TicketExpired
                }
            }
            TicketError::TtlExceedsMax { .. } => Reason::TicketTtlExceedsMax,
        }
    }
}

/// Checks `start - skew <= now <= start + ttl + skew`, and returns the end of the window (without skew) as the
/// ticket's expiry, which is how long a nonce must be remembered.
pub(crate) fn check_window(
    start: DateTime<Utc>,
    ttl: u64,
    skew: u64,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, TicketError> {
    let seconds = |s: u64| Duration::try_seconds(i64::try_from(s).unwrap_or(i64::MAX)).unwrap_or(Duration::MAX);
    let earliest = start.checked_sub_signed(seconds(skew)).unwrap_or(DateTime::<Utc>::MIN_UTC);
    if now < earliest {
        return Err(TicketError::NotYetValid { created: start, skew, early_by: ceil_seconds(earliest - now) });
    }
    let expires_at = start.checked_add_signed(seconds(ttl)).unwrap_or(DateTime::<Utc>::MAX_UTC);
    let latest = expires_at.checked_add_signed(seconds(skew)).unwrap_or(DateTime::<Utc>::MAX_UTC);
    if now > latest {
        return Err(TicketError::Expired { created: start, ttl, skew, late_by: ceil_seconds(now - latest) });
    }
    Ok(expires_at)
}

fn ceil_seconds(duration: Duration) -> u64 {
    let millis = duration.num_milliseconds().max(0).unsigned_abs();
    millis.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_400_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn window_bounds_are_inclusive_and_report_the_distance() {
        let start = at(0);
        assert_eq!(check_window(start, 60, 10, at(-10)), Ok(at(60)));
        assert_eq!(check_window(start, 60, 10, at(70)), Ok(at(60)));
        assert_eq!(
            check_window(start, 60, 10, at(-13)),
            Err(TicketError::NotYetValid { created: start, skew: 10, early_by: 3 })
        );
        assert_eq!(
            check_window(start, 60, 10, at(75)),
            Err(TicketError::Expired { created: start, ttl: 60, skew: 10, late_by: 5 })
        );
    }

    #[test]
    fn window_arithmetic_saturates_instead_of_panicking() {
        let start = DateTime::<Utc>::MAX_UTC;
        assert!(check_window(start, u64::MAX, u64::MAX, at(0)).is_ok());
        let start = DateTime::<Utc>::MIN_UTC;
        assert!(matches!(check_window(start, 1, 1, at(0)), Err(TicketError::Expired { .. })));
    }

    #[test]
    fn user_ids() {
        assert!(is_valid_user_id("alice"));
        assert!(is_valid_user_id("O'Brien; DROP TABLE users;--/../"));
        assert!(is_valid_user_id("ユーザー"));
        assert!(!is_valid_user_id(""));
        assert!(!is_valid_user_id("a\u{0}b"));
        assert!(!is_valid_user_id("line\nbreak"));
        assert!(!is_valid_user_id(&"x".repeat(256)));
    }
}
