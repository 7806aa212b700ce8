//! The legacy SDK's MXP frames (docs/legacy.md section 3): how `sinch-rtc` 1.4.12 cuts an encrypted message into
//! PubNub messages, and its AES-256-CBC encryption. Pure: the IV is a parameter.
//!
//! A frame is one space-separated line:
//! `10 <mxpSessionId> <multiId|-> <index> <count> <base64 chunk>[ <transportId>]`. The chunks of one message,
//! concatenated, are base64 of `IV (16 bytes) || AES-256-CBC(PKCS#7, JSON)`. Frames with a transport id are
//! messaging frames encrypted with that transport's key; frames without one are call frames.

use crate::Reason;
use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// The frame format version the SDK writes and reads.
pub const FRAME_VERSION: &str = "10";

/// The most characters the SDK puts in one frame (its `splitFrames`), so that a PubNub message stays small.
pub const FRAME_BUDGET: usize = 1500;

/// The most frames one message may be cut into here: 64 frames of ~1.4 KB hold far more than the largest text a
/// session may send, and a count bounds what a receiver buffers for an incomplete message.
pub const MAX_FRAME_COUNT: usize = 64;

/// Longest `mxpSessionId` or transport id accepted (the SDK's are UUIDs and server-made ids).
pub const MAX_ID_LEN: usize = 128;

/// Why a frame or its payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not `10 <id> <multi> <index> <count> <chunk>[ <transport>]`, or a field out of range.
    #[error("malformed MXP frame: {0}")]
    Malformed(&'static str),
    /// The key is not base64 of 32 bytes.
    #[error("the key is not base64 of 32 bytes")]
    BadKey,
    /// Not base64, shorter than an IV and a block, or the padding does not check out: wrong key or damaged.
    #[error("the frame does not decrypt with this key")]
    Undecryptable,
    /// Decrypted, but no JSON object inside.
    #[error("the decrypted frame is not a JSON object")]
    NotJson,
}

impl FrameError {
    /// The §7 reason a client is answered with.
    pub fn reason(&self) -> Reason {
        Reason::MalformedRequest
    }
}

/// One parsed frame, borrowing the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramePart<'a> {
    /// The message (messaging) or call (calling) id.
    pub session_id: &'a str,
    /// The id shared by the frames of one multi-frame message; `None` for a single frame (`-`).
    pub multi_id: Option<&'a str>,
    /// This frame's place, from 0.
    pub index: usize,
    /// How many frames the message has (1 to [`MAX_FRAME_COUNT`]).
    pub count: usize,
    /// This frame's slice of the base64 ciphertext.
    pub chunk: &'a str,
    /// The transport id of a messaging frame (selects the key); `None` for call frames.
    pub transport_id: Option<&'a str>,
}

fn is_token(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_ID_LEN && text.bytes().all(|b| b.is_ascii_graphic())
}

/// Parses one frame. Surrounding whitespace is ignored, as the SDK does.
pub fn parse_frame(text: &str) -> Result<FramePart<'_>, FrameError> {
    let fields: Vec<&str> = text.trim().split(' ').collect();
    if fields.len() != 6 && fields.len() != 7 {
        return Err(FrameError::Malformed("expected 6 or 7 space-separated fields"));
    }
    if fields[0] != FRAME_VERSION {
        return Err(FrameError::Malformed("unknown frame version"));
    }
    if !is_token(fields[1]) {
        return Err(FrameError::Malformed("bad session id"));
    }
    let multi_id = match fields[2] {
        "-" => None,
        id if is_token(id) => Some(id),
        _ => return Err(FrameError::Malformed("bad multi-frame id")),
    };
    let index: usize = fields[3].parse().map_err(|_| FrameError::Malformed("bad frame index"))?;
    let count: usize = fields[4].parse().map_err(|_| FrameError::Malformed("bad frame count"))?;
    if count == 0 || count > MAX_FRAME_COUNT || index >= count {
        return Err(FrameError::Malformed("frame index or count out of range"));
    }
    if count > 1 && multi_id.is_none() {
        return Err(FrameError::Malformed("a multi-frame message needs a multi-frame id"));
    }
    let chunk = fields[5];
    if chunk.is_empty() || !chunk.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) {
        return Err(FrameError::Malformed("the chunk is not base64"));
    }
    let transport_id = match fields.get(6) {
        None => None,
        Some(id) if is_token(id) => Some(*id),
        Some(_) => return Err(FrameError::Malformed("bad transport id")),
    };
    Ok(FramePart { session_id: fields[1], multi_id, index, count, chunk, transport_id })
}

