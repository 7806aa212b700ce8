//! The stable `reason` words of PROTOCOL §7 and their legacy `errorCode`s.
//!
//! Every refusal anywhere in Callbox is one of these. The word is part of the public contract (SDKs and
//! dashboards switch on it), so variants are only ever added, never renamed.

use std::fmt;

/// Why a request was refused. `as_str` is the wire word; `error_code` the legacy numeric code, whose first three
/// digits are the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Reason {
    // 400
    /// The request body or a parameter could not be understood.
    MalformedRequest,
    /// A password shorter than 8 or longer than 1024 bytes.
    InvalidPassword,
    // 401
    /// No `Authorization` header where one is required.
    MissingAuthorization,
    /// An `Authorization` header that does not parse, or a scheme this call does not take.
    MalformedAuthorization,
    /// A user ticket or JWT that cannot be decoded.
    MalformedTicket,
    /// A MAC that matches no active secret.
    BadSignature,
    /// The application key is unknown, or not the one the credential was made for.
    UnknownApplication,
    /// The ticket's validity window ended.
    TicketExpired,
    /// The ticket's validity window has not started (beyond the allowed clock skew).
    TicketNotYetValid,
    /// The ticket asks for a lifetime above the application's maximum.
    TicketTtlExceedsMax,
    /// A single-use nonce seen before.
    TicketReplayed,
    /// A signed state-changing call (renewal, ending a session) sent a second time unchanged.
    RequestReplayed,
    /// `X-Timestamp` missing, unparsable or outside the skew window.
    TimestampSkew,
    /// Wrong username or password (the two are never told apart).
    InvalidCredentials,
    /// The session's lifetime ended.
    SessionExpired,
    /// The session was ended or revoked.
    SessionRevoked,
    /// An admin token that is missing or wrong.
    InvalidAdminToken,
    // 403
    /// Platform-managed users are switched off for this application.
    PlatformAuthDisabled,
    /// The session was not granted the capability this call needs.
    CapabilityNotGranted,
    /// The platform-managed user is disabled.
    UserDisabled,
    /// The request's origin is not among the application's allowed origins.
    OriginNotAllowed,
    // 404
    /// No such resource (or it belongs to another tenant).
    NotFound,
    // 405
    /// The path exists but not with this method.
    MethodNotAllowed,
    // 409
    /// Sign-up for an identity that already exists.
    UserExists,
    /// Retiring an application's only active secret (it could no longer verify anything).
    LastSecret,
    /// Answering or declining a call that a device of the callee already answered.
    CallAlreadyAnswered,
    // 413
    /// A body, header or ticket above its size limit.
    PayloadTooLarge,
    // 415
    /// A body that is not `application/json`.
    UnsupportedMediaType,
    // 429
    /// Too many failed attempts for this account or address.
    LockedOut,
    /// Too much load (for example a full password-hashing queue).
    RateLimited,
    /// A new call from a session that already takes part in as many calls as it may.
    TooManyCalls,
    // 5xx
    /// A bug; the body says nothing more.
    Internal,
    /// A backing store is unreachable.
    ServiceUnavailable,
}

impl Reason {
    /// Every reason, in code order: for documentation and exhaustive tests.
    pub const ALL: [Reason; 33] = [
        Reason::MalformedRequest,
        Reason::InvalidPassword,
        Reason::MissingAuthorization,
        Reason::MalformedAuthorization,
        Reason::MalformedTicket,
        Reason::BadSignature,
        Reason::UnknownApplication,
        Reason::TicketExpired,
        Reason::TicketNotYetValid,
        Reason::TicketTtlExceedsMax,
        Reason::TicketReplayed,
        Reason::RequestReplayed,
        Reason::TimestampSkew,
        Reason::InvalidCredentials,
        Reason::SessionExpired,
        Reason::SessionRevoked,
        Reason::InvalidAdminToken,
        Reason::PlatformAuthDisabled,
        Reason::CapabilityNotGranted,
        Reason::UserDisabled,
        Reason::OriginNotAllowed,
        Reason::NotFound,
        Reason::MethodNotAllowed,
        Reason::UserExists,
        Reason::LastSecret,
        Reason::CallAlreadyAnswered,
        Reason::PayloadTooLarge,
        Reason::UnsupportedMediaType,
        Reason::LockedOut,
        Reason::RateLimited,
        Reason::TooManyCalls,
        Reason::Internal,
        Reason::ServiceUnavailable,
    ];

