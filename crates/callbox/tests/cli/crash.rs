//! Crash safety of the real binary: `callbox serve` on a file database takes ticket exchanges and platform
//! sign-ups concurrently, is killed with SIGKILL mid-load, and restarted on the same data directory. Every session
//! and user whose creation was acknowledged (a 200 reached the client) must still be there and usable, and the
//! database must pass `PRAGMA integrity_check` (opened read-only).

use base64::Engine;
use callbox_core::signing::{self, SignedParts};
use callbox_core::ticket::{self, NewTicket};
use callbox_core::{Identity, Secret};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::served::Served;

fn serve(data: &Path) -> Served {
    crate::served::serve(data, |command| {
        command.env("CALLBOX_LOGIN__SIGNUPS_PER_IP_PER_MINUTE", "1000000").env("RUST_LOG", "error");
    })
}

#[derive(Debug, Clone)]
struct AckedSession {
    id: String,
    secret: String,
    user: String,
}

const PASSWORD: &str = "correct horse battery";

async fn integrity_check(db: &Path) -> String {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    let mut connection = SqliteConnectOptions::new().filename(db).read_only(true).connect().await.unwrap();
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut connection).await.unwrap();
    connection.close().await.unwrap();
    verdict
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_sessions_and_users_survive_sigkill() {
    let data = tempfile::TempDir::new().unwrap();
    let mut server = serve(data.path());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let token = std::fs::read_to_string(data.path().join("admin-token")).unwrap().trim().to_owned();
    let created: Value = http
        .post(format!("{}/admin/v1/apps", server.url))
        .bearer_auth(&token)
        .json(&json!({ "name": "crash", "platformUserAuth": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["application"]["applicationKey"].as_str().unwrap().to_owned();
    let secret = Secret::from_base64(created["applicationSecret"].as_str().unwrap()).unwrap();

    let sessions: Arc<Mutex<Vec<AckedSession>>> = Arc::default();
    let users: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (http, url, key, secret, sessions, stop) =
            (http.clone(), server.url.clone(), key.clone(), secret.clone(), sessions.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let user = format!("ex{worker}-{n}");
                let ticket = ticket::mint(
                    &NewTicket {
                        application_key: key.clone(),
                        identity: Identity::username(user.clone()),
                        created: chrono::Utc::now(),
                        expires_in: Some(600),
                        nonce: Some(format!("nonce-{worker}-{n}")),
                    },
                    &secret,
                );
                let sent = http
                    .post(format!("{url}/v1/instance"))
                    .header("authorization", format!("User {ticket}"))
                    .json(&json!({ "services": { "im": true } }))
                    .send()
                    .await;
                let Ok(response) = sent else { break };
                if response.status() != 200 {
                    continue;
                }
                let Ok(grant) = response.json::<Value>().await else { break };
                sessions.lock().unwrap().push(AckedSession {
                    id: grant["id"].as_str().unwrap().to_owned(),
                    secret: grant["secret"].as_str().unwrap().to_owned(),
                    user,
                });
            }
        }));
    }
    for worker in 0..2 {
        let (http, url, key, users, stop) =
            (http.clone(), server.url.clone(), key.clone(), users.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let user = format!("signup{worker}-{n}");
                let sent = http
                    .post(format!("{url}/v1/users"))
                    .header("authorization", format!("Application {key}"))
                    .json(&json!({ "password": PASSWORD, "identities": [{ "type": "username", "endpoint": user }] }))
                    .send()
                    .await;
                let Ok(response) = sent else { break };
                if response.status() == 200 && response.bytes().await.is_ok() {
                    users.lock().unwrap().push(user);
                }
            }
        }));
    }

    // Let the load build up (both kinds acknowledged at least a few times), then SIGKILL mid-load.
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (s, u) = (sessions.lock().unwrap().len(), users.lock().unwrap().len());
        if (s >= 200 && u >= 3 && started.elapsed() > Duration::from_millis(1500)) || started.elapsed().as_secs() > 30 {
            break;
        }
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let sessions = sessions.lock().unwrap().clone();
    let users = users.lock().unwrap().clone();
    assert!(sessions.len() >= 50, "too few exchanges before the kill: {}", sessions.len());
    assert!(!users.is_empty(), "no sign-up was acknowledged before the kill");

    // The database as the crash left it (WAL not checkpointed) is consistent.
    let db = data.path().join("callbox.db");
    assert_eq!(integrity_check(&db).await, "ok", "integrity right after SIGKILL");

    let server = serve(data.path());
    for session in &sessions {
        let timestamp = callbox_core::time::format_iso_seconds(chrono::Utc::now());
        let path = "/v1/user/profile";
        let parts = SignedParts { method: "GET", body: b"", content_type: "", timestamp: &timestamp, path };
        let signature = signing::sign(&Secret::from_base64(&session.secret).unwrap(), &parts);
        let response = http
            .get(format!("{}{path}", server.url))
            .header("authorization", format!("Instance {}:{signature}", session.id))
            .header("x-timestamp", &timestamp)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "acknowledged session {} lost: {body}", session.id);
        let profile: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(profile["identities"][0]["endpoint"], session.user.as_str());
    }
    for user in &users {
        let response = http
            .post(format!("{}/v1/users/username/{user}/authentication", server.url))
            .header("authorization", format!("Application {key}"))
            .json(&json!({ "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "acknowledged user {user} cannot log in: {body}");
        let ticket = body["authorization"].as_str().unwrap();
        let data = ticket.split(':').next().unwrap();
        let claims: Value =
            serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(data).unwrap()).unwrap();
        assert_eq!(claims["identity"]["endpoint"], user.as_str());
    }
    assert_eq!(integrity_check(&db).await, "ok", "integrity after the restart");
    drop(server);
    assert_eq!(integrity_check(&db).await, "ok", "integrity after a second kill");
}
