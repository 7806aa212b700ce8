//! The legacy SDK's PubNub 3.16 subset (docs/legacy-sdk.md): `/time/0`, the `/subscribe` long-poll, `/publish`
//! and presence `leave`, in front of the same inboxes and fan-out as the WebSocket (`connection`). The keys in
//! the path are the only credential the SDK sends on these calls: each names one session and carries a tag only
//! this server (any node with the master key) makes, and each channel names one user or session the same way.
//!
//! A long-poll registers with the hub like a WebSocket connection for as long as it waits, so a message, a
//! receipt or a revocation on any node ends the wait at once; the cursor lives in the timetoken, so any node
//! serves the next poll. A poll of a session with `calling` also answers the call frames of its channels from the
//! node's mailbox (`super::mailbox`, its position in the timetoken too) and keeps the device callable.

use super::hub::NewConnection;
use crate::domain::legacy::{Cursor, KeyKind, LegacyChannels, Publication};
use crate::domain::{Callbox, Capability, SessionRecord};
use crate::http::{ApiError, AppState};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use callbox_core::Reason;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Inbox entries answered by one poll at most.
const PAGE: u32 = 100;
/// Largest published message (the URL-encoded JSON string of one frame: frames are at most 1500 characters).
const MAX_PUBLISH_BYTES: usize = 16 * 1024;

/// A PubNub answer: JSON, or JSONP when the SDK names a callback; readable from any origin, since it carries
/// nothing the keys in the URL did not already prove.
fn answer(callback: &str, value: &Value) -> Response {
    let (content_type, body) = if callback == "0" {
        ("application/json; charset=utf-8", value.to_string())
    } else {
        ("text/javascript; charset=utf-8", format!("{callback}({value})"))
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `0` (no JSONP) or a JavaScript identifier path of at most 64 characters.
fn check_callback(callback: &str) -> Result<(), ApiError> {
    let valid = callback == "0"
        || (!callback.is_empty()
            && callback.len() <= 64
            && !callback.starts_with(|c: char| c.is_ascii_digit())
            && callback.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'.')));
    if valid {
        Ok(())
    } else {
        Err(ApiError::with_message(Reason::MalformedRequest, "the callback must be 0 or a JavaScript identifier"))
    }
}

/// A PubNub time token: 10^-7 s since 1970, 17 digits.
fn time_token(callbox: &Callbox) -> String {
    let now = callbox.now();
    (now.timestamp_micros().max(0) * 10).to_string()
}

/// `GET /time/0`: the server's time token (the SDK's connectivity check).
pub async fn time(State(state): State<AppState>) -> Response {
    answer("0", &json!([time_token(&state.callbox)]))
}

