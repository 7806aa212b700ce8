//! The HTTP surface: [`router`] builds every route and layer over an [`AppState`].

pub mod admin;
pub mod assets;
pub mod call;
pub mod client;

use crate::error::{reason_for_status, ApiError};
use crate::service::Callbox;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use callbox_core::Reason;
use metrics_exporter_prometheus::PrometheusHandle;
use std::time::{Duration, Instant};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The domain service.
    pub callbox: Callbox,
    /// Renders `/metrics`; `None` when no recorder is installed.
    pub metrics: Option<PrometheusHandle>,
}

/// All routes and layers.
pub fn router(state: AppState) -> Router {
    let client = Router::new()
        .route("/v1/timestamp", get(client::timestamp))
        .route("/v1/timestamp/", get(client::timestamp))
        .route("/v1/users", post(client::sign_up))
        .route("/v1/users/{type}/{endpoint}/authentication", post(client::log_in))
        .route("/v1/instance", post(client::create_instance))
        .route("/v1/instances/id/{id}/authorization", put(client::reauthorize))
        .route("/v1/instances/id/{id}", get(client::get_instance).delete(client::delete_instance))
        .route("/v1/user/profile", get(client::profile))
        .route("/v1/configuration/user", get(client::configuration));

    let admin = Router::new()
        .route("/admin/v1/apps", post(admin::create_app).get(admin::list_apps))
        .route("/admin/v1/apps/{key}", get(admin::get_app).patch(admin::update_app).delete(admin::delete_app))
        .route("/admin/v1/apps/{key}/secrets", post(admin::rotate_secret))
        .route("/admin/v1/apps/{key}/secrets/{id}", delete(admin::retire_secret))
        .route("/admin/v1/apps/{key}/users", get(admin::list_users).post(admin::add_user))
        .route("/admin/v1/apps/{key}/users/{user}", delete(admin::remove_user))
        .route("/admin/v1/apps/{key}/users/{user}/password", put(admin::set_password))
        .route("/admin/v1/apps/{key}/users/{user}/disable", post(admin::disable_user))
        .route("/admin/v1/apps/{key}/users/{user}/enable", post(admin::enable_user))
        .route("/admin/v1/apps/{key}/sessions", get(admin::list_sessions))
        .route("/admin/v1/apps/{key}/sessions/revoke", post(admin::revoke_sessions))
        .route("/admin/v1/apps/{key}/sessions/{id}", delete(admin::revoke_session))
        .route("/admin/v1/apps/{key}/events", get(admin::list_events))
        .route("/admin/v1/apps/{key}/diagnose", post(admin::diagnose));

    let ops = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_page))
        .route("/openapi.json", get(crate::openapi::serve));

    let timeout = Duration::from_secs(state.callbox.config.limits.request_timeout_seconds.max(1));
    Router::new()
        .merge(client)
        .merge(admin)
        .merge(ops)
        .merge(assets::routes())
        .merge(crate::dashboard::routes())
        .fallback(not_found)
        .layer(middleware::from_fn(move |request: Request, next: Next| with_timeout(request, next, timeout)))
        .layer(middleware::from_fn(limit_headers))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(record_metrics))
        .layer(cors(&state))
        .with_state(state)
}

/// CORS for browsers: a preflight succeeds for an origin that some application allows (the preflight carries no
/// credentials, so the application is not known yet); the real request is then checked against its own
/// application's `allowedOrigins` and refused with `origin_not_allowed` otherwise.
fn cors(state: &AppState) -> CorsLayer {
    let callbox = state.callbox.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::async_predicate(move |origin: HeaderValue, _parts| {
            let callbox = callbox.clone();
            async move {
                let Ok(origin) = origin.to_str() else { return false };
                match callbox.store.list_apps().await {
                    Ok(apps) => apps.iter().any(|app| crate::service::origin_allowed(app, Some(origin))),
                    Err(_) => false,
                }
            }
        }))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::HeaderName::from_static("x-timestamp")])
        .expose_headers([header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

async fn not_found() -> ApiError {
    ApiError::new(Reason::NotFound)
}

/// The most header bytes (names and values) a request may carry. hyper's own limit (its ~400 KiB read buffer)
/// answers with an empty 431; this one answers with the §7 JSON, long before that.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

async fn limit_headers(request: Request, next: Next) -> Response {
    let size: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if size > MAX_HEADER_BYTES {
        return ApiError::with_message(Reason::PayloadTooLarge, "the request headers are too large").into_response();
    }
    next.run(request).await
}

async fn with_timeout(request: Request, next: Next, limit: Duration) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::with_message(Reason::ServiceUnavailable, "the request took too long").into_response(),
    }
}

/// Turns every error response that did not come from an [`ApiError`] (routing, method, path decoding, panics)
/// into the §7 JSON, so no client ever sees an empty or plain-text error.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if (status.is_client_error() || status.is_server_error()) && response.extensions().get::<Reason>().is_none() {
        let reason = reason_for_status(status);
        let mut replaced = ApiError::new(reason).into_response();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            if let Some(allow) = response.headers().get(header::ALLOW) {
                replaced.headers_mut().insert(header::ALLOW, allow.clone());
            }
        }
        return replaced;
    }
    response
}

async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("callbox_http_request_duration_seconds", "method" => method.to_string(), "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("callbox_http_requests_total", "method" => method.to_string(), "route" => route, "status" => status)
        .increment(1);
    response
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    // Redis only carries login limits: while it is down this node still serves, with node-local limits, so it
    // stays ready and says "degraded" rather than taking every node out of the load balancer at once.
    let redis = match &state.callbox.limiter.shared {
        None => "not_configured",
        Some(shared) => match shared.ping().await {
            Ok(()) => "ok",
            Err(_) => "degraded",
        },
    };
    match state.callbox.store.ping().await {
        Ok(()) => Json(serde_json::json!({ "status": "ready", "database": "ok", "redis": redis })).into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready: database");
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "status": "unavailable", "database": "unreachable", "redis": redis,
                    "errorCode": 50300, "reason": "service_unavailable", "retryable": true,
                    "message": "the database is unreachable",
                    "serverTime": callbox_core::time::format_iso_seconds(chrono::Utc::now()),
                })),
            )
                .into_response();
            response.extensions_mut().insert(Reason::ServiceUnavailable);
            response
        }
    }
}

async fn metrics_page(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => ApiError::with_message(Reason::NotFound, "metrics are not enabled").into_response(),
    }
}
