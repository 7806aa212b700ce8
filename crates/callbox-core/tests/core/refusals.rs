//! Every refusal of a legacy ticket, with its exact PROTOCOL §7 reason.

use crate::support::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use callbox_core::ticket::{self, DecodedTicket, MAX_TICKET_BYTES};
use callbox_core::{Reason, TicketError, TicketPolicy};

fn reason_of(ticket: &str) -> Reason {
    verify_at(ticket, created()).expect_err("should be refused").reason()
}

fn json_reason(json: &str) -> Reason {
    reason_of(&sign_json(json))
}

fn malformed_text(result: Result<impl std::fmt::Debug, TicketError>) -> &'static str {
    match result {
        Err(TicketError::Malformed(text)) => text,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn every_changed_byte_of_the_json_is_a_bad_signature() {
    let json = VECTOR_JSON.as_bytes();
    let signature = VECTOR.split_once(':').unwrap().1;
    for index in 0..json.len() {
        let mut changed = json.to_vec();
        changed[index] ^= 0x01;
        let ticket = format!("{}:{signature}", STANDARD.encode(&changed));
        assert_eq!(verify_at(&ticket, created()), Err(TicketError::BadSignature), "byte {index}");
    }
}

#[test]
fn every_changed_byte_of_the_signature_is_a_bad_signature() {
    let (data, signature) = VECTOR.split_once(':').unwrap();
    let signature = STANDARD.decode(signature).unwrap();
    for index in 0..signature.len() {
        for bit in 0..8 {
            let mut changed = signature.clone();
            changed[index] ^= 1 << bit;
            let ticket = format!("{data}:{}", STANDARD.encode(&changed));
            assert_eq!(verify_at(&ticket, created()), Err(TicketError::BadSignature), "byte {index} bit {bit}");
            assert_eq!(reason_of(&ticket), Reason::BadSignature);
        }
    }
}

#[test]
fn bad_signature_comes_before_parsing() {
    // Not JSON, and not signed: the MAC is checked first, so the answer is bad_signature, not malformed_ticket.
    let ticket = format!("{}:{}", STANDARD.encode("not json"), STANDARD.encode([0u8; 32]));
    assert_eq!(verify_at(&ticket, created()), Err(TicketError::BadSignature));
}

#[test]
fn over_8_kib_is_payload_too_large_before_any_work() {
    // Not base64, not even split by ':': the size check runs before anything else.
    let junk = "!".repeat(MAX_TICKET_BYTES + 1);
    assert_eq!(
        DecodedTicket::decode(&junk).unwrap_err(),
        TicketError::TooLarge { len: MAX_TICKET_BYTES + 1, max: MAX_TICKET_BYTES }
    );
    assert_eq!(reason_of(&junk), Reason::PayloadTooLarge);
    assert_eq!(Reason::PayloadTooLarge.as_str(), "payload_too_large");
    // A correctly signed ticket that is simply too big.
    let padding = "x".repeat(MAX_TICKET_BYTES);
    let json = format!(
        r#"{{"applicationKey":"{KEY}","identity":{{"type":"username","endpoint":"alice"}},"created":"2014-06-04T13:41:58Z","padding":"{padding}"}}"#
    );
    let big = sign_json(&json);
    assert!(big.len() > MAX_TICKET_BYTES);
    assert_eq!(reason_of(&big), Reason::PayloadTooLarge);
    assert_eq!(callbox_core::AnyTicket::decode(&big).unwrap_err().reason(), Reason::PayloadTooLarge);
}

#[test]
fn the_size_limit_is_exactly_8_kib() {
    // Pad a valid ticket with trailing whitespace (tolerated) up to the limit, then one byte over.
    let padded = format!("{VECTOR:<MAX_TICKET_BYTES$}");
    assert_eq!(padded.len(), MAX_TICKET_BYTES);
    assert!(verify_at(&padded, created()).is_ok());
    let over = format!("{padded} ");
    assert_eq!(verify_at(&over, created()).unwrap_err().reason(), Reason::PayloadTooLarge);
}

#[test]
fn bad_base64() {
    let (data, signature) = VECTOR.split_once(':').unwrap();
    for ticket in [
        format!("{data}:{}", &signature[..signature.len() - 1]), // padding missing
        format!("{}:{signature}", data.replace('=', "")),        // unpadded data
        format!("{data}!:{signature}"),                          // not in the alphabet
        format!("{}:{signature}", data.replace('J', "-")),       // url-safe alphabet
        format!("{data}:_{}", &signature[1..]),
        format!("{data}:{}", STANDARD.encode([0u8; 31])), // 31-byte "MAC"
        format!("{data} x:{signature}"),
        VECTOR.replace(':', ""),
        VECTOR.replace(':', "."),
        String::new(),
        ":".into(),
    ] {
        assert_eq!(reason_of(&ticket), Reason::MalformedTicket, "{ticket}");
        assert_eq!(Reason::MalformedTicket.as_str(), "malformed_ticket");
    }
    assert_eq!(malformed_text(DecodedTicket::decode("e30=:!!")), "TicketSignature is not standard base64");
    assert_eq!(malformed_text(DecodedTicket::decode("e30:AAAA")), "TicketData is not standard base64");
}

#[test]
fn non_json() {
    for json in ["not json", "", "{", "[1,2]", "\"string\"", "{\"applicationKey\":}", "\u{feff}{}"] {
        let ticket = sign_json(json);
        let error = verify_at(&ticket, created()).unwrap_err();
        assert_eq!(error.reason(), Reason::MalformedTicket, "{json:?}");
    }
    assert_eq!(malformed_text(verify_json("not json", created())), "TicketData is not JSON");
    // Valid UTF-8 is not required of the bytes, but JSON is.
    let ticket = format!(
        "{}:{}",
        STANDARD.encode([0xff, 0xfe]),
        STANDARD.encode(hmac_sha256(secret().expose_bytes(), &[0xff, 0xfe]))
    );
    assert_eq!(reason_of(&ticket), Reason::MalformedTicket);
}

fn with_expires_in(value: &str) -> String {
    format!(
        r#"{{"applicationKey":"{KEY}","identity":{{"type":"username","endpoint":"alice"}},"created":"2014-06-04T13:41:58Z","expiresIn":{value}}}"#
    )
}

#[test]
fn wrong_types() {
    for value in ["-1", "-86400", "600.0", "600.5", "6e2", "\"600\"", "true", "[600]", "{}", "18446744073709551616"] {
        let result = verify_json(&with_expires_in(value), created());
        assert_eq!(
            malformed_text(result),
            "TicketData has a field of the wrong type (expiresIn must be a whole number of seconds)",
            "expiresIn {value}"
        );
    }
    for json in [
        r#"{"applicationKey":null,"identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58Z"}"#,
        r#"{"applicationKey":5,"identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58Z"}"#,
        r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":"alice","created":"2014-06-04T13:41:58Z"}"#,
        r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":7},"created":"2014-06-04T13:41:58Z"}"#,
        r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice"},"created":1401889318}"#,
        r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58Z","nonce":1}"#,
    ] {
        assert_eq!(json_reason(json), Reason::MalformedTicket, "{json}");
    }
}

#[test]
fn duplicate_fields() {
    for json in [
        r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","applicationKey":"other","identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58Z"}"#,
        // Case-insensitive names make these duplicates too.
        r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","applicationkey":"other","identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58Z"}"#,
        r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice","Endpoint":"mallory"},"created":"2014-06-04T13:41:58Z"}"#,
        r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice"},"identity":{"type":"username","endpoint":"bob"},"created":"2014-06-04T13:41:58Z"}"#,
        r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58Z","created":"2030-01-01T00:00:00Z"}"#,
        r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58Z","expiresIn":60,"expiresIn":86400}"#,
        r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58Z","expiresIn":null,"ExpiresIn":86400}"#,
        r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58Z","nonce":"a","nonce":"b"}"#,
    ] {
        assert_eq!(malformed_text(verify_json(json, created())), "TicketData repeats a field", "{json}");
    }
}

#[test]
fn missing_or_empty_fields() {
    let cases = [
        (
            r#"{"identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58Z"}"#,
            "applicationKey is missing",
        ),
        (
            r#"{"applicationKey":"","identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58Z"}"#,
            "applicationKey is missing",
        ),
        (
            r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","created":"2014-06-04T13:41:58Z"}"#,
            "identity is missing",
        ),
        (
            r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"endpoint":"alice"},"created":"2014-06-04T13:41:58Z"}"#,
            "identity.type must be username, email or number",
        ),
        (
            r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"phone","endpoint":"alice"},"created":"2014-06-04T13:41:58Z"}"#,
            "identity.type must be username, email or number",
        ),
        (
            r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username"},"created":"2014-06-04T13:41:58Z"}"#,
            "identity.endpoint is missing",
        ),
        (
            r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":""},"created":"2014-06-04T13:41:58Z"}"#,
            "identity.endpoint must be 1-255 bytes without control characters",
        ),
        (
            r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"a\nb"},"created":"2014-06-04T13:41:58Z"}"#,
            "identity.endpoint must be 1-255 bytes without control characters",
        ),
        (
            r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice"}}"#,
            "created is missing",
        ),
        (
            r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice"},"created":"June 4th"}"#,
            "created is not an ISO-8601 time",
        ),
        (
            r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04"}"#,
            "created is not an ISO-8601 time",
        ),
        (
            r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58Z","nonce":""}"#,
            "nonce must be 1-255 bytes",
        ),
        ("{}", "applicationKey is missing"),
    ];
    for (json, text) in cases {
        assert_eq!(malformed_text(verify_json(json, created())), text, "{json}");
    }
    let long_user = format!(
        r#"{{"applicationKey":"{KEY}","identity":{{"type":"username","endpoint":"{}"}},"created":"2014-06-04T13:41:58Z"}}"#,
        "u".repeat(256)
    );
    assert_eq!(json_reason(&long_user), Reason::MalformedTicket);
    let long_nonce = format!(
        r#"{{"applicationKey":"{KEY}","identity":{{"type":"username","endpoint":"alice"}},"created":"2014-06-04T13:41:58Z","nonce":"{}"}}"#,
        "n".repeat(256)
    );
    assert_eq!(malformed_text(verify_json(&long_nonce, created())), "nonce must be 1-255 bytes");
}

