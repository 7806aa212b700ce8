//! Signed requests (PROTOCOL §4). Input: `method \n content-type \n x-timestamp \n path \n signature \n body`.
//!
//! Invariants: nothing panics; verification is deterministic; what `sign` makes verifies at the request's own
//! timestamp; and a signature that verifies is exactly the canonical one `sign` makes (no second spelling of
//! the same MAC is accepted).

#![no_main]

use callbox_core::signing::{self, SignedParts};
use callbox_core::{time, Secret};
use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let secret = Secret::from_base64("JViE5vDor0Sw3WllZka15Q==").unwrap_or_else(|_| panic!("fuzz secret"));
    let mut fields = data.splitn(6, |&b| b == b'\n');
    let mut next = || String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let (method, content_type, timestamp, path, signature) = (next(), next(), next(), next(), next());
    let body = data.splitn(6, |&b| b == b'\n').nth(5).unwrap_or_default();
    let parts = SignedParts { method: &method, body, content_type: &content_type, timestamp: &timestamp, path: &path };
    let now = time::parse_timestamp(&timestamp)
        .unwrap_or_else(|| Utc.with_ymd_and_hms(2014, 6, 4, 13, 41, 58).single().unwrap_or_default());

    let result = signing::verify(&secret, &parts, &signature, 600, now);
    assert_eq!(result, signing::verify(&secret, &parts, &signature, 600, now), "not deterministic");
    let canonical = signing::sign(&secret, &parts);
    if result.is_ok() {
        assert_eq!(signature, canonical, "a non-canonical signature verified");
    }
    if time::parse_timestamp(&timestamp).is_some() {
        assert_eq!(signing::verify(&secret, &parts, &canonical, 0, now), Ok(()), "own signature refused");
    }
    let _ = signing::string_to_sign(&parts);
});
