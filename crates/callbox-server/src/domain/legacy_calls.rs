//! The legacy SDK's app-to-app calls (docs/legacy-sdk.md section 6), over the legacy transport of
//! [`super::legacy`]. Callbox carries the signaling and keeps the call records; media goes between the SDKs.
//!
//! - `POST /v1/calls/data` ([`Callbox::place_legacy_call`]): the server records the call, makes its AES key and
//!   a *virtual* channel, and publishes the INVITE (MXP `md 1`, body type `media`) on the callee's transport
//!   channel, which every device of the callee listens on, encrypted with the callee's instance key. A callee
//!   with no device online with `calling` (or unknown, or without `calling`: the same answer) gets the caller a
//!   server-made failure frame (`md 9`) at once.
//! - The frames the SDKs then exchange (acknowledge, join, joined, hang up, decline, cancel, ICE) are published to
//!   the other side's signal channel (the caller's first ones to the virtual channel, which the server forwards
//!   to the callee's transport channel). [`Callbox::legacy_call_frame`] checks that the publisher takes part in
//!   the call and that the channel is the other side's, reads single frames with the call key to keep the record
//!   (answered, ended and why), and relays the frame through the realtime layer's mailbox.
//! - `PUT /v1/calls/data/id/{callId}` ([`Callbox::legacy_call_report`]): each side's report at the end, which
//!   ends the record if no frame did.
//!
//! Nothing about a call is kept in memory that another node would need: the call (its record and the caller's
//! session) is in the store, its key and channels are derived from the master key, so any node relays any
//! frame. Which devices are online is known per node ([`Presence`]); with many nodes, a callee not online here is
//! given `calls.ringing_wait_milliseconds` to acknowledge from another node before the caller is told.

use super::{Callbox, DomainError, DomainResult};
use crate::realtime::calls::EndCause;
use crate::store::{CallRecord, CallWrite, Capability, LegacyCallRecord, SessionRecord, StoreError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use callbox_core::legacy::{self as frames, FramePart};
use callbox_core::Reason;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The MXP version of call frames.
const CALL_VERSION: u64 = 10;
/// A legacy device counts as online this long after its last long-poll ended (the SDK polls again at once).
const ONLINE_GRACE: Duration = Duration::from_secs(30);
/// Frames of a call are relayed for this long after it was placed at most.
const MAX_CALL_AGE: chrono::Duration = chrono::Duration::hours(4);
/// A call nobody answered or ended is closed this long after the answer timeout (the SDK gives up at 45 s).
const UNANSWERED_SLACK: Duration = Duration::from_secs(15);
/// Calls whose descriptions this node keeps in memory (they never change).
const MAX_CACHED_CALLS: usize = 10_000;

/// The capabilities a legacy device with `calling` announces (docs/legacy-sdk.md section 6).
pub const CALLING_SERVICES: [&str; 3] = ["voip", "p2p", "srtp"];

/// What `POST /v1/calls/data` asks.
#[derive(Debug, Clone)]
pub struct LegacyCallRequest {
    /// The SDK's id for the call (a UUID).
    pub call_id: String,
    /// The call domain in the path: only `data` (app-to-app) is served.
    pub domain: String,
    /// `destination.type`: only `username`.
    pub destination_type: String,
    /// `destination.endpoint`: the callee's user id.
    pub callee_id: String,
    /// The caller's sub-instance (a number the SDK picks per page).
    pub subinstance_id: u64,
    /// The SDP offer, as the JSON text of `{type, sdp}`.
    pub offer: String,
    /// `headers.ph`: the app's custom headers (a string of JSON), passed on to the callee.
    pub custom_headers: Option<String>,
}

/// What `POST /v1/calls/data` answers.
#[derive(Debug, Clone)]
pub struct LegacyPlacedCall {
    /// The virtual channel the caller sends to before any device of the callee acknowledged.
    pub signal_channel: String,
    /// The call's AES-256 key, base64.
    pub encryption_key: String,
    /// The callee's devices online on this node (session ids), which the SDK calls instances.
    pub instances: Vec<String>,
}

/// A user's devices (sessions) with their long-polls held here now, and when the last one ended.
type Devices = HashMap<String, (usize, Instant)>;

/// Legacy devices with `calling` whose long-polls this node holds or held a moment ago, by application and user.
#[derive(Debug, Default)]
pub struct Presence {
    by_user: Mutex<HashMap<(String, String), Devices>>,
    /// When devices gone for longer than [`ONLINE_GRACE`] were last forgotten (a device that stops without
    /// `leave` and is never called would otherwise stay).
    last_sweep: Mutex<Option<Instant>>,
}

/// A device's presence for as long as one of its long-polls is held (see [`Callbox::legacy_online`]).
#[derive(Debug)]
pub struct Online {
    presence: Arc<Presence>,
    key: (String, String),
    session_id: String,
}

impl Drop for Online {
    fn drop(&mut self) {
        let mut by_user = self.presence.by_user.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sessions) = by_user.get_mut(&self.key) {
            if let Some((held, last)) = sessions.get_mut(&self.session_id) {
                *held = held.saturating_sub(1);
                *last = Instant::now();
            }
        }
    }
}

