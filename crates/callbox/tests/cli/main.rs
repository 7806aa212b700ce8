//! End-to-end tests of the `callbox` binary: the ticket debugger against the PROTOCOL vectors, and the admin
//! client's failure modes that need no server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

const KEY: &str = "5F5C418A0F914BBC8234A9BF5EDDAD97";
const SECRET: &str = "JViE5vDor0Sw3WllZka15Q==";
/// A second secret, for rotation.
const NEW_SECRET: &str = "ax8hTTQJF0OPXL32r1LHMA==";
const CREATED: &str = "2014-06-04T13:41:58.000Z";
const VECTOR: &str = "eyJhcHBsaWNhdGlvbktleSI6IjVGNUM0MThBMEY5MTRCQkM4MjM0QTlCRjVFRERBRDk3IiwiaWRlbnRpdHkiOnsidHlwZSI6InVzZXJuYW1lIiwiZW5kcG9pbnQiOiJhbGljZSJ9LCJjcmVhdGVkIjoiMjAxNC0wNi0wNFQxMzo0MTo1OC4wMDBaIiwiZXhwaXJlc0luIjo4NjQwMH0=:6AMctyp4y4ovV9xNvJpcjdu2YWUS6Y52OPenJs32Bec=";

/// Runs `callbox` with `args` (and `stdin`, if any) in a clean environment, and checks that no secret used by
/// these tests shows up in what it printed.
fn callbox(args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_callbox"));
    command
        .args(args)
        .env_remove("CALLBOX_SECRET")
        .env_remove("CALLBOX_URL")
        .env_remove("CALLBOX_ADMIN_TOKEN")
        .env_remove("CALLBOX_DATA")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the callbox binary starts");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    for stream in [&output.stdout, &output.stderr] {
        let text = String::from_utf8_lossy(stream);
        for secret in [SECRET, NEW_SECRET, SECRET.trim_end_matches('='), NEW_SECRET.trim_end_matches('=')] {
            assert!(!text.contains(secret), "a secret was printed by {args:?}:\n{text}");
        }
    }
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{}\n{}", stdout(output), stderr(output)))
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited normally")
}

/// The `{"userTicket": ...}` object and the bare ticket of a legacy ticket minted for `user` at [`CREATED`].
fn mint_legacy(secret: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["ticket", "mint", "--key", KEY, "--secret", secret, "--user", "alice", "--created", CREATED];
    args.extend_from_slice(extra);
    let output = callbox(&args, None);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let wrapper = stdout(&output);
    let ticket = serde_json::from_str::<Value>(&wrapper).unwrap()["userTicket"].as_str().unwrap().to_owned();
    (wrapper, ticket)
}

fn verify(secrets: &[&str], at: &str, ticket: &str, stdin: Option<&str>) -> Output {
    let mut args = vec!["ticket", "verify", "--key", KEY, "--at", at];
    for secret in secrets {
        args.extend_from_slice(&["--secret", secret]);
    }
    args.push(ticket);
    callbox(&args, stdin)
}

fn check<'a>(diagnosis: &'a Value, name: &str) -> &'a Value {
    diagnosis["checks"].as_array().unwrap().iter().find(|check| check["name"] == name).unwrap()
}

