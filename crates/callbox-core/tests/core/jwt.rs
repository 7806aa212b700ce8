//! Registration JWTs (PROTOCOL §3): the refusals RFC 8725 asks for, built by hand where `jsonwebtoken` would
//! refuse to make them.

use crate::support::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use callbox_core::jwt::{self, DecodedJwt, NewRegistrationJwt, VerifiedJwt};
use callbox_core::ticket::MAX_TICKET_BYTES;
use callbox_core::{AnyTicket, Identity, Reason, TicketError, TicketPolicy};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha512;

const HEADER: &str = r#"{"alg":"HS256","kid":"hkdfv1-20180102"}"#;
const IAT: i64 = 1_514_862_245;

fn iss() -> String {
    format!("//rtc.sinch.com/applications/{JWT_KEY}")
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y%m%d").unwrap()
}

/// The derived signing key for `yyyymmdd` under the vector secret.
fn key_for(yyyymmdd: &str) -> [u8; 32] {
    jwt::signing_key(&jwt_secret(), date(yyyymmdd))
}

/// Claims JSON of the vector with `iat`/`exp` given.
fn claims(iat: i64, exp: i64) -> String {
    let iss = iss();
    format!(r#"{{"iss":"{iss}","sub":"{iss}/users/foo","iat":{iat},"exp":{exp},"nonce":"{JWT_NONCE}"}}"#)
}

/// A token over `claims` with the standard header, signed with the 20180102 key.
fn signed(claims: &str) -> String {
    hand_jwt(HEADER, claims, &key_for("20180102"))
}

fn verify_at(token: &str, now: DateTime<Utc>) -> Result<VerifiedJwt, TicketError> {
    DecodedJwt::decode(token)?.verify(JWT_KEY, &[jwt_secret()], &TicketPolicy::default(), now)
}

fn verify(token: &str) -> Result<VerifiedJwt, TicketError> {
    verify_at(token, jwt_iat())
}

fn malformed(token: &str) -> &'static str {
    match verify(token) {
        Err(TicketError::Malformed(text)) => text,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn hand_built_vector_equals_the_published_one() {
    assert_eq!(signed(&claims(IAT, IAT + 600)), JWT_VECTOR);
    assert!(verify(JWT_VECTOR).is_ok());
}

#[test]
fn other_claim_orders_and_extra_fields_verify() {
    let iss = iss();
    let token = signed(&format!(
        r#"{{ "nonce": "{JWT_NONCE}", "exp": {}, "jti": "x", "sub": "{iss}/users/foo", "iat": {IAT}, "iss": "{iss}", "aud": "anything" }}"#,
        IAT + 600
    ));
    assert_eq!(verify(&token).unwrap().identity, Identity::username("foo"));
    // Extra header fields are ignored.
    let header = r#"{"typ":"JWT","kid":"hkdfv1-20180102","alg":"HS256"}"#;
    assert!(verify(&hand_jwt(header, &claims(IAT, IAT + 600), &key_for("20180102"))).is_ok());
}

#[test]
fn any_iss_ending_in_applications_key_is_accepted() {
    let iss = format!("https://auth.example.com/v2/applications/{JWT_KEY}");
    let token =
        signed(&format!(r#"{{"iss":"{iss}","sub":"{iss}/users/foo","iat":{IAT},"exp":{},"nonce":"n"}}"#, IAT + 600));
    assert_eq!(verify(&token).unwrap().identity, Identity::username("foo"));
}

#[test]
fn alg_none_is_refused() {
    let payload = URL_SAFE_NO_PAD.encode(claims(IAT, IAT + 600));
    for alg in ["none", "None", "NONE", ""] {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"hkdfv1-20180102"}}"#));
        for token in
            [format!("{header}.{payload}."), format!("{header}.{payload}.{}", JWT_VECTOR.rsplit('.').next().unwrap())]
        {
            let error = verify(&token).unwrap_err();
            assert_eq!(error.reason(), Reason::MalformedTicket, "alg {alg:?}");
            assert_eq!(AnyTicket::decode(&token).unwrap_err().reason(), Reason::MalformedTicket);
        }
    }
    // No alg at all.
    let header = URL_SAFE_NO_PAD.encode(r#"{"kid":"hkdfv1-20180102"}"#);
    assert_eq!(verify(&format!("{header}.{payload}.")).unwrap_err().reason(), Reason::MalformedTicket);
}

#[test]
fn hs512_and_other_algorithms_are_refused() {
    // A genuine HS512 signature with the right derived key.
    let header = r#"{"alg":"HS512","kid":"hkdfv1-20180102"}"#;
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims(IAT, IAT + 600)));
    let mut mac = Hmac::<Sha512>::new_from_slice(&key_for("20180102")).unwrap();
    mac.update(input.as_bytes());
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
    assert_eq!(malformed(&token), "the JWT alg must be HS256");
    for alg in ["HS384", "RS256", "ES256", "PS256", "EdDSA"] {
        let header = format!(r#"{{"alg":"{alg}","kid":"hkdfv1-20180102"}}"#);
        let token = hand_jwt(&header, &claims(IAT, IAT + 600), &key_for("20180102"));
        assert_eq!(malformed(&token), "the JWT alg must be HS256", "{alg}");
    }
}

#[test]
fn missing_kid_is_refused() {
    let token = hand_jwt(r#"{"alg":"HS256"}"#, &claims(IAT, IAT + 600), &key_for("20180102"));
    assert_eq!(malformed(&token), "the JWT kid must be hkdfv1-YYYYMMDD");
    let token = hand_jwt(r#"{"alg":"HS256","typ":"JWT"}"#, &claims(IAT, IAT + 600), &key_for("20180102"));
    assert_eq!(verify(&token).unwrap_err().reason(), Reason::MalformedTicket);
}

#[test]
fn bad_kid_is_refused() {
    for kid in [
        "",
        "20180102",
        "hkdfv1-",
        "hkdfv1-2018012",
        "hkdfv1-201801020",
        "hkdfv1-20181302",
        "hkdfv1-20180230",
        "hkdfv1-2018-1-2",
        "hkdfv2-20180102",
        "HKDFV1-20180102",
        " hkdfv1-20180102",
        "hkdfv1-20180102 ",
    ] {
        let header = format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#);
        let token = hand_jwt(&header, &claims(IAT, IAT + 600), &key_for("20180102"));
        assert_eq!(verify(&token).unwrap_err().reason(), Reason::MalformedTicket, "kid {kid:?}");
    }
    // kid of the wrong type.
    let token = hand_jwt(r#"{"alg":"HS256","kid":20180102}"#, &claims(IAT, IAT + 600), &key_for("20180102"));
    assert_eq!(verify(&token).unwrap_err().reason(), Reason::MalformedTicket);
}

#[test]
fn kid_date_names_the_signing_key() {
    // Signed with the 20180101 key but claiming 20180102: bad signature.
    let token = hand_jwt(HEADER, &claims(IAT, IAT + 600), &key_for("20180101"));
    assert_eq!(verify(&token), Err(TicketError::BadSignature));
}

#[test]
fn kid_date_within_one_day_is_accepted() {
    for day in ["20180101", "20180102", "20180103"] {
        let header = format!(r#"{{"alg":"HS256","kid":"hkdfv1-{day}"}}"#);
        let token = hand_jwt(&header, &claims(IAT, IAT + 600), &key_for(day));
        assert!(verify(&token).is_ok(), "{day}");
    }
}

#[test]
fn kid_date_more_than_a_day_off_is_refused() {
    let old = hand_jwt(r#"{"alg":"HS256","kid":"hkdfv1-20171231"}"#, &claims(IAT, IAT + 600), &key_for("20171231"));
    let error = verify(&old).unwrap_err();
    assert!(matches!(error, TicketError::KeyDateOutOfRange { .. }), "{error:?}");
    assert_eq!(error.reason(), callbox_core::Reason::TicketExpired);
    assert_eq!(error.reason().as_str(), "ticket_expired");
    let future = hand_jwt(r#"{"alg":"HS256","kid":"hkdfv1-20180104"}"#, &claims(IAT, IAT + 600), &key_for("20180104"));
    let error = verify(&future).unwrap_err();
    assert!(matches!(error, TicketError::KeyDateOutOfRange { .. }), "{error:?}");
    assert_eq!(error.reason(), callbox_core::Reason::TicketNotYetValid);
    assert_eq!(error.reason().as_str(), "ticket_not_yet_valid");
    // The key date is judged against server time, whatever iat says: the vector, two days later, with a
    // lenient window that would otherwise accept it.
    let lenient = TicketPolicy { skew: 10 * 86_400, ..TicketPolicy::default() };
    let decoded = DecodedJwt::decode(JWT_VECTOR).unwrap();
    let error = decoded.verify(JWT_KEY, &[jwt_secret()], &lenient, jwt_iat() + Duration::days(2)).unwrap_err();
    assert_eq!(error.reason(), Reason::TicketExpired);
}

#[test]
fn missing_exp_is_refused_naming_exp() {
    let iss = iss();
    for claims in [
        format!(r#"{{"iss":"{iss}","sub":"{iss}/users/foo","iat":{IAT},"nonce":"n"}}"#),
        format!(r#"{{"iss":"{iss}","sub":"{iss}/users/foo","iat":{IAT},"exp":null,"nonce":"n"}}"#),
    ] {
        let token = signed(&claims);
        assert_eq!(malformed(&token), "the JWT has no exp claim", "{claims}");
        // Refused as it is decoded, before any application is looked up: the refusal names the claim rather than
        // "the ticket names no application key".
        let error = AnyTicket::decode(&token).unwrap_err();
        assert_eq!(error.reason(), Reason::MalformedTicket);
        assert_eq!(error.to_string(), "the ticket is malformed: the JWT has no exp claim");
    }
}

#[test]
fn missing_iat_iss_or_sub_is_refused_naming_the_claim() {
    let iss = iss();
    let exp = IAT + 600;
    for (claims, expected) in [
        (format!(r#"{{"iss":"{iss}","sub":"{iss}/users/foo","exp":{exp},"nonce":"n"}}"#), "the JWT has no iat claim"),
        (format!(r#"{{"sub":"{iss}/users/foo","iat":{IAT},"exp":{exp},"nonce":"n"}}"#), "the JWT has no iss claim"),
        (format!(r#"{{"iss":"{iss}","iat":{IAT},"exp":{exp},"nonce":"n"}}"#), "the JWT has no sub claim"),
        (
            format!(r#"{{"iss":"{iss}","sub":"{iss}/users/foo","iat":"{IAT}","exp":{exp},"nonce":"n"}}"#),
            "the JWT iat claim must be whole epoch seconds",
        ),
        (
            format!(r#"{{"iss":"{iss}","sub":"{iss}/users/foo","iat":{IAT}.5,"exp":{exp},"nonce":"n"}}"#),
            "the JWT iat claim must be whole epoch seconds",
        ),
        (
            format!(r#"{{"iss":"{iss}","sub":"{iss}/users/foo","iat":{IAT},"exp":"soon","nonce":"n"}}"#),
            "the JWT exp claim must be whole epoch seconds",
        ),
        (
            format!(r#"{{"iss":7,"sub":"{iss}/users/foo","iat":{IAT},"exp":{exp}}}"#),
            "the JWT iss claim must be a string",
        ),
        (
            format!(r#"{{"iss":"{iss}","sub":"{iss}/users/foo","iat":{IAT},"exp":{exp},"nonce":5}}"#),
            "the JWT nonce claim must be a string",
        ),
        ("[]".to_owned(), "the JWT payload is not a JSON object"),
        ("not json".to_owned(), "the JWT payload is not JSON"),
    ] {
        assert_eq!(malformed(&signed(&claims)), expected, "{claims}");
    }
    let header = URL_SAFE_NO_PAD.encode(HEADER);
    assert_eq!(malformed(&format!("{header}.!!!.c2ln")), "the JWT payload is not base64url");
}

#[test]
fn missing_or_bad_nonce_is_refused() {
    let iss = iss();
    let exp = IAT + 600;
    let no_nonce = signed(&format!(r#"{{"iss":"{iss}","sub":"{iss}/users/foo","iat":{IAT},"exp":{exp}}}"#));
    assert_eq!(malformed(&no_nonce), "the JWT needs a nonce of 1-255 bytes");
    for nonce in [String::new(), "n".repeat(256)] {
        let token =
            signed(&format!(r#"{{"iss":"{iss}","sub":"{iss}/users/foo","iat":{IAT},"exp":{exp},"nonce":"{nonce}"}}"#));
        assert_eq!(malformed(&token), "the JWT needs a nonce of 1-255 bytes");
    }
}

#[test]
fn lifetime_under_60_seconds_is_refused() {
    for exp in [IAT + 59, IAT + 1, IAT, IAT - 600, 0] {
        assert_eq!(malformed(&signed(&claims(IAT, exp))), "exp must be at least 60 s after iat", "exp {exp}");
    }
    // A negative exp is not a NumericDate at all.
    assert_eq!(verify(&signed(&claims(IAT, i64::MIN))).unwrap_err().reason(), Reason::MalformedTicket);
    assert!(verify(&signed(&claims(IAT, IAT + 60))).is_ok());
}

#[test]
fn lifetime_over_the_maximum_is_refused() {
    let error = verify(&signed(&claims(IAT, IAT + 86_401))).unwrap_err();
    assert_eq!(error, TicketError::TtlExceedsMax { requested: 86_401, max: 86_400 });
    assert_eq!(error.reason().as_str(), "ticket_ttl_exceeds_max");
    assert_eq!(verify(&signed(&claims(IAT, i64::MAX))).unwrap_err().reason(), Reason::TicketTtlExceedsMax);
}

#[test]
fn window_refusals_say_by_how_much() {
    let token = JWT_VECTOR;
    // exp + 300 s skew is the last accepted second.
    assert!(verify_at(token, jwt_iat() + Duration::seconds(900)).is_ok());
    let error = verify_at(token, jwt_iat() + Duration::seconds(905)).unwrap_err();
    assert!(matches!(error, TicketError::Expired { ttl: 600, skew: 300, late_by: 5, .. }), "{error:?}");
    let error = verify_at(token, jwt_iat() - Duration::seconds(303)).unwrap_err();
    assert!(matches!(error, TicketError::NotYetValid { skew: 300, early_by: 3, .. }), "{error:?}");
}

#[test]
fn iss_for_another_app_is_unknown_application() {
    let other = "//rtc.sinch.com/applications/another-app";
    let token = signed(&format!(
        r#"{{"iss":"{other}","sub":"{other}/users/foo","iat":{IAT},"exp":{},"nonce":"n"}}"#,
        IAT + 600
    ));
    let error = verify(&token).unwrap_err();
    assert_eq!(error, TicketError::ApplicationMismatch);
    assert_eq!(error.reason().as_str(), "unknown_application");
    // The vector checked for another application.
    let decoded = DecodedJwt::decode(JWT_VECTOR).unwrap();
    assert_eq!(
        decoded.verify("another-app", &[jwt_secret()], &TicketPolicy::default(), jwt_iat()),
        Err(TicketError::ApplicationMismatch)
    );
    // An iss with no application at all.
    let token = signed(&format!(
        r#"{{"iss":"https://example.com","sub":"https://example.com/users/foo","iat":{IAT},"exp":{},"nonce":"n"}}"#,
        IAT + 600
    ));
    assert_eq!(verify(&token).unwrap_err().reason(), Reason::UnknownApplication);
}

#[test]
fn sub_not_under_iss_is_refused() {
    let iss = iss();
    for sub in [
        "//rtc.sinch.com/applications/another-app/users/foo".to_owned(),
        format!("{iss}/user/foo"),
        format!("{iss}/users/"),
        format!("{iss}users/foo"),
        "foo".to_owned(),
        format!("{iss}/users/a\u{7}b"),
    ] {
        let sub_json = serde_json::to_string(&sub).unwrap();
        let token =
            signed(&format!(r#"{{"iss":"{iss}","sub":{sub_json},"iat":{IAT},"exp":{},"nonce":"n"}}"#, IAT + 600));
        assert_eq!(verify(&token).unwrap_err().reason(), Reason::MalformedTicket, "{sub:?}");
    }
}

#[test]
fn tampered_payload_is_a_bad_signature() {
    let mut parts: Vec<String> = JWT_VECTOR.split('.').map(str::to_owned).collect();
    let iss = iss();
    for claims in [
        format!(r#"{{"iss":"{iss}","sub":"{iss}/users/bar","iat":{IAT},"exp":{},"nonce":"{JWT_NONCE}"}}"#, IAT + 600),
        claims(IAT, IAT + 86_400),
    ] {
        parts[1] = URL_SAFE_NO_PAD.encode(claims);
        assert_eq!(verify(&parts.join(".")), Err(TicketError::BadSignature));
    }
    // A changed signature, or a changed header that still parses.
    let (input, signature) = JWT_VECTOR.rsplit_once('.').unwrap();
    let mut flipped = URL_SAFE_NO_PAD.decode(signature).unwrap();
    flipped[0] ^= 1;
    assert_eq!(verify(&format!("{input}.{}", URL_SAFE_NO_PAD.encode(flipped))), Err(TicketError::BadSignature));
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"hkdfv1-20180102","typ":"JWT"}"#);
    let body = JWT_VECTOR.split('.').nth(1).unwrap();
    assert_eq!(verify(&format!("{header}.{body}.{signature}")), Err(TicketError::BadSignature));
    // The raw secret (not the derived key) does not sign JWTs.
    let raw = hand_jwt(HEADER, &claims(IAT, IAT + 600), jwt_secret().expose_bytes());
    assert_eq!(verify(&raw), Err(TicketError::BadSignature));
}

#[test]
fn secret_rotation() {
    let decoded = DecodedJwt::decode(JWT_VECTOR).unwrap();
    let policy = TicketPolicy::default();
    let verified = decoded.verify(JWT_KEY, &[other_secret(), jwt_secret()], &policy, jwt_iat()).unwrap();
    assert_eq!(verified.secret_index, 1);
    assert_eq!(decoded.verify(JWT_KEY, &[other_secret()], &policy, jwt_iat()), Err(TicketError::BadSignature));
    assert_eq!(decoded.verify(JWT_KEY, &[], &policy, jwt_iat()), Err(TicketError::BadSignature));
}

#[test]
fn shape_and_size_refusals() {
    for token in ["", "a.b", "a.b.c.d", "..", "a..c", "e30.e30.", JWT_VECTOR.replace('.', ":").as_str()] {
        assert_eq!(verify(token).unwrap_err().reason(), Reason::MalformedTicket, "{token:?}");
    }
    let big = format!("{JWT_VECTOR}{}", "A".repeat(MAX_TICKET_BYTES));
    assert_eq!(DecodedJwt::decode(&big).unwrap_err().reason(), Reason::PayloadTooLarge);
    assert_eq!(AnyTicket::decode(&big).unwrap_err().reason(), Reason::PayloadTooLarge);
}

#[test]
fn mint_refuses_what_verify_would_refuse() {
    let new = NewRegistrationJwt {
        application_key: JWT_KEY.into(),
        user_id: "foo".into(),
        issued_at: jwt_iat(),
        ttl: 59,
        nonce: "n".into(),
    };
    assert!(matches!(jwt::mint(&new, &jwt_secret()), Err(jwt::MintError::TtlTooShort)));
    let new = NewRegistrationJwt { ttl: 60, user_id: String::new(), ..new };
    assert!(matches!(jwt::mint(&new, &jwt_secret()), Err(jwt::MintError::InvalidUserId)));
}

#[test]
fn jwt_debug_hides_the_token() {
    let debug = format!("{:?}", DecodedJwt::decode(JWT_VECTOR).unwrap());
    assert!(!debug.contains(JWT_VECTOR.rsplit('.').next().unwrap()), "{debug}");
    assert_eq!(date("20180102"), DecodedJwt::decode(JWT_VECTOR).unwrap().key_date());
}

#[test]
fn non_canonical_base64url_signature_is_refused() {
    // The last character of a 32-byte signature carries two unused bits: 'o' (101000) and 'p', 'q', 'r' decode
    // to the same bytes under a lenient decoder. Only the canonical form may verify.
    let (input, signature) = JWT_VECTOR.rsplit_once('.').unwrap();
    assert!(signature.ends_with('o'));
    for last in ['p', 'q', 'r'] {
        let token = format!("{input}.{}{last}", &signature[..signature.len() - 1]);
        assert!(verify(&token).is_err(), "{last}");
    }
}
