//! Platform-managed users: sign-up, login, the switch, lockout, disabling.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn ticket_of(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["identities"][0]["type"], "username");
    body["authorization"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sign_up_log_in_and_use_the_session() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let ticket = ticket_of(server.sign_up(&app.key, "alice", "correct horse").await).await;
    let session = server.session(&ticket).await;
    let profile: Value = server.signed(Method::GET, "/v1/user/profile", None, &session).await.json().await.unwrap();
    assert_eq!(profile["identities"][0]["endpoint"], "alice");
    // Platform tickets are single-use.
    assert_error(server.exchange(&ticket).await, 401, "ticket_replayed").await;

    let ticket = ticket_of(server.log_in(&app.key, "alice", "correct horse").await).await;
    assert_eq!(server.exchange(&ticket).await.status(), 200);

    assert_error(server.sign_up(&app.key, "alice", "another pass").await, 409, "user_exists").await;
    assert_error(server.sign_up(&app.key, "bob", "short").await, 400, "invalid_password").await;
    assert_error(server.sign_up(&app.key, "bob", &"x".repeat(1025)).await, 400, "invalid_password").await;
    assert_error(server.sign_up("no-such-app", "bob", "correct horse").await, 401, "unknown_application").await;
    let response = server
        .http
        .post(server.url("/v1/users"))
        .json(&json!({ "password": "correct horse", "identities": [{ "type": "username", "endpoint": "bob" }] }))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "missing_authorization").await;
}

#[tokio::test]
async fn unknown_user_and_wrong_password_answer_alike() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    ticket_of(server.sign_up(&app.key, "alice", "correct horse").await).await;
    let wrong = assert_error(server.log_in(&app.key, "alice", "wrong horse").await, 401, "invalid_credentials").await;
    let unknown =
        assert_error(server.log_in(&app.key, "nobody", "wrong horse").await, 401, "invalid_credentials").await;
    assert_eq!(wrong["message"], unknown["message"]);
    assert_eq!(wrong["errorCode"], unknown["errorCode"]);
}

#[tokio::test]
async fn repeated_failures_lock_the_account_without_revealing_it() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    ticket_of(server.sign_up(&app.key, "alice", "correct horse").await).await;
    for _ in 0..4 {
        assert_error(server.log_in(&app.key, "alice", "wrong horse").await, 401, "invalid_credentials").await;
    }
    let locked = assert_error(server.log_in(&app.key, "alice", "wrong horse").await, 429, "locked_out").await;
    assert!(locked["retryAfter"].as_u64().unwrap() >= 1);
    // Even the right password waits now.
    assert_error(server.log_in(&app.key, "alice", "correct horse").await, 429, "locked_out").await;
    // A name that does not exist locks the same way.
    for _ in 0..4 {
        assert_error(server.log_in(&app.key, "ghost", "wrong horse").await, 401, "invalid_credentials").await;
    }
    assert_error(server.log_in(&app.key, "ghost", "wrong horse").await, 429, "locked_out").await;
}

#[tokio::test]
async fn a_lockout_ends_when_its_time_has_passed() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    ticket_of(server.sign_up(&app.key, "alice", "correct horse").await).await;
    for _ in 0..4 {
        assert_error(server.log_in(&app.key, "alice", "wrong horse").await, 401, "invalid_credentials").await;
    }
    let locked = assert_error(server.log_in(&app.key, "alice", "wrong horse").await, 429, "locked_out").await;
    let wait = locked["retryAfter"].as_i64().unwrap();
    // One second short of the lockout: still locked, and the refusal counts down.
    server.advance(chrono::Duration::seconds(wait - 1));
    let still = assert_error(server.log_in(&app.key, "alice", "correct horse").await, 429, "locked_out").await;
    assert_eq!(still["retryAfter"], 1, "{still}");
    // Past it: the right password gets in again.
    server.advance(chrono::Duration::seconds(1));
    ticket_of(server.log_in(&app.key, "alice", "correct horse").await).await;
}

#[tokio::test]
async fn switching_platform_users_off_takes_effect_on_the_next_request() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    ticket_of(server.sign_up(&app.key, "alice", "correct horse").await).await;
    let app_view: Value = server.patch_app(&app.key, json!({ "platformUserAuth": false })).await.json().await.unwrap();
    assert_eq!(app_view["platformUserAuth"], false);
    assert_error(server.sign_up(&app.key, "bob", "correct horse").await, 403, "platform_auth_disabled").await;
    assert_error(server.log_in(&app.key, "alice", "correct horse").await, 403, "platform_auth_disabled").await;
    // Backend-made tickets still work.
    assert_eq!(server.exchange(&app.ticket("alice")).await.status(), 200);
    server.patch_app(&app.key, json!({ "platformUserAuth": true })).await;
    ticket_of(server.log_in(&app.key, "alice", "correct horse").await).await;
}

