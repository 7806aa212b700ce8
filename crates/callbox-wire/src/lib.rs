//! # callbox-wire
//!
//! The request and answer bodies of the Callbox HTTP APIs, as one set of types that the server renders and
//! parses, the `callbox` CLI reads, and the OpenAPI document (`docs/openapi.json`) describes. No logic: the rules
//! behind each field live in the server's domain.
//!
//! - [`client`]: the client API of PROTOCOL §6 (sign-up, login, session exchange and renewal, the session's own
//!   calls).
//! - [`admin`]: the admin API (docs/admin-api.md): applications and secrets, users, sessions, events, the ticket
//!   debugger.
//! - [`ErrorBody`]: the PROTOCOL §7 error, and [`reasons`], the documented list of its `reason` words.
//!
//! Secrets and passwords in these bodies are `Zeroizing` and never printed by `Debug`.

pub mod admin;
pub mod client;

pub use callbox_core::{Capability, Reason};
use serde::{Deserialize, Serialize};

/// A session capability (the schema of [`callbox_core::Capability`] in the OpenAPI document).
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Capability)]
pub enum CapabilitySchema {
    /// Instant messaging.
    Messaging,
    /// Voice calls.
    Calling,
    /// Video calls.
    Video,
}

/// The PROTOCOL §7 error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Legacy numeric code; its first three digits are the HTTP status.
    pub error_code: u32,
    /// A sentence for humans.
    pub message: String,
    /// The stable reason word.
    pub reason: String,
    /// Whether sending the same request later may succeed.
    pub retryable: bool,
    /// Server time, ISO-8601 UTC: clock trouble is the most common cause of refusals.
    pub server_time: String,
    /// Seconds to wait, for `locked_out` and `rate_limited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// Every `reason` word an error body can carry, with its code (PROTOCOL §7).
pub fn reasons() -> &'static [Reason] {
    &Reason::ALL
}

/// A string that is a credential: redacted in `Debug`, wiped on drop.
#[derive(Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct SecretString(pub zeroize::Zeroizing<String>);

impl SecretString {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(zeroize::Zeroizing::new(value.into()))
    }

    /// The value.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl utoipa::PartialSchema for SecretString {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        String::schema()
    }
}

impl utoipa::ToSchema for SecretString {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secret_strings_are_redacted_in_debug_and_plain_on_the_wire() {
        let secret = SecretString::new("hunter2-hunter2");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"hunter2-hunter2\"");
        let back: SecretString = serde_json::from_str("\"x\"").unwrap();
        assert_eq!(back.expose(), "x");
    }

    #[test]
    fn the_reason_list_is_complete_and_each_word_reads_back() {
        assert!(reasons().len() >= 20);
        for reason in reasons() {
            assert_eq!(Reason::from_wire(reason.as_str()), Some(*reason));
        }
    }
}
