//! The app owner's web console at `/dashboard`: a static page, a script and a stylesheet embedded in the binary
//! (no internet needed), plus sign-in, session and sign-out calls. Everything else the page shows or changes goes
//! through the admin API (`/admin/v1/...`), which accepts a dashboard session cookie in place of the Bearer token
//! (see [`authorize`], called from the admin API's `require_admin`).
//!
//! - **Sessions** are random 256-bit tokens kept in this process's memory (one node; a restart signs everyone
//!   out), looked up by their SHA-256, bound to the admin token's stored hash (changing the admin token ends
//!   them), ending after [`IDLE_TIMEOUT`] without use or [`ABSOLUTE_TIMEOUT`] after sign-in, whichever is first.
//! - **Cookie**: `callbox_dashboard`, `Path=/; HttpOnly; SameSite=Strict`, plus `Secure` when the request came
//!   over HTTPS: always when Callbox terminates TLS itself (`[tls]`), else when a trusted proxy says
//!   `X-Forwarded-Proto: https` (`trust_forwarded_for = true`).
//! - **CSRF**: each session has its own random CSRF token, kept server-side with it and handed to the page by
//!   `GET /dashboard/api/session`; every admin call other than GET/HEAD made with the cookie must carry it in
//!   `X-CSRF-Token` (compared in constant time), and its `Origin`/`Sec-Fetch-Site`, when sent, must be this
//!   server. Sign-in is protected against login CSRF with a pre-session double-submit token: `GET
//!   /dashboard/api/signin` sets it in a short-lived HttpOnly cookie and returns it; `POST /dashboard/api/signin`
//!   needs both to match.
//! - Every dashboard response carries a strict Content-Security-Policy ([`CSP`]), `X-Content-Type-Options:
//!   nosniff`, `Referrer-Policy: no-referrer` and `X-Frame-Options: DENY`.

use super::call::Call;
use super::error::ApiError;
use super::AppState;
use crate::crypto::random_token;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use callbox_core::Reason;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "callbox_dashboard";
/// The pre-session (sign-in) cookie's name.
pub const SIGNIN_COOKIE: &str = "callbox_dashboard_signin";
/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(2 * 3600);
/// A session ends this long after sign-in, however busy.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// How long the sign-in form's token lives.
const SIGNIN_TTL_SECONDS: u64 = 900;
/// At most this many live sessions; the oldest goes first.
const MAX_SESSIONS: usize = 1000;
/// The Content-Security-Policy of every dashboard response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The dashboard's routes, merged into [`super::router`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(index))
        .route("/dashboard/", get(index))
        .route("/dashboard/app.js", get(script))
        .route("/dashboard/app.css", get(stylesheet))
        .route("/dashboard/api/signin", get(signin_start).post(signin))
        .route("/dashboard/api/session", get(session_info))
        .route("/dashboard/api/signout", post(signout))
        .layer(middleware::from_fn(security_headers))
}

// ----- sessions ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Entry {
    csrf: Zeroizing<String>,
    admin_hash: String,
    created: Instant,
    last_seen: Instant,
}

/// The live dashboard sessions of this process, keyed by the SHA-256 of the cookie value.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Entry>>,
}

fn key_of(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new session bound to `admin_hash`: (cookie value, CSRF token).
    pub fn create(&self, admin_hash: &str, now: Instant) -> (Zeroizing<String>, Zeroizing<String>) {
        let cookie = Zeroizing::new(random_token(32));
        let csrf = Zeroizing::new(random_token(32));
        let mut map = self.lock();
        map.retain(|_, entry| alive(entry, now));
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, entry)| entry.created).map(|(key, _)| *key) {
                map.remove(&oldest);
            }
        }
        map.insert(
            key_of(&cookie),
            Entry { csrf: csrf.clone(), admin_hash: admin_hash.to_owned(), created: now, last_seen: now },
        );
        (cookie, csrf)
    }

    /// The CSRF token of the live session `cookie`, bound to `admin_hash`; marks it used. `None` (and the session
    /// forgotten) when unknown, expired or bound to another admin token.
    pub fn check(&self, cookie: &str, admin_hash: &str, now: Instant) -> Option<Zeroizing<String>> {
        let key = key_of(cookie);
        let mut map = self.lock();
        let entry = map.get_mut(&key)?;
        let bound = bool::from(entry.admin_hash.as_bytes().ct_eq(admin_hash.as_bytes()));
        if !bound || !alive(entry, now) {
            map.remove(&key);
            return None;
        }
        entry.last_seen = now;
        Some(entry.csrf.clone())
    }

    /// Ends the session `cookie`.
    pub fn remove(&self, cookie: &str) {
        self.lock().remove(&key_of(cookie));
    }
}

