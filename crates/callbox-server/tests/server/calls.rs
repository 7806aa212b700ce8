//! Call signaling over the realtime connection (docs/calls.md) against a real server with a real SQLite file, through
//! real WebSocket clients: the whole call, every end cause, answered elsewhere, every refusal, TURN credentials,
//! call records and metrics; and across two nodes on PostgreSQL and Redis (with the engines of scripts/services.sh).
//!
//! Every frame is checked field by field against docs/calls.md section 2, including the set of its fields: a frame
//! that grows a field the contract does not name (an SDP leaking to the wrong side, say) fails here.
//! The call timers (answer timeout, grace) are tokio timers, not the test clock: the tests that wait for them
//! configure them to a second or two.

use crate::realtime::{assert_closed, assert_error_frame, connect, Rt};
use crate::support::*;
use callbox_server::config::{Config, Redacted, TurnConfig};
use callbox_server::realtime::CallsConfig;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=offer\r\n";
const ANSWER: &str = "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=answer\r\n";

// ----- servers, sessions and frame checks ----------------------------------------------------------------------

/// Calls with the timers a test can wait for: answers wait 30 s (no test waits for that by accident), a dropped
/// side 1 s.
fn quick() -> CallsConfig {
    CallsConfig { answer_timeout_seconds: 30, grace_seconds: 1, ..CallsConfig::default() }
}

async fn start_calls(calls: CallsConfig) -> (Server, TempDir) {
    start_calls_with(calls, TurnConfig::default()).await
}

async fn start_calls_with(calls: CallsConfig, turn: TurnConfig) -> (Server, TempDir) {
    let dir = TempDir::new().unwrap();
    let config = Config { calls, turn, ..test_config(dir.path()) };
    (start_with(config).await, dir)
}

/// A session with `calling` (and messaging).
async fn calling(server: &Server, app: &App, user: &str) -> Session {
    server.session(&app.ticket(user)).await
}

/// A session of the same app with messaging only.
async fn messaging_only(server: &Server, app: &App, user: &str) -> Session {
    server.session_with(&app.ticket(user), json!({ "version": {"os": "test"}, "services": {"im": true} })).await
}

fn keys(frame: &Value) -> BTreeSet<String> {
    frame.as_object().unwrap_or_else(|| panic!("not an object: {frame}")).keys().cloned().collect()
}

