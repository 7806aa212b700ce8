//! Registration JWTs (PROTOCOL §3). Input: a token, or `header JSON \n claims JSON`.
//!
//! Invariants: nothing panics; verification is deterministic; a JWT that verifies is HS256 with a kid within a
//! day of server time, names the expected application, a valid user and a 1-255 byte nonce, and lives 60 s to
//! the policy maximum. The input is tried as a token as given, as claims under the standard header, and (when
//! it holds a newline) as a header and claims pair, both signed with the derived key of the vector secret, so
//! the fuzzer reaches the claim checks and not only the signature.

#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use callbox_core::jwt::{self, DecodedJwt, MIN_JWT_TTL};
use callbox_core::{diagnose, is_valid_user_id, AnyTicket, Secret, TicketPolicy};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "a32e5a8d-f7d8-411c-9645-9038e8dd051d";
const HEADER: &str = r#"{"alg":"HS256","kid":"hkdfv1-20180102"}"#;

fn secret() -> Secret {
    Secret::from_base64("ax8hTTQJF0OPXL32r1LHMA==").unwrap_or_else(|_| panic!("fuzz secret"))
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2018, 1, 2, 3, 4, 5).single().unwrap_or_default()
}

fn sign(header: &[u8], claims: &[u8], secret: &Secret) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    // The kid names the key; fall back to the vector date when the header has none we can read.
    let date = std::str::from_utf8(header)
        .ok()
        .and_then(|h| h.split("hkdfv1-").nth(1))
        .and_then(|rest| rest.get(..8))
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok())
        .unwrap_or_else(|| now().date_naive());
    let key = jwt::signing_key(secret, date);
    let mac = Secret::from_bytes(&key).unwrap_or_else(|_| panic!("32-byte key")).mac(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac))
}

fn check(token: &str, secrets: &[Secret]) {
    let policy = TicketPolicy::default();
    let verify = || DecodedJwt::decode(token).and_then(|d| d.verify(KEY, secrets, &policy, now()));
    let first = verify();
    assert_eq!(first, verify(), "verification is not deterministic");
    if let Ok(verified) = &first {
        let decoded = DecodedJwt::decode(token).unwrap_or_else(|e| panic!("{e}"));
        let today = now().date_naive();
        assert!((decoded.key_date() - today).num_days().abs() <= 1, "kid date more than a day off");
        assert_eq!(verified.claims.application_key(), Some(KEY));
        assert_eq!(verified.claims.user_id(), Some(verified.identity.endpoint.as_str()));
        assert!(is_valid_user_id(&verified.identity.endpoint));
        assert!(!verified.nonce.is_empty() && verified.nonce.len() <= 255);
        let ttl = verified.claims.exp - verified.claims.iat;
        assert!(ttl >= MIN_JWT_TTL as i64 && ttl as u64 <= policy.max_ttl);
        let any = AnyTicket::decode(token).unwrap_or_else(|e| panic!("verified but AnyTicket refused: {e}"));
        let credential = any.verify(KEY, secrets, &policy, now()).unwrap_or_else(|e| panic!("AnyTicket: {e}"));
        assert_eq!(credential.identity, verified.identity);
        assert!(diagnose(token, KEY, secrets, &policy, now()).valid);
    }
    if let Ok(decoded) = DecodedJwt::decode(token) {
        let _ = decoded.peek_application_key();
        let _ = decoded.claims_unverified();
    }
    let _ = diagnose(token, KEY, secrets, &policy, now());
}

fuzz_target!(|data: &[u8]| {
    let secrets = [secret()];
    check(&String::from_utf8_lossy(data), &secrets);
    check(&sign(HEADER.as_bytes(), data, &secrets[0]), &secrets);
    if let Some(split) = data.iter().position(|&b| b == b'\n') {
        check(&sign(&data[..split], &data[split + 1..], &secrets[0]), &secrets);
    }
});