/// `GET|POST /v2/presence/sub_key/{subscribe_key}/channel/{channels}/leave`: the SDK unsubscribes (from its
/// signal channel after a call; from its transport and broadcast channels when it stops, or from the page's
/// unload by `sendBeacon`). Nothing is kept per subscriber between polls but a device's presence for incoming
/// calls, which ends when it leaves its transport or broadcast channel.
pub async fn leave(
    State(state): State<AppState>,
    Path((subscribe_key, channels)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let session = state.callbox.legacy_session(&subscribe_key, KeyKind::Subscribe).await?;
    let owned = state.callbox.legacy_channels(&session);
    if channels.split(',').any(|channel| channel == owned.transport || channel == owned.broadcast) {
        state.callbox.legacy_gone(&session);
    }
    Ok(answer("0", &json!({ "status": 200, "action": "leave", "message": "OK", "service": "Presence" })))
}

/// `GET /publish/{publish_key}/{subscribe_key}/{signature}/{channel}/{callback}/{message}`: one MXP frame, as the
/// URL-encoded JSON string `message`, on `channel`. Answered `[1,"Sent","<time token>"]` once what it completes
/// is durable.
pub async fn publish(
    State(state): State<AppState>,
    Path((publish_key, subscribe_key, _signature, channel, callback, message)): Path<(
        String,
        String,
        String,
        String,
        String,
        String,
    )>,
) -> Result<Response, ApiError> {
    check_callback(&callback)?;
    if message.len() > MAX_PUBLISH_BYTES {
        return Err(ApiError::with_message(
            Reason::PayloadTooLarge,
            format!("a published frame is at most {MAX_PUBLISH_BYTES} bytes"),
        ));
    }
    let callbox = &state.callbox;
    let session = callbox.legacy_publisher(&publish_key, &subscribe_key).await?;
    let frame: String = serde_json::from_str(&message).map_err(|_| {
        ApiError::with_message(Reason::MalformedRequest, "the message must be a JSON string (one MXP frame)")
    })?;
    let hub = callbox.realtime();
    match callbox.legacy_publish(&session, &channel, &frame).await? {
        Publication::Nothing => {}
        // The sender's WebSocket devices see what was sent, as for a message sent over the WebSocket.
        Publication::Message(accepted) => hub.fan_out_message(&accepted.message, &accepted.seqs, None),
        Publication::Receipt(sender, entry) => hub.fan_out_receipt(&session.app_key, &sender, &entry, callbox.now()),
    }
    Ok(answer(&callback, &json!([1, "Sent", time_token(callbox)])))
}

/// `GET /subscribe/{subscribe_key}/{channels}/{callback}/{timetoken}`: the long-poll. Timetoken `0` is answered
/// at once (with the cursor of the replay); otherwise the poll answers the inbox entries after its cursor, and for
/// a session with `calling` the call frames of its channels after its mailbox position, waiting up to
/// `realtime.legacy_poll_seconds` for one: `[[frames...],"<next timetoken>","<channel of each>"]`, or
/// `[[],"<timetoken>"]` when nothing came. A revocation ends the wait with its §7 error.
pub async fn subscribe(
    State(state): State<AppState>,
    Path((subscribe_key, channels, callback, timetoken)): Path<(String, String, String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    check_callback(&callback)?;
    let (parts, _body) = request.into_parts();
    let meta = crate::http::call::request_meta(&parts, &state);
    let callbox = &state.callbox;
    let session = callbox.legacy_session(&subscribe_key, KeyKind::Subscribe).await?;
    let owned = callbox.legacy_channels(&session);
    let requested: Vec<&str> = channels.split(',').filter(|channel| !channel.is_empty()).collect();
    if requested.is_empty() {
        return Err(ApiError::with_message(Reason::MalformedRequest, "name at least one channel"));
    }
    if !requested.iter().all(|channel| owned.owns(channel)) {
        return Err(ApiError::with_message(Reason::NotFound, "a channel is not one of this session's channels"));
    }
    let (inbox_token, position) = split_timetoken(&timetoken)?;
    let cursor = Cursor::parse(inbox_token)?;
    let _permit = callbox.legacy().poll_permit(&session.id, meta.ip)?;
    let receives =
        requested.contains(&owned.transport.as_str()) && session.capabilities.contains(&Capability::Messaging);
    // A device with `calling` is online (callable) while it polls, and reads the call frames of its channels.
    let online = callbox.legacy_online(&session);
    let calls = online.as_ref().map(|_| {
        let mailbox = callbox.realtime().mailbox();
        Calls {
            position: position.unwrap_or_else(|| mailbox.start_position(&session.id, &requested)),
            channels: requested.clone(),
        }
    });
    let poll = Poll { callbox, session: &session, owned: &owned, receives, calls, peer: meta.ip.to_string() };
    let value = poll.run(cursor).await?;
    Ok(answer(&callback, &value))
}

/// A timetoken: the inbox cursor's 17 digits (or `0`), followed for a session with `calling` by 16 digits of
/// its mailbox position (`realtime::mailbox`).
fn split_timetoken(timetoken: &str) -> Result<(&str, Option<u64>), ApiError> {
    if timetoken.len() == 17 + 16 && timetoken.bytes().all(|b| b.is_ascii_digit()) {
        let position = timetoken[17..].parse::<u64>().map_err(|_| {
            ApiError::with_message(Reason::MalformedRequest, "the timetoken must be 0, 17 or 33 digits")
        })?;
        return Ok((&timetoken[..17], Some(position)));
    }
    Ok((timetoken, None))
}

/// Where a poll of a session with `calling` is in the mailbox.
struct Calls<'a> {
    position: u64,
    channels: Vec<&'a str>,
}

struct Poll<'a> {
    callbox: &'a Arc<Callbox>,
    session: &'a SessionRecord,
    owned: &'a LegacyChannels,
    receives: bool,
    calls: Option<Calls<'a>>,
    peer: String,
}

