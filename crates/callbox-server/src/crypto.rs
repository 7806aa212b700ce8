//! The master key and what it protects: application secrets sealed at rest, session secrets derived (never
//! stored), random identifiers.
//!
//! A copy of the database alone is useless without the master key: sealed secrets need it to open, and session
//! secrets need it to be recomputed.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use callbox_core::Secret;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use std::fmt;
use std::io;
use std::path::Path;
use zeroize::Zeroizing;

const NONCE_BYTES: usize = 24;

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Wrong master key, or the stored bytes were altered.
    #[error("a sealed secret does not open with this master key (wrong key, or altered data)")]
    Unseal,
    /// The master key text is not base64 of 32 bytes.
    #[error("the master key must be standard base64 of 32 bytes")]
    BadMasterKey,
}

/// The server's master key, with the two subkeys derived from it.
#[derive(Clone)]
pub struct MasterKey {
    seal: XChaCha20Poly1305,
    session_key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

fn derive(master: &[u8; 32], label: &[u8]) -> Zeroizing<[u8; 32]> {
    // HMAC as a PRF over a fixed label: separate keys for separate purposes, so no key is used twice.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master).unwrap_or_else(|_| unreachable_key());
    mac.update(label);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

#[cold]
fn unreachable_key() -> Hmac<Sha256> {
    #[allow(clippy::panic)]
    {
        panic!("HMAC accepts keys of any length")
    }
}

impl MasterKey {
    /// From the 32 master-key bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let seal_key = derive(bytes, b"callbox/seal-secrets/v1");
        let session_key = derive(bytes, b"callbox/session-secrets/v1");
        let seal = XChaCha20Poly1305::new(seal_key.as_slice().into());
        Self { seal, session_key }
    }

    /// From standard base64 of 32 bytes (the file and `CALLBOX_MASTER_KEY` form).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| CryptoError::BadMasterKey)?);
        let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| CryptoError::BadMasterKey)?;
        let key = Self::from_bytes(&array);
        let mut array = array;
        zeroize::Zeroize::zeroize(&mut array);
        Ok(key)
    }

    /// A fresh random key, and its base64 text for the key file.
    pub fn generate() -> (Self, Zeroizing<String>) {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(bytes.as_mut_slice());
        (Self::from_bytes(&bytes), Zeroizing::new(STANDARD.encode(bytes.as_slice())))
    }

    /// Reads the key file at `path`, or creates it (mode 0600) with a new key. Returns whether it was created.
    pub fn load_or_create(path: &Path) -> io::Result<(Self, bool)> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = Self::from_base64(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                Ok((key, false))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let (key, text) = Self::generate();
                write_private_file(path, text.as_bytes())?;
                Ok((key, true))
            }
            Err(error) => Err(error),
        }
    }

    /// Seals `plaintext`, bound to `context` (so a sealed value cannot be moved to another row).
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        // Encryption with a valid key and nonce cannot fail for inputs this small.
        let sealed = self.seal.encrypt(&nonce, Payload { msg: plaintext, aad: context }).unwrap_or_default();
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`MasterKey::seal`] made with the same `context`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() <= NONCE_BYTES {
            return Err(CryptoError::Unseal);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        self.seal
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: context })
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Unseal)
    }

    /// The secret of session `session_id` at `generation`: `HMAC(session key, id || 0x00 || generation)`.
    /// Derived on demand, so no session secret is ever stored.
    pub fn session_secret(&self, session_id: &str, generation: u32) -> Secret {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(self.session_key.as_slice()).unwrap_or_else(|_| unreachable_key());
        mac.update(session_id.as_bytes());
        mac.update(&[0]);
        mac.update(&generation.to_be_bytes());
        let bytes = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
        // 32 bytes is within Secret's accepted range, so this always succeeds.
        Secret::from_bytes(bytes.as_slice()).unwrap_or_else(|_| unreachable_secret())
    }
}

#[cold]
fn unreachable_secret() -> Secret {
    #[allow(clippy::panic)]
    {
        panic!("a 32-byte secret is always accepted")
    }
}

/// `n` random bytes from the OS CSPRNG, base64url without padding: ids and tokens.
pub fn random_token(n: usize) -> String {
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes.as_slice())
}

/// A new application secret: 24 random bytes.
pub fn new_app_secret() -> Secret {
    let mut bytes = Zeroizing::new([0u8; 24]);
    OsRng.fill_bytes(bytes.as_mut_slice());
    Secret::from_bytes(bytes.as_slice()).unwrap_or_else(|_| unreachable_secret())
}

/// Writes `contents` to a new file readable by its owner only.
pub fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_context() {
        let (key, _) = MasterKey::generate();
        let sealed = key.seal(b"app-1/s_1", b"secret bytes here");
        assert_eq!(key.open(b"app-1/s_1", &sealed).unwrap().as_slice(), b"secret bytes here");
        assert!(key.open(b"app-2/s_1", &sealed).is_err());
        let (other, _) = MasterKey::generate();
        assert!(other.open(b"app-1/s_1", &sealed).is_err());
        let mut altered = sealed.clone();
        altered[30] ^= 1;
        assert!(key.open(b"app-1/s_1", &altered).is_err());
        assert!(key.open(b"app-1/s_1", &sealed[..10]).is_err());
    }

    #[test]
    fn session_secrets_depend_on_key_id_and_generation() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let a = key.session_secret("id1", 0);
        assert_eq!(a, key.session_secret("id1", 0));
        assert_ne!(a, key.session_secret("id1", 1));
        assert_ne!(a, key.session_secret("id2", 0));
        assert_ne!(a, MasterKey::from_bytes(&[8; 32]).session_secret("id1", 0));
    }

    #[test]
    fn master_key_text_round_trips() {
        let (_, text) = MasterKey::generate();
        assert!(MasterKey::from_base64(&text).is_ok());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(format!("{:?}", MasterKey::from_bytes(&[1; 32])).len() < 20);
    }
}
