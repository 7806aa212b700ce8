//! Property tests: round trips, tamper resistance, and no panics on hostile input.

use crate::support::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use callbox_core::jwt::{self, DecodedJwt, NewRegistrationJwt};
use callbox_core::signing::{self, SignedParts};
use callbox_core::ticket::{self, DecodedTicket, NewTicket};
use callbox_core::{authorization, diagnose, is_valid_user_id, time, AnyTicket, Identity, IdentityType, TicketPolicy};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

/// Any non-control Unicode, 1 to 255 bytes.
fn user_id() -> impl Strategy<Value = String> {
    // Mapping control characters away rather than filtering them keeps rejections at zero.
    let char = any::<char>().prop_map(|c| if c.is_control() { '\u{fffd}' } else { c });
    prop::collection::vec(char, 1..=255).prop_map(|chars| {
        let mut out = String::new();
        for c in chars {
            if out.len() + c.len_utf8() > 255 {
                break;
            }
            out.push(c);
        }
        out
    })
}

/// Any instant between 1970 and 2100, to the millisecond (what the Node generator writes).
fn instant_millis() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800_000).prop_map(|ms| Utc.timestamp_millis_opt(ms).unwrap())
}

/// Any instant chrono can represent.
fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
    let (min, max) = (DateTime::<Utc>::MIN_UTC.timestamp(), DateTime::<Utc>::MAX_UTC.timestamp());
    (min..=max, 0u32..1_000_000_000).prop_map(|(s, ns)| Utc.timestamp_opt(s, ns).single().unwrap_or_default())
}

fn any_policy() -> impl Strategy<Value = TicketPolicy> {
    (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(default_ttl, max_ttl, skew)| TicketPolicy {
        default_ttl,
        max_ttl,
        skew,
    })
}

fn identity_type() -> impl Strategy<Value = IdentityType> {
    prop_oneof![Just(IdentityType::Username), Just(IdentityType::Email), Just(IdentityType::Number)]
}

/// Replaces the char at `index` (mod the char count) with `with`, or returns `None` if that changes nothing.
fn replace_char(text: &str, index: usize, with: char) -> Option<String> {
    let count = text.chars().count();
    let index = index % count;
    let original = text.chars().nth(index)?;
    (original != with).then(|| text.chars().enumerate().map(|(i, c)| if i == index { with } else { c }).collect())
}