#[test]
fn expired_says_by_how_many_seconds() {
    // Window end = created + 86400 + 300 s skew.
    assert_eq!(
        verify_at(VECTOR, after(86_400 + 300 + 42)),
        Err(TicketError::Expired { created: created(), ttl: 86_400, skew: 300, late_by: 42 })
    );
    let error = verify_at(VECTOR, after(86_400 + 300 + 42)).unwrap_err();
    assert_eq!(error.reason(), Reason::TicketExpired);
    assert_eq!(error.reason().as_str(), "ticket_expired");
    let text = error.to_string();
    assert!(text.contains("42 s ago"), "{text}");
    // Sub-second lateness rounds up to one second.
    let late = after(86_400 + 300) + chrono::Duration::milliseconds(1);
    assert_eq!(
        verify_at(VECTOR, late),
        Err(TicketError::Expired { created: created(), ttl: 86_400, skew: 300, late_by: 1 })
    );
}

#[test]
fn not_yet_valid_beyond_the_skew() {
    // Within the skew: accepted.
    assert!(verify_at(VECTOR, after(-300)).is_ok());
    let error = verify_at(VECTOR, after(-300 - 17)).unwrap_err();
    assert_eq!(error, TicketError::NotYetValid { created: created(), skew: 300, early_by: 17 });
    assert_eq!(error.reason().as_str(), "ticket_not_yet_valid");
    assert!(error.to_string().contains("17 s"));
    // Zero skew is strict.
    let strict = TicketPolicy { skew: 0, ..TicketPolicy::default() };
    assert_eq!(
        ticket::verify(VECTOR, KEY, &[secret()], &strict, after(-1)),
        Err(TicketError::NotYetValid { created: created(), skew: 0, early_by: 1 })
    );
}

