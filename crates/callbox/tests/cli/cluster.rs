//! Two real `callbox serve` processes sharing PostgreSQL and Redis (started by scripts/services.sh): node A is
//! killed with SIGKILL under load, then Redis and PostgreSQL are each stopped under load and brought back.
//!
//! Documented behaviour (docs/deploy.md) this checks:
//! - a node's death loses nothing it acknowledged, and the other node keeps serving;
//! - Redis down: every call still answers as before (login limits fall back to node-local counters), `/readyz`
//!   stays 200 and says `"redis":"degraded"`; back to `"ok"` when Redis returns;
//! - PostgreSQL down: calls that need the database answer 503 `service_unavailable` within seconds (no hang, no
//!   500), `/v1/timestamp` still answers, `/readyz` is 503; everything recovers when PostgreSQL returns.

use callbox_core::credential::Identity;
use callbox_core::ticket::{self, NewTicket};
use callbox_core::Secret;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::served::Served;

struct Cluster {
    database_url: String,
    redis_url: String,
    master_key: String,
}

fn services_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services.sh")
}

/// Runs a function of scripts/services.sh (pg_stop, pg_start, redis_stop, redis_start) with this environment.
fn engine(action: &str) {
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && {action}", services_script().display()))
        .status()
        .unwrap();
    assert!(status.success(), "{action} failed");
}

fn start_node(cluster: &Cluster, data: &std::path::Path) -> Served {
    crate::served::serve(data, |command| {
        command
            .args(["--database-url", &cluster.database_url, "--redis-url", &cluster.redis_url])
            .env("CALLBOX_MASTER_KEY", &cluster.master_key)
            .env("CALLBOX_DEMO_APP", "false")
            .env("CALLBOX_LOGIN__SIGNUPS_PER_IP_PER_MINUTE", "100000")
            .env_remove("CALLBOX_DATABASE_URL")
            .env_remove("CALLBOX_REDIS_URL");
    })
}

#[derive(Clone)]
struct AppKeys {
    key: String,
    secret: Secret,
}

fn ticket(app: &AppKeys, user: &str) -> String {
    ticket::mint(
        &NewTicket {
            application_key: app.key.clone(),
            identity: Identity::username(user),
            created: chrono::Utc::now(),
            expires_in: Some(600),
            nonce: None,
        },
        &app.secret,
    )
}

