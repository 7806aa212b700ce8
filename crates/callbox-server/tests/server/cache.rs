//! The read cache of sessions and applications (`store::cached`): what one node changes is seen by that node at
//! once; what another node changes is seen within the cache age, and a renewal made elsewhere never refuses the
//! client's new secret. Two servers share one SQLite file here, standing in for two nodes on one database.

use crate::store::run_conformance;
use crate::support::{assert_error, start_with, test_config, Session};
use callbox_core::credential::{Identity, IdentityType};
use callbox_core::ticket::{self, NewTicket};
use callbox_server::config::CacheConfig;
use callbox_server::store::cached::CachedStore;
use callbox_server::store::sqlite::SqliteStore;
use callbox_server::store::Store;
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const AGE: Duration = Duration::from_millis(400);

fn cached_config(dir: &std::path::Path) -> callbox_server::config::Config {
    callbox_server::config::Config {
        cache: CacheConfig { ttl_milliseconds: Some(u64::try_from(AGE.as_millis()).unwrap()), max_sessions: 1000 },
        ..test_config(dir)
    }
}

/// The whole store contract holds through the cache (with copies that outlive the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cached_store_keeps_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("callbox.db")).await.unwrap());
    run_conformance(Arc::new(CachedStore::new(inner, Duration::from_secs(60), 10_000))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_this_node_is_seen_at_once_and_another_nodes_within_the_cache_age() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_with(cached_config(dir.path())).await;
    let b = start_with(cached_config(dir.path())).await;
    let app = a.create_app(json!({})).await;
    let session = a.session(&app.ticket("alice")).await;

    // B reads the session (and keeps a copy).
    assert_eq!(b.signed(Method::GET, "/v1/user/profile", None, &session).await.status(), StatusCode::OK);

    // Renewed on A: B accepts the new secret at once (it re-reads a copy whose signature fails) ...
    let renewed = a.signed(Method::POST, "/v1/instance", Some(json!({})), &session).await;
    assert_eq!(renewed.status(), StatusCode::OK);
    let body: Value = renewed.json().await.unwrap();
    let renewed = Session { id: session.id.clone(), secret: body["secret"].as_str().unwrap().to_owned() };
    assert_eq!(b.signed(Method::GET, "/v1/user/profile", None, &renewed).await.status(), StatusCode::OK);
    // ... and, having re-read, refuses the old one.
    assert_error(b.signed(Method::GET, "/v1/user/profile", None, &session).await, 401, "bad_signature").await;

    // Revoked on A: A refuses at once; B within the cache age.
    let revoked = a.admin(Method::DELETE, &format!("/admin/v1/apps/{}/sessions/{}", app.key, session.id), None).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let at = Instant::now();
    assert_error(a.signed(Method::GET, "/v1/user/profile", None, &renewed).await, 401, "session_revoked").await;
    loop {
        let response = b.signed(Method::GET, "/v1/user/profile", None, &renewed).await;
        if response.status() == StatusCode::UNAUTHORIZED {
            assert_error(response, 401, "session_revoked").await;
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
        assert!(at.elapsed() < AGE + Duration::from_millis(600), "B still accepts after {:?}", at.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Application settings and secrets: a retired secret is refused on the node that retired it at once.
    let fresh = a.session(&app.ticket("bob")).await;
    assert_eq!(a.signed(Method::GET, "/v1/user/profile", None, &fresh).await.status(), StatusCode::OK);
    b.session(&app.ticket("zed")).await; // B keeps a copy of the application and its secrets
    let rotated = a.admin(Method::POST, &format!("/admin/v1/apps/{}/secrets", app.key), None).await;
    assert_eq!(rotated.status(), StatusCode::CREATED);
    let retired = a.admin(Method::DELETE, &format!("/admin/v1/apps/{}/secrets/{}", app.key, app.secret_id), None).await;
    assert_eq!(retired.status(), StatusCode::NO_CONTENT);
    assert_error(a.exchange(&app.ticket("carol")).await, 401, "bad_signature").await;
    // B, holding the old secret list, agrees within the cache age.
    let at = Instant::now();
    loop {
        let response = b.exchange(&app.ticket("carol")).await;
        if response.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(at.elapsed() < AGE + Duration::from_millis(600), "B still takes a retired secret");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Disabling a user revokes their sessions on this node at once, even when they were read a moment before.
#[tokio::test]
async fn disabling_a_user_is_seen_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(cached_config(dir.path())).await;
    let app = server.create_app(json!({})).await;
    let added = server
        .admin(
            Method::POST,
            &format!("/admin/v1/apps/{}/users", app.key),
            Some(json!({ "userId": "dora", "password": "correct horse battery" })),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED, "{}", added.text().await.unwrap());
    let logged_in = server.log_in(&app.key, "dora", "correct horse battery").await;
    assert_eq!(logged_in.status(), StatusCode::OK);
    let ticket: Value = logged_in.json().await.unwrap();
    let session = server.session(ticket["authorization"].as_str().unwrap()).await;
    assert_eq!(server.signed(Method::GET, "/v1/user/profile", None, &session).await.status(), StatusCode::OK);
    let disabled = server.admin(Method::POST, &format!("/admin/v1/apps/{}/users/dora/disable", app.key), None).await;
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_error(server.signed(Method::GET, "/v1/user/profile", None, &session).await, 401, "session_revoked").await;
}

/// The profile names the identity type of the ticket the session came from.
#[tokio::test]
async fn the_profile_names_the_tickets_identity_type() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(cached_config(dir.path())).await;
    let app = server.create_app(json!({})).await;
    for (kind, endpoint) in [(IdentityType::Email, "eve@example.com"), (IdentityType::Number, "+15551234567")] {
        let ticket = ticket::mint(
            &NewTicket {
                application_key: app.key.clone(),
                identity: Identity { kind, endpoint: endpoint.to_owned() },
                created: Utc::now(),
                expires_in: Some(600),
                nonce: None,
            },
            &app.secret(),
        );
        let session = server.session(&ticket).await;
        let response = server.signed(Method::GET, "/v1/user/profile", None, &session).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({ "identities": [{ "type": kind.as_str(), "endpoint": endpoint }] }));
    }
}
