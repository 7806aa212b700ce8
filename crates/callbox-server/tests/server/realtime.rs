//! The realtime connection (`/v1/realtime`, docs/realtime.md) against a real server with a real SQLite file, through
//! a real WebSocket client: authentication, messaging, receipts, offline delivery, limits, bad input, revocation.

use crate::support::*;
use callbox_core::signing::{self, SignedParts};
use callbox_core::Secret;
use callbox_server::realtime::RealtimeConfig;
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A realtime client: answers the server's pings, hands every other frame to the test.
pub struct Rt {
    ws: Ws,
    pub ready: Value,
}

/// How a connection ended.
#[derive(Debug)]
pub struct Closed {
    /// The last error frame before the close, if any.
    pub error: Option<Value>,
    pub code: Option<u16>,
    pub word: String,
}

pub fn ws_url(server: &Server) -> String {
    format!("{}/v1/realtime", server.url.replacen("http", "ws", 1))
}

pub fn auth_frame(session: &Session, nonce: &str, resume_after: Option<u64>) -> Value {
    auth_frame_at(session, nonce, resume_after, Utc::now())
}

/// The auth frame stamped `at` (a server's moved test clock).
pub fn auth_frame_at(session: &Session, nonce: &str, resume_after: Option<u64>, at: chrono::DateTime<Utc>) -> Value {
    let timestamp = callbox_core::time::format_iso_seconds(at);
    let path = format!("/v1/realtime/{nonce}");
    let parts = SignedParts { method: "GET", body: b"", content_type: "", timestamp: &timestamp, path: &path };
    let signature = signing::sign(&Secret::from_base64(&session.secret).unwrap(), &parts);
    let mut frame = json!({ "type": "auth", "sessionId": session.id, "timestamp": timestamp, "signature": signature });
    if let Some(seq) = resume_after {
        frame["resumeAfter"] = json!(seq);
    }
    frame
}

/// Opens a socket and reads the challenge; the nonce.
pub async fn open_socket(server: &Server) -> (Ws, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(server)).await.unwrap();
    let challenge = read_json(&mut ws).await.expect("a challenge");
    assert_eq!(challenge["type"], "challenge");
    let nonce = challenge["nonce"].as_str().unwrap().to_owned();
    assert!(nonce.len() >= 22, "{challenge}");
    (ws, nonce)
}

async fn read_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a frame within 5 s")? {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(text.as_str()).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

pub async fn connect(server: &Server, session: &Session, resume_after: Option<u64>) -> Rt {
    let (mut ws, nonce) = open_socket(server).await;
    let frame = auth_frame_at(session, &nonce, resume_after, server.now());
    ws.send(Message::Text(frame.to_string().into())).await.unwrap();
    let ready = read_json(&mut ws).await.expect("ready");
    assert_eq!(ready["type"], "ready", "{ready}");
    Rt { ws, ready }
}

impl Rt {
    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Message::Text(frame.to_string().into())).await.unwrap();
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    /// The next frame that is not a server ping (answered).
    pub async fn next(&mut self) -> Value {
        loop {
            let frame = read_json(&mut self.ws).await.expect("the connection is open");
            if frame["type"] == "ping" {
                self.send(json!({ "type": "pong" })).await;
                continue;
            }
            return frame;
        }
    }

    /// The next frame of `kind`, skipping none: asserts it is that kind.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let frame = self.next().await;
        assert_eq!(frame["type"], kind, "{frame}");
        frame
    }

    pub async fn send_message(&mut self, reference: &str, recipients: Value, text: &str) -> Value {
        self.send(json!({ "type": "message.send", "ref": reference, "recipients": recipients, "text": text })).await;
        let accepted = self.expect("message.accepted").await;
        assert_eq!(accepted["ref"], reference);
        accepted
    }

    /// Nothing but pings arrives for `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        while let Ok(next) = tokio::time::timeout_at(until.into(), self.ws.next()).await {
            match next {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                    assert_eq!(frame["type"], "ping", "expected nothing, got {frame}");
                }
                Some(Ok(_)) => {}
                other => panic!("the connection ended: {other:?}"),
            }
        }
    }

    /// Reads until the server closes; the last error frame and the close code.
    pub async fn closed_within(mut self, limit: Duration) -> Closed {
        let until = Instant::now() + limit;
        let mut error = None;
        loop {
            let next = tokio::time::timeout_at(until.into(), self.ws.next()).await.expect("closed in time");
            match next {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                    if frame["type"] == "error" {
                        error = Some(frame);
                    }
                }
                Some(Ok(Message::Close(close))) => {
                    return Closed {
                        error,
                        code: close.as_ref().map(|c| u16::from(c.code)),
                        word: close.map(|c| c.reason.to_string()).unwrap_or_default(),
                    }
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return Closed { error, code: None, word: String::new() },
            }
        }
    }
}

/// Asserts a §7 error frame.
pub fn assert_error_frame(frame: &Value, reason: &str) {
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["reason"], reason, "{frame}");
    assert!(frame["errorCode"].as_u64().is_some(), "{frame}");
    assert!(frame["message"].as_str().is_some_and(|m| !m.is_empty()), "{frame}");
    assert!(frame["retryable"].is_boolean(), "{frame}");
    assert!(frame["serverTime"].is_string(), "{frame}");
}

pub fn assert_closed(closed: &Closed, code: u16, reason: &str) {
    assert_eq!(closed.code, Some(code), "{closed:?}");
    assert_error_frame(closed.error.as_ref().expect("an error frame before the close"), reason);
    assert_eq!(closed.word, reason, "{closed:?}");
}

async fn start_realtime(realtime: RealtimeConfig) -> (Server, TempDir) {
    let dir = TempDir::new().unwrap();
    let config = callbox_server::config::Config { realtime, ..test_config(dir.path()) };
    (start_with(config).await, dir)
}

fn fast() -> RealtimeConfig {
    RealtimeConfig {
        heartbeat_seconds: 1,
        idle_timeout_seconds: 3,
        auth_timeout_seconds: 1,
        ..RealtimeConfig::default()
    }
}