/// Cuts `encrypted` (base64) into frames exactly as the SDK's `splitFrames` does: chunks of `1500 - len(session)
/// - len(transport) - 15` characters, `multi_id` shared by the frames when there is more than one.
pub fn split_frames(session_id: &str, transport_id: Option<&str>, encrypted: &str, multi_id: u32) -> Vec<String> {
    let overhead = session_id.len() + transport_id.map_or(0, str::len) + 15;
    // Ids are bounded (MAX_ID_LEN), so the budget stays far above this floor; it only guards the arithmetic.
    let budget = FRAME_BUDGET.saturating_sub(overhead).max(64);
    let chunks: Vec<&str> = if encrypted.is_empty() {
        vec![""]
    } else {
        // base64 is ASCII, so byte offsets are character offsets.
        encrypted.as_bytes().chunks(budget).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect()
    };
    let count = chunks.len();
    let multi = if count > 1 { multi_id.to_string() } else { "-".to_owned() };
    chunks
        .iter()
        .enumerate()
        .map(|(index, chunk)| {
            let mut frame = format!("{FRAME_VERSION} {session_id} {multi} {index} {count} {chunk}");
            if let Some(transport) = transport_id {
                frame.push(' ');
                frame.push_str(transport);
            }
            frame
        })
        .collect()
}

