//! The legacy SDK's transport (docs/legacy-sdk.md) against a real server with a real SQLite file: a test client
//! that speaks as `sinch-rtc@1.4.12` does (its configuration, transports, MXP frames encrypted with the
//! transport key, the PubNub subscribe/publish paths), legacy ↔ legacy and legacy ↔ WebSocket, and every refusal.

use crate::realtime::connect;
use crate::support::*;
use callbox_core::legacy as mxp;
use callbox_server::realtime::RealtimeConfig;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A legacy client: one session with its configuration.
#[derive(Clone)]
pub struct Legacy {
    pub user: String,
    pub session: Session,
    pub publish_key: String,
    pub subscribe_key: String,
    pub transport_channel: String,
    pub broadcast_channel: String,
    pub signal_channel: String,
    pub calling: bool,
}

/// A frame read from a poll, decrypted.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub transport_id: String,
    pub channel: String,
    pub body: serde_json::Map<String, Value>,
}

/// What one poll answered.
#[derive(Debug)]
pub struct Poll {
    pub frames: Vec<String>,
    pub channels: Vec<String>,
    pub next: String,
}

pub async fn legacy(server: &Server, app: &App, user: &str) -> Legacy {
    let session = server.session(&app.ticket(user)).await;
    legacy_of(server, user, session).await
}

pub async fn legacy_of(server: &Server, user: &str, session: Session) -> Legacy {
    let response = server.signed(Method::GET, "/v1/configuration/user", None, &session).await;
    assert_eq!(response.status(), StatusCode::OK);
    let config: Value = response.json().await.unwrap();
    let network = &config["rtcConfiguration"]["broadcastNetwork"];
    let profile = &config["rtcProfile"];
    let text = |value: &Value| value.as_str().unwrap().to_owned();
    Legacy {
        user: user.to_owned(),
        session,
        publish_key: text(&network["publishKey"]),
        subscribe_key: text(&network["subscribeKey"]),
        transport_channel: text(&profile["transportChannel"]),
        broadcast_channel: text(&profile["broadcastChannel"]),
        signal_channel: text(&profile["signalChannel"]),
        calling: config.get("iceServers").is_some(),
    }
}

/// `base` with `segments` appended, each percent-encoded as one path segment (as the SDK's PubNub does).
pub fn pubnub_url(server: &Server, segments: &[&str]) -> reqwest::Url {
    let mut url = reqwest::Url::parse(&server.url).unwrap();
    url.path_segments_mut().unwrap().extend(segments);
    url
}

impl Legacy {
    /// How long this session's timetokens are.
    pub fn token_len(&self) -> usize {
        if self.calling {
            33
        } else {
            17
        }
    }