#[tokio::test]
async fn alice_and_bob_exchange_a_message_with_receipt_and_alices_other_device_sees_it() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = server.session(&app.ticket("alice")).await;
    let bob = server.session(&app.ticket("bob")).await;
    let mut a1 = connect(&server, &alice, None).await;
    let mut a2 = connect(&server, &alice, None).await;
    let mut b = connect(&server, &bob, None).await;
    assert_eq!(a1.ready["userId"], "alice");
    assert_eq!(a1.ready["sessionId"], alice.id.as_str());
    assert!(a1.ready["capabilities"].as_array().unwrap().contains(&json!("messaging")));
    assert_eq!(a1.ready["limits"]["maxRecipients"], 50);
    assert_eq!(a1.ready["heartbeatSeconds"], 15);

    a1.send(json!({ "type": "message.send", "ref": "r1", "recipients": ["bob"], "text": "hi bob",
                    "headers": { "kind": "greeting" } }))
        .await;
    let accepted = a1.expect("message.accepted").await;
    assert_eq!(accepted["ref"], "r1");
    let id = accepted["messageId"].as_str().unwrap().to_owned();
    assert!(callbox_core::time::parse_timestamp(accepted["timestamp"].as_str().unwrap()).is_some());

    let incoming = b.expect("message").await;
    assert_eq!(incoming["messageId"], id.as_str());
    assert_eq!(incoming["senderId"], "alice");
    assert_eq!(incoming["recipientIds"], json!(["bob"]));
    assert_eq!(incoming["text"], "hi bob");
    assert_eq!(incoming["headers"], json!({ "kind": "greeting" }));
    assert_eq!(incoming["timestamp"], accepted["timestamp"]);
    assert_eq!(incoming["seq"], 1);

    // Alice's other device sees what she sent (no seq: it is not in her inbox).
    let copy = a2.expect("message").await;
    assert_eq!(copy["messageId"], id.as_str());
    assert!(copy.get("seq").is_none(), "{copy}");

    b.send(json!({ "type": "message.received", "messageId": id, "seq": 1 })).await;
    for device in [&mut a1, &mut a2] {
        let receipt = device.expect("message.receipt").await;
        assert_eq!(receipt["messageId"], id.as_str());
        assert_eq!(receipt["recipientId"], "bob");
        assert_eq!(receipt["status"], "delivered");
        assert_eq!(receipt["seq"], 1, "the receipt is the first entry of alice's inbox");
    }
    // Confirming again is idempotent: no second receipt.
    b.send(json!({ "type": "message.received", "messageId": id, "seq": 1 })).await;
    a1.quiet_for(Duration::from_millis(300)).await;
    // A confirmation of something that is not in bob's inbox is refused precisely.
    b.send(json!({ "type": "message.received", "messageId": id, "seq": 7 })).await;
    assert_error_frame(&b.expect("error").await, "not_found");
}

#[tokio::test]
async fn order_is_kept_per_pair_and_offline_messages_arrive_on_the_next_connection() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = server.session(&app.ticket("alice")).await;
    let bob = server.session(&app.ticket("bob")).await;
    let mut a = connect(&server, &alice, None).await;
    let mut b = connect(&server, &bob, None).await;
    for n in 0..20 {
        a.send(json!({ "type": "message.send", "ref": format!("r{n}"), "recipients": "bob", "text": format!("m{n}") }))
            .await;
    }
    let mut first = Vec::new();
    for n in 0..20 {
        assert_eq!(a.expect("message.accepted").await["ref"], format!("r{n}"));
        let incoming = b.expect("message").await;
        assert_eq!(incoming["text"], format!("m{n}"));
        assert_eq!(incoming["seq"], n + 1);
        first.push(incoming["messageId"].clone());
    }
    // Bob confirms all but the last of them and goes away; three more are sent while he is offline.
    for (n, id) in first.iter().enumerate().take(19) {
        b.send(json!({ "type": "message.received", "messageId": id, "seq": n + 1 })).await;
        assert_eq!(a.expect("message.receipt").await["messageId"], *id);
    }
    drop(b);
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(a.send_message(&format!("o{n}"), json!(["bob"]), &format!("offline {n}")).await["messageId"].clone());
    }
    // A new device without a cursor gets every unconfirmed message, in order.
    let mut b = connect(&server, &bob, None).await;
    assert_eq!(b.ready["lastSeq"], 23);
    assert_eq!(b.expect("message").await["messageId"], first[19]);
    for (n, id) in ids.iter().enumerate() {
        let incoming = b.expect("message").await;
        assert_eq!(&incoming["messageId"], id);
        assert_eq!(incoming["text"], format!("offline {n}"));
    }
    b.quiet_for(Duration::from_millis(300)).await;
    drop(b);
    // With a cursor: exactly what came after it, confirmed or not, in order.
    let mut b = connect(&server, &bob, Some(18)).await;
    for seq in 19..=23 {
        assert_eq!(b.expect("message").await["seq"], seq);
    }
    b.quiet_for(Duration::from_millis(300)).await;
    // Live traffic continues after the replay with the next sequence number.
    a.send_message("live", json!(["bob"]), "after the replay").await;
    assert_eq!(b.expect("message").await["seq"], 24);
}

#[tokio::test]
async fn an_entry_whose_live_copy_was_lost_is_read_from_the_store_and_order_holds() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = server.session(&app.ticket("alice")).await;
    let bob = server.session(&app.ticket("bob")).await;
    let mut a = connect(&server, &alice, None).await;
    let mut b = connect(&server, &bob, None).await;
    a.send_message("r1", json!(["bob"]), "one").await;
    assert_eq!(b.expect("message").await["seq"], 1);
    // Committed without any fan-out: what a publish lost between nodes looks like to bob's connection.
    let lost = callbox_server::store::MessageRecord {
        id: uuid::Uuid::now_v7().to_string(),
        app_key: app.key.clone(),
        sender_id: "carol".into(),
        recipient_ids: vec!["bob".into()],
        text: "two".into(),
        headers: "{}".into(),
        created_at: chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap(),
    };
    assert_eq!(server.raw_store().await.append_message(&lost).await.unwrap(), [2]);
    a.send_message("r3", json!(["bob"]), "three").await;
    let second = b.expect("message").await;
    assert_eq!((second["seq"].as_u64(), second["text"].as_str()), (Some(2), Some("two")));
    assert_eq!(second["messageId"], lost.id.as_str());
    let third = b.expect("message").await;
    assert_eq!((third["seq"].as_u64(), third["text"].as_str()), (Some(3), Some("three")));
}

