//! Scale-out: the store conformance suite on PostgreSQL, and two nodes sharing PostgreSQL and Redis.
//!
//! These need the engines that `scripts/test.sh` starts (scripts/services.sh): `CALLBOX_TEST_DATABASE_URL`,
//! `CALLBOX_TEST_REDIS_URL`, and for the failure test the ports and directories to stop and restart them. Without
//! them the tests say so and pass, unless `CALLBOX_REQUIRE_SCALE_TESTS` is set (as the test script does).
//! They run one at a time (the failure test stops the engines the others use).

use crate::support::*;
use callbox_server::config::{Config, Redacted};
use callbox_server::store::sql::SqlStore;
use callbox_server::store::Store;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) struct Engines {
    database_url: String,
    redis_url: String,
}

pub(crate) fn engines() -> Option<Engines> {
    match (std::env::var("CALLBOX_TEST_DATABASE_URL"), std::env::var("CALLBOX_TEST_REDIS_URL")) {
        (Ok(database_url), Ok(redis_url)) => Some(Engines { database_url, redis_url }),
        _ => {
            assert!(
                std::env::var_os("CALLBOX_REQUIRE_SCALE_TESTS").is_none(),
                "CALLBOX_REQUIRE_SCALE_TESTS is set but the engines are not: run through scripts/test.sh"
            );
            eprintln!("scale tests skipped: no PostgreSQL/Redis (run `bash scripts/test.sh`)");
            None
        }
    }
}

/// Two nodes on the same engines and master key, each with its own data directory.
pub(crate) async fn two_nodes(engines: &Engines) -> (Server, Server, Vec<TempDir>) {
    two_nodes_configured(engines, |_| {}).await
}

/// Two nodes as [`two_nodes`], each config changed by `tweak` first (e.g. the call timers).
pub(crate) async fn two_nodes_configured(
    engines: &Engines,
    tweak: impl Fn(&mut Config),
) -> (Server, Server, Vec<TempDir>) {
    // One key for every node of every test: the shared database remembers the key it was started with.
    let master_key = "c2NhbGUtdGVzdHMtbWFzdGVyLWtleS0zMi1ieXRlcyE=".to_owned();
    let mut dirs = Vec::new();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let dir = TempDir::new().unwrap();
        let mut config = Config {
            database_url: Some(Redacted(engines.database_url.clone())),
            redis_url: Some(Redacted(engines.redis_url.clone())),
            master_key: Some(Redacted(master_key.clone())),
            demo_app: false,
            ..test_config(dir.path())
        };
        tweak(&mut config);
        nodes.push(start_with(config).await);
        dirs.push(dir);
    }
    let mut b = nodes.pop().unwrap();
    let mut a = nodes.pop().unwrap();
    // The admin token is made once per database; a fresh database gives it to the first node. An existing one
    // (earlier tests) keeps its token, so the tests set their own.
    let token = format!("cbadm_test_{}", callbox_server::crypto::random_token(16));
    a.callbox.set_admin_token(&token).await.unwrap();
    a.token = token.clone();
    b.token = token;
    (a, b, dirs)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

