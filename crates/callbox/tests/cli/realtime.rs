//! The realtime connection through the real binary: `callbox connection list|drop` against `callbox serve`, and
//! messaging surviving a SIGKILL: two real `callbox serve` processes share PostgreSQL and Redis (started by
//! scripts/services.sh); alice sends to bob through node B as fast as B acknowledges, B is killed with SIGKILL
//! mid-flow, and bob, who listened on node A, reconnects to A and resumes from the store: every message B
//! acknowledged is there, each once.

use callbox_core::credential::Identity;
use callbox_core::ticket::{self, NewTicket};
use callbox_core::Secret;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

use crate::served::Served;

/// Held by the tests that use the shared PostgreSQL and Redis, since `cluster` stops and restarts them.
pub(crate) static ENGINES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) secret: String,
}

async fn session(http: &reqwest::Client, url: &str, key: &str, secret: &Secret, user: &str) -> Session {
    session_with(http, url, key, secret, user, json!({ "im": true })).await
}

/// A session of `user` asking for `services` (`{"im": true, "voip": true}` also asks for `calling`).
pub(crate) async fn session_with(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    secret: &Secret,
    user: &str,
    services: Value,
) -> Session {
    let ticket = ticket::mint(
        &NewTicket {
            application_key: key.to_owned(),
            identity: Identity::username(user),
            created: chrono::Utc::now(),
            expires_in: Some(600),
            nonce: None,
        },
        secret,
    );
    let body: Value = http
        .post(format!("{url}/v1/instance"))
        .header("authorization", format!("User {ticket}"))
        .json(&json!({ "services": services }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Session { id: body["id"].as_str().unwrap().to_owned(), secret: body["secret"].as_str().unwrap().to_owned() }
}

/// The next text frame that is not a ping, as JSON; `None` when the connection ends.
pub(crate) async fn next(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.ok()?? {
            Ok(Message::Text(text)) => {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                if frame["type"] != "ping" {
                    return Some(frame);
                }
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

pub(crate) async fn connect(url: &str, session: &Session, resume_after: Option<u64>) -> Ws {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}/v1/realtime", url.replacen("http", "ws", 1))).await.unwrap();
    let challenge = next(&mut ws).await.unwrap();
    let nonce = challenge["nonce"].as_str().unwrap();
    let timestamp = callbox_core::time::format_iso_seconds(chrono::Utc::now());
    let path = format!("/v1/realtime/{nonce}");
    let parts =
        callbox_core::SignedParts { method: "GET", body: b"", content_type: "", timestamp: &timestamp, path: &path };
    let signature = callbox_core::signing::sign(&Secret::from_base64(&session.secret).unwrap(), &parts);
    let mut auth = json!({ "type": "auth", "sessionId": session.id, "timestamp": timestamp, "signature": signature });
    if let Some(seq) = resume_after {
        auth["resumeAfter"] = json!(seq);
    }
    ws.send(Message::Text(auth.to_string().into())).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["type"], "ready");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_a_killed_node_acknowledged_is_delivered_once_after_reconnecting() {
    let (Ok(base_url), Ok(redis_url)) =
        (std::env::var("CALLBOX_TEST_DATABASE_URL"), std::env::var("CALLBOX_TEST_REDIS_URL"))
    else {
        assert!(std::env::var_os("CALLBOX_REQUIRE_SCALE_TESTS").is_none(), "engines required but not started");
        eprintln!("realtime crash test skipped: no PostgreSQL/Redis (run `bash scripts/test.sh`)");
        return;
    };
    let _engines = ENGINES.lock().await;
    let database = format!("callbox_rt_crash_{}", std::process::id());
    for sql in [format!("DROP DATABASE IF EXISTS {database}"), format!("CREATE DATABASE {database}")] {
        assert!(Command::new("psql").arg(&base_url).args(["-qc", &sql]).status().unwrap().success());
    }
    let database_url = format!("{}/{database}", base_url.rsplit_once('/').unwrap().0);
    let start = |data: &std::path::Path| -> Served {
        crate::served::serve(data, |command| {
            command
                .args(["--database-url", &database_url, "--redis-url", &redis_url])
                .env("CALLBOX_MASTER_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
                .env("CALLBOX_DEMO_APP", "false")
                .env("CALLBOX_REALTIME__MESSAGES_PER_SECOND", "100000")
                .env("CALLBOX_REALTIME__MESSAGE_BURST", "100000")
                .env_remove("CALLBOX_DATABASE_URL")
                .env_remove("CALLBOX_REDIS_URL");
        })
    };
    let dir_a = tempfile::TempDir::new().unwrap();
    let dir_b = tempfile::TempDir::new().unwrap();
    let node_a = start(dir_a.path());
    let mut node_b = start(dir_b.path());
    let token = std::fs::read_to_string(dir_a.path().join("admin-token")).unwrap().trim().to_owned();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let created: Value = http
        .post(format!("{}/admin/v1/apps", node_a.url))
        .bearer_auth(&token)
        .json(&json!({ "name": "realtime crash" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["application"]["applicationKey"].as_str().unwrap().to_owned();
    let secret = Secret::from_base64(created["applicationSecret"].as_str().unwrap()).unwrap();
    let alice = session(&http, &node_b.url, &key, &secret, "alice").await;
    let bob = session(&http, &node_a.url, &key, &secret, "bob").await;
    let mut bob_a = connect(&node_a.url, &bob, None).await;

    // Alice keeps up to 8 messages in flight through node B, which is killed after a while.
    let mut alice_b = connect(&node_b.url, &alice, None).await;
    let mut acknowledged: Vec<String> = Vec::new();
    let mut sent = 0u64;
    let mut in_flight = 0u64;
    let kill_after = 300u64;
    loop {
        while in_flight < 8 {
            let frame = json!({ "type": "message.send", "ref": format!("r{sent}"), "recipients": ["bob"], "text": format!("m{sent}") });
            if alice_b.send(Message::Text(frame.to_string().into())).await.is_err() {
                break;
            }
            sent += 1;
            in_flight += 1;
        }
        if acknowledged.len() as u64 == kill_after {
            node_b.child.kill().unwrap(); // SIGKILL, with messages in flight
            node_b.child.wait().unwrap();
        }
        match next(&mut alice_b).await {
            Some(frame) if frame["type"] == "message.accepted" => {
                acknowledged.push(frame["messageId"].as_str().unwrap().to_owned());
                in_flight -= 1;
            }
            Some(frame) => panic!("unexpected frame for alice: {frame}"),
            None => break,
        }
    }
    assert!(acknowledged.len() as u64 >= kill_after, "only {} acknowledged", acknowledged.len());

    // Bob saw some live; he reconnects to A from the start of his inbox and must find every acknowledged one.
    let _ = bob_a.close(None).await;
    let mut bob_a = connect(&node_a.url, &bob, Some(0)).await;
    let mut seen = HashSet::new();
    let mut last_seq = 0;
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(2), next(&mut bob_a)).await {
        assert_eq!(frame["type"], "message", "{frame}");
        let seq = frame["seq"].as_u64().unwrap();
        assert_eq!(seq, last_seq + 1, "the replay is in order with no gap");
        last_seq = seq;
        assert!(seen.insert(frame["messageId"].as_str().unwrap().to_owned()), "a message came twice: {frame}");
    }
    for id in &acknowledged {
        assert!(
            seen.contains(id),
            "acknowledged message {id} was lost ({} acknowledged, {} stored)",
            acknowledged.len(),
            seen.len()
        );
    }
    // What was stored beyond the acknowledged ones was committed but its acknowledgement died with node B.
    assert!(seen.len() <= sent as usize);
    drop(node_a);
    let _ = Command::new("psql").arg(&base_url).args(["-qc", &format!("DROP DATABASE IF EXISTS {database}")]).status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_and_drops_a_users_live_connections() {
    let dir = tempfile::TempDir::new().unwrap();
    let node = crate::served::serve(dir.path(), |command| {
        command.env("CALLBOX_DEMO_APP", "false");
    });
    let data = dir.path().to_str().unwrap().to_owned();
    let cli = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_callbox"))
            .args(args)
            .args(["--server", &node.url, "--data", &data])
            .env_remove("CALLBOX_URL")
            .env_remove("CALLBOX_ADMIN_TOKEN")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let created: Value = serde_json::from_str(&cli(&["app", "create", "--name", "rt", "--json"])).unwrap();
    let key = created["applicationKey"].as_str().unwrap().to_owned();
    let secret = Secret::from_base64(created["applicationSecret"].as_str().unwrap()).unwrap();
    let http = reqwest::Client::new();
    let bob = session(&http, &node.url, &key, &secret, "bob").await;
    let mut bob_ws = connect(&node.url, &bob, None).await;

    let listed: Value = serde_json::from_str(&cli(&["connection", "list", "--app", &key, "bob", "--json"])).unwrap();
    assert_eq!(listed["connections"][0]["sessionId"], bob.id.as_str(), "{listed}");
    let table = cli(&["connection", "list", "--app", &key, "bob"]);
    assert!(table.contains("SESSION") && table.contains(&bob.id), "{table}");
    let dropped = cli(&["connection", "drop", "--app", &key, "bob"]);
    assert!(dropped.contains("Dropped 1 connection"), "{dropped}");
    let error = next(&mut bob_ws).await.expect("an error frame before the close");
    assert_eq!(error["reason"], "service_unavailable", "{error}");
    assert!(next(&mut bob_ws).await.is_none(), "then the close");
    assert!(cli(&["connection", "list", "--app", &key, "bob"]).contains("No live connections"));
}
