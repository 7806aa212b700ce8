//! Shared secrets (application and session secrets) and the HMAC-SHA256 they key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Smallest secret Callbox accepts (PROTOCOL §1: 16+ random bytes).
pub const MIN_SECRET_BYTES: usize = 16;
/// Largest secret Callbox accepts; bigger ones are hashed by HMAC anyway and only cost time.
pub const MAX_SECRET_BYTES: usize = 64;

/// Why a secret string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not standard base64.
    #[error("the secret is not standard base64")]
    NotBase64,
    /// Fewer than [`MIN_SECRET_BYTES`] or more than [`MAX_SECRET_BYTES`] decoded bytes.
    #[error("the secret must decode to between 16 and 64 bytes")]
    BadLength,
}

/// A base64-decoded secret, ready to key HMAC-SHA256.
///
/// The keyed HMAC state is computed once, so each verification only hashes the message. `Debug` never shows the
/// bytes, and they are wiped on drop.
#[derive(Clone)]
pub struct Secret {
    bytes: Zeroizing<Vec<u8>>,
    keyed: HmacSha256,
}

impl Secret {
    /// Decodes a standard base64 secret (padding required) of 16 to 64 bytes.
    pub fn from_base64(encoded: &str) -> Result<Self, SecretError> {
        let bytes = Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| SecretError::NotBase64)?);
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            return Err(SecretError::BadLength);
        }
        Ok(Self::from_bytes_unchecked(bytes))
    }

    /// Wraps raw bytes (16 to 64 of them), for secrets made by a CSPRNG or derived from a key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretError> {
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            return Err(SecretError::BadLength);
        }
        Ok(Self::from_bytes_unchecked(Zeroizing::new(bytes.to_vec())))
    }

    fn from_bytes_unchecked(bytes: Zeroizing<Vec<u8>>) -> Self {
        // HMAC takes keys of any length, so this cannot fail; the fallback keeps the no-panic rule honest.
        let keyed = HmacSha256::new_from_slice(&bytes).unwrap_or_else(|_| unreachable_hmac());
        Self { bytes, keyed }
    }

    /// The secret as the standard base64 text that developers paste into their backends.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes.as_slice())
    }

    /// The raw bytes (for encryption at rest and key derivation).
    pub fn expose_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// HMAC-SHA256 of `message` under this secret.
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// Base64 of [`Secret::mac`].
    pub fn sign_base64(&self, message: &[u8]) -> String {
        STANDARD.encode(self.mac(message))
    }

    /// Whether `tag` is the MAC of `message`, compared in constant time.
    pub fn verify_mac(&self, message: &[u8], tag: &[u8]) -> bool {
        let expected = self.mac(message);
        tag.len() == expected.len() && bool::from(expected.ct_eq(tag))
    }

    /// A short, non-reversible fingerprint (first 8 hex digits of SHA-256) for logs and audit events, so a
    /// secret can be told apart from another without being revealed.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.bytes)
    }
}

/// First 8 hex digits of SHA-256 of `value`: how audit events name a secret, ticket or signature.
pub fn fingerprint(value: &[u8]) -> String {
    let digest = Sha256::digest(value);
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cold]
fn unreachable_hmac() -> HmacSha256 {
    // `Hmac::new_from_slice` accepts every key length; this path exists only to avoid `expect`.
    #[allow(clippy::panic)]
    {
        panic!("HMAC-SHA256 refused a key, which the hmac crate never does")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret").field("fingerprint", &self.fingerprint()).finish_non_exhaustive()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.len() == other.bytes.len() && bool::from(self.bytes.as_slice().ct_eq(other.bytes.as_slice()))
    }
}

impl Eq for Secret {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_show_the_secret() {
        let secret = Secret::from_base64("JViE5vDor0Sw3WllZka15Q==").unwrap();
        let shown = format!("{secret:?}");
        assert!(!shown.contains("JViE5vDor0Sw3WllZka15Q"));
        assert!(!shown.contains("25, 88")); // no byte list either
        assert!(shown.contains("fingerprint"));
    }

    #[test]
    fn refuses_short_long_and_non_base64() {
        assert_eq!(Secret::from_base64("c2hvcnQ="), Err(SecretError::BadLength));
        assert_eq!(Secret::from_base64("not base64!"), Err(SecretError::NotBase64));
        assert_eq!(Secret::from_bytes(&[0; 65]), Err(SecretError::BadLength));
        assert!(Secret::from_bytes(&[7; 32]).is_ok());
    }

    #[test]
    fn verify_mac_rejects_truncated_and_changed_tags() {
        let secret = Secret::from_bytes(&[1; 16]).unwrap();
        let tag = secret.mac(b"hello");
        assert!(secret.verify_mac(b"hello", &tag));
        assert!(!secret.verify_mac(b"hello", &tag[..31]));
        let mut changed = tag;
        changed[0] ^= 1;
        assert!(!secret.verify_mac(b"hello", &changed));
        assert!(!secret.verify_mac(b"hellO", &tag));
    }
}
