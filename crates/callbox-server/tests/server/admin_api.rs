//! The admin API, tenant isolation, restart durability, secrets at rest, metrics and OpenAPI.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn admin_needs_the_token() {
    let server = start().await;
    let response = server.http.get(server.url("/admin/v1/apps")).send().await.unwrap();
    assert_error(response, 401, "invalid_admin_token").await;
    let response = server.http.get(server.url("/admin/v1/apps")).bearer_auth("cbadm_wrong").send().await.unwrap();
    assert_error(response, 401, "invalid_admin_token").await;
    let response = server
        .http
        .get(server.url("/admin/v1/apps"))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "invalid_admin_token").await;
    assert_eq!(server.admin(Method::GET, "/admin/v1/apps", None).await.status(), 200);
}

#[tokio::test]
async fn settings_are_validated_and_shown() {
    let server = start().await;
    let app = server.create_app(json!({ "allowedOrigins": ["http://localhost:3000"], "sessionTtl": 3600 })).await;
    let shown: Value =
        server.admin(Method::GET, &format!("/admin/v1/apps/{}", app.key), None).await.json().await.unwrap();
    assert_eq!(shown["platformUserAuth"], true);
    assert_eq!(shown["allowedOrigins"], json!(["http://localhost:3000"]));
    assert_eq!(shown["capabilities"], json!(["messaging", "calling", "video"]));
    assert_eq!(shown["sessionTtl"], 3600);
    assert_eq!(shown["secrets"].as_array().unwrap().len(), 1);
    assert!(!shown.to_string().contains(&app.secret));
    for bad in [
        json!({ "maxTicketTtl": 0 }),
        json!({ "maxTicketTtl": 10_000_000 }),
        json!({ "defaultTicketTtl": 100_000 }),
        json!({ "sessionTtl": 5 }),
        json!({ "clockSkew": 99_999 }),
        json!({ "allowedOrigins": ["not an origin"] }),
        json!({ "allowedOrigins": ["https://x.example/path"] }),
        json!({ "capabilities": ["teleport"] }),
        json!({ "name": "" }),
        json!({ "unknownSetting": 1 }),
        json!({ "sessionTtl": -1 }),
    ] {
        assert_error(server.patch_app(&app.key, bad.clone()).await, 400, "malformed_request").await;
    }
    assert_error(server.patch_app("no-such-app", json!({ "name": "x" })).await, 404, "not_found").await;
    let apps: Value = server.admin(Method::GET, "/admin/v1/apps", None).await.json().await.unwrap();
    assert!(apps["applications"].as_array().unwrap().iter().any(|a| a["applicationKey"] == app.key.as_str()));
}

#[tokio::test]
async fn rotation_keeps_old_tickets_until_the_old_secret_is_retired() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let response = server.admin(Method::POST, &format!("/admin/v1/apps/{}/secrets", app.key), None).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let rotated: Value = response.json().await.unwrap();
    let new_app = App {
        secret: rotated["applicationSecret"].as_str().unwrap().into(),
        secret_id: rotated["secretId"].as_str().unwrap().into(),
        ..app.clone()
    };
    assert_eq!(server.exchange(&app.ticket("a")).await.status(), 200);
    assert_eq!(server.exchange(&new_app.ticket("a")).await.status(), 200);
    // Platform tickets are signed with the newest secret.
    let retire = format!("/admin/v1/apps/{}/secrets/{}", app.key, app.secret_id);
    assert_eq!(server.admin(Method::DELETE, &retire, None).await.status(), StatusCode::NO_CONTENT);
    assert_error(server.exchange(&app.ticket("a")).await, 401, "bad_signature").await;
    assert_eq!(server.exchange(&new_app.ticket("a")).await.status(), 200);
    let last = format!("/admin/v1/apps/{}/secrets/{}", app.key, new_app.secret_id);
    assert_error(server.admin(Method::DELETE, &last, None).await, 409, "last_secret").await;
    let shown: Value =
        server.admin(Method::GET, &format!("/admin/v1/apps/{}", app.key), None).await.json().await.unwrap();
    let secrets = shown["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 1);
    assert!(secrets[0]["lastUsedAt"].is_string());
}