impl Presence {
    /// Forgets devices gone for longer than [`ONLINE_GRACE`], at most once a grace period; whether it did.
    fn sweep(&self, now: Instant) -> bool {
        {
            let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| now.duration_since(at) < ONLINE_GRACE) {
                return false;
            }
            *last = Some(now);
        }
        let mut by_user = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        by_user.retain(|_, sessions| {
            sessions.retain(|_, (held, last)| *held > 0 || now.duration_since(*last) < ONLINE_GRACE);
            !sessions.is_empty()
        });
        true
    }

    /// Users with a device known here (online or gone within the grace period).
    pub fn users(&self) -> usize {
        self.by_user.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The sessions of `user_id` online here, but `except`.
    fn online(&self, app_key: &str, user_id: &str, except: &str) -> Vec<String> {
        let now = Instant::now();
        let mut by_user = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        let key = (app_key.to_owned(), user_id.to_owned());
        let Some(sessions) = by_user.get_mut(&key) else { return Vec::new() };
        sessions.retain(|_, (held, last)| *held > 0 || now.duration_since(*last) < ONLINE_GRACE);
        let mut online: Vec<String> = sessions.keys().filter(|id| id.as_str() != except).cloned().collect();
        if sessions.is_empty() {
            by_user.remove(&key);
        }
        online.sort();
        online
    }
}

/// This node's share of the legacy call state: presence, the attempt limiter, descriptions of calls read lately.
#[derive(Debug)]
pub struct LegacyCalls {
    presence: Arc<Presence>,
    attempts: DefaultKeyedRateLimiter<String>,
    known: Mutex<HashMap<(String, String), Arc<LegacyCallRecord>>>,
}

impl LegacyCalls {
    /// The state of a node with the `[calls]` limits given.
    pub fn new(config: &crate::realtime::CallsConfig) -> Self {
        let per_minute = NonZeroU32::new(config.attempts_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.attempt_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            presence: Arc::default(),
            attempts: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            known: Mutex::default(),
        }
    }
}

/// Who sent a call frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Caller,
    Callee,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Caller => "caller",
            Side::Callee => "callee",
        }
    }
}

/// The end cause of the SDK's `CallEndCause` number in a call report.
fn cause_of_report(result: u64) -> EndCause {
    match result {
        1 => EndCause::Timeout,
        2 => EndCause::Denied,
        3 => EndCause::NoAnswer,
        5 => EndCause::HungUp,
        6 => EndCause::Canceled,
        7 => EndCause::OtherDeviceAnswered,
        _ => EndCause::Failure,
    }
}

fn malformed(message: &'static str) -> DomainError {
    DomainError::with_message(Reason::MalformedRequest, message)
}

