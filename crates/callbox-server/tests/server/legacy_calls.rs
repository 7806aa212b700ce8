//! The legacy SDK's app-to-app calls (docs/legacy-sdk.md section 6) against a real server with a real SQLite
//! file, and on two nodes over PostgreSQL + Redis: a test client that places calls and exchanges call frames as
//! `sinch-rtc@1.4.12` does (INVITE made by the server on the callee's transport channel, the frames then on each
//! side's signal channel, encrypted with the call key), the call records they leave, and every refusal.

use crate::legacy::{legacy, legacy_of, pubnub_url, Legacy};
use crate::support::*;
use callbox_core::legacy as mxp;
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";

/// A poll's answer: the frames with their channels, and the next timetoken.
struct Answer {
    frames: Vec<(String, String)>,
    next: String,
}

async fn poll_on(server: &Server, client: &Legacy, channels: &[&str], timetoken: &str) -> Answer {
    let channels = channels.join(",");
    let url = pubnub_url(server, &["subscribe", &client.subscribe_key, &channels, "0", timetoken]);
    let response = server.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    let frames: Vec<String> = answer[0].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned()).collect();
    let next = answer[1].as_str().unwrap().to_owned();
    assert_eq!(next.len(), client.token_len(), "{answer}");
    let channels: Vec<String> = match answer.get(2) {
        Some(Value::String(list)) => list.split(',').map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    assert_eq!(channels.len(), frames.len(), "{answer}");
    Answer { frames: frames.into_iter().zip(channels).collect(), next }
}

/// A device listening as the SDK does: its broadcast PubNub (transport and broadcast channels) and, once in a
/// call, its signal PubNub (the signal channel); each with a timetoken of its own.
struct Device {
    client: Legacy,
    broadcast_tt: String,
    signal_tt: String,
    /// Frames read but not looked at yet (one poll may answer several).
    unread: std::collections::VecDeque<(String, String)>,
}

impl Device {
    async fn online(server: &Server, client: Legacy) -> Device {
        let channels = [client.transport_channel.as_str(), client.broadcast_channel.as_str()];
        let first = poll_on(server, &client, &channels, "0").await;
        let signal = poll_on(server, &client, &[&client.signal_channel], "0").await;
        let (broadcast_tt, signal_tt) = (first.next, signal.next);
        Device { client, broadcast_tt, signal_tt, unread: Default::default() }
    }

    /// Polls both subscriptions until a whole call frame of `call_id` arrives (at most 5 s); decrypted with `key`.
    /// Frames of other calls are passed over.
    async fn next_frame(&mut self, server: &Server, call_id: &str, key: &[u8; 32]) -> (String, Map<String, Value>) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut parts: HashMap<String, Vec<Option<String>>> = HashMap::new();
        loop {
            assert!(Instant::now() < deadline, "a frame of call {call_id} within 5 s");
            if self.unread.is_empty() {
                let broadcast = [self.client.transport_channel.as_str(), self.client.broadcast_channel.as_str()];
                let signal = [self.client.signal_channel.as_str()];
                for (channels, tt) in [(&broadcast[..], &mut self.broadcast_tt), (&signal[..], &mut self.signal_tt)] {
                    let poll = poll_on(server, &self.client, channels, tt);
                    let Ok(answer) = tokio::time::timeout(Duration::from_millis(300), poll).await else { continue };
                    *tt = answer.next;
                    self.unread.extend(answer.frames);
                }
            }
            while let Some((frame, channel)) = self.unread.pop_front() {
                let part = mxp::parse_frame(&frame).unwrap();
                if part.session_id != call_id {
                    continue;
                }
                let chunks = parts.entry(channel.clone()).or_insert_with(|| vec![None; part.count]);
                chunks[part.index] = Some(part.chunk.to_owned());
                if chunks.iter().all(Option::is_some) {
                    let encrypted: String = parts.remove(&channel).unwrap().into_iter().flatten().collect();
                    return (channel, mxp::decrypt_json(key, &encrypted).unwrap());
                }
            }
        }
    }

    /// Nothing of `call_id` arrives on either subscription for a while.
    async fn hears_nothing_of(&mut self, server: &Server, call_id: &str) {
        let broadcast = [self.client.transport_channel.as_str(), self.client.broadcast_channel.as_str()];
        let signal = [self.client.signal_channel.as_str()];
        for (channels, tt) in [(&broadcast[..], &mut self.broadcast_tt), (&signal[..], &mut self.signal_tt)] {
            if let Ok(answer) =
                tokio::time::timeout(Duration::from_millis(500), poll_on(server, &self.client, channels, tt)).await
            {
                *tt = answer.next;
                assert!(
                    answer.frames.iter().all(|(frame, _)| mxp::parse_frame(frame).unwrap().session_id != call_id),
                    "no frame of {call_id}: {:?}",
                    answer.frames
                );
            }
        }
    }
}