impl Poll<'_> {
    fn token(&self, cursor: Cursor, position: Option<u64>) -> String {
        match (&self.calls, position) {
            (Some(calls), next) => format!("{}{:016}", cursor.token(), next.unwrap_or(calls.position)),
            (None, _) => cursor.token(),
        }
    }

    async fn run(&self, cursor: Cursor) -> Result<Value, ApiError> {
        let (callbox, session) = (self.callbox, self.session);
        let (app_key, user_id) = (&session.app_key, &session.user_id);
        let after = match cursor {
            Cursor::Start => {
                // The replay ends where the inbox ends now; what commits later arrives through the live part.
                let until = if self.receives { callbox.inbox_last_seq(app_key, user_id).await? } else { 0 };
                return Ok(json!([[], self.token(Cursor::started(until), None)]));
            }
            Cursor::Replay { after, until } if self.receives => {
                let page = callbox.read_inbox(app_key, user_id, after, PAGE, true).await?;
                let more = page.len() >= PAGE as usize;
                let page: Vec<_> = page.into_iter().filter(|entry| entry.seq <= until).collect();
                if let Some(end) = page.last().map(|entry| entry.seq) {
                    return self.render(&page, Cursor::replayed(until, end, more)).await;
                }
                until
            }
            Cursor::Replay { until, .. } => until,
            Cursor::Live(after) => after,
        };
        // Registered before the inbox is read: whatever commits from now on also wakes this poll.
        let mut registered = callbox.realtime().register(NewConnection {
            session_id: session.id.clone(),
            app_key: app_key.clone(),
            user_id: user_id.clone(),
            session_created_at: session.created_at,
            messaging: self.receives,
            calling: false,
            peer: self.peer.clone(),
        });
        let mailbox = callbox.realtime().mailbox();
        let mut mail_changes = mailbox.changes();
        let config = callbox.realtime().config();
        let until_expiry = (session.expires_at - callbox.now()).to_std().unwrap_or(Duration::ZERO);
        let deadline = Instant::now() + Duration::from_secs(config.legacy_poll_seconds.max(1)).min(until_expiry);
        // The inbox is read again only when the hub says something arrived (a call frame on another channel of the
        // node wakes every poll of a session with `calling`; that must not cost a store read each).
        let mut inbox_changed = true;
        loop {
            if let Some(closing) = registered.close.borrow().clone() {
                // The session ended (revoked, expired, its user disabled, its app deleted): its device is no
                // longer callable, at once rather than after the grace period of a poll that ended.
                callbox.legacy_gone(session);
                return Err(ApiError::with_message(closing.reason, closing.message));
            }
            if let Some(calls) = &self.calls {
                mail_changes.borrow_and_update();
                let (frames, next) = mailbox.read(&calls.channels, calls.position);
                if !frames.is_empty() {
                    mailbox.note_answered(&session.id, &calls.channels, next);
                    let channels: Vec<&str> = frames.iter().map(|(channel, _)| channel.as_str()).collect();
                    let payloads: Vec<Value> =
                        frames.iter().map(|(_, frame)| Value::String(frame.to_string())).collect();
                    return Ok(json!([payloads, self.token(Cursor::Live(after), Some(next)), channels.join(",")]));
                }
            }
            if self.receives && inbox_changed {
                inbox_changed = false;
                let entries = callbox.read_inbox(app_key, user_id, after, PAGE, false).await?;
                if let Some(end) = entries.last().map(|entry| entry.seq) {
                    return self.render(&entries, Cursor::Live(end)).await;
                }
            }
            tokio::select! {
                delivered = registered.outbound.recv() => {
                    if delivered.is_none() {
                        return Err(ApiError::new(Reason::ServiceUnavailable));
                    }
                    // One read answers everything that arrived meanwhile.
                    while registered.outbound.try_recv().is_ok() {}
                    inbox_changed = true;
                }
                _ = registered.close.changed() => {}
                changed = mail_changes.changed(), if self.calls.is_some() => {
                    if changed.is_err() {
                        return Err(ApiError::new(Reason::ServiceUnavailable));
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Ok(json!([[], self.token(Cursor::Live(after), None)]));
                }
            }
        }
    }

    async fn render(&self, entries: &[crate::domain::InboxEntry], next: Cursor) -> Result<Value, ApiError> {
        let mut payloads = Vec::new();
        for entry in entries {
            for frame in self.callbox.legacy_frames(self.session, entry).await? {
                payloads.push(Value::String(frame));
            }
        }
        let channels = vec![self.owned.transport.as_str(); payloads.len()].join(",");
        Ok(json!([payloads, self.token(next, None), channels]))
    }
}
