//! The domain's refusal: a PROTOCOL §7 reason, a sentence, and for 429s how long to wait. The HTTP layer renders
//! it (`http::ApiError`); the domain knows nothing of status lines or bodies.

use crate::store::StoreError;
use callbox_core::{Reason, TicketError};
use std::borrow::Cow;

/// Why the domain refused or failed. The message never contains a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct DomainError {
    /// The reason word and code.
    pub reason: Reason,
    /// The human sentence.
    pub message: Cow<'static, str>,
    /// Seconds until a retry may succeed.
    pub retry_after: Option<u64>,
}

/// Result alias.
pub type DomainResult<T> = Result<T, DomainError>;

impl DomainError {
    /// With the reason's default message.
    pub fn new(reason: Reason) -> Self {
        Self { reason, message: Cow::Borrowed(reason.default_message()), retry_after: None }
    }

    /// With a specific message.
    pub fn with_message(reason: Reason, message: impl Into<Cow<'static, str>>) -> Self {
        Self { reason, message: message.into(), retry_after: None }
    }

    /// A refusal with a wait (at least one second).
    pub fn retry_after(reason: Reason, seconds: u64) -> Self {
        Self { retry_after: Some(seconds.max(1)), ..Self::new(reason) }
    }

    /// `malformed_request` with a message: the input broke a rule of the domain.
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::with_message(Reason::MalformedRequest, message)
    }
}

impl From<Reason> for DomainError {
    fn from(reason: Reason) -> Self {
        Self::new(reason)
    }
}

impl From<TicketError> for DomainError {
    fn from(error: TicketError) -> Self {
        Self::with_message(error.reason(), error.to_string())
    }
}

impl From<StoreError> for DomainError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::new(Reason::NotFound),
            StoreError::UserExists => Self::new(Reason::UserExists),
            StoreError::LastSecret => Self::new(Reason::LastSecret),
            StoreError::Unavailable(detail) => {
                tracing::error!(error = %detail, "store unavailable");
                Self::new(Reason::ServiceUnavailable)
            }
        }
    }
}
