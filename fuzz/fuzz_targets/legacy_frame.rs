//! The legacy SDK's MXP frames and their encryption (docs/legacy-sdk.md). Input: one frame's text as a client
//! would publish it; it is also used as the ciphertext of `decrypt`/`decrypt_json`.
//!
//! Invariants: nothing panics; a frame that parses has `index < count <= MAX_FRAME_COUNT`, bounded ids and a
//! base64 chunk, and parses the same way again; `split_frames` of a parsed frame's chunk (when it fits in 64
//! frames) gives frames that parse back to the same ids and, joined, the same chunk; `encrypt` then `decrypt` gives the input back.

#![no_main]

use callbox_core::legacy as mxp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = [7u8; 32];
    let text = String::from_utf8_lossy(data);
    if let Ok(part) = mxp::parse_frame(&text) {
        assert!(part.index < part.count && part.count <= mxp::MAX_FRAME_COUNT, "{part:?}");
        assert!(part.session_id.len() <= mxp::MAX_ID_LEN);
        assert!(part.transport_id.is_none_or(|id| id.len() <= mxp::MAX_ID_LEN));
        assert_eq!(mxp::parse_frame(&text).ok(), Some(part.clone()), "not deterministic");
        let frames = mxp::split_frames(part.session_id, part.transport_id, part.chunk, 42);
        // A chunk longer than 64 frames hold is a message no client may send; only what fits must round-trip.
        let frames = if frames.len() <= mxp::MAX_FRAME_COUNT { frames } else { Vec::new() };
        let mut joined = String::new();
        for frame in &frames {
            let again = mxp::parse_frame(frame).unwrap_or_else(|e| panic!("split_frames made a bad frame: {e}"));
            assert_eq!(again.session_id, part.session_id);
            assert_eq!(again.transport_id, part.transport_id);
            assert_eq!(again.count, frames.len());
            joined.push_str(again.chunk);
        }
        if !frames.is_empty() {
            assert_eq!(joined, part.chunk);
        }
        let _ = mxp::decrypt_json(&key, part.chunk);
    }
    let _ = mxp::decrypt(&key, &text);
    let _ = mxp::decrypt_json(&key, &text);
    let encrypted = mxp::encrypt(&key, &[3u8; 16], data);
    assert_eq!(mxp::decrypt(&key, &encrypted).ok().as_deref(), Some(data), "encrypt/decrypt round trip");
});