fn set(words: &[&str]) -> BTreeSet<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// An ISO-8601 time with milliseconds and `Z` (docs/calls.md: "Times are ISO-8601 with milliseconds").
fn time_ms(frame: &Value, field: &str) -> DateTime<Utc> {
    let text = frame[field].as_str().unwrap_or_else(|| panic!("{field} is not a string: {frame}"));
    assert!(
        text.len() == 24 && text.ends_with('Z') && text.as_bytes()[19] == b'.',
        "{field} is not ISO-8601 with milliseconds: {frame}"
    );
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

/// A placed call as the caller knows it.
#[derive(Debug, Clone)]
struct Placed {
    id: String,
    started_at: String,
}

/// Sends `call.start` and checks `call.placed`.
async fn place(a: &mut Rt, callee: &str, reference: &str) -> Placed {
    a.send(json!({ "type": "call.start", "ref": reference, "calleeId": callee, "sdp": OFFER })).await;
    placed_frame(&a.expect("call.placed").await, callee, reference)
}

fn placed_frame(frame: &Value, callee: &str, reference: &str) -> Placed {
    assert_eq!(keys(frame), set(&["type", "ref", "callId", "calleeId", "startedAt"]), "{frame}");
    assert_eq!(frame["ref"], reference, "{frame}");
    assert_eq!(frame["calleeId"], callee, "{frame}");
    let id = frame["callId"].as_str().unwrap().to_owned();
    let uuid = uuid::Uuid::parse_str(&id).unwrap_or_else(|_| panic!("callId is not a UUID: {frame}"));
    assert_eq!(uuid.get_version_num(), 7, "callId is not a UUIDv7: {frame}");
    let started = time_ms(frame, "startedAt");
    assert!((Utc::now() - started).num_seconds().abs() < 5, "startedAt is not now: {frame}");
    Placed { id, started_at: frame["startedAt"].as_str().unwrap().to_owned() }
}

fn assert_incoming(frame: &Value, call: &Placed, caller: &str, callee: &str, headers: &Value) {
    assert_eq!(frame["type"], "call.incoming", "{frame}");
    assert_eq!(keys(frame), set(&["type", "callId", "callerId", "calleeId", "sdp", "headers", "startedAt"]), "{frame}");
    assert_eq!(frame["callId"], call.id.as_str(), "{frame}");
    assert_eq!(frame["callerId"], caller, "{frame}");
    assert_eq!(frame["calleeId"], callee, "{frame}");
    assert_eq!(frame["sdp"], OFFER, "{frame}");
    assert_eq!(&frame["headers"], headers, "{frame}");
    assert_eq!(frame["startedAt"], call.started_at.as_str(), "{frame}");
}

fn assert_progress(frame: &Value, call: &Placed) {
    assert_eq!(frame["type"], "call.progress", "{frame}");
    assert_eq!(keys(frame), set(&["type", "callId", "state"]), "{frame}");
    assert_eq!(frame["callId"], call.id.as_str(), "{frame}");
    assert_eq!(frame["state"], "ringing", "{frame}");
}

fn assert_candidate(frame: &Value, call: &Placed, candidate: &Value) {
    assert_eq!(frame["type"], "call.candidate", "{frame}");
    assert_eq!(keys(frame), set(&["type", "callId", "candidate"]), "{frame}");
    assert_eq!(frame["callId"], call.id.as_str(), "{frame}");
    assert_eq!(&frame["candidate"], candidate, "relayed as sent: {frame}");
}

/// `call.ended` with every field: `answered_at` is the answer's time as the parties were told it (or None).
fn assert_ended(
    frame: &Value,
    call: &Placed,
    cause: &str,
    ended_by: &str,
    answered_at: Option<&str>,
    detail: Option<&str>,
) {
    assert_eq!(frame["type"], "call.ended", "{frame}");
    let allowed =
        set(&["type", "callId", "cause", "endedBy", "startedAt", "answeredAt", "endedAt", "durationMs", "detail"]);
    let have = keys(frame);
    assert!(have.is_subset(&allowed), "fields beyond docs/calls.md: {frame}");
    let required = set(&["type", "callId", "cause", "endedBy", "startedAt", "answeredAt", "endedAt", "durationMs"]);
    assert!(required.is_subset(&have), "missing fields: {frame}");
    assert_eq!(frame["callId"], call.id.as_str(), "{frame}");
    assert_eq!(frame["cause"], cause, "{frame}");
    assert_eq!(frame["endedBy"], ended_by, "{frame}");
    assert_eq!(frame["startedAt"], call.started_at.as_str(), "{frame}");
    let started = time_ms(frame, "startedAt");
    let ended = time_ms(frame, "endedAt");
    assert!(ended >= started, "ended before it started: {frame}");
    let duration = frame["durationMs"].as_i64().unwrap_or_else(|| panic!("durationMs is not an integer: {frame}"));
    match answered_at {
        Some(at) => {
            assert_eq!(frame["answeredAt"], at, "{frame}");
            let answered = time_ms(frame, "answeredAt");
            assert!(answered >= started && ended >= answered, "{frame}");
            assert!(duration >= 0, "{frame}");
            let told = (ended - answered).num_milliseconds();
            assert!((duration - told).abs() <= 1, "durationMs is answered → ended ({told} ms): {frame}");
        }
        None => {
            assert!(frame["answeredAt"].is_null(), "answeredAt of a call never answered: {frame}");
            assert_eq!(duration, 0, "durationMs of a call never answered: {frame}");
        }
    }
    match detail {
        Some(detail) => assert_eq!(frame["detail"], detail, "{frame}"),
        None => assert!(frame["detail"].is_null(), "an unexpected detail: {frame}"),
    }
}

/// An error frame for `reference` with `reason`.
async fn refused(rt: &mut Rt, reference: &str, reason: &str) -> Value {
    let frame = rt.expect("error").await;
    assert_error_frame(&frame, reason);
    assert_eq!(frame["ref"], reference, "{frame}");
    frame
}

/// The record of call `id` once it has ended (records are written behind the signaling: polled briefly).
async fn ended_record(server: &Server, app: &App, id: &str) -> callbox_server::store::CallRecord {
    let store = server.raw_store().await;
    let started = Instant::now();
    loop {
        let records = store.list_calls(&app.key, None, 100).await.unwrap();
        let mine: Vec<_> = records.into_iter().filter(|r| r.id == id).collect();
        assert!(mine.len() <= 1, "one record per call: {mine:?}");
        if let Some(record) = mine.into_iter().next().filter(|r| r.ended_at.is_some()) {
            return record;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "no ended record of {id} within 3 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The connection still answers.
async fn still_open(rt: &mut Rt) {
    rt.send(json!({ "type": "ping" })).await;
    rt.expect("pong").await;
}

/// Alice's call to `callee` rung on `devices` (each gets `call.incoming`), and alice told it rings.
async fn ring(a: &mut Rt, callee: &str, devices: &mut [&mut Rt]) -> Placed {
    let call = place(a, callee, "start").await;
    for device in devices.iter_mut() {
        assert_incoming(&device.expect("call.incoming").await, &call, "alice", callee, &json!({}));
    }
    assert_progress(&a.expect("call.progress").await, &call);
    call
}

/// `b` answers; both sides are told. The answer's time.
async fn answer(a: &mut Rt, b: &mut Rt, call: &Placed) -> String {
    b.send(json!({ "type": "call.answer", "ref": "answer", "callId": call.id, "sdp": ANSWER })).await;
    let to_caller = a.expect("call.answered").await;
    assert_eq!(keys(&to_caller), set(&["type", "callId", "answeredAt", "sdp"]), "{to_caller}");
    assert_eq!(to_caller["callId"], call.id.as_str());
    assert_eq!(to_caller["sdp"], ANSWER);
    let to_callee = b.expect("call.answered").await;
    assert_eq!(keys(&to_callee), set(&["type", "callId", "answeredAt"]), "the caller's SDP is not echoed: {to_callee}");
    assert_eq!(to_callee["callId"], call.id.as_str());
    assert_eq!(to_callee["answeredAt"], to_caller["answeredAt"]);
    let at = time_ms(&to_caller, "answeredAt");
    assert!(at >= DateTime::parse_from_rfc3339(&call.started_at).unwrap().with_timezone(&Utc));
    to_caller["answeredAt"].as_str().unwrap().to_owned()
}

fn candidate(text: &str) -> Value {
    json!({
        "candidate": format!("candidate:{text} 1 udp 2122260223 192.0.2.1 54400 typ host"),
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": "abcd",
    })
}

async fn send_candidate(rt: &mut Rt, call: &Placed, candidate: &Value) {
    rt.send(json!({ "type": "call.candidate", "callId": call.id, "candidate": candidate })).await;
}

// ----- a whole call --------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_call_runs_from_start_to_hang_up_with_every_frame_as_documented() {
    let (server, _dir) = start_calls(quick()).await;
    let app = server.create_app(json!({})).await;
    let alice = calling(&server, &app, "alice").await;
    let bob = calling(&server, &app, "bob").await;
    let mut a = connect(&server, &alice, None).await;
    let mut b = connect(&server, &bob, None).await;
    assert!(a.ready["capabilities"].as_array().unwrap().contains(&json!("calling")), "{}", a.ready);
    // Bystanders: alice's other device, and a connection of bob's without calling. Neither hears of the call.
    let alice_elsewhere = calling(&server, &app, "alice").await;
    let mut a_elsewhere = connect(&server, &alice_elsewhere, None).await;
    let bob_messaging = messaging_only(&server, &app, "bob").await;
    let mut b_messaging = connect(&server, &bob_messaging, None).await;

    let headers = json!({ "topic": "support", "priority": 2 });
    a.send(json!({ "type": "call.start", "ref": "r1", "calleeId": "bob", "sdp": OFFER, "headers": headers })).await;
    let call = placed_frame(&a.expect("call.placed").await, "bob", "r1");
    assert_incoming(&b.expect("call.incoming").await, &call, "alice", "bob", &headers);
    assert_progress(&a.expect("call.progress").await, &call);

    // Before the answer: the caller's candidates reach the ringing callee; the callee's are refused.
    let from_alice = candidate("a1");
    send_candidate(&mut a, &call, &from_alice).await;
    assert_candidate(&b.expect("call.candidate").await, &call, &from_alice);
    b.send(json!({ "type": "call.candidate", "ref": "early", "callId": call.id, "candidate": candidate("b0") })).await;
    refused(&mut b, "early", "malformed_request").await;
    a.quiet_for(Duration::from_millis(200)).await;

    let answered_at = answer(&mut a, &mut b, &call).await;

    // After it: both ways, in order.
    let (b1, b2) = (candidate("b1"), candidate("b2"));
    send_candidate(&mut b, &call, &b1).await;
    send_candidate(&mut b, &call, &b2).await;
    assert_candidate(&a.expect("call.candidate").await, &call, &b1);
    assert_candidate(&a.expect("call.candidate").await, &call, &b2);
    let a2 = candidate("a2");
    send_candidate(&mut a, &call, &a2).await;
    assert_candidate(&b.expect("call.candidate").await, &call, &a2);

    tokio::time::sleep(Duration::from_millis(50)).await;
    a.send(json!({ "type": "call.hangup", "callId": call.id })).await;
    let to_alice = a.expect("call.ended").await;
    let to_bob = b.expect("call.ended").await;
    assert_ended(&to_alice, &call, "hung_up", "caller", Some(&answered_at), None);
    assert_ended(&to_bob, &call, "hung_up", "caller", Some(&answered_at), None);
    assert_eq!(to_alice, to_bob, "both sides are told the same end");
    assert!(to_alice["durationMs"].as_i64().unwrap() >= 50, "{to_alice}");

    // The call id is unknown now on both connections, for every frame.
    for (rt, who) in [(&mut a, "alice"), (&mut b, "bob")] {
        let frames = [
            json!({ "type": "call.candidate", "ref": "x1", "callId": call.id, "candidate": candidate("late") }),
            json!({ "type": "call.hangup", "ref": "x2", "callId": call.id }),
            json!({ "type": "call.answer", "ref": "x3", "callId": call.id, "sdp": ANSWER }),
            json!({ "type": "call.decline", "ref": "x4", "callId": call.id }),
            json!({ "type": "call.rejoin", "ref": "x5", "callId": call.id }),
        ];
        for frame in frames {
            rt.send(frame.clone()).await;
            let error = rt.expect("error").await;
            assert_error_frame(&error, "not_found");
            assert_eq!(error["ref"], frame["ref"], "{who}: {error}");
        }
    }
    a.quiet_for(Duration::from_millis(200)).await;
    b.quiet_for(Duration::from_millis(100)).await;
    a_elsewhere.quiet_for(Duration::from_millis(50)).await;
    b_messaging.quiet_for(Duration::from_millis(50)).await;
}

// ----- every end cause -----------------------------------------------------------------------------------------

/// A server, an app, alice's and bob's calling connections.
async fn pair(calls: CallsConfig) -> (Server, TempDir, App, Rt, Rt) {
    let (server, dir, app, _sessions, a, b) = pair_with_sessions(calls).await;
    (server, dir, app, a, b)
}

/// As [`pair`], with alice's and bob's sessions (a reconnecting client rejoins with its own session).
async fn pair_with_sessions(calls: CallsConfig) -> (Server, TempDir, App, [Session; 2], Rt, Rt) {
    let (server, dir) = start_calls(calls).await;
    let app = server.create_app(json!({})).await;
    let alice = calling(&server, &app, "alice").await;
    let bob = calling(&server, &app, "bob").await;
    let a = connect(&server, &alice, None).await;
    let b = connect(&server, &bob, None).await;
    (server, dir, app, [alice, bob], a, b)
}

#[tokio::test]
async fn the_caller_hanging_up_while_it_rings_cancels() {
    let (_server, _dir, _app, mut a, mut b) = pair(quick()).await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    a.send(json!({ "type": "call.hangup", "callId": call.id })).await;
    assert_ended(&a.expect("call.ended").await, &call, "canceled", "caller", None, None);
    assert_ended(&b.expect("call.ended").await, &call, "canceled", "caller", None, None);
    b.send(json!({ "type": "call.answer", "ref": "late", "callId": call.id, "sdp": ANSWER })).await;
    refused(&mut b, "late", "not_found").await;
}

#[tokio::test]
async fn a_callee_declining_denies_on_every_device() {
    let (server, _dir, app, mut a, mut b) = pair(quick()).await;
    let bob2 = calling(&server, &app, "bob").await;
    let mut b2 = connect(&server, &bob2, None).await;
    let call = ring(&mut a, "bob", &mut [&mut b, &mut b2]).await;
    b.send(json!({ "type": "call.decline", "callId": call.id })).await;
    assert_ended(&a.expect("call.ended").await, &call, "denied", "callee", None, None);
    assert_ended(&b.expect("call.ended").await, &call, "denied", "callee", None, None);
    assert_ended(&b2.expect("call.ended").await, &call, "denied", "callee", None, None);
}

#[tokio::test]
async fn nobody_answering_within_the_answer_timeout_is_no_answer() {
    let (_server, _dir, _app, mut a, mut b) = pair(CallsConfig { answer_timeout_seconds: 1, ..quick() }).await;
    let started = Instant::now();
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    assert_ended(&a.expect("call.ended").await, &call, "no_answer", "server", None, None);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500), "after {waited:?}");
    assert_ended(&b.expect("call.ended").await, &call, "no_answer", "server", None, None);
}

/// Offline, unknown, of another app, or without `calling`: the caller is told the same, at once, and nobody else
/// hears of it.
#[tokio::test]
async fn every_unreachable_callee_is_unavailable_at_once_and_indistinguishable() {
    let (server, _dir, app, mut a, _b) = pair(quick()).await;
    // carol has a calling session but no connection; dave a connection without calling; erin is of another app.
    calling(&server, &app, "carol").await;
    let dave = messaging_only(&server, &app, "dave").await;
    let mut d = connect(&server, &dave, None).await;
    assert!(!d.ready["capabilities"].as_array().unwrap().contains(&json!("calling")), "{}", d.ready);
    let other = server.create_app(json!({})).await;
    let erin = calling(&server, &other, "erin").await;
    let mut e = connect(&server, &erin, None).await;

    let mut shapes = Vec::new();
    for callee in ["carol", "nobody-at-all", "erin", "dave"] {
        let started = Instant::now();
        let call = place(&mut a, callee, callee).await;
        let ended = a.expect("call.ended").await;
        assert!(started.elapsed() < Duration::from_millis(500), "{callee}: after {:?}", started.elapsed());
        assert_ended(&ended, &call, "no_answer", "server", None, Some("unavailable"));
        let mut shape = ended.clone();
        for varying in ["callId", "startedAt", "endedAt"] {
            shape.as_object_mut().unwrap().remove(varying);
        }
        shapes.push((callee, shape));
    }
    for (callee, shape) in &shapes[1..] {
        assert_eq!(shape, &shapes[0].1, "{callee} told apart from {}", shapes[0].0);
    }
    d.quiet_for(Duration::from_millis(200)).await;
    e.quiet_for(Duration::from_millis(100)).await;
}

/// Rings bob and answers, then `side` ("caller" or "callee") sends `call.hangup` with `cause`; both sides must
/// be told `expected`, ended by that side, with the answer time.
async fn hang_up_after_answer(a: &mut Rt, b: &mut Rt, side: &str, cause: Option<&str>, expected: &str) {
    let call = ring(a, "bob", &mut [&mut *b]).await;
    let answered_at = answer(a, b, &call).await;
    let mut hangup = json!({ "type": "call.hangup", "callId": call.id });
    if let Some(cause) = cause {
        hangup["cause"] = json!(cause);
    }
    if side == "caller" {
        a.send(hangup).await
    } else {
        b.send(hangup).await
    }
    assert_ended(&a.expect("call.ended").await, &call, expected, side, Some(&answered_at), None);
    assert_ended(&b.expect("call.ended").await, &call, expected, side, Some(&answered_at), None);
}

#[tokio::test]
async fn the_callee_hanging_up_after_the_answer_is_hung_up_by_the_callee() {
    let (_server, _dir, _app, mut a, mut b) = pair(quick()).await;
    // A cause other than `failure` is an ordinary hang-up.
    hang_up_after_answer(&mut a, &mut b, "callee", Some("bye"), "hung_up").await;
}

#[tokio::test]
async fn a_hang_up_with_cause_failure_ends_with_failure_by_that_side() {
    let (_server, _dir, _app, mut a, mut b) = pair(quick()).await;
    hang_up_after_answer(&mut a, &mut b, "caller", Some("failure"), "failure").await;
    hang_up_after_answer(&mut a, &mut b, "callee", Some("failure"), "failure").await;
}

#[tokio::test]
async fn a_dropped_side_that_does_not_rejoin_within_the_grace_times_out() {
    let (server, _dir, app, mut a, mut b) = pair(quick()).await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    let answered_at = answer(&mut a, &mut b, &call).await;
    let dropped = Instant::now();
    drop(b);
    assert_ended(&a.expect("call.ended").await, &call, "timeout", "server", Some(&answered_at), None);
    let waited = dropped.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500), "after {waited:?}");
    let record = ended_record(&server, &app, &call.id).await;
    assert_eq!((record.end_cause.as_deref(), record.ended_by.as_deref()), (Some("timeout"), Some("server")));
    assert!(record.answered_at.is_some(), "{record:?}");
}

