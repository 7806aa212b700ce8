//! Legacy user tickets (PROTOCOL §2): `base64(json) ":" base64(HMAC-SHA256(secret, json))`.
//!
//! Verification happens in two steps because the ticket itself names the application whose secrets verify it:
//! [`DecodedTicket::decode`] checks size and shape and exposes an unauthenticated routing hint
//! ([`DecodedTicket::peek_application_key`]); [`DecodedTicket::verify`] then checks the MAC over the exact
//! decoded bytes (constant time) *before* the claims are parsed and trusted.

use crate::credential::{check_window, is_valid_user_id, Identity, IdentityType, TicketError, TicketPolicy};
use crate::secret::Secret;
use crate::time::{format_js_iso, parse_timestamp};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Tickets over this many bytes are refused before any work (PROTOCOL §2).
pub const MAX_TICKET_BYTES: usize = 8 * 1024;

/// What a backend puts in a new ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    /// The application key the ticket is for.
    pub application_key: String,
    /// The user it speaks for.
    pub identity: Identity,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// Lifetime in seconds; `None` leaves it to the application's default.
    pub expires_in: Option<u64>,
    /// A single-use nonce, if the ticket should be usable once only.
    pub nonce: Option<String>,
}

/// The wire shape, in the published Node generator's key order (`JSON.stringify` keeps insertion order), so
/// that [`mint`] reproduces its output byte for byte.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TicketJson<'a> {
    application_key: &'a str,
    identity: &'a Identity,
    created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

/// Makes a user ticket signed with `secret`, exactly as the published Node generator does.
pub fn mint(ticket: &NewTicket, secret: &Secret) -> String {
    let json = TicketJson {
        application_key: &ticket.application_key,
        identity: &ticket.identity,
        created: format_js_iso(ticket.created),
        expires_in: ticket.expires_in,
        nonce: ticket.nonce.as_deref(),
    };
    // Serializing plain strings and integers cannot fail; an empty object keeps the function total.
    let bytes = serde_json::to_vec(&json).unwrap_or_else(|_| b"{}".to_vec());
    let mut out = STANDARD.encode(&bytes);
    out.push(':');
    STANDARD.encode_string(secret.mac(&bytes), &mut out);
    out
}

/// The claims of a ticket, as parsed (case-insensitive field names, any of the five `created` forms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketClaims {
    /// `applicationKey`.
    pub application_key: String,
    /// `identity`.
    pub identity: Identity,
    /// `created`, normalised to UTC.
    pub created: DateTime<Utc>,
    /// `expiresIn`, if present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// `nonce`, if present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// A ticket that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTicket {
    /// Its claims.
    pub claims: TicketClaims,
    /// Index, in the slice given to `verify`, of the secret whose MAC matched (for last-used tracking).
    pub secret_index: usize,
    /// End of its validity window, without skew: how long its nonce must be remembered.
    pub expires_at: DateTime<Utc>,
}

/// A ticket split and base64-decoded, its MAC not yet checked.
#[derive(Clone, PartialEq, Eq)]
pub struct DecodedTicket {
    json: Vec<u8>,
    signature: Vec<u8>,
}

impl fmt::Debug for DecodedTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The signature is a credential (replayable with the JSON), so only its fingerprint is shown.
        f.debug_struct("DecodedTicket")
            .field("json_len", &self.json.len())
            .field("signature", &crate::secret::fingerprint(&self.signature))
            .finish()
    }
}

impl DecodedTicket {
    /// Checks the size limit and splits `TicketData:TicketSignature`, decoding both halves.
    pub fn decode(ticket: &str) -> Result<Self, TicketError> {
        if ticket.len() > MAX_TICKET_BYTES {
            return Err(TicketError::TooLarge { len: ticket.len(), max: MAX_TICKET_BYTES });
        }
        let (data, signature) =
            ticket.trim().split_once(':').ok_or(TicketError::Malformed("expected TicketData:TicketSignature"))?;
        let json = STANDARD.decode(data).map_err(|_| TicketError::Malformed("TicketData is not standard base64"))?;
        let signature =
            STANDARD.decode(signature).map_err(|_| TicketError::Malformed("TicketSignature is not standard base64"))?;
        if signature.len() != 32 {
            return Err(TicketError::Malformed("TicketSignature is not an HMAC-SHA256 (32 bytes)"));
        }
        Ok(Self { json, signature })
    }

    /// The exact JSON bytes the MAC covers.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// The `applicationKey` the ticket claims, read without checking anything: only for finding which
    /// application's secrets to verify it with. `None` when there is none to read.
    pub fn peek_application_key(&self) -> Option<String> {
        #[derive(Default)]
        struct Peek(Option<String>);
        impl<'de> Deserialize<'de> for Peek {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct PeekVisitor;
                impl<'de> Visitor<'de> for PeekVisitor {
                    type Value = Peek;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a ticket object")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Peek, A::Error> {
                        let mut key = None;
                        while let Some(field) = map.next_key::<Field>()? {
                            if field == Field::ApplicationKey && key.is_none() {
                                key = map.next_value::<Option<String>>()?;
                            } else {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                        Ok(Peek(key))
                    }
                }
                deserializer.deserialize_map(PeekVisitor)
            }
        }
        serde_json::from_slice::<Peek>(&self.json).ok().and_then(|peek| peek.0)
    }

