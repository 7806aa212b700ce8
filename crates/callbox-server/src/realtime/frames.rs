//! Server → client frames, rendered once as text (a frame fanned out to many connections is shared, not copied).
//! Every field is described in docs/realtime.md.

use super::RealtimeConfig;
use crate::domain::{Capability, InboxEntry, InboxItem, MessageRecord};
use callbox_core::time::{format_iso_seconds, format_js_iso};
use callbox_core::Reason;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::sync::Arc;

/// A rendered frame.
pub type Frame = Arc<str>;

fn render(value: &Value) -> Frame {
    Arc::from(value.to_string())
}

/// `{"type":"ping"}`.
pub fn ping() -> Frame {
    Arc::from(r#"{"type":"ping"}"#)
}

/// `{"type":"pong"}`.
pub fn pong() -> Frame {
    Arc::from(r#"{"type":"pong"}"#)
}

/// The first frame of every connection.
pub fn challenge(nonce: &str) -> Frame {
    render(&json!({ "type": "challenge", "nonce": nonce, "serverTime": format_js_iso(Utc::now()) }))
}

/// What an authenticated connection is told.
pub fn ready(
    session_id: &str,
    user_id: &str,
    capabilities: &[Capability],
    expires_at: DateTime<Utc>,
    config: &RealtimeConfig,
    last_seq: u64,
) -> Frame {
    render(&json!({
        "type": "ready",
        "sessionId": session_id,
        "userId": user_id,
        "capabilities": capabilities,
        "expiresAt": format_js_iso(expires_at),
        "heartbeatSeconds": config.heartbeat_seconds,
        "lastSeq": last_seq,
        "limits": {
            "maxRecipients": config.max_recipients,
            "maxTextBytes": config.max_text_bytes,
            "maxHeadersBytes": config.max_headers_bytes,
            "maxFrameBytes": config.max_frame_bytes,
            "messagesPerSecond": config.messages_per_second,
            "messageBurst": config.message_burst,
        },
    }))
}

/// A §7 error as a frame; `reference` echoes the client's `ref`.
pub fn error(reference: Option<&str>, reason: Reason, message: &str, retry_after: Option<u64>) -> Frame {
    let mut frame = json!({
        "type": "error",
        "errorCode": reason.error_code(),
        "reason": reason.as_str(),
        "message": message,
        "retryable": reason.retryable(),
        "serverTime": format_iso_seconds(Utc::now()),
    });
    if let Some(reference) = reference {
        frame["ref"] = json!(reference);
    }
    if let Some(seconds) = retry_after {
        frame["retryAfter"] = json!(seconds);
    }
    render(&frame)
}

/// The sender's acknowledgement: the message is durable.
pub fn accepted(reference: Option<&str>, message: &MessageRecord) -> Frame {
    let mut frame = json!({
        "type": "message.accepted",
        "messageId": message.id,
        "timestamp": format_js_iso(message.created_at),
        "recipientIds": message.recipient_ids,
    });
    if let Some(reference) = reference {
        frame["ref"] = json!(reference);
    }
    render(&frame)
}

/// A message; `seq` is the receiving user's sequence number (`None` on the copy to the sender's other devices).
pub fn message(seq: Option<u64>, message: &MessageRecord) -> Frame {
    let headers: Value = serde_json::from_str(&message.headers).unwrap_or_else(|_| json!({}));
    let mut frame = json!({
        "type": "message",
        "messageId": message.id,
        "senderId": message.sender_id,
        "recipientIds": message.recipient_ids,
        "text": message.text,
        "headers": headers,
        "timestamp": format_js_iso(message.created_at),
    });
    if let Some(seq) = seq {
        frame["seq"] = json!(seq);
    }
    render(&frame)
}

/// A receipt: `failed` ones carry a reason and no `seq` (they are not stored).
pub fn receipt(
    seq: Option<u64>,
    message_id: &str,
    recipient_id: &str,
    failed: Option<&str>,
    at: DateTime<Utc>,
) -> Frame {
    let mut frame = json!({
        "type": "message.receipt",
        "messageId": message_id,
        "recipientId": recipient_id,
        "status": if failed.is_some() { "failed" } else { "delivered" },
        "timestamp": format_js_iso(at),
    });
    if let Some(reason) = failed {
        frame["reason"] = json!(reason);
    }
    if let Some(seq) = seq {
        frame["seq"] = json!(seq);
    }
    render(&frame)
}

/// An inbox entry as the frame its owner receives.
pub fn entry(entry: &InboxEntry) -> Frame {
    match &entry.item {
        InboxItem::Message(record) => message(Some(entry.seq), record),
        InboxItem::Receipt { message_id, recipient_id, at } => {
            receipt(Some(entry.seq), message_id, recipient_id, None, *at)
        }
    }
}

// ----- calls (docs/calls.md) ---------------------------------------------------------------------------------

/// To the caller at once: the call exists.
pub fn call_placed(reference: Option<&str>, call_id: &str, callee_id: &str, started_at: DateTime<Utc>) -> Frame {
    let mut frame = json!({
        "type": "call.placed",
        "callId": call_id,
        "calleeId": callee_id,
        "startedAt": format_js_iso(started_at),
    });
    if let Some(reference) = reference {
        frame["ref"] = json!(reference);
    }
    render(&frame)
}

/// To every ringing device of the callee.
pub fn call_incoming(
    call_id: &str,
    caller_id: &str,
    callee_id: &str,
    sdp: &str,
    headers: &str,
    started_at: DateTime<Utc>,
) -> Frame {
    let headers: Value = serde_json::from_str(headers).unwrap_or_else(|_| json!({}));
    render(&json!({
        "type": "call.incoming",
        "callId": call_id,
        "callerId": caller_id,
        "calleeId": callee_id,
        "sdp": sdp,
        "headers": headers,
        "startedAt": format_js_iso(started_at),
    }))
}

/// To the caller: a callee device rings.
pub fn call_progress(call_id: &str) -> Frame {
    render(&json!({ "type": "call.progress", "callId": call_id, "state": "ringing" }))
}

/// To both sides once answered; the caller's copy carries the SDP answer.
pub fn call_answered(call_id: &str, answered_at: DateTime<Utc>, sdp: Option<&str>) -> Frame {
    let mut frame = json!({ "type": "call.answered", "callId": call_id, "answeredAt": format_js_iso(answered_at) });
    if let Some(sdp) = sdp {
        frame["sdp"] = json!(sdp);
    }
    render(&frame)
}

/// A relayed ICE candidate.
pub fn call_candidate(call_id: &str, candidate: &Value) -> Frame {
    render(&json!({ "type": "call.candidate", "callId": call_id, "candidate": candidate }))
}

/// To a connection that rejoined a call.
/// `answer`: to a caller of an answered call, when it was answered and the SDP answer.
pub fn call_rejoined(
    reference: Option<&str>,
    call_id: &str,
    state: &str,
    answer: Option<(DateTime<Utc>, &str)>,
) -> Frame {
    let mut frame = json!({ "type": "call.rejoined", "callId": call_id, "state": state });
    if let Some((at, sdp)) = answer {
        frame["answeredAt"] = json!(format_js_iso(at));
        frame["sdp"] = json!(sdp);
    }
    if let Some(reference) = reference {
        frame["ref"] = json!(reference);
    }
    render(&frame)
}

/// The end of a call, to both sides.
pub fn call_ended(
    call_id: &str,
    cause: &str,
    ended_by: &str,
    started_at: DateTime<Utc>,
    answered_at: Option<DateTime<Utc>>,
    ended_at: DateTime<Utc>,
    detail: Option<&str>,
) -> Frame {
    let duration_ms = answered_at.map_or(0, |at| (ended_at - at).num_milliseconds().max(0));
    let mut frame = json!({
        "type": "call.ended",
        "callId": call_id,
        "cause": cause,
        "endedBy": ended_by,
        "startedAt": format_js_iso(started_at),
        "answeredAt": answered_at.map(format_js_iso),
        "endedAt": format_js_iso(ended_at),
        "durationMs": duration_ms,
    });
    if let Some(detail) = detail {
        frame["detail"] = json!(detail);
    }
    render(&frame)
}