#[tokio::test]
async fn a_dropped_caller_times_out_for_the_ringing_callee_too() {
    let (_server, _dir, _app, mut a, mut b) = pair(quick()).await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    drop(a);
    assert_ended(&b.expect("call.ended").await, &call, "timeout", "server", None, None);
}

#[tokio::test]
async fn a_side_rejoining_within_the_grace_keeps_the_call_and_goes_on_from_the_new_connection() {
    let (server, _dir, _app, [_, bob], mut a, mut b) =
        pair_with_sessions(CallsConfig { grace_seconds: 2, ..quick() }).await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    let answered_at = answer(&mut a, &mut b, &call).await;
    drop(b);
    // bob's client reconnects with its session and rejoins.
    let mut b = connect(&server, &bob, None).await;
    b.send(json!({ "type": "call.rejoin", "ref": "rj", "callId": call.id })).await;
    let rejoined = b.expect("call.rejoined").await;
    assert_eq!(keys(&rejoined), set(&["type", "ref", "callId", "state"]), "{rejoined}");
    assert_eq!((rejoined["ref"].as_str(), rejoined["callId"].as_str()), (Some("rj"), Some(call.id.as_str())));
    assert_eq!(rejoined["state"], "answered");
    // Past the grace: the call still goes on, and nothing reached alice meanwhile.
    a.quiet_for(Duration::from_millis(2500)).await;
    let a1 = candidate("after-rejoin");
    send_candidate(&mut a, &call, &a1).await;
    assert_candidate(&b.expect("call.candidate").await, &call, &a1);
    b.send(json!({ "type": "call.hangup", "callId": call.id })).await;
    assert_ended(&a.expect("call.ended").await, &call, "hung_up", "callee", Some(&answered_at), None);
    assert_ended(&b.expect("call.ended").await, &call, "hung_up", "callee", Some(&answered_at), None);
}

#[tokio::test]
async fn a_caller_rejoining_while_it_rings_is_told_ringing_and_gets_the_answer() {
    let (server, _dir, _app, [alice, _], mut a, mut b) =
        pair_with_sessions(CallsConfig { grace_seconds: 2, ..quick() }).await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    drop(a);
    let mut a = connect(&server, &alice, None).await;
    a.send(json!({ "type": "call.rejoin", "ref": "rj", "callId": call.id })).await;
    let rejoined = a.expect("call.rejoined").await;
    assert_eq!(keys(&rejoined), set(&["type", "ref", "callId", "state"]), "{rejoined}");
    assert_eq!(rejoined["state"], "ringing", "{rejoined}");
    answer(&mut a, &mut b, &call).await;
}

