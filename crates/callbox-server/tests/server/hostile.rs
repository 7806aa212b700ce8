//! Hostile and malformed input, table-driven: each case asserts the exact status and §7 `reason`, and after each
//! the server must still answer `/healthz` and a valid ticket exchange.

use crate::support::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use callbox_core::signing::{self, SignedParts};
use callbox_core::Secret;
use chrono::{Duration, Utc};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a case's request is sent.
#[allow(clippy::large_enum_variant)] // a test table: a few hundred bytes per row do not matter
enum Send {
    /// Through reqwest.
    Http(RequestBuilder),
    /// Raw bytes on a fresh TCP connection (for what reqwest will not send).
    Raw(Vec<u8>),
}

struct Case {
    name: &'static str,
    status: u16,
    reason: &'static str,
    send: Send,
}

fn case(name: &'static str, status: u16, reason: &'static str, send: RequestBuilder) -> Case {
    Case { name, status, reason, send: Send::Http(send) }
}

fn raw(name: &'static str, status: u16, reason: &'static str, bytes: Vec<u8>) -> Case {
    Case { name, status, reason, send: Send::Raw(bytes) }
}

/// A legacy ticket over arbitrary JSON text, signed with `secret` (so only the claims are hostile).
fn ticket_over(json_text: &str, secret: &Secret) -> String {
    format!("{}:{}", STANDARD.encode(json_text), secret.sign_base64(json_text.as_bytes()))
}

fn claims(key: &str, user: &str, created: &str, expires_in: &str) -> String {
    format!(
        r#"{{"applicationKey":"{key}","identity":{{"type":"username","endpoint":{user}}},"created":"{created}","expiresIn":{expires_in}}}"#
    )
}

fn iso(at: chrono::DateTime<Utc>) -> String {
    callbox_core::time::format_iso_seconds(at)
}

const INSTANCE: &str = r#"{"version":{"os":"test"},"services":{"im":true}}"#;

/// A signed request whose signed parts may differ from what is sent.
#[allow(clippy::too_many_arguments)]
fn signed_request(
    server: &Server,
    method: Method,
    sent_path: &str,
    signed_path: &str,
    sent_body: &str,
    signed_body: &str,
    timestamp: &str,
    session: &Session,
) -> RequestBuilder {
    let content_type = if signed_body.is_empty() { "" } else { "application/json" };
    let parts = SignedParts {
        method: method.as_str(),
        body: signed_body.as_bytes(),
        content_type,
        timestamp,
        path: signed_path,
    };
    let signature = signing::sign(&Secret::from_base64(&session.secret).unwrap(), &parts);
    let mut request = server
        .http
        .request(method, server.url(sent_path))
        .header("authorization", format!("Instance {}:{signature}", session.id))
        .header("x-timestamp", timestamp);
    if !sent_body.is_empty() {
        request = request.header("content-type", "application/json").body(sent_body.to_owned());
    }
    request
}

fn exchange_request(server: &Server, authorization: &str, content_type: Option<&str>, body: Vec<u8>) -> RequestBuilder {
    let mut request = server.http.post(server.url("/v1/instance")).header("authorization", authorization);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.body(body)
}