fn place_body(callee: &str, call_id: &str) -> Value {
    json!({
        "cli": "", "destination": {"type": "username", "endpoint": callee}, "callId": call_id,
        "mediaChannels": ["audio"], "subinstanceId": 7, "headers": {"p2p": "yes", "ph": "{\"topic\":\"support\"}"},
        "domain": "data", "sdp": {"type": "offer", "sdp": OFFER},
    })
}

async fn place(server: &Server, caller: &Legacy, body: Value) -> reqwest::Response {
    server.signed(Method::POST, "/v1/calls/data", Some(body), &caller.session).await
}

/// Places a call that must be accepted; its answer.
async fn placed(server: &Server, caller: &Legacy, callee: &str, call_id: &str) -> Value {
    let response = place(server, caller, place_body(callee, call_id)).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn key_of(answer: &Value) -> [u8; 32] {
    mxp::parse_key(answer["encryptionKey"].as_str().unwrap()).unwrap()
}

async fn instance_key(server: &Server, client: &Legacy) -> [u8; 32] {
    let response = server.signed(Method::GET, "/v1/configuration/user", None, &client.session).await;
    let config: Value = response.json().await.unwrap();
    mxp::parse_key(config["rtcProfile"]["key"].as_str().unwrap()).unwrap()
}

/// A call frame as the SDK makes it: `md`/`bt`, sender fields, encrypted with the call key.
fn frame(from: &Legacy, key: &[u8; 32], call_id: &str, md: u64, bt: Value, bd: Value) -> Vec<String> {
    let body = json!({
        "md": md, "bt": bt, "bv": 10, "bd": bd, "fu": from.user, "fi": format!("{}:7", from.session.id),
        "fd": from.session.id, "fs": from.signal_channel, "fc": "",
    });
    let encrypted = mxp::encrypt(key, &[3; 16], body.to_string().as_bytes());
    mxp::split_frames(call_id, None, &encrypted, 99)
}

async fn publish(server: &Server, from: &Legacy, channel: &str, frames: &[String]) -> reqwest::Response {
    let mut last = None;
    for frame in frames {
        let message = Value::String(frame.clone()).to_string();
        let url = pubnub_url(server, &["publish", &from.publish_key, &from.subscribe_key, "0", channel, "0", &message]);
        last = Some(server.http.get(url).send().await.unwrap());
    }
    last.unwrap()
}

async fn sent(server: &Server, from: &Legacy, channel: &str, frames: &[String]) {
    let response = publish(server, from, channel, frames).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
}

async fn calls_of(server: &Server, app: &App) -> Vec<Value> {
    let response = server.admin(Method::GET, &format!("/admin/v1/apps/{}/calls", app.key), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["calls"].as_array().unwrap().clone()
}

/// Waits (at most 3 s) for the app's newest call record to satisfy `done`.
async fn newest_call(server: &Server, app: &App, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let calls = calls_of(server, app).await;
        if let Some(call) = calls.first() {
            if done(call) {
                return call.clone();
            }
        }
        assert!(Instant::now() < deadline, "the call record within 3 s: {calls:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn no_calling(server: &Server, app: &App, user: &str) -> Session {
    let body = json!({ "version": {"os": "test"}, "services": {"calling": ["online", "im"]} });
    server.session_with(&app.ticket(user), body).await
}

#[tokio::test]
async fn alice_calls_bob_he_answers_and_she_hangs_up_and_the_record_says_so() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let mut alice = Device::online(&server, legacy(&server, &app, "alice").await).await;
    let mut bob = Device::online(&server, legacy(&server, &app, "bob").await).await;
    let call_id = "7f1d7a4e-6b9c-4d1e-9a43-0c1f2e3d4b5a";
    let answer = placed(&server, &alice.client, "bob", call_id).await;
    assert_eq!(answer["body"], "\n", "no media relay: a body the SDK strips to nothing");
    assert!(answer["signalChannel"].as_str().unwrap().starts_with("v-"), "{answer}");
    assert_eq!(answer["instances"][0]["instanceId"], bob.client.session.id.as_str(), "{answer}");
    let key = key_of(&answer);

    // The INVITE reaches bob on his transport channel, under his user's instance key (rtcProfile.key).
    let bob_instance = instance_key(&server, &bob.client).await;
    let (channel, invite) = bob.next_frame(&server, call_id, &bob_instance).await;
    assert_eq!(channel, bob.client.transport_channel);
    assert_eq!(invite["md"], 1);
    assert_eq!(invite["bt"], "media");
    assert_eq!(invite["fu"], "alice");
    assert_eq!(invite["fs"], alice.client.signal_channel.as_str());
    assert_eq!(invite["fi"], format!("{}:7", alice.client.session.id));
    assert_eq!(invite["nvps"]["key"], answer["encryptionKey"]);
    assert_eq!(invite["nvps"]["ph"], "{\"topic\":\"support\"}");
    let offer: Value = serde_json::from_str(invite["nvps"]["sdp"].as_str().unwrap()).unwrap();
    assert_eq!(offer, json!({"type": "offer", "sdp": OFFER}));

    // ACK with the SDP answer (long: several frames), JOIN, JOINED, ICE, HANGUP: each reaches the other side.
    let sdp_answer = json!({"type": "answer", "sdp": "a".repeat(3000)}).to_string();
    let ack = frame(&bob.client, &key, call_id, 2, json!("sdp"), json!(sdp_answer));
    assert!(ack.len() > 1, "an SDP answer takes several frames");
    sent(&server, &bob.client, &alice.client.signal_channel, &ack).await;
    let (channel, got) = alice.next_frame(&server, call_id, &key).await;
    assert_eq!(channel, alice.client.signal_channel);
    assert_eq!((got["md"].clone(), got["bd"].clone()), (json!(2), json!(sdp_answer)));
    let record = newest_call(&server, &app, |call| call["callerId"] == "alice").await;
    assert_eq!(record["calleeId"], "bob");
    assert!(record["answeredAt"].is_null() && record["endedAt"].is_null(), "{record}");

    sent(
        &server,
        &bob.client,
        &alice.client.signal_channel,
        &frame(&bob.client, &key, call_id, 3, json!("sdp"), Value::Null),
    )
    .await;
    assert_eq!(alice.next_frame(&server, call_id, &key).await.1["md"], 3);
    newest_call(&server, &app, |call| !call["answeredAt"].is_null()).await;
    let joined = frame(&alice.client, &key, call_id, 4, json!("client"), json!("{}"));
    sent(&server, &alice.client, &bob.client.signal_channel, &joined).await;
    assert_eq!(bob.next_frame(&server, call_id, &key).await.1["md"], 4);
    let candidate = json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0"}).to_string();
    sent(
        &server,
        &alice.client,
        &bob.client.signal_channel,
        &frame(&alice.client, &key, call_id, 10, json!("sdp"), json!(candidate)),
    )
    .await;
    assert_eq!(bob.next_frame(&server, call_id, &key).await.1["bd"], json!(candidate));
    sent(
        &server,
        &alice.client,
        &bob.client.signal_channel,
        &frame(&alice.client, &key, call_id, 5, Value::Null, Value::Null),
    )
    .await;
    assert_eq!(bob.next_frame(&server, call_id, &key).await.1["md"], 5);
    let record = newest_call(&server, &app, |call| !call["endedAt"].is_null()).await;
    assert_eq!(
        (record["endCause"].clone(), record["endedBy"].clone()),
        (json!("hung_up"), json!("caller")),
        "{record}"
    );

    // Both reports are answered {} and change nothing more.
    for (side, result) in [(&alice.client, 5), (&bob.client, 5)] {
        let path = format!("/v1/calls/data/id/{call_id}");
        let report = json!({"callId": call_id, "domain": "data", "result": result, "duration": 3});
        let response = server.signed(Method::PUT, &path, Some(report), &side.session).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
    }
    assert_eq!(calls_of(&server, &app).await[0]["endCause"], "hung_up");
}

#[tokio::test]
async fn a_decline_ends_denied_and_a_cancel_on_the_virtual_channel_reaches_every_device_and_ends_canceled() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = Device::online(&server, legacy(&server, &app, "alice").await).await;
    let mut bob = Device::online(&server, legacy(&server, &app, "bob").await).await;
    let mut bob_phone = Device::online(&server, legacy(&server, &app, "bob").await).await;
    let instance = instance_key(&server, &bob.client).await;

    let answer = placed(&server, &alice.client, "bob", "call-deny").await;
    assert_eq!(answer["instances"].as_array().unwrap().len(), 2, "both of bob's devices are online: {answer}");
    let key = key_of(&answer);
    bob.next_frame(&server, "call-deny", &instance).await;
    bob_phone.next_frame(&server, "call-deny", &instance).await;
    sent(
        &server,
        &bob.client,
        &alice.client.signal_channel,
        &frame(&bob.client, &key, "call-deny", 6, Value::Null, Value::Null),
    )
    .await;
    let record = newest_call(&server, &app, |call| !call["endedAt"].is_null()).await;
    assert_eq!((record["endCause"].clone(), record["endedBy"].clone()), (json!("denied"), json!("callee")));

    // A cancel before any device acknowledged goes to the virtual channel, and every device hears it.
    let answer = placed(&server, &alice.client, "bob", "call-cancel").await;
    let key = key_of(&answer);
    let virtual_channel = answer["signalChannel"].as_str().unwrap();
    sent(
        &server,
        &alice.client,
        virtual_channel,
        &frame(&alice.client, &key, "call-cancel", 7, Value::Null, Value::Null),
    )
    .await;
    for device in [&mut bob, &mut bob_phone] {
        let (_, invite) = device.next_frame(&server, "call-cancel", &instance).await;
        assert_eq!(invite["md"], 1);
        let (channel, cancel) = device.next_frame(&server, "call-cancel", &key).await;
        assert_eq!((channel.as_str(), cancel["md"].clone()), (device.client.transport_channel.as_str(), json!(7)));
    }
    let record = newest_call(&server, &app, |call| !call["endedAt"].is_null() && call["endCause"] != "denied").await;
    assert_eq!((record["endCause"].clone(), record["endedBy"].clone()), (json!("canceled"), json!("caller")));
    assert_eq!(calls_of(&server, &app).await.len(), 2);
}

#[tokio::test]
async fn a_callee_offline_unknown_or_without_calling_gets_the_caller_a_failure_frame_at_once() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let mut alice = Device::online(&server, legacy(&server, &app, "alice").await).await;
    // Carol is online but without calling; dave never came online; "nobody" is no user at all.
    let carol = legacy_of(&server, "carol", no_calling(&server, &app, "carol").await).await;
    let _carol_online = poll_on(&server, &carol, &[&carol.transport_channel], "0").await;
    let _dave = legacy(&server, &app, "dave").await;
    for (n, callee) in ["carol", "dave", "nobody"].into_iter().enumerate() {
        let call_id = format!("offline-{n}");
        let answer = placed(&server, &alice.client, callee, &call_id).await;
        assert_eq!(answer["instances"], json!([]), "{answer}");
        let (channel, failure) = alice.next_frame(&server, &call_id, &key_of(&answer)).await;
        assert_eq!(channel, alice.client.signal_channel);
        assert_eq!((failure["md"].clone(), failure["bt"].clone()), (json!(9), json!("error/json")));
        let reason: Value = serde_json::from_str(failure["bd"].as_str().unwrap()).unwrap();
        assert_eq!(reason["code"], 480, "{reason}");
        let record = newest_call(&server, &app, |call| call["calleeId"] == callee && !call["endedAt"].is_null()).await;
        assert_eq!((record["endCause"].clone(), record["endedBy"].clone()), (json!("no_answer"), json!("server")));
    }
}