/// A 32-byte AES key from its base64 (the `key` fields of the legacy API).
pub fn parse_key(base64: &str) -> Result<[u8; 32], FrameError> {
    let bytes = STANDARD.decode(base64).map_err(|_| FrameError::BadKey)?;
    bytes.try_into().map_err(|_| FrameError::BadKey)
}

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// base64 of `iv || AES-256-CBC-PKCS7(key, iv, plaintext)`, the SDK's `MXPencrypt`.
pub fn encrypt(key: &[u8; 32], iv: &[u8; 16], plaintext: &[u8]) -> String {
    let ciphertext = Encryptor::new(key.into(), iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    let mut joined = Vec::with_capacity(16 + ciphertext.len());
    joined.extend_from_slice(iv);
    joined.extend_from_slice(&ciphertext);
    STANDARD.encode(joined)
}

/// The plaintext of [`encrypt`]'s output.
pub fn decrypt(key: &[u8; 32], encrypted: &str) -> Result<Vec<u8>, FrameError> {
    let bytes = STANDARD.decode(encrypted).map_err(|_| FrameError::Undecryptable)?;
    if bytes.len() < 32 || bytes.len() % 16 != 0 {
        return Err(FrameError::Undecryptable);
    }
    let (iv, ciphertext) = bytes.split_at(16);
    let iv: &[u8; 16] = iv.try_into().map_err(|_| FrameError::Undecryptable)?;
    Decryptor::new(key.into(), iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| FrameError::Undecryptable)
}

/// Decrypts and reads the JSON object inside, as the SDK's `MXPdecrypt` does (from the first `{` to the last `}`).
pub fn decrypt_json(key: &[u8; 32], encrypted: &str) -> Result<serde_json::Map<String, serde_json::Value>, FrameError> {
    let plaintext = decrypt(key, encrypted)?;
    let text = std::str::from_utf8(&plaintext).map_err(|_| FrameError::NotJson)?;
    let (Some(start), Some(end)) = (text.find('{'), text.rfind('}')) else { return Err(FrameError::NotJson) };
    if end < start {
        return Err(FrameError::NotJson);
    }
    match serde_json::from_str(&text[start..=end]) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(FrameError::NotJson),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    /// Made with Node's `crypto.createCipheriv("aes-256-cbc", key 00..1f, iv a5 x16)`: the same cipher and padding
    /// as the SDK's CryptoJS call.
    const NODE_VECTOR: &str =
        "paWlpaWlpaWlpaWlpaWlpf8tKrZROfuAlqP25/70TVIHFaNOeVQGF5oWwGMcJVjttj6yZooqNwu2s7YMb6QvzzrUYDWS206aXTG1sA3xpvY=";
    const NODE_PLAINTEXT: &str = r#"{"md":1,"bt":"msg","bv":10,"bd":"{\"t\":\"hi\"}","fu":"alice"}"#;

    #[test]
    fn encrypts_like_node_and_decrypts_it() {
        assert_eq!(encrypt(&key(), &[0xa5; 16], NODE_PLAINTEXT.as_bytes()), NODE_VECTOR);
        assert_eq!(decrypt(&key(), NODE_VECTOR).unwrap(), NODE_PLAINTEXT.as_bytes());
        let json = decrypt_json(&key(), NODE_VECTOR).unwrap();
        assert_eq!(json["fu"], "alice");
        assert_eq!(parse_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap(), key());
    }

    #[test]
    fn a_wrong_key_or_damaged_text_is_refused() {
        let mut other = key();
        other[0] ^= 1;
        assert!(matches!(decrypt_json(&other, NODE_VECTOR), Err(FrameError::Undecryptable | FrameError::NotJson)));
        assert_eq!(decrypt(&key(), "not base64!"), Err(FrameError::Undecryptable));
        assert_eq!(decrypt(&key(), "paWlpaWlpaWlpaWlpaWlpQ=="), Err(FrameError::Undecryptable));
        assert_eq!(parse_key("AAEC"), Err(FrameError::BadKey));
        let not_json = encrypt(&key(), &[1; 16], b"no object here");
        assert_eq!(decrypt_json(&key(), &not_json), Err(FrameError::NotJson));
    }

    #[test]
    fn splits_like_the_sdk_and_parses_back() {
        let encrypted = "A".repeat(4000);
        let frames = split_frames("c0ffee", Some("t1"), &encrypted, 77);
        // budget = 1500 - 6 - 2 - 15 = 1477
        assert_eq!(frames.len(), 3);
        let parts: Vec<FramePart> = frames.iter().map(|f| parse_frame(f).unwrap()).collect();
        assert_eq!(parts[0].chunk.len(), 1477);
        assert!(parts.iter().all(|p| p.multi_id == Some("77") && p.count == 3 && p.transport_id == Some("t1")));
        assert_eq!(parts.iter().map(|p| p.chunk).collect::<String>(), encrypted);
        let single = split_frames("call-1", None, "QUJD", 5);
        assert_eq!(single, vec!["10 call-1 - 0 1 QUJD".to_owned()]);
        assert_eq!(parse_frame(&single[0]).unwrap().transport_id, None);
    }

    #[test]
    fn malformed_frames_get_a_precise_error() {
        for bad in [
            "",
            "10 id - 0 1",
            "11 id - 0 1 QUJD",
            "10 id - 1 1 QUJD",
            "10 id - 0 0 QUJD",
            "10 id - 0 65 QUJD",
            "10 id - 0 2 QUJD",
            "10 id - x 1 QUJD",
            "10 id - 0 1 QU*D",
            "10 id - 0 1 QUJD t1 extra",
        ] {
            assert!(matches!(parse_frame(bad), Err(FrameError::Malformed(_))), "{bad:?}");
        }
        assert_eq!(FrameError::NotJson.reason(), Reason::MalformedRequest);
    }
}