    /// Parses the claims without checking the MAC: for `callbox ticket inspect` and diagnostics only.
    pub fn claims_unverified(&self) -> Result<TicketClaims, TicketError> {
        parse_claims(&self.json)
    }

    /// Verifies the ticket for `expected_application_key` against each of `secrets` (an application's active
    /// secrets, newest first), then its claims and validity window under `policy` at `now`.
    ///
    /// Order: MAC first (constant time per secret), then parsing, then application key, lifetime and window.
    pub fn verify(
        &self,
        expected_application_key: &str,
        secrets: &[Secret],
        policy: &TicketPolicy,
        now: DateTime<Utc>,
    ) -> Result<VerifiedTicket, TicketError> {
        let secret_index = secrets
            .iter()
            .position(|secret| secret.verify_mac(&self.json, &self.signature))
            .ok_or(TicketError::BadSignature)?;
        let claims = parse_claims(&self.json)?;
        let expires_at = check_claims(&claims, expected_application_key, policy, now)?;
        Ok(VerifiedTicket { claims, secret_index, expires_at })
    }
}

/// The checks after the MAC: application key, lifetime, window. Returns the expiry.
pub(crate) fn check_claims(
    claims: &TicketClaims,
    expected_application_key: &str,
    policy: &TicketPolicy,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, TicketError> {
    if claims.application_key != expected_application_key {
        return Err(TicketError::ApplicationMismatch);
    }
    let ttl = claims.expires_in.unwrap_or(policy.default_ttl);
    if ttl > policy.max_ttl {
        return Err(TicketError::TtlExceedsMax { requested: ttl, max: policy.max_ttl });
    }
    check_window(claims.created, ttl, policy.skew, now)
}

/// Decodes and verifies in one call, for callers that already know the application.
pub fn verify(
    ticket: &str,
    expected_application_key: &str,
    secrets: &[Secret],
    policy: &TicketPolicy,
    now: DateTime<Utc>,
) -> Result<VerifiedTicket, TicketError> {
    DecodedTicket::decode(ticket)?.verify(expected_application_key, secrets, policy, now)
}

/// Field names, matched ignoring ASCII case (the C# sample writes `applicationkey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    ApplicationKey,
    Identity,
    Created,
    ExpiresIn,
    Nonce,
    Type,
    Endpoint,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Field, E> {
                const NAMES: [(&str, Field); 7] = [
                    ("applicationKey", Field::ApplicationKey),
                    ("identity", Field::Identity),
                    ("created", Field::Created),
                    ("expiresIn", Field::ExpiresIn),
                    ("nonce", Field::Nonce),
                    ("type", Field::Type),
                    ("endpoint", Field::Endpoint),
                ];
                Ok(NAMES
                    .iter()
                    .find(|(known, _)| known.eq_ignore_ascii_case(name))
                    .map_or(Field::Other, |(_, field)| *field))
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// Claims as they come off the wire, before validation. Duplicate fields are refused, so that two readers of
/// the same bytes can never disagree about what a ticket says.
struct RawClaims {
    application_key: Option<String>,
    identity: Option<RawIdentity>,
    created: Option<String>,
    expires_in: Option<u64>,
    nonce: Option<String>,
}

struct RawIdentity {
    kind: Option<String>,
    endpoint: Option<String>,
}

fn set_once<T, E: de::Error>(slot: &mut Option<T>, value: Option<T>, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = value;
    Ok(())
}

impl<'de> Deserialize<'de> for RawClaims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ClaimsVisitor;
        impl<'de> Visitor<'de> for ClaimsVisitor {
            type Value = RawClaims;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a ticket object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawClaims, A::Error> {
                let mut raw =
                    RawClaims { application_key: None, identity: None, created: None, expires_in: None, nonce: None };
                let mut seen_expires = false;
                let mut seen_nonce = false;
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::ApplicationKey => {
                            set_once(&mut raw.application_key, Some(map.next_value()?), "applicationKey")?
                        }
                        Field::Identity => set_once(&mut raw.identity, Some(map.next_value()?), "identity")?,
                        Field::Created => set_once(&mut raw.created, Some(map.next_value()?), "created")?,
                        // `null` means absent for the optional fields; a second occurrence is still a duplicate.
                        Field::ExpiresIn => {
                            if std::mem::replace(&mut seen_expires, true) {
                                return Err(de::Error::duplicate_field("expiresIn"));
                            }
                            raw.expires_in = map.next_value()?;
                        }
                        Field::Nonce => {
                            if std::mem::replace(&mut seen_nonce, true) {
                                return Err(de::Error::duplicate_field("nonce"));
                            }
                            raw.nonce = map.next_value()?;
                        }
                        Field::Type | Field::Endpoint | Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(raw)
            }
        }
        deserializer.deserialize_map(ClaimsVisitor)
    }
}

