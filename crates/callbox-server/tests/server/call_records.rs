//! The call records' admin listing (docs/calls.md section 5, docs/admin-api.md): `GET /admin/v1/apps/{key}/calls`.
//!
//! Most records are seeded through a second handle on the server's database (`Server::raw_store`), written as the
//! call registry writes them (`Store::write_calls`), so every shape of record (answered or not, ended or not, at
//! chosen times) can be listed; one test places real calls over the realtime connection and reads them back.

use crate::realtime::connect;
use crate::support::*;
use callbox_server::store::{CallRecord, CallWrite};
use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A fixed instant with milliseconds, so that the listed times and talk times can be compared exactly.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-03T09:00:00.250Z").unwrap().with_timezone(&Utc)
}

fn ms(millis: i64) -> Duration {
    Duration::milliseconds(millis)
}

fn placed(app_key: &str, id: &str, caller: &str, callee: &str, started_at: DateTime<Utc>) -> CallWrite {
    CallWrite::Placed(CallRecord {
        id: id.to_owned(),
        app_key: app_key.to_owned(),
        caller_id: caller.to_owned(),
        callee_id: callee.to_owned(),
        legacy_call_id: None,
        started_at,
        answered_at: None,
        ended_at: None,
        end_cause: None,
        ended_by: None,
    })
}

fn answered(id: &str, at: DateTime<Utc>) -> CallWrite {
    CallWrite::Answered { id: id.to_owned(), at }
}

fn ended(id: &str, at: DateTime<Utc>, cause: &str, by: &str) -> CallWrite {
    CallWrite::Ended { id: id.to_owned(), at, cause: cause.to_owned(), by: by.to_owned() }
}

async fn seed(server: &Server, writes: &[CallWrite]) {
    server.raw_store().await.write_calls(writes).await.unwrap();
}

/// `GET /admin/v1/apps/{key}/calls` with `query` (already encoded), as the admin.
async fn list(server: &Server, key: &str, query: &str) -> reqwest::Response {
    server.admin(Method::GET, &format!("/admin/v1/apps/{key}/calls{query}"), None).await
}

/// The listed calls, asserting a 200.
async fn calls(server: &Server, key: &str, query: &str) -> Vec<Value> {
    let response = list(server, key, query).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "only `calls`: {body}");
    body["calls"].as_array().unwrap().clone()
}