/// Sends raw bytes and reads the whole answer (the request asks for `Connection: close`).
async fn send_raw(server: &Server, bytes: &[u8]) -> (u16, String) {
    let address = server.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // The server may answer and close before reading everything: a failed write is not the test's concern.
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

fn http_request(head: &str, extra_headers: &[(&str, &[u8])], body: &[u8], host: &str) -> Vec<u8> {
    let mut bytes = format!("{head} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n").into_bytes();
    for (name, value) in extra_headers {
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(body);
    bytes
}

async fn still_healthy(server: &Server, app: &App, after: &str) {
    let health = server.http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "/healthz after {after}");
    let exchange = server.exchange(&app.ticket("healthy")).await;
    assert_eq!(exchange.status(), StatusCode::OK, "a valid exchange after {after}");
}

#[tokio::test]
async fn hostile_requests_get_exact_refusals_and_the_server_keeps_serving() {
    let server = start().await;
    let app = server.create_app(json!({ "platformUserAuth": true })).await;
    let other = server.create_app(json!({})).await;
    let secret = app.secret();
    let key = app.key.as_str();
    let host = server.url.trim_start_matches("http://").to_owned();
    let now = Utc::now();

    // A session of `app`, one of `other`, a revoked one and an expired one.
    let session = server.session(&app.ticket("alice")).await;
    let foreign = server.session(&other.ticket("mallory")).await;
    let revoked = server.session(&app.ticket("bob")).await;
    let response = server.admin(Method::DELETE, &format!("/admin/v1/apps/{key}/sessions/{}", revoked.id), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // The shortest session there is (60 s), then two minutes pass on the server's clock: well inside every
    // ticket and timestamp window below, past that session's end.
    let expired = server.session_with(&app.ticket("carol"), json!({ "services": {"im": true}, "expiresIn": 60 })).await;
    server.advance(Duration::seconds(120));

    // A disabled platform user.
    let added = server
        .admin(
            Method::POST,
            &format!("/admin/v1/apps/{key}/users"),
            Some(json!({ "userId": "dave", "password": "correct horse battery" })),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let disabled = server.admin(Method::POST, &format!("/admin/v1/apps/{key}/users/dave/disable"), None).await;
    assert_eq!(disabled.status(), StatusCode::OK);

    // A retired secret: rotate, then retire the first one.
    let rotated = server.admin(Method::POST, &format!("/admin/v1/apps/{}/secrets", other.key), None).await;
    assert_eq!(rotated.status(), StatusCode::CREATED);
    let retired =
        server.admin(Method::DELETE, &format!("/admin/v1/apps/{}/secrets/{}", other.key, other.secret_id), None).await;
    assert_eq!(retired.status(), StatusCode::NO_CONTENT);

    // A single-use ticket, used once already.
    let nonce_ticket = app.ticket_with("erin", Utc::now(), Some(600), Some("n-0001"));
    assert_eq!(server.exchange(&nonce_ticket).await.status(), StatusCode::OK);

    let ts = iso(Utc::now());
    let user = |ticket: &str| format!("User {ticket}");
    let valid = user(&app.ticket("alice"));
    let json = Some("application/json");
    let big = vec![b' '; 64 * 1024 + 1];
    let mut huge_json = b"{\"services\":{\"im\":true},\"pad\":\"".to_vec();
    huge_json.extend(std::iter::repeat_n(b'a', 70 * 1024));
    huge_json.extend_from_slice(b"\"}");
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let deep_services = format!(r#"{{"services":{}1{}}}"#, "{\"a\":".repeat(5000), "}".repeat(5000));
    let long_user = format!("\"{}\"", "u".repeat(256));
    let forged = Secret::from_base64("AAAAAAAAAAAAAAAAAAAAAA==").unwrap();
    let jwt_none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"hkdfv1-20260101"}"#),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            r#"{{"iss":"//rtc.sinch.com/applications/{key}","sub":"//rtc.sinch.com/applications/{key}/users/x","iat":1,"exp":99999999999,"nonce":"n"}}"#
        ))
    );
    let sql_user = "x'); DROP TABLE sessions; --";
    let mut chunked = http_request(
        "POST /v1/instance",
        &[
            ("authorization", valid.as_bytes()),
            ("content-type", b"application/json"),
            ("transfer-encoding", b"chunked"),
        ],
        b"",
        &host,
    );
    for _ in 0..80 {
        chunked.extend_from_slice(format!("{:x}\r\n", 1024).as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', 1024));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");

    let cases = vec![
        // --- sizes ---
        case("body over the limit, with Content-Length", 413, "payload_too_large", exchange_request(&server, &valid, json, big.clone())),
        case("JSON body over the limit", 413, "payload_too_large", exchange_request(&server, &valid, json, huge_json)),
        raw("chunked body over the limit", 413, "payload_too_large", chunked),
        case("ticket over 8 KiB", 413, "payload_too_large", exchange_request(&server, &user(&"A".repeat(9000)), json, INSTANCE.into())),
        raw(
            "oversized header block (200 KiB)",
            413,
            "payload_too_large",
            http_request("GET /healthz", &[("x-filler", "f".repeat(200 * 1024).as_bytes())], b"", &host),
        ),
        raw(
            "many small headers",
            413,
            "payload_too_large",
            http_request("GET /healthz", &(0..90).map(|_| ("x-filler", "f".repeat(500).leak().as_bytes())).collect::<Vec<_>>(), b"", &host),
        ),
        // --- encodings and content types ---
        case("invalid UTF-8 body", 400, "malformed_request", exchange_request(&server, &valid, json, vec![b'{', 0xff, 0xfe, b'}'])),
        raw(
            "invalid UTF-8 in Authorization",
            401,
            "malformed_authorization",
            http_request("POST /v1/instance", &[("authorization", b"User \xff\xfe:\xc3")], b"", &host),
        ),
        case("text/plain body", 415, "unsupported_media_type", exchange_request(&server, &valid, Some("text/plain"), INSTANCE.into())),
        case("body without a content type", 415, "unsupported_media_type", exchange_request(&server, &valid, None, INSTANCE.into())),
        case("application/jsonp", 415, "unsupported_media_type", exchange_request(&server, &valid, Some("application/jsonp"), INSTANCE.into())),
        case("non-JSON body", 400, "malformed_request", exchange_request(&server, &valid, json, b"services=im".to_vec())),
        case("JSON array body", 400, "malformed_request", exchange_request(&server, &valid, json, b"[1,2,3]".to_vec())),
        case("deeply nested JSON", 400, "malformed_request", exchange_request(&server, &valid, json, deep.into_bytes())),
        case("deeply nested services", 400, "malformed_request", exchange_request(&server, &valid, json, deep_services.into_bytes())),
        case("truncated base64 ticket", 401, "malformed_ticket", exchange_request(&server, "User eyJhcHBsaWNhdGlvbktleS:6AMctyp4y4ovV9xN", json, INSTANCE.into())),
        case("ticket without a signature part", 401, "malformed_ticket", exchange_request(&server, "User eyJhcHBsaWNhdGlvbktleSI6IjEifQ==", json, INSTANCE.into())),
        // --- TTLs ---
        case("negative expiresIn", 400, "malformed_request", exchange_request(&server, &valid, json, br#"{"expiresIn":-5}"#.to_vec())),
        case("float expiresIn", 400, "malformed_request", exchange_request(&server, &valid, json, br#"{"expiresIn":600.5}"#.to_vec())),
        case("expiresIn beyond u64", 400, "malformed_request", exchange_request(&server, &valid, json, br#"{"expiresIn":1e300}"#.to_vec())),
        case("string expiresIn", 400, "malformed_request", exchange_request(&server, &valid, json, br#"{"expiresIn":"600"}"#.to_vec())),
        case("ticket with negative expiresIn", 401, "malformed_ticket",
            exchange_request(&server, &user(&ticket_over(&claims(key, "\"t1\"", &iso(now), "-60"), &secret)), json, INSTANCE.into())),
        case("ticket with huge expiresIn", 401, "ticket_ttl_exceeds_max",
            exchange_request(&server, &user(&ticket_over(&claims(key, "\"t2\"", &iso(now), "18446744073709551615"), &secret)), json, INSTANCE.into())),
        case("ticket with float expiresIn", 401, "malformed_ticket",
            exchange_request(&server, &user(&ticket_over(&claims(key, "\"t3\"", &iso(now), "600.5"), &secret)), json, INSTANCE.into())),
        // --- created far away ---
        case("created ten years ahead", 401, "ticket_not_yet_valid",
            exchange_request(&server, &user(&ticket_over(&claims(key, "\"t4\"", &iso(now + Duration::days(3653)), "600"), &secret)), json, INSTANCE.into())),
        case("created ten years behind", 401, "ticket_expired",
            exchange_request(&server, &user(&ticket_over(&claims(key, "\"t5\"", &iso(now - Duration::days(3653)), "600"), &secret)), json, INSTANCE.into())),
        case("created in year 99999", 401, "malformed_ticket",
            exchange_request(&server, &user(&ticket_over(&claims(key, "\"t6\"", "99999-01-01T00:00:00Z", "600"), &secret)), json, INSTANCE.into())),
        // --- user ids ---
        case("NUL in the user id", 401, "malformed_ticket",
            exchange_request(&server, &user(&ticket_over(&claims(key, "\"a\\u0000b\"", &iso(now), "600"), &secret)), json, INSTANCE.into())),
        case("newline in the user id", 401, "malformed_ticket",
            exchange_request(&server, &user(&ticket_over(&claims(key, "\"a\\nb\"", &iso(now), "600"), &secret)), json, INSTANCE.into())),
        case("empty user id", 401, "malformed_ticket",
            exchange_request(&server, &user(&ticket_over(&claims(key, "\"\"", &iso(now), "600"), &secret)), json, INSTANCE.into())),
        case("user id over 255 bytes", 401, "malformed_ticket",
            exchange_request(&server, &user(&ticket_over(&claims(key, &long_user, &iso(now), "600"), &secret)), json, INSTANCE.into())),
        case("numeric user id", 401, "malformed_ticket",
            exchange_request(&server, &user(&ticket_over(&claims(key, "42", &iso(now), "600"), &secret)), json, INSTANCE.into())),
        case("sign-up with a control character", 400, "malformed_request",
            server.http.post(server.url("/v1/users")).header("authorization", format!("Application {key}"))
                .json(&json!({ "password": "correct horse battery", "identities": [{ "type": "username", "endpoint": "ev\u{7}il" }] }))),
        case("sign-up with an unknown identity type", 400, "malformed_request",
            server.http.post(server.url("/v1/users")).header("authorization", format!("Application {key}"))
                .json(&json!({ "password": "correct horse battery", "identities": [{ "type": "sql", "endpoint": "x" }] }))),
        case("sign-up with a 1025-byte password", 400, "invalid_password",
            server.http.post(server.url("/v1/users")).header("authorization", format!("Application {key}"))
                .json(&json!({ "password": "p".repeat(1025), "identities": [{ "type": "username", "endpoint": "long" }] }))),
        // --- SQL and path metacharacters ---
        case("SQL in the application key", 401, "unknown_application",
            server.http.post(server.url("/v1/users")).header("authorization", "Application x'OR'1'='1")
                .json(&json!({ "password": "correct horse battery", "identities": [{ "type": "username", "endpoint": "sql" }] }))),
        case("SQL in a login path", 401, "invalid_credentials",
            server.http.post(server.url("/v1/users/username/x'%20OR%201=1--/authentication")).header("authorization", format!("Application {key}"))
                .json(&json!({ "password": "correct horse battery" }))),
        case("encoded slashes in a login path", 401, "invalid_credentials",
            server.http.post(server.url("/v1/users/username/..%2F..%2Fadmin%2Fv1%2Fapps/authentication")).header("authorization", format!("Application {key}"))
                .json(&json!({ "password": "correct horse battery" }))),
        case("SQL in an instance id", 401, "session_revoked",
            server.http.get(server.url("/v1/user/profile")).header("authorization", "Instance x'OR'1'='1:c2ln").header("x-timestamp", ts.as_str())),
        case("path traversal in an instance path", 404, "not_found",
            signed_request(&server, Method::GET, "/v1/instances/id/..%2F..%2Fadmin", "/v1/instances/id/..%2F..%2Fadmin", "", "", &ts, &session)),
        raw("invalid UTF-8 in a path parameter", 400, "malformed_request",
            http_request("GET /v1/instances/id/%FF%FE", &[], b"", &host)),
        // --- Authorization ---
        case("missing Authorization", 401, "missing_authorization", server.http.post(server.url("/v1/instance")).header("content-type", "application/json").body(INSTANCE)),
        raw("duplicate Authorization headers", 401, "malformed_authorization",
            http_request("POST /v1/instance", &[("authorization", valid.as_bytes()), ("authorization", valid.as_bytes())], b"", &host)),
        case("unknown scheme", 401, "malformed_authorization", exchange_request(&server, "Token abc", json, INSTANCE.into())),
        case("Basic on the exchange", 401, "malformed_authorization",
            exchange_request(&server, &format!("Basic {}", STANDARD.encode(format!("{key}:{}", app.secret))), json, INSTANCE.into())),
        case("scheme without credentials", 401, "malformed_authorization", exchange_request(&server, "User", json, INSTANCE.into())),
        case("JWT with alg none", 401, "malformed_ticket", exchange_request(&server, &format!("Bearer {jwt_none}"), json, INSTANCE.into())),
        case("JWT under the User scheme", 401, "malformed_ticket", exchange_request(&server, &format!("User {jwt_none}"), json, INSTANCE.into())),
        // --- signatures ---
        case("signature over another path", 401, "bad_signature",
            signed_request(&server, Method::GET, "/v1/user/profile", "/v1/configuration/user", "", "", &ts, &session)),
        case("signature over another body", 401, "bad_signature",
            signed_request(&server, Method::POST, "/v1/instance", "/v1/instance", r#"{"expiresIn":600}"#, r#"{"expiresIn":60}"#, &ts, &session)),
        case("X-Timestamp 20 minutes ahead", 401, "timestamp_skew",
            signed_request(&server, Method::GET, "/v1/user/profile", "/v1/user/profile", "", "", &iso(Utc::now() + Duration::minutes(20)), &session)),
        case("X-Timestamp a day behind", 401, "timestamp_skew",
            signed_request(&server, Method::GET, "/v1/user/profile", "/v1/user/profile", "", "", &iso(Utc::now() - Duration::days(1)), &session)),
        case("X-Timestamp missing", 401, "timestamp_skew",
            server.http.get(server.url("/v1/user/profile")).header("authorization", format!("Instance {}:c2ln", session.id))),
        case("X-Timestamp not a time", 401, "timestamp_skew",
            signed_request(&server, Method::GET, "/v1/user/profile", "/v1/user/profile", "", "", "yesterday", &session)),
        // --- tickets and secrets ---
        case("replayed nonce", 401, "ticket_replayed", exchange_request(&server, &user(&nonce_ticket), json, INSTANCE.into())),
        case("wrong secret", 401, "bad_signature",
            exchange_request(&server, &user(&ticket_over(&claims(key, "\"t7\"", &iso(now), "600"), &forged)), json, INSTANCE.into())),
        case("retired secret", 401, "bad_signature", exchange_request(&server, &user(&other.ticket("t8")), json, INSTANCE.into())),
        case("another app's key under this app's secret", 401, "bad_signature",
            exchange_request(&server, &user(&ticket_over(&claims(&other.key, "\"t9\"", &iso(now), "600"), &secret)), json, INSTANCE.into())),
        case("unknown application", 401, "unknown_application",
            exchange_request(&server, &user(&ticket_over(&claims("no-such-app", "\"t10\"", &iso(now), "600"), &secret)), json, INSTANCE.into())),
        // --- users and sessions ---
        case("disabled user", 403, "user_disabled", exchange_request(&server, &user(&app.ticket("dave")), json, INSTANCE.into())),
        case("revoked session", 401, "session_revoked",
            signed_request(&server, Method::GET, "/v1/user/profile", "/v1/user/profile", "", "", &ts, &revoked)),
        case("expired session", 401, "session_expired",
            signed_request(&server, Method::GET, "/v1/user/profile", "/v1/user/profile", "", "", &ts, &expired)),
        case("another app's session reading this one", 404, "not_found", {
            let path = format!("/v1/instances/id/{}", session.id);
            signed_request(&server, Method::GET, &path, &path, "", "", &ts, &foreign)
        }),
        case("another app's session ending this one", 404, "not_found", {
            let path = format!("/v1/instances/id/{}", session.id);
            signed_request(&server, Method::DELETE, &path, &path, "", "", &ts, &foreign)
        }),
        case("re-authorizing another user's session", 404, "not_found",
            server.http.put(server.url(&format!("/v1/instances/id/{}/authorization", session.id)))
                .header("authorization", user(&app.ticket("mallory"))).header("content-type", "application/json").body(INSTANCE)),
        // --- routing ---
        case("unknown route", 404, "not_found", server.http.get(server.url("/v1/../../etc/passwd"))),
        case("wrong method", 405, "method_not_allowed", server.http.patch(server.url("/v1/instance"))),
    ];

    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let (status, body) = match case.send {
            Send::Http(request) => {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.text().await.unwrap())
            }
            Send::Raw(bytes) => send_raw(&server, &bytes).await,
        };
        let parsed: Option<Value> = serde_json::from_str(&body).ok();
        let reason = parsed.as_ref().and_then(|b| b["reason"].as_str()).unwrap_or("<no JSON reason>").to_owned();
        let code_ok =
            parsed.as_ref().and_then(|b| b["errorCode"].as_u64()).is_some_and(|c| c / 100 == u64::from(status));
        if status != case.status || reason != case.reason || !code_ok {
            failures.push(format!(
                "{}: expected {} {}, got {status} {reason}: {}",
                case.name,
                case.status,
                case.reason,
                body.chars().take(300).collect::<String>()
            ));
        }
        still_healthy(&server, &app, case.name).await;
    }
    assert!(failures.is_empty(), "{} hostile cases failed:\n{}", failures.len(), failures.join("\n"));

    // The SQL-laden user id is an ordinary (odd) user: exchanged, stored verbatim, and the tables are intact.
    let odd = server.session(&app.ticket(sql_user)).await;
    let profile = server.signed(Method::GET, "/v1/user/profile", None, &odd).await;
    assert_eq!(profile.json::<Value>().await.unwrap()["identities"][0]["endpoint"], sql_user);
    let unicode = server.session(&app.ticket("zoë 🚀 名前")).await;
    let path = format!("/v1/instances/id/{}", unicode.id);
    let instance: Value = server.signed(Method::GET, &path, None, &unicode).await.json().await.unwrap();
    assert_eq!(instance["userId"], "zoë 🚀 名前");
}
