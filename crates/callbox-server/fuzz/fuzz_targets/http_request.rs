//! Fuzzes what the server makes of an HTTP request: routing, path parameters, the `Call` extractor (body limit,
//! client address, Authorization parsing, JSON bodies, signed parts), the handlers behind them and the §7 error
//! rendering, through the real router on a real (temporary) SQLite store.
//!
//! Input: `METHOD PATH\nname: value\n...\n\nbody`. The first byte is a mode: when its low bit is set, the
//! harness replaces the Authorization and X-Timestamp headers with a valid `Instance` signature of the fuzzed
//! request by a live session, so the fuzzer reaches the signed-call handlers; bit 1 puts a valid `User` ticket in
//! place instead (exchanges and re-authorizations).
//!
//! Invariants besides "never panics": every answer is a status the §7 table allows; every 4xx/5xx has a JSON body
//! with `errorCode` (whose first three digits are the status), a snake_case `reason`, `message`, `retryable` and
//! `serverTime`; nothing is answered with a 500.
#![no_main]

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use axum::Router;
use callbox_core::signing::{self, SignedParts};
use callbox_core::ticket::{self, NewTicket};
use callbox_core::{Identity, Secret};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tower::ServiceExt;

struct World {
    runtime: tokio::runtime::Runtime,
    router: Router,
    app_key: String,
    app_secret: Secret,
    session_id: String,
    session_secret: Secret,
    _dir: std::path::PathBuf,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("callbox-http-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut config = callbox_server::config::Config::default();
        config.data = dir.clone();
        config.listen = "127.0.0.1:0".parse().unwrap();
        // Cheap hashing so that sign-ups and logins the fuzzer reaches do not dominate the run.
        config.passwords.iterations = 2;
        let (callbox, made) = runtime.block_on(callbox_server::open(&config)).unwrap();
        let (app_key, secret) = made.demo_app.unwrap();
        let app_secret = Secret::from_base64(&secret).unwrap();
        let router = callbox_server::http::router(callbox_server::http::AppState { callbox: std::sync::Arc::new(callbox), metrics: None });
        let ticket = mint(&app_key, &app_secret, "fuzzer");
        let request = Request::post("/v1/instance")
            .header("authorization", format!("User {ticket}"))
            .header("content-type", "application/json")
            .body(Body::from(r#"{"services":{"im":true}}"#))
            .unwrap();
        let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
        assert_eq!(response.status(), 200);
        let bytes = runtime.block_on(axum::body::to_bytes(response.into_body(), 1 << 20)).unwrap();
        let grant: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        World {
            runtime,
            router,
            app_key,
            app_secret,
            session_id: grant["id"].as_str().unwrap().to_owned(),
            session_secret: Secret::from_base64(grant["secret"].as_str().unwrap()).unwrap(),
            _dir: dir,
        }
    })
}

fn mint(key: &str, secret: &Secret, user: &str) -> String {
    ticket::mint(
        &NewTicket {
            application_key: key.to_owned(),
            identity: Identity::username(user),
            created: chrono::Utc::now(),
            expires_in: Some(600),
            nonce: None,
        },
        secret,
    )
}

/// Statuses the §7 table (and the ops routes) may answer.
const ALLOWED: &[u16] = &[200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 415, 429, 503];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let world = world();
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (rest, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let mut words = first.splitn(2, |&b| b == b' ');
    let Ok(method) = Method::from_bytes(words.next().unwrap_or_default()) else { return };
    let Ok(uri) = Uri::try_from(words.next().unwrap_or(b"/")) else { return };
    let mut request = Request::new(Body::from(body.to_vec()));
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri.clone();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(line[colon + 1..].trim_ascii()))
        else {
            continue;
        };
        request.headers_mut().append(name, value);
    }
    if mode & 1 == 1 {
        let timestamp = callbox_core::time::format_iso_seconds(chrono::Utc::now());
        let content_type =
            request.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let parts =
            SignedParts { method: method.as_str(), body, content_type: &content_type, timestamp: &timestamp, path: uri.path() };
        let signature = signing::sign(&world.session_secret, &parts);
        let headers = request.headers_mut();
        headers.remove("authorization");
        headers.insert("authorization", HeaderValue::from_str(&format!("Instance {}:{signature}", world.session_id)).unwrap());
        headers.insert("x-timestamp", HeaderValue::from_str(&timestamp).unwrap());
    } else if mode & 2 == 2 {
        let ticket = mint(&world.app_key, &world.app_secret, "fuzzed");
        let headers = request.headers_mut();
        headers.remove("authorization");
        headers.insert("authorization", HeaderValue::from_str(&format!("User {ticket}")).unwrap());
    }
    let response = world.runtime.block_on(world.router.clone().oneshot(request)).unwrap();
    let status = response.status().as_u16();
    assert!(ALLOWED.contains(&status), "status {status} for {method} {uri}");
    if status >= 400 {
        let bytes = world.runtime.block_on(axum::body::to_bytes(response.into_body(), 1 << 20)).unwrap();
        let error: serde_json::Value = serde_json::from_slice(&bytes).expect("an error body is JSON");
        let code = error["errorCode"].as_u64().expect("errorCode");
        assert_eq!(code / 100, u64::from(status), "{error}");
        let reason = error["reason"].as_str().expect("reason");
        assert!(!reason.is_empty() && reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{error}");
        assert!(error["retryable"].is_boolean(), "{error}");
        assert!(error["serverTime"].is_string(), "{error}");
    }
});