fn ids(calls: &[Value]) -> Vec<&str> {
    calls.iter().map(|call| call["callId"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn calls_are_listed_newest_first_with_their_times_causes_and_talk_time() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let k = app.key.as_str();
    seed(
        &server,
        &[
            // Answered 1.5 s after the start, ended 62.75 s after the answer: the talk time is 62750 ms.
            placed(k, "c-talked", "alice", "bob", t0()),
            answered("c-talked", t0() + ms(1_500)),
            ended("c-talked", t0() + ms(64_250), "hung_up", "callee"),
            // Nobody answered: an end, no talk time.
            placed(k, "c-unanswered", "bob", "carol", t0() + ms(100_000)),
            ended("c-unanswered", t0() + ms(145_000), "no_answer", "server"),
            // Answered and still going on: no end, no talk time yet.
            placed(k, "c-ongoing", "carol", "alice", t0() + ms(200_000)),
            answered("c-ongoing", t0() + ms(203_000)),
            // Placed only (its home node died while it rang).
            placed(k, "c-placed", "dave", "erin", t0() + ms(300_000)),
        ],
    )
    .await;
    let listed = calls(&server, k, "").await;
    assert_eq!(ids(&listed), ["c-placed", "c-ongoing", "c-unanswered", "c-talked"], "newest first");
    assert_eq!(
        listed[3],
        json!({
            "callId": "c-talked", "callerId": "alice", "calleeId": "bob",
            "startedAt": "2026-12-03T09:00:00.250Z", "answeredAt": "2026-12-03T09:00:01.750Z",
            "endedAt": "2026-12-03T09:01:04.500Z", "endCause": "hung_up", "endedBy": "callee", "durationMs": 62_750,
        })
    );
    assert_eq!(
        listed[2],
        json!({
            "callId": "c-unanswered", "callerId": "bob", "calleeId": "carol",
            "startedAt": "2026-12-03T09:01:40.250Z", "answeredAt": null,
            "endedAt": "2026-12-03T09:02:25.250Z", "endCause": "no_answer", "endedBy": "server", "durationMs": null,
        })
    );
    assert_eq!(
        listed[1],
        json!({
            "callId": "c-ongoing", "callerId": "carol", "calleeId": "alice",
            "startedAt": "2026-12-03T09:03:20.250Z", "answeredAt": "2026-12-03T09:03:23.250Z",
            "endedAt": null, "endCause": null, "endedBy": null, "durationMs": null,
        })
    );
    assert_eq!(listed[0]["answeredAt"], Value::Null);
    assert_eq!(listed[0]["endedAt"], Value::Null);

    // The end of the ongoing call arrives later: now it has a talk time, and the end stays the first one written.
    seed(&server, &[ended("c-ongoing", t0() + ms(203_000 + 5_001), "hung_up", "caller")]).await;
    seed(&server, &[ended("c-ongoing", t0() + ms(999_000), "failure", "server")]).await;
    let ongoing = calls(&server, k, "?user=carol").await.into_iter().find(|c| c["callId"] == "c-ongoing").unwrap();
    assert_eq!(ongoing["durationMs"], 5_001);
    assert_eq!((ongoing["endCause"].as_str(), ongoing["endedBy"].as_str()), (Some("hung_up"), Some("caller")));
}

#[tokio::test]
async fn the_user_filter_matches_the_caller_or_the_callee_and_nobody_else() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let k = app.key.as_str();
    // A user id with characters that must be percent-encoded in the query.
    let odd = "ali ce&user=bob/é";
    seed(
        &server,
        &[
            placed(k, "c1", "alice", "bob", t0()),
            placed(k, "c2", "carol", "alice", t0() + ms(1_000)),
            placed(k, "c3", "bob", "carol", t0() + ms(2_000)),
            placed(k, "c4", odd, "carol", t0() + ms(3_000)),
            // "alice2" contains "alice": the filter is an exact match, not a search.
            placed(k, "c5", "alice2", "dave", t0() + ms(4_000)),
        ],
    )
    .await;
    assert_eq!(ids(&calls(&server, k, "?user=alice").await), ["c2", "c1"], "as callee and as caller");
    assert_eq!(ids(&calls(&server, k, "?user=bob").await), ["c3", "c1"]);
    assert_eq!(ids(&calls(&server, k, "?user=carol").await), ["c4", "c3", "c2"]);
    assert_eq!(ids(&calls(&server, k, "?user=ALICE").await), Vec::<&str>::new(), "user ids are case-sensitive");
    assert_eq!(ids(&calls(&server, k, "?user=nobody").await), Vec::<&str>::new());
    let encoded = url_encode(odd);
    assert_eq!(ids(&calls(&server, k, &format!("?user={encoded}")).await), ["c4"]);
    assert_eq!(ids(&calls(&server, k, "").await), ["c5", "c4", "c3", "c2", "c1"]);
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn the_limit_defaults_to_50_and_is_held_between_1_and_500() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let k = app.key.as_str();
    // 501 calls, one a second; c-000 is the oldest.
    let writes: Vec<CallWrite> =
        (0..501).map(|n| placed(k, &format!("c-{n:03}"), "alice", "bob", t0() + Duration::seconds(n))).collect();
    seed(&server, &writes).await;
    let default = calls(&server, k, "").await;
    assert_eq!(default.len(), 50);
    assert_eq!((ids(&default)[0], ids(&default)[49]), ("c-500", "c-451"), "the newest 50");
    assert_eq!(ids(&calls(&server, k, "?limit=3").await), ["c-500", "c-499", "c-498"]);
    assert_eq!(ids(&calls(&server, k, "?limit=2&user=bob").await), ["c-500", "c-499"]);
    assert_eq!(ids(&calls(&server, k, "?limit=0").await), ["c-500"], "at least one");
    assert_eq!(calls(&server, k, "?limit=500").await.len(), 500);
    let clamped = calls(&server, k, "?limit=4294967295").await;
    assert_eq!(clamped.len(), 500, "at most 500");
    assert_eq!(ids(&clamped)[499], "c-001");
    for bad in ["?limit=abc", "?limit=-1", "?limit=1.5", "?limit=4294967296", "?limit="] {
        let body = assert_error(list(&server, k, bad).await, 400, "malformed_request").await;
        assert!(body["message"].as_str().unwrap().contains("limit"), "{bad}: {body}");
    }
}

#[tokio::test]
async fn an_unknown_app_is_not_found_and_a_bad_filter_is_malformed() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    assert_error(list(&server, "no-such-app", "").await, 404, "not_found").await;
    assert_error(list(&server, "no-such-app", "?user=alice").await, 404, "not_found").await;
    let too_long = "a".repeat(256);
    for bad in ["?user=", "?user=al%01ice", "?user=%0A", &format!("?user={too_long}")] {
        let body = assert_error(list(&server, &app.key, bad).await, 400, "malformed_request").await;
        assert!(body["message"].as_str().unwrap().contains("user"), "{bad}: {body}");
    }
    // 255 bytes is still a user id.
    assert!(calls(&server, &app.key, &format!("?user={}", "a".repeat(255))).await.is_empty());
    // The other listings' `userId` is not this one's `user`: refused, rather than quietly listing every call.
    let body = assert_error(list(&server, &app.key, "?userId=alice").await, 400, "malformed_request").await;
    assert!(body["message"].as_str().unwrap().contains("userId"), "{body}");
    // Not a user id that merely has no calls: a bad filter on an unknown app is still the filter's fault.
    assert_error(list(&server, "no-such-app", "?user=").await, 400, "malformed_request").await;
}

