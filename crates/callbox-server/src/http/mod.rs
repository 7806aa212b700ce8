//! The HTTP surface: [`router`] builds every route and layer over an [`AppState`]. Handlers read the request,
//! call one [`Callbox`] method and render its answer with the wire types of `callbox-wire`; they never reach the
//! store.

pub mod admin;
pub mod assets;
pub mod call;
pub mod client;
pub mod dashboard;
pub mod error;
pub mod legacy;
pub mod scrape;

use crate::domain::Callbox;
use axum::extract::MatchedPath;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use callbox_core::Reason;
pub use error::{reason_for_status, ApiError};
use metrics::{Counter, Histogram, SharedString};
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The domain service (behind an `Arc`: the state is cloned for every request).
    pub callbox: Arc<Callbox>,
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
        .route("/v1/configuration/user", get(client::configuration))
        .route("/v1/realtime", get(crate::realtime::connection::upgrade))
        .route("/v1/transport", post(legacy::open_transport).get(legacy::get_transport))
        .route("/v1/report/im", post(legacy::report))
        .route("/v1/calls/{domain}", post(legacy::place_call))
        .route("/v1/calls/{domain}/id/{call_id}", put(legacy::report_call));

    // The legacy SDK's PubNub-style transport (docs/legacy-sdk.md), at the paths the SDK calls.
    let pubnub = Router::new()
        .route("/time/0", get(crate::realtime::legacy::time))
        .route("/subscribe/{subscribe_key}/{channels}/{callback}/{timetoken}", get(crate::realtime::legacy::subscribe))
        .route(
            "/publish/{publish_key}/{subscribe_key}/{signature}/{channel}/{callback}/{*message}",
            get(crate::realtime::legacy::publish),
        )
        .route(
            "/v2/presence/sub_key/{subscribe_key}/channel/{channels}/leave",
            get(crate::realtime::legacy::leave).post(crate::realtime::legacy::leave),
        );

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
        .route(
            "/admin/v1/apps/{key}/users/{user}/connections",
            get(crate::realtime::admin::list_connections).delete(crate::realtime::admin::drop_connections),
        )
        .route("/admin/v1/apps/{key}/realtime", get(crate::realtime::admin::activity))
        .route("/admin/v1/apps/{key}/sessions", get(admin::list_sessions))
        .route("/admin/v1/apps/{key}/sessions/revoke", post(admin::revoke_sessions))
        .route("/admin/v1/apps/{key}/sessions/{id}", delete(admin::revoke_session))
        .route("/admin/v1/apps/{key}/events", get(admin::list_events))
        .route("/admin/v1/apps/{key}/calls", get(admin::list_calls))
        .route("/admin/v1/apps/{key}/diagnose", post(admin::diagnose));

    let mut ops = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(crate::openapi::serve));
    // With `metrics_listen` set, /metrics lives only there; here it is then an unknown path (404).
    if state.callbox.config().metrics_listen.is_none() {
        ops = ops.route("/metrics", get(scrape::page));
    }

    let timeout = Duration::from_secs(state.callbox.config().limits.request_timeout_seconds.max(1));
    // A legacy long-poll waits by design; it gets its own bound (and a margin for the answer).
    let long_poll = Duration::from_secs(state.callbox.config().realtime.legacy_poll_seconds.max(1) + 30);
    let request_metrics = Arc::new(RequestMetrics::default());
    let callbox = Arc::clone(&state.callbox);
    Router::new()
        .merge(client)
        .merge(pubnub)
        .merge(admin)
        .merge(ops)
        .merge(assets::routes())
        .merge(dashboard::routes())
        .fallback(not_found)
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let limit = if request.uri().path().starts_with("/subscribe/") { long_poll } else { timeout };
            guard(request, next, limit, Arc::clone(&request_metrics), Arc::clone(&callbox))
        }))
        .layer(CorsWhenOrigin(cors(&state)))
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
                callbox.some_app_allows_origin(origin).await
            }
        }))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::HeaderName::from_static("x-timestamp")])
        .expose_headers([header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// Applies a [`CorsLayer`] to client-API requests that carry an `Origin` header (browsers) and passes the others (backends,
/// native clients: most signed calls) straight through: the CORS service builds and merges a header map on every
/// request, which cost about a fifth of a signed call's time in the router (`benches/request.rs`). A response
/// without `Origin` then has no `Vary: Origin`; API responses answer credentialed requests and are not stored
/// by shared caches, and one reused for a browser would lack `Access-Control-Allow-Origin` and be refused by it,
/// never wrongly allowed.
#[derive(Clone)]
struct CorsWhenOrigin(CorsLayer);

impl<S: Clone> tower::Layer<S> for CorsWhenOrigin {
    type Service = CorsWhenOriginService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CorsWhenOriginService { cors: self.0.layer(inner.clone()), plain: inner }
    }
}

#[derive(Clone)]
struct CorsWhenOriginService<S> {
    cors: tower_http::cors::Cors<S>,
    plain: S,
}

impl<S, B> tower::Service<axum::http::Request<B>> for CorsWhenOriginService<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<axum::body::Body>> + Clone,
    B: Default,
{
    type Response = Response;
    type Error = S::Error;
    type Future = futures_util::future::Either<
        <tower_http::cors::Cors<S> as tower::Service<axum::http::Request<B>>>::Future,
        S::Future,
    >;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        // Both wrap the same (always ready) router; each must be polled before its own `call`.
        match self.cors.poll_ready(cx) {
            std::task::Poll::Ready(Ok(())) => self.plain.poll_ready(cx),
            other => other,
        }
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        // CORS belongs to the client API alone (`/v1/...`): browsers of the apps' allowed origins call it. The
        // admin API and the dashboard answer no cross-origin grant at all (the dashboard is same-origin by
        // design). One outer layer deciding by path, rather than a layer on the client routes: a route layer is
        // cloned with its route for every request, and a CORS service clone allocates.
        if request.headers().contains_key(header::ORIGIN) && request.uri().path().starts_with("/v1/") {
            futures_util::future::Either::Left(self.cors.call(request))
        } else {
            futures_util::future::Either::Right(self.plain.call(request))
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::new(Reason::NotFound)
}

/// The most header bytes (names and values) a request may carry. hyper's own limit (its ~400 KiB read buffer)
/// answers with an empty 431; this one answers with the §7 JSON, long before that.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// What every request goes through, in one layer (each `from_fn` layer costs a service clone and a boxed future
/// per request, which showed in the signed-call profile): the header-size limit, the time limit, §7 JSON for
/// every error response, and the request metrics.
async fn guard(
    request: Request,
    next: Next,
    limit: Duration,
    request_metrics: Arc<RequestMetrics>,
    callbox: Arc<Callbox>,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let header_bytes: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    let response = if header_bytes > MAX_HEADER_BYTES {
        ApiError::with_message(Reason::PayloadTooLarge, "the request headers are too large")
            .into_response_at(callbox.now())
    } else {
        match tokio::time::timeout(limit, next.run(request)).await {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => error::restamp(json_errors(response), callbox.now()),
            Err(_) => ApiError::with_message(Reason::ServiceUnavailable, "the request took too long")
                .into_response_at(callbox.now()),
        }
    };
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (duration, count) = request_metrics.handles(method, route, response.status().as_u16());
    duration.record(started.elapsed().as_secs_f64());
    count.increment(1);
    response
}

/// The request metrics' handles by route, method and status, made once each. Building a handle through the
/// `metrics!` macros allocates and sorts the labels and searches the registry on every request, which showed in
/// the signed-call profile. Routes are the fixed set this router declares, so the table stays small.
#[derive(Default)]
struct RequestMetrics {
    by_route: RwLock<HashMap<String, RouteMetrics>>,
}

/// One route's handles by method and status: (duration histogram, request counter).
type RouteMetrics = HashMap<(&'static str, u16), (Histogram, Counter)>;

impl RequestMetrics {
    fn handles(&self, method: &'static str, route: &str, status: u16) -> (Histogram, Counter) {
        let found = self
            .by_route
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(route)
            .and_then(|by_status| by_status.get(&(method, status)).cloned());
        if let Some(handles) = found {
            return handles;
        }
        let route_label = SharedString::from_owned(route.to_owned());
        let handles = (
            metrics::histogram!("callbox_http_request_duration_seconds", "method" => method, "route" => route_label.clone()),
            metrics::counter!(
                "callbox_http_requests_total",
                "method" => method, "route" => route_label, "status" => status.to_string()
            ),
        );
        self.by_route
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(route.to_owned())
            .or_default()
            .insert((method, status), handles.clone());
        handles
    }
}

/// Turns every error response that did not come from an [`ApiError`] (routing, method, path decoding, panics)
/// into the §7 JSON, so no client ever sees an empty or plain-text error.
pub(crate) fn json_errors(response: Response) -> Response {
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

/// The method as a metrics label without allocating (anything unusual is `other`).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = state.callbox.readiness().await;
    let redis = readiness.redis;
    match readiness.database {
        Ok(()) => Json(serde_json::json!({
            "status": "ready", "database": "ok", "redis": redis,
            "fileDescriptorLimit": crate::listener::file_descriptor_limit(),
        }))
        .into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready: database");
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "status": "unavailable", "database": "unreachable", "redis": redis,
                    "fileDescriptorLimit": crate::listener::file_descriptor_limit(),
                    "errorCode": 50300, "reason": "service_unavailable", "retryable": true,
                    "message": "the database is unreachable",
                    "serverTime": callbox_core::time::format_iso_seconds(state.callbox.now()),
                })),
            )
                .into_response();
            response.extensions_mut().insert(Reason::ServiceUnavailable);
            response
        }
    }
}