#[tokio::test]
async fn every_bad_call_request_or_frame_gets_a_precise_error() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = Device::online(&server, legacy(&server, &app, "alice").await).await;
    let mut bob = Device::online(&server, legacy(&server, &app, "bob").await).await;
    let carol = legacy(&server, &app, "carol").await;
    let a = &alice.client;

    // Requests: PSTN/SIP/conference, a number destination, a bad call id, no SDP object, a bad ph, too big an offer.
    let mut bad: Vec<(Value, u16, &str)> = Vec::new();
    let mut body = place_body("bob", "x1");
    body["destination"]["type"] = json!("number");
    bad.push((body, 400, "malformed_request"));
    let mut body = place_body("bob", "x2");
    body["callId"] = json!("has space");
    bad.push((body, 400, "malformed_request"));
    let mut body = place_body("bob", "x3");
    body["sdp"] = json!("v=0");
    bad.push((body, 400, "malformed_request"));
    let mut body = place_body("bob", "x4");
    body["headers"]["ph"] = json!({"not": "a string"});
    bad.push((body, 400, "malformed_request"));
    let mut body = place_body("bob", "x5");
    body["sdp"]["sdp"] = json!("a".repeat(64 * 1024));
    bad.push((body, 413, "payload_too_large"));
    bad.push((json!({"callId": "x6"}), 400, "malformed_request"));
    for (body, status, reason) in bad {
        assert_error(place(&server, a, body.clone()).await, status, reason).await;
    }
    for domain in ["pstn", "sip", "conference"] {
        let mut body = place_body("bob", "x7");
        body["domain"] = json!(domain);
        let response = server.signed(Method::POST, &format!("/v1/calls/{domain}"), Some(body), &a.session).await;
        assert_error(response, 400, "malformed_request").await;
    }
    // No calling: no call.
    let messaging_only = legacy_of(&server, "alice", no_calling(&server, &app, "alice").await).await;
    assert_error(place(&server, &messaging_only, place_body("bob", "x8")).await, 403, "capability_not_granted").await;

    // A call id is used once per application.
    let answer = placed(&server, a, "bob", "once").await;
    let key = key_of(&answer);
    let mut again = place_body("bob", "once");
    again["subinstanceId"] = json!(8);
    assert_error(place(&server, a, again).await, 400, "malformed_request").await;
    let instance = instance_key(&server, &bob.client).await;
    bob.next_frame(&server, "once", &instance).await;

    // Frames: of no call; of a call the sender takes no part in; to a channel that is not the other side's; that
    // do not decrypt with the call key; claiming another sender; made only by the server; from a session
    // without calling.
    let ack = frame(&bob.client, &key, "once", 2, json!("sdp"), json!("{}"));
    let cases: Vec<(&Legacy, String, Vec<String>, u16, &str)> = vec![
        (
            &bob.client,
            a.signal_channel.clone(),
            frame(&bob.client, &key, "no-such-call", 2, Value::Null, Value::Null),
            404,
            "not_found",
        ),
        (&carol, a.signal_channel.clone(), frame(&carol, &key, "once", 2, Value::Null, Value::Null), 404, "not_found"),
        (&bob.client, carol.signal_channel.clone(), ack.clone(), 404, "not_found"),
        (&bob.client, bob.client.signal_channel.clone(), ack.clone(), 404, "not_found"),
        (&bob.client, answer["signalChannel"].as_str().unwrap().to_owned(), ack.clone(), 404, "not_found"),
        (a, carol.signal_channel.clone(), frame(a, &key, "once", 10, json!("sdp"), json!("{}")), 404, "not_found"),
        (a, "s-forged.channel".into(), frame(a, &key, "once", 10, json!("sdp"), json!("{}")), 404, "not_found"),
        (
            &bob.client,
            a.signal_channel.clone(),
            frame(&bob.client, &[9; 32], "once", 2, Value::Null, Value::Null),
            400,
            "malformed_request",
        ),
        (
            &bob.client,
            a.signal_channel.clone(),
            frame(&carol, &key, "once", 2, Value::Null, Value::Null),
            400,
            "malformed_request",
        ),
        (
            a,
            bob.client.signal_channel.clone(),
            frame(a, &key, "once", 1, json!("media"), json!("")),
            400,
            "malformed_request",
        ),
        (
            &bob.client,
            a.signal_channel.clone(),
            frame(&bob.client, &key, "once", 9, json!("message"), json!("x")),
            400,
            "malformed_request",
        ),
        (
            &messaging_only,
            bob.client.signal_channel.clone(),
            frame(&messaging_only, &key, "once", 10, json!("sdp"), json!("{}")),
            403,
            "capability_not_granted",
        ),
    ];
    for (from, channel, frames, status, reason) in cases {
        assert_error(publish(&server, from, &channel, &frames).await, status, reason).await;
    }
    // Nothing of that reached alice: the one frame she gets is the real acknowledgement.
    sent(&server, &bob.client, &a.signal_channel, &ack).await;
    let mut alice = alice;
    let (_, got) = alice.next_frame(&server, "once", &key).await;
    assert_eq!((got["md"].clone(), got["fu"].clone()), (json!(2), json!("bob")));

    // Reports: of no call, or of a call the reporter takes no part in.
    for (who, id) in [(&bob.client, "no-such-call"), (&carol, "once")] {
        let response = server
            .signed(Method::PUT, &format!("/v1/calls/data/id/{id}"), Some(json!({"result": 5})), &who.session)
            .await;
        assert_error(response, 404, "not_found").await;
    }
}