#[tokio::test]
async fn a_caller_that_was_away_when_the_answer_came_gets_it_on_rejoin() {
    let (server, _dir, _app, [alice, _bob], a, mut b) = pair_with_sessions(CallsConfig::default()).await;
    let mut a = a;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    drop(a); // alice's socket goes away while it rings
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.send(json!({ "type": "call.answer", "callId": call.id, "sdp": "v=0 answer" })).await;
    b.expect("call.answered").await;
    let mut a = connect(&server, &alice, None).await;
    a.send(json!({ "type": "call.rejoin", "ref": "rj", "callId": call.id })).await;
    let rejoined = a.expect("call.rejoined").await;
    assert_eq!((rejoined["ref"].as_str(), rejoined["state"].as_str()), (Some("rj"), Some("answered")));
    assert_eq!(rejoined["sdp"], "v=0 answer");
    assert!(rejoined["answeredAt"].is_string());
    // The rejoined connection is the caller now: its hangup ends the call for bob.
    a.send(json!({ "type": "call.hangup", "callId": call.id })).await;
    assert_eq!(b.expect("call.ended").await["cause"], "hung_up");
}

#[tokio::test]
async fn a_rejoin_after_the_grace_or_from_another_session_is_not_found() {
    let (server, _dir, app, [_, bob], mut a, mut b) = pair_with_sessions(quick()).await;
    let carol = calling(&server, &app, "carol").await;
    let bobs_other_session = calling(&server, &app, "bob").await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    let answered_at = answer(&mut a, &mut b, &call).await;
    drop(b);
    // Neither carol nor another session of bob's takes bob's place in the grace (docs/calls.md: "a reconnecting
    // client of the same session").
    for (session, who) in [(&carol, "carol"), (&bobs_other_session, "bob's other session")] {
        let mut other = connect(&server, session, None).await;
        other.send(json!({ "type": "call.rejoin", "ref": "steal", "callId": call.id })).await;
        let error = other.expect("error").await;
        assert_error_frame(&error, "not_found");
        assert_eq!(error["ref"], "steal", "{who}: {error}");
    }
    assert_ended(&a.expect("call.ended").await, &call, "timeout", "server", Some(&answered_at), None);
    let mut b = connect(&server, &bob, None).await;
    b.send(json!({ "type": "call.rejoin", "ref": "late", "callId": call.id })).await;
    refused(&mut b, "late", "not_found").await;
}

#[tokio::test]
async fn a_ringing_callee_device_that_reconnects_rejoins_ringing_and_answers() {
    let (server, _dir, _app, [_, bob], mut a, mut b) =
        pair_with_sessions(CallsConfig { grace_seconds: 2, ..quick() }).await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    drop(b);
    let mut b = connect(&server, &bob, None).await;
    b.send(json!({ "type": "call.rejoin", "ref": "rj", "callId": call.id })).await;
    let rejoined = b.expect("call.rejoined").await;
    assert_eq!(keys(&rejoined), set(&["type", "ref", "callId", "state"]), "{rejoined}");
    assert_eq!((rejoined["ref"].as_str(), rejoined["state"].as_str()), (Some("rj"), Some("ringing")));
    let from_alice = candidate("a1");
    send_candidate(&mut a, &call, &from_alice).await;
    assert_candidate(&b.expect("call.candidate").await, &call, &from_alice);
    answer(&mut a, &mut b, &call).await;
}

/// Ends a session of bob's or alice's (or the user) through the admin API while they talk; the other side is
/// told `revoked` within a second.
async fn revoked_case(revoke_callee: bool, how: &str) {
    let (server, _dir) = start_calls(quick()).await;
    let app = server.create_app(json!({})).await;
    let platform = |user: &'static str| {
        let server = &server;
        let app = &app;
        async move {
            assert_eq!(server.sign_up(&app.key, user, "correct horse battery").await.status(), 200);
            let ticket: Value = server.log_in(&app.key, user, "correct horse battery").await.json().await.unwrap();
            server.session(ticket["authorization"].as_str().unwrap()).await
        }
    };
    let alice = platform("alice").await;
    let bob = platform("bob").await;
    let mut a = connect(&server, &alice, None).await;
    let mut b = connect(&server, &bob, None).await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    let answered_at = answer(&mut a, &mut b, &call).await;
    let (target, user, mut other, gone) = if revoke_callee { (&bob, "bob", a, b) } else { (&alice, "alice", b, a) };
    let started = Instant::now();
    match how {
        "session" => {
            let path = format!("/admin/v1/apps/{}/sessions/{}", app.key, target.id);
            assert_eq!(server.admin(Method::DELETE, &path, None).await.status(), 204);
        }
        "user" => {
            let path = format!("/admin/v1/apps/{}/users/{user}/disable", app.key);
            assert_eq!(server.admin(Method::POST, &path, None).await.status(), 200);
        }
        _ => unreachable!(),
    }
    assert_ended(&other.expect("call.ended").await, &call, "revoked", "server", Some(&answered_at), None);
    assert!(started.elapsed() < Duration::from_secs(1), "after {:?}", started.elapsed());
    // The revoked side's socket closes as docs/realtime.md says (the call's end may come before).
    let closed = gone.closed_within(Duration::from_secs(1)).await;
    match how {
        "session" => assert_closed(&closed, 4401, "session_revoked"),
        _ => assert_closed(&closed, 4403, "user_disabled"),
    }
    let record = ended_record(&server, &app, &call.id).await;
    assert_eq!((record.end_cause.as_deref(), record.ended_by.as_deref()), (Some("revoked"), Some("server")));
}

#[tokio::test]
async fn revoking_the_callees_session_ends_the_call_as_revoked_for_the_caller() {
    revoked_case(true, "session").await;
}

#[tokio::test]
async fn revoking_the_callers_session_ends_the_call_as_revoked_for_the_callee() {
    revoked_case(false, "session").await;
}

#[tokio::test]
async fn disabling_the_callee_ends_the_call_as_revoked_for_the_caller() {
    revoked_case(true, "user").await;
}

#[tokio::test]
async fn disabling_the_caller_ends_the_call_as_revoked_for_the_callee() {
    revoked_case(false, "user").await;
}

// ----- answered elsewhere --------------------------------------------------------------------------------------

#[tokio::test]
async fn the_first_device_to_answer_wins_and_the_others_are_told_other_device_answered() {
    let (server, _dir, app, mut a, mut b1) = pair(quick()).await;
    let bob = calling(&server, &app, "bob").await;
    let mut b2 = connect(&server, &bob, None).await;
    let call = ring(&mut a, "bob", &mut [&mut b1, &mut b2]).await;
    let from_alice = candidate("a1");
    send_candidate(&mut a, &call, &from_alice).await;
    assert_candidate(&b1.expect("call.candidate").await, &call, &from_alice);
    assert_candidate(&b2.expect("call.candidate").await, &call, &from_alice);

    let answered_at = answer(&mut a, &mut b1, &call).await;
    let elsewhere = b2.expect("call.ended").await;
    assert_eq!(elsewhere["callId"], call.id.as_str(), "{elsewhere}");
    assert_eq!(elsewhere["cause"], "other_device_answered", "{elsewhere}");
    assert_eq!(elsewhere["endedBy"], "callee", "{elsewhere}");
    assert_eq!(elsewhere["startedAt"], call.started_at.as_str(), "{elsewhere}");
    time_ms(&elsewhere, "endedAt");

    // The call left b2: docs/calls.md, "After call.ended the call id is unknown on that connection".
    b2.send(json!({ "type": "call.answer", "ref": "again", "callId": call.id, "sdp": ANSWER })).await;
    refused(&mut b2, "again", "not_found").await;
    b2.send(json!({ "type": "call.decline", "ref": "decline", "callId": call.id })).await;
    refused(&mut b2, "decline", "not_found").await;
    // The answering device answering or declining again: already answered.
    b1.send(json!({ "type": "call.answer", "ref": "twice", "callId": call.id, "sdp": ANSWER })).await;
    refused(&mut b1, "twice", "call_already_answered").await;
    b1.send(json!({ "type": "call.decline", "ref": "decline", "callId": call.id })).await;
    refused(&mut b1, "decline", "call_already_answered").await;

    // Alice's candidates now go to b1 only; b2 hears nothing more of the call.
    let later = candidate("a2");
    send_candidate(&mut a, &call, &later).await;
    assert_candidate(&b1.expect("call.candidate").await, &call, &later);
    a.send(json!({ "type": "call.hangup", "callId": call.id })).await;
    assert_ended(&a.expect("call.ended").await, &call, "hung_up", "caller", Some(&answered_at), None);
    assert_ended(&b1.expect("call.ended").await, &call, "hung_up", "caller", Some(&answered_at), None);
    b2.quiet_for(Duration::from_millis(200)).await;
}