async fn exchange(http: &reqwest::Client, url: &str, app: &AppKeys, user: &str) -> (u16, Value) {
    let response = http
        .post(format!("{url}/v1/instance"))
        .header("authorization", format!("User {}", ticket(app, user)))
        .json(&json!({ "services": { "im": true } }))
        .send()
        .await;
    match response {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

async fn profile(http: &reqwest::Client, url: &str, id: &str, secret: &str) -> u16 {
    let timestamp = callbox_core::time::format_iso_seconds(chrono::Utc::now());
    let parts = callbox_core::SignedParts {
        method: "GET",
        body: b"",
        content_type: "",
        timestamp: &timestamp,
        path: "/v1/user/profile",
    };
    let signature = callbox_core::signing::sign(&Secret::from_base64(secret).unwrap(), &parts);
    http.get(format!("{url}/v1/user/profile"))
        .header("authorization", format!("Instance {id}:{signature}"))
        .header("x-timestamp", timestamp)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn readyz(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = http.get(format!("{url}/readyz")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !probe().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_survives_a_killed_node_and_engine_outages() {
    let (Ok(base_url), Ok(redis_url)) =
        (std::env::var("CALLBOX_TEST_DATABASE_URL"), std::env::var("CALLBOX_TEST_REDIS_URL"))
    else {
        assert!(std::env::var_os("CALLBOX_REQUIRE_SCALE_TESTS").is_none(), "engines required but not started");
        eprintln!("cluster test skipped: no PostgreSQL/Redis (run `bash scripts/test.sh`)");
        return;
    };
    let _engines = crate::realtime::ENGINES.lock().await;
    // A database of its own, so that this node pair bootstraps its admin token.
    let database = format!("callbox_cluster_{}", std::process::id());
    let status = Command::new("psql")
        .arg(&base_url)
        .args(["-qc", &format!("DROP DATABASE IF EXISTS {database}; ")])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(Command::new("psql")
        .arg(&base_url)
        .args(["-qc", &format!("CREATE DATABASE {database}")])
        .status()
        .unwrap()
        .success());
    let database_url = format!("{}/{database}", base_url.rsplit_once('/').unwrap().0);
    let cluster =
        Cluster { database_url, redis_url, master_key: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into() };
    let dir_a = tempfile::TempDir::new().unwrap();
    let dir_b = tempfile::TempDir::new().unwrap();
    let node_a = start_node(&cluster, dir_a.path());
    let node_b = start_node(&cluster, dir_b.path());
    let token = std::fs::read_to_string(dir_a.path().join("admin-token")).unwrap().trim().to_owned();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let created: Value = http
        .post(format!("{}/admin/v1/apps", node_a.url))
        .bearer_auth(&token)
        .json(&json!({ "name": "cluster" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app = AppKeys {
        key: created["application"]["applicationKey"].as_str().unwrap().to_owned(),
        secret: Secret::from_base64(created["applicationSecret"].as_str().unwrap()).unwrap(),
    };

    // ---- SIGKILL node A under load --------------------------------------------------------------------------
    let acknowledged: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (http, app, acknowledged, stop) = (http.clone(), app.clone(), acknowledged.clone(), stop.clone());
        let urls = [node_a.url.clone(), node_b.url.clone()];
        workers.push(tokio::spawn(async move {
            let mut round = 0;
            let mut b_failures = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let url = &urls[round % 2];
                let (status, body) = exchange(&http, url, &app, &format!("w{worker}-{round}")).await;
                if status == 200 {
                    let id = body["id"].as_str().unwrap().to_owned();
                    acknowledged.lock().unwrap().push((id, body["secret"].as_str().unwrap().to_owned()));
                } else if url == &urls[1] {
                    b_failures.push(status);
                }
                round += 1;
            }
            b_failures
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut node_a = node_a;
    node_a.child.kill().unwrap(); // SIGKILL
    node_a.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for worker in workers {
        assert!(worker.await.unwrap().is_empty(), "node B refused requests while node A died");
    }
    let sessions = acknowledged.lock().unwrap().clone();
    assert!(sessions.len() > 20, "too little load: {}", sessions.len());
    for (id, secret) in &sessions {
        assert_eq!(profile(&http, &node_b.url, id, secret).await, 200, "acknowledged session {id} lost");
    }
    eprintln!("SIGKILL of node A under load: {} acknowledged sessions, all usable on node B", sessions.len());

    // ---- Redis down, under load ---------------------------------------------------------------------------
    engine("redis_stop");
    let (status, ready) = readyz(&http, &node_b.url).await;
    assert_eq!((status, ready["redis"].as_str()), (200, Some("degraded")), "{ready}");
    for round in 0..20 {
        let (status, _) = exchange(&http, &node_b.url, &app, &format!("redis-down-{round}")).await;
        assert_eq!(status, 200, "exchanges keep working without Redis");
    }
    let login = http
        .post(format!("{}/v1/users/username/nobody/authentication", node_b.url))
        .header("authorization", format!("Application {}", app.key))
        .json(&json!({ "password": "wrong password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 401, "logins answer with node-local limits");
    engine("redis_start");
    wait_for("Redis recovery", Duration::from_secs(10), || {
        let http = http.clone();
        let url = node_b.url.clone();
        async move { readyz(&http, &url).await.1["redis"] == "ok" }
    })
    .await;

    // ---- PostgreSQL down, under load ----------------------------------------------------------------------
    engine("pg_stop");
    let started = Instant::now();
    let (status, body) = exchange(&http, &node_b.url, &app, "pg-down").await;
    assert_eq!((status, body["reason"].as_str()), (503, Some("service_unavailable")), "{body}");
    assert!(started.elapsed() < Duration::from_secs(8), "a dead database must not hang requests");
    let timestamp = http.get(format!("{}/v1/timestamp", node_b.url)).send().await.unwrap();
    assert_eq!(timestamp.status().as_u16(), 200);
    assert_eq!(readyz(&http, &node_b.url).await.0, 503);
    engine("pg_start");
    wait_for("PostgreSQL recovery", Duration::from_secs(20), || {
        let (http, url, app) = (http.clone(), node_b.url.clone(), app.clone());
        async move { exchange(&http, &url, &app, "pg-back").await.0 == 200 }
    })
    .await;
    assert_eq!(readyz(&http, &node_b.url).await.0, 200);
    let (id, secret) = &sessions[0];
    assert_eq!(profile(&http, &node_b.url, id, secret).await, 200);
}