#[tokio::test]
async fn calls_are_isolated_between_applications() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let other = server.create_app(json!({})).await;
    let mut bob = Device::online(&server, legacy(&server, &app, "bob").await).await;
    // Eve of the other application calls "bob": the bob of her own application, who is not online.
    let mut eve = Device::online(&server, legacy(&server, &other, "eve").await).await;
    let answer = placed(&server, &eve.client, "bob", "cross").await;
    assert_eq!(answer["instances"], json!([]));
    assert_eq!(eve.next_frame(&server, "cross", &key_of(&answer)).await.1["md"], 9, "unavailable");
    bob.hears_nothing_of(&server, "cross").await;
    // Her frames cannot reach bob of the first application, and the same call id is free there.
    let key = key_of(&answer);
    let hello = frame(&eve.client, &key, "cross", 10, json!("sdp"), json!("{}"));
    assert_error(publish(&server, &eve.client, &bob.client.signal_channel, &hello).await, 404, "not_found").await;
    let alice = Device::online(&server, legacy(&server, &app, "alice").await).await;
    placed(&server, &alice.client, "bob", "cross").await;
    assert_eq!(calls_of(&server, &other).await.len(), 1);
    assert_eq!(calls_of(&server, &app).await.len(), 1);
}

#[tokio::test]
async fn call_attempts_beyond_the_session_rate_are_refused_with_retry_after() {
    let dir = tempfile::TempDir::new().unwrap();
    let calls =
        callbox_server::realtime::CallsConfig { attempt_burst: 2, attempts_per_minute: 2, ..Default::default() };
    let server = start_with(callbox_server::config::Config { calls, ..test_config(dir.path()) }).await;
    let app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    for n in 0..2 {
        placed(&server, &alice, "bob", &format!("rate-{n}")).await;
    }
    let refused = assert_error(place(&server, &alice, place_body("bob", "rate-2")).await, 429, "rate_limited").await;
    assert!(refused["message"].as_str().unwrap().contains("2 calls a minute"), "{refused}");
}