#[tokio::test]
async fn the_listing_needs_the_admin_token() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    seed(&server, &[placed(&app.key, "c1", "alice", "bob", t0())]).await;
    let url = server.url(&format!("/admin/v1/apps/{}/calls", app.key));
    assert_error(server.http.get(&url).send().await.unwrap(), 401, "invalid_admin_token").await;
    assert_error(server.http.get(&url).bearer_auth("cbadm_wrong").send().await.unwrap(), 401, "invalid_admin_token")
        .await;
    // A session's credentials are not the admin's.
    let session = server.session(&app.ticket("alice")).await;
    let signed = server.signed(Method::GET, &format!("/admin/v1/apps/{}/calls", app.key), None, &session).await;
    assert_error(signed, 401, "invalid_admin_token").await;
    // Without the token, a bad parameter is not even looked at.
    let bad = format!("{url}?limit=abc");
    assert_error(server.http.get(&bad).send().await.unwrap(), 401, "invalid_admin_token").await;
    assert_eq!(ids(&calls(&server, &app.key, "").await), ["c1"]);
}

#[tokio::test]
async fn another_applications_calls_are_never_listed() {
    let server = start().await;
    let a = server.create_app(json!({ "name": "A" })).await;
    let b = server.create_app(json!({ "name": "B" })).await;
    // The same user ids in both applications.
    seed(
        &server,
        &[
            placed(&a.key, "a-1", "alice", "bob", t0()),
            placed(&b.key, "b-1", "alice", "bob", t0() + ms(1)),
            placed(&b.key, "b-2", "bob", "alice", t0() + ms(2)),
        ],
    )
    .await;
    assert_eq!(ids(&calls(&server, &a.key, "").await), ["a-1"]);
    assert_eq!(ids(&calls(&server, &a.key, "?user=alice").await), ["a-1"]);
    assert_eq!(ids(&calls(&server, &b.key, "?user=alice").await), ["b-2", "b-1"]);
    // An application without calls lists none of the others'.
    let c = server.create_app(json!({ "name": "C" })).await;
    assert!(calls(&server, &c.key, "").await.is_empty());
    assert!(calls(&server, &c.key, "?user=bob").await.is_empty());
}

