//! Reading a request: the client address, the `Authorization` header, JSON bodies and the signed parts, each
//! failure a precise §7 error.

use super::error::ApiError;
use super::AppState;
use crate::domain::RequestMeta;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::{header, HeaderMap, Method};
use callbox_core::authorization::{self, Authorization};
use callbox_core::{Reason, SignedParts};
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};

/// Everything a handler needs from the request, with the body read (up to the configured limit).
#[derive(Debug)]
pub struct Call {
    /// Method.
    pub method: Method,
    /// Path (without the query).
    pub path: String,
    /// Headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// Client address and origin.
    pub meta: RequestMeta,
}

impl FromRequest<AppState> for Call {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let limit = state.callbox.config().limits.max_body_bytes;
        if parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|len| len > limit as u64)
        {
            return Err(ApiError::new(Reason::PayloadTooLarge));
        }
        let body = axum::body::to_bytes(body, limit).await.map_err(|_| ApiError::new(Reason::PayloadTooLarge))?;
        let meta = request_meta(&parts, state);
        Ok(Call { method: parts.method, path: parts.uri.path().to_owned(), headers: parts.headers, body, meta })
    }
}

/// Who is calling: the peer address (or, behind a trusted proxy, the last `X-Forwarded-For` entry) and the
/// `Origin` header. The one place both the HTTP calls and the realtime upgrade take it from, so that limits and
/// audit see the same address for both.
pub fn request_meta(parts: &axum::http::request::Parts, state: &AppState) -> RequestMeta {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    let forwarded = state
        .callbox
        .config()
        .trust_forwarded_for
        .then(|| parts.headers.get("x-forwarded-for")?.to_str().ok()?.rsplit(',').next()?.trim().parse().ok())
        .flatten();
    let ip = forwarded.or(peer).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let origin = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
    RequestMeta { ip, origin }
}

impl Call {
    /// The single `Authorization` header, parsed. Missing → `missing_authorization`; two of them, non-ASCII,
    /// unknown scheme or bad shape → `malformed_authorization`.
    pub fn authorization(&self) -> Result<Authorization<'_>, ApiError> {
        let mut values = self.headers.get_all(header::AUTHORIZATION).iter();
        let value = values.next().ok_or(ApiError::new(Reason::MissingAuthorization))?;
        if values.next().is_some() {
            return Err(ApiError::with_message(
                Reason::MalformedAuthorization,
                "send exactly one Authorization header",
            ));
        }
        let text = value.to_str().map_err(|_| {
            ApiError::with_message(Reason::MalformedAuthorization, "the Authorization header must be visible ASCII")
        })?;
        authorization::parse(text).map_err(|e| ApiError::with_message(e.reason(), e.to_string()))
    }

    /// A header as text ("" when absent or not visible ASCII).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The JSON body. An empty body reads as `{}`; a non-JSON content type → 415; bad JSON → 400 naming where.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.json_shaped(b'{')
    }

    /// [`Call::json`] for the few bodies that are a JSON array (the legacy `POST /v1/transport`); empty reads
    /// as `[]`.
    pub fn json_array<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.json_shaped(b'[')
    }

    fn json_shaped<T: DeserializeOwned>(&self, opening: u8) -> Result<T, ApiError> {
        let empty: &[u8] = if opening == b'[' { b"[]" } else { b"{}" };
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) { empty } else { &self.body };
        if !self.body.is_empty() {
            let content_type = self.header("content-type");
            let essence = content_type.split(';').next().unwrap_or("").trim();
            if !essence.eq_ignore_ascii_case("application/json") {
                return Err(ApiError::new(Reason::UnsupportedMediaType));
            }
        }
        if std::str::from_utf8(body).is_err() {
            return Err(ApiError::bad_request("the body is not UTF-8"));
        }
        // serde reads a struct from a JSON array too (fields by position): each body has one shape.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&opening) {
            let shape =
                if opening == b'[' { "the body must be a JSON array" } else { "the body must be a JSON object" };
            return Err(ApiError::bad_request(shape));
        }
        // serde's messages can quote input (a password sent in the wrong field), so only the position is told.
        serde_json::from_slice(body).map_err(|error| {
            let what = match error.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "the body is not valid JSON",
                _ => "a field of the body is missing or has the wrong type",
            };
            ApiError::bad_request(format!("{what} (line {}, column {})", error.line(), error.column()))
        })
    }

    /// The parts a request signature covers.
    pub fn signed_parts(&self) -> SignedParts<'_> {
        SignedParts {
            method: self.method.as_str(),
            body: &self.body,
            content_type: self.header("content-type"),
            timestamp: self.header("x-timestamp"),
            path: &self.path,
        }
    }
}