// ----- two nodes on PostgreSQL + Redis -----------------------------------------------------------------------

mod two_nodes {
    use super::*;
    use crate::scale::{engines, two_nodes, SERIAL};

    #[tokio::test]
    async fn a_call_placed_on_a_refuses_on_b_everyone_but_its_parties_and_their_channels() {
        let Some(engines) = engines() else { return };
        let _serial = SERIAL.lock().await;
        let (a, b, _dirs) = two_nodes(&engines).await;
        let app = a.create_app(json!({})).await;
        let other = a.create_app(json!({})).await;
        let alice = legacy(&a, &app, "alice").await;
        let mut bob = Device::online(&b, legacy(&b, &app, "bob").await).await;
        let carol = legacy(&b, &app, "carol").await;
        let mallory = legacy(&b, &other, "bob").await; // the same user id in another application
        let answer = placed(&a, &alice, "bob", "refused-across").await;
        let key = key_of(&answer);
        let instance = instance_key(&b, &bob.client).await;
        bob.next_frame(&b, "refused-across", &instance).await;
        let b_frame =
            |from: &Legacy, k: &[u8; 32], md: u64| frame(from, k, "refused-across", md, json!("sdp"), json!("{}"));
        let cases: Vec<(&Legacy, String, Vec<String>, u16, &str)> = vec![
            (&carol, alice.signal_channel.clone(), b_frame(&carol, &key, 2), 404, "not_found"),
            (&mallory, alice.signal_channel.clone(), b_frame(&mallory, &key, 2), 404, "not_found"),
            (&bob.client, carol.signal_channel.clone(), b_frame(&bob.client, &key, 2), 404, "not_found"),
            (&bob.client, alice.signal_channel.clone(), b_frame(&bob.client, &[1; 32], 2), 400, "malformed_request"),
        ];
        for (from, channel, frames, status, reason) in cases {
            assert_error(publish(&b, from, &channel, &frames).await, status, reason).await;
        }
        // The call id is taken on every node; a session without calling is refused on B as on A.
        let alice_on_b = legacy_of(&b, "alice", alice.session.clone()).await;
        let mut again = place_body("bob", "refused-across");
        again["subinstanceId"] = json!(9);
        assert_error(place(&b, &alice_on_b, again).await, 400, "malformed_request").await;
        let messaging_only = legacy_of(&b, "dave", no_calling(&b, &app, "dave").await).await;
        assert_error(place(&b, &messaging_only, place_body("bob", "x")).await, 403, "capability_not_granted").await;
        // The one frame that crosses is the party's own, to the other side's channel.
        sent(&b, &bob.client, &alice.signal_channel, &b_frame(&bob.client, &key, 2)).await;
        let mut alice = Device::online(&a, alice).await;
        let (_, got) = alice.next_frame(&a, "refused-across", &key).await;
        assert_eq!((got["md"].clone(), got["fu"].clone()), (json!(2), json!("bob")));
    }