#[tokio::test]
async fn unknown_recipients_and_users_of_other_apps_fail_alike_when_the_app_has_platform_users() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let other = server.create_app(json!({})).await;
    let alice = server.session(&app.ticket("alice")).await;
    server.session(&app.ticket("bob")).await; // bob is known: he has had a session
    server.session(&other.ticket("carol")).await; // carol exists, in another application
    assert_eq!(server.sign_up(&app.key, "dave", "correct horse battery").await.status(), 200);
    let mut a = connect(&server, &alice, None).await;
    a.send(json!({ "type": "message.send", "ref": "r", "recipients": ["bob", "ghost", "carol", "dave"], "text": "x" }))
        .await;
    let accepted = a.expect("message.accepted").await;
    assert_eq!(accepted["recipientIds"], json!(["bob", "dave"]));
    let mut failed = Vec::new();
    for _ in 0..2 {
        let receipt = a.expect("message.receipt").await;
        assert_eq!(receipt["status"], "failed");
        assert_eq!(receipt["reason"], "unknown_user");
        assert_eq!(receipt["messageId"], accepted["messageId"]);
        failed.push(receipt["recipientId"].as_str().unwrap().to_owned());
        // Identical shape for both: nothing tells carol apart from a made-up id.
        let keys: Vec<&String> = receipt.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 6, "{receipt}");
    }
    assert_eq!(failed, ["ghost", "carol"]);
    // Carol's inbox in the other app got nothing.
    let carol = server.session(&other.ticket("carol")).await;
    let mut c = connect(&server, &carol, None).await;
    assert_eq!(c.ready["lastSeq"], 0);
    c.quiet_for(Duration::from_millis(200)).await;

    // Without platform-managed users the app's backend owns the user list: every id is stored for delivery.
    server.patch_app(&app.key, json!({ "platformUserAuth": false })).await;
    let accepted = a.send_message("r2", json!(["ghost"]), "kept for later").await;
    assert_eq!(accepted["recipientIds"], json!(["ghost"]));
    a.quiet_for(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn messaging_frames_need_the_messaging_capability() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let response =
        server.exchange_with(&format!("User {}", app.ticket("alice")), json!({ "services": { "voip": true } })).await;
    let body: Value = response.json().await.unwrap();
    let session = Session { id: body["id"].as_str().unwrap().into(), secret: body["secret"].as_str().unwrap().into() };
    let mut a = connect(&server, &session, None).await;
    assert!(!a.ready["capabilities"].as_array().unwrap().contains(&json!("messaging")));
    a.send(json!({ "type": "message.send", "ref": "r", "recipients": ["bob"], "text": "x" })).await;
    let error = a.expect("error").await;
    assert_error_frame(&error, "capability_not_granted");
    assert_eq!(error["ref"], "r");
    a.send(json!({ "type": "message.received", "messageId": "m", "seq": 1 })).await;
    assert_error_frame(&a.expect("error").await, "capability_not_granted");
    // The connection stays.
    a.send(json!({ "type": "ping" })).await;
    a.expect("pong").await;
}

#[tokio::test]
async fn bad_authentication_is_refused_with_an_error_frame_and_a_close_code() {
    let (server, _dir) = start_realtime(fast()).await;
    let app = server.create_app(json!({})).await;
    let alice = server.session(&app.ticket("alice")).await;

    // Not a WebSocket upgrade: the §7 JSON.
    let response = server.http.get(server.url("/v1/realtime")).send().await.unwrap();
    assert_error(response, 400, "malformed_request").await;

    let refused = |frame: Value| {
        let server = &server;
        async move {
            let (mut ws, _nonce) = open_socket(server).await;
            ws.send(Message::Text(frame.to_string().into())).await.unwrap();
            Rt { ws, ready: Value::Null }.closed_within(Duration::from_secs(5)).await
        }
    };
    // Signed for another connection's nonce (a replayed auth frame).
    assert_closed(&refused(auth_frame(&alice, "another-connections-nonce", None)).await, 4401, "bad_signature");
    // A wrong secret.
    let forged = Session { id: alice.id.clone(), secret: Secret::from_bytes(&[7u8; 32]).unwrap().to_base64() };
    let (mut ws, nonce) = open_socket(&server).await;
    ws.send(Message::Text(auth_frame(&forged, &nonce, None).to_string().into())).await.unwrap();
    assert_closed(&Rt { ws, ready: Value::Null }.closed_within(Duration::from_secs(5)).await, 4401, "bad_signature");
    // An old timestamp.
    let (mut ws, nonce) = open_socket(&server).await;
    let mut frame = auth_frame(&alice, &nonce, None);
    frame["timestamp"] = json!("2001-01-01T00:00:00Z");
    ws.send(Message::Text(frame.to_string().into())).await.unwrap();
    assert_closed(&Rt { ws, ready: Value::Null }.closed_within(Duration::from_secs(5)).await, 4401, "timestamp_skew");
    // An unknown session.
    let unknown = Session { id: "0190c2a4-0000-7000-8000-000000000000".into(), secret: alice.secret.clone() };
    let (mut ws, nonce) = open_socket(&server).await;
    ws.send(Message::Text(auth_frame(&unknown, &nonce, None).to_string().into())).await.unwrap();
    assert_closed(&Rt { ws, ready: Value::Null }.closed_within(Duration::from_secs(5)).await, 4401, "session_revoked");
    // Missing fields, a first frame that is not auth, invalid JSON, a binary frame.
    assert_closed(&refused(json!({ "type": "auth", "sessionId": alice.id })).await, 4401, "malformed_authorization");
    assert_closed(&refused(json!({ "type": "ping" })).await, 4401, "missing_authorization");
    let (mut ws, _) = open_socket(&server).await;
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_closed(
        &Rt { ws, ready: Value::Null }.closed_within(Duration::from_secs(5)).await,
        4400,
        "malformed_request",
    );
    let (mut ws, _) = open_socket(&server).await;
    ws.send(Message::Binary(vec![1u8, 2, 3].into())).await.unwrap();
    assert_closed(
        &Rt { ws, ready: Value::Null }.closed_within(Duration::from_secs(5)).await,
        4400,
        "malformed_request",
    );
    // No auth frame at all within the (1 s) limit.
    let (ws, _) = open_socket(&server).await;
    let closed = Rt { ws, ready: Value::Null }.closed_within(Duration::from_secs(5)).await;
    assert_eq!(closed.code, Some(4408), "{closed:?}");
    assert_error_frame(closed.error.as_ref().unwrap(), "missing_authorization");
    // A revoked session.
    server.signed(Method::DELETE, &format!("/v1/instances/id/{}", alice.id), None, &alice).await;
    let (mut ws, nonce) = open_socket(&server).await;
    ws.send(Message::Text(auth_frame(&alice, &nonce, None).to_string().into())).await.unwrap();
    assert_closed(&Rt { ws, ready: Value::Null }.closed_within(Duration::from_secs(5)).await, 4401, "session_revoked");
    // A page of an origin the app does not allow.
    let bob = server.session(&app.ticket("bob")).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url(&server)).unwrap();
    request.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let nonce = read_json(&mut ws).await.unwrap()["nonce"].as_str().unwrap().to_owned();
    ws.send(Message::Text(auth_frame(&bob, &nonce, None).to_string().into())).await.unwrap();
    assert_closed(
        &Rt { ws, ready: Value::Null }.closed_within(Duration::from_secs(5)).await,
        4403,
        "origin_not_allowed",
    );
}