impl<'de> Deserialize<'de> for RawIdentity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdentityVisitor;
        impl<'de> Visitor<'de> for IdentityVisitor {
            type Value = RawIdentity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an identity object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawIdentity, A::Error> {
                let mut raw = RawIdentity { kind: None, endpoint: None };
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Type => set_once(&mut raw.kind, Some(map.next_value()?), "type")?,
                        Field::Endpoint => set_once(&mut raw.endpoint, Some(map.next_value()?), "endpoint")?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(raw)
            }
        }
        deserializer.deserialize_map(IdentityVisitor)
    }
}

fn parse_claims(json: &[u8]) -> Result<TicketClaims, TicketError> {
    let raw: RawClaims = serde_json::from_slice(json).map_err(|error| {
        TicketError::Malformed(match error.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "TicketData is not JSON",
            _ if error.to_string().contains("duplicate field") => "TicketData repeats a field",
            _ => "TicketData has a field of the wrong type (expiresIn must be a whole number of seconds)",
        })
    })?;
    let application_key =
        raw.application_key.filter(|key| !key.is_empty()).ok_or(TicketError::Malformed("applicationKey is missing"))?;
    let identity = raw.identity.ok_or(TicketError::Malformed("identity is missing"))?;
    let kind = identity
        .kind
        .as_deref()
        .and_then(IdentityType::parse)
        .ok_or(TicketError::Malformed("identity.type must be username, email or number"))?;
    let endpoint = identity.endpoint.ok_or(TicketError::Malformed("identity.endpoint is missing"))?;
    if !is_valid_user_id(&endpoint) {
        return Err(TicketError::Malformed("identity.endpoint must be 1-255 bytes without control characters"));
    }
    let created = raw
        .created
        .as_deref()
        .ok_or(TicketError::Malformed("created is missing"))
        .and_then(|text| parse_timestamp(text).ok_or(TicketError::Malformed("created is not an ISO-8601 time")))?;
    if raw.nonce.as_deref().is_some_and(|nonce| nonce.is_empty() || nonce.len() > 255) {
        return Err(TicketError::Malformed("nonce must be 1-255 bytes"));
    }
    Ok(TicketClaims {
        application_key,
        identity: Identity { kind, endpoint },
        created,
        expires_in: raw.expires_in,
        nonce: raw.nonce,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const KEY: &str = "5F5C418A0F914BBC8234A9BF5EDDAD97";
    const SECRET: &str = "JViE5vDor0Sw3WllZka15Q==";
    const VECTOR: &str = "eyJhcHBsaWNhdGlvbktleSI6IjVGNUM0MThBMEY5MTRCQkM4MjM0QTlCRjVFRERBRDk3IiwiaWRlbnRpdHkiOnsidHlwZSI6InVzZXJuYW1lIiwiZW5kcG9pbnQiOiJhbGljZSJ9LCJjcmVhdGVkIjoiMjAxNC0wNi0wNFQxMzo0MTo1OC4wMDBaIiwiZXhwaXJlc0luIjo4NjQwMH0=:6AMctyp4y4ovV9xNvJpcjdu2YWUS6Y52OPenJs32Bec=";

    fn secret() -> Secret {
        Secret::from_base64(SECRET).unwrap()
    }

    fn created() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2014, 6, 4, 13, 41, 58).unwrap()
    }

    fn sign_json(json: &str) -> String {
        format!("{}:{}", STANDARD.encode(json), secret().sign_base64(json.as_bytes()))
    }

    #[test]
    fn protocol_vector_mints_byte_for_byte() {
        let ticket = NewTicket {
            application_key: KEY.into(),
            identity: Identity::username("alice"),
            created: created(),
            expires_in: Some(86_400),
            nonce: None,
        };
        assert_eq!(mint(&ticket, &secret()), VECTOR);
    }

    #[test]
    fn protocol_vector_verifies() {
        let policy = TicketPolicy { max_ttl: 86_400, ..TicketPolicy::default() };
        let verified = verify(VECTOR, KEY, &[secret()], &policy, created()).unwrap();
        assert_eq!(verified.claims.identity, Identity::username("alice"));
        assert_eq!(verified.claims.expires_in, Some(86_400));
        assert_eq!(verified.expires_at, created() + chrono::Duration::seconds(86_400));
        assert_eq!(verified.secret_index, 0);
    }

    #[test]
    fn peek_reads_the_key_without_trusting_anything() {
        assert_eq!(DecodedTicket::decode(VECTOR).unwrap().peek_application_key().as_deref(), Some(KEY));
        let lower = sign_json(r#"{"applicationkey":"k1","identity":{"type":"username","endpoint":"a"}}"#);
        assert_eq!(DecodedTicket::decode(&lower).unwrap().peek_application_key().as_deref(), Some("k1"));
    }
}