fn no_such_call() -> DomainError {
    DomainError::with_message(Reason::NotFound, "no such call")
}

fn frame_error(error: frames::FrameError) -> DomainError {
    DomainError::with_message(error.reason(), error.to_string())
}

impl Callbox {
    /// The key of a legacy user's server-made call frames (the INVITE): the `rtcProfile.key` of every session of
    /// the user, so that one INVITE on the user's transport channel rings every device.
    pub fn legacy_instance_key(&self, app_key: &str, user_id: &str) -> String {
        STANDARD.encode(self.legacy_secret(&["instance-key", app_key, user_id]).expose_bytes())
    }

    fn call_key(&self, record_id: &str) -> [u8; 32] {
        let secret = self.legacy_secret(&["call-key", record_id]);
        let mut key = [0u8; 32];
        key.copy_from_slice(&secret.expose_bytes()[..32]);
        key
    }

    fn virtual_channel(&self, record_id: &str) -> String {
        format!("v-{}", self.legacy_tag(&["virtual-channel", record_id]))
    }

    /// Marks `session`'s device online (for incoming calls) while the answer lives; `None` without `calling`.
    pub fn legacy_online(&self, session: &SessionRecord) -> Option<Online> {
        if !session.capabilities.contains(&Capability::Calling) {
            return None;
        }
        let presence = &self.legacy.calls.presence;
        if presence.sweep(Instant::now()) {
            // The attempt limiter's memory of sessions that stopped calling goes at the same pace.
            self.legacy.calls.attempts.retain_recent();
        }
        let key = (session.app_key.clone(), session.user_id.clone());
        let mut by_user = presence.by_user.lock().unwrap_or_else(|p| p.into_inner());
        let entry = by_user.entry(key.clone()).or_default().entry(session.id.clone()).or_insert((0, Instant::now()));
        entry.0 += 1;
        entry.1 = Instant::now();
        Some(Online { presence: Arc::clone(presence), key, session_id: session.id.clone() })
    }

    /// `session`'s device said goodbye (PubNub `leave` of its transport or broadcast channel, which the SDK sends
    /// when it stops): it is offline at once, not after [`ONLINE_GRACE`], so a call to it fails at once instead
    /// of ringing nowhere. A long-poll it still holds keeps no presence.
    pub fn legacy_gone(&self, session: &SessionRecord) {
        let presence = &self.legacy.calls.presence;
        let mut by_user = presence.by_user.lock().unwrap_or_else(|p| p.into_inner());
        let key = (session.app_key.clone(), session.user_id.clone());
        if let Some(sessions) = by_user.get_mut(&key) {
            sessions.remove(&session.id);
            if sessions.is_empty() {
                by_user.remove(&key);
            }
        }
    }