#[tokio::test]
async fn users_and_sessions_through_the_admin_api() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let users = format!("/admin/v1/apps/{}/users", app.key);
    let response =
        server.admin(Method::POST, &users, Some(json!({ "userId": "o'brien; --", "password": "pass word 1" }))).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_error(
        server.admin(Method::POST, &users, Some(json!({ "userId": "o'brien; --", "password": "pass word 1" }))).await,
        409,
        "user_exists",
    )
    .await;
    assert_error(
        server.admin(Method::POST, &users, Some(json!({ "userId": "x", "password": "short" }))).await,
        400,
        "invalid_password",
    )
    .await;
    let listed: Value = server.admin(Method::GET, &format!("{users}?search=brien"), None).await.json().await.unwrap();
    assert_eq!(listed["users"][0]["userId"], "o'brien; --");
    let encoded = "o%27brien%3B%20--";
    let response = server
        .admin(Method::PUT, &format!("{users}/{encoded}/password"), Some(json!({ "password": "new password" })))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let login = server
        .http
        .post(server.url(&format!("/v1/users/username/{encoded}/authentication")))
        .header("authorization", format!("Application {}", app.key))
        .json(&json!({ "password": "new password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);

    let s1 = server.session(&app.ticket("zed")).await;
    let s2 = server.session(&app.ticket("zed")).await;
    let s3 = server.session(&app.ticket("yan")).await;
    let sessions = format!("/admin/v1/apps/{}/sessions", app.key);
    let listed: Value = server.admin(Method::GET, &format!("{sessions}?userId=zed"), None).await.json().await.unwrap();
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 2);
    assert_eq!(server.admin(Method::DELETE, &format!("{sessions}/{}", s1.id), None).await.status(), 204);
    assert_error(server.signed(Method::GET, "/v1/user/profile", None, &s1).await, 401, "session_revoked").await;
    assert_eq!(server.signed(Method::GET, "/v1/user/profile", None, &s2).await.status(), 200);
    let revoked: Value = server
        .admin(Method::POST, &format!("{sessions}/revoke"), Some(json!({ "userId": "zed" })))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(revoked["revoked"], 1);
    assert_error(server.signed(Method::GET, "/v1/user/profile", None, &s2).await, 401, "session_revoked").await;
    let before = callbox_core::time::format_iso_seconds(chrono::Utc::now() + chrono::Duration::seconds(5));
    let revoked: Value = server
        .admin(Method::POST, &format!("{sessions}/revoke"), Some(json!({ "issuedBefore": before })))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(revoked["revoked"], 1, "only yan's session was still live");
    assert_error(server.signed(Method::GET, "/v1/user/profile", None, &s3).await, 401, "session_revoked").await;
    assert_error(
        server.admin(Method::POST, &format!("{sessions}/revoke"), Some(json!({}))).await,
        400,
        "malformed_request",
    )
    .await;

    let removed = server.admin(Method::DELETE, &format!("{users}/{encoded}"), None).await;
    assert_eq!(removed.status(), 204);
    assert_error(server.admin(Method::DELETE, &format!("{users}/{encoded}"), None).await, 404, "not_found").await;
}

#[tokio::test]
async fn events_and_diagnosis_explain_refusals() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    server.exchange(&app.ticket_with("ivy", ago(7200), Some(600), None)).await;
    server.exchange(&app.ticket("ivy")).await;
    let events: Value = server
        .admin(Method::GET, &format!("/admin/v1/apps/{}/events?userId=ivy", app.key), None)
        .await
        .json()
        .await
        .unwrap();
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["outcome"], "accepted");
    assert_eq!(events[1]["reason"], "ticket_expired");
    assert!(events[1]["detail"].as_str().unwrap().contains("expired"));
    let text = serde_json::to_string(events).unwrap();
    assert!(!text.contains(&app.ticket("ivy")[..20]));

    let mut tampered = app.ticket("ivy");
    tampered.replace_range(tampered.len() - 6..tampered.len() - 5, "x");
    let diagnosis: Value = server
        .admin(Method::POST, &format!("/admin/v1/apps/{}/diagnose", app.key), Some(json!({ "ticket": tampered })))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(diagnosis["valid"], false);
    assert!(
        diagnosis.to_string().contains("bad_signature") || diagnosis["reason"] == "malformed_ticket",
        "{diagnosis}"
    );
}