    /// The snake_case wire word.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::MalformedRequest => "malformed_request",
            Reason::InvalidPassword => "invalid_password",
            Reason::MissingAuthorization => "missing_authorization",
            Reason::MalformedAuthorization => "malformed_authorization",
            Reason::MalformedTicket => "malformed_ticket",
            Reason::BadSignature => "bad_signature",
            Reason::UnknownApplication => "unknown_application",
            Reason::TicketExpired => "ticket_expired",
            Reason::TicketNotYetValid => "ticket_not_yet_valid",
            Reason::TicketTtlExceedsMax => "ticket_ttl_exceeds_max",
            Reason::TicketReplayed => "ticket_replayed",
            Reason::RequestReplayed => "request_replayed",
            Reason::TimestampSkew => "timestamp_skew",
            Reason::InvalidCredentials => "invalid_credentials",
            Reason::SessionExpired => "session_expired",
            Reason::SessionRevoked => "session_revoked",
            Reason::InvalidAdminToken => "invalid_admin_token",
            Reason::PlatformAuthDisabled => "platform_auth_disabled",
            Reason::CapabilityNotGranted => "capability_not_granted",
            Reason::UserDisabled => "user_disabled",
            Reason::OriginNotAllowed => "origin_not_allowed",
            Reason::NotFound => "not_found",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::UserExists => "user_exists",
            Reason::LastSecret => "last_secret",
            Reason::CallAlreadyAnswered => "call_already_answered",
            Reason::PayloadTooLarge => "payload_too_large",
            Reason::UnsupportedMediaType => "unsupported_media_type",
            Reason::LockedOut => "locked_out",
            Reason::RateLimited => "rate_limited",
            Reason::TooManyCalls => "too_many_calls",
            Reason::Internal => "internal",
            Reason::ServiceUnavailable => "service_unavailable",
        }
    }

    /// Parses a wire word back (used by clients and tests).
    pub fn from_wire(word: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == word)
    }

    /// The legacy numeric `errorCode`.
    pub const fn error_code(self) -> u32 {
        match self {
            Reason::MalformedRequest | Reason::InvalidPassword => 40000,
            Reason::MissingAuthorization
            | Reason::MalformedAuthorization
            | Reason::MalformedTicket
            | Reason::UnknownApplication
            | Reason::TicketExpired
            | Reason::TicketNotYetValid
            | Reason::TicketTtlExceedsMax
            | Reason::TicketReplayed
            | Reason::RequestReplayed
            | Reason::InvalidCredentials
            | Reason::SessionExpired
            | Reason::SessionRevoked
            | Reason::InvalidAdminToken => 40100,
            Reason::TimestampSkew => 40101,
            Reason::BadSignature => 40102,
            Reason::PlatformAuthDisabled
            | Reason::CapabilityNotGranted
            | Reason::UserDisabled
            | Reason::OriginNotAllowed => 40300,
            Reason::NotFound => 40400,
            Reason::MethodNotAllowed => 40500,
            Reason::UserExists | Reason::LastSecret | Reason::CallAlreadyAnswered => 40900,
            Reason::PayloadTooLarge => 41300,
            Reason::UnsupportedMediaType => 41500,
            Reason::LockedOut | Reason::RateLimited | Reason::TooManyCalls => 42900,
            Reason::Internal => 50000,
            Reason::ServiceUnavailable => 50300,
        }
    }

    /// The HTTP status that goes with the code.
    pub const fn http_status(self) -> u16 {
        (self.error_code() / 100) as u16
    }

    /// Whether the same request may succeed if simply sent again later.
    pub const fn retryable(self) -> bool {
        matches!(self, Reason::LockedOut | Reason::RateLimited | Reason::ServiceUnavailable | Reason::TimestampSkew)
    }

    /// A plain sentence for the `message` field when nothing more specific is known.
    pub const fn default_message(self) -> &'static str {
        match self {
            Reason::MalformedRequest => "The request body or a parameter is malformed.",
            Reason::InvalidPassword => "Passwords must be between 8 and 1024 bytes long.",
            Reason::MissingAuthorization => "This call needs an Authorization header.",
            Reason::MalformedAuthorization => {
                "The Authorization header is malformed or uses a scheme this call does not accept."
            }
            Reason::MalformedTicket => "The ticket could not be decoded.",
            Reason::BadSignature => "The signature does not match any active secret.",
            Reason::UnknownApplication => "The application key is unknown or does not match.",
            Reason::TicketExpired => "The ticket has expired.",
            Reason::TicketNotYetValid => "The ticket is not valid yet: check the clock of the server that made it.",
            Reason::TicketTtlExceedsMax => "The ticket's lifetime exceeds the application's maximum.",
            Reason::TicketReplayed => "This single-use ticket was already used.",
            Reason::RequestReplayed => {
                "This signed request was already made; sign it again with a new X-Timestamp to repeat it."
            }
            Reason::TimestampSkew => "X-Timestamp is missing or too far from the server time.",
            Reason::InvalidCredentials => "Wrong username or password.",
            Reason::SessionExpired => "The session has expired.",
            Reason::SessionRevoked => "The session was ended or revoked.",
            Reason::InvalidAdminToken => "A valid admin token is required.",
            Reason::PlatformAuthDisabled => "Platform-managed users are switched off for this application.",
            Reason::CapabilityNotGranted => "The session was not granted the capability this call needs.",
            Reason::UserDisabled => "The user is disabled.",
            Reason::OriginNotAllowed => "This origin is not allowed for the application.",
            Reason::NotFound => "Not found.",
            Reason::MethodNotAllowed => "Method not allowed.",
            Reason::UserExists => "A user with this identity already exists.",
            Reason::LastSecret => "An application keeps at least one active secret: rotate before retiring.",
            Reason::CallAlreadyAnswered => "The call was already answered (on this or another device).",
            Reason::PayloadTooLarge => "The request is too large.",
            Reason::UnsupportedMediaType => "The body must be application/json.",
            Reason::LockedOut => "Too many failed attempts; try again later.",
            Reason::RateLimited => "Too many requests; try again later.",
            Reason::TooManyCalls => "This session already takes part in as many calls as it may.",
            Reason::Internal => "Internal error.",
            Reason::ServiceUnavailable => "A backing store is unavailable; try again later.",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            assert!(seen.insert(reason.as_str()), "duplicate word {reason}");
            assert_eq!(Reason::from_wire(reason.as_str()), Some(reason));
            assert!(reason.as_str().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }

    #[test]
    fn status_follows_code() {
        assert_eq!(Reason::BadSignature.error_code(), 40102);
        assert_eq!(Reason::BadSignature.http_status(), 401);
        assert_eq!(Reason::TimestampSkew.error_code(), 40101);
        assert_eq!(Reason::NotFound.http_status(), 404);
        assert_eq!(Reason::PlatformAuthDisabled.http_status(), 403);
        assert_eq!(Reason::UserExists.http_status(), 409);
        assert_eq!(Reason::PayloadTooLarge.http_status(), 413);
        assert_eq!(Reason::LockedOut.http_status(), 429);
        assert_eq!(Reason::ServiceUnavailable.http_status(), 503);
        for reason in Reason::ALL {
            assert_eq!(u32::from(reason.http_status()), reason.error_code() / 100);
        }
    }
}
