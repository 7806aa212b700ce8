//! `GET /metrics` (Prometheus text): on the main listener, or alone on `metrics_listen`, and behind
//! `metrics_token` when that is set (docs/deploy.md "Who can read /metrics").

use super::error::ApiError;
use super::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use callbox_core::Reason;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The router of the separate metrics listener: `/metrics` and nothing else (every other path is 404 §7).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(page))
        .fallback(|| async { ApiError::new(Reason::NotFound) })
        .layer(axum::middleware::map_response(|response: Response| async move { super::json_errors(response) }))
        .with_state(state)
}

/// Renders the process's metrics, after checking the metrics token when one is configured.
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.callbox.config().metrics_token {
        if let Err(refusal) = check_token(&headers, &expected.0) {
            return refusal.into_response();
        }
    }
    match &state.metrics {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => ApiError::with_message(Reason::NotFound, "metrics are not enabled").into_response(),
    }
}

/// `Authorization: Bearer <token>` must carry `expected`. Compared as SHA-256 digests in constant time, so
/// neither the content nor the length of the token shows in the timing.
fn check_token(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::with_message(
            Reason::MissingAuthorization,
            "GET /metrics needs Authorization: Bearer <metrics token>",
        ));
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|text| text.strip_prefix("Bearer "))
        .ok_or(ApiError::with_message(Reason::MalformedAuthorization, "the metrics token goes in a Bearer header"))?;
    let matches: bool = Sha256::digest(given.trim().as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes())).into();
    if matches {
        Ok(())
    } else {
        Err(ApiError::with_message(Reason::InvalidAdminToken, "the metrics token is wrong"))
    }
}