#[tokio::test]
async fn disabling_a_user_revokes_sessions_and_blocks_login() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    let ticket = ticket_of(server.sign_up(&app.key, "alice", "correct horse").await).await;
    let session = server.session(&ticket).await;
    let response = server.admin(Method::POST, &format!("/admin/v1/apps/{}/users/alice/disable", app.key), None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["disabled"], true);
    assert_error(server.signed(Method::GET, "/v1/user/profile", None, &session).await, 401, "session_revoked").await;
    assert_error(server.log_in(&app.key, "alice", "correct horse").await, 403, "user_disabled").await;
    // A backend ticket for a disabled platform user does not give a session either.
    assert_error(server.exchange(&app.ticket("alice")).await, 403, "user_disabled").await;
    server.admin(Method::POST, &format!("/admin/v1/apps/{}/users/alice/enable", app.key), None).await;
    ticket_of(server.log_in(&app.key, "alice", "correct horse").await).await;
}

/// Unknown user and wrong password cost the same argon2id work (a dummy hash is verified for unknown users).
/// Bounded and generous: the fastest of 4 interleaved tries each (a fifth wrong password would meet the lockout) must be within a factor of 2, where skipping the
/// hash would make the unknown-user case about 100 times faster. The fastest, not the median: on a machine busy
/// with other builds a try is only ever slowed down, so the minimum is the estimate of the work itself.
#[tokio::test]
async fn unknown_user_takes_as_long_as_a_wrong_password() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    ticket_of(server.sign_up(&app.key, "alice", "correct horse").await).await;
    let fastest = |samples: Vec<std::time::Duration>| samples.into_iter().min().unwrap();
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for round in 0..4 {
        let started = std::time::Instant::now();
        server.log_in(&app.key, "alice", "wrong horse").await;
        wrong.push(started.elapsed());
        let started = std::time::Instant::now();
        server.log_in(&app.key, &format!("nobody{round}"), "wrong horse").await;
        unknown.push(started.elapsed());
    }
    let (wrong, unknown) = (fastest(wrong), fastest(unknown));
    assert!(unknown * 2 > wrong && wrong * 2 > unknown, "wrong password {wrong:?}, unknown user {unknown:?}");
}

/// More logins than hashing places: the excess waits `queue_wait_milliseconds` for a place, then is refused with
/// 429 `rate_limited` and `Retry-After`; the admitted ones are answered, and ticket exchanges keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_beyond_the_hashing_queue_is_shed_with_retry_after() {
    use callbox_server::config::{Config, PasswordConfig};
    let dir = tempfile::TempDir::new().unwrap();
    let passwords = PasswordConfig {
        hash_workers: Some(1),
        hash_queue: 0,
        queue_wait_milliseconds: 20,
        ..PasswordConfig::default()
    };
    let server = start_with(Config { passwords, ..test_config(dir.path()) }).await;
    let app = server.create_app(json!({})).await;
    ticket_of(server.sign_up(&app.key, "flood", "correct horse").await).await;

    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let request = server
            .http
            .post(server.url("/v1/users/username/flood/authentication"))
            .header("authorization", format!("Application {}", app.key))
            .json(&json!({ "password": "correct horse" }));
        logins.spawn(async move { request.send().await.unwrap() });
    }
    let (mut served, mut shed) = (0, 0);
    while let Some(response) = logins.join_next().await {
        let response = response.unwrap();
        if response.status() == StatusCode::OK {
            served += 1;
        } else {
            let body = assert_error(response, 429, "rate_limited").await;
            assert_eq!(body["retryable"], true, "{body}");
            shed += 1;
        }
    }
    assert!(served >= 1 && shed >= 1, "served {served}, shed {shed}");
    server.session(&app.ticket("bob")).await;
}