#[test]
fn ttl_over_max_is_ticket_ttl_exceeds_max() {
    let tight = TicketPolicy { default_ttl: 600, max_ttl: 3600, skew: 300 };
    let error = ticket::verify(VECTOR, KEY, &[secret()], &tight, created()).unwrap_err();
    assert_eq!(error, TicketError::TtlExceedsMax { requested: 86_400, max: 3600 });
    assert_eq!(error.reason().as_str(), "ticket_ttl_exceeds_max");
    // Exactly the maximum is fine.
    let exact = TicketPolicy { max_ttl: 86_400, ..tight };
    assert!(ticket::verify(VECTOR, KEY, &[secret()], &exact, created()).is_ok());
    assert_eq!(json_reason(&with_expires_in("86401")), Reason::TicketTtlExceedsMax);
    assert_eq!(json_reason(&with_expires_in("18446744073709551615")), Reason::TicketTtlExceedsMax);
}

#[test]
fn other_application_key_is_unknown_application() {
    let error = ticket::verify(VECTOR, "some-other-app", &[secret()], &TicketPolicy::default(), created()).unwrap_err();
    assert_eq!(error, TicketError::ApplicationMismatch);
    assert_eq!(error.reason().as_str(), "unknown_application");
    // Keys are compared exactly (only field names are case-insensitive).
    let error = ticket::verify(VECTOR, &KEY.to_lowercase(), &[secret()], &TicketPolicy::default(), created());
    assert_eq!(error, Err(TicketError::ApplicationMismatch));
}