    pub async fn open_transport(&self, server: &Server, users: &[&str]) -> Value {
        let body = Value::Array(users.iter().map(|user| json!({ "identity": user })).collect());
        let response = server.signed(Method::POST, "/v1/transport", Some(body), &self.session).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// `GET /v1/transport?transportId=`, signed over the path without the query (as the SDK signs it).
    pub async fn get_transport(&self, server: &Server, id: &str) -> reqwest::Response {
        let timestamp = callbox_core::time::format_iso_seconds(server.now());
        let parts = callbox_core::signing::SignedParts {
            method: "GET",
            body: b"",
            content_type: "",
            timestamp: &timestamp,
            path: "/v1/transport",
        };
        let secret = callbox_core::Secret::from_base64(&self.session.secret).unwrap();
        let signature = callbox_core::signing::sign(&secret, &parts);
        let mut url = reqwest::Url::parse(&server.url("/v1/transport")).unwrap();
        url.query_pairs_mut().append_pair("transportId", id);
        server
            .http
            .get(url)
            .header("authorization", format!("Instance {}:{signature}", self.session.id))
            .header("x-timestamp", timestamp)
            .send()
            .await
            .unwrap()
    }

    pub async fn publish(&self, server: &Server, channel: &str, frame: &str) -> reqwest::Response {
        let message = Value::String(frame.to_owned()).to_string();
        let url = pubnub_url(server, &["publish", &self.publish_key, &self.subscribe_key, "0", channel, "0", &message]);
        server.http.get(url).send().await.unwrap()
    }

    /// The frames of a message as the SDK builds them (`md:1`, the text as `bd`, headers as `nvps.ph`).
    pub fn message_frames(
        &self,
        transport: &Value,
        message_id: &str,
        text: &str,
        headers: Option<Value>,
    ) -> Vec<String> {
        let mut body = json!({
            "md": 1, "bt": "msg", "bv": 10, "bd": json!({ "t": text }).to_string(),
            "fu": self.user, "fi": format!("{}:1", self.session.id), "fd": self.session.id,
            "fs": self.transport_channel, "fc": "",
        });
        if let Some(headers) = headers {
            body["nvps"] = json!({ "ph": headers });
        }
        self.frames_of(transport, message_id, &body)
    }

    /// The frames of the receipt (`md:2`) of `message_id`.
    pub fn receipt_frames(&self, transport: &Value, message_id: &str) -> Vec<String> {
        let body = json!({
            "md": 2, "bt": "msg", "bv": 10, "fu": self.user, "fi": format!("{}:1", self.session.id),
            "fd": self.session.id, "fs": self.transport_channel, "fc": "",
        });
        self.frames_of(transport, message_id, &body)
    }

    pub fn frames_of(&self, transport: &Value, message_id: &str, body: &Value) -> Vec<String> {
        let key = mxp::parse_key(transport["key"].as_str().unwrap()).unwrap();
        let encrypted = mxp::encrypt(&key, &[7; 16], body.to_string().as_bytes());
        mxp::split_frames(message_id, transport["transportId"].as_str(), &encrypted, 4242)
    }

    /// Publishes every frame on every participant channel of `transport`, as the SDK's `transmitFrames` does.
    pub async fn send_frames(&self, server: &Server, transport: &Value, frames: &[String]) {
        for participant in transport["participants"].as_array().unwrap() {
            for frame in frames {
                let response = self.publish(server, participant["channel"].as_str().unwrap(), frame).await;
                assert_eq!(response.status(), StatusCode::OK);
                let sent: Value = response.json().await.unwrap();
                assert_eq!(sent[0], 1, "{sent}");
                assert_eq!(sent[1], "Sent", "{sent}");
                assert_eq!(sent[2].as_str().unwrap().len(), 17, "{sent}");
            }
        }
    }

    pub async fn send(&self, server: &Server, transport: &Value, message_id: &str, text: &str) {
        self.send_frames(server, transport, &self.message_frames(transport, message_id, text, None)).await;
    }

    pub async fn subscribe(&self, server: &Server, channels: &[&str], timetoken: &str) -> reqwest::Response {
        let channels = channels.join(",");
        let url = pubnub_url(server, &["subscribe", &self.subscribe_key, &channels, "0", timetoken]);
        server.http.get(url).send().await.unwrap()
    }

    /// One poll of the three channels the SDK subscribes to.
    pub async fn poll(&self, server: &Server, timetoken: &str) -> Poll {
        let channels = [self.transport_channel.as_str(), self.broadcast_channel.as_str()];
        let response = self.subscribe(server, &channels, timetoken).await;
        assert_eq!(response.status(), StatusCode::OK);
        let answer: Value = response.json().await.unwrap();
        let frames: Vec<String> =
            answer[0].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned()).collect();
        let next = answer[1].as_str().unwrap().to_owned();
        // 17 digits of inbox cursor, and for a session with `calling` 16 of mailbox position.
        assert_eq!(next.len(), self.token_len(), "{answer}");
        let channels = match answer.get(2) {
            Some(Value::String(channels)) => channels.split(',').map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        assert_eq!(channels.len(), frames.len(), "one channel per frame: {answer}");
        Poll { frames, channels, next }
    }

    /// Polls from a fresh start (`0`) until `count` whole messages arrived; each decrypted with the key the
    /// transport lookup answers (as the SDK does for a transport it does not know).
    pub async fn receive(&self, server: &Server, timetoken: &mut String, count: usize) -> Vec<Received> {
        let mut whole = Vec::new();
        let mut pending: std::collections::HashMap<String, Vec<Option<String>>> = Default::default();
        let deadline = Instant::now() + Duration::from_secs(10);
        while whole.len() < count {
            assert!(Instant::now() < deadline, "{} of {count} messages within 10 s", whole.len());
            let poll = self.poll(server, timetoken).await;
            *timetoken = poll.next.clone();
            for (frame, channel) in poll.frames.iter().zip(&poll.channels) {
                let part = mxp::parse_frame(frame).unwrap();
                let chunks = pending.entry(part.session_id.to_owned()).or_insert_with(|| vec![None; part.count]);
                chunks[part.index] = Some(part.chunk.to_owned());
                if chunks.iter().all(Option::is_some) {
                    let encrypted: String = pending.remove(part.session_id).unwrap().into_iter().flatten().collect();
                    let transport_id = part.transport_id.unwrap().to_owned();
                    let lookup = self.get_transport(server, &transport_id).await;
                    assert_eq!(lookup.status(), StatusCode::OK);
                    let transport: Value = lookup.json().await.unwrap();
                    let key = mxp::parse_key(transport["key"].as_str().unwrap()).unwrap();
                    whole.push(Received {
                        message_id: part.session_id.to_owned(),
                        transport_id,
                        channel: channel.clone(),
                        body: mxp::decrypt_json(&key, &encrypted).unwrap(),
                    });
                }
            }
        }
        whole
    }

    /// A fresh start: the `0` poll, then the replay.
    pub async fn start(&self, server: &Server) -> String {
        let first = self.poll(server, "0").await;
        assert!(first.frames.is_empty());
        assert!(first.next.starts_with('2'), "a fresh start replays: {}", first.next);
        assert_eq!(first.next.len(), self.token_len());
        first.next
    }
}

/// A long-poll of `client`'s transport channel at `timetoken`, sent in the background.
fn spawn_poll(server: &Server, client: &Legacy, timetoken: &str) -> tokio::task::JoinHandle<reqwest::Response> {
    let url = pubnub_url(server, &["subscribe", &client.subscribe_key, &client.transport_channel, "0", timetoken]);
    let http = server.http.clone();
    tokio::spawn(async move { http.get(url).send().await.unwrap() })
}

/// Waits (at most 5 s) until `server` holds `count` long-polls.
async fn wait_for_polls(server: &Server, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.callbox.legacy().poll_count() < count {
        assert!(Instant::now() < deadline, "{count} long-polls held within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn text_of(received: &Received) -> String {
    let bd: Value = serde_json::from_str(received.body["bd"].as_str().unwrap()).unwrap();
    bd["t"].as_str().unwrap().to_owned()
}

async fn start_legacy(realtime: RealtimeConfig) -> (Server, TempDir) {
    let dir = TempDir::new().unwrap();
    let config = callbox_server::config::Config { realtime, ..test_config(dir.path()) };
    (start_with(config).await, dir)
}

/// Polls wait 2 s here, so that a test of "nothing arrives" is short.
fn short_polls() -> RealtimeConfig {
    RealtimeConfig { legacy_poll_seconds: 2, ..RealtimeConfig::default() }
}

#[tokio::test]
async fn the_configuration_names_per_session_keys_and_per_user_channels() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let first = legacy(&server, &app, "alice").await;
    let second = legacy(&server, &app, "alice").await;
    let bob = legacy(&server, &app, "bob").await;
    assert!(first.publish_key.starts_with("pub-c-") && first.subscribe_key.starts_with("sub-c-"));
    assert_ne!(first.publish_key, second.publish_key, "keys are per session");
    assert_ne!(first.subscribe_key, first.publish_key);
    assert_eq!(first.transport_channel, second.transport_channel, "the transport channel is per user");
    assert_ne!(first.transport_channel, bob.transport_channel);
    assert_ne!(first.signal_channel, second.signal_channel, "the signal channel is per session");
    assert_ne!(first.broadcast_channel, second.broadcast_channel);
    // Names carry 128 bits that only the server makes: nothing in them is the user id or the app key.
    for name in [&first.transport_channel, &first.signal_channel, &first.broadcast_channel] {
        assert!(!name.contains("alice") && !name.contains(&app.key), "{name}");
        assert!(name.len() >= 24, "{name}");
    }
    let time: Value = server.http.get(server.url("/time/0")).send().await.unwrap().json().await.unwrap();
    assert_eq!(time[0].as_str().unwrap().len(), 17, "{time}");
}

#[tokio::test]
async fn two_legacy_clients_exchange_a_message_and_its_receipt_while_polling() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    let bob = legacy(&server, &app, "bob").await;
    let transport = alice.open_transport(&server, &["bob"]).await;
    let participants = transport["participants"].as_array().unwrap();
    assert_eq!(participants.len(), 1, "POST answers the recipients only: {transport}");
    assert_eq!(participants[0]["destination"]["identity"], "bob");
    assert_eq!(participants[0]["channel"], bob.transport_channel.as_str());
    assert_eq!(participants[0]["instances"][0]["capabilities"], json!(["online", "im"]));
    assert!(mxp::parse_key(transport["key"].as_str().unwrap()).is_ok(), "a 32-byte AES key: {transport}");
    // The same participants make the same transport, whoever asks.
    let back = bob.open_transport(&server, &["alice"]).await;
    assert_eq!(back["transportId"], transport["transportId"]);
    assert_eq!(back["key"], transport["key"]);
    // GET answers every participant.
    let looked_up: Value =
        bob.get_transport(&server, transport["transportId"].as_str().unwrap()).await.json().await.unwrap();
    let users: Vec<&str> = looked_up["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["destination"]["identity"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["alice", "bob"]);

    let mut bob_tt = bob.start(&server).await;
    let mut alice_tt = alice.start(&server).await;
    // Bob is waiting in a long-poll when alice sends: the poll answers at once.
    let waiting = spawn_poll(&server, &bob, &bob_tt);
    wait_for_polls(&server, 1).await;
    let sent_at = Instant::now();
    alice
        .send_frames(
            &server,
            &transport,
            &alice.message_frames(&transport, "m-1", "hi bob", Some(json!("{\"k\":\"v\"}"))),
        )
        .await;
    let answer: Value = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("the poll answers")
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(sent_at.elapsed() < Duration::from_secs(2));
    assert_eq!(answer[0].as_array().unwrap().len(), 1, "{answer}");
    let received = bob.receive(&server, &mut bob_tt, 1).await;
    let message = &received[0];
    assert_eq!(message.message_id, "m-1", "the SDK's own message id is kept");
    assert_eq!(message.transport_id, transport["transportId"].as_str().unwrap());
    assert_eq!(message.channel, bob.transport_channel);
    assert_eq!(message.body["md"], 1);
    assert_eq!(message.body["bt"], "msg");
    assert_eq!(message.body["fu"], "alice");
    assert_eq!(message.body["fs"], alice.transport_channel.as_str(), "receipts go to the sender's channel");
    assert_eq!(message.body["nvps"]["ph"], "{\"k\":\"v\"}", "headers reach a legacy app as the SDK's string");
    assert_eq!(text_of(message), "hi bob");

    // Bob acknowledges on alice's channel (the SDK sends md:2 to the participant whose channel is fs).
    let ack = bob.receipt_frames(&transport, "m-1");
    let response = bob.publish(&server, &alice.transport_channel, &ack[0]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let receipts = alice.receive(&server, &mut alice_tt, 1).await;
    assert_eq!(receipts[0].message_id, "m-1");
    assert_eq!(receipts[0].body["md"], 2);
    assert_eq!(receipts[0].body["fu"], "bob");
    assert_eq!(receipts[0].body["fs"], bob.transport_channel.as_str());
    // The same receipt again gives no second one.
    bob.publish(&server, &alice.transport_channel, &ack[0]).await;
    bob.send(&server, &back, "m-2", "hi alice").await;
    let next = alice.receive(&server, &mut alice_tt, 1).await;
    assert_eq!(text_of(&next[0]), "hi alice", "the next entry is bob's reply, not a second receipt");
}

#[tokio::test]
async fn a_multi_frame_message_sent_on_every_channel_arrives_once_and_whole() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    let bob = legacy(&server, &app, "bob").await;
    // Every participant's channel, alice's own too, as after a GET of the transport.
    let transport: Value = alice
        .get_transport(&server, alice.open_transport(&server, &["bob"]).await["transportId"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let text: String = (0..5000).map(|n| char::from(b'a' + (n % 26) as u8)).collect();
    let mut frames = alice.message_frames(&transport, "long-1", &text, None);
    assert!(frames.len() >= 4, "{} frames", frames.len());
    frames.reverse(); // out of order
    alice.send_frames(&server, &transport, &frames).await;
    let mut tt = bob.start(&server).await;
    let received = bob.receive(&server, &mut tt, 1).await;
    assert_eq!(text_of(&received[0]), text);
    // Exactly one copy was stored, though each frame came twice (once per channel).
    let inbox = server.callbox.read_inbox(&app.key, "bob", 0, 10, false).await.unwrap();
    assert_eq!(inbox.len(), 1, "{inbox:?}");
}

#[tokio::test]
async fn a_group_message_reaches_both_recipients_and_both_receipts_come_back() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    let bob = legacy(&server, &app, "bob").await;
    let carol = legacy(&server, &app, "carol").await;
    let transport = alice.open_transport(&server, &["carol", "bob", "bob"]).await;
    assert_eq!(transport["participants"].as_array().unwrap().len(), 2, "{transport}");
    alice.send(&server, &transport, "group-1", "hello both").await;
    let mut alice_tt = alice.start(&server).await;
    for recipient in [&bob, &carol] {
        let mut tt = recipient.start(&server).await;
        let received = recipient.receive(&server, &mut tt, 1).await;
        assert_eq!(text_of(&received[0]), "hello both");
        let ack = recipient.receipt_frames(&transport, "group-1");
        assert_eq!(recipient.publish(&server, &alice.transport_channel, &ack[0]).await.status(), StatusCode::OK);
    }
    let receipts = alice.receive(&server, &mut alice_tt, 2).await;
    let mut from: Vec<&str> = receipts.iter().map(|r| r.body["fu"].as_str().unwrap()).collect();
    from.sort();
    assert_eq!(from, ["bob", "carol"]);
}

#[tokio::test]
async fn an_offline_recipient_gets_unconfirmed_messages_on_its_next_start_and_confirmed_ones_never_again() {
    let (server, _dir) = start_legacy(short_polls()).await;
    let app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    legacy(&server, &app, "bob").await; // bob is a user of the app (platform-managed users are on by default)
    let transport = alice.open_transport(&server, &["bob"]).await;
    for n in 0..3 {
        alice.send(&server, &transport, &format!("off-{n}"), &format!("offline {n}")).await;
    }
    // Bob starts later, on a new session (a new device): the three, in order.
    let bob = legacy(&server, &app, "bob").await;
    let mut tt = bob.start(&server).await;
    let received = bob.receive(&server, &mut tt, 3).await;
    let texts: Vec<String> = received.iter().map(text_of).collect();
    assert_eq!(texts, ["offline 0", "offline 1", "offline 2"]);
    // He confirms the first two only.
    for id in ["off-0", "off-1"] {
        bob.publish(&server, &alice.transport_channel, &bob.receipt_frames(&transport, id)[0]).await;
    }
    // A fresh start replays the unconfirmed one only, then waits (2 s here) and answers nothing.
    let again = legacy(&server, &app, "bob").await;
    let mut tt = again.start(&server).await;
    let replayed = again.receive(&server, &mut tt, 1).await;
    assert_eq!(replayed[0].message_id, "off-2");
    assert!(tt.starts_with('3'), "after the replay the poll is live: {tt}");
    let started = Instant::now();
    let quiet = again.poll(&server, &tt).await;
    assert!(quiet.frames.is_empty());
    assert_eq!(quiet.next, tt, "nothing new: the same cursor");
    assert!(started.elapsed() >= Duration::from_millis(1500), "the poll waited");
}

#[tokio::test]
async fn unknown_users_are_left_out_of_transports_when_the_app_has_platform_users() {
    let server = start().await;
    let app = server.create_app(json!({ "platformUserAuth": true })).await;
    for user in ["alice", "bob"] {
        assert_eq!(server.sign_up(&app.key, user, "correct horse battery").await.status(), StatusCode::OK);
    }
    let other = server.create_app(json!({ "platformUserAuth": true })).await;
    assert_eq!(server.sign_up(&other.key, "mallory", "correct horse battery").await.status(), StatusCode::OK);
    let alice = legacy(&server, &app, "alice").await;
    let alone = alice.open_transport(&server, &["ghost"]).await;
    assert_eq!(alone["participants"], json!([]), "the SDK reports an unknown user as not existing");
    // A user of another application is an unknown user here.
    let mixed = alice.open_transport(&server, &["bob", "ghost", "mallory"]).await;
    let users: Vec<&str> = mixed["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["destination"]["identity"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["bob"]);
    // A message on a transport without another participant is refused.
    let response =
        alice.publish(&server, &alice.transport_channel, &alice.message_frames(&alone, "x", "hi", None)[0]).await;
    assert_error(response, 400, "malformed_request").await;
}

#[tokio::test]
async fn a_legacy_client_and_a_websocket_client_exchange_messages_and_receipts_both_ways() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    let bob_session = server.session(&app.ticket("bob")).await;
    let mut bob = connect(&server, &bob_session, None).await;
    let mut alice_tt = alice.start(&server).await;

    // Legacy → WebSocket: the message with the SDK's id; bob's confirmation comes back as an md:2 frame.
    let transport = alice.open_transport(&server, &["bob"]).await;
    alice
        .send_frames(
            &server,
            &transport,
            &alice.message_frames(&transport, "legacy-1", "from the old SDK", Some(json!("{\"a\":1}"))),
        )
        .await;
    let incoming = bob.expect("message").await;
    assert_eq!(incoming["messageId"], "legacy-1");
    assert_eq!(incoming["senderId"], "alice");
    assert_eq!(incoming["text"], "from the old SDK");
    assert_eq!(incoming["headers"], json!({"a": 1}));
    bob.send(json!({ "type": "message.received", "messageId": "legacy-1", "seq": incoming["seq"] })).await;
    let receipt = alice.receive(&server, &mut alice_tt, 1).await;
    assert_eq!(receipt[0].message_id, "legacy-1");
    assert_eq!(receipt[0].body["md"], 2);
    assert_eq!(receipt[0].body["fu"], "bob");

    // WebSocket → legacy: alice reads it under the transport of {alice, bob}; her md:2 is bob's receipt.
    let accepted = bob.send_message("r1", json!(["alice"]), "from the new SDK").await;
    let id = accepted["messageId"].as_str().unwrap().to_owned();
    let received = alice.receive(&server, &mut alice_tt, 1).await;
    assert_eq!(received[0].message_id, id);
    assert_eq!(received[0].transport_id, transport["transportId"].as_str().unwrap());
    assert_eq!(text_of(&received[0]), "from the new SDK");
    assert_eq!(received[0].body["fs"], legacy_of(&server, "bob", bob_session.clone()).await.transport_channel.as_str());
    let ack = alice.receipt_frames(&transport, &id);
    let bob_channel = received[0].body["fs"].as_str().unwrap().to_owned();
    assert_eq!(alice.publish(&server, &bob_channel, &ack[0]).await.status(), StatusCode::OK);
    loop {
        let frame = bob.next().await;
        if frame["type"] == "message.receipt" {
            assert_eq!(frame["messageId"], id.as_str());
            assert_eq!(frame["recipientId"], "alice");
            assert_eq!(frame["status"], "delivered");
            break;
        }
    }
}

#[tokio::test]
async fn a_group_message_from_a_legacy_client_reaches_a_websocket_and_a_legacy_recipient_and_both_receipts_return() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    let carol = legacy(&server, &app, "carol").await;
    let bob_session = server.session(&app.ticket("bob")).await;
    let mut bob = connect(&server, &bob_session, None).await;
    let mut alice_tt = alice.start(&server).await;
    let transport = alice.open_transport(&server, &["bob", "carol"]).await;
    alice.send(&server, &transport, "mixed-1", "to both kinds").await;

    let incoming = bob.expect("message").await;
    assert_eq!(incoming["messageId"], "mixed-1");
    let mut recipients: Vec<String> =
        incoming["recipientIds"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect();
    recipients.sort();
    assert_eq!(recipients, ["bob", "carol"], "the WebSocket sees every recipient of the group");
    let mut carol_tt = carol.start(&server).await;
    let received = carol.receive(&server, &mut carol_tt, 1).await;
    assert_eq!(text_of(&received[0]), "to both kinds");
    assert_eq!(received[0].transport_id, transport["transportId"].as_str().unwrap(), "the same group transport");

    bob.send(json!({ "type": "message.received", "messageId": "mixed-1", "seq": incoming["seq"] })).await;
    carol.publish(&server, &alice.transport_channel, &carol.receipt_frames(&transport, "mixed-1")[0]).await;
    let receipts = alice.receive(&server, &mut alice_tt, 2).await;
    let mut from: Vec<&str> = receipts.iter().map(|r| r.body["fu"].as_str().unwrap()).collect();
    from.sort();
    assert_eq!(from, ["bob", "carol"]);
    assert!(receipts.iter().all(|r| r.message_id == "mixed-1"));
}

#[tokio::test]
async fn keys_and_channels_that_are_not_the_sessions_get_nothing() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let other_app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    let bob = legacy(&server, &app, "bob").await;
    let mallory = legacy(&server, &other_app, "alice").await; // the same user id in another app

    assert_ne!(mallory.transport_channel, alice.transport_channel, "channels are per application");
    // Someone else's channel, or a made-up one: 404.
    for channel in [&bob.transport_channel, &mallory.transport_channel, &"t-guess".to_owned(), &bob.signal_channel] {
        let response = alice.subscribe(&server, &[&alice.transport_channel, channel], "0").await;
        assert_error(response, 404, "not_found").await;
    }
    // A forged or altered key: 404, like an unknown one.
    let mut forged = alice.clone();
    forged.subscribe_key = format!("{}x", alice.subscribe_key);
    assert_error(forged.subscribe(&server, &[&alice.transport_channel], "0").await, 404, "not_found").await;
    forged.subscribe_key = alice.subscribe_key.replacen("sub-c-", "sub-c-0", 1);
    assert_error(forged.subscribe(&server, &[&alice.transport_channel], "0").await, 404, "not_found").await;
    // The publish key does not subscribe, nor the subscribe key publish.
    forged.subscribe_key = alice.publish_key.clone();
    assert_error(forged.subscribe(&server, &[&alice.transport_channel], "0").await, 404, "not_found").await;
    let transport = alice.open_transport(&server, &["bob"]).await;
    let frame = alice.message_frames(&transport, "m", "hi", None).remove(0);
    let mut swapped = alice.clone();
    swapped.publish_key = alice.subscribe_key.clone();
    assert_error(swapped.publish(&server, &bob.transport_channel, &frame).await, 404, "not_found").await;
    // Another session's subscribe key beside alice's publish key.
    swapped = alice.clone();
    swapped.subscribe_key = bob.subscribe_key.clone();
    assert_error(swapped.publish(&server, &bob.transport_channel, &frame).await, 404, "not_found").await;
    // Another application's session cannot read or use the transport.
    let id = transport["transportId"].as_str().unwrap();
    assert_error(mallory.get_transport(&server, id).await, 404, "not_found").await;
    assert_error(mallory.publish(&server, &bob.transport_channel, &frame).await, 404, "not_found").await;
    // Nor can a user of the app outside the transport.
    let carol = legacy(&server, &app, "carol").await;
    assert_error(carol.get_transport(&server, id).await, 404, "not_found").await;
    // A channel that is not in the transport.
    assert_error(alice.publish(&server, &carol.transport_channel, &frame).await, 404, "not_found").await;
    // A transport lookup without an id.
    let response = server.signed(Method::GET, "/v1/transport", None, &alice.session).await;
    assert_error(response, 400, "malformed_request").await;
    // Unsigned transport calls.
    let unsigned =
        server.http.post(server.url("/v1/transport")).json(&json!([{"identity": "bob"}])).send().await.unwrap();
    assert_error(unsigned, 401, "missing_authorization").await;
    let leave = pubnub_url(&server, &["v2", "presence", "sub_key", &alice.subscribe_key, "channel", "x", "leave"]);
    let left: Value = server.http.get(leave).send().await.unwrap().json().await.unwrap();
    assert_eq!(left["action"], "leave");
    let leave = pubnub_url(&server, &["v2", "presence", "sub_key", "sub-c-nope", "channel", "x", "leave"]);
    assert_error(server.http.post(leave).send().await.unwrap(), 404, "not_found").await;
}

#[tokio::test]
async fn every_bad_frame_or_request_gets_a_precise_error() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    let bob = legacy(&server, &app, "bob").await;
    let transport = alice.open_transport(&server, &["bob"]).await;
    let channel = bob.transport_channel.clone();
    let key = mxp::parse_key(transport["key"].as_str().unwrap()).unwrap();
    let tid = transport["transportId"].as_str().unwrap();
    let cases: Vec<(String, u16, &str)> = vec![
        ("not a frame".into(), 400, "malformed_request"),
        ("10 id - 0 1 !!! ".to_owned() + tid, 400, "malformed_request"),
        ("10 id - 0 1 QUJD".into(), 404, "not_found"), // no transport: a call frame, of no call
        ("10 id - 0 1 QUJDREVGR0hJSktMTU5PUA== Tunknown".into(), 404, "not_found"),
        (format!("10 id - 0 1 QUJDREVGR0hJSktMTU5PUA== {tid}"), 400, "malformed_request"), // not decryptable
        (
            mxp::split_frames("id2", Some(tid), &mxp::encrypt(&key, &[1; 16], b"not json"), 1).remove(0),
            400,
            "malformed_request",
        ),
    ];
    for (frame, status, reason) in cases {
        let response = alice.publish(&server, &channel, &frame).await;
        let body = assert_error(response, status, reason).await;
        assert!(!body["message"].as_str().unwrap().is_empty(), "{frame}");
    }
    // Not a JSON string.
    let url = pubnub_url(&server, &["publish", &alice.publish_key, &alice.subscribe_key, "0", &channel, "0", "{oops"]);
    assert_error(server.http.get(url).send().await.unwrap(), 400, "malformed_request").await;
    // A bad callback.
    let url =
        pubnub_url(&server, &["publish", &alice.publish_key, &alice.subscribe_key, "0", &channel, "a-b", "\"x\""]);
    assert_error(server.http.get(url).send().await.unwrap(), 400, "malformed_request").await;
    // The sender must be the session's user; only md 1 and 2 of body type msg.
    let mut frames = Vec::new();
    for body in [
        json!({"md": 1, "bt": "msg", "bd": "{\"t\":\"x\"}", "fu": "bob"}),
        json!({"md": 3, "bt": "sdp", "fu": "alice"}),
        json!({"md": 1, "bt": "msg", "bd": "not json", "fu": "alice"}),
        json!({"md": 1, "bt": "msg", "bd": "{\"t\":\"x\"}", "fu": "alice", "nvps": {"ph": 5}}),
    ] {
        frames.push(alice.frames_of(&transport, &format!("b{}", frames.len()), &body).remove(0));
    }
    for frame in frames {
        assert_error(alice.publish(&server, &channel, &frame).await, 400, "malformed_request").await;
    }
    // Too large a text (the WebSocket's limits apply: 8 KiB by default).
    let big = "x".repeat(9000);
    let frames = alice.message_frames(&transport, "big", &big, None);
    let mut last = None;
    for frame in &frames {
        last = Some(alice.publish(&server, &channel, frame).await);
    }
    assert_error(last.unwrap(), 413, "payload_too_large").await;
    // A receipt of a message that is not in the inbox.
    let ack = bob.receipt_frames(&transport, "never-sent");
    assert_error(bob.publish(&server, &alice.transport_channel, &ack[0]).await, 404, "not_found").await;
    // Bad timetokens.
    for tt in ["abc", "123", "1234567890123456789"] {
        assert_error(alice.subscribe(&server, &[&alice.transport_channel], tt).await, 400, "malformed_request").await;
    }
    // A transport of too many, or of nobody but oneself, or with a bad id.
    let many: Vec<Value> = (0..51).map(|n| json!({ "identity": format!("u{n}") })).collect();
    let response = server.signed(Method::POST, "/v1/transport", Some(Value::Array(many)), &alice.session).await;
    assert_error(response, 400, "malformed_request").await;
    let response =
        server.signed(Method::POST, "/v1/transport", Some(json!([{"identity": "alice"}])), &alice.session).await;
    assert_error(response, 400, "malformed_request").await;
    let response = server.signed(Method::POST, "/v1/transport", Some(json!({"identity": "bob"})), &alice.session).await;
    assert_error(response, 400, "malformed_request").await;
    let response = server.signed(Method::POST, "/v1/transport", Some(json!([{"identity": ""}])), &alice.session).await;
    assert_error(response, 400, "malformed_request").await;
    // The IM report is accepted, signed.
    let report =
        server.signed(Method::POST, "/v1/report/im", Some(json!({"version": "2.0", "sent": 1})), &alice.session).await;
    assert_eq!(report.status(), StatusCode::OK);
}

#[tokio::test]
async fn messaging_needs_the_im_capability() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let calls_only = server
        .session_with(&app.ticket("alice"), json!({ "version": {"os": "test"}, "services": {"voip": true} }))
        .await;
    let alice = legacy_of(&server, "alice", calls_only).await;
    let response =
        server.signed(Method::POST, "/v1/transport", Some(json!([{"identity": "bob"}])), &alice.session).await;
    assert_error(response, 403, "capability_not_granted").await;
    // A transport made by someone else does not let it publish either.
    let bob = legacy(&server, &app, "bob").await;
    let transport = bob.open_transport(&server, &["alice"]).await;
    let frame = alice.message_frames(&transport, "m", "hi", None).remove(0);
    assert_error(alice.publish(&server, &bob.transport_channel, &frame).await, 403, "capability_not_granted").await;
}

