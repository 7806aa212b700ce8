//! Signed requests (PROTOCOL §4).
//!
//! ```text
//! StringToSign = VERB "\n" Content-MD5 "\n" Content-Type "\n" "x-timestamp:" X-Timestamp "\n" path
//! Signature    = base64(HMAC-SHA256(secret, StringToSign))
//! ```

use crate::secret::Secret;
use crate::time::parse_timestamp;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};

/// Default allowed distance between `X-Timestamp` and server time: 10 minutes.
pub const DEFAULT_TIMESTAMP_SKEW_SECONDS: u64 = 600;

/// The parts of a request that its signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedParts<'a> {
    /// HTTP method, as sent (upper case).
    pub method: &'a str,
    /// The body bytes (empty for none).
    pub body: &'a [u8],
    /// The exact `Content-Type` header value, or `""`.
    pub content_type: &'a str,
    /// The exact `X-Timestamp` header value.
    pub timestamp: &'a str,
    /// The URL path including `/v1`, without the query.
    pub path: &'a str,
}

/// `base64(MD5(body))`, or `""` for an empty body.
pub fn content_md5(body: &[u8]) -> String {
    if body.is_empty() {
        String::new()
    } else {
        STANDARD.encode(Md5::digest(body))
    }
}

/// The exact text that is signed.
pub fn string_to_sign(parts: &SignedParts<'_>) -> String {
    let md5 = content_md5(parts.body);
    let mut out = String::with_capacity(
        parts.method.len() + md5.len() + parts.content_type.len() + parts.timestamp.len() + parts.path.len() + 16,
    );
    for piece in
        [parts.method, "\n", &md5, "\n", parts.content_type, "\nx-timestamp:", parts.timestamp, "\n", parts.path]
    {
        out.push_str(piece);
    }
    out
}

/// The base64 signature of the request under `secret`.
pub fn sign(secret: &Secret, parts: &SignedParts<'_>) -> String {
    secret.sign_base64(string_to_sign(parts).as_bytes())
}

/// Why a signed request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// `X-Timestamp` is missing or not ISO-8601.
    #[error("X-Timestamp is missing or not an ISO-8601 time")]
    BadTimestamp,
    /// `X-Timestamp` is further from server time than the allowed skew.
    #[error("X-Timestamp is {off_by} s {direction} server time, beyond the allowed {skew} s", direction = if *.ahead { "ahead of" } else { "behind" })]
    TimestampSkew {
        /// Distance from server time in seconds, rounded up.
        off_by: u64,
        /// Whether the client's clock is ahead.
        ahead: bool,
        /// The allowed skew.
        skew: u64,
    },
    /// The signature is not base64 of 32 bytes, or does not match.
    #[error("the request signature does not match")]
    BadSignature,
}

impl SignatureError {
    /// The PROTOCOL §7 reason word.
    pub const fn reason(&self) -> crate::Reason {
        match self {
            SignatureError::BadTimestamp | SignatureError::TimestampSkew { .. } => crate::Reason::TimestampSkew,
            SignatureError::BadSignature => crate::Reason::BadSignature,
        }
    }
}

/// Checks that `timestamp` is within `skew` seconds of `now`.
pub fn check_timestamp(timestamp: &str, skew: u64, now: DateTime<Utc>) -> Result<DateTime<Utc>, SignatureError> {
    let at = parse_timestamp(timestamp).ok_or(SignatureError::BadTimestamp)?;
    let distance_ms = (at - now).num_milliseconds();
    let off_by = distance_ms.unsigned_abs().div_ceil(1000);
    if off_by > skew {
        return Err(SignatureError::TimestampSkew { off_by, ahead: distance_ms > 0, skew });
    }
    Ok(at)
}

/// Verifies a request: timestamp window first (cheap, and the signature is meaningless outside it), then the
/// MAC in constant time.
pub fn verify(
    secret: &Secret,
    parts: &SignedParts<'_>,
    signature_b64: &str,
    skew: u64,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    check_timestamp(parts.timestamp, skew, now)?;
    verify_signature_only(secret, parts, signature_b64)
}

/// Verifies only the MAC (for callers that checked the timestamp already).
pub fn verify_signature_only(
    secret: &Secret,
    parts: &SignedParts<'_>,
    signature_b64: &str,
) -> Result<(), SignatureError> {
    let mut tag = [0u8; 32];
    // A 32-byte MAC is exactly 44 base64 characters; anything else cannot match, so skip the decode work.
    if signature_b64.len() != 44 || STANDARD.decode_slice(signature_b64, &mut tag) != Ok(32) {
        return Err(SignatureError::BadSignature);
    }
    if secret.verify_mac(string_to_sign(parts).as_bytes(), &tag) {
        Ok(())
    } else {
        Err(SignatureError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn vector() -> SignedParts<'static> {
        SignedParts {
            method: "POST",
            body: br#"{"message":"Hello world"}"#,
            content_type: "application/json",
            timestamp: "2014-06-04T13:41:58Z",
            path: "/v1/sms/+46700000000",
        }
    }

    fn secret() -> Secret {
        Secret::from_base64("JViE5vDor0Sw3WllZka15Q==").unwrap()
    }

    #[test]
    fn protocol_vector() {
        assert_eq!(content_md5(vector().body), "jANzQ+rgAHyf1MWQFSwvYw==");
        assert_eq!(
            string_to_sign(&vector()),
            "POST\njANzQ+rgAHyf1MWQFSwvYw==\napplication/json\nx-timestamp:2014-06-04T13:41:58Z\n/v1/sms/+46700000000"
        );
        assert_eq!(sign(&secret(), &vector()), "qDXMwzfaxCRS849c/2R0hg0nphgdHciTo7OdM6MsdnM=");
        let now = Utc.with_ymd_and_hms(2014, 6, 4, 13, 45, 0).unwrap();
        assert_eq!(verify(&secret(), &vector(), "qDXMwzfaxCRS849c/2R0hg0nphgdHciTo7OdM6MsdnM=", 600, now), Ok(()));
    }

    #[test]
    fn empty_body_has_empty_md5() {
        assert_eq!(content_md5(b""), "");
        let parts = SignedParts { method: "GET", body: b"", content_type: "", timestamp: "t", path: "/v1/x" };
        assert_eq!(string_to_sign(&parts), "GET\n\n\nx-timestamp:t\n/v1/x");
    }

    #[test]
    fn refusals() {
        let signature = sign(&secret(), &vector());
        let now = Utc.with_ymd_and_hms(2014, 6, 4, 13, 41, 58).unwrap();
        let other_path = SignedParts { path: "/v1/sms/+46700000001", ..vector() };
        assert_eq!(verify(&secret(), &other_path, &signature, 600, now), Err(SignatureError::BadSignature));
        let other_body = SignedParts { body: b"{}", ..vector() };
        assert_eq!(verify(&secret(), &other_body, &signature, 600, now), Err(SignatureError::BadSignature));
        assert_eq!(verify(&secret(), &vector(), "short", 600, now), Err(SignatureError::BadSignature));
        assert_eq!(verify(&secret(), &vector(), &"A".repeat(44), 600, now), Err(SignatureError::BadSignature));
        let late = now + chrono::Duration::seconds(601);
        assert_eq!(
            verify(&secret(), &vector(), &signature, 600, late),
            Err(SignatureError::TimestampSkew { off_by: 601, ahead: false, skew: 600 })
        );
        let bad_time = SignedParts { timestamp: "yesterday", ..vector() };
        assert_eq!(verify(&secret(), &bad_time, &signature, 600, now), Err(SignatureError::BadTimestamp));
    }
}