    #[tokio::test]
    async fn alice_on_a_calls_bob_on_b_and_every_frame_and_the_record_cross_the_nodes() {
        let Some(engines) = engines() else { return };
        let _serial = SERIAL.lock().await;
        let (a, b, _dirs) = two_nodes(&engines).await;
        let app = a.create_app(json!({})).await;
        let mut alice = Device::online(&a, legacy(&a, &app, "alice").await).await;
        let mut bob = Device::online(&b, legacy(&b, &app, "bob").await).await;
        let answer = placed(&a, &alice.client, "bob", "across").await;
        let key = key_of(&answer);
        let instance = instance_key(&b, &bob.client).await;
        // The INVITE made on A reaches bob's poll on B; his acknowledgement published on B reaches alice on A.
        assert_eq!(bob.next_frame(&b, "across", &instance).await.1["md"], 1);
        sent(
            &b,
            &bob.client,
            &alice.client.signal_channel,
            &frame(&bob.client, &key, "across", 2, json!("sdp"), json!("{}")),
        )
        .await;
        assert_eq!(alice.next_frame(&a, "across", &key).await.1["md"], 2);
        sent(
            &b,
            &bob.client,
            &alice.client.signal_channel,
            &frame(&bob.client, &key, "across", 3, json!("sdp"), Value::Null),
        )
        .await;
        assert_eq!(alice.next_frame(&a, "across", &key).await.1["md"], 3);
        sent(
            &a,
            &alice.client,
            &bob.client.signal_channel,
            &frame(&alice.client, &key, "across", 5, Value::Null, Value::Null),
        )
        .await;
        assert_eq!(bob.next_frame(&b, "across", &key).await.1["md"], 5);
        let record = newest_call(&b, &app, |call| !call["endedAt"].is_null()).await;
        assert!(!record["answeredAt"].is_null(), "{record}");
        assert_eq!(record["endCause"], "hung_up");
        // Nobody acknowledges on any node: after the ringing wait the caller is told.
        let answer = placed(&a, &alice.client, "nobody", "across-2").await;
        assert_eq!(alice.next_frame(&a, "across-2", &key_of(&answer)).await.1["md"], 9);
    }
}