#[test]
fn mint_reproduces_the_protocol_vector() {
    let output = callbox(
        &["ticket", "mint", "--key", KEY, "--secret", SECRET, "--user", "alice", "--ttl", "86400", "--at", CREATED],
        None,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{{\"userTicket\":\"{VECTOR}\"}}\n"));
}

#[test]
fn mint_takes_the_creation_time_as_created_and_still_as_at() {
    let mint = |flag: &str| {
        callbox(
            &["ticket", "mint", "--key", KEY, "--secret", SECRET, "--user", "alice", "--ttl", "86400", flag, CREATED],
            None,
        )
    };
    let created = mint("--created");
    assert_eq!(code(&created), 0, "{}", stderr(&created));
    assert_eq!(stdout(&created), format!("{{\"userTicket\":\"{VECTOR}\"}}\n"), "--created is written as created");
    let at = mint("--at");
    assert_eq!(code(&at), 0, "{}", stderr(&at));
    assert_eq!(stdout(&at), stdout(&created), "--at is an alias of --created");
    let bad = mint("--created=yesterday");
    assert_eq!(code(&bad), 2);
}

#[test]
fn the_short_usage_of_mint_names_created_and_ttl() {
    let output = callbox(&["ticket", "mint", "--key", KEY], None);
    assert_eq!(code(&output), 2);
    let usage = stderr(&output);
    let line = usage.lines().find(|line| line.starts_with("Usage:")).unwrap_or_else(|| panic!("no usage:\n{usage}"));
    for flag in ["--key", "--secret", "--user", "--ttl <SECS>", "--created <ISO-8601>"] {
        assert!(line.contains(flag), "{flag} missing from {line:?}");
    }
    let help = stdout(&callbox(&["ticket", "mint", "--help"], None));
    assert!(help.contains("--created <ISO-8601>") && help.contains("[alias: --at]"), "{help}");
}

#[test]
fn verify_says_when_the_window_passed_only_within_the_clock_skew() {
    let (_, ticket) = mint_legacy(SECRET, &[]);
    // Created 13:41:58 with 600 s: valid until 13:51:58; one second later is inside the 300 s skew.
    let output = verify(&[SECRET], "2014-06-04T13:51:59Z", &ticket, None);
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    let diagnosis = json(&output);
    let window = check(&diagnosis, "time_window");
    assert_eq!(window["passed"], true);
    assert_eq!(
        window["detail"],
        "passed within the allowed clock skew: expired 1 s ago, skew 300 s; valid until 2014-06-04T13:51:58Z \
         (server time 2014-06-04T13:51:59Z)"
    );
    let inside = json(&verify(&[SECRET], "2014-06-04T13:45:00Z", &ticket, None));
    assert!(!check(&inside, "time_window")["detail"].as_str().unwrap().contains("skew"));
}

#[test]
fn legacy_mint_then_verify_is_valid() {
    let (_, ticket) = mint_legacy(SECRET, &["--nonce"]);
    let output = verify(&[SECRET], "2014-06-04T13:45:00Z", &ticket, None);
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    let diagnosis = json(&output);
    assert_eq!(diagnosis["valid"], true);
    assert_eq!(diagnosis["format"], "legacy");
    assert_eq!(diagnosis["claims"]["expiresIn"], 600, "the default --ttl is written as expiresIn");
    assert!(diagnosis["claims"]["nonce"].as_str().is_some_and(|nonce| !nonce.is_empty()));
    assert!(diagnosis["checks"].as_array().unwrap().iter().all(|check| check["passed"] == true));
}

#[test]
fn jwt_mint_then_verify_is_valid() {
    let at = "2018-01-02T03:04:05Z";
    let output = callbox(
        &["ticket", "mint", "--format", "jwt", "--key", KEY, "--secret", SECRET, "--user", "foo", "--at", at],
        None,
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let jwt = stdout(&output);
    assert_eq!(jwt.trim().split('.').count(), 3, "a bare JWT: {jwt}");
    let output = verify(&[SECRET], "2018-01-02T03:05:00Z", jwt.trim(), None);
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    let diagnosis = json(&output);
    assert_eq!(diagnosis["valid"], true);
    assert_eq!(diagnosis["format"], "jwt");
    assert_eq!(diagnosis["claims"]["exp"].as_i64().unwrap() - diagnosis["claims"]["iat"].as_i64().unwrap(), 600);
    assert!(diagnosis["claims"]["nonce"].as_str().is_some(), "JWTs always carry a nonce");
}

#[test]
fn a_changed_byte_is_a_bad_signature() {
    let (_, ticket) = mint_legacy(SECRET, &[]);
    let (data, signature) = ticket.split_once(':').unwrap();
    let first = signature.chars().next().unwrap();
    let changed = format!("{data}:{}{}", if first == 'A' { 'B' } else { 'A' }, &signature[1..]);
    let output = verify(&[SECRET], "2014-06-04T13:45:00Z", &changed, None);
    assert_eq!(code(&output), 1);
    let diagnosis = json(&output);
    assert_eq!(diagnosis["valid"], false);
    assert_eq!(diagnosis["reason"], "bad_signature");
    assert_eq!(check(&diagnosis, "signature")["passed"], false);
    assert_eq!(check(&diagnosis, "format")["passed"], true);
}

#[test]
fn a_late_check_is_ticket_expired() {
    let (_, ticket) = mint_legacy(SECRET, &[]);
    let output = verify(&[SECRET], "2014-06-05T13:41:58Z", &ticket, None);
    assert_eq!(code(&output), 1);
    let diagnosis = json(&output);
    assert_eq!(diagnosis["reason"], "ticket_expired");
    assert_eq!(check(&diagnosis, "time_window")["passed"], false);
    assert_eq!(check(&diagnosis, "signature")["passed"], true);
}

#[test]
fn another_application_key_is_unknown_application() {
    let (_, ticket) = mint_legacy(SECRET, &[]);
    let output = callbox(
        &["ticket", "verify", "--key", "another-key", "--secret", SECRET, "--at", "2014-06-04T13:45:00Z", &ticket],
        None,
    );
    assert_eq!(code(&output), 1);
    let diagnosis = json(&output);
    assert_eq!(diagnosis["reason"], "unknown_application");
    assert_eq!(check(&diagnosis, "application")["passed"], false);
}

#[test]
fn rotation_verifies_against_every_secret_given() {
    let (_, old_ticket) = mint_legacy(SECRET, &[]);
    let (_, new_ticket) = mint_legacy(NEW_SECRET, &[]);
    for ticket in [&old_ticket, &new_ticket] {
        let output = verify(&[SECRET, NEW_SECRET], "2014-06-04T13:45:00Z", ticket, None);
        assert_eq!(code(&output), 0, "{}", stdout(&output));
    }
    let diagnosis = json(&verify(&[NEW_SECRET, SECRET], "2014-06-04T13:45:00Z", &old_ticket, None));
    assert!(check(&diagnosis, "signature")["detail"].as_str().unwrap().contains("#2 of 2"), "{diagnosis}");
    let output = verify(&[NEW_SECRET], "2014-06-04T13:45:00Z", &old_ticket, None);
    assert_eq!(code(&output), 1);
    assert_eq!(json(&output)["reason"], "bad_signature");
}

#[test]
fn stdin_and_the_user_ticket_wrapper_are_accepted() {
    let (wrapper, ticket) = mint_legacy(SECRET, &[]);
    let at = "2014-06-04T13:45:00Z";
    for (arg, stdin) in [
        ("-", Some(format!("{ticket}\n"))),
        ("-", Some(wrapper.clone())),
        ("-", Some(format!("  {{ \"userTicket\" : \"{ticket}\" }}\r\n"))),
        (wrapper.as_str(), None),
        (ticket.as_str(), None),
    ] {
        let output = verify(&[SECRET], at, arg, stdin.as_deref());
        assert_eq!(code(&output), 0, "{arg} {stdin:?}: {}", stdout(&output));
    }
    let output = callbox(
        &["ticket", "mint", "--format", "jwt", "--key", KEY, "--secret", SECRET, "--user", "bob", "--at", at],
        None,
    );
    let jwt = stdout(&output).trim().to_owned();
    let output = verify(&[SECRET], at, "-", Some(&format!("{{\"jwt\":\"{jwt}\"}}\n")));
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    let output = verify(&[SECRET], at, "{\"ticket\":\"x\"}", None);
    assert_eq!(code(&output), 1);
    assert_eq!(json(&output)["reason"], "malformed_ticket");
}

#[test]
fn inspect_decodes_both_formats_without_a_secret() {
    let output = callbox(&["ticket", "inspect", VECTOR], None);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let shown = json(&output);
    assert_eq!(shown["format"], "legacy");
    assert_eq!(shown["applicationKey"], KEY);
    assert_eq!(shown["claims"]["identity"]["endpoint"], "alice");
    assert_eq!(shown["claims"]["expiresIn"], 86_400);

    let output = callbox(&["ticket", "inspect", "-"], Some(&format!("{{\"userTicket\":\"{VECTOR}\"}}\n")));
    assert_eq!(json(&output)["claims"]["identity"]["type"], "username");

    let output = callbox(
        &[
            "ticket",
            "mint",
            "--format",
            "jwt",
            "--key",
            KEY,
            "--secret",
            SECRET,
            "--user",
            "foo",
            "--at",
            "2018-01-02T03:04:05Z",
        ],
        None,
    );
    let jwt = stdout(&output).trim().to_owned();
    let output = callbox(&["ticket", "inspect", &jwt], None);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let shown = json(&output);
    assert_eq!(shown["format"], "jwt");
    assert_eq!(shown["applicationKey"], KEY);
    assert_eq!(shown["header"]["alg"], "HS256");
    assert_eq!(shown["header"]["kid"], "hkdfv1-20180102");
    assert_eq!(shown["claims"]["sub"], format!("//rtc.sinch.com/applications/{KEY}/users/foo"));

    let output = callbox(&["ticket", "inspect", "not a ticket"], None);
    assert_eq!(code(&output), 1);
    let shown = json(&output);
    assert_eq!(shown["reason"], "malformed_ticket");
    assert!(shown["message"].as_str().is_some());
}

#[test]
fn bad_arguments_exit_2_without_echoing_the_secret() {
    for bad in ["c2hvcnQ=", "not base64!", "-JViE5vDor0Sw3WllZka15Q=="] {
        let output = callbox(&["ticket", "mint", "--key", KEY, "--secret", bad, "--user", "alice"], None);
        assert_eq!(code(&output), 2, "{bad}");
        assert!(output.stdout.is_empty());
        let message = stderr(&output);
        assert!(message.contains("--secret"), "{message}");
        assert!(!message.contains(bad), "the refused secret was echoed: {message}");

        let output = verify(&[SECRET, bad], "2014-06-04T13:45:00Z", VECTOR, None);
        assert_eq!(code(&output), 2, "{bad}");
        assert!(stderr(&output).contains("--secret #2"), "{}", stderr(&output));
    }
    let output = callbox(
        &["ticket", "mint", "--format", "jwt", "--key", KEY, "--secret", SECRET, "--user", "a", "--ttl", "59"],
        None,
    );
    assert_eq!(code(&output), 2);
    let output = callbox(&["ticket", "verify", "--key", KEY, "--secret", SECRET, "--at", "yesterday", VECTOR], None);
    assert_eq!(code(&output), 2);
}

#[test]
fn an_unreachable_server_is_named() {
    let output = callbox(&["app", "list", "--server", "http://127.0.0.1:1", "--admin-token", "t0ken-for-tests"], None);
    assert_eq!(code(&output), 1);
    let message = stderr(&output);
    assert!(message.contains("http://127.0.0.1:1"), "{message}");
    assert!(message.contains("cannot connect"), "{message}");
    assert!(!message.contains("t0ken-for-tests"), "{message}");
}

#[test]
fn admin_argument_problems_exit_2_before_any_request() {
    let empty = std::env::temp_dir().join(format!("callbox-cli-test-{}", std::process::id()));
    let data = empty.to_str().unwrap();
    let output = callbox(&["app", "list", "--server", "http://127.0.0.1:1", "--data", data], None);
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("admin token"), "{}", stderr(&output));

    let output = callbox(&["app", "list", "--server", "https://callbox.example", "--admin-token", "t"], None);
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("http"), "{}", stderr(&output));

    let output =
        callbox(&["user", "remove", "--app", "k", "..", "--server", "http://127.0.0.1:1", "--admin-token", "t"], None);
    assert_eq!(code(&output), 2, "'..' would address the application itself");

    let output = callbox(&["app", "set", "k", "--admin-token", "t"], None);
    assert_eq!(code(&output), 2, "app set with nothing to change");
}