#[test]
fn secret_rotation() {
    let policy = TicketPolicy::default();
    // Newest secret first; the ticket was made with the older one, which still verifies.
    let verified = ticket::verify(VECTOR, KEY, &[other_secret(), secret()], &policy, created()).unwrap();
    assert_eq!(verified.secret_index, 1);
    let verified = ticket::verify(VECTOR, KEY, &[secret(), other_secret()], &policy, created()).unwrap();
    assert_eq!(verified.secret_index, 0);
    // A ticket made with the new secret.
    let new = sign_json_with(VECTOR_JSON, &other_secret());
    assert_eq!(ticket::verify(&new, KEY, &[other_secret(), secret()], &policy, created()).unwrap().secret_index, 0);
    // Once the old secret is retired, its tickets are refused as bad signatures.
    let error = ticket::verify(VECTOR, KEY, &[other_secret()], &policy, created()).unwrap_err();
    assert_eq!(error, TicketError::BadSignature);
    assert_eq!(error.reason().as_str(), "bad_signature");
    // No secrets at all.
    assert_eq!(ticket::verify(VECTOR, KEY, &[], &policy, created()), Err(TicketError::BadSignature));
}

#[test]
fn refusal_texts_never_contain_the_ticket_or_secret() {
    let (data, signature) = VECTOR.split_once(':').unwrap();
    let errors = [
        verify_at(VECTOR, after(1_000_000)).unwrap_err(),
        ticket::verify(VECTOR, KEY, &[other_secret()], &TicketPolicy::default(), created()).unwrap_err(),
        ticket::verify(VECTOR, "x", &[secret()], &TicketPolicy::default(), created()).unwrap_err(),
    ];
    for error in errors {
        let text = format!("{error} {error:?}");
        assert!(!text.contains(data) && !text.contains(signature) && !text.contains(SECRET), "{text}");
    }
    let debug = format!("{:?}", DecodedTicket::decode(VECTOR).unwrap());
    assert!(!debug.contains(signature) && !debug.contains(data), "{debug}");
}

#[test]
fn non_canonical_base64_is_refused() {
    // The last character before '=' carries two unused bits: 'c' (011100) and 'd', 'e', 'f' decode to the same
    // 32 bytes under a lenient decoder. Only the canonical form may verify.
    let (data, signature) = VECTOR.split_once(':').unwrap();
    assert!(signature.ends_with("c="));
    for last in ['d', 'e', 'f'] {
        let ticket = format!("{data}:{}{last}=", &signature[..signature.len() - 2]);
        assert_eq!(reason_of(&ticket), Reason::MalformedTicket, "{last}");
    }
    // TicketData ends "MH0=" ('0' = 110100, two unused bits): '1', '2', '3' decode to the same bytes leniently.
    assert!(data.ends_with("MH0="));
    for last in ['1', '2', '3'] {
        let ticket = format!("{}{last}=:{signature}", &data[..data.len() - 2]);
        assert_eq!(reason_of(&ticket), Reason::MalformedTicket, "{last}");
    }
}
