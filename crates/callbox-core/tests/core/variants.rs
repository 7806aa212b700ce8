//! Every legacy generator variant of PROTOCOL §2 verifies, and reads the same claims.

use crate::support::*;
use callbox_core::ticket::DecodedTicket;
use callbox_core::{AnyTicket, Identity, IdentityType, TicketError, TicketPolicy};

/// The vector's claims, whatever the generator's spelling.
fn assert_alice(json: &str) -> callbox_core::ticket::VerifiedTicket {
    let verified = verify_json(json, created()).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(verified.claims.application_key, KEY, "{json}");
    assert_eq!(verified.claims.identity, Identity::username("alice"), "{json}");
    assert_eq!(verified.claims.created, created(), "{json}");
    verified
}

#[test]
fn different_key_order() {
    let verified = assert_alice(
        r#"{"expiresIn":86400,"created":"2014-06-04T13:41:58.000Z","identity":{"endpoint":"alice","type":"username"},"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97"}"#,
    );
    assert_eq!(verified.claims.expires_in, Some(86_400));
    assert_eq!(verified.expires_at, after(86_400));
}

#[test]
fn pretty_printed_json_with_whitespace() {
    let json = "{\r\n\t\"applicationKey\" : \"5F5C418A0F914BBC8234A9BF5EDDAD97\",\r\n\t\"identity\" : {\n    \"type\" : \"username\",\n    \"endpoint\" : \"alice\"\n  },\n  \"created\":  \"2014-06-04T13:41:58.000Z\" ,\n  \"expiresIn\" :\t3600\n}\n";
    assert_eq!(assert_alice(json).claims.expires_in, Some(3600));
    // serde_json's own pretty printer (two-space indent, as Python's json.dumps(indent=2) and others write).
    let value = serde_json::json!({
        "applicationKey": KEY,
        "identity": {"type": "username", "endpoint": "alice"},
        "created": "2014-06-04T13:41:58Z",
        "expiresIn": 3600,
    });
    assert_alice(&serde_json::to_string_pretty(&value).unwrap());
}

#[test]
fn lower_case_applicationkey_from_the_csharp_sample() {
    let json = r#"{"applicationkey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58.0000000Z","expiresIn":86400}"#;
    assert_alice(json);
    assert_eq!(DecodedTicket::decode(&sign_json(json)).unwrap().peek_application_key().as_deref(), Some(KEY));
}

#[test]
fn field_names_in_any_case() {
    let json = r#"{"APPLICATIONKEY":"5F5C418A0F914BBC8234A9BF5EDDAD97","Identity":{"Type":"username","ENDPOINT":"alice"},"CREATED":"2014-06-04T13:41:58Z","ExpiresIn":600,"NONCE":"n-1"}"#;
    let verified = assert_alice(json);
    assert_eq!(verified.claims.expires_in, Some(600));
    assert_eq!(verified.claims.nonce.as_deref(), Some("n-1"));
    assert_alice(
        r#"{"ApplicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"USERNAME","endpoint":"alice"},"created":"2014-06-04T13:41:58Z"}"#,
    );
}

#[test]
fn identity_types_email_and_number() {
    for (kind, endpoint, expected) in
        [("email", "alice@example.com", IdentityType::Email), ("number", "+46700000000", IdentityType::Number)]
    {
        let json = format!(
            r#"{{"applicationKey":"{KEY}","identity":{{"type":"{kind}","endpoint":"{endpoint}"}},"created":"2014-06-04T13:41:58Z"}}"#
        );
        let verified = verify_json(&json, created()).unwrap();
        assert_eq!(verified.claims.identity.kind, expected);
        assert_eq!(verified.claims.identity.endpoint, endpoint);
    }
}

#[test]
fn unknown_fields_are_ignored() {
    assert_alice(
        r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice","extra":[1,{"a":null}]},"created":"2014-06-04T13:41:58Z","generator":"perl 0.1","profile":{"name":"Alice"}}"#,
    );
}

fn with_created(created_text: &str) -> String {
    format!(
        r#"{{"applicationKey":"{KEY}","identity":{{"type":"username","endpoint":"alice"}},"created":"{created_text}","expiresIn":86400}}"#
    )
}

#[test]
fn created_js_millis_z() {
    let verified = assert_alice(&with_created("2014-06-04T13:41:58.000Z"));
    assert_eq!(verified.expires_at, after(86_400));
}