#[tokio::test]
async fn diagnosis_against_a_given_secret_instead_of_the_stored_ones() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let path = format!("/admin/v1/apps/{}/diagnose", app.key);
    let unknown_secret = "ax8hTTQJF0OPXL32r1LHMA==";
    let stored_secret = app.secret.clone();
    let diagnose = |body: Value| {
        let server = &server;
        let path = &path;
        let stored_secret = &stored_secret;
        async move {
            let response = server.admin(Method::POST, path, Some(body)).await;
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(
                !text.contains(unknown_secret) && !text.contains(stored_secret.as_str()),
                "a secret was echoed: {text}"
            );
            (status, serde_json::from_str::<Value>(&text).unwrap())
        }
    };
    let signature = |diagnosis: &Value| {
        diagnosis["checks"].as_array().unwrap().iter().find(|c| c["name"] == "signature").unwrap()["detail"].clone()
    };

    // The stored secret, given: valid, and it is the only one checked.
    let (status, diagnosis) = diagnose(json!({ "ticket": app.ticket("uma"), "secret": app.secret })).await;
    assert_eq!(status, 200);
    assert_eq!(diagnosis["valid"], true, "{diagnosis}");
    assert!(signature(&diagnosis).as_str().unwrap().starts_with("matches secret #1 of 1"), "{diagnosis}");

    // A ticket signed with a secret the server does not hold: refused against the stored ones, valid against it.
    let elsewhere = App { secret: unknown_secret.into(), ..app.clone() }.ticket("uma");
    let (_, stored) = diagnose(json!({ "ticket": elsewhere })).await;
    assert_eq!(stored["reason"], "bad_signature");
    let (status, given) = diagnose(json!({ "ticket": elsewhere, "secret": unknown_secret })).await;
    assert_eq!(status, 200);
    assert_eq!(given["valid"], true, "{given}");

    // The app's own ticket against another secret: bad_signature, naming the one secret given.
    let (_, wrong) = diagnose(json!({ "ticket": app.ticket("uma"), "secret": unknown_secret })).await;
    assert_eq!(wrong["reason"], "bad_signature");
    assert_eq!(signature(&wrong), "matches none of the 1 secret(s) given");

    // Bad secret input: a precise 400, never quoting what was sent.
    for (secret, message) in [
        (json!("not base64 at all!"), "secret: the secret is not standard base64"),
        (json!("c2hvcnQ="), "secret: the secret must decode to between 16 and 64 bytes"),
        (json!(""), "secret: the secret must decode to between 16 and 64 bytes"),
        (json!("A".repeat(200)), "secret: the secret must decode to between 16 and 64 bytes"),
    ] {
        let (status, body) = diagnose(json!({ "ticket": app.ticket("uma"), "secret": secret })).await;
        assert_eq!(status, 400, "{secret}");
        assert_eq!(body["reason"], "malformed_request");
        assert_eq!(body["message"], message, "{secret}");
        assert!(!body.to_string().contains("not base64 at all"));
    }
    let (status, body) = diagnose(json!({ "ticket": app.ticket("uma"), "secret": 16 })).await;
    assert_eq!(status, 400);
    assert_eq!(body["reason"], "malformed_request");
    // An explicit null is the same as no secret.
    let (_, null) = diagnose(json!({ "ticket": app.ticket("uma"), "secret": null })).await;
    assert_eq!(null["valid"], true);
    // An unknown application stays a 404 with a secret too.
    let response = server
        .admin(
            Method::POST,
            "/admin/v1/apps/no-such-app/diagnose",
            Some(json!({ "ticket": "x", "secret": app.secret })),
        )
        .await;
    assert_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn tenants_are_isolated() {
    let server = start().await;
    let a = server.create_app(json!({})).await;
    let b = server.create_app(json!({})).await;
    let session_a = server.session(&a.ticket("alice")).await;
    // App B's admin paths cannot reach app A's session or users.
    assert_error(
        server.admin(Method::DELETE, &format!("/admin/v1/apps/{}/sessions/{}", b.key, session_a.id), None).await,
        404,
        "not_found",
    )
    .await;
    let listed: Value =
        server.admin(Method::GET, &format!("/admin/v1/apps/{}/sessions", b.key), None).await.json().await.unwrap();
    assert!(listed["sessions"].as_array().unwrap().is_empty());
    ticket_of_signup(&server, &a.key, "shared").await;
    assert_error(server.log_in(&b.key, "shared", "correct horse").await, 401, "invalid_credentials").await;
    // A's secret cannot make tickets for B; B's user of the same name is another user.
    let forged = App { key: b.key.clone(), ..a.clone() };
    assert_error(server.exchange(&forged.ticket("alice")).await, 401, "bad_signature").await;
    assert_eq!(server.signed(Method::GET, "/v1/user/profile", None, &session_a).await.status(), 200);
}

