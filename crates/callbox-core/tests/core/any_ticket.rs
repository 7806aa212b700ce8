//! `AnyTicket` and `diagnose`: one entry point for both formats, and the ticket debugger's checks.

use crate::support::*;
use callbox_core::any_ticket::diagnosis_reason;
use callbox_core::{diagnose, AnyTicket, Diagnosis, Reason, TicketFormat, TicketPolicy};

fn check(diagnosis: &Diagnosis, name: &str) -> Option<bool> {
    diagnosis.checks.iter().find(|check| check.name == name).unwrap_or_else(|| panic!("no {name} check")).passed
}

#[test]
fn formats_are_told_apart_by_shape() {
    assert_eq!(AnyTicket::decode(VECTOR).unwrap().format(), TicketFormat::Legacy);
    assert_eq!(AnyTicket::decode(JWT_VECTOR).unwrap().format(), TicketFormat::Jwt);
    assert_eq!(AnyTicket::decode(&format!(" {JWT_VECTOR}\n")).unwrap().format(), TicketFormat::Jwt);
    assert_eq!(AnyTicket::decode("a.b").unwrap_err().reason(), Reason::MalformedTicket);
}

#[test]
fn claims_json_of_the_legacy_vector() {
    let claims = AnyTicket::decode(VECTOR).unwrap().claims_json().unwrap();
    assert_eq!(
        claims,
        serde_json::json!({
            "applicationKey": KEY,
            "identity": {"type": "username", "endpoint": "alice"},
            "created": "2014-06-04T13:41:58Z",
            "expiresIn": 86400,
        })
    );
    let claims = AnyTicket::decode(JWT_VECTOR).unwrap().claims_json().unwrap();
    assert_eq!(claims["nonce"], JWT_NONCE);
    assert_eq!(claims["iat"], 1_514_862_245);
}

#[test]
fn diagnose_a_valid_ticket() {
    let diagnosis = diagnose(VECTOR, KEY, &[other_secret(), secret()], &TicketPolicy::default(), created());
    assert!(diagnosis.valid, "{diagnosis:?}");
    assert_eq!(diagnosis.reason, None);
    assert_eq!(diagnosis.format, Some(TicketFormat::Legacy));
    for name in ["format", "application", "signature", "time_window"] {
        assert_eq!(check(&diagnosis, name), Some(true), "{name}");
    }
    let signature = diagnosis.checks.iter().find(|c| c.name == "signature").unwrap();
    assert!(signature.detail.contains("secret #2 of 2"), "{}", signature.detail);
    assert!(!format!("{diagnosis:?}").contains(SECRET));

    let diagnosis = diagnose(JWT_VECTOR, JWT_KEY, &[jwt_secret()], &TicketPolicy::default(), jwt_iat());
    assert!(diagnosis.valid, "{diagnosis:?}");
    assert_eq!(diagnosis.format, Some(TicketFormat::Jwt));
}

#[test]
fn diagnose_an_expired_ticket_reports_the_window_and_the_good_signature() {
    let diagnosis = diagnose(VECTOR, KEY, &[secret()], &TicketPolicy::default(), after(86_400 + 300 + 60));
    assert!(!diagnosis.valid);
    assert_eq!(diagnosis.reason, Some("ticket_expired"));
    assert_eq!(diagnosis_reason(&diagnosis), Some(Reason::TicketExpired));
    assert_eq!(check(&diagnosis, "signature"), Some(true));
    assert_eq!(check(&diagnosis, "time_window"), Some(false));
    assert!(diagnosis.message.unwrap().contains("60 s ago"));
}

fn detail<'a>(diagnosis: &'a Diagnosis, name: &str) -> &'a str {
    &diagnosis.checks.iter().find(|check| check.name == name).unwrap_or_else(|| panic!("no {name} check")).detail
}

#[test]
fn a_window_passed_only_thanks_to_the_skew_says_so_and_by_how_much() {
    let policy = TicketPolicy::default();
    let inside = diagnose(VECTOR, KEY, &[secret()], &policy, after(86_400));
    assert!(inside.valid);
    assert_eq!(detail(&inside, "time_window"), "valid until 2014-06-05T13:41:58Z (server time 2014-06-05T13:41:58Z)");

    let late = diagnose(VECTOR, KEY, &[secret()], &policy, after(86_400 + 1));
    assert!(late.valid, "{late:?}");
    assert_eq!(check(&late, "time_window"), Some(true));
    assert_eq!(
        detail(&late, "time_window"),
        "passed within the allowed clock skew: expired 1 s ago, skew 300 s; valid until 2014-06-05T13:41:58Z \
         (server time 2014-06-05T13:41:59Z)"
    );
    let later = diagnose(VECTOR, KEY, &[secret()], &TicketPolicy { skew: 600, ..policy }, after(86_400 + 421));
    assert!(detail(&later, "time_window")
        .starts_with("passed within the allowed clock skew: expired 421 s ago, skew 600 s;"));

    let early = diagnose(VECTOR, KEY, &[secret()], &policy, after(-42));
    assert!(early.valid);
    assert!(
        detail(&early, "time_window")
            .starts_with("passed within the allowed clock skew: created 42 s in the future, skew 300 s;"),
        "{}",
        detail(&early, "time_window")
    );
    // A JWT's window starts at iat.
    let early_jwt = diagnose(JWT_VECTOR, JWT_KEY, &[jwt_secret()], &policy, jwt_iat() - chrono::Duration::seconds(7));
    assert!(early_jwt.valid, "{early_jwt:?}");
    assert!(detail(&early_jwt, "time_window").contains("created 7 s in the future, skew 300 s"));
    // Beyond the skew it fails with the expiry sentence, not the skew one.
    let expired = diagnose(VECTOR, KEY, &[secret()], &policy, after(86_400 + 301));
    assert_eq!(check(&expired, "time_window"), Some(false));
    assert!(!detail(&expired, "time_window").contains("passed within"));
}

#[test]
fn diagnose_a_wrong_secret_and_a_wrong_application() {
    let diagnosis = diagnose(VECTOR, KEY, &[other_secret()], &TicketPolicy::default(), created());
    assert_eq!(diagnosis.reason, Some("bad_signature"));
    assert_eq!(check(&diagnosis, "signature"), Some(false));
    assert_eq!(check(&diagnosis, "time_window"), Some(true));

    let diagnosis = diagnose(VECTOR, "other-app", &[secret()], &TicketPolicy::default(), created());
    assert_eq!(diagnosis.reason, Some("unknown_application"));
    assert_eq!(check(&diagnosis, "application"), Some(false));

    let diagnosis = diagnose(VECTOR, KEY, &[], &TicketPolicy::default(), created());
    assert_eq!(diagnosis.reason, Some("bad_signature"));
}

#[test]
fn diagnose_garbage() {
    for text in ["", "garbage", "a.b.c", &"x".repeat(10_000)] {
        let diagnosis = diagnose(text, KEY, &[secret()], &TicketPolicy::default(), created());
        assert!(!diagnosis.valid);
        assert!(matches!(diagnosis.reason, Some("malformed_ticket" | "payload_too_large")), "{diagnosis:?}");
        assert_eq!(check(&diagnosis, "format"), Some(false));
    }
}
