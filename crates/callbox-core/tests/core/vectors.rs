//! The known vectors of PROTOCOL §2, §3 and §4.

use crate::support::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use callbox_core::jwt::{self, DecodedJwt, NewRegistrationJwt};
use callbox_core::signing::{self, SignedParts};
use callbox_core::ticket::{self, DecodedTicket, NewTicket};
use callbox_core::{AnyTicket, Identity, TicketError, TicketFormat, TicketPolicy};
use chrono::{NaiveDate, TimeZone, Utc};

#[test]
fn legacy_vector_decodes_to_the_node_generator_json() {
    let (data, signature) = VECTOR.split_once(':').unwrap();
    assert_eq!(STANDARD.decode(data).unwrap(), VECTOR_JSON.as_bytes());
    let decoded = DecodedTicket::decode(VECTOR).unwrap();
    assert_eq!(decoded.json(), VECTOR_JSON.as_bytes());
    // The MAC is HMAC-SHA256 keyed with the base64-decoded secret, over the exact JSON bytes.
    let key = STANDARD.decode(SECRET).unwrap();
    assert_eq!(STANDARD.encode(hmac_sha256(&key, VECTOR_JSON.as_bytes())), signature);
}

#[test]
fn legacy_vector_mints_byte_for_byte() {
    let new = NewTicket {
        application_key: KEY.into(),
        identity: Identity::username("alice"),
        created: created(),
        expires_in: Some(86_400),
        nonce: None,
    };
    assert_eq!(ticket::mint(&new, &secret()), VECTOR);
}

#[test]
fn legacy_vector_verifies_over_its_whole_window() {
    for now in [after(-300), created(), after(86_400), after(86_400 + 300)] {
        let verified = verify_at(VECTOR, now).unwrap_or_else(|e| panic!("{now}: {e}"));
        assert_eq!(verified.claims.application_key, KEY);
        assert_eq!(verified.claims.identity, Identity::username("alice"));
        assert_eq!(verified.claims.created, created());
        assert_eq!(verified.claims.expires_in, Some(86_400));
        assert_eq!(verified.claims.nonce, None);
        assert_eq!(verified.secret_index, 0);
        assert_eq!(verified.expires_at, after(86_400));
    }
    assert_eq!(
        verify_at(VECTOR, after(86_400 + 301)),
        Err(TicketError::Expired { created: created(), ttl: 86_400, skew: 300, late_by: 1 })
    );
    assert_eq!(
        verify_at(VECTOR, after(-301)),
        Err(TicketError::NotYetValid { created: created(), skew: 300, early_by: 1 })
    );
}

#[test]
fn legacy_vector_through_any_ticket() {
    let any = AnyTicket::decode(VECTOR).unwrap();
    assert_eq!(any.format(), TicketFormat::Legacy);
    assert_eq!(any.peek_application_key().as_deref(), Some(KEY));
    let verified = any.verify(KEY, &[secret()], &TicketPolicy::default(), created()).unwrap();
    assert_eq!(verified.identity, Identity::username("alice"));
    assert_eq!(verified.expires_at, after(86_400));
}

#[test]
fn jwt_vector_signing_key() {
    let date = NaiveDate::from_ymd_opt(2018, 1, 2).unwrap();
    assert_eq!(STANDARD.encode(jwt::signing_key(&jwt_secret(), date)), JWT_SIGNING_KEY);
    // One HMAC of the UTF-8 date, no HKDF expand.
    let key = STANDARD.decode(JWT_SECRET).unwrap();
    assert_eq!(STANDARD.encode(hmac_sha256(&key, b"20180102")), JWT_SIGNING_KEY);
}

#[test]
fn jwt_vector_mints_byte_for_byte() {
    let token = jwt::mint(
        &NewRegistrationJwt {
            application_key: JWT_KEY.into(),
            user_id: "foo".into(),
            issued_at: jwt_iat(),
            ttl: 600,
            nonce: JWT_NONCE.into(),
        },
        &jwt_secret(),
    )
    .unwrap();
    assert_eq!(token, JWT_VECTOR);
    let header = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    assert_eq!(header, br#"{"alg":"HS256","kid":"hkdfv1-20180102"}"#);
}

#[test]
fn jwt_vector_verifies() {
    let decoded = DecodedJwt::decode(JWT_VECTOR).unwrap();
    assert_eq!(decoded.key_date(), NaiveDate::from_ymd_opt(2018, 1, 2).unwrap());
    assert_eq!(decoded.peek_application_key().as_deref(), Some(JWT_KEY));
    for offset in [-300, 0, 600, 900] {
        let now = jwt_iat() + chrono::Duration::seconds(offset);
        let verified = decoded.verify(JWT_KEY, &[jwt_secret()], &TicketPolicy::default(), now).unwrap();
        assert_eq!(verified.identity, Identity::username("foo"));
        assert_eq!(verified.nonce, JWT_NONCE);
        assert_eq!(verified.claims.iss, format!("//rtc.sinch.com/applications/{JWT_KEY}"));
        assert_eq!(verified.claims.sub, format!("//rtc.sinch.com/applications/{JWT_KEY}/users/foo"));
        assert_eq!(verified.claims.iat, 1_514_862_245);
        assert_eq!(verified.claims.exp, 1_514_862_845);
        assert_eq!(verified.expires_at, Utc.timestamp_opt(1_514_862_845, 0).unwrap());
        assert_eq!(verified.secret_index, 0);
    }
    let any = AnyTicket::decode(JWT_VECTOR).unwrap();
    assert_eq!(any.format(), TicketFormat::Jwt);
    let verified = any.verify(JWT_KEY, &[jwt_secret()], &TicketPolicy::default(), jwt_iat()).unwrap();
    assert_eq!(verified.nonce.as_deref(), Some(JWT_NONCE));
}

fn vector_parts() -> SignedParts<'static> {
    SignedParts {
        method: "POST",
        body: br#"{"message":"Hello world"}"#,
        content_type: "application/json",
        timestamp: "2014-06-04T13:41:58Z",
        path: "/v1/sms/+46700000000",
    }
}

#[test]
fn signed_request_vector() {
    let parts = vector_parts();
    assert_eq!(signing::content_md5(parts.body), "jANzQ+rgAHyf1MWQFSwvYw==");
    assert_eq!(
        signing::string_to_sign(&parts),
        "POST\njANzQ+rgAHyf1MWQFSwvYw==\napplication/json\nx-timestamp:2014-06-04T13:41:58Z\n/v1/sms/+46700000000"
    );
    assert_eq!(signing::sign(&secret(), &parts), "qDXMwzfaxCRS849c/2R0hg0nphgdHciTo7OdM6MsdnM=");
    let key = STANDARD.decode(SECRET).unwrap();
    assert_eq!(
        STANDARD.encode(hmac_sha256(&key, signing::string_to_sign(&parts).as_bytes())),
        "qDXMwzfaxCRS849c/2R0hg0nphgdHciTo7OdM6MsdnM="
    );
    assert_eq!(
        signing::verify(&secret(), &parts, "qDXMwzfaxCRS849c/2R0hg0nphgdHciTo7OdM6MsdnM=", 600, created()),
        Ok(())
    );
}
