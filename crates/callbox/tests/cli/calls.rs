//! `callbox call list` against a real `callbox serve`, on calls placed for real over the realtime connection
//! (docs/calls.md): the table, `--json`, `--user`, `--limit`, and the server's refusals as exit status 1.

use crate::realtime::{connect, next, session_with, Ws};
use callbox_core::Secret;
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::Text(frame.to_string().into())).await.unwrap();
}

/// The next frame, which must be of `kind`.
async fn expect(ws: &mut Ws, kind: &str) -> Value {
    let frame = next(ws).await.unwrap_or_else(|| panic!("the connection ended before {kind}"));
    assert_eq!(frame["type"], kind, "{frame}");
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_an_apps_calls_as_a_table_or_json_by_user_and_limit() {
    let dir = tempfile::TempDir::new().unwrap();
    let node = crate::served::serve(dir.path(), |command| {
        command.env("CALLBOX_DEMO_APP", "false");
    });
    let data = dir.path().to_str().unwrap().to_owned();
    let run = |args: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_callbox"))
            .args(args)
            .args(["--server", &node.url, "--data", &data])
            .env_remove("CALLBOX_URL")
            .env_remove("CALLBOX_ADMIN_TOKEN")
            .output()
            .unwrap()
    };
    let cli = |args: &[&str]| {
        let output = run(args);
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let created: Value = serde_json::from_str(&cli(&["app", "create", "--name", "calls", "--json"])).unwrap();
    let key = created["applicationKey"].as_str().unwrap().to_owned();
    let secret = Secret::from_base64(created["applicationSecret"].as_str().unwrap()).unwrap();
    assert_eq!(cli(&["call", "list", "--app", &key]).trim(), "No calls yet.");

    let http = reqwest::Client::new();
    let calling = json!({ "im": true, "voip": true });
    let alice = session_with(&http, &node.url, &key, &secret, "alice", calling.clone()).await;
    let bob = session_with(&http, &node.url, &key, &secret, "bob", calling).await;
    let mut a = connect(&node.url, &alice, None).await;
    let mut b = connect(&node.url, &bob, None).await;
    // alice calls bob, bob answers, alice hangs up.
    send(&mut a, json!({"type": "call.start", "calleeId": "bob", "sdp": "v=0 offer"})).await;
    let talked = expect(&mut a, "call.placed").await["callId"].as_str().unwrap().to_owned();
    expect(&mut b, "call.incoming").await;
    expect(&mut a, "call.progress").await;
    send(&mut b, json!({"type": "call.answer", "callId": talked, "sdp": "v=0 answer"})).await;
    expect(&mut a, "call.answered").await;
    expect(&mut b, "call.answered").await;
    send(&mut a, json!({"type": "call.hangup", "callId": talked})).await;
    expect(&mut a, "call.ended").await;
    expect(&mut b, "call.ended").await;
    // Then nobody takes alice's call to carol (no connection: unavailable, at once).
    send(&mut a, json!({"type": "call.start", "calleeId": "carol", "sdp": "v=0 offer"})).await;
    let unanswered = expect(&mut a, "call.placed").await["callId"].as_str().unwrap().to_owned();
    assert_eq!(expect(&mut a, "call.ended").await["cause"], "no_answer");

    // The records are written behind the signaling: wait until both have their end.
    let started = Instant::now();
    let listed = loop {
        let listed: Value = serde_json::from_str(&cli(&["call", "list", "--app", &key, "--json"])).unwrap();
        let calls = listed["calls"].as_array().unwrap();
        if calls.len() == 2 && calls.iter().all(|call| !call["endedAt"].is_null()) {
            break listed;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the records did not arrive: {listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let calls = listed["calls"].as_array().unwrap();
    assert_eq!(calls[0]["callId"], unanswered.as_str(), "newest first: {listed}");
    assert_eq!(calls[1]["callId"], talked.as_str());
    assert_eq!((calls[1]["endCause"].as_str(), calls[1]["endedBy"].as_str()), (Some("hung_up"), Some("caller")));
    assert!(calls[1]["durationMs"].is_u64(), "{listed}");
    assert_eq!((calls[0]["calleeId"].as_str(), calls[0]["durationMs"].clone()), (Some("carol"), Value::Null));

    let table = cli(&["call", "list", "--app", &key]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two calls:\n{table}");
    for header in ["STARTED", "CALLER", "CALLEE", "DURATION", "END CAUSE", "ENDED BY", "CALL ID"] {
        assert!(lines[0].contains(header), "{header}:\n{table}");
    }
    assert!(lines[1].contains(&unanswered) && lines[1].contains("no_answer") && lines[1].contains("server"), "{table}");
    assert!(lines[2].contains(&talked) && lines[2].contains("hung_up") && lines[2].contains(" s "), "{table}");

    // --user matches either end; --limit keeps the newest.
    let bobs = cli(&["call", "list", "--app", &key, "--user", "bob"]);
    assert!(bobs.contains(&talked) && !bobs.contains(&unanswered), "{bobs}");
    let carols: Value =
        serde_json::from_str(&cli(&["call", "list", "--app", &key, "--user", "carol", "--json"])).unwrap();
    assert_eq!(carols["calls"].as_array().unwrap().len(), 1, "{carols}");
    assert_eq!(carols["calls"][0]["callId"], unanswered.as_str());
    let newest = cli(&["call", "list", "--app", &key, "--limit", "1"]);
    assert!(newest.contains(&unanswered) && !newest.contains(&talked), "{newest}");
    assert_eq!(cli(&["call", "list", "--app", &key, "--user", "dave"]).trim(), "No calls of dave.");

    // The server's refusals: exit status 1 with its reason.
    let unknown = run(&["call", "list", "--app", "no-such-app"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not_found"), "{unknown:?}");
    let bad_user = run(&["call", "list", "--app", &key, "--user", "bad\u{1}user"]);
    assert_eq!(bad_user.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_user.stderr).contains("malformed_request"), "{bad_user:?}");
    // And the command line's: a limit that is not a number never reaches the server.
    assert_eq!(run(&["call", "list", "--app", &key, "--limit", "many"]).status.code(), Some(2));
    assert_eq!(run(&["call", "list"]).status.code(), Some(2), "--app is required");
}
