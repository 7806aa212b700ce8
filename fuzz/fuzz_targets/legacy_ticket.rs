//! Legacy user tickets (PROTOCOL §2). Input: the ticket text.
//!
//! Invariants: nothing panics; a ticket that verifies re-verifies identically, names the key it was checked for
//! and a valid user id, and stays within the policy's window. The input is tried as given (the MAC almost never
//! matches, exercising decode and the MAC check) and with its TicketData re-signed with the test secret
//! (exercising the claims parser, field-name matching, timestamps and the window arithmetic).

#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use callbox_core::ticket::{self, DecodedTicket};
use callbox_core::{diagnose, is_valid_user_id, AnyTicket, Secret, TicketPolicy};
use chrono::{DateTime, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "5F5C418A0F914BBC8234A9BF5EDDAD97";

fn secrets() -> [Secret; 2] {
    let make = |text| Secret::from_base64(text).unwrap_or_else(|_| panic!("fuzz secret"));
    [make("AAECAwQFBgcICQoLDA0ODw=="), make("JViE5vDor0Sw3WllZka15Q==")]
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2014, 6, 4, 13, 41, 58).single().unwrap_or_default()
}

fn check(text: &str, secrets: &[Secret]) {
    let policy = TicketPolicy::default();
    let first = ticket::verify(text, KEY, secrets, &policy, now());
    let again = ticket::verify(text, KEY, secrets, &policy, now());
    assert_eq!(first, again, "verification is not deterministic");
    if let Ok(verified) = &first {
        assert_eq!(verified.claims.application_key, KEY);
        assert!(is_valid_user_id(&verified.claims.identity.endpoint));
        assert!(verified.secret_index < secrets.len());
        let ttl = verified.claims.expires_in.unwrap_or(policy.default_ttl);
        assert!(ttl <= policy.max_ttl);
        assert!(verified.expires_at >= verified.claims.created);
        // Through the format-agnostic entry point, the same answer.
        let any = AnyTicket::decode(text).unwrap_or_else(|e| panic!("verified but AnyTicket refused: {e}"));
        let credential = any.verify(KEY, secrets, &policy, now()).unwrap_or_else(|e| panic!("AnyTicket: {e}"));
        assert_eq!(credential.identity, verified.claims.identity);
        assert_eq!(credential.expires_at, verified.expires_at);
        assert!(diagnose(text, KEY, secrets, &policy, now()).valid);
    }
    if let Ok(decoded) = DecodedTicket::decode(text) {
        let _ = decoded.peek_application_key();
        let _ = decoded.claims_unverified();
    }
    let _ = diagnose(text, KEY, secrets, &policy, now());
}

fuzz_target!(|data: &[u8]| {
    let secrets = secrets();
    let text = String::from_utf8_lossy(data);
    check(&text, &secrets);
    // Re-sign: the input's TicketData (or the raw input) becomes JSON signed with the vector secret.
    let json = match DecodedTicket::decode(&text) {
        Ok(decoded) => decoded.json().to_vec(),
        Err(_) => data.to_vec(),
    };
    let resigned = format!("{}:{}", STANDARD.encode(&json), STANDARD.encode(secrets[1].mac(&json)));
    check(&resigned, &secrets);
});
