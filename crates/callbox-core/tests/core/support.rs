//! Shared values and helpers: the PROTOCOL vectors, and tickets signed by hand the way other generators do.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use callbox_core::ticket::{self, VerifiedTicket};
use callbox_core::{Secret, TicketError, TicketPolicy};
use chrono::{DateTime, Duration, TimeZone, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// PROTOCOL §2 vector.
pub const KEY: &str = "5F5C418A0F914BBC8234A9BF5EDDAD97";
pub const SECRET: &str = "JViE5vDor0Sw3WllZka15Q==";
pub const VECTOR: &str = "eyJhcHBsaWNhdGlvbktleSI6IjVGNUM0MThBMEY5MTRCQkM4MjM0QTlCRjVFRERBRDk3IiwiaWRlbnRpdHkiOnsidHlwZSI6InVzZXJuYW1lIiwiZW5kcG9pbnQiOiJhbGljZSJ9LCJjcmVhdGVkIjoiMjAxNC0wNi0wNFQxMzo0MTo1OC4wMDBaIiwiZXhwaXJlc0luIjo4NjQwMH0=:6AMctyp4y4ovV9xNvJpcjdu2YWUS6Y52OPenJs32Bec=";
pub const VECTOR_JSON: &str = r#"{"applicationKey":"5F5C418A0F914BBC8234A9BF5EDDAD97","identity":{"type":"username","endpoint":"alice"},"created":"2014-06-04T13:41:58.000Z","expiresIn":86400}"#;

/// A second, unrelated 16-byte secret (rotation tests).
pub const OTHER_SECRET: &str = "AAECAwQFBgcICQoLDA0ODw==";

/// PROTOCOL §3 vector.
pub const JWT_KEY: &str = "a32e5a8d-f7d8-411c-9645-9038e8dd051d";
pub const JWT_SECRET: &str = "ax8hTTQJF0OPXL32r1LHMA==";
pub const JWT_SIGNING_KEY: &str = "AZj5EsS8S7wb06xr5jERqPHsraQt3w/+Ih5EfrhisBQ=";
pub const JWT_NONCE: &str = "6b438bda-2d5c-4e8c-92b0-39f20a94b34e";
/// The §3 vector as a token, computed independently (Python `hmac` + `json.dumps`, compact, claims in the order
/// iss, sub, iat, exp, nonce) and checked against `jwt::mint`.
pub const JWT_VECTOR: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImhrZGZ2MS0yMDE4MDEwMiJ9.eyJpc3MiOiIvL3J0Yy5zaW5jaC5jb20vYXBwbGljYXRpb25zL2EzMmU1YThkLWY3ZDgtNDExYy05NjQ1LTkwMzhlOGRkMDUxZCIsInN1YiI6Ii8vcnRjLnNpbmNoLmNvbS9hcHBsaWNhdGlvbnMvYTMyZTVhOGQtZjdkOC00MTFjLTk2NDUtOTAzOGU4ZGQwNTFkL3VzZXJzL2ZvbyIsImlhdCI6MTUxNDg2MjI0NSwiZXhwIjoxNTE0ODYyODQ1LCJub25jZSI6IjZiNDM4YmRhLTJkNWMtNGU4Yy05MmIwLTM5ZjIwYTk0YjM0ZSJ9.EUltTTD4fxhkwCgLgj6qSQXKawpwQ952Ywm3OwQSARo";

pub fn secret() -> Secret {
    Secret::from_base64(SECRET).unwrap()
}

pub fn other_secret() -> Secret {
    Secret::from_base64(OTHER_SECRET).unwrap()
}

pub fn jwt_secret() -> Secret {
    Secret::from_base64(JWT_SECRET).unwrap()
}

/// `2014-06-04T13:41:58Z`, the vector's `created`.
pub fn created() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2014, 6, 4, 13, 41, 58).unwrap()
}

/// `created() + seconds`.
pub fn after(seconds: i64) -> DateTime<Utc> {
    created() + Duration::seconds(seconds)
}

/// `2018-01-02T03:04:05Z`, the JWT vector's `iat`.
pub fn jwt_iat() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2018, 1, 2, 3, 4, 5).unwrap()
}

/// HMAC-SHA256 with the `hmac` crate directly, independent of `Secret`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// A legacy ticket over exactly these JSON bytes, as any generator makes it.
pub fn sign_json_with(json: &str, secret: &Secret) -> String {
    format!("{}:{}", STANDARD.encode(json), STANDARD.encode(hmac_sha256(secret.expose_bytes(), json.as_bytes())))
}

/// [`sign_json_with`] the vector secret.
pub fn sign_json(json: &str) -> String {
    sign_json_with(json, &secret())
}

/// Verifies `ticket` for [`KEY`] with the vector secret under the default policy at `now`.
pub fn verify_at(ticket: &str, now: DateTime<Utc>) -> Result<VerifiedTicket, TicketError> {
    ticket::verify(ticket, KEY, &[secret()], &TicketPolicy::default(), now)
}

/// Signs `json` and verifies it at `now`.
pub fn verify_json(json: &str, now: DateTime<Utc>) -> Result<VerifiedTicket, TicketError> {
    verify_at(&sign_json(json), now)
}

/// A JWT built by hand from raw header and claims JSON, signed with `key` (the derived signing key), so that
/// hostile tokens `jsonwebtoken` would refuse to make can be tested.
pub fn hand_jwt(header: &str, claims: &str, key: &[u8]) -> String {
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let signature = URL_SAFE_NO_PAD.encode(hmac_sha256(key, signing_input.as_bytes()));
    format!("{signing_input}.{signature}")
}