#[tokio::test]
async fn every_bad_frame_gets_a_precise_error_and_an_oversized_frame_closes() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = server.session(&app.ticket("alice")).await;
    server.session(&app.ticket("bob")).await;
    let mut a = connect(&server, &alice, None).await;
    let limits = RealtimeConfig::default();

    let cases: Vec<(Message, &str, &str)> = vec![
        (Message::Text("{oops".into()), "malformed_request", "not valid JSON"),
        (Message::Text("[1,2]".into()), "malformed_request", "JSON object"),
        (Message::Text(r#"{"type":"dance"}"#.into()), "malformed_request", "unknown frame type"),
        (Message::Text(r#"{"text":"no type"}"#.into()), "malformed_request", "type"),
        (Message::Binary(vec![0u8; 10].into()), "malformed_request", "binary"),
        (Message::Text(r#"{"type":"auth"}"#.into()), "malformed_request", "already authenticated"),
        (Message::Text(r#"{"type":"message.send","text":"x"}"#.into()), "malformed_request", "recipients"),
        (
            Message::Text(r#"{"type":"message.send","recipients":[],"text":"x"}"#.into()),
            "malformed_request",
            "at least one",
        ),
        (
            Message::Text(r#"{"type":"message.send","recipients":[5],"text":"x"}"#.into()),
            "malformed_request",
            "recipients",
        ),
        (
            Message::Text(r#"{"type":"message.send","recipients":[""],"text":"x"}"#.into()),
            "malformed_request",
            "recipient id",
        ),
        (Message::Text(r#"{"type":"message.send","recipients":["bob"]}"#.into()), "malformed_request", "text"),
        (
            Message::Text(r#"{"type":"message.send","recipients":["bob"],"text":"x","headers":[1]}"#.into()),
            "malformed_request",
            "headers",
        ),
        (Message::Text(r#"{"type":"message.received","seq":1}"#.into()), "malformed_request", "messageId"),
    ];
    for (message, reason, hint) in cases {
        let shown = format!("{message:?}");
        a.send_raw(message).await;
        let error = a.expect("error").await;
        assert_error_frame(&error, reason);
        assert!(error["message"].as_str().unwrap().contains(hint), "{shown}: {error}");
    }
    let too_many: Vec<String> = (0..=limits.max_recipients).map(|n| format!("u{n}")).collect();
    a.send(json!({ "type": "message.send", "ref": "many", "recipients": too_many, "text": "x" })).await;
    let error = a.expect("error").await;
    assert_error_frame(&error, "payload_too_large");
    assert!(error["message"].as_str().unwrap().contains("recipients"), "{error}");
    assert_eq!(error["ref"], "many");
    a.send(json!({ "type": "message.send", "recipients": ["bob"], "text": "x".repeat(limits.max_text_bytes + 1) }))
        .await;
    assert_error_frame(&a.expect("error").await, "payload_too_large");
    let headers = json!({ "h": "x".repeat(limits.max_headers_bytes) });
    a.send(json!({ "type": "message.send", "recipients": ["bob"], "text": "x", "headers": headers })).await;
    assert_error_frame(&a.expect("error").await, "payload_too_large");
    // Still connected after all of it.
    a.send(json!({ "type": "ping" })).await;
    a.expect("pong").await;
    // A frame over the frame limit closes the connection with 4413.
    a.send(json!({ "type": "ping", "pad": "x".repeat(limits.max_frame_bytes) })).await;
    assert_closed(&a.closed_within(Duration::from_secs(5)).await, 4413, "payload_too_large");
}

#[tokio::test]
async fn a_flood_beyond_the_session_rate_is_refused_with_retry_after_and_the_connection_stays() {
    let (server, _dir) =
        start_realtime(RealtimeConfig { messages_per_second: 1, message_burst: 3, ..RealtimeConfig::default() }).await;
    let app = server.create_app(json!({})).await;
    let alice = server.session(&app.ticket("alice")).await;
    server.session(&app.ticket("bob")).await;
    let mut a = connect(&server, &alice, None).await;
    // A second connection of the same session shares the budget.
    let mut a2 = connect(&server, &alice, None).await;
    for n in 0..2 {
        a.send_message(&format!("r{n}"), json!(["bob"]), "x").await;
        a2.expect("message").await;
    }
    a2.send_message("r2", json!(["bob"]), "x").await;
    a.expect("message").await;
    a.send(json!({ "type": "message.send", "ref": "over", "recipients": ["bob"], "text": "x" })).await;
    let error = a.expect("error").await;
    assert_error_frame(&error, "rate_limited");
    assert_eq!(error["ref"], "over");
    assert!(error["retryAfter"].as_u64().is_some_and(|s| s >= 1), "{error}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.send_message("later", json!(["bob"]), "x").await;
}

#[tokio::test]
async fn the_server_pings_and_closes_a_silent_connection() {
    let (server, _dir) = start_realtime(fast()).await;
    let app = server.create_app(json!({})).await;
    let alice = server.session(&app.ticket("alice")).await;
    let mut a = connect(&server, &alice, None).await;
    assert_eq!(a.ready["heartbeatSeconds"], 1);
    // A client that answers stays past the idle limit.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let frame = read_json(&mut a.ws).await.unwrap();
        assert_eq!(frame["type"], "ping");
        a.send(json!({ "type": "pong" })).await;
    }
    // One that stops answering is closed within the idle limit (3 s) plus a heartbeat.
    let silent_since = Instant::now();
    let closed = a.closed_within(Duration::from_secs(6)).await;
    assert_eq!(closed.code, Some(4408), "{closed:?}");
    assert_eq!(closed.word, "heartbeat_timeout");
    assert!(silent_since.elapsed() >= Duration::from_secs(2), "closed too early");
}

#[tokio::test]
async fn a_reader_that_never_drains_is_closed_and_the_sender_goes_on() {
    let (server, _dir) = start_realtime(RealtimeConfig {
        outbound_queue: 4,
        write_timeout_seconds: 1,
        messages_per_second: 100_000,
        message_burst: 100_000,
        ..RealtimeConfig::default()
    })
    .await;
    let app = server.create_app(json!({})).await;
    let alice = server.session(&app.ticket("alice")).await;
    let bob = server.session(&app.ticket("bob")).await;
    let mut a = connect(&server, &alice, None).await;
    let b = connect(&server, &bob, None).await; // never read again
    let text = "x".repeat(8000);
    let hub = &server.callbox.realtime();
    let started = Instant::now();
    let mut sent = 0;
    while !hub.local_connections(&app.key, "bob").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "bob's connection was not closed after {sent} messages");
        for _ in 0..50 {
            a.send(json!({ "type": "message.send", "recipients": ["bob"], "text": text })).await;
        }
        for _ in 0..50 {
            a.expect("message.accepted").await;
        }
        sent += 50;
    }
    drop(b);
    // Nothing was lost: bob resumes from the store.
    let mut b = connect(&server, &bob, Some(0)).await;
    for seq in 1..=sent {
        assert_eq!(b.expect("message").await["seq"], seq);
    }
}

#[tokio::test]
async fn retention_purges_by_age_and_by_count_per_user() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = server.session(&app.ticket("alice")).await;
    server.session(&app.ticket("bob")).await;
    server.session(&app.ticket("carol")).await;
    let mut a = connect(&server, &alice, None).await;
    for n in 0..5 {
        a.send_message(&format!("r{n}"), json!(["bob"]), &format!("m{n}")).await;
    }
    a.send_message("c", json!(["carol"]), "for carol").await;
    let store = server.raw_store().await;
    // By count: bob keeps his newest 2; carol's one entry stays.
    let removed = store.purge_inbox(Utc::now() - chrono::Duration::days(1), 2).await.unwrap();
    assert_eq!(removed, 3);
    let left = store.read_inbox(&app.key, "bob", 0, 100, false).await.unwrap();
    assert_eq!(left.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(store.read_inbox(&app.key, "carol", 0, 100, false).await.unwrap().len(), 1);
    // By age: everything older than now.
    let removed = store.purge_inbox(Utc::now() + chrono::Duration::seconds(1), 1000).await.unwrap();
    assert_eq!(removed, 3);
    assert!(store.read_inbox(&app.key, "bob", 0, 100, false).await.unwrap().is_empty());
    // Sequence numbers go on from where they were.
    a.send_message("after", json!(["bob"]), "after the purge").await;
    let mut b = connect(&server, &server.session(&app.ticket("bob")).await, Some(5)).await;
    assert_eq!(b.expect("message").await["seq"], 6);
}

/// The inbox operations of a store, whatever the engine: sequence numbers, atomic confirmation with exactly one
/// receipt, reads with and without confirmed entries, retention.
pub async fn inbox_conformance(store: &dyn callbox_server::store::Store, app_key: &str) {
    use callbox_server::store::{InboxItem, MessageRecord, StoreError};
    let message = |text: &str, to: &[&str]| MessageRecord {
        id: uuid::Uuid::now_v7().to_string(),
        app_key: app_key.to_owned(),
        sender_id: "alice".into(),
        recipient_ids: to.iter().map(|r| (*r).to_owned()).collect(),
        text: text.into(),
        headers: r#"{"k":1}"#.into(),
        created_at: chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap(),
    };
    let first = message("one", &["bob", "carol"]);
    assert_eq!(store.append_message(&first).await.unwrap(), [1, 1]);
    let second = message("two", &["carol", "bob"]);
    assert_eq!(store.append_message(&second).await.unwrap(), [2, 2], "in the caller's order");
    assert_eq!(store.inbox_last_seq(app_key, "bob").await.unwrap(), 2);
    assert_eq!(store.inbox_last_seq(app_key, "nobody").await.unwrap(), 0);
    let read = store.read_inbox(app_key, "bob", 0, 10, false).await.unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].item, InboxItem::Message(first.clone()), "stored exactly");

    let (sender, receipt) = store.confirm_delivery(app_key, "bob", 1, &first.id, Utc::now()).await.unwrap().unwrap();
    assert_eq!(sender, "alice");
    assert_eq!(receipt.seq, 1, "the first entry of alice's inbox");
    assert!(matches!(&receipt.item, InboxItem::Receipt { message_id, recipient_id, .. }
        if message_id == &first.id && recipient_id == "bob"));
    assert_eq!(store.confirm_delivery(app_key, "bob", 1, &first.id, Utc::now()).await.unwrap(), None, "once");
    assert!(matches!(
        store.confirm_delivery(app_key, "bob", 1, &second.id, Utc::now()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.confirm_delivery(app_key, "bob", 9, &first.id, Utc::now()).await,
        Err(StoreError::NotFound)
    ));
    let unconfirmed = store.read_inbox(app_key, "bob", 0, 10, true).await.unwrap();
    assert_eq!(unconfirmed.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    assert_eq!(store.read_inbox(app_key, "alice", 0, 10, false).await.unwrap(), [receipt]);
    assert_eq!(store.read_inbox(app_key, "bob", 1, 10, false).await.unwrap().len(), 1, "after a cursor");

    // Retention: keep one per user (bob 2 → 1, carol 2 → 1, alice 1). Purges are store-wide: a shared database
    // may hold other tests' entries too, so the counts are lower bounds.
    assert!(store.purge_inbox(Utc::now() - chrono::Duration::days(1), 1).await.unwrap() >= 2);
    assert_eq!(store.read_inbox(app_key, "bob", 0, 10, false).await.unwrap()[0].seq, 2);
    assert_eq!(store.read_inbox(app_key, "alice", 0, 10, false).await.unwrap().len(), 1);
    assert_eq!(store.read_inbox(app_key, "carol", 0, 10, false).await.unwrap()[0].seq, 2);
    assert!(store.purge_inbox(Utc::now() + chrono::Duration::seconds(1), 1000).await.unwrap() >= 3);
    assert!(store.read_inbox(app_key, "alice", 0, 10, false).await.unwrap().is_empty());
    assert!(store.read_inbox(app_key, "bob", 0, 10, false).await.unwrap().is_empty());
    assert_eq!(store.append_message(&message("three", &["bob"])).await.unwrap(), [3], "never reused");
    assert_eq!(store.known_users(app_key, &["bob".into(), "zed".into()]).await.unwrap(), ["bob"], "bob has an inbox");
}

#[tokio::test]
async fn the_sqlite_store_keeps_inboxes_as_documented() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    inbox_conformance(&*server.raw_store().await, &app.key).await;
    // Writes committed together each get their own answer, also when one of them fails (an unknown app): the
    // others are redone alone and succeed.
    let store = server.raw_store().await;
    let writes = (0..40).map(|n| {
        let store = store.clone();
        let app_key = if n % 10 == 3 { "no-such-app".to_owned() } else { app.key.clone() };
        tokio::spawn(async move {
            let message = callbox_server::store::MessageRecord {
                id: uuid::Uuid::now_v7().to_string(),
                app_key,
                sender_id: "alice".into(),
                recipient_ids: vec![format!("group{n}")],
                text: "x".into(),
                headers: "{}".into(),
                created_at: Utc::now(),
            };
            store.append_message(&message).await
        })
    });
    let outcomes = futures_util::future::join_all(writes).await;
    for (n, outcome) in outcomes.into_iter().enumerate() {
        match outcome.unwrap() {
            Ok(seqs) => assert!(n % 10 != 3 && seqs == [1], "write {n}: {seqs:?}"),
            Err(error) => assert!(n % 10 == 3, "write {n} failed: {error}"),
        }
    }
}

#[tokio::test]
async fn concurrent_writes_to_shared_inboxes_get_contiguous_sequences_and_each_confirmation_its_own_answer() {
    // Many appends to the same two users, committed in groups: every user's sequence numbers are 1..=N with no
    // gap and no duplicate, each message's copy sits at the seq it was answered with, and confirmations in one
    // group (first, repeated, wrong id, unknown seq) each get the answer they would get alone.
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let store = server.raw_store().await;
    let sends = (0..120).map(|n| {
        let store = store.clone();
        let app_key = app.key.clone();
        tokio::spawn(async move {
            let recipients = if n % 3 == 0 { vec!["bob".into(), "carol".into()] } else { vec!["bob".into()] };
            let message = callbox_server::store::MessageRecord {
                id: format!("m{n}"),
                app_key,
                sender_id: "alice".into(),
                recipient_ids: recipients,
                text: format!("text {n}"),
                headers: "{}".into(),
                created_at: Utc::now(),
            };
            (message.clone(), store.append_message(&message).await.unwrap())
        })
    });
    let sent: Vec<_> = futures_util::future::join_all(sends).await.into_iter().map(Result::unwrap).collect();
    let mut bob_seqs: Vec<u64> = sent.iter().map(|(_, seqs)| seqs[0]).collect();
    bob_seqs.sort_unstable();
    assert_eq!(bob_seqs, (1..=120).collect::<Vec<u64>>());
    let mut carol_seqs: Vec<u64> = sent.iter().filter(|(_, s)| s.len() == 2).map(|(_, s)| s[1]).collect();
    carol_seqs.sort_unstable();
    assert_eq!(carol_seqs, (1..=40).collect::<Vec<u64>>());
    let inbox = store.read_inbox(&app.key, "bob", 0, 200, false).await.unwrap();
    for (message, seqs) in &sent {
        let entry = inbox.iter().find(|e| e.seq == seqs[0]).unwrap();
        match &entry.item {
            callbox_server::store::InboxItem::Message(stored) => assert_eq!(stored.id, message.id),
            other => panic!("{other:?}"),
        }
    }
    // Confirmations of bob's entries, all at once: each entry twice, one wrong id, one unknown seq.
    let mut confirms = Vec::new();
    for (message, seqs) in sent.iter().take(30) {
        for _ in 0..2 {
            let (store, app_key, id, seq) = (store.clone(), app.key.clone(), message.id.clone(), seqs[0]);
            confirms.push(tokio::spawn(async move {
                (seq, store.confirm_delivery(&app_key, "bob", seq, &id, Utc::now()).await)
            }));
        }
    }
    let (wrong_store, wrong_app) = (store.clone(), app.key.clone());
    let wrong_seq = sent[40].1[0];
    let wrong =
        tokio::spawn(
            async move { wrong_store.confirm_delivery(&wrong_app, "bob", wrong_seq, "m-other", Utc::now()).await },
        );
    let (unknown_store, unknown_app) = (store.clone(), app.key.clone());
    let unknown =
        tokio::spawn(async move { unknown_store.confirm_delivery(&unknown_app, "bob", 999, "m1", Utc::now()).await });
    let mut firsts: HashMap<u64, usize> = HashMap::new();
    let mut receipt_seqs = Vec::new();
    for outcome in futures_util::future::join_all(confirms).await {
        let (seq, outcome) = outcome.unwrap();
        if let Some((sender, entry)) = outcome.unwrap() {
            assert_eq!(sender, "alice");
            *firsts.entry(seq).or_default() += 1;
            receipt_seqs.push(entry.seq);
        }
    }
    assert_eq!(firsts.len(), 30, "every entry confirmed once");
    assert!(firsts.values().all(|n| *n == 1), "a repeated confirmation is not first: {firsts:?}");
    receipt_seqs.sort_unstable();
    assert_eq!(receipt_seqs, (1..=30).collect::<Vec<u64>>(), "alice's receipts are contiguous");
    assert!(matches!(wrong.await.unwrap(), Err(callbox_server::store::StoreError::NotFound)));
    assert!(matches!(unknown.await.unwrap(), Err(callbox_server::store::StoreError::NotFound)));
    assert_eq!(store.read_inbox(&app.key, "alice", 0, 100, false).await.unwrap().len(), 30);
}

// ----- revocation reaches the socket -------------------------------------------------------------------------

async fn revocation_case(
    platform_user: bool,
    revoke: impl AsyncFnOnce(&Server, &App, &Session),
    reason: &str,
    code: u16,
) {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let bob = if platform_user {
        assert_eq!(server.sign_up(&app.key, "bob", "correct horse battery").await.status(), 200);
        let ticket: Value = server.log_in(&app.key, "bob", "correct horse battery").await.json().await.unwrap();
        server.session(ticket["authorization"].as_str().unwrap()).await
    } else {
        server.session(&app.ticket("bob")).await
    };
    let b = connect(&server, &bob, None).await;
    let started = Instant::now();
    revoke(&server, &app, &bob).await;
    let closed = b.closed_within(Duration::from_secs(1)).await;
    assert_closed(&closed, code, reason);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn revoking_the_session_from_the_admin_api_closes_its_socket() {
    revocation_case(
        false,
        async |server, app, bob| {
            let path = format!("/admin/v1/apps/{}/sessions/{}", app.key, bob.id);
            assert_eq!(server.admin(Method::DELETE, &path, None).await.status(), 204);
        },
        "session_revoked",
        4401,
    )
    .await;
}

#[tokio::test]
async fn ending_the_session_with_its_own_delete_closes_its_socket() {
    revocation_case(
        false,
        async |server, _app, bob| {
            let path = format!("/v1/instances/id/{}", bob.id);
            assert!(server.signed(Method::DELETE, &path, None, bob).await.status().is_success());
        },
        "session_revoked",
        4401,
    )
    .await;
}

#[tokio::test]
async fn revoking_the_users_sessions_closes_the_socket() {
    revocation_case(
        false,
        async |server, app, _bob| {
            let path = format!("/admin/v1/apps/{}/sessions/revoke", app.key);
            assert_eq!(server.admin(Method::POST, &path, Some(json!({ "userId": "bob" }))).await.status(), 200);
        },
        "session_revoked",
        4401,
    )
    .await;
}

#[tokio::test]
async fn revoking_sessions_issued_before_a_time_closes_older_sockets_only() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let old = server.session(&app.ticket("bob")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let cut = Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let new = server.session(&app.ticket("bob")).await;
    let b_old = connect(&server, &old, None).await;
    let mut b_new = connect(&server, &new, None).await;
    let path = format!("/admin/v1/apps/{}/sessions/revoke", app.key);
    let before = callbox_core::time::format_js_iso(cut);
    assert_eq!(server.admin(Method::POST, &path, Some(json!({ "issuedBefore": before }))).await.status(), 200);
    assert_closed(&b_old.closed_within(Duration::from_secs(1)).await, 4401, "session_revoked");
    b_new.send(json!({ "type": "ping" })).await;
    b_new.expect("pong").await;
}

#[tokio::test]
async fn disabling_the_user_closes_the_socket_with_user_disabled() {
    revocation_case(
        true,
        async |server, app, _bob| {
            let path = format!("/admin/v1/apps/{}/users/bob/disable", app.key);
            assert_eq!(server.admin(Method::POST, &path, None).await.status(), 200);
        },
        "user_disabled",
        4403,
    )
    .await;
}

#[tokio::test]
async fn deleting_the_app_closes_the_socket_with_unknown_application() {
    revocation_case(
        false,
        async |server, app, _bob| {
            let path = format!("/admin/v1/apps/{}", app.key);
            assert_eq!(server.admin(Method::DELETE, &path, None).await.status(), 204);
        },
        "unknown_application",
        4401,
    )
    .await;
}

#[tokio::test]
async fn expiry_closes_the_socket_and_a_renewal_over_http_keeps_it() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let bob = server.session(&app.ticket("bob")).await;
    let carol = server.session(&app.ticket("carol")).await;
    // Both 24-hour sessions end in 1.5 s: the server's clock moves to just before their end.
    server.advance(chrono::Duration::hours(24) - chrono::Duration::milliseconds(1500));
    let b = connect(&server, &bob, None).await;
    let mut c = connect(&server, &carol, None).await;
    // Carol renews over HTTP before the expiry: her socket stays.
    let renewed = server.signed(Method::POST, "/v1/instance", Some(json!({})), &carol).await;
    assert_eq!(renewed.status(), 200);
    let started = Instant::now();
    assert_closed(&b.closed_within(Duration::from_secs(3)).await, 4401, "session_expired");
    assert!(started.elapsed() < Duration::from_millis(2500));
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.send(json!({ "type": "ping" })).await;
    c.expect("pong").await;
}

#[tokio::test]
async fn the_operator_lists_and_drops_a_users_connections() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let bob = server.session(&app.ticket("bob")).await;
    let b = connect(&server, &bob, None).await;
    let path = format!("/admin/v1/apps/{}/users/bob/connections", app.key);
    let listed: Value = server.admin(Method::GET, &path, None).await.json().await.unwrap();
    let connections = listed["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 1, "{listed}");
    assert_eq!(connections[0]["sessionId"], bob.id.as_str());
    assert_eq!(connections[0]["messaging"], true);
    let dropped = server.admin(Method::DELETE, &path, None).await;
    assert_eq!(dropped.status(), 200);
    assert_eq!(dropped.json::<Value>().await.unwrap()["dropped"], 1);
    assert_closed(&b.closed_within(Duration::from_secs(1)).await, 4503, "service_unavailable");
    // The session is still valid: bob reconnects.
    connect(&server, &bob, None).await;
    // Unknown app: 404.
    let missing = server.admin(Method::GET, "/admin/v1/apps/nope/users/bob/connections", None).await;
    assert_error(missing, 404, "not_found").await;
    // The gauge is on /metrics.
    let metrics = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("callbox_realtime_connections"), "{metrics}");
}

// ----- two nodes on PostgreSQL + Redis -----------------------------------------------------------------------

mod two_nodes {
    use super::*;
    use crate::scale::{engines, two_nodes, SERIAL};

    #[tokio::test]
    async fn alice_on_a_and_bob_on_b_exchange_messages_and_receipts_and_bob_resumes_on_a() {
        let Some(engines) = engines() else { return };
        let _serial = SERIAL.lock().await;
        let (a, b, _dirs) = two_nodes(&engines).await;
        assert!(a.callbox.realtime().clustered() && b.callbox.realtime().clustered());
        let app = a.create_app(json!({})).await;
        let alice = a.session(&app.ticket("alice")).await;
        let bob = b.session(&app.ticket("bob")).await;
        let mut alice_a = connect(&a, &alice, None).await;
        let mut alice_b = connect(&b, &alice, None).await; // alice's second device, on the other node
        let mut bob_b = connect(&b, &bob, None).await;

        let mut ids = Vec::new();
        for n in 0..10 {
            let accepted = alice_a.send_message(&format!("r{n}"), json!(["bob"]), &format!("m{n}")).await;
            ids.push(accepted["messageId"].clone());
        }
        for (n, id) in ids.iter().enumerate() {
            let incoming = bob_b.expect("message").await;
            assert_eq!(&incoming["messageId"], id, "in order across nodes");
            assert_eq!(incoming["seq"], n as u64 + 1);
            assert_eq!(&alice_b.expect("message").await["messageId"], id, "the other device, on node B");
            bob_b.send(json!({ "type": "message.received", "messageId": id, "seq": n + 1 })).await;
        }
        // Confirmations are written independently, so receipts come in their commit order (alice's seq), which
        // need not be the order of the messages.
        let mut receipted = Vec::new();
        for n in 0..ids.len() {
            let receipt = alice_a.expect("message.receipt").await;
            assert_eq!(receipt["status"], "delivered");
            assert_eq!(receipt["seq"], n as u64 + 1);
            receipted.push(receipt["messageId"].clone());
        }
        receipted.sort_by_key(|id| id.to_string());
        let mut expected = ids.clone();
        expected.sort_by_key(|id| id.to_string());
        assert_eq!(receipted, expected);
        // Bob replies from B; alice's devices on both nodes get it.
        bob_b.send_message("reply", json!(["alice"]), "hi alice").await;
        for device in [&mut alice_a, &mut alice_b] {
            loop {
                let frame = device.next().await;
                if frame["type"] == "message" && frame["senderId"] == "bob" {
                    assert_eq!(frame["text"], "hi alice");
                    break;
                }
            }
        }
        // Bob goes offline on B; three more; he comes back on A and resumes after what he saw.
        drop(bob_b);
        for n in 0..3 {
            alice_a.send_message(&format!("o{n}"), json!(["bob"]), &format!("offline {n}")).await;
        }
        let mut bob_a = connect(&a, &bob, Some(10)).await;
        for n in 0..3 {
            let incoming = bob_a.expect("message").await;
            assert_eq!(incoming["text"], format!("offline {n}"));
            assert_eq!(incoming["seq"], 11 + n);
        }
    }

    #[tokio::test]
    async fn the_postgres_store_keeps_inboxes_as_documented() {
        let Some(engines) = engines() else { return };
        let _serial = SERIAL.lock().await;
        let (a, _b, _dirs) = two_nodes(&engines).await;
        let app = a.create_app(json!({})).await;
        inbox_conformance(&*a.raw_store().await, &app.key).await;
    }

    #[tokio::test]
    async fn a_revocation_on_node_a_closes_the_socket_on_node_b_within_a_second() {
        let Some(engines) = engines() else { return };
        let _serial = SERIAL.lock().await;
        let (a, b, _dirs) = two_nodes(&engines).await;
        let app = a.create_app(json!({})).await;
        let bob = b.session(&app.ticket("bob")).await;
        let carol = b.session(&app.ticket("carol")).await;
        let bob_b = connect(&b, &bob, None).await;
        let carol_b = connect(&b, &carol, None).await;

        let started = Instant::now();
        let path = format!("/admin/v1/apps/{}/sessions/{}", app.key, bob.id);
        assert_eq!(a.admin(Method::DELETE, &path, None).await.status(), 204);
        assert_closed(&bob_b.closed_within(Duration::from_secs(1)).await, 4401, "session_revoked");
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());

        // A user revoke on A, too.
        let started = Instant::now();
        let path = format!("/admin/v1/apps/{}/sessions/revoke", app.key);
        assert_eq!(a.admin(Method::POST, &path, Some(json!({ "userId": "carol" }))).await.status(), 200);
        assert_closed(&carol_b.closed_within(Duration::from_secs(1)).await, 4401, "session_revoked");
        assert!(started.elapsed() < Duration::from_secs(1));

        // Deleting the app on A closes its sockets on B.
        let dave = b.session(&app.ticket("dave")).await;
        let dave_b = connect(&b, &dave, None).await;
        assert_eq!(a.admin(Method::DELETE, &format!("/admin/v1/apps/{}", app.key), None).await.status(), 204);
        assert_closed(&dave_b.closed_within(Duration::from_secs(1)).await, 4401, "unknown_application");
    }
}

/// The dashboard's numbers: live connections of the app on this node, message copies of the last hour and how
/// many were confirmed; another app's traffic is not counted; an unknown app is 404.
#[tokio::test]
async fn the_admin_api_reports_an_apps_live_connections_and_messages_of_the_last_hour() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let other = server.create_app(json!({})).await;
    let activity = |key: String| {
        let server = &server;
        async move {
            let response = server.admin(Method::GET, &format!("/admin/v1/apps/{key}/realtime"), None).await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(
        activity(app.key.clone()).await,
        json!({ "liveConnections": 0, "messagesLastHour": 0, "deliveredLastHour": 0 })
    );
    let alice = server.session(&app.ticket("alice")).await;
    let bob = server.session(&app.ticket("bob")).await;
    let mut a = connect(&server, &alice, None).await;
    let mut b = connect(&server, &bob, None).await;
    let stranger = server.session(&other.ticket("mallory")).await;
    let _s = connect(&server, &stranger, None).await;
    a.send_message("r1", json!(["bob"]), "one").await;
    a.send_message("r2", json!(["bob"]), "two").await;
    let first = b.expect("message").await;
    b.send(json!({ "type": "message.received", "messageId": first["messageId"], "seq": first["seq"] })).await;
    a.expect("message.receipt").await;
    assert_eq!(
        activity(app.key.clone()).await,
        json!({ "liveConnections": 2, "messagesLastHour": 2, "deliveredLastHour": 1 })
    );
    // An hour later, those messages no longer count.
    server.advance(chrono::Duration::minutes(61));
    assert_eq!(activity(app.key.clone()).await["messagesLastHour"], 0);
    let missing = server.admin(Method::GET, "/admin/v1/apps/no-such-app/realtime", None).await;
    assert_error(missing, 404, "not_found").await;
}

/// Authenticated connections move into the realtime budget; when it is full for the address, the new one is
/// refused with a last error frame and 4429 `rate_limited`, the ones already in it stay, and a place freed by a
/// close is taken again.
#[tokio::test]
async fn a_full_realtime_budget_refuses_the_next_authenticated_connection() {
    use callbox_server::config::{Config, ConnectionConfig};
    let dir = TempDir::new().unwrap();
    let connections = ConnectionConfig { realtime_max_per_address: Some(1), ..ConnectionConfig::default() };
    let server = start_with(Config { connections, ..test_config(dir.path()) }).await;
    let app = server.create_app(json!({})).await;
    let alice = server.session(&app.ticket("alice")).await;
    let bob = server.session(&app.ticket("bob")).await;
    let mut first = connect(&server, &alice, None).await;

    let (mut ws, nonce) = open_socket(&server).await;
    ws.send(Message::Text(auth_frame(&bob, &nonce, None).to_string().into())).await.unwrap();
    assert_closed(&Rt { ws, ready: Value::Null }.closed_within(Duration::from_secs(5)).await, 4429, "rate_limited");

    // The first one is untouched and still delivers.
    first.send(json!({ "type": "ping" })).await;
    assert_eq!(first.expect("pong").await["type"], "pong");
    // Once it closes, its place is free again.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (mut ws, nonce) = open_socket(&server).await;
        ws.send(Message::Text(auth_frame(&bob, &nonce, None).to_string().into())).await.unwrap();
        let frame = read_json(&mut ws).await.expect("an answer");
        if frame["type"] == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "the place was not freed: {frame}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
