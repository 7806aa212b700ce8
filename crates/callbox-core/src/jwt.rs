//! Registration JWTs (PROTOCOL §3): HS256, `kid` = `hkdfv1-YYYYMMDD`, keyed with
//! `HMAC-SHA256(application secret, "YYYYMMDD")`.
//!
//! Only HS256 with that `kid` form is accepted; `none`, every other algorithm, and tokens without `exp`, `iat`
//! or `nonce` are refused (RFC 8725 §3.1, §3.10). [`DecodedJwt::decode`] refuses a payload that lacks one of
//! `iss`, `sub`, `iat`, `exp` (or carries one of the wrong type) at once, naming it: such a token can never verify,
//! and "names no application key" would send its author looking in the wrong place. The claim *values* are
//! trusted only after `jsonwebtoken` has checked the signature; the time checks are ours, against the `now` the
//! caller passes.

use crate::credential::{check_window, is_valid_user_id, Identity, TicketError, TicketPolicy};
use crate::secret::Secret;
use crate::ticket::MAX_TICKET_BYTES;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The `iss` prefix Callbox writes; any `iss` ending in `/applications/{key}` is accepted.
pub const ISSUER_PREFIX: &str = "//rtc.sinch.com/applications/";
/// Shortest lifetime (`exp - iat`) a registration JWT may have.
pub const MIN_JWT_TTL: u64 = 60;

const KID_PREFIX: &str = "hkdfv1-";

/// The signing key for `date`: `HMAC-SHA256(secret, UTF8("YYYYMMDD"))`.
pub fn signing_key(secret: &Secret, date: NaiveDate) -> [u8; 32] {
    secret.mac(date.format("%Y%m%d").to_string().as_bytes())
}

/// What a backend puts in a new registration JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRegistrationJwt {
    /// The application key.
    pub application_key: String,
    /// The user id.
    pub user_id: String,
    /// `iat`; its UTC date also names the signing key.
    pub issued_at: DateTime<Utc>,
    /// `exp - iat`, in seconds (at least 60).
    pub ttl: u64,
    /// The single-use nonce.
    pub nonce: String,
}

/// The claims on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtClaims {
    /// `//rtc.sinch.com/applications/{key}`.
    pub iss: String,
    /// `{iss}/users/{userId}`.
    pub sub: String,
    /// Issued at, epoch seconds.
    pub iat: i64,
    /// Expiry, epoch seconds.
    pub exp: i64,
    /// Single-use nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

impl JwtClaims {
    /// The application key named by `iss`.
    pub fn application_key(&self) -> Option<&str> {
        self.iss.rsplit_once("/applications/").map(|(_, key)| key).filter(|key| !key.is_empty())
    }

    /// The user id named by `sub`, when `sub` is `{iss}/users/{userId}`.
    pub fn user_id(&self) -> Option<&str> {
        self.sub.strip_prefix(self.iss.as_str())?.strip_prefix("/users/")
    }
}

/// Why minting failed.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// `ttl` below [`MIN_JWT_TTL`].
    #[error("a registration JWT must live at least 60 s")]
    TtlTooShort,
    /// The user id is empty, too long or has control characters.
    #[error("the user id must be 1-255 bytes without control characters")]
    InvalidUserId,
    /// The JWT library refused (it does not for HS256).
    #[error("could not encode the JWT: {0}")]
    Encode(#[from] jsonwebtoken::errors::Error),
}

/// Makes a registration JWT signed with `secret`, with the header of PROTOCOL §3 (no `typ`).
pub fn mint(jwt: &NewRegistrationJwt, secret: &Secret) -> Result<String, MintError> {
    if jwt.ttl < MIN_JWT_TTL {
        return Err(MintError::TtlTooShort);
    }
    if !is_valid_user_id(&jwt.user_id) {
        return Err(MintError::InvalidUserId);
    }
    let date = jwt.issued_at.date_naive();
    let mut header = Header::new(Algorithm::HS256);
    header.typ = None;
    header.kid = Some(format!("{KID_PREFIX}{}", date.format("%Y%m%d")));
    let iss = format!("{ISSUER_PREFIX}{}", jwt.application_key);
    let claims = JwtClaims {
        sub: format!("{iss}/users/{}", jwt.user_id),
        iss,
        iat: jwt.issued_at.timestamp(),
        exp: jwt.issued_at.timestamp().saturating_add(i64::try_from(jwt.ttl).unwrap_or(i64::MAX)),
        nonce: Some(jwt.nonce.clone()),
    };
    Ok(jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&signing_key(secret, date)))?)
}