#[tokio::test]
async fn with_two_devices_the_one_that_answers_owns_the_call_and_the_others_reports_do_not_end_it() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let mut alice = Device::online(&server, legacy(&server, &app, "alice").await).await;
    let mut laptop = Device::online(&server, legacy(&server, &app, "bob").await).await;
    let mut phone = Device::online(&server, legacy(&server, &app, "bob").await).await;
    let instance = instance_key(&server, &laptop.client).await;
    let answer = placed(&server, &alice.client, "bob", "two-devices").await;
    let key = key_of(&answer);
    for device in [&mut laptop, &mut phone] {
        device.next_frame(&server, "two-devices", &instance).await;
        let ack = frame(&device.client, &key, "two-devices", 2, json!("sdp"), json!("{}"));
        sent(&server, &device.client, &alice.client.signal_channel, &ack).await;
    }
    // The caller's SDK keeps the first device that acknowledged and denies the other, which stops ringing and
    // reports DENIED: the call rings on.
    alice.next_frame(&server, "two-devices", &key).await;
    alice.next_frame(&server, "two-devices", &key).await;
    let deny = frame(&alice.client, &key, "two-devices", 6, Value::Null, Value::Null);
    sent(&server, &alice.client, &phone.client.signal_channel, &deny).await;
    assert_eq!(phone.next_frame(&server, "two-devices", &key).await.1["md"], 6);
    let path = "/v1/calls/data/id/two-devices";
    let response = server.signed(Method::PUT, path, Some(json!({"result": 2})), &phone.client.session).await;
    assert_eq!(response.status(), StatusCode::OK);
    // The laptop answers; the phone's late hang up and report end nothing either.
    let join = frame(&laptop.client, &key, "two-devices", 3, json!("sdp"), Value::Null);
    sent(&server, &laptop.client, &alice.client.signal_channel, &join).await;
    let hangup = frame(&phone.client, &key, "two-devices", 5, Value::Null, Value::Null);
    sent(&server, &phone.client, &alice.client.signal_channel, &hangup).await;
    let response = server.signed(Method::PUT, path, Some(json!({"result": 5})), &phone.client.session).await;
    assert_eq!(response.status(), StatusCode::OK);
    let record = newest_call(&server, &app, |call| !call["answeredAt"].is_null()).await;
    assert!(record["endedAt"].is_null(), "only the answering device and the caller end the call: {record}");
    assert_eq!(record["legacyCallId"], "two-devices", "the record names the SDK's call id");
    // The laptop hangs up: that ends it.
    let hangup = frame(&laptop.client, &key, "two-devices", 5, Value::Null, Value::Null);
    sent(&server, &laptop.client, &alice.client.signal_channel, &hangup).await;
    let record = newest_call(&server, &app, |call| !call["endedAt"].is_null()).await;
    assert_eq!((record["endCause"].clone(), record["endedBy"].clone()), (json!("hung_up"), json!("callee")));
}

#[tokio::test]
async fn a_device_that_left_is_offline_at_once() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let mut alice = Device::online(&server, legacy(&server, &app, "alice").await).await;
    let bob = Device::online(&server, legacy(&server, &app, "bob").await).await;
    // Leaving only the signal channel (after a call) keeps bob callable.
    let leave = |channels: String| {
        let url = pubnub_url(
            &server,
            &["v2", "presence", "sub_key", &bob.client.subscribe_key, "channel", &channels, "leave"],
        );
        server.http.get(url).send()
    };
    assert_eq!(leave(bob.client.signal_channel.clone()).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        placed(&server, &alice.client, "bob", "after-signal-leave").await["instances"].as_array().unwrap().len(),
        1
    );
    // Leaving the broadcast subscription (the SDK stopping) makes him unreachable now, not in 30 s.
    let channels = format!("{},{}", bob.client.transport_channel, bob.client.broadcast_channel);
    assert_eq!(leave(channels).await.unwrap().status(), StatusCode::OK);
    let answer = placed(&server, &alice.client, "bob", "after-leave").await;
    assert_eq!(answer["instances"], json!([]));
    assert_eq!(alice.next_frame(&server, "after-leave", &key_of(&answer)).await.1["md"], 9);
}