#[tokio::test]
async fn the_services_list_the_legacy_sdk_sends_grants_messaging() {
    // `sinch-rtc` 1.4.12 puts every service it wants in one list under `calling`, messaging included.
    let server = start().await;
    let app = server.create_app(json!({ "capabilities": ["messaging"], "platformUserAuth": false })).await;
    let body = json!({
        "version": {"os": "unknown", "platform": "unknown", "sdk": "js/1.4.12"},
        "services": {"calling": ["online", "im"]},
        "expiresIn": 31536000,
    });
    let response = server.exchange_with(&format!("User {}", app.ticket("alice")), body.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let grant: Value = response.json().await.unwrap();
    assert_eq!(grant["capabilities"], json!(["messaging"]));
    let alice = legacy_of(&server, "alice", server.session_with(&app.ticket("alice"), body).await).await;
    let transport = alice.open_transport(&server, &["bob"]).await;
    assert_eq!(transport["participants"][0]["destination"]["identity"], "bob");
}

#[tokio::test]
async fn long_polls_are_bounded_per_session_and_a_dropped_one_frees_its_place() {
    let config = RealtimeConfig { legacy_polls_per_session: 2, ..RealtimeConfig::default() };
    let (server, _dir) = start_legacy(config).await;
    let app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    let live = "30000000000000000";
    let mut held = vec![spawn_poll(&server, &alice, live), spawn_poll(&server, &alice, live)];
    wait_for_polls(&server, 2).await;
    assert_error(alice.subscribe(&server, &[&alice.transport_channel], live).await, 429, "rate_limited").await;
    // The metrics name the route, never the keys in the path (they are credentials).
    let metrics = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("callbox_legacy_polls"), "{metrics}");
    assert!(metrics.contains("/subscribe/{subscribe_key}"), "{metrics}");
    assert!(!metrics.contains(&alice.subscribe_key) && !metrics.contains(&alice.transport_channel));
    // A client that goes away (its request aborted) frees its place.
    for poll in held.drain(..) {
        poll.abort();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.callbox.legacy().poll_count() > 0 {
        assert!(Instant::now() < deadline, "the aborted polls are cleaned up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.callbox.realtime().connection_count(), 0, "and unregistered from the hub");
}

#[tokio::test]
async fn publishing_faster_than_the_session_rate_is_refused_with_retry_after() {
    let config = RealtimeConfig { messages_per_second: 1, message_burst: 2, ..RealtimeConfig::default() };
    let (server, _dir) = start_legacy(config).await;
    let app = server.create_app(json!({ "platformUserAuth": false })).await;
    let alice = legacy(&server, &app, "alice").await;
    let transport = alice.open_transport(&server, &["bob"]).await;
    let channel = transport["participants"][0]["channel"].as_str().unwrap_or_else(|| panic!("{transport}")).to_owned();
    let mut statuses = Vec::new();
    for n in 0..5 {
        let frame = alice.message_frames(&transport, &format!("flood-{n}"), "x", None).remove(0);
        let response = alice.publish(&server, &channel, &frame).await;
        statuses.push(response.status().as_u16());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_error(response, 429, "rate_limited").await;
        }
    }
    assert_eq!(&statuses[..2], [200, 200], "{statuses:?}");
    assert!(statuses[2..].contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn long_polls_are_bounded_per_address_across_sessions() {
    let config = RealtimeConfig { legacy_polls_per_address: 1, ..RealtimeConfig::default() };
    let (server, _dir) = start_legacy(config).await;
    let app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    let bob = legacy(&server, &app, "bob").await;
    let live = "30000000000000000";
    let held = spawn_poll(&server, &alice, live);
    wait_for_polls(&server, 1).await;
    // Another session from the same address (127.0.0.1) finds the address's place taken.
    assert_error(bob.subscribe(&server, &[&bob.transport_channel], live).await, 429, "rate_limited").await;
    held.abort();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.callbox.legacy().poll_count() > 0 {
        assert!(Instant::now() < deadline, "the aborted poll is cleaned up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bob.poll(&server, "0").await.next.len(), bob.token_len(), "the place is free again");
}

#[tokio::test]
async fn multi_frame_messages_are_bounded_in_count_size_and_agreement() {
    let config = RealtimeConfig { max_text_bytes: 100, max_headers_bytes: 100, ..RealtimeConfig::default() };
    let (server, _dir) = start_legacy(config).await;
    let app = server.create_app(json!({ "platformUserAuth": false })).await;
    let alice = legacy(&server, &app, "alice").await;
    let transport = alice.open_transport(&server, &["bob"]).await;
    let channel = transport["participants"][0]["channel"].as_str().unwrap().to_owned();
    let tid = transport["transportId"].as_str().unwrap();
    let chunk = "A".repeat(1400);
    // Frames of one message that disagree on how many there are.
    assert_eq!(alice.publish(&server, &channel, &format!("10 split 7 0 3 {chunk} {tid}")).await.status(), 200);
    let response = alice.publish(&server, &channel, &format!("10 split 7 1 4 {chunk} {tid}")).await;
    assert_error(response, 400, "malformed_request").await;
    // Frames adding up to more than the largest message can be: refused before the last one arrives
    // ((100 + 100) * 3 + 4096 bytes of base64 here).
    let mut last = None;
    for index in 0..4 {
        last = Some(alice.publish(&server, &channel, &format!("10 huge 8 {index} 64 {chunk} {tid}")).await);
    }
    assert_error(last.unwrap(), 413, "payload_too_large").await;
    // At most 16 multi-frame messages of one session in assembly at once: `split` above is still one of them.
    for n in 0..15 {
        let response = alice.publish(&server, &channel, &format!("10 part-{n} 9 0 2 {chunk} {tid}")).await;
        assert_eq!(response.status(), 200, "assembly {n}");
    }
    let response = alice.publish(&server, &channel, &format!("10 part-16 9 0 2 {chunk} {tid}")).await;
    assert_error(response, 429, "rate_limited").await;
    // Nothing of these reached bob's inbox.
    assert!(server.callbox.read_inbox(&app.key, "bob", 0, 10, false).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_expired_session_cannot_publish_or_open_transports() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    let bob = legacy(&server, &app, "bob").await;
    let transport = alice.open_transport(&server, &["bob"]).await;
    let frame = alice.message_frames(&transport, "late", "hi", None).remove(0);
    server.advance(chrono::Duration::days(2));
    assert_error(alice.publish(&server, &bob.transport_channel, &frame).await, 401, "session_expired").await;
    let response =
        server.signed(Method::POST, "/v1/transport", Some(json!([{"identity": "bob"}])), &alice.session).await;
    assert_error(response, 401, "session_expired").await;
}

async fn poll_ends_within_a_second(
    server: &Server,
    client: &Legacy,
    act: impl std::future::Future<Output = ()>,
    reason: &str,
    status: u16,
) {
    let poll = spawn_poll(server, client, "30000000000000000");
    wait_for_polls(server, 1).await;
    act.await;
    let acted = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(1), poll).await.expect("the poll ends within 1 s").unwrap();
    assert!(acted.elapsed() <= Duration::from_secs(1));
    assert_error(response, status, reason).await;
}

#[tokio::test]
async fn revocation_ends_a_waiting_long_poll_within_a_second_and_the_keys_stop_working() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    let revoke_path = format!("/admin/v1/apps/{}/sessions/{}", app.key, alice.session.id);
    let revoke = server.admin(Method::DELETE, &revoke_path, None);
    poll_ends_within_a_second(
        &server,
        &alice,
        async { assert!(revoke.await.status().is_success()) },
        "session_revoked",
        401,
    )
    .await;
    assert_error(alice.subscribe(&server, &[&alice.transport_channel], "0").await, 401, "session_revoked").await;
    let bob = legacy(&server, &app, "bob").await;
    let transport = bob.open_transport(&server, &["alice"]).await;
    let frame = alice.message_frames(&transport, "m", "hi", None).remove(0);
    assert_error(alice.publish(&server, &bob.transport_channel, &frame).await, 401, "session_revoked").await;

    // Disabling the user and deleting the app end polls too.
    assert_eq!(server.sign_up(&app.key, "carol", "correct horse battery").await.status(), StatusCode::OK);
    let login: Value = server.log_in(&app.key, "carol", "correct horse battery").await.json().await.unwrap();
    let carol_session = server.session(login["authorization"].as_str().unwrap()).await;
    let carol = legacy_of(&server, "carol", carol_session).await;
    let disable_path = format!("/admin/v1/apps/{}/users/carol/disable", app.key);
    let disable = server.admin(Method::POST, &disable_path, None);
    poll_ends_within_a_second(
        &server,
        &carol,
        async {
            assert_eq!(disable.await.status(), StatusCode::OK);
        },
        "user_disabled",
        403,
    )
    .await;
    let dave = legacy(&server, &app, "dave").await;
    let delete_path = format!("/admin/v1/apps/{}", app.key);
    let delete = server.admin(Method::DELETE, &delete_path, None);
    poll_ends_within_a_second(
        &server,
        &dave,
        async { assert!(delete.await.status().is_success()) },
        "unknown_application",
        401,
    )
    .await;
}

#[tokio::test]
async fn an_expired_sessions_keys_are_refused_with_session_expired() {
    let (server, _dir) = start_legacy(short_polls()).await;
    let app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    server.advance(chrono::Duration::days(2));
    assert_error(alice.subscribe(&server, &[&alice.transport_channel], "0").await, 401, "session_expired").await;
}

// ----- two nodes on PostgreSQL + Redis -----------------------------------------------------------------------

mod two_nodes {
    use super::*;
    use crate::scale::{engines, two_nodes, SERIAL};

    #[tokio::test]
    async fn a_legacy_sender_on_a_reaches_a_legacy_poller_on_b_and_the_receipt_comes_back_across() {
        let Some(engines) = engines() else { return };
        let _serial = SERIAL.lock().await;
        let (a, b, _dirs) = two_nodes(&engines).await;
        let app = a.create_app(json!({})).await;
        let alice = legacy(&a, &app, "alice").await;
        let bob = legacy(&b, &app, "bob").await;
        // Keys and channels are the same on both nodes (derived from the shared master key).
        let bob_on_a = legacy_of(&a, "bob", bob.session.clone()).await;
        assert_eq!(bob_on_a.subscribe_key, bob.subscribe_key);
        assert_eq!(bob_on_a.transport_channel, bob.transport_channel);
        let transport = alice.open_transport(&a, &["bob"]).await;
        let mut bob_tt = bob.start(&b).await;
        let mut alice_tt = alice.start(&b).await; // alice polls B, publishes on A
                                                  // Bob waits on B; alice publishes on A; the fan-out through Redis wakes bob's poll.
        let waiting = spawn_poll(&b, &bob, &bob_tt);
        wait_for_polls(&b, 1).await;
        alice.send(&a, &transport, "x-1", "across nodes").await;
        let answer: Value = tokio::time::timeout(Duration::from_secs(3), waiting)
            .await
            .expect("woken across nodes")
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer[0].as_array().unwrap().len(), 1, "{answer}");
        let received = bob.receive(&b, &mut bob_tt, 1).await;
        assert_eq!(text_of(&received[0]), "across nodes");
        // Bob's receipt, published on B, reaches alice's poll on B; a transport made on A is known on B.
        assert_eq!(
            bob.publish(&b, &alice.transport_channel, &bob.receipt_frames(&transport, "x-1")[0]).await.status(),
            StatusCode::OK
        );
        let receipts = alice.receive(&b, &mut alice_tt, 1).await;
        assert_eq!(receipts[0].body["fu"], "bob");
    }

    #[tokio::test]
    async fn keys_channels_and_transports_made_on_a_are_refused_on_b_to_everyone_they_are_not_for() {
        let Some(engines) = engines() else { return };
        let _serial = SERIAL.lock().await;
        let (a, b, _dirs) = two_nodes(&engines).await;
        let app = a.create_app(json!({})).await;
        let other_app = a.create_app(json!({})).await;
        let alice = legacy(&a, &app, "alice").await;
        let bob = legacy(&a, &app, "bob").await;
        let carol = legacy(&b, &app, "carol").await;
        let mallory = legacy(&b, &other_app, "alice").await;
        // On B: another session's channel, a forged key, the publish key as a subscribe key.
        for channel in [&bob.transport_channel, &mallory.transport_channel, &bob.signal_channel] {
            let response = alice.subscribe(&b, &[&alice.transport_channel, channel], "0").await;
            assert_error(response, 404, "not_found").await;
        }
        let mut forged = alice.clone();
        forged.subscribe_key = format!("{}x", alice.subscribe_key);
        assert_error(forged.subscribe(&b, &[&alice.transport_channel], "0").await, 404, "not_found").await;
        forged.subscribe_key = alice.publish_key.clone();
        assert_error(forged.subscribe(&b, &[&alice.transport_channel], "0").await, 404, "not_found").await;
        // A transport made on A: outsiders and another application's session cannot read or use it on B.
        let transport = alice.open_transport(&a, &["bob"]).await;
        let id = transport["transportId"].as_str().unwrap();
        assert_error(carol.get_transport(&b, id).await, 404, "not_found").await;
        assert_error(mallory.get_transport(&b, id).await, 404, "not_found").await;
        let frame = alice.message_frames(&transport, "m-b", "hi", None).remove(0);
        assert_error(mallory.publish(&b, &bob.transport_channel, &frame).await, 404, "not_found").await;
        assert_error(alice.publish(&b, &carol.transport_channel, &frame).await, 404, "not_found").await;
        // A session ended on A: its keys are refused on B.
        let path = format!("/admin/v1/apps/{}/sessions/{}", app.key, alice.session.id);
        assert!(a.admin(Method::DELETE, &path, None).await.status().is_success());
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let response = alice.subscribe(&b, &[&alice.transport_channel], "0").await;
            if response.status() == StatusCode::UNAUTHORIZED {
                assert_error(response, 401, "session_revoked").await;
                break;
            }
            assert!(Instant::now() < deadline, "the revocation reaches B within 3 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_error(alice.publish(&b, &bob.transport_channel, &frame).await, 401, "session_revoked").await;
    }

    #[tokio::test]
    async fn a_revocation_on_node_a_ends_a_long_poll_on_node_b_within_a_second() {
        let Some(engines) = engines() else { return };
        let _serial = SERIAL.lock().await;
        let (a, b, _dirs) = two_nodes(&engines).await;
        let app = a.create_app(json!({})).await;
        let alice = legacy(&b, &app, "alice").await;
        let revoke_path = format!("/admin/v1/apps/{}/sessions/{}", app.key, alice.session.id);
        let revoke = a.admin(Method::DELETE, &revoke_path, None);
        poll_ends_within_a_second(
            &b,
            &alice,
            async { assert!(revoke.await.status().is_success()) },
            "session_revoked",
            401,
        )
        .await;
    }
}
