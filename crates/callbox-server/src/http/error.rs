//! The one error type of the HTTP surface, rendered as the PROTOCOL §7 JSON: a [`DomainError`] from the domain,
//! or a refusal of the HTTP layer itself (a bad body, a missing header).

use crate::domain::DomainError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use callbox_core::Reason;
pub use callbox_wire::ErrorBody;
use chrono::{DateTime, Utc};
use std::borrow::Cow;

/// A refusal: a §7 reason, a sentence that never contains a credential, and for 429s how long to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The reason word and code.
    pub reason: Reason,
    /// The human sentence.
    pub message: Cow<'static, str>,
    /// Seconds until a retry may succeed (`Retry-After`, and `retryAfter` in the body).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// With the reason's default message.
    pub fn new(reason: Reason) -> Self {
        Self { reason, message: Cow::Borrowed(reason.default_message()), retry_after: None }
    }

    /// With a specific message.
    pub fn with_message(reason: Reason, message: impl Into<Cow<'static, str>>) -> Self {
        Self { reason, message: message.into(), retry_after: None }
    }

    /// A 429 with a wait.
    pub fn retry_after(reason: Reason, seconds: u64) -> Self {
        Self { retry_after: Some(seconds.max(1)), ..Self::new(reason) }
    }

    /// 400 `malformed_request` with a message.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::with_message(Reason::MalformedRequest, message)
    }

    /// The body, rendered now.
    pub fn body(&self) -> ErrorBody {
        self.body_at(Utc::now())
    }

    /// The body with `serverTime` = `now`.
    pub fn body_at(&self, now: DateTime<Utc>) -> ErrorBody {
        ErrorBody {
            error_code: self.reason.error_code(),
            message: self.message.to_string(),
            reason: self.reason.as_str().to_owned(),
            retryable: self.reason.retryable(),
            server_time: callbox_core::time::format_iso_seconds(now),
            retry_after: self.retry_after,
        }
    }
}

impl From<Reason> for ApiError {
    fn from(reason: Reason) -> Self {
        Self::new(reason)
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        Self { reason: error.reason, message: error.message, retry_after: error.retry_after }
    }
}

/// What an error response was rendered from, and the second its `serverTime` names.
#[derive(Debug, Clone)]
struct Rendered {
    error: ApiError,
    second: i64,
}

impl ApiError {
    /// The response, with `serverTime` = `now`.
    pub fn into_response_at(self, now: DateTime<Utc>) -> Response {
        let status = StatusCode::from_u16(self.reason.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body_at(now))).into_response();
        if let Some(seconds) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response.extensions_mut().insert(self.reason);
        response.extensions_mut().insert(Rendered { error: self, second: now.timestamp() });
        response
    }
}

/// Rendered with the machine's time; the router's outer layer renders it again with the domain's clock when that
/// names another second ([`restamp`]), so `serverTime` is the time the server decided with (the one tests move).
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_at(Utc::now())
    }
}

/// An error response made by [`ApiError`] whose `serverTime` is not `now`'s second, rendered again with `now`;
/// any other response as it is (with the real clock, nearly always: no second rendering).
pub fn restamp(response: Response, now: DateTime<Utc>) -> Response {
    match response.extensions().get::<Rendered>() {
        Some(rendered) if rendered.second != now.timestamp() => rendered.error.clone().into_response_at(now),
        _ => response,
    }
}

/// Maps a bare error status made outside our handlers (routing, body limits, timeouts) to its §7 reason.
pub fn reason_for_status(status: StatusCode) -> Reason {
    match status.as_u16() {
        400 | 422 => Reason::MalformedRequest,
        401 => Reason::MissingAuthorization,
        403 => Reason::OriginNotAllowed,
        404 => Reason::NotFound,
        405 => Reason::MethodNotAllowed,
        408 | 503 | 504 => Reason::ServiceUnavailable,
        413 | 431 => Reason::PayloadTooLarge,
        415 => Reason::UnsupportedMediaType,
        429 => Reason::RateLimited,
        _ => Reason::Internal,
    }
}
