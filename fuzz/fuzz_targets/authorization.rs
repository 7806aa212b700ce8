//! `Authorization` headers (PROTOCOL §5). Input: the header value.
//!
//! Invariants: nothing panics; parsing is deterministic; what parses re-parses to the same value from its
//! canonical form (`Scheme credentials`); `Debug` never shows a ticket, JWT, secret or signature.

#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use callbox_core::authorization::{self, Authorization};
use libfuzzer_sys::fuzz_target;

fn hidden(shown: &str, credential: &str, public: &str) {
    // Short values can appear by coincidence (e.g. "User" inside the scheme name); long ones must not, unless the
    // public identifier that Debug does show (key or instance id) happens to contain them.
    if credential.len() >= 12 && !public.contains(credential) {
        assert!(!shown.contains(credential), "Debug shows a credential");
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = authorization::parse(&text);
    assert_eq!(parsed, authorization::parse(&text), "parsing is not deterministic");
    let Ok(parsed) = parsed else { return };
    let shown = format!("{parsed:?}");
    let canonical = match &parsed {
        Authorization::Application { key } => format!("Application {key}"),
        Authorization::ApplicationSigned { key, signature } => {
            hidden(&shown, signature, key);
            format!("Application {key}:{signature}")
        }
        Authorization::Basic { key, secret } => {
            hidden(&shown, secret, key);
            // The `application\` form is the unambiguous one: a key may itself start with `application\`.
            format!("Basic {}", STANDARD.encode(format!("application\\{key}:{}", secret.as_str())))
        }
        Authorization::User { ticket } => {
            hidden(&shown, ticket, "");
            format!("User {ticket}")
        }
        Authorization::Bearer { jwt } => {
            hidden(&shown, jwt, "");
            format!("Bearer {jwt}")
        }
        Authorization::Instance { instance_id, signature } => {
            hidden(&shown, signature, instance_id);
            format!("Instance {instance_id}:{signature}")
        }
    };
    let reparsed = authorization::parse(&canonical);
    assert_eq!(reparsed.as_ref().ok(), Some(&parsed), "canonical form does not re-parse: {canonical:?}");
});