#[test]
fn created_python_microseconds_without_offset_is_utc() {
    let verified = verify_json(&with_created("2014-06-04T13:41:58.123456"), created()).unwrap();
    assert_eq!(verified.claims.created, created() + chrono::Duration::microseconds(123_456));
    // Python's isoformat() drops the fraction when it is zero.
    assert_alice(&with_created("2014-06-04T13:41:58"));
}

#[test]
fn created_php_plus_zero_offset() {
    assert_alice(&with_created("2014-06-04T13:41:58+00:00"));
    // date('c') on a server in another zone writes its local offset: still the same instant.
    assert_alice(&with_created("2014-06-04T15:41:58+02:00"));
}

#[test]
fn created_ruby_z() {
    assert_alice(&with_created("2014-06-04T13:41:58Z"));
}

#[test]
fn created_csharp_seven_fractional_digits() {
    assert_alice(&with_created("2014-06-04T13:41:58.0000000Z"));
    assert_alice(&with_created("2014-06-04T13:41:58.0000000"));
    let verified = verify_json(&with_created("2014-06-04T13:41:58.1234567Z"), created()).unwrap();
    assert_eq!(verified.claims.created, created() + chrono::Duration::nanoseconds(123_456_700));
}

const NO_EXPIRES_IN: &str = r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58.000Z"}"#;

#[test]
fn missing_expires_in_uses_the_default_ttl_inside_the_window() {
    let policy = TicketPolicy { default_ttl: 600, max_ttl: 86_400, skew: 300 };
    let ticket = sign_json(NO_EXPIRES_IN);
    for now in [after(-300), created(), after(600), after(900)] {
        let verified = callbox_core::ticket::verify(&ticket, KEY, &[secret()], &policy, now).unwrap();
        assert_eq!(verified.claims.expires_in, None);
        assert_eq!(verified.expires_at, after(600));
    }
    // `null` is the same as absent.
    let null = format!("{},\"expiresIn\":null}}", NO_EXPIRES_IN.strip_suffix('}').unwrap());
    let verified = verify_json(&null, after(600)).unwrap();
    assert_eq!(verified.claims.expires_in, None);
}

#[test]
fn missing_expires_in_uses_the_default_ttl_outside_the_window() {
    let policy = TicketPolicy { default_ttl: 600, max_ttl: 86_400, skew: 300 };
    let ticket = sign_json(NO_EXPIRES_IN);
    assert_eq!(
        callbox_core::ticket::verify(&ticket, KEY, &[secret()], &policy, after(902)),
        Err(TicketError::Expired { created: created(), ttl: 600, skew: 300, late_by: 2 })
    );
    // A different default moves the window.
    let longer = TicketPolicy { default_ttl: 3600, ..policy };
    assert!(callbox_core::ticket::verify(&ticket, KEY, &[secret()], &longer, after(902)).is_ok());
    // A default above the maximum is still capped by the maximum.
    let capped = TicketPolicy { default_ttl: 7200, max_ttl: 3600, skew: 300 };
    assert_eq!(
        callbox_core::ticket::verify(&ticket, KEY, &[secret()], &capped, created()),
        Err(TicketError::TtlExceedsMax { requested: 7200, max: 3600 })
    );
}

#[test]
fn nonce_is_reported_to_the_caller() {
    let json = r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58.000Z","expiresIn":600,"nonce":"6b438bda-2d5c-4e8c-92b0-39f20a94b34e"}"#;
    let verified = verify_json(json, created()).unwrap();
    assert_eq!(verified.claims.nonce.as_deref(), Some("6b438bda-2d5c-4e8c-92b0-39f20a94b34e"));
    // The nonce must be remembered until the end of the window.
    assert_eq!(verified.expires_at, after(600));
    let any = AnyTicket::decode(&sign_json(json)).unwrap();
    let verified = any.verify(KEY, &[secret()], &TicketPolicy::default(), created()).unwrap();
    assert_eq!(verified.nonce.as_deref(), Some("6b438bda-2d5c-4e8c-92b0-39f20a94b34e"));
}

#[test]
fn surrounding_whitespace_is_tolerated() {
    assert!(verify_at(&format!("  {VECTOR}\n"), created()).is_ok());
}