#[tokio::test]
async fn a_device_whose_session_is_revoked_while_it_polls_is_not_callable() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let mut alice = Device::online(&server, legacy(&server, &app, "alice").await).await;
    let bob = Device::online(&server, legacy(&server, &app, "bob").await).await;
    let url = pubnub_url(
        &server,
        &["subscribe", &bob.client.subscribe_key, &bob.client.transport_channel, "0", &bob.broadcast_tt],
    );
    let http = server.http.clone();
    let waiting = tokio::spawn(async move { http.get(url).send().await.unwrap() });
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.callbox.legacy().poll_count() < 1 {
        assert!(Instant::now() < deadline, "bob's poll is held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let path = format!("/admin/v1/apps/{}/sessions/{}", app.key, bob.client.session.id);
    assert!(server.admin(Method::DELETE, &path, None).await.status().is_success());
    let ended = tokio::time::timeout(Duration::from_secs(2), waiting).await.unwrap().unwrap();
    assert_error(ended, 401, "session_revoked").await;
    // Within the grace period of his last poll, and yet: nobody to ring.
    let answer = placed(&server, &alice.client, "bob", "revoked-callee").await;
    assert_eq!(answer["instances"], json!([]));
    assert_eq!(alice.next_frame(&server, "revoked-callee", &key_of(&answer)).await.1["md"], 9);
}

#[tokio::test]
async fn calls_and_reports_need_a_valid_signature_and_a_live_session() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    // Bob is online, so the call rings on until someone ends it.
    let _bob = Device::online(&server, legacy(&server, &app, "bob").await).await;
    placed(&server, &alice, "bob", "signed-1").await;
    let report_path = "/v1/calls/data/id/signed-1";
    // Signed with another session's secret; not signed at all.
    let mut forged = alice.session.clone();
    forged.secret = legacy(&server, &app, "carol").await.session.secret;
    let response = server.signed(Method::POST, "/v1/calls/data", Some(place_body("bob", "signed-2")), &forged).await;
    assert_error(response, 401, "bad_signature").await;
    let response = server.signed(Method::PUT, report_path, Some(json!({"result": 5})), &forged).await;
    assert_error(response, 401, "bad_signature").await;
    let unsigned = server.http.post(server.url("/v1/calls/data")).json(&place_body("bob", "signed-3")).send().await;
    assert_error(unsigned.unwrap(), 401, "missing_authorization").await;
    // A revoked session places no call and reports none; nothing was recorded for the refused ones.
    let path = format!("/admin/v1/apps/{}/sessions/{}", app.key, alice.session.id);
    assert!(server.admin(Method::DELETE, &path, None).await.status().is_success());
    assert_error(place(&server, &alice, place_body("bob", "signed-4")).await, 401, "session_revoked").await;
    let response = server.signed(Method::PUT, report_path, Some(json!({"result": 5})), &alice.session).await;
    assert_error(response, 401, "session_revoked").await;
    let calls = calls_of(&server, &app).await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0]["endedAt"].is_null(), "the refused reports ended nothing: {calls:?}");
}

#[tokio::test]
async fn a_store_that_fails_is_service_unavailable_and_no_one_rings() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = legacy(&server, &app, "alice").await;
    let mut bob = Device::online(&server, legacy(&server, &app, "bob").await).await;
    // The legacy calls table goes away behind the server's back (a broken or half-restored database).
    let url = format!("sqlite://{}", server.data.join("callbox.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DROP TABLE legacy_calls").execute(&pool).await.unwrap();
    pool.close().await;
    let refused =
        assert_error(place(&server, &alice, place_body("bob", "dead-store")).await, 503, "service_unavailable").await;
    assert!(!refused["message"].as_str().unwrap_or("").contains("legacy_calls"), "no database detail: {refused}");
    bob.hears_nothing_of(&server, "dead-store").await;
    // A frame of a call the store cannot read is refused the same way, and a report too.
    let frame = frame(&alice, &[1; 32], "dead-store", 10, json!("sdp"), json!("{}"));
    assert_error(publish(&server, &alice, &bob.client.signal_channel, &frame).await, 503, "service_unavailable").await;
    let response =
        server.signed(Method::PUT, "/v1/calls/data/id/dead-store", Some(json!({"result": 5})), &alice.session).await;
    assert_error(response, 503, "service_unavailable").await;
}
