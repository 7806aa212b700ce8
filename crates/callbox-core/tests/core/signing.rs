//! Signed requests (PROTOCOL §4).

use crate::support::*;
use callbox_core::signing::{self, SignatureError, SignedParts, DEFAULT_TIMESTAMP_SKEW_SECONDS};
use callbox_core::Reason;
use chrono::Duration;

const SIGNATURE: &str = "qDXMwzfaxCRS849c/2R0hg0nphgdHciTo7OdM6MsdnM=";

fn parts() -> SignedParts<'static> {
    SignedParts {
        method: "POST",
        body: br#"{"message":"Hello world"}"#,
        content_type: "application/json",
        timestamp: "2014-06-04T13:41:58Z",
        path: "/v1/sms/+46700000000",
    }
}

#[test]
fn the_timestamp_window_is_inclusive() {
    assert_eq!(DEFAULT_TIMESTAMP_SKEW_SECONDS, 600);
    for offset in [-600, -1, 0, 1, 600] {
        assert_eq!(signing::verify(&secret(), &parts(), SIGNATURE, 600, after(offset)), Ok(()), "{offset}");
    }
}

#[test]
fn timestamp_skew_says_which_way_and_by_how_much() {
    let error = signing::verify(&secret(), &parts(), SIGNATURE, 600, after(601)).unwrap_err();
    assert_eq!(error, SignatureError::TimestampSkew { off_by: 601, ahead: false, skew: 600 });
    assert!(error.to_string().contains("behind"));
    let error = signing::verify(&secret(), &parts(), SIGNATURE, 600, after(-700)).unwrap_err();
    assert_eq!(error, SignatureError::TimestampSkew { off_by: 700, ahead: true, skew: 600 });
    assert!(error.to_string().contains("ahead of"));
    assert_eq!(error.reason(), Reason::TimestampSkew);
    assert_eq!(error.reason().as_str(), "timestamp_skew");
    assert_eq!(error.reason().error_code(), 40101);
    // Rounded up: half a second beyond the window is one second.
    let late = after(600) + Duration::milliseconds(500);
    assert_eq!(
        signing::verify(&secret(), &parts(), SIGNATURE, 600, late),
        Err(SignatureError::TimestampSkew { off_by: 601, ahead: false, skew: 600 })
    );
}

#[test]
fn bad_or_missing_timestamp() {
    for timestamp in ["", "yesterday", "1401889318", "2014-06-04", "2014-06-04T25:41:58Z"] {
        let bad = SignedParts { timestamp, ..parts() };
        let error = signing::verify(&secret(), &bad, SIGNATURE, 600, created()).unwrap_err();
        assert_eq!(error, SignatureError::BadTimestamp, "{timestamp:?}");
        assert_eq!(error.reason(), Reason::TimestampSkew);
    }
}

#[test]
fn the_timestamp_is_checked_before_the_signature() {
    // A wrong signature far outside the window is reported as skew: the clock is the thing to fix first.
    assert!(matches!(
        signing::verify(&secret(), &parts(), "bad", 600, after(10_000)),
        Err(SignatureError::TimestampSkew { .. })
    ));
}

#[test]
fn every_signed_part_is_covered() {
    let now = created();
    let changed = [
        SignedParts { method: "PUT", ..parts() },
        SignedParts { method: "post", ..parts() },
        SignedParts { body: br#"{"message":"Hello world!"}"#, ..parts() },
        SignedParts { body: b"", ..parts() },
        SignedParts { content_type: "application/json; charset=UTF-8", ..parts() },
        SignedParts { content_type: "", ..parts() },
        SignedParts { timestamp: "2014-06-04T13:41:59Z", ..parts() },
        SignedParts { timestamp: "2014-06-04T13:41:58.000Z", ..parts() },
        SignedParts { path: "/v1/sms/+46700000001", ..parts() },
        SignedParts { path: "/v1/sms/+46700000000?x=1", ..parts() },
    ];
    for parts in changed {
        let error = signing::verify(&secret(), &parts, SIGNATURE, 600, now).unwrap_err();
        assert_eq!(error, SignatureError::BadSignature, "{parts:?}");
        assert_eq!(error.reason().as_str(), "bad_signature");
        assert_eq!(error.reason().error_code(), 40102);
    }
}

#[test]
fn malformed_and_wrong_signatures() {
    let now = created();
    let mut flipped: Vec<u8> = SIGNATURE.bytes().collect();
    flipped[0] = b'r';
    let flipped = String::from_utf8(flipped).unwrap();
    for signature in [
        "",
        "short",
        &SIGNATURE[..43],
        &format!("{SIGNATURE}="),
        &format!(" {SIGNATURE}"),
        &SIGNATURE.replace('/', "_"),
        &SIGNATURE.replace('=', "A"),
        &"A".repeat(44),
        &flipped,
    ] {
        assert_eq!(signing::verify(&secret(), &parts(), signature, 600, now), Err(SignatureError::BadSignature));
    }
    assert_eq!(signing::verify(&other_secret(), &parts(), SIGNATURE, 600, now), Err(SignatureError::BadSignature));
    assert_eq!(signing::verify_signature_only(&secret(), &parts(), SIGNATURE), Ok(()));
}

#[test]
fn empty_body_and_every_timestamp_form_sign_and_verify() {
    for timestamp in [
        "2014-06-04T13:41:58.000Z",
        "2014-06-04T13:41:58.123456",
        "2014-06-04T13:41:58+00:00",
        "2014-06-04T13:41:58Z",
        "2014-06-04T13:41:58.1234567Z",
    ] {
        let get = SignedParts { method: "GET", body: b"", content_type: "", timestamp, path: "/v1/user/profile" };
        assert_eq!(signing::string_to_sign(&get), format!("GET\n\n\nx-timestamp:{timestamp}\n/v1/user/profile"));
        let signature = signing::sign(&secret(), &get);
        assert_eq!(signing::verify(&secret(), &get, &signature, 600, created()), Ok(()), "{timestamp}");
    }
}