// ----- refusals ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_call_frame_needs_the_calling_capability() {
    let (server, _dir, app, mut a, mut b) = pair(quick()).await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    let carol = messaging_only(&server, &app, "carol").await;
    let mut c = connect(&server, &carol, None).await;
    let frames = [
        json!({ "type": "call.start", "ref": "1", "calleeId": "bob", "sdp": OFFER }),
        json!({ "type": "call.answer", "ref": "2", "callId": call.id, "sdp": ANSWER }),
        json!({ "type": "call.decline", "ref": "3", "callId": call.id }),
        json!({ "type": "call.candidate", "ref": "4", "callId": call.id, "candidate": candidate("c") }),
        json!({ "type": "call.hangup", "ref": "5", "callId": call.id }),
        json!({ "type": "call.rejoin", "ref": "6", "callId": call.id }),
        // Even a malformed one: the capability comes first.
        json!({ "type": "call.start", "ref": "7" }),
    ];
    for frame in frames {
        c.send(frame.clone()).await;
        refused(&mut c, frame["ref"].as_str().unwrap(), "capability_not_granted").await;
    }
    still_open(&mut c).await;
    // Bob's ringing call is untouched.
    a.quiet_for(Duration::from_millis(200)).await;
    b.quiet_for(Duration::from_millis(100)).await;
    answer(&mut a, &mut b, &call).await;
}

#[tokio::test]
async fn missing_or_mistyped_fields_and_calling_yourself_are_malformed() {
    let (_server, _dir, _app, mut a, mut b) = pair(quick()).await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    let id = call.id.as_str();
    let frames = [
        json!({ "type": "call.start", "ref": "s1", "sdp": OFFER }),
        json!({ "type": "call.start", "ref": "s2", "calleeId": 42, "sdp": OFFER }),
        json!({ "type": "call.start", "ref": "s3", "calleeId": "bob" }),
        json!({ "type": "call.start", "ref": "s4", "calleeId": "bob", "sdp": 7 }),
        json!({ "type": "call.start", "ref": "s5", "calleeId": "bob", "sdp": OFFER, "headers": "x" }),
        json!({ "type": "call.start", "ref": "s6", "calleeId": "bob", "sdp": OFFER, "headers": [1] }),
        json!({ "type": "call.start", "ref": "s7", "calleeId": "", "sdp": OFFER }),
        json!({ "type": "call.start", "ref": "self", "calleeId": "alice", "sdp": OFFER }),
        json!({ "type": "call.candidate", "ref": "c1", "callId": id }),
        json!({ "type": "call.candidate", "ref": "c2", "callId": id, "candidate": "candidate:1" }),
        json!({ "type": "call.candidate", "ref": "c3", "candidate": candidate("x") }),
        json!({ "type": "call.candidate", "ref": "c4", "callId": 5, "candidate": candidate("x") }),
        json!({ "type": "call.hangup", "ref": "h1" }),
        json!({ "type": "call.hangup", "ref": "h2", "callId": [id] }),
        json!({ "type": "call.rejoin", "ref": "j1" }),
    ];
    for frame in frames {
        a.send(frame.clone()).await;
        refused(&mut a, frame["ref"].as_str().unwrap(), "malformed_request").await;
    }
    let callee_frames = [
        json!({ "type": "call.answer", "ref": "a1", "callId": id }),
        json!({ "type": "call.answer", "ref": "a2", "callId": id, "sdp": false }),
        json!({ "type": "call.answer", "ref": "a3", "sdp": ANSWER }),
        json!({ "type": "call.decline", "ref": "d1" }),
        json!({ "type": "call.decline", "ref": "d2", "callId": {} }),
    ];
    for frame in callee_frames {
        b.send(frame.clone()).await;
        refused(&mut b, frame["ref"].as_str().unwrap(), "malformed_request").await;
    }
    // None of it touched the call; both connections stay.
    a.quiet_for(Duration::from_millis(100)).await;
    b.quiet_for(Duration::from_millis(100)).await;
    answer(&mut a, &mut b, &call).await;
}

#[tokio::test]
async fn oversize_sdp_candidate_and_headers_are_payload_too_large_and_the_limits_themselves_pass() {
    let calls = CallsConfig { max_sdp_bytes: 2000, max_candidate_bytes: 300, ..quick() };
    let (_server, _dir, _app, mut a, mut b) = pair(calls).await;
    let over = "s".repeat(2001);
    a.send(json!({ "type": "call.start", "ref": "big", "calleeId": "bob", "sdp": over })).await;
    refused(&mut a, "big", "payload_too_large").await;
    let headers = json!({ "h": "x".repeat(1100) });
    a.send(json!({ "type": "call.start", "ref": "hdr", "calleeId": "bob", "sdp": OFFER, "headers": headers })).await;
    refused(&mut a, "hdr", "payload_too_large").await;
    b.quiet_for(Duration::from_millis(200)).await;

    // An offer of exactly the limit is placed.
    let exact = "s".repeat(2000);
    a.send(json!({ "type": "call.start", "ref": "exact", "calleeId": "bob", "sdp": exact })).await;
    let call = placed_frame(&a.expect("call.placed").await, "bob", "exact");
    assert_eq!(b.expect("call.incoming").await["sdp"], exact.as_str());
    assert_progress(&a.expect("call.progress").await, &call);

    let big_candidate = json!({ "candidate": "c".repeat(300), "sdpMid": "0", "sdpMLineIndex": 0 });
    a.send(json!({ "type": "call.candidate", "ref": "cand", "callId": call.id, "candidate": big_candidate })).await;
    refused(&mut a, "cand", "payload_too_large").await;
    b.send(json!({ "type": "call.answer", "ref": "ans", "callId": call.id, "sdp": over })).await;
    refused(&mut b, "ans", "payload_too_large").await;
    b.quiet_for(Duration::from_millis(100)).await;
    // The call still rings and is answered.
    answer(&mut a, &mut b, &call).await;
}

#[tokio::test]
async fn a_call_id_of_other_parties_is_not_found_and_the_real_call_hears_nothing() {
    let (server, _dir, app, mut a, mut b) = pair(quick()).await;
    let carol = calling(&server, &app, "carol").await;
    let mut c = connect(&server, &carol, None).await;
    let other = server.create_app(json!({})).await;
    // A "bob" of another app, with a calling session: same user id, other app.
    let other_bob = calling(&server, &other, "bob").await;
    let mut ob = connect(&server, &other_bob, None).await;
    let ringing = ring(&mut a, "bob", &mut [&mut b]).await;
    for (rt, who) in [(&mut c, "carol"), (&mut ob, "the other app's bob")] {
        let frames = [
            json!({ "type": "call.candidate", "ref": "1", "callId": ringing.id, "candidate": candidate("x") }),
            json!({ "type": "call.hangup", "ref": "2", "callId": ringing.id }),
            json!({ "type": "call.answer", "ref": "3", "callId": ringing.id, "sdp": ANSWER }),
            json!({ "type": "call.decline", "ref": "4", "callId": ringing.id }),
            json!({ "type": "call.rejoin", "ref": "5", "callId": ringing.id }),
            // An id of no call at all is answered the same.
            json!({ "type": "call.hangup", "ref": "6", "callId": uuid::Uuid::now_v7().to_string() }),
        ];
        for frame in frames {
            rt.send(frame.clone()).await;
            let error = rt.expect("error").await;
            assert_error_frame(&error, "not_found");
            assert_eq!(error["ref"], frame["ref"], "{who}: {error}");
        }
    }
    a.quiet_for(Duration::from_millis(200)).await;
    b.quiet_for(Duration::from_millis(100)).await;
    let answered_at = answer(&mut a, &mut b, &ringing).await;
    // And once answered, still nobody else's to end.
    c.send(json!({ "type": "call.hangup", "ref": "7", "callId": ringing.id })).await;
    refused(&mut c, "7", "not_found").await;
    ob.send(json!({ "type": "call.candidate", "ref": "8", "callId": ringing.id, "candidate": candidate("y") })).await;
    refused(&mut ob, "8", "not_found").await;
    a.quiet_for(Duration::from_millis(200)).await;
    b.quiet_for(Duration::from_millis(100)).await;
    let from_bob = candidate("b1");
    send_candidate(&mut b, &ringing, &from_bob).await;
    assert_candidate(&a.expect("call.candidate").await, &ringing, &from_bob);
    a.send(json!({ "type": "call.hangup", "callId": ringing.id })).await;
    assert_ended(&a.expect("call.ended").await, &ringing, "hung_up", "caller", Some(&answered_at), None);
    assert_ended(&b.expect("call.ended").await, &ringing, "hung_up", "caller", Some(&answered_at), None);
}