/// Polls `probe` until it returns true; the time it took.
async fn until<F, Fut>(mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !probe().await {
        assert!(started.elapsed() < Duration::from_secs(5), "the change did not reach the other node in 5 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn postgres_store_passes_the_conformance_suite() {
    let Some(engines) = engines() else { return };
    let _serial = SERIAL.lock().await;
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect_postgres(&engines.database_url).await.unwrap());
    crate::store::run_conformance(store).await;
}

#[tokio::test]
async fn two_nodes_share_sessions_settings_secrets_nonces_and_lockouts() {
    let Some(engines) = engines() else { return };
    let _serial = SERIAL.lock().await;
    let (a, b, _dirs) = two_nodes(&engines).await;
    let app = a.create_app(json!({})).await;

    // A session made on A signs calls on B.
    let session = a.session(&app.ticket("alice")).await;
    assert_eq!(b.signed(Method::GET, "/v1/user/profile", None, &session).await.status(), 200);
    // Revoked on A → refused on B.
    a.admin(Method::DELETE, &format!("/admin/v1/apps/{}/sessions/{}", app.key, session.id), None).await;
    assert_error(b.signed(Method::GET, "/v1/user/profile", None, &session).await, 401, "session_revoked").await;

    // The switch flipped on A → sign-up refused on B.
    assert_eq!(b.sign_up(&app.key, "bob", "correct horse").await.status(), 200);
    a.patch_app(&app.key, json!({ "platformUserAuth": false })).await;
    assert_error(b.sign_up(&app.key, "carol", "correct horse").await, 403, "platform_auth_disabled").await;
    a.patch_app(&app.key, json!({ "platformUserAuth": true })).await;

    // A secret retired on A → its tickets refused on B.
    let rotated: Value =
        a.admin(Method::POST, &format!("/admin/v1/apps/{}/secrets", app.key), None).await.json().await.unwrap();
    let retire = format!("/admin/v1/apps/{}/secrets/{}", app.key, app.secret_id);
    assert_eq!(a.admin(Method::DELETE, &retire, None).await.status(), 204);
    assert_error(b.exchange(&app.ticket("alice")).await, 401, "bad_signature").await;
    let app = App {
        secret: rotated["applicationSecret"].as_str().unwrap().into(),
        secret_id: rotated["secretId"].as_str().unwrap().into(),
        ..app
    };
    assert_eq!(b.exchange(&app.ticket("alice")).await.status(), 200);

    // A nonce used on A is refused on B.
    let once = app.ticket_with("alice", ago(0), Some(600), Some(&format!("nonce-{}", app.key)));
    assert_eq!(a.exchange(&once).await.status(), 200);
    assert_error(b.exchange(&once).await, 401, "ticket_replayed").await;

    // Guesses spread over both nodes still lock the account at the per-account threshold (5).
    for attempt in 0..4 {
        let node = if attempt % 2 == 0 { &a } else { &b };
        assert_error(node.log_in(&app.key, "bob", "wrong horse").await, 401, "invalid_credentials").await;
    }
    assert_error(b.log_in(&app.key, "bob", "wrong horse").await, 429, "locked_out").await;
    assert_error(a.log_in(&app.key, "bob", "correct horse").await, 429, "locked_out").await;

    let mut ready: Value = a.http.get(a.url("/readyz")).send().await.unwrap().json().await.unwrap();
    let limit = ready.as_object_mut().unwrap().remove("fileDescriptorLimit");
    assert!(limit.is_some_and(|limit| limit.as_u64().is_some_and(|n| n > 0)), "{ready}");
    assert_eq!(ready, json!({ "status": "ready", "database": "ok", "redis": "ok" }));
}

#[tokio::test]
async fn changes_reach_the_other_node_within_a_second() {
    let Some(engines) = engines() else { return };
    let _serial = SERIAL.lock().await;
    let (a, b, _dirs) = two_nodes(&engines).await;
    let app = a.create_app(json!({})).await;

    let mut revocations = Vec::new();
    for round in 0..100 {
        let session = a.session(&app.ticket(&format!("user{round}"))).await;
        assert_eq!(b.signed(Method::GET, "/v1/user/profile", None, &session).await.status(), 200);
        a.admin(Method::DELETE, &format!("/admin/v1/apps/{}/sessions/{}", app.key, session.id), None).await;
        revocations.push(
            until(|| {
                let (b, session) = (&b, &session);
                async move { b.signed(Method::GET, "/v1/user/profile", None, session).await.status() == 401 }
            })
            .await,
        );
    }
    let mut switches = Vec::new();
    for round in 0..100 {
        let on = round % 2 == 1;
        a.patch_app(&app.key, json!({ "platformUserAuth": on })).await;
        // A too-short password is refused with invalid_password while sign-up is on, platform_auth_disabled
        // while off: a probe that costs no password hashing.
        let expected = if on { 400 } else { 403 };
        switches.push(
            until(|| {
                let (b, key) = (&b, &app.key);
                async move { b.sign_up(key, "probe", "short").await.status().as_u16() == expected }
            })
            .await,
        );
    }
    for (name, samples) in [("revocation", &mut revocations), ("platformUserAuth switch", &mut switches)] {
        let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
        eprintln!("propagation of {name} from node A to node B over 100 changes: p50 {p50:?}, p99 {p99:?}");
        assert!(p99 < Duration::from_secs(1), "{name}: p99 {p99:?}");
    }
}
