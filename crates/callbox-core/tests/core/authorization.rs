//! `Authorization` header schemes (PROTOCOL §5).

use crate::support::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use callbox_core::authorization::{self, MAX_AUTHORIZATION_BYTES};
use callbox_core::signing::{self, SignedParts};
use callbox_core::{Authorization, AuthorizationError, Reason};

#[test]
fn application_public_and_signed() {
    for scheme in ["Application", "application", "APPLICATION", "aPPlication"] {
        assert_eq!(authorization::parse(&format!("{scheme} {KEY}")), Ok(Authorization::Application { key: KEY }));
    }
    let parts =
        SignedParts { method: "GET", body: b"", content_type: "", timestamp: "2014-06-04T13:41:58Z", path: "/v1/x" };
    let signature = signing::sign(&secret(), &parts);
    let header = format!("Application {KEY}:{signature}");
    let parsed = authorization::parse(&header).unwrap();
    assert_eq!(parsed, Authorization::ApplicationSigned { key: KEY, signature: &signature });
    assert_eq!(parsed.scheme(), "Application");
    if let Authorization::ApplicationSigned { signature, .. } = parsed {
        assert_eq!(signing::verify(&secret(), &parts, signature, 600, created()), Ok(()));
    }
}

#[test]
fn basic_in_both_forms() {
    for user in [KEY.to_owned(), format!("application\\{KEY}")] {
        let header = format!("Basic {}", STANDARD.encode(format!("{user}:{SECRET}")));
        match authorization::parse(&header).unwrap() {
            Authorization::Basic { key, secret } => {
                assert_eq!(key, KEY);
                assert_eq!(secret.as_str(), SECRET);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(authorization::parse(&header.replacen("Basic", "basic", 1)), Ok(Authorization::Basic { .. })));
    }
    // The secret may itself contain ':' (only the first one splits).
    let header = format!("Basic {}", STANDARD.encode("k:a:b"));
    assert!(
        matches!(authorization::parse(&header), Ok(Authorization::Basic { key, secret }) if key == "k" && secret.as_str() == "a:b")
    );
}

#[test]
fn user_bearer_and_instance() {
    assert_eq!(authorization::parse(&format!("User {VECTOR}")), Ok(Authorization::User { ticket: VECTOR }));
    assert_eq!(authorization::parse(&format!("user {VECTOR}")), Ok(Authorization::User { ticket: VECTOR }));
    assert_eq!(authorization::parse(&format!("Bearer {JWT_VECTOR}")), Ok(Authorization::Bearer { jwt: JWT_VECTOR }));
    assert_eq!(authorization::parse(&format!("bearer {JWT_VECTOR}")), Ok(Authorization::Bearer { jwt: JWT_VECTOR }));
    assert_eq!(
        authorization::parse("Instance 6b438bda:qDXMwzfaxCRS849c/2R0hg0nphgdHciTo7OdM6MsdnM="),
        Ok(Authorization::Instance {
            instance_id: "6b438bda",
            signature: "qDXMwzfaxCRS849c/2R0hg0nphgdHciTo7OdM6MsdnM="
        })
    );
    // Surrounding and repeated separating whitespace.
    assert_eq!(authorization::parse(&format!("  User   {VECTOR} \r\n")), Ok(Authorization::User { ticket: VECTOR }));
}

#[test]
fn a_maximal_ticket_fits() {
    let ticket = "A".repeat(callbox_core::ticket::MAX_TICKET_BYTES);
    assert!(authorization::parse(&format!("User {ticket}")).is_ok());
}

#[test]
fn refusals_and_their_reasons() {
    let cases: [(&str, AuthorizationError, &str); 14] = [
        ("", AuthorizationError::Empty, "missing_authorization"),
        (" \t ", AuthorizationError::Empty, "missing_authorization"),
        ("Digest abc", AuthorizationError::UnknownScheme, "malformed_authorization"),
        ("Token abc", AuthorizationError::UnknownScheme, "malformed_authorization"),
        ("User", AuthorizationError::Malformed("scheme without"), "malformed_authorization"),
        ("User a b", AuthorizationError::Malformed("User"), "malformed_authorization"),
        ("Bearer x y", AuthorizationError::Malformed("Bearer"), "malformed_authorization"),
        ("Application a b", AuthorizationError::Malformed("Application"), "malformed_authorization"),
        ("Application :sig", AuthorizationError::Malformed("Application"), "malformed_authorization"),
        ("Instance id", AuthorizationError::Malformed("Instance"), "malformed_authorization"),
        ("Instance id:", AuthorizationError::Malformed("Instance"), "malformed_authorization"),
        ("Basic not-base64!", AuthorizationError::Malformed("Basic"), "malformed_authorization"),
        ("Basic Ojo=", AuthorizationError::Malformed("Basic"), "malformed_authorization"), // "::"
        ("Basic a2V5Og==", AuthorizationError::Malformed("Basic"), "malformed_authorization"), // "key:"
    ];
    for (header, error, reason) in cases {
        let got = authorization::parse(header).unwrap_err();
        assert_eq!(got, error, "{header:?}");
        assert_eq!(got.reason().as_str(), reason, "{header:?}");
        assert_eq!(got.reason().http_status(), 401, "{header:?}");
    }
    let huge = format!("User {}", "A".repeat(MAX_AUTHORIZATION_BYTES));
    let error = authorization::parse(&huge).unwrap_err();
    assert_eq!(error, AuthorizationError::TooLarge);
    assert_eq!(error.reason(), Reason::PayloadTooLarge);
    // Not UTF-8 inside Basic.
    let header = format!("Basic {}", STANDARD.encode([0xff, b':', b'x']));
    assert_eq!(authorization::parse(&header), Err(AuthorizationError::Malformed("Basic")));
}

#[test]
fn debug_never_shows_credentials() {
    let basic = format!("Basic {}", STANDARD.encode(format!("{KEY}:{SECRET}")));
    let headers = [
        format!("User {VECTOR}"),
        format!("Bearer {JWT_VECTOR}"),
        "Instance id1:qDXMwzfaxCRS849c/2R0hg0nphgdHciTo7OdM6MsdnM=".to_owned(),
        format!("Application {KEY}:qDXMwzfaxCRS849c/2R0hg0nphgdHciTo7OdM6MsdnM="),
        basic,
    ];
    for header in &headers {
        let shown = format!("{:?}", authorization::parse(header).unwrap());
        for secret in [VECTOR, JWT_VECTOR, "qDXMwzfaxCRS849c", SECRET] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