    /// `POST /v1/calls/{domain}`: `session` calls a user of its application. Needs `calling`; only app-to-app
    /// calls (`data`, `username`); at most `calls.attempts_per_minute` per session; an SDP offer of at most
    /// `calls.max_sdp_bytes`; a call id the application has not seen yet.
    pub async fn place_legacy_call(
        &self,
        session: &SessionRecord,
        request: LegacyCallRequest,
    ) -> DomainResult<LegacyPlacedCall> {
        if !session.capabilities.contains(&Capability::Calling) {
            return Err(DomainError::new(Reason::CapabilityNotGranted));
        }
        if request.domain != "data" || request.destination_type != "username" {
            return Err(malformed(
                "only app-to-app calls are served (domain data, destination type username): no PSTN, SIP or conference",
            ));
        }
        let call_id = &request.call_id;
        if call_id.is_empty() || call_id.len() > frames::MAX_ID_LEN || !call_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(malformed("callId must be 1-128 printable characters without spaces"));
        }
        if !callbox_core::is_valid_user_id(&request.callee_id) {
            return Err(malformed("destination.endpoint must be a user id: 1-255 bytes without control characters"));
        }
        let calls_config = &self.config().calls;
        if request.offer.len() > calls_config.max_sdp_bytes {
            return Err(DomainError::with_message(
                Reason::PayloadTooLarge,
                format!(
                    "the SDP offer is {} bytes; at most {} are accepted",
                    request.offer.len(),
                    calls_config.max_sdp_bytes
                ),
            ));
        }
        let calls = &self.legacy.calls;
        if let Err(not_until) = calls.attempts.check_key(&session.id) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
            return Err(DomainError {
                retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                ..DomainError::with_message(
                    Reason::RateLimited,
                    format!("at most {} calls a minute per session", calls_config.attempts_per_minute),
                )
            });
        }
        let started_at = callbox_core::time::to_millisecond(self.now());
        let record = CallRecord {
            id: uuid::Uuid::now_v7().to_string(),
            app_key: session.app_key.clone(),
            caller_id: session.user_id.clone(),
            callee_id: request.callee_id.clone(),
            legacy_call_id: Some(call_id.clone()),
            started_at,
            answered_at: None,
            ended_at: None,
            end_cause: None,
            ended_by: None,
        };
        let call = LegacyCallRecord {
            call_id: call_id.clone(),
            record,
            caller_session_id: session.id.clone(),
            answered_session_id: None,
        };
        if !self.store.put_legacy_call(&call).await? {
            return Err(malformed("this callId was used before: every call needs a fresh one"));
        }
        let key = self.call_key(&call.record.id);
        let caller_signal = self.legacy_signal_channel(&session.id);
        let instances = calls.presence.online(&session.app_key, &request.callee_id, &session.id);
        let reachable = !instances.is_empty() || self.realtime.clustered();
        // Only a callee with `calling` is ever online (the presence counts no other), so an unknown callee, one of
        // another application and one without `calling` are all told apart from nothing.
        if reachable {
            let invite = json!({
                "md": 1, "bt": "media", "bv": CALL_VERSION, "bd": "",
                "nvps": self.invite_values(&request, &key),
                "fu": session.user_id, "fi": format!("{}:{}", session.id, request.subinstance_id), "fd": session.id,
                "fs": caller_signal, "fc": "",
            });
            let instance_key = frames::parse_key(&self.legacy_instance_key(&session.app_key, &request.callee_id))
                .map_err(frame_error)?;
            let transport = self.legacy_transport_channel(&session.app_key, &request.callee_id);
            self.realtime.post_legacy_frames(&transport, seal(&instance_key, call_id, &invite));
        }
        metrics::counter!("callbox_legacy_calls_placed_total").increment(1);
        let signal_channel = self.virtual_channel(&call.record.id);
        if instances.is_empty() {
            let callbox = self.clone();
            let call = call.clone();
            let wait =
                if reachable { Duration::from_millis(calls_config.ringing_wait_milliseconds) } else { Duration::ZERO };
            tokio::spawn(async move { callbox.fail_unless_acknowledged(call, wait).await });
        }
        let callbox = self.clone();
        let timeout = Duration::from_secs(calls_config.answer_timeout_seconds.max(1)) + UNANSWERED_SLACK;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            callbox.end_unanswered(&call).await;
        });
        Ok(LegacyPlacedCall { signal_channel, encryption_key: STANDARD.encode(key), instances })
    }

    fn invite_values(&self, request: &LegacyCallRequest, key: &[u8; 32]) -> Value {
        let mut values = json!({ "sdp": request.offer, "key": STANDARD.encode(key) });
        if let Some(headers) = &request.custom_headers {
            values["ph"] = json!(headers);
        }
        values
    }

    /// With nobody online here: waits `wait` for a device elsewhere to acknowledge the call (a frame of it on
    /// the caller's signal channel), then, if none did, tells the caller with a failure frame and ends the record
    /// as `no_answer`.
    async fn fail_unless_acknowledged(&self, call: LegacyCallRecord, wait: Duration) {
        let caller_signal = self.legacy_signal_channel(&call.caller_session_id);
        let mailbox = self.realtime.mailbox();
        let since = mailbox.head();
        let mut changes = mailbox.changes();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let (seen, _) = mailbox.read(&[caller_signal.as_str()], since);
            let acknowledged = seen
                .iter()
                .any(|(_, frame)| frames::parse_frame(frame).is_ok_and(|part| part.session_id == call.call_id));
            if acknowledged {
                return;
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let key = self.call_key(&call.record.id);
        let failure = json!({
            "md": 9, "bt": "error/json", "bv": CALL_VERSION,
            "bd": json!({ "code": 480, "reason": "Temporarily Unavailable: the callee has no device online with calling" }).to_string(),
            "fu": call.record.callee_id, "fi": "", "fd": "", "fs": "", "fc": "",
        });
        // This may reach the caller before the answer to its POST, i.e. before its SDK knows the call key: the SDK
        // keeps frames it cannot decrypt by call id and reads them again once the answer gives it the key.
        self.realtime.post_legacy_frames(&caller_signal, seal(&key, &call.call_id, &failure));
        self.end_legacy_call(&call.record, EndCause::NoAnswer, "server").await;
    }

    async fn end_unanswered(&self, call: &LegacyCallRecord) {
        match self.store.get_legacy_call(&call.record.app_key, &call.call_id).await {
            Ok(now) if now.record.answered_at.is_none() && now.record.ended_at.is_none() => {
                self.end_legacy_call(&now.record, EndCause::NoAnswer, "server").await;
            }
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(error) => tracing::warn!(%error, "cannot read a legacy call to end it"),
        }
    }

    /// Ends a call record (if it has not ended yet) and counts it.
    async fn end_legacy_call(&self, record: &CallRecord, cause: EndCause, by: &'static str) {
        let cause = cause.as_str();
        let write = CallWrite::Ended {
            id: record.id.clone(),
            at: callbox_core::time::to_millisecond(self.now()),
            cause: cause.to_owned(),
            by: by.to_owned(),
        };
        match self.store.write_calls(&[write]).await {
            Ok(()) => metrics::counter!("callbox_calls_total", "cause" => cause).increment(1),
            Err(error) => tracing::warn!(%error, "cannot write a legacy call record"),
        }
    }

    /// The legacy call `call_id` of `session`'s application, with the side `session` is on; a call the session
    /// takes no part in, or of another application, is unknown.
    async fn legacy_call_of(
        &self,
        session: &SessionRecord,
        call_id: &str,
        fresh: bool,
    ) -> DomainResult<(Arc<LegacyCallRecord>, Side)> {
        let cache_key = (session.app_key.clone(), call_id.to_owned());
        let cached = if fresh {
            None
        } else {
            self.legacy.calls.known.lock().unwrap_or_else(|p| p.into_inner()).get(&cache_key).cloned()
        };
        let call = match cached {
            Some(call) => call,
            None => {
                let call = match self.store.get_legacy_call(&session.app_key, call_id).await {
                    Ok(call) => Arc::new(call),
                    Err(StoreError::NotFound) => return Err(no_such_call()),
                    Err(other) => return Err(other.into()),
                };
                let mut known = self.legacy.calls.known.lock().unwrap_or_else(|p| p.into_inner());
                if known.len() >= MAX_CACHED_CALLS {
                    known.clear();
                }
                known.insert(cache_key, Arc::clone(&call));
                call
            }
        };
        if self.now() - call.record.started_at > MAX_CALL_AGE {
            return Err(no_such_call());
        }
        let side = if call.caller_session_id == session.id {
            Side::Caller
        } else if call.record.callee_id == session.user_id {
            Side::Callee
        } else {
            return Err(no_such_call());
        };
        Ok((call, side))
    }

    /// A call frame (one without a transport id) that `session` published on `channel`: relayed to the other
    /// side if the session takes part in the call and the channel is the other side's. Refusals: no `calling`, an
    /// unknown call or one the session takes no part in (`not_found`, the same answer), a channel that is not the
    /// other side's (`not_found`), a frame that does not decrypt with the call's key, a frame only the server
    /// makes (INVITE, failure), too many frames.
    pub async fn legacy_call_frame(
        &self,
        session: &SessionRecord,
        channel: &str,
        part: &FramePart<'_>,
        text: &str,
    ) -> DomainResult<()> {
        if !session.capabilities.contains(&Capability::Calling) {
            return Err(DomainError::new(Reason::CapabilityNotGranted));
        }
        super::legacy::LegacyNode::check_rate(&self.legacy.frames, &session.id)?;
        let (call, side) = self.legacy_call_of(session, part.session_id, false).await?;
        let target = match side {
            Side::Caller if channel == self.virtual_channel(&call.record.id) => {
                // Before a device acknowledged, the caller knows no device: every device of the callee hears it.
                self.legacy_transport_channel(&call.record.app_key, &call.record.callee_id)
            }
            Side::Caller => {
                let owner = self.legacy_signal_channel_owner(channel).ok_or_else(wrong_channel)?;
                let owner = match self.store.get_session(&owner).await {
                    Ok(owner) => owner,
                    Err(StoreError::NotFound) => return Err(wrong_channel()),
                    Err(other) => return Err(other.into()),
                };
                if owner.app_key != call.record.app_key || owner.user_id != call.record.callee_id {
                    return Err(wrong_channel());
                }
                channel.to_owned()
            }
            Side::Callee => {
                if channel != self.legacy_signal_channel(&call.caller_session_id) {
                    return Err(wrong_channel());
                }
                channel.to_owned()
            }
        };
        if part.count == 1 {
            // A single frame is read: it must be of this call, from this user, and not one only the server makes;
            // the ones that end or answer the call update its record. (Frames of several parts are SDP, relayed
            // as they are; the SDK checks them with the same key.)
            let key = self.call_key(&call.record.id);
            let body = frames::decrypt_json(&key, part.chunk).map_err(frame_error)?;
            if body.get("fu").and_then(Value::as_str) != Some(session.user_id.as_str()) {
                return Err(malformed("fu must be the sender's user id"));
            }
            let md = body.get("md").and_then(Value::as_u64).ok_or_else(|| malformed("md must be a number"))?;
            match md {
                1 | 9 => return Err(malformed("INVITE (md 1) and failure (md 9) frames are made by the server")),
                2..=8 | 10 => {}
                _ => return Err(malformed("md must be a call frame type (2-8 or 10)")),
            }
            self.follow_legacy_call(session, &call, side, md).await?;
        }
        self.realtime.post_legacy_frames(&target, vec![text.to_owned()]);
        Ok(())
    }

    /// Keeps the record of `call` in step with a frame of type `md` from `side`. The first callee session to
    /// join answers the call; after that only the caller and that session end it (the caller's SDK sends a deny
    /// or cancel to the callee's other devices, which must not end the call they did not answer).
    async fn follow_legacy_call(
        &self,
        session: &SessionRecord,
        call: &LegacyCallRecord,
        side: Side,
        md: u64,
    ) -> DomainResult<()> {
        if !matches!((side, md), (Side::Callee, 3 | 5 | 6) | (Side::Caller, 5 | 7)) {
            return Ok(());
        }
        if (side, md) == (Side::Callee, 3) {
            let at = callbox_core::time::to_millisecond(self.now());
            match self.store.answer_legacy_call(&call.record.app_key, &call.call_id, &session.id, at).await {
                Ok(_) => {}
                Err(StoreError::NotFound) => return Err(no_such_call()),
                Err(other) => return Err(other.into()),
            }
            return Ok(());
        }
        let (now, _) = self.legacy_call_of(session, &call.call_id, true).await?;
        if now.record.ended_at.is_some() {
            return Ok(());
        }
        if let Some((cause, by)) = legacy_end(&now, session, side, md) {
            self.end_legacy_call(&now.record, cause, by).await;
        }
        Ok(())
    }

    /// `PUT /v1/calls/{domain}/id/{callId}`: a side's report at the end of a call (`result`: the SDK's end cause
    /// number). Ends the record if no frame did, when the reporter is the caller or the callee session that
    /// answered (another device of the callee reports the end of its own ringing, not of the call). A call the
    /// session takes no part in → `not_found`.
    pub async fn legacy_call_report(
        &self,
        session: &SessionRecord,
        call_id: &str,
        result: Option<u64>,
    ) -> DomainResult<()> {
        let (call, side) = self.legacy_call_of(session, call_id, true).await?;
        let answered_here = call.answered_session_id.as_deref() == Some(session.id.as_str());
        if call.record.ended_at.is_none() && (side == Side::Caller || answered_here) {
            let cause = cause_of_report(result.unwrap_or(4));
            let by = if matches!(cause, EndCause::Timeout | EndCause::Failure) { "server" } else { side.as_str() };
            self.end_legacy_call(&call.record, cause, by).await;
        }
        Ok(())
    }
}