#[tokio::test]
async fn call_starts_beyond_the_session_rate_are_rate_limited_with_retry_after() {
    let calls = CallsConfig { attempts_per_minute: 1, attempt_burst: 3, ..quick() };
    let (server, _dir, app, mut a, _b) = pair(calls).await;
    // To nobody: each call ends at once, so the concurrency limit plays no part.
    for n in 0..3 {
        let call = place(&mut a, "nobody", &format!("ok{n}")).await;
        assert_ended(&a.expect("call.ended").await, &call, "no_answer", "server", None, Some("unavailable"));
    }
    a.send(json!({ "type": "call.start", "ref": "over", "calleeId": "nobody", "sdp": OFFER })).await;
    let error = refused(&mut a, "over", "rate_limited").await;
    let retry = error["retryAfter"].as_u64().unwrap_or_else(|| panic!("no integer retryAfter: {error}"));
    assert!((1..=60).contains(&retry), "{error}");
    assert_eq!(error["retryable"], true, "{error}");
    still_open(&mut a).await;
    // Per session: another session of alice's still calls.
    let alice2 = calling(&server, &app, "alice").await;
    let mut a2 = connect(&server, &alice2, None).await;
    let call = place(&mut a2, "nobody", "other-session").await;
    assert_ended(&a2.expect("call.ended").await, &call, "no_answer", "server", None, Some("unavailable"));
}

#[tokio::test]
async fn a_session_in_its_maximum_of_calls_is_refused_too_many_calls() {
    let (server, _dir, app, mut a, mut b) = pair(CallsConfig { max_concurrent_per_session: 2, ..quick() }).await;
    let carol = calling(&server, &app, "carol").await;
    let mut c = connect(&server, &carol, None).await;
    let dave = calling(&server, &app, "dave").await;
    let mut d = connect(&server, &dave, None).await;
    let to_bob = ring(&mut a, "bob", &mut [&mut b]).await;
    let to_carol = ring(&mut a, "carol", &mut [&mut c]).await;
    a.send(json!({ "type": "call.start", "ref": "third", "calleeId": "dave", "sdp": OFFER })).await;
    refused(&mut a, "third", "too_many_calls").await;
    d.quiet_for(Duration::from_millis(200)).await;
    // One ends: there is room again.
    a.send(json!({ "type": "call.hangup", "callId": to_carol.id })).await;
    assert_ended(&a.expect("call.ended").await, &to_carol, "canceled", "caller", None, None);
    ring(&mut a, "dave", &mut [&mut d]).await;
    answer(&mut a, &mut b, &to_bob).await;
}

#[tokio::test]
async fn a_call_the_session_answered_counts_toward_its_maximum_too() {
    // docs/calls.md: "calls a session takes part in at once", as caller or as callee.
    let (server, _dir, app, mut a, mut b) = pair(CallsConfig { max_concurrent_per_session: 1, ..quick() }).await;
    let carol = calling(&server, &app, "carol").await;
    let mut c = connect(&server, &carol, None).await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    answer(&mut a, &mut b, &call).await;
    b.send(json!({ "type": "call.start", "ref": "busy", "calleeId": "carol", "sdp": OFFER })).await;
    refused(&mut b, "busy", "too_many_calls").await;
    c.quiet_for(Duration::from_millis(200)).await;
}

// ----- TURN and STUN -------------------------------------------------------------------------------------------

const TURN_SECRET: &str = "turn-shared-secret-never-shown-7f3a";

fn turn() -> TurnConfig {
    TurnConfig {
        urls: vec!["turn:turn.test:3478?transport=udp".into(), "turn:turn.test:3478?transport=tcp".into()],
        stun_urls: vec!["stun:turn.test:3478".into()],
        shared_secret: Some(Redacted(TURN_SECRET.to_owned())),
        credential_ttl_seconds: 600,
    }
}

/// coturn's check, computed here without the server's code: base64(HMAC-SHA1(secret, username)).
fn coturn_password(secret: &str, username: &str) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn user_configuration(server: &Server, session: &Session) -> Value {
    let response = server.signed(Method::GET, "/v1/configuration/user", None, session).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn assert_legacy_fields(config: &Value) {
    for pointer in ["/rtcConfiguration/signalNetwork/host", "/rtcProfile/signalChannel", "/rtcProfile/key"] {
        assert!(config.pointer(pointer).and_then(Value::as_str).is_some(), "missing {pointer}: {config}");
    }
}

#[tokio::test]
async fn a_calling_session_gets_stun_and_turn_with_a_coturn_credential() {
    let (server, _dir) = start_calls_with(quick(), turn()).await;
    let app = server.create_app(json!({})).await;
    let bob = calling(&server, &app, "bob").await;
    let config = user_configuration(&server, &bob).await;
    assert_legacy_fields(&config);
    let servers = config["iceServers"].as_array().unwrap_or_else(|| panic!("no iceServers: {config}"));
    assert_eq!(servers.len(), 2, "{config}");
    assert_eq!(servers[0], json!({ "urls": ["stun:turn.test:3478"] }), "STUN without a credential: {config}");
    let relay = &servers[1];
    assert_eq!(keys(relay), set(&["urls", "username", "credential"]), "{relay}");
    assert_eq!(relay["urls"], json!(["turn:turn.test:3478?transport=udp", "turn:turn.test:3478?transport=tcp"]));
    let username = relay["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap_or_else(|| panic!("username {username}"));
    assert_eq!(user, "bob");
    let expiry: i64 = expiry.parse().unwrap();
    let expected = (server.now() + chrono::Duration::seconds(600)).timestamp();
    assert!((expiry - expected).abs() <= 2, "expiry {expiry}, now + ttl {expected}");
    assert_eq!(relay["credential"], coturn_password(TURN_SECRET, username), "{relay}");
    let expire_at = time_ms(&config, "iceServersExpireAt");
    assert_eq!(expire_at.timestamp(), expiry, "{config}");
    assert!(!config.to_string().contains(TURN_SECRET));
}

#[tokio::test]
async fn a_turn_credential_never_outlives_its_session() {
    let (server, _dir) = start_calls_with(quick(), TurnConfig { credential_ttl_seconds: 86_400 * 30, ..turn() }).await;
    let app = server.create_app(json!({})).await;
    let bob = calling(&server, &app, "bob").await;
    let config = user_configuration(&server, &bob).await;
    let relay = &config["iceServers"][1];
    let username = relay["username"].as_str().unwrap_or_else(|| panic!("{config}"));
    let expiry: i64 = username.split_once(':').unwrap().0.parse().unwrap();
    // Sessions last 24 hours (docs): the credential stops with the session, not in 30 days.
    let session_end = (server.now() + chrono::Duration::hours(24)).timestamp();
    assert!(expiry <= session_end && expiry >= session_end - 5, "expiry {expiry}, session end {session_end}");
    assert_eq!(relay["credential"], coturn_password(TURN_SECRET, username));
}

#[tokio::test]
async fn a_session_without_calling_gets_no_ice_servers_and_no_credential() {
    let (server, _dir) = start_calls_with(quick(), turn()).await;
    let app = server.create_app(json!({})).await;
    let carol = messaging_only(&server, &app, "carol").await;
    let config = user_configuration(&server, &carol).await;
    assert_legacy_fields(&config);
    assert!(config.get("iceServers").is_none(), "{config}");
    assert!(config.get("iceServersExpireAt").is_none(), "{config}");
    assert!(!config.to_string().contains("turn:"), "{config}");
}

#[tokio::test]
async fn without_turn_urls_only_stun_is_given() {
    let stun_only = TurnConfig { urls: Vec::new(), ..turn() };
    let (server, _dir) = start_calls_with(quick(), stun_only).await;
    let app = server.create_app(json!({})).await;
    let bob = calling(&server, &app, "bob").await;
    let config = user_configuration(&server, &bob).await;
    assert_eq!(config["iceServers"], json!([{ "urls": ["stun:turn.test:3478"] }]), "{config}");
}

/// A log sink for one test: the server runs on this test's (current-thread) runtime, so a thread-local
/// subscriber sees what it logs.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_turn_shared_secret_is_never_in_logs_debug_or_answers() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    // tracing caches each callsite's interest process-wide, computed by whichever thread first reaches it: a
    // sibling test without a subscriber would cache "never" and blind this thread-local capture. A global,
    // layer-less registry (interested in everything, printing nothing) keeps every cached interest open.
    static BASELINE: std::sync::Once = std::sync::Once::new();
    BASELINE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let dir = TempDir::new().unwrap();
    let config = Config { calls: quick(), turn: turn(), ..test_config(dir.path()) };
    assert!(!format!("{config:?}").contains(TURN_SECRET), "the config's Debug shows the secret");
    let server = start_with(config).await;
    let app = server.create_app(json!({})).await;
    let alice = calling(&server, &app, "alice").await;
    let bob = calling(&server, &app, "bob").await;
    user_configuration(&server, &bob).await;
    let mut a = connect(&server, &alice, None).await;
    let mut b = connect(&server, &bob, None).await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    answer(&mut a, &mut b, &call).await;
    a.send(json!({ "type": "call.hangup", "callId": call.id })).await;
    a.expect("call.ended").await;
    let apps = server.admin(Method::GET, &format!("/admin/v1/apps/{}", app.key), None).await.text().await.unwrap();
    assert!(!apps.contains(TURN_SECRET));
    let metrics = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains(TURN_SECRET));

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.is_empty(), "the capture saw no log at all: the check would prove nothing");
    assert!(!logs.contains(TURN_SECRET), "the TURN secret is in the logs:\n{logs}");
}

