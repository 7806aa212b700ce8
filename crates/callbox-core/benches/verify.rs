//! Verification cost of each credential format, next to a baseline of the irreducible work
//! (`cargo bench -p callbox-core --bench verify`; results in docs/benchmarks.md).
//!
//! Baseline: base64-decode both halves of the legacy vector, one HMAC-SHA256 over the JSON (with the key
//! schedule precomputed, as `Secret` does), a constant-time tag check, and `serde_json::from_slice::<Value>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use callbox_core::jwt::{self, DecodedJwt, NewRegistrationJwt};
use callbox_core::signing::{self, SignedParts};
use callbox_core::ticket::{self, DecodedTicket};
use callbox_core::{Secret, TicketPolicy};
use chrono::{DateTime, TimeZone, Utc};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const KEY: &str = "5F5C418A0F914BBC8234A9BF5EDDAD97";
const SECRET: &str = "JViE5vDor0Sw3WllZka15Q==";
const OTHER_SECRET: &str = "AAECAwQFBgcICQoLDA0ODw==";
const VECTOR: &str = "eyJhcHBsaWNhdGlvbktleSI6IjVGNUM0MThBMEY5MTRCQkM4MjM0QTlCRjVFRERBRDk3IiwiaWRlbnRpdHkiOnsidHlwZSI6InVzZXJuYW1lIiwiZW5kcG9pbnQiOiJhbGljZSJ9LCJjcmVhdGVkIjoiMjAxNC0wNi0wNFQxMzo0MTo1OC4wMDBaIiwiZXhwaXJlc0luIjo4NjQwMH0=:6AMctyp4y4ovV9xNvJpcjdu2YWUS6Y52OPenJs32Bec=";

fn secret(text: &str) -> Secret {
    match Secret::from_base64(text) {
        Ok(secret) => secret,
        Err(error) => panic!("bench secret: {error}"),
    }
}

fn created() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2014, 6, 4, 13, 41, 58).single().unwrap_or_default()
}

fn baseline(c: &mut Criterion) {
    let key = STANDARD.decode(SECRET).unwrap_or_default();
    let keyed = Hmac::<Sha256>::new_from_slice(&key).unwrap_or_else(|_| unreachable!());
    c.bench_function("baseline: base64 + HMAC-SHA256 + serde_json::Value", |b| {
        b.iter(|| {
            let (data, signature) = black_box(VECTOR).split_once(':').unwrap_or_default();
            let json = STANDARD.decode(data).unwrap_or_default();
            let tag = STANDARD.decode(signature).unwrap_or_default();
            let mut mac = keyed.clone();
            mac.update(&json);
            let ok = mac.verify_slice(&tag).is_ok();
            let value: serde_json::Value = serde_json::from_slice(&json).unwrap_or_default();
            black_box((ok, value))
        })
    });
}

fn legacy(c: &mut Criterion) {
    let one = [secret(SECRET)];
    let two = [secret(OTHER_SECRET), secret(SECRET)];
    let policy = TicketPolicy::default();
    let now = created();
    c.bench_function("legacy ticket: decode + verify, 1 secret", |b| {
        b.iter(|| black_box(ticket::verify(black_box(VECTOR), KEY, &one, &policy, now)).is_ok())
    });
    c.bench_function("legacy ticket: decode + verify, 2 secrets (2nd matches)", |b| {
        b.iter(|| black_box(ticket::verify(black_box(VECTOR), KEY, &two, &policy, now)).is_ok())
    });
    c.bench_function("legacy ticket: decode only", |b| b.iter(|| black_box(DecodedTicket::decode(black_box(VECTOR)))));
}

fn registration_jwt(c: &mut Criterion) {
    let key = "a32e5a8d-f7d8-411c-9645-9038e8dd051d";
    let secrets = [secret("ax8hTTQJF0OPXL32r1LHMA==")];
    let iat = Utc.with_ymd_and_hms(2018, 1, 2, 3, 4, 5).single().unwrap_or_default();
    let new = NewRegistrationJwt {
        application_key: key.into(),
        user_id: "foo".into(),
        issued_at: iat,
        ttl: 600,
        nonce: "6b438bda-2d5c-4e8c-92b0-39f20a94b34e".into(),
    };
    let token = jwt::mint(&new, &secrets[0]).unwrap_or_default();
    let policy = TicketPolicy::default();
    c.bench_function("registration JWT: decode + verify, 1 secret", |b| {
        b.iter(|| {
            let decoded = DecodedJwt::decode(black_box(&token));
            black_box(decoded.and_then(|d| d.verify(key, &secrets, &policy, iat))).is_ok()
        })
    });
}

fn signed_request(c: &mut Criterion) {
    let secret = secret(SECRET);
    let parts = SignedParts {
        method: "POST",
        body: br#"{"message":"Hello world"}"#,
        content_type: "application/json",
        timestamp: "2014-06-04T13:41:58Z",
        path: "/v1/sms/+46700000000",
    };
    let now = created();
    c.bench_function("signed request: verify (timestamp + MD5 + HMAC)", |b| {
        b.iter(|| {
            black_box(signing::verify(
                &secret,
                black_box(&parts),
                "qDXMwzfaxCRS849c/2R0hg0nphgdHciTo7OdM6MsdnM=",
                600,
                now,
            ))
            .is_ok()
        })
    });
}

criterion_group!(benches, baseline, legacy, registration_jwt, signed_request);
criterion_main!(benches);