/// Ticket-ish JSON: known field names in random case with random values, so that verification gets past the MAC
/// and the parser meets every branch.
fn ticketish_json() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("applicationKey"),
        Just("applicationkey"),
        Just("APPLICATIONKEY"),
        Just("identity"),
        Just("created"),
        Just("Created"),
        Just("expiresIn"),
        Just("expiresin"),
        Just("nonce"),
        Just("type"),
        Just("endpoint"),
        Just("other"),
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::from(KEY)),
        Just(serde_json::Value::from("username")),
        Just(serde_json::Value::from("2014-06-04T13:41:58.000Z")),
        Just(serde_json::Value::from("2014-06-04T13:41:58.1234567")),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::vec((prop_oneof![Just("type"), Just("endpoint"), Just("TYPE"), Just("x")], inner), 0..4)
                .prop_map(|fields| {
                    // Written by hand so that repeated names stay repeated.
                    let body: Vec<String> = fields
                        .iter()
                        .map(|(name, value)| format!("{}:{}", serde_json::to_string(name).unwrap(), value))
                        .collect();
                    serde_json::from_str::<serde_json::Value>(&format!("{{{}}}", body.join(",")))
                        .unwrap_or(serde_json::Value::Null)
                }),
        ]
    });
    prop::collection::vec((name, value), 0..8).prop_map(|fields| {
        let body: Vec<String> =
            fields.iter().map(|(name, value)| format!("{}:{}", serde_json::to_string(name).unwrap(), value)).collect();
        format!("{{{}}}", body.join(","))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn legacy_mint_then_verify_round_trips(
        user in user_id(),
        kind in identity_type(),
        created in instant_millis(),
        ttl in proptest::option::of(60u64..=86_400),
        nonce in proptest::option::of("[A-Za-z0-9-]{1,64}"),
        fraction in 0.0f64..=1.0,
    ) {
        prop_assert!(is_valid_user_id(&user));
        let new = NewTicket {
            application_key: KEY.into(),
            identity: Identity { kind, endpoint: user.clone() },
            created,
            expires_in: ttl,
            nonce: nonce.clone(),
        };
        let minted = ticket::mint(&new, &secret());
        let policy = TicketPolicy::default();
        let effective = ttl.unwrap_or(policy.default_ttl);
        // Anywhere inside the window, skew included.
        let span = (effective + 2 * policy.skew) as f64;
        let offset = (fraction * span) as i64 - policy.skew as i64;
        let now = created + Duration::seconds(offset);
        let verified = ticket::verify(&minted, KEY, &[other_secret(), secret()], &policy, now).unwrap();
        prop_assert_eq!(&verified.claims.identity.endpoint, &user);
        prop_assert_eq!(verified.claims.identity.kind, kind);
        prop_assert_eq!(verified.claims.created, created);
        prop_assert_eq!(verified.claims.expires_in, ttl);
        prop_assert_eq!(&verified.claims.nonce, &nonce);
        prop_assert_eq!(verified.secret_index, 1);
        prop_assert_eq!(verified.expires_at, created + Duration::seconds(effective as i64));
        // Through AnyTicket too.
        let any = AnyTicket::decode(&minted).unwrap();
        let peeked = any.peek_application_key();
        prop_assert_eq!(peeked.as_deref(), Some(KEY));
        prop_assert_eq!(any.verify(KEY, &[secret()], &policy, now).unwrap().identity.endpoint, user);
        // One second past either end is refused.
        let late = created + Duration::seconds((effective + policy.skew) as i64 + 1);
        prop_assert_eq!(ticket::verify(&minted, KEY, &[secret()], &policy, late).unwrap_err().reason().as_str(), "ticket_expired");
        let early = created - Duration::seconds(policy.skew as i64 + 1);
        prop_assert_eq!(ticket::verify(&minted, KEY, &[secret()], &policy, early).unwrap_err().reason().as_str(), "ticket_not_yet_valid");
    }

    #[test]
    fn jwt_mint_then_verify_round_trips(
        user in user_id(),
        iat_seconds in 0i64..4_102_444_800,
        ttl in 60u64..=86_400,
        nonce in "[A-Za-z0-9-]{1,64}",
        fraction in 0.0f64..=1.0,
    ) {
        let issued_at = Utc.timestamp_opt(iat_seconds, 0).unwrap();
        let new = NewRegistrationJwt {
            application_key: JWT_KEY.into(),
            user_id: user.clone(),
            issued_at,
            ttl,
            nonce: nonce.clone(),
        };
        let token = jwt::mint(&new, &jwt_secret()).unwrap();
        let policy = TicketPolicy::default();
        // Inside the window, and within a day of the kid date.
        let end = (ttl + policy.skew).min(86_400) as i64;
        let offset = (fraction * (end + policy.skew as i64) as f64) as i64 - policy.skew as i64;
        let now = issued_at + Duration::seconds(offset);
        let verified = DecodedJwt::decode(&token).unwrap().verify(JWT_KEY, &[other_secret(), jwt_secret()], &policy, now).unwrap();
        prop_assert_eq!(verified.identity, Identity::username(user));
        prop_assert_eq!(verified.nonce, nonce);
        prop_assert_eq!(verified.secret_index, 1);
        prop_assert_eq!(verified.expires_at, issued_at + Duration::seconds(ttl as i64));
    }

    #[test]
    fn changing_any_char_of_a_legacy_ticket_is_refused(
        user in user_id(),
        index in any::<usize>(),
        with in any::<char>(),
    ) {
        let new = NewTicket {
            application_key: KEY.into(),
            identity: Identity::username(user),
            created: created(),
            expires_in: Some(600),
            nonce: None,
        };
        let minted = ticket::mint(&new, &secret());
        if let Some(changed) = replace_char(&minted, index, with) {
            prop_assert!(ticket::verify(&changed, KEY, &[secret()], &TicketPolicy::default(), created()).is_err(), "{}", changed);
            if let Ok(any) = AnyTicket::decode(&changed) {
                prop_assert!(any.verify(KEY, &[secret()], &TicketPolicy::default(), created()).is_err());
            }
        }
    }

    #[test]
    fn changing_any_byte_of_a_legacy_ticket_is_refused(index in any::<usize>(), xor in 1u8..=255) {
        let mut bytes = VECTOR.as_bytes().to_vec();
        let index = index % bytes.len();
        bytes[index] ^= xor;
        let changed = String::from_utf8_lossy(&bytes);
        prop_assert!(verify_at(&changed, created()).is_err());
    }

    #[test]
    fn changing_any_char_of_a_jwt_is_refused(index in any::<usize>(), with in any::<char>()) {
        if let Some(changed) = replace_char(JWT_VECTOR, index, with) {
            let result = DecodedJwt::decode(&changed)
                .and_then(|decoded| decoded.verify(JWT_KEY, &[jwt_secret()], &TicketPolicy::default(), jwt_iat()));
            prop_assert!(result.is_err(), "{}", changed);
            if let Ok(any) = AnyTicket::decode(&changed) {
                prop_assert!(any.verify(JWT_KEY, &[jwt_secret()], &TicketPolicy::default(), jwt_iat()).is_err());
            }
        }
    }

    #[test]
    fn changing_any_char_of_a_request_signature_is_refused(index in any::<usize>(), with in any::<char>()) {
        let parts = SignedParts {
            method: "POST",
            body: br#"{"message":"Hello world"}"#,
            content_type: "application/json",
            timestamp: "2014-06-04T13:41:58Z",
            path: "/v1/sms/+46700000000",
        };
        if let Some(changed) = replace_char("qDXMwzfaxCRS849c/2R0hg0nphgdHciTo7OdM6MsdnM=", index, with) {
            prop_assert!(signing::verify(&secret(), &parts, &changed, 600, created()).is_err());
        }
    }

    #[test]
    fn decoders_never_panic_on_strings(text in ".{0,300}", now in any_instant(), policy in any_policy()) {
        if let Ok(decoded) = DecodedTicket::decode(&text) {
            let _ = decoded.peek_application_key();
            let _ = decoded.claims_unverified();
            let _ = decoded.verify(KEY, &[secret()], &policy, now);
        }
        if let Ok(decoded) = DecodedJwt::decode(&text) {
            let _ = decoded.peek_application_key();
            let _ = decoded.claims_unverified();
            let _ = decoded.verify(JWT_KEY, &[jwt_secret()], &policy, now);
        }
        if let Ok(any) = AnyTicket::decode(&text) {
            let _ = any.claims_json();
            let _ = any.verify(KEY, &[secret()], &policy, now);
        }
        let _ = authorization::parse(&text);
        let _ = time::parse_timestamp(&text);
        let _ = diagnose(&text, KEY, &[secret(), other_secret()], &policy, now);
    }

    #[test]
    fn decoders_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400), now in any_instant()) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = DecodedTicket::decode(&text);
        let _ = DecodedJwt::decode(&text);
        let _ = AnyTicket::decode(&text).map(|any| any.verify(KEY, &[secret()], &TicketPolicy::default(), now));
        let _ = authorization::parse(&text);
        let _ = time::parse_timestamp(&text);
        let _ = diagnose(&text, KEY, &[secret()], &TicketPolicy::default(), now);
        // The same bytes as a (correctly signed) legacy ticket body, and as JWT parts.
        let signed = format!("{}:{}", STANDARD.encode(&bytes), STANDARD.encode(secret().mac(&bytes)));
        let _ = verify_at(&signed, now);
        let _ = diagnose(&signed, KEY, &[secret()], &TicketPolicy::default(), now);
        let jwt = hand_jwt(r#"{"alg":"HS256","kid":"hkdfv1-20180102"}"#, &text, &jwt::signing_key(&jwt_secret(), jwt_iat().date_naive()));
        let _ = DecodedJwt::decode(&jwt).map(|d| d.verify(JWT_KEY, &[jwt_secret()], &TicketPolicy::default(), now));
        let _ = diagnose(&jwt, JWT_KEY, &[jwt_secret()], &TicketPolicy::default(), now);
    }

    #[test]
    fn signed_ticketish_json_never_panics_and_what_verifies_is_sound(
        json in ticketish_json(),
        now in prop_oneof![any_instant(), (-86_400i64..86_400).prop_map(after)],
        policy in prop_oneof![any_policy(), Just(TicketPolicy::default())],
    ) {
        let signed = sign_json(&json);
        if let Ok(verified) = ticket::verify(&signed, KEY, &[secret()], &policy, now) {
            prop_assert!(is_valid_user_id(&verified.claims.identity.endpoint));
            prop_assert_eq!(&verified.claims.application_key, KEY);
            let again = ticket::verify(&signed, KEY, &[secret()], &policy, now).unwrap();
            prop_assert_eq!(again, verified);
            prop_assert!(diagnose(&signed, KEY, &[secret()], &policy, now).valid);
        } else {
            prop_assert!(!diagnose(&signed, KEY, &[secret()], &policy, now).valid);
        }
    }

    #[test]
    fn jwt_with_arbitrary_claims_never_panics(
        iat in any::<i64>(),
        exp in any::<i64>(),
        sub in ".{0,40}",
        nonce in proptest::option::of(".{0,20}"),
        now in any_instant(),
        policy in any_policy(),
    ) {
        let iss = format!("//rtc.sinch.com/applications/{JWT_KEY}");
        let claims = serde_json::json!({"iss": iss, "sub": format!("{iss}{sub}"), "iat": iat, "exp": exp, "nonce": nonce});
        let token = hand_jwt(r#"{"alg":"HS256","kid":"hkdfv1-20180102"}"#, &claims.to_string(), &jwt::signing_key(&jwt_secret(), jwt_iat().date_naive()));
        let decoded = DecodedJwt::decode(&token).unwrap();
        if let Ok(verified) = decoded.verify(JWT_KEY, &[jwt_secret()], &policy, now) {
            prop_assert!(verified.claims.exp - verified.claims.iat >= 60);
            prop_assert!(is_valid_user_id(&verified.identity.endpoint));
        }
        let _ = diagnose(&token, JWT_KEY, &[jwt_secret()], &policy, now);
    }

    #[test]
    fn signing_verify_never_panics(
        method in ".{0,10}",
        body in prop::collection::vec(any::<u8>(), 0..64),
        content_type in ".{0,30}",
        timestamp in prop_oneof![".{0,45}", instant_millis().prop_map(|t| t.to_rfc3339())],
        path in ".{0,40}",
        signature in prop_oneof![".{0,50}", "[A-Za-z0-9+/]{43}=", "[A-Za-z0-9+/]{44}"],
        skew in any::<u64>(),
        now in any_instant(),
    ) {
        let parts = SignedParts { method: &method, body: &body, content_type: &content_type, timestamp: &timestamp, path: &path };
        let _ = signing::verify(&secret(), &parts, &signature, skew, now);
        // What is signed verifies (inside the window).
        let good = signing::sign(&secret(), &parts);
        if let Some(at) = time::parse_timestamp(&timestamp) {
            prop_assert_eq!(signing::verify(&secret(), &parts, &good, 0, at), Ok(()));
        }
    }

    #[test]
    fn parse_timestamp_reads_what_generators_write(at in instant_millis(), micros in 0u32..1_000_000) {
        let at = at + Duration::microseconds(i64::from(micros % 1000));
        for text in [
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
            format!("{}.{:07}Z", at.format("%Y-%m-%dT%H:%M:%S"), at.timestamp_subsec_nanos() / 100),
        ] {
            let parsed = time::parse_timestamp(&text).unwrap();
            prop_assert!((parsed - at).num_milliseconds().abs() < 1000, "{}", text);
        }
    }
}