// ----- call records and metrics ---------------------------------------------------------------------------------

#[tokio::test]
async fn every_call_is_recorded_with_its_parties_times_cause_and_ender() {
    let (server, _dir, app, mut a, mut b) = pair(quick()).await;
    let bob2 = calling(&server, &app, "bob").await;
    let mut b2 = connect(&server, &bob2, None).await;

    // Answered on b (b2 told other_device_answered), hung up by the callee.
    let talked = ring(&mut a, "bob", &mut [&mut b, &mut b2]).await;
    answer(&mut a, &mut b, &talked).await;
    assert_eq!(b2.expect("call.ended").await["cause"], "other_device_answered");
    b.send(json!({ "type": "call.hangup", "callId": talked.id })).await;
    a.expect("call.ended").await;
    b.expect("call.ended").await;
    // Canceled.
    let canceled = ring(&mut a, "bob", &mut [&mut b, &mut b2]).await;
    a.send(json!({ "type": "call.hangup", "callId": canceled.id })).await;
    for rt in [&mut a, &mut b, &mut b2] {
        rt.expect("call.ended").await;
    }
    // Denied.
    let denied = ring(&mut a, "bob", &mut [&mut b, &mut b2]).await;
    b2.send(json!({ "type": "call.decline", "callId": denied.id })).await;
    for rt in [&mut a, &mut b, &mut b2] {
        rt.expect("call.ended").await;
    }
    // Unavailable.
    let unavailable = place(&mut a, "nobody", "u").await;
    a.expect("call.ended").await;

    let store = server.raw_store().await;
    // Written behind the signaling: poll briefly.
    let started = Instant::now();
    let records = loop {
        let records = store.list_calls(&app.key, None, 50).await.unwrap();
        if records.len() == 4 && records.iter().all(|r| r.ended_at.is_some()) {
            break records;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "four ended call records within 3 s: {records:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let find = |id: &str| records.iter().find(|r| r.id == id).unwrap_or_else(|| panic!("no record {id}: {records:?}"));
    for (call, callee, was_answered, cause, ended_by) in [
        (&talked, "bob", true, "hung_up", "callee"),
        (&canceled, "bob", false, "canceled", "caller"),
        (&denied, "bob", false, "denied", "callee"),
        (&unavailable, "nobody", false, "no_answer", "server"),
    ] {
        let record = find(&call.id);
        assert_eq!(record.app_key, app.key);
        assert_eq!((record.caller_id.as_str(), record.callee_id.as_str()), ("alice", callee), "{record:?}");
        assert_eq!(callbox_core::time::format_js_iso(record.started_at), call.started_at, "{record:?}");
        assert_eq!(record.answered_at.is_some(), was_answered, "{record:?}");
        assert_eq!(record.end_cause.as_deref(), Some(cause), "{record:?}");
        assert_eq!(record.ended_by.as_deref(), Some(ended_by), "{record:?}");
        assert!(record.ended_at.unwrap() >= record.answered_at.unwrap_or(record.started_at), "{record:?}");
    }
    // Newest first; bob's filter matches the three to bob.
    assert_eq!(records[0].id, unavailable.id);
    assert_eq!(store.list_calls(&app.key, Some("bob"), 50).await.unwrap().len(), 3);
    assert_eq!(store.list_calls(&app.key, Some("alice"), 50).await.unwrap().len(), 4);
}

/// The value of the sample of `name` whose labels contain `label` (0 when absent).
fn sample(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_count_ended_calls_by_cause_and_time_the_setup() {
    let (server, _dir, _app, mut a, mut b) = pair(quick()).await;
    let scrape = || async { server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    let before = scrape().await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    answer(&mut a, &mut b, &call).await;
    a.send(json!({ "type": "call.hangup", "callId": call.id })).await;
    a.expect("call.ended").await;
    b.expect("call.ended").await;
    let canceled = ring(&mut a, "bob", &mut [&mut b]).await;
    a.send(json!({ "type": "call.hangup", "callId": canceled.id })).await;
    a.expect("call.ended").await;
    b.expect("call.ended").await;
    let after = scrape().await;
    // The recorder is the process's: other tests' calls count too, so the check is "at least ours".
    for cause in ["hung_up", "canceled"] {
        let label = format!("cause=\"{cause}\"");
        let (was, is) = (sample(&before, "callbox_calls_total", &label), sample(&after, "callbox_calls_total", &label));
        assert!(is >= was + 1.0, "callbox_calls_total{{{label}}} {was} → {is}:\n{after}");
    }
    assert!(after.contains("callbox_calls_active"), "{after}");
    let setups = after.lines().filter(|l| l.starts_with("callbox_call_setup_seconds_count"));
    assert!(setups.filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum::<f64>() >= 1.0, "{after}");
}

// ----- two nodes on PostgreSQL and Redis ---------------------------------------------------------------------------

fn cluster_calls(config: &mut Config) {
    config.calls = CallsConfig { ringing_wait_milliseconds: 500, ..quick() };
}

#[tokio::test]
async fn a_call_across_two_nodes_rings_is_answered_relays_and_hangs_up() {
    let Some(engines) = crate::scale::engines() else { return };
    let _serial = crate::scale::SERIAL.lock().await;
    let (node_a, node_b, _dirs) = crate::scale::two_nodes_configured(&engines, cluster_calls).await;
    let app = node_a.create_app(json!({})).await;
    let alice = calling(&node_a, &app, "alice").await;
    let bob = calling(&node_a, &app, "bob").await;
    let mut a = connect(&node_a, &alice, None).await;
    let mut b = connect(&node_b, &bob, None).await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    let from_alice = candidate("a1");
    send_candidate(&mut a, &call, &from_alice).await;
    assert_candidate(&b.expect("call.candidate").await, &call, &from_alice);
    let answered_at = answer(&mut a, &mut b, &call).await;
    let from_bob = candidate("b1");
    send_candidate(&mut b, &call, &from_bob).await;
    assert_candidate(&a.expect("call.candidate").await, &call, &from_bob);
    b.send(json!({ "type": "call.hangup", "callId": call.id })).await;
    assert_ended(&a.expect("call.ended").await, &call, "hung_up", "callee", Some(&answered_at), None);
    assert_ended(&b.expect("call.ended").await, &call, "hung_up", "callee", Some(&answered_at), None);
    b.send(json!({ "type": "call.hangup", "ref": "again", "callId": call.id })).await;
    refused(&mut b, "again", "not_found").await;
    // One record, written by the home, whichever node is asked.
    for node in [&node_a, &node_b] {
        let record = ended_record(node, &app, &call.id).await;
        assert_eq!((record.caller_id.as_str(), record.callee_id.as_str()), ("alice", "bob"));
        assert_eq!((record.end_cause.as_deref(), record.ended_by.as_deref()), (Some("hung_up"), Some("callee")));
        assert!(record.answered_at.is_some(), "{record:?}");
    }
}

#[tokio::test]
async fn across_two_nodes_the_first_answer_wins_whichever_node_it_is_on() {
    let Some(engines) = crate::scale::engines() else { return };
    let _serial = crate::scale::SERIAL.lock().await;
    let (node_a, node_b, _dirs) = crate::scale::two_nodes_configured(&engines, cluster_calls).await;
    let app = node_a.create_app(json!({})).await;
    let alice = calling(&node_a, &app, "alice").await;
    let bob = calling(&node_a, &app, "bob").await;
    let mut a = connect(&node_a, &alice, None).await;
    // bob's devices: one beside alice's home, one on the other node.
    let mut here = connect(&node_a, &bob, None).await;
    let mut there = connect(&node_b, &bob, None).await;
    for answering_there in [true, false] {
        let call = ring(&mut a, "bob", &mut [&mut here, &mut there]).await;
        let (winner, loser) = if answering_there { (&mut there, &mut here) } else { (&mut here, &mut there) };
        let answered_at = answer(&mut a, winner, &call).await;
        let elsewhere = loser.expect("call.ended").await;
        assert_eq!(
            (elsewhere["callId"].as_str(), elsewhere["cause"].as_str()),
            (Some(call.id.as_str()), Some("other_device_answered"))
        );
        assert_eq!(elsewhere["endedBy"], "callee");
        loser.send(json!({ "type": "call.answer", "ref": "late", "callId": call.id, "sdp": ANSWER })).await;
        refused(loser, "late", "not_found").await;
        a.send(json!({ "type": "call.hangup", "callId": call.id })).await;
        assert_ended(&a.expect("call.ended").await, &call, "hung_up", "caller", Some(&answered_at), None);
        assert_ended(&winner.expect("call.ended").await, &call, "hung_up", "caller", Some(&answered_at), None);
        loser.quiet_for(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn across_two_nodes_an_unreachable_callee_is_unavailable_within_the_ringing_wait() {
    let Some(engines) = crate::scale::engines() else { return };
    let _serial = crate::scale::SERIAL.lock().await;
    let (node_a, node_b, _dirs) = crate::scale::two_nodes_configured(&engines, cluster_calls).await;
    let app = node_a.create_app(json!({})).await;
    let alice = calling(&node_a, &app, "alice").await;
    let mut a = connect(&node_a, &alice, None).await;
    // carol has a session but no connection on either node; dave is connected on B without calling.
    calling(&node_a, &app, "carol").await;
    let dave = messaging_only(&node_a, &app, "dave").await;
    let mut d = connect(&node_b, &dave, None).await;
    for callee in ["carol", "dave", "nobody-at-all"] {
        let started = Instant::now();
        let call = place(&mut a, callee, callee).await;
        assert_ended(&a.expect("call.ended").await, &call, "no_answer", "server", None, Some("unavailable"));
        let waited = started.elapsed();
        assert!(waited < Duration::from_millis(1500), "{callee}: after {waited:?} (ringing wait 500 ms)");
    }
    d.quiet_for(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn across_two_nodes_either_side_rejoins_on_the_other_node_and_the_call_goes_on() {
    let Some(engines) = crate::scale::engines() else { return };
    let _serial = crate::scale::SERIAL.lock().await;
    let (node_a, node_b, _dirs) = crate::scale::two_nodes_configured(&engines, |config| {
        cluster_calls(config);
        config.calls.grace_seconds = 3;
    })
    .await;
    let app = node_a.create_app(json!({})).await;
    let alice = calling(&node_a, &app, "alice").await;
    let bob = calling(&node_a, &app, "bob").await;
    let mut a = connect(&node_a, &alice, None).await;
    let mut b = connect(&node_b, &bob, None).await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    let answered_at = answer(&mut a, &mut b, &call).await;

    // bob's client comes back through the other node (a load balancer's choice).
    drop(b);
    let mut b = connect(&node_a, &bob, None).await;
    b.send(json!({ "type": "call.rejoin", "ref": "rj-b", "callId": call.id })).await;
    let rejoined = b.expect("call.rejoined").await;
    assert_eq!((rejoined["ref"].as_str(), rejoined["state"].as_str()), (Some("rj-b"), Some("answered")));
    // So does alice, away from the call's home node.
    drop(a);
    let mut a = connect(&node_b, &alice, None).await;
    a.send(json!({ "type": "call.rejoin", "ref": "rj-a", "callId": call.id })).await;
    let rejoined = a.expect("call.rejoined").await;
    assert_eq!((rejoined["ref"].as_str(), rejoined["state"].as_str()), (Some("rj-a"), Some("answered")));

    // Past both graces, the call goes on from the new connections.
    b.quiet_for(Duration::from_millis(3500)).await;
    let from_alice = candidate("a-after");
    send_candidate(&mut a, &call, &from_alice).await;
    assert_candidate(&b.expect("call.candidate").await, &call, &from_alice);
    let from_bob = candidate("b-after");
    send_candidate(&mut b, &call, &from_bob).await;
    assert_candidate(&a.expect("call.candidate").await, &call, &from_bob);
    a.send(json!({ "type": "call.hangup", "callId": call.id })).await;
    assert_ended(&a.expect("call.ended").await, &call, "hung_up", "caller", Some(&answered_at), None);
    assert_ended(&b.expect("call.ended").await, &call, "hung_up", "caller", Some(&answered_at), None);
}

#[tokio::test]
async fn across_two_nodes_revoking_the_callee_on_its_node_ends_the_call_as_revoked_at_home() {
    let Some(engines) = crate::scale::engines() else { return };
    let _serial = crate::scale::SERIAL.lock().await;
    let (node_a, node_b, _dirs) = crate::scale::two_nodes_configured(&engines, cluster_calls).await;
    let app = node_a.create_app(json!({})).await;
    let alice = calling(&node_a, &app, "alice").await;
    let bob = calling(&node_a, &app, "bob").await;
    let mut a = connect(&node_a, &alice, None).await;
    let mut b = connect(&node_b, &bob, None).await;
    let call = ring(&mut a, "bob", &mut [&mut b]).await;
    let answered_at = answer(&mut a, &mut b, &call).await;
    let started = Instant::now();
    let path = format!("/admin/v1/apps/{}/sessions/{}", app.key, bob.id);
    assert_eq!(node_b.admin(Method::DELETE, &path, None).await.status(), 204);
    assert_ended(&a.expect("call.ended").await, &call, "revoked", "server", Some(&answered_at), None);
    assert!(started.elapsed() < Duration::from_secs(1), "after {:?}", started.elapsed());
    assert_closed(&b.closed_within(Duration::from_secs(1)).await, 4401, "session_revoked");
}