/// How a frame of type `md` from `session` (on `side`) ends `call` (as it is now, going on), if it does.
fn legacy_end(
    call: &LegacyCallRecord,
    session: &SessionRecord,
    side: Side,
    md: u64,
) -> Option<(EndCause, &'static str)> {
    let answered = call.record.answered_at.is_some();
    let answering = call.answered_session_id.as_deref() == Some(session.id.as_str());
    match (side, md) {
        (Side::Caller, 5) if answered => Some((EndCause::HungUp, "caller")),
        (Side::Callee, 5) if answered && answering => Some((EndCause::HungUp, "callee")),
        (Side::Caller, 5 | 7) if !answered => Some((EndCause::Canceled, "caller")),
        (Side::Callee, 5 | 6) if !answered => Some((EndCause::Denied, "callee")),
        // After the answer: the caller's cancel or deny to the devices that did not answer, or one of those
        // devices hanging up its ringing; the call goes on.
        _ => None,
    }
}

fn wrong_channel() -> DomainError {
    DomainError::with_message(Reason::NotFound, "the channel is not the other side's in this call")
}

/// `body` encrypted with `key` (fresh IV) and cut into frames of `call_id`, as the SDK cuts call frames.
fn seal(key: &[u8; 32], call_id: &str, body: &Value) -> Vec<String> {
    let mut iv = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut iv);
    let encrypted = frames::encrypt(key, &iv, body.to_string().as_bytes());
    let multi_id = rand::rngs::OsRng.next_u32() % 2_000_000_000;
    frames::split_frames(call_id, None, &encrypted, multi_id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(presence: &Presence, user: &str, session: &str, held: usize, ago: Duration) {
        let mut by_user = presence.by_user.lock().unwrap();
        let last = Instant::now() - ago;
        by_user.entry(("app".into(), user.into())).or_default().insert(session.into(), (held, last));
    }

    #[test]
    fn devices_gone_past_the_grace_period_are_forgotten_and_held_ones_kept() {
        let presence = Presence::default();
        entry(&presence, "gone", "s1", 0, ONLINE_GRACE * 2);
        entry(&presence, "polling", "s2", 1, ONLINE_GRACE * 2);
        entry(&presence, "between-polls", "s3", 0, Duration::from_secs(1));
        assert!(presence.sweep(Instant::now()));
        assert!(!presence.sweep(Instant::now()), "at most once a grace period");
        assert_eq!(presence.users(), 2);
        assert!(presence.online("app", "gone", "").is_empty());
        assert_eq!(presence.online("app", "polling", ""), ["s2"]);
        assert_eq!(presence.online("app", "between-polls", "s9"), ["s3"]);
        assert!(presence.online("app", "between-polls", "s3").is_empty(), "the caller's own session is left out");
    }
}
