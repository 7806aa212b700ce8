//! PROTOCOL §6 over real HTTP: every row, and the §7 reasons each can give.

use crate::support::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use callbox_core::jwt::{self, NewRegistrationJwt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn timestamp_answers_whatever_the_authorization() {
    let server = start().await;
    for (path, auth) in [
        ("/v1/timestamp", None),
        ("/v1/timestamp/", None),
        ("/v1/timestamp", Some("Garbage !!")),
        ("/v1/timestamp", Some("Instance nope:nope")),
    ] {
        let mut request = server.http.get(server.url(path));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert!(callbox_core::time::parse_timestamp(body["timestamp"].as_str().unwrap()).is_some());
    }
}

#[tokio::test]
async fn backend_ticket_gives_a_session_that_signs_every_call() {
    let server = start().await;
    let app = server.create_app(json!({ "capabilities": ["messaging"] })).await;
    let response = server.exchange(&app.ticket("alice")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let grant: Value = response.json().await.unwrap();
    assert!(grant["expiresIn"].as_u64().unwrap() > 3600);
    // Asked for im + voip; the app allows messaging only.
    assert_eq!(grant["capabilities"], json!(["messaging"]));
    let session =
        Session { id: grant["id"].as_str().unwrap().into(), secret: grant["secret"].as_str().unwrap().into() };

    let profile = server.signed(Method::GET, "/v1/user/profile", None, &session).await;
    assert_eq!(profile.status(), StatusCode::OK);
    assert_eq!(
        profile.json::<Value>().await.unwrap(),
        json!({ "identities": [{ "type": "username", "endpoint": "alice" }] })
    );

    let path = format!("/v1/instances/id/{}", session.id);
    let instance: Value = server.signed(Method::GET, &path, None, &session).await.json().await.unwrap();
    assert_eq!(instance["userId"], "alice");
    assert_eq!(instance["capabilities"], json!(["messaging"]));

    let config: Value =
        server.signed(Method::GET, "/v1/configuration/user", None, &session).await.json().await.unwrap();
    for pointer in [
        "/rtcConfiguration/broadcastNetwork/publishKey",
        "/rtcConfiguration/broadcastNetwork/subscribeKey",
        "/rtcConfiguration/broadcastNetwork/host",
        "/rtcConfiguration/signalNetwork/publishKey",
        "/rtcConfiguration/signalNetwork/subscribeKey",
        "/rtcConfiguration/signalNetwork/host",
        "/rtcProfile/broadcastChannel",
        "/rtcProfile/transportChannel",
        "/rtcProfile/signalChannel",
        "/rtcProfile/key",
    ] {
        assert!(config.pointer(pointer).and_then(Value::as_str).is_some(), "missing {pointer}: {config}");
    }

    // Renewal: a signed POST /v1/instance extends and hands a new secret; the old one stops working.
    let renewed = server.signed(Method::POST, "/v1/instance", Some(json!({})), &session).await;
    assert_eq!(renewed.status(), StatusCode::OK);
    let renewed: Value = renewed.json().await.unwrap();
    assert_eq!(renewed["id"], session.id.as_str());
    let new_session = Session { id: session.id.clone(), secret: renewed["secret"].as_str().unwrap().into() };
    assert_ne!(new_session.secret, session.secret);
    assert_error(server.signed(Method::GET, "/v1/user/profile", None, &session).await, 401, "bad_signature").await;
    assert_eq!(server.signed(Method::GET, "/v1/user/profile", None, &new_session).await.status(), 200);

    // DELETE ends it; the next signed call is refused.
    assert_eq!(server.signed(Method::DELETE, &path, None, &new_session).await.status(), StatusCode::NO_CONTENT);
    assert_error(server.signed(Method::GET, "/v1/user/profile", None, &new_session).await, 401, "session_revoked")
        .await;
}

#[tokio::test]
async fn registration_jwt_gives_a_session_once() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let token = jwt::mint(
        &NewRegistrationJwt {
            application_key: app.key.clone(),
            user_id: "bob".into(),
            issued_at: chrono::Utc::now(),
            ttl: 600,
            nonce: "n-1".into(),
        },
        &app.secret(),
    )
    .unwrap();
    let response = server.exchange_with(&format!("Bearer {token}"), json!({ "services": ["messaging"] })).await;
    assert_eq!(response.status(), StatusCode::OK);
    let replay = server.exchange_with(&format!("Bearer {token}"), json!({})).await;
    assert_error(replay, 401, "ticket_replayed").await;
    // A JWT under the User scheme is refused with a message saying which scheme to use.
    let body =
        assert_error(server.exchange_with(&format!("User {token}"), json!({})).await, 401, "malformed_ticket").await;
    assert!(body["message"].as_str().unwrap().contains("Bearer"));
}

#[tokio::test]
async fn each_bad_ticket_has_its_own_reason() {
    let server = start().await;
    let app = server.create_app(json!({ "maxTicketTtl": 3600, "clockSkew": 60 })).await;
    let other = server.create_app(json!({})).await;

    // A changed byte in the signature, and in the data.
    let ticket = app.ticket("alice");
    let (data, signature) = ticket.split_once(':').unwrap();
    let mut sig = STANDARD.decode(signature).unwrap();
    sig[0] ^= 1;
    assert_error(server.exchange(&format!("{data}:{}", STANDARD.encode(&sig))).await, 401, "bad_signature").await;
    let mut json_bytes = STANDARD.decode(data).unwrap();
    // Change the user id ("alice" → "blice"): the application is still named, the MAC no longer matches.
    let at = json_bytes.windows(5).position(|w| w == b"alice").unwrap();
    json_bytes[at] = b'b';
    assert_error(server.exchange(&format!("{}:{signature}", STANDARD.encode(&json_bytes))).await, 401, "bad_signature")
        .await;

    let body = assert_error(
        server.exchange(&app.ticket_with("alice", ago(7200), Some(3600), None)).await,
        401,
        "ticket_expired",
    )
    .await;
    assert!(body["message"].as_str().unwrap().contains("expired"));
    assert_error(
        server.exchange(&app.ticket_with("alice", ago(-600), Some(600), None)).await,
        401,
        "ticket_not_yet_valid",
    )
    .await;
    assert_error(
        server.exchange(&app.ticket_with("alice", ago(0), Some(7200), None)).await,
        401,
        "ticket_ttl_exceeds_max",
    )
    .await;
    // Another app's ticket signed with this app's secret; and a key nobody has.
    let forged = App { key: other.key.clone(), ..app.clone() };
    assert_error(server.exchange(&forged.ticket("alice")).await, 401, "bad_signature").await;
    let unknown = App { key: "no-such-app".into(), ..app.clone() };
    assert_error(server.exchange(&unknown.ticket("alice")).await, 401, "unknown_application").await;
    // Single-use nonce.
    let once = app.ticket_with("alice", ago(0), Some(600), Some("nonce-1"));
    assert_eq!(server.exchange(&once).await.status(), StatusCode::OK);
    assert_error(server.exchange(&once).await, 401, "ticket_replayed").await;
    // Shapes.
    assert_error(server.exchange("not-a-ticket").await, 401, "malformed_ticket").await;
    assert_error(server.exchange("!!!:???").await, 401, "malformed_ticket").await;
    assert_error(server.exchange(&format!("{}:{}", "A".repeat(9000), "B")).await, 413, "payload_too_large").await;
    assert_error(server.exchange_with("Digest abc", json!({})).await, 401, "malformed_authorization").await;
    let response = server.http.post(server.url("/v1/instance")).json(&json!({})).send().await.unwrap();
    assert_error(response, 401, "missing_authorization").await;
    let response = server
        .http
        .post(server.url("/v1/instance"))
        .header("authorization", format!("User {}", app.ticket("a")))
        .header("authorization", format!("User {}", app.ticket("b")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "malformed_authorization").await;
}

#[tokio::test]
async fn generator_variants_exchange_over_http() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let secret = app.secret();
    let created = callbox_core::time::format_iso_seconds(chrono::Utc::now());
    let python = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    let csharp = format!("{}0Z", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f"));
    let php = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    let key = &app.key;
    for json_text in [
        format!(r#"{{"identity":{{"endpoint":"v1","type":"username"}},"created":"{created}","applicationKey":"{key}","expiresIn":600}}"#),
        format!(r#"{{ "applicationkey" : "{key}", "identity" : {{ "type":"username", "endpoint":"v2" }}, "created": "{python}" }}"#),
        format!(r#"{{"applicationKey":"{key}","identity":{{"type":"email","endpoint":"v3@example.com"}},"created":"{csharp}","expiresIn":600}}"#),
        format!("{{\n  \"applicationKey\": \"{key}\",\n  \"identity\": {{\"type\": \"number\", \"endpoint\": \"+46700000000\"}},\n  \"created\": \"{php}\"\n}}"),
    ] {
        let ticket = format!("{}:{}", STANDARD.encode(&json_text), secret.sign_base64(json_text.as_bytes()));
        let response = server.exchange(&ticket).await;
        assert_eq!(response.status(), StatusCode::OK, "{json_text}: {}", response.text().await.unwrap());
    }
}

#[tokio::test]
async fn reauthorization_and_unknown_instances() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let session = server.session(&app.ticket("carol")).await;
    let put = |id: String, ticket: String| {
        let server = &server;
        async move {
            server
                .http
                .put(server.url(&format!("/v1/instances/id/{id}/authorization")))
                .header("authorization", format!("User {ticket}"))
                .json(&json!({ "instanceId": id }))
                .send()
                .await
                .unwrap()
        }
    };
    let unknown =
        assert_error(put("00000000-0000-0000-0000-000000000000".into(), app.ticket("carol")).await, 404, "not_found")
            .await;
    assert_eq!(unknown["errorCode"], 40400);
    // Another user's ticket cannot take over the session.
    assert_error(put(session.id.clone(), app.ticket("mallory")).await, 404, "not_found").await;
    let response = put(session.id.clone(), app.ticket("carol")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let fresh = Session { id: session.id.clone(), secret: body["secret"].as_str().unwrap().into() };
    assert_ne!(fresh.secret, session.secret);
    assert_eq!(server.signed(Method::GET, "/v1/user/profile", None, &fresh).await.status(), 200);
    assert_error(server.signed(Method::GET, "/v1/user/profile", None, &session).await, 401, "bad_signature").await;
}

#[tokio::test]
async fn signed_call_refusals() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let session = server.session(&app.ticket("dave")).await;
    let other = server.session(&app.ticket("erin")).await;

    assert_error(
        server.signed_at(Method::GET, "/v1/user/profile", None, &session, ago(3600)).await,
        401,
        "timestamp_skew",
    )
    .await;
    let body = assert_error(
        server.signed_at(Method::GET, "/v1/user/profile", None, &session, ago(-3600)).await,
        401,
        "timestamp_skew",
    )
    .await;
    assert_eq!(body["errorCode"], 40101);
    let wrong = Session { id: session.id.clone(), secret: other.secret.clone() };
    let body =
        assert_error(server.signed(Method::GET, "/v1/user/profile", None, &wrong).await, 401, "bad_signature").await;
    assert_eq!(body["errorCode"], 40102);
    // No X-Timestamp.
    let response = server
        .http
        .get(server.url("/v1/user/profile"))
        .header("authorization", format!("Instance {}:{}", session.id, "A".repeat(44)))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "timestamp_skew").await;
    // Unknown session.
    let ghost = Session { id: "ghost".into(), secret: session.secret.clone() };
    assert_error(server.signed(Method::GET, "/v1/user/profile", None, &ghost).await, 401, "session_revoked").await;
    // A session asking about another session.
    assert_error(
        server.signed(Method::GET, &format!("/v1/instances/id/{}", other.id), None, &session).await,
        404,
        "not_found",
    )
    .await;
    // A signature made over another path is refused.
    let timestamp = callbox_core::time::format_iso_seconds(chrono::Utc::now());
    let parts = callbox_core::SignedParts {
        method: "GET",
        body: b"",
        content_type: "",
        timestamp: &timestamp,
        path: "/v1/configuration/user",
    };
    let signature = callbox_core::signing::sign(&callbox_core::Secret::from_base64(&session.secret).unwrap(), &parts);
    let response = server
        .http
        .get(server.url("/v1/user/profile"))
        .header("authorization", format!("Instance {}:{signature}", session.id))
        .header("x-timestamp", &timestamp)
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "bad_signature").await;

    // Expired sessions are told apart from revoked ones: a day and an hour later, the 24-hour session is over.
    server.advance(chrono::Duration::hours(25));
    assert_error(server.signed(Method::GET, "/v1/user/profile", None, &session).await, 401, "session_expired").await;
}

#[tokio::test]
async fn bad_bodies_get_precise_json_errors() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let ticket = app.ticket("frank");
    let post = |body: Vec<u8>, content_type: &'static str| {
        let server = &server;
        let ticket = ticket.clone();
        async move {
            server
                .http
                .post(server.url("/v1/instance"))
                .header("authorization", format!("User {ticket}"))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_error(post(b"{not json".to_vec(), "application/json").await, 400, "malformed_request").await;
    assert_error(post(vec![0xff, 0xfe], "application/json").await, 400, "malformed_request").await;
    assert_error(post(b"{}".to_vec(), "text/plain").await, 415, "unsupported_media_type").await;
    assert_error(post(vec![b' '; 70_000], "application/json").await, 413, "payload_too_large").await;
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    assert_error(
        post(format!(r#"{{"services":{nested}}}"#).into_bytes(), "application/json").await,
        400,
        "malformed_request",
    )
    .await;
    assert_error(post(br#"{"expiresIn":-5}"#.to_vec(), "application/json").await, 400, "malformed_request").await;
    assert_error(post(br#"{"expiresIn":1.5}"#.to_vec(), "application/json").await, 400, "malformed_request").await;

    let response = server.http.get(server.url("/v1/nope")).send().await.unwrap();
    assert_error(response, 404, "not_found").await;
    let response = server.http.delete(server.url("/v1/timestamp")).send().await.unwrap();
    assert_error(response, 405, "method_not_allowed").await;
    let response = server.http.get(server.url("/v1/instances/id/%FF%FE")).send().await.unwrap();
    let status = response.status().as_u16();
    assert!(status == 400 || status == 401, "{status}");
    // The server still answers, and a valid exchange still works.
    assert_eq!(server.http.get(server.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(server.exchange(&app.ticket("frank")).await.status(), 200);
}

#[tokio::test]
async fn cors_preflight_for_allowed_and_refused_origins() {
    let server = start().await;
    let app = server.create_app(json!({ "allowedOrigins": ["https://app.example.com"] })).await;
    // Without a demo app allowing everything.
    let demo = server.demo_key.clone().unwrap();
    assert_eq!(server.patch_app(&demo, json!({ "allowedOrigins": [] })).await.status(), 200);
    let preflight = |origin: &'static str| {
        let server = &server;
        async move {
            server
                .http
                .request(Method::OPTIONS, server.url("/v1/instance"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "authorization,content-type,x-timestamp")
                .send()
                .await
                .unwrap()
        }
    };
    let allowed = preflight("https://app.example.com").await;
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example.com");
    let allow_headers = allowed.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    for header in ["authorization", "x-timestamp", "content-type"] {
        assert!(allow_headers.contains(header), "{allow_headers}");
    }
    let refused = preflight("https://evil.example.net").await;
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    // The real request from a refused origin is refused too.
    let response = server
        .http
        .post(server.url("/v1/instance"))
        .header("origin", "https://evil.example.net")
        .header("authorization", format!("User {}", app.ticket("gina")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "origin_not_allowed").await;
    let response = server
        .http
        .post(server.url("/v1/instance"))
        .header("origin", "https://app.example.com")
        .header("authorization", format!("User {}", app.ticket("gina")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example.com");
}

#[tokio::test]
async fn a_nonce_stays_used_through_the_skew_after_expiry() {
    let server = start().await;
    let app = server.create_app(json!({ "clockSkew": 300 })).await;
    // Expired 100 s ago, still inside the 300 s of allowed skew: accepted once, then never again.
    let late = app.ticket_with("kim", ago(700), Some(600), Some("late-nonce"));
    assert_eq!(server.exchange(&late).await.status(), StatusCode::OK);
    assert_error(server.exchange(&late).await, 401, "ticket_replayed").await;
}

#[tokio::test]
async fn the_servers_clock_decides_ticket_windows_and_timestamp_skew() {
    let server = start().await;
    let app = server.create_app(json!({ "clockSkew": 60 })).await;
    // A 600 s ticket made now: fine now, and 659 s later (inside the 60 s skew)...
    let ticket = app.ticket_with("alice", server.now(), Some(600), None);
    let session = server.session(&ticket).await;
    server.advance(chrono::Duration::seconds(659));
    assert_eq!(server.exchange(&ticket).await.status(), StatusCode::OK);
    // ...but not 2 s past expiry plus skew.
    server.advance(chrono::Duration::seconds(2));
    let body = assert_error(server.exchange(&ticket).await, 401, "ticket_expired").await;
    assert!(body["message"].as_str().unwrap().contains("expired"), "{body}");

    // A client whose clock is 11 minutes behind the server's is refused (signed-call skew 600 s), and the
    // answer's serverTime is the server's time, so the client can tell.
    let client_time = server.now() - chrono::Duration::minutes(11);
    let body = assert_error(
        server.signed_at(Method::GET, "/v1/user/profile", None, &session, client_time).await,
        401,
        "timestamp_skew",
    )
    .await;
    let told = callbox_core::time::parse_timestamp(body["serverTime"].as_str().unwrap()).unwrap();
    assert!((told - server.now()).num_seconds().abs() <= 2, "{body}");
    // Signed with the server's time, the same call is fine.
    assert_eq!(server.signed(Method::GET, "/v1/user/profile", None, &session).await.status(), StatusCode::OK);
}

/// CORS is for the client API only: with the demo application allowing every origin, the admin API and the
/// dashboard still answer a foreign page no cross-origin grant, preflight or not, while the client API does.
#[tokio::test]
async fn admin_and_dashboard_routes_grant_no_cross_origin_access() {
    let server = start().await; // the demo application allows "*"
    let evil = "http://evil.example";
    for path in ["/admin/v1/apps", "/dashboard/api/session", "/dashboard/api/signin"] {
        let preflight = server
            .http
            .request(Method::OPTIONS, server.url(path))
            .header("origin", evil)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .unwrap();
        let headers = preflight.headers().clone();
        assert!(headers.get("access-control-allow-origin").is_none(), "{path}: {headers:?}");
        assert!(headers.get("access-control-allow-headers").is_none(), "{path}: {headers:?}");
        assert!(headers.get("access-control-allow-credentials").is_none(), "{path}: {headers:?}");
        let body: Value = preflight.json().await.unwrap();
        assert!(body["reason"].is_string(), "{path}: a preflight refusal is still §7 JSON: {body}");
    }
    let listed = server
        .http
        .get(server.url("/admin/v1/apps"))
        .header("origin", evil)
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200, "the server-side call itself works");
    assert!(listed.headers().get("access-control-allow-origin").is_none(), "{:?}", listed.headers());
    let session = server.http.get(server.url("/dashboard/api/session")).header("origin", evil).send().await.unwrap();
    assert!(session.headers().get("access-control-allow-origin").is_none(), "{:?}", session.headers());
    // The client API keeps answering the demo app's browsers.
    let client = server
        .http
        .request(Method::OPTIONS, server.url("/v1/instance"))
        .header("origin", evil)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(client.headers()["access-control-allow-origin"], evil);
}

/// A signed renewal or session ending sent twice unchanged (same X-Timestamp, same signature) is refused the
/// second time with `request_replayed`; signed reads stay repeatable inside the timestamp window; the same call
/// signed again with a new timestamp is fine.
#[tokio::test]
async fn replayed_state_changing_signed_calls_are_refused() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let session = server.session(&app.ticket("alice")).await;
    let at = server.now();
    for _ in 0..2 {
        let read = server.signed_at(Method::GET, "/v1/user/profile", None, &session, at).await;
        assert_eq!(read.status(), StatusCode::OK, "a read may be repeated");
    }

    async fn renew(server: &Server, session: &Session, at: chrono::DateTime<chrono::Utc>) -> reqwest::Response {
        server.signed_at(Method::POST, "/v1/instance", Some(json!({ "expiresIn": 3600 })), session, at).await
    }
    // The same renewal sent twice at once (a captured one raced against the original): one is answered with
    // the session's next secret, the other is refused and hands out nothing.
    let (first, second) = tokio::join!(renew(&server, &session, at), renew(&server, &session, at));
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 401]);
    let (winner, loser) = if first.status() == StatusCode::OK { (first, second) } else { (second, first) };
    let refused: Value = loser.json().await.unwrap();
    assert!(matches!(refused["reason"].as_str(), Some("request_replayed" | "bad_signature")), "{refused}");
    assert!(refused.get("secret").is_none());
    let renewed: Value = winner.json().await.unwrap();
    // Replayed after it was answered: the old secret no longer signs (the renewal moved the session on).
    let replay = assert_error(renew(&server, &session, at).await, 401, "bad_signature").await;
    assert!(replay.get("secret").is_none());
    let session = Session { id: session.id.clone(), secret: renewed["secret"].as_str().unwrap().to_owned() };
    // A renewal signed a second later with the new secret is a new request, and it can't be replayed either.
    let later = at + chrono::Duration::seconds(1);
    assert_eq!(renew(&server, &session, later).await.status(), StatusCode::OK);

    let other = server.session(&app.ticket("bob")).await;
    let path = format!("/v1/instances/id/{}", other.id);
    let end = || server.signed_at(Method::DELETE, &path, None, &other, at);
    assert_eq!(end().await.status(), StatusCode::NO_CONTENT);
    assert_error(end().await, 401, "request_replayed").await;
}

/// A registration JWT signed correctly with the app's key of today but without `exp`: the refusal names the
/// missing claim (it used to say "the ticket names no application key", sending its author to the wrong claim).
#[tokio::test]
async fn a_jwt_without_exp_is_refused_naming_exp() {
    use hmac::{Hmac, Mac};
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let now = chrono::Utc::now();
    let header = format!(r#"{{"alg":"HS256","kid":"hkdfv1-{}"}}"#, now.format("%Y%m%d"));
    let iss = format!("{}{}", jwt::ISSUER_PREFIX, app.key);
    let claims = format!(r#"{{"iss":"{iss}","sub":"{iss}/users/bob","iat":{},"nonce":"n-no-exp"}}"#, now.timestamp());
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!("{}.{}", url_safe.encode(header), url_safe.encode(claims));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&jwt::signing_key(&app.secret(), now.date_naive())).unwrap();
    mac.update(input.as_bytes());
    let token = format!("{input}.{}", url_safe.encode(mac.finalize().into_bytes()));

    let response = server.exchange_with(&format!("Bearer {token}"), json!({})).await;
    let body = assert_error(response, 401, "malformed_ticket").await;
    assert_eq!(body["message"], "the ticket is malformed: the JWT has no exp claim");
}