#[test]
fn every_command_has_help() {
    for path in [
        &["--help"][..],
        &["serve", "--help"],
        &["ticket", "--help"],
        &["ticket", "mint", "--help"],
        &["ticket", "inspect", "--help"],
        &["ticket", "verify", "--help"],
        &["app", "--help"],
        &["app", "create", "--help"],
        &["app", "list", "--help"],
        &["app", "show", "--help"],
        &["app", "set", "--help"],
        &["app", "rotate-secret", "--help"],
        &["app", "retire-secret", "--help"],
        &["app", "delete", "--help"],
        &["user", "--help"],
        &["user", "add", "--help"],
        &["user", "list", "--help"],
        &["user", "disable", "--help"],
        &["user", "enable", "--help"],
        &["user", "remove", "--help"],
        &["user", "set-password", "--help"],
        &["session", "--help"],
        &["session", "list", "--help"],
        &["session", "revoke", "--help"],
        &["connection", "--help"],
        &["connection", "list", "--help"],
        &["connection", "drop", "--help"],
        &["call", "--help"],
        &["call", "list", "--help"],
    ] {
        let output = callbox(path, None);
        assert_eq!(code(&output), 0, "{path:?}");
        assert!(stdout(&output).contains("Usage: callbox"), "{path:?}");
    }
    assert!(stdout(&callbox(&["app", "--help"], None)).to_lowercase().contains("plain http"));
}
mod admin_e2e;
mod calls;
mod cluster;
mod crash;
mod data_dir;
mod metrics_listen;
mod realtime;
mod served;
mod tls;