/// A JWT that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedJwt {
    /// The claims.
    pub claims: JwtClaims,
    /// The user (always a `username` identity).
    pub identity: Identity,
    /// The nonce (required).
    pub nonce: String,
    /// Index of the secret that verified it.
    pub secret_index: usize,
    /// `exp`: how long the nonce must be remembered.
    pub expires_at: DateTime<Utc>,
}

/// A JWT whose header passed the format checks, its signature not yet checked.
#[derive(Clone)]
pub struct DecodedJwt {
    token: String,
    key_date: NaiveDate,
    unverified: JwtClaims,
}

impl fmt::Debug for DecodedJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecodedJwt")
            .field("token", &crate::secret::fingerprint(self.token.as_bytes()))
            .field("key_date", &self.key_date)
            .finish_non_exhaustive()
    }
}

impl DecodedJwt {
    /// Checks size, the compact form, `alg` = HS256 and the `kid` form.
    pub fn decode(token: &str) -> Result<Self, TicketError> {
        let token = token.trim();
        if token.len() > MAX_TICKET_BYTES {
            return Err(TicketError::TooLarge { len: token.len(), max: MAX_TICKET_BYTES });
        }
        if token.split('.').count() != 3 {
            return Err(TicketError::Malformed("a JWT has three dot-separated parts"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TicketError::Malformed("the JWT header cannot be decoded"))?;
        if header.alg != Algorithm::HS256 {
            return Err(TicketError::Malformed("the JWT alg must be HS256"));
        }
        let key_date = header
            .kid
            .as_deref()
            .and_then(|kid| kid.strip_prefix(KID_PREFIX))
            .filter(|date| date.len() == 8)
            .and_then(|date| NaiveDate::parse_from_str(date, "%Y%m%d").ok())
            .ok_or(TicketError::Malformed("the JWT kid must be hkdfv1-YYYYMMDD"))?;
        let unverified = parse_claims(token)?;
        Ok(Self { token: token.to_owned(), key_date, unverified })
    }

    /// The date in `kid`, which names the signing key.
    pub fn key_date(&self) -> NaiveDate {
        self.key_date
    }

    /// The application key `iss` claims, unverified: only for finding which application's secrets to try.
    pub fn peek_application_key(&self) -> Option<String> {
        self.unverified.application_key().map(str::to_owned)
    }

    /// The claims without checking the signature: for `callbox ticket inspect` and diagnostics only.
    pub fn claims_unverified(&self) -> Result<JwtClaims, TicketError> {
        Ok(self.unverified.clone())
    }

    /// Verifies signature (against each secret), key date, issuer, subject, lifetime and window.
    pub fn verify(
        &self,
        expected_application_key: &str,
        secrets: &[Secret],
        policy: &TicketPolicy,
        now: DateTime<Utc>,
    ) -> Result<VerifiedJwt, TicketError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Time is checked below against the caller's `now`, with the application's skew and maximum lifetime.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);

        let mut verified = None;
        for (index, secret) in secrets.iter().enumerate() {
            let key = DecodingKey::from_secret(&signing_key(secret, self.key_date));
            match jsonwebtoken::decode::<JwtClaims>(&self.token, &key, &validation) {
                Ok(data) => {
                    verified = Some((index, data.claims));
                    break;
                }
                Err(error) if matches!(error.kind(), ErrorKind::InvalidSignature) => continue,
                Err(error) => return Err(malformed_claims(error.kind())),
            }
        }
        let (secret_index, claims) = verified.ok_or(TicketError::BadSignature)?;
        let checked = self.check_claims(claims, expected_application_key, policy, now)?;
        Ok(VerifiedJwt { secret_index, ..checked })
    }

    /// The checks after the signature: issuer, subject, nonce, lifetime, key date and window.
    pub(crate) fn check_claims(
        &self,
        claims: JwtClaims,
        expected_application_key: &str,
        policy: &TicketPolicy,
        now: DateTime<Utc>,
    ) -> Result<VerifiedJwt, TicketError> {
        if claims.application_key() != Some(expected_application_key) {
            return Err(TicketError::ApplicationMismatch);
        }
        let user_id = claims.user_id().ok_or(TicketError::Malformed("sub must be {iss}/users/{userId}"))?;
        if !is_valid_user_id(user_id) {
            return Err(TicketError::Malformed("the user id must be 1-255 bytes without control characters"));
        }
        let nonce = claims
            .nonce
            .clone()
            .filter(|nonce| !nonce.is_empty() && nonce.len() <= 255)
            .ok_or(TicketError::Malformed("the JWT needs a nonce of 1-255 bytes"))?;
        let ttl = u64::try_from(claims.exp.saturating_sub(claims.iat)).unwrap_or(0);
        if ttl < MIN_JWT_TTL {
            return Err(TicketError::Malformed("exp must be at least 60 s after iat"));
        }
        if ttl > policy.max_ttl {
            return Err(TicketError::TtlExceedsMax { requested: ttl, max: policy.max_ttl });
        }
        let issued_at =
            Utc.timestamp_opt(claims.iat, 0).single().ok_or(TicketError::Malformed("iat is out of range"))?;
        // The key date must be within one day of server time, whatever iat says.
        let today = now.date_naive();
        let one_day_off =
            self.key_date < today.pred_opt().unwrap_or(today) || self.key_date > today.succ_opt().unwrap_or(today);
        if one_day_off {
            return Err(TicketError::KeyDateOutOfRange { key_date: self.key_date, server_date: today });
        }
        let expires_at = check_window(issued_at, ttl, policy.skew, now)?;
        let identity = Identity::username(user_id);
        Ok(VerifiedJwt { identity, nonce, secret_index: 0, expires_at, claims })
    }
}