async fn ticket_of_signup(server: &Server, key: &str, user: &str) {
    assert_eq!(server.sign_up(key, user, "correct horse").await.status(), 200);
}

#[tokio::test]
async fn restart_keeps_apps_users_sessions_and_revocations() {
    let dir = tempfile::TempDir::new().unwrap();
    let (app, live, revoked) = {
        let server = start_with(test_config(dir.path())).await;
        let app = server.create_app(json!({ "platformUserAuth": true })).await;
        ticket_of_signup(&server, &app.key, "alice").await;
        let live = server.session(&app.ticket("alice")).await;
        let revoked = server.session(&app.ticket("bob")).await;
        server.admin(Method::DELETE, &format!("/admin/v1/apps/{}/sessions/{}", app.key, revoked.id), None).await;
        (app, live, revoked)
    };
    let server = start_with(test_config(dir.path())).await;
    assert!(server.demo_key.is_none(), "the demo app is made once");
    assert_eq!(server.signed(Method::GET, "/v1/user/profile", None, &live).await.status(), 200);
    assert_error(server.signed(Method::GET, "/v1/user/profile", None, &revoked).await, 401, "session_revoked").await;
    assert_eq!(server.log_in(&app.key, "alice", "correct horse").await.status(), 200);
    assert_eq!(server.exchange(&app.ticket("carol")).await.status(), 200);
}

#[tokio::test]
async fn a_wrong_master_key_refuses_to_start() {
    let dir = tempfile::TempDir::new().unwrap();
    {
        let server = start_with(test_config(dir.path())).await;
        server.create_app(json!({})).await;
    }
    let wrong = callbox_server::config::Redacted(callbox_server::crypto::MasterKey::generate().1.to_string());
    let config = callbox_server::config::Config { master_key: Some(wrong), ..test_config(dir.path()) };
    let error = callbox_server::open(&config).await.unwrap_err();
    assert!(matches!(error, callbox_server::ServeError::MasterKey(_)), "{error}");
    assert!(error.to_string().contains("master key"), "{error}");
    // The right key (the file) still opens it.
    assert!(callbox_server::open(&test_config(dir.path())).await.is_ok());
}

#[tokio::test]
async fn a_copy_of_the_database_holds_no_usable_secret() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let session = server.session(&app.ticket("alice")).await;
    ticket_of_signup(&server, &app.key, "bob").await;
    // Make sure everything is on disk, WAL included.
    let mut bytes = std::fs::read(server.data.join("callbox.db")).unwrap();
    if let Ok(wal) = std::fs::read(server.data.join("callbox.db-wal")) {
        bytes.extend(wal);
    }
    let haystack = String::from_utf8_lossy(&bytes);
    assert!(!haystack.contains(&app.secret), "application secret in clear");
    assert!(!haystack.contains(&session.secret), "session secret in clear");
    assert!(!haystack.contains("correct horse"), "password in clear");
    assert!(!haystack.contains(&server.token), "admin token in clear");
    let raw = app.secret();
    assert!(!bytes.windows(raw.expose_bytes().len()).any(|w| w == raw.expose_bytes()), "raw secret bytes");
    let master = std::fs::metadata(server.data.join("master.key")).unwrap();
    let token = std::fs::metadata(server.data.join("admin-token")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(master.permissions().mode() & 0o777, 0o600);
    assert_eq!(token.permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn operations_endpoints() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    server.exchange(&app.ticket("alice")).await;
    assert_eq!(server.http.get(server.url("/readyz")).send().await.unwrap().status(), 200);
    let metrics = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("callbox_auth_total"), "{metrics}");
    assert!(metrics.contains("callbox_http_request_duration_seconds"));
    let served: Value = server.http.get(server.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(served["paths"]["/v1/instance"].is_object());
    assert!(served["paths"]["/admin/v1/apps"].is_object());
}

/// The checked-in OpenAPI document is what the server serves; regenerate with
/// `UPDATE_OPENAPI=1 cargo test -p callbox-server --test server openapi`.
#[test]
fn openapi_document_is_checked_in() {
    let generated = callbox_server::openapi::json();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json is stale: run UPDATE_OPENAPI=1 cargo test -p callbox-server --test server openapi"
    );
}
