//! Smoke test of the call signaling (the full suite is calls.rs).

use crate::realtime::connect;
use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn a_call_is_placed_rung_answered_relayed_and_hung_up() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = server.session(&app.ticket("alice")).await;
    let bob = server.session(&app.ticket("bob")).await;
    let mut a = connect(&server, &alice, None).await;
    let mut b1 = connect(&server, &bob, None).await;
    let mut b2 = connect(&server, &bob, None).await;
    a.send(json!({"type":"call.start","ref":"c1","calleeId":"bob","sdp":"v=0 offer"})).await;
    let placed = a.expect("call.placed").await;
    assert_eq!(placed["ref"], "c1");
    let id = placed["callId"].as_str().unwrap().to_owned();
    for b in [&mut b1, &mut b2] {
        let incoming = b.expect("call.incoming").await;
        assert_eq!(incoming["callId"], id.as_str());
        assert_eq!(incoming["callerId"], "alice");
        assert_eq!(incoming["sdp"], "v=0 offer");
    }
    assert_eq!(a.expect("call.progress").await["state"], "ringing");
    a.send(json!({"type":"call.candidate","callId":id,"candidate":{"candidate":"c-a"}})).await;
    assert_eq!(b1.expect("call.candidate").await["candidate"]["candidate"], "c-a");
    assert_eq!(b2.expect("call.candidate").await["candidate"]["candidate"], "c-a");
    b1.send(json!({"type":"call.answer","callId":id,"sdp":"v=0 answer"})).await;
    assert_eq!(a.expect("call.answered").await["sdp"], "v=0 answer");
    assert!(b1.expect("call.answered").await.get("sdp").is_none());
    assert_eq!(b2.expect("call.ended").await["cause"], "other_device_answered");
    b2.send(json!({"type":"call.answer","ref":"late","callId":id,"sdp":"v=0"})).await;
    assert_eq!(b2.expect("error").await["reason"], "not_found");
    b1.send(json!({"type":"call.candidate","callId":id,"candidate":{"candidate":"c-b"}})).await;
    assert_eq!(a.expect("call.candidate").await["candidate"]["candidate"], "c-b");
    a.send(json!({"type":"call.hangup","callId":id})).await;
    for side in [&mut a, &mut b1] {
        let ended = side.expect("call.ended").await;
        assert_eq!(ended["cause"], "hung_up");
        assert_eq!(ended["endedBy"], "caller");
    }
    // Nobody is there: unavailable at once.
    a.send(json!({"type":"call.start","calleeId":"ghost","sdp":"v=0 offer"})).await;
    a.expect("call.placed").await;
    let ended = a.expect("call.ended").await;
    assert_eq!((ended["cause"].as_str(), ended["detail"].as_str()), (Some("no_answer"), Some("unavailable")));
}