/// The payload's claims, or the first required claim that is missing or of the wrong type, by name.
fn parse_claims(token: &str) -> Result<JwtClaims, TicketError> {
    let json = token
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .ok_or(TicketError::Malformed("the JWT payload is not base64url"))?;
    let payload: serde_json::Value =
        serde_json::from_slice(&json).map_err(|_| TicketError::Malformed("the JWT payload is not JSON"))?;
    let object = payload.as_object().ok_or(TicketError::Malformed("the JWT payload is not a JSON object"))?;
    // (claim, whether it is a string rather than whole seconds, message when missing, when of the wrong type)
    let required = [
        ("iss", true, "the JWT has no iss claim", "the JWT iss claim must be a string"),
        ("sub", true, "the JWT has no sub claim", "the JWT sub claim must be a string"),
        ("iat", false, "the JWT has no iat claim", "the JWT iat claim must be whole epoch seconds"),
        ("exp", false, "the JWT has no exp claim", "the JWT exp claim must be whole epoch seconds"),
    ];
    for (name, is_string, missing, wrong_type) in required {
        match object.get(name) {
            None | Some(serde_json::Value::Null) => return Err(TicketError::Malformed(missing)),
            Some(value) if !(if is_string { value.is_string() } else { value.as_i64().is_some() }) => {
                return Err(TicketError::Malformed(wrong_type))
            }
            Some(_) => {}
        }
    }
    serde_json::from_value(payload).map_err(|_| TicketError::Malformed("the JWT nonce claim must be a string"))
}

fn malformed_claims(kind: &ErrorKind) -> TicketError {
    TicketError::Malformed(match kind {
        ErrorKind::MissingRequiredClaim(_) => "the JWT must carry iss, sub, iat and exp",
        ErrorKind::InvalidAlgorithm => "the JWT alg must be HS256",
        _ => "the JWT cannot be decoded",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    const KEY: &str = "a32e5a8d-f7d8-411c-9645-9038e8dd051d";
    const SECRET: &str = "ax8hTTQJF0OPXL32r1LHMA==";

    fn secret() -> Secret {
        Secret::from_base64(SECRET).unwrap()
    }

    fn iat() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2018, 1, 2, 3, 4, 5).unwrap()
    }

    fn vector_jwt() -> String {
        mint(
            &NewRegistrationJwt {
                application_key: KEY.into(),
                user_id: "foo".into(),
                issued_at: iat(),
                ttl: 600,
                nonce: "6b438bda-2d5c-4e8c-92b0-39f20a94b34e".into(),
            },
            &secret(),
        )
        .unwrap()
    }

    #[test]
    fn protocol_vector_signing_key() {
        let date = NaiveDate::from_ymd_opt(2018, 1, 2).unwrap();
        assert_eq!(STANDARD.encode(signing_key(&secret(), date)), "AZj5EsS8S7wb06xr5jERqPHsraQt3w/+Ih5EfrhisBQ=");
    }

    #[test]
    fn protocol_vector_round_trips() {
        let token = vector_jwt();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("hkdfv1-20180102"));
        let header_json = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
        assert_eq!(header_json, br#"{"alg":"HS256","kid":"hkdfv1-20180102"}"#);

        let decoded = DecodedJwt::decode(&token).unwrap();
        assert_eq!(decoded.peek_application_key().as_deref(), Some(KEY));
        let verified = decoded.verify(KEY, &[secret()], &TicketPolicy::default(), iat()).unwrap();
        assert_eq!(verified.identity, Identity::username("foo"));
        assert_eq!(verified.claims.iss, format!("//rtc.sinch.com/applications/{KEY}"));
        assert_eq!(verified.claims.exp - verified.claims.iat, 600);
        assert_eq!(verified.nonce, "6b438bda-2d5c-4e8c-92b0-39f20a94b34e");
    }
}