#[tokio::test]
async fn the_records_of_a_deleted_application_are_gone() {
    let server = start().await;
    let doomed = server.create_app(json!({ "name": "Doomed" })).await;
    let kept = server.create_app(json!({ "name": "Kept" })).await;
    seed(
        &server,
        &[
            placed(&doomed.key, "d-1", "alice", "bob", t0()),
            ended("d-1", t0() + ms(5_000), "canceled", "caller"),
            placed(&kept.key, "k-1", "alice", "bob", t0()),
        ],
    )
    .await;
    assert_eq!(ids(&calls(&server, &doomed.key, "").await), ["d-1"]);
    let deleted = server.admin(Method::DELETE, &format!("/admin/v1/apps/{}", doomed.key), None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_error(list(&server, &doomed.key, "").await, 404, "not_found").await;
    // Gone from the database, not merely hidden behind the 404.
    let store = server.raw_store().await;
    assert!(store.list_calls(&doomed.key, None, 500).await.unwrap().is_empty());
    // A record the registry writes late for the deleted application is dropped, not resurrected.
    seed(&server, &[placed(&doomed.key, "d-late", "alice", "bob", t0() + ms(6_000))]).await;
    assert!(store.list_calls(&doomed.key, None, 500).await.unwrap().is_empty());
    assert_eq!(ids(&calls(&server, &kept.key, "").await), ["k-1"]);
}

/// Polls the listing until `done` says the registry's records (written behind the signaling) are there.
async fn calls_once(server: &Server, key: &str, query: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = std::time::Instant::now();
    loop {
        let listed = calls(server, key, query).await;
        if done(&listed) {
            return listed;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the records did not arrive: {listed:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn real_calls_over_the_realtime_connection_are_recorded_and_listed() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let alice = server.session(&app.ticket("alice")).await;
    let bob = server.session(&app.ticket("bob")).await;
    let mut a = connect(&server, &alice, None).await;
    let mut b = connect(&server, &bob, None).await;

    a.send(json!({"type": "call.start", "ref": "c1", "calleeId": "bob", "sdp": "v=0 offer"})).await;
    let talked = a.expect("call.placed").await["callId"].as_str().unwrap().to_owned();
    b.expect("call.incoming").await;
    assert_eq!(a.expect("call.progress").await["state"], "ringing");
    b.send(json!({"type": "call.answer", "callId": talked, "sdp": "v=0 answer"})).await;
    a.expect("call.answered").await;
    b.expect("call.answered").await;
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    b.send(json!({"type": "call.hangup", "callId": talked})).await;
    let end = a.expect("call.ended").await;
    b.expect("call.ended").await;

    // Nobody answers for "ghost": ended at once as unavailable.
    a.send(json!({"type": "call.start", "calleeId": "ghost", "sdp": "v=0 offer"})).await;
    let unanswered = a.expect("call.placed").await["callId"].as_str().unwrap().to_owned();
    a.expect("call.ended").await;

    let listed =
        calls_once(&server, &app.key, "", |listed| listed.len() == 2 && listed.iter().all(|c| !c["endedAt"].is_null()))
            .await;
    assert_eq!(ids(&listed), [unanswered.as_str(), talked.as_str()], "newest first");
    let (ghost, call) = (&listed[0], &listed[1]);
    assert_eq!((call["callerId"].as_str(), call["calleeId"].as_str()), (Some("alice"), Some("bob")));
    assert_eq!((call["endCause"].as_str(), call["endedBy"].as_str()), (Some("hung_up"), Some("callee")));
    // The record says what the frames said.
    for field in ["startedAt", "answeredAt", "endedAt"] {
        assert_eq!(call[field], end[field], "{field}: record {call} vs call.ended {end}");
    }
    // The listed talk time is exactly the listed end minus the listed answer. The frame's `durationMs` is taken
    // from the untruncated instants, so it may be 1 ms shorter (reported to the lead: the engine could truncate
    // the answer and end to the millisecond, as it does the start).
    let time = |field: &str| callbox_core::time::parse_timestamp(call[field].as_str().unwrap()).unwrap();
    let duration = call["durationMs"].as_i64().unwrap();
    assert_eq!(duration, (time("endedAt") - time("answeredAt")).num_milliseconds(), "{call}");
    assert!((duration - end["durationMs"].as_i64().unwrap()).abs() <= 1, "record {call} vs call.ended {end}");
    assert!(duration >= 30, "{call}");
    assert_eq!((ghost["calleeId"].as_str(), ghost["endCause"].as_str()), (Some("ghost"), Some("no_answer")));
    assert_eq!((ghost["answeredAt"].clone(), ghost["durationMs"].clone()), (Value::Null, Value::Null));
    assert_eq!(ids(&calls(&server, &app.key, "?user=bob").await), [talked.as_str()]);
    assert_eq!(ids(&calls(&server, &app.key, "?user=ghost").await), [unanswered.as_str()]);
}