/// Sign-ups beyond the per-address rate are refused with 429 `rate_limited` and `Retry-After`, and create nobody.
#[tokio::test]
async fn sign_ups_beyond_the_per_address_rate_are_refused() {
    use callbox_server::config::{Config, LoginConfig};
    let dir = tempfile::TempDir::new().unwrap();
    let login = LoginConfig { signups_per_ip_per_minute: 2, ..LoginConfig::default() };
    let server = start_with(Config { login, ..test_config(dir.path()) }).await;
    let app = server.create_app(json!({})).await;
    ticket_of(server.sign_up(&app.key, "first", "correct horse").await).await;
    ticket_of(server.sign_up(&app.key, "second", "correct horse").await).await;
    assert_error(server.sign_up(&app.key, "third", "correct horse").await, 429, "rate_limited").await;
    let listed = server.admin(Method::GET, &format!("/admin/v1/apps/{}/users", app.key), None).await;
    let body: Value = listed.json().await.unwrap();
    assert!(body.to_string().contains("second") && !body.to_string().contains("third"), "{body}");
}

#[tokio::test]
async fn a_parallel_flood_of_wrong_passwords_locks_the_account_once_not_to_the_maximum() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    ticket_of(server.sign_up(&app.key, "alice", "correct horse").await).await;
    let flood = (0..40).map(|_| server.log_in(&app.key, "alice", "wrong horse"));
    for response in futures_util::future::join_all(flood).await {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert!(
            matches!(
                (status, body["reason"].as_str().unwrap()),
                (401, "invalid_credentials") | (429, "locked_out" | "rate_limited")
            ),
            "{status} {body}"
        );
    }
    // The refused and the racing attempts did not extend the first lockout (30 s) towards 900 s.
    let locked = assert_error(server.log_in(&app.key, "alice", "correct horse").await, 429, "locked_out").await;
    assert!(locked["retryAfter"].as_u64().unwrap() <= 30, "{locked}");
    // Once it and this address's busy minute are over, the right password gets in.
    server.advance(chrono::Duration::seconds(61));
    ticket_of(server.log_in(&app.key, "alice", "correct horse").await).await;
}

#[tokio::test]
async fn failures_from_one_address_slow_it_down_without_locking_the_accounts_behind_it() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    ticket_of(server.sign_up(&app.key, "carol", "correct horse").await).await;
    // The windows are whole clock minutes: start just after one begins, so that the failures and the refused
    // login fall in the same minute (a run that straddled a minute boundary once got 200 instead of 429).
    let into_minute = server.now().timestamp().rem_euclid(60);
    server.advance(chrono::Duration::seconds(61 - into_minute));
    // Twenty failed logins for twenty different names from one address (an office behind one NAT)...
    for n in 0..20 {
        let name = format!("typo{n}");
        assert_error(server.log_in(&app.key, &name, "wrong horse").await, 401, "invalid_credentials").await;
    }
    // ...slow that address down for the rest of the minute, with rate_limited (not a lockout of carol)...
    let slowed = assert_error(server.log_in(&app.key, "carol", "correct horse").await, 429, "rate_limited").await;
    assert!((1..=60).contains(&slowed["retryAfter"].as_u64().unwrap()), "{slowed}");
    // ...and carol, never locked, gets in once the minute is over.
    server.advance(chrono::Duration::seconds(61));
    ticket_of(server.log_in(&app.key, "carol", "correct horse").await).await;
}

#[tokio::test]
async fn the_identity_type_in_the_login_path_must_be_the_users() {
    let server = start().await;
    let app = server.create_app(json!({})).await;
    ticket_of(server.sign_up(&app.key, "carol", "correct horse").await).await;
    let log_in_as = |kind: &'static str| {
        server
            .http
            .post(server.url(&format!("/v1/users/{kind}/carol/authentication")))
            .header("authorization", format!("Application {}", app.key))
            .json(&json!({ "password": "correct horse" }))
            .send()
    };
    // Right password, wrong identity type: the same answer as a user that does not exist.
    let wrong_type = assert_error(log_in_as("email").await.unwrap(), 401, "invalid_credentials").await;
    let unknown =
        assert_error(server.log_in(&app.key, "nobody", "correct horse").await, 401, "invalid_credentials").await;
    assert_eq!(wrong_type["message"], unknown["message"]);
    assert_error(log_in_as("number").await.unwrap(), 401, "invalid_credentials").await;
    // The username carol still logs in, and her ticket names her as a username.
    let ticket = ticket_of(log_in_as("username").await.unwrap()).await;
    let session = server.session(&ticket).await;
    let profile: Value = server.signed(Method::GET, "/v1/user/profile", None, &session).await.json().await.unwrap();
    assert_eq!(profile["identities"][0]["type"], "username", "{profile}");
}