fn alive(entry: &Entry, now: Instant) -> bool {
    now.saturating_duration_since(entry.created) < ABSOLUTE_TIMEOUT
        && now.saturating_duration_since(entry.last_seen) < IDLE_TIMEOUT
}

static SESSIONS: LazyLock<Sessions> = LazyLock::new(Sessions::default);

// ----- request checks ---------------------------------------------------------------------------------------

/// The value of cookie `name` among all `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether the request reached the proxy in front of Callbox over HTTPS (only believed when the proxy is trusted).
pub fn is_https(headers: &HeaderMap, trust_proxy: bool) -> bool {
    trust_proxy
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// Whether the dashboard's cookies get `Secure`: the listener speaks only HTTPS (`[tls]`; the dashboard is never
/// on the metrics listener), or a trusted proxy says the request came over HTTPS.
fn secure_cookies(state: &AppState, headers: &HeaderMap) -> bool {
    let config = state.callbox.config();
    config.tls.is_enabled() || is_https(headers, config.trust_forwarded_for)
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always, Secure over HTTPS; `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

/// Whether a state-changing request comes from this server's own pages: a browser's `Sec-Fetch-Site`, when
/// sent, must be `same-origin` (or `none`: typed by the user), and `Origin`, when sent, must name the host the
/// request was sent to.
pub fn same_origin(headers: &HeaderMap, trust_proxy: bool) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    let Some(origin) = text("origin") else { return true };
    let host = trust_proxy.then(|| text("x-forwarded-host")).flatten().or_else(|| text("host"));
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    match (authority, host) {
        (Some(authority), Some(host)) => authority.eq_ignore_ascii_case(host.split(',').next().unwrap_or("").trim()),
        _ => false,
    }
}

/// Constant-time comparison of a presented CSRF token with the expected one (an empty one never matches).
pub fn csrf_matches(presented: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn session_over() -> ApiError {
    ApiError::with_message(Reason::InvalidAdminToken, "the dashboard session is over; sign in again")
}

fn csrf_refused() -> ApiError {
    ApiError::with_message(
        Reason::InvalidAdminToken,
        "a change from the dashboard needs its CSRF token (X-CSRF-Token) and must come from the dashboard's own page",
    )
}

async fn admin_hash(state: &AppState) -> Result<String, ApiError> {
    state.callbox.admin_token_hash().await?.ok_or_else(session_over)
}

/// The dashboard's way into the admin API: `None` when the request carries an `Authorization` header or no
/// dashboard cookie (the Bearer check applies); otherwise whether the session is live and, for anything but
/// GET/HEAD, the CSRF token and origin are right.
pub async fn authorize(state: &AppState, call: &Call) -> Option<Result<(), ApiError>> {
    if call.headers.contains_key(header::AUTHORIZATION) {
        return None;
    }
    let cookie = cookie_value(&call.headers, SESSION_COOKIE)?;
    Some(authorize_session(state, &call.method, &call.headers, cookie).await.map(|_| ()))
}

async fn authorize_session(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    cookie: &str,
) -> Result<Zeroizing<String>, ApiError> {
    let hash = admin_hash(state).await?;
    let csrf = SESSIONS.check(cookie, &hash, Instant::now()).ok_or_else(session_over)?;
    if !is_safe(method) {
        let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        let trust = state.callbox.config().trust_forwarded_for;
        if !csrf_matches(presented, &csrf) || !same_origin(headers, trust) {
            return Err(csrf_refused());
        }
    }
    Ok(csrf)
}

// ----- handlers ---------------------------------------------------------------------------------------------

async fn security_headers(request: Request, next: Next) -> Response {
    let is_api = request.uri().path().starts_with("/dashboard/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    let cache = if is_api { "no-store" } else { "no-cache" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

fn with_cookies(mut response: Response, cookies: &[String]) -> Response {
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// Sign-in tokens handed out and not yet used (by SHA-256, with their expiry): each signs in at most once.
static SIGNIN_TOKENS: LazyLock<Mutex<HashMap<[u8; 32], Instant>>> = LazyLock::new(|| Mutex::new(HashMap::new()));
/// At most this many unused sign-in tokens are remembered; the oldest goes first.
const MAX_SIGNIN_TOKENS: usize = 10_000;

fn remember_signin_token(token: &str, now: Instant) {
    let mut tokens = SIGNIN_TOKENS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    tokens.retain(|_, expires| *expires > now);
    if tokens.len() >= MAX_SIGNIN_TOKENS {
        if let Some(oldest) = tokens.iter().min_by_key(|(_, expires)| **expires).map(|(key, _)| *key) {
            tokens.remove(&oldest);
        }
    }
    tokens.insert(key_of(token), now + Duration::from_secs(SIGNIN_TTL_SECONDS));
}

/// Whether `token` was handed out, has not expired, and was not used before; it is used up either way.
fn use_signin_token(token: &str, now: Instant) -> bool {
    let mut tokens = SIGNIN_TOKENS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    tokens.remove(&key_of(token)).is_some_and(|expires| expires > now)
}

/// `GET /dashboard/api/signin`: a fresh sign-in token, in an HttpOnly cookie and in the answer. It is good for
/// one sign-in attempt (the page asks for a new one for each).
async fn signin_start(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = Zeroizing::new(random_token(32));
    remember_signin_token(&token, Instant::now());
    let secure = secure_cookies(&state, &headers);
    let cookie = set_cookie(SIGNIN_COOKIE, &token, "/dashboard/api/signin", SIGNIN_TTL_SECONDS, secure);
    with_cookies(Json(json!({ "signinToken": token.as_str() })).into_response(), &[cookie])
}

#[derive(Deserialize)]
struct SigninBody {
    token: Zeroizing<String>,
}

/// `POST /dashboard/api/signin` with `{"token": admin token}` and the sign-in token in `X-CSRF-Token`.
async fn signin(State(state): State<AppState>, call: Call) -> Result<Response, ApiError> {
    let trust = state.callbox.config().trust_forwarded_for;
    let expected = cookie_value(&call.headers, SIGNIN_COOKIE).unwrap_or("");
    // Used up by this attempt whatever its outcome, so a sign-in token never signs in twice.
    let fresh = !expected.is_empty() && use_signin_token(expected, Instant::now());
    if !fresh || !csrf_matches(call.header(CSRF_HEADER), expected) || !same_origin(&call.headers, trust) {
        return Err(ApiError::with_message(
            Reason::InvalidAdminToken,
            "sign-in needs the sign-in form's token; reload the page and try again",
        ));
    }
    let body: SigninBody = call.json()?;
    if !state.callbox.check_admin_token(body.token.trim()).await? {
        return Err(ApiError::new(Reason::InvalidAdminToken));
    }
    let hash = admin_hash(&state).await?;
    let (cookie, csrf) = SESSIONS.create(&hash, Instant::now());
    let secure = secure_cookies(&state, &call.headers);
    let cookies = [
        set_cookie(SESSION_COOKIE, &cookie, "/", ABSOLUTE_TIMEOUT.as_secs(), secure),
        set_cookie(SIGNIN_COOKIE, "", "/dashboard/api/signin", 0, secure),
    ];
    Ok(with_cookies(Json(session_json(&csrf)).into_response(), &cookies))
}

fn session_json(csrf: &str) -> serde_json::Value {
    json!({
        "csrfToken": csrf,
        "idleTimeoutSeconds": IDLE_TIMEOUT.as_secs(),
        "absoluteTimeoutSeconds": ABSOLUTE_TIMEOUT.as_secs(),
    })
}

/// `GET /dashboard/api/session`: the live session's CSRF token, or 401.
async fn session_info(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let cookie = cookie_value(&headers, SESSION_COOKIE).ok_or_else(session_over)?;
    let csrf = authorize_session(&state, &Method::GET, &headers, cookie).await?;
    Ok(Json(session_json(&csrf)).into_response())
}

/// `POST /dashboard/api/signout` (with the CSRF token): ends the session and deletes the cookie.
async fn signout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let secure = secure_cookies(&state, &headers);
    if let Some(cookie) = cookie_value(&headers, SESSION_COOKIE) {
        let hash = admin_hash(&state).await?;
        if let Some(csrf) = SESSIONS.check(cookie, &hash, Instant::now()) {
            let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !csrf_matches(presented, &csrf) || !same_origin(&headers, state.callbox.config().trust_forwarded_for) {
                return Err(csrf_refused());
            }
            SESSIONS.remove(cookie);
        }
    }
    let response = StatusCode::NO_CONTENT.into_response();
    Ok(with_cookies(response, &[set_cookie(SESSION_COOKIE, "", "/", 0, secure)]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn cookies_are_found_among_several_headers() {
        let h = headers(&[("cookie", "a=1; callbox_dashboard_signin=pre"), ("cookie", "callbox_dashboard=abc")]);
        assert_eq!(cookie_value(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie_value(&h, SIGNIN_COOKIE), Some("pre"));
        assert_eq!(cookie_value(&h, "missing"), None);
        assert_eq!(cookie_value(&headers(&[("cookie", "callbox_dashboard=")]), SESSION_COOKIE), None);
    }

    #[test]
    fn cookie_flags() {
        let plain = set_cookie(SESSION_COOKIE, "v", "/", 60, false);
        assert_eq!(plain, "callbox_dashboard=v; Path=/; Max-Age=60; HttpOnly; SameSite=Strict");
        assert!(set_cookie(SESSION_COOKIE, "v", "/", 60, true).ends_with("; Secure"));
    }

    #[test]
    fn https_only_through_a_trusted_proxy() {
        let h = headers(&[("x-forwarded-proto", "https")]);
        assert!(is_https(&h, true));
        assert!(!is_https(&h, false));
        assert!(!is_https(&headers(&[("x-forwarded-proto", "http")]), true));
        assert!(!is_https(&HeaderMap::new(), true));
    }

    #[test]
    fn origin_checks() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]), false));
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")]), false));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:3000")]), false));
        assert!(!same_origin(&headers(&[("host", "a.example"), ("origin", "null")]), false));
        assert!(!same_origin(&headers(&[("host", "a.example"), ("sec-fetch-site", "same-site")]), false));
        assert!(!same_origin(&headers(&[("host", "a.example"), ("sec-fetch-site", "cross-site")]), false));
        let proxied =
            headers(&[("host", "10.0.0.2:8080"), ("x-forwarded-host", "a.example"), ("origin", "https://a.example")]);
        assert!(same_origin(&proxied, true));
        assert!(!same_origin(&proxied, false));
    }

    #[test]
    fn csrf_comparison() {
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abd", "abc"));
        assert!(!csrf_matches("", "abc"));
        assert!(!csrf_matches("", ""));
    }

    #[test]
    fn sessions_expire_idle_and_absolute_and_are_bound_to_the_admin_token() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let (cookie, csrf) = sessions.create("hash", start);
        assert_eq!(sessions.check(&cookie, "hash", start).unwrap().as_str(), csrf.as_str());
        assert!(sessions.check("other", "hash", start).is_none());

        // Used every hour: alive until the absolute limit.
        let mut at = start;
        while at + Duration::from_secs(3600) < start + ABSOLUTE_TIMEOUT {
            at += Duration::from_secs(3600);
            assert!(sessions.check(&cookie, "hash", at).is_some(), "alive at {:?}", at - start);
        }
        assert!(sessions.check(&cookie, "hash", start + ABSOLUTE_TIMEOUT).is_none());

        let (idle, _) = sessions.create("hash", start);
        assert!(sessions.check(&idle, "hash", start + IDLE_TIMEOUT).is_none());

        let (rebound, _) = sessions.create("hash", start);
        assert!(sessions.check(&rebound, "new-hash", start).is_none());
        assert!(sessions.check(&rebound, "hash", start).is_none(), "a mismatch forgets the session");

        let (ended, _) = sessions.create("hash", start);
        sessions.remove(&ended);
        assert!(sessions.check(&ended, "hash", start).is_none());
    }

    #[test]
    fn the_number_of_sessions_is_bounded() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let (first, _) = sessions.create("hash", start);
        for i in 1..=MAX_SESSIONS {
            sessions.create("hash", start + Duration::from_millis(i as u64));
        }
        assert!(sessions.check(&first, "hash", start + Duration::from_secs(1)).is_none());
        assert_eq!(sessions.lock().len(), MAX_SESSIONS);
    }

    #[test]
    fn assets_are_embedded_and_reference_only_themselves() {
        assert!(INDEX_HTML.contains("/dashboard/app.js") && INDEX_HTML.contains("/dashboard/app.css"));
        for text in [INDEX_HTML, APP_JS, APP_CSS] {
            assert!(!text.contains("https://") && !text.contains("http://"), "no external URL in the assets");
        }
        assert!(!INDEX_HTML.contains("style=") && !INDEX_HTML.contains("onclick"), "nothing inline (CSP)");
    }
}
