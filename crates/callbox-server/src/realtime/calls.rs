//! Call signaling (docs/calls.md is the wire contract).
//!
//! A call's state lives in memory on the node of the caller's connection, its *home*: [`CallRegistry`] there
//! decides every transition (so "first answer wins" needs no distributed lock) and routes what each side must
//! see through the hub, which reaches connections on other nodes through the cluster fan-out. Frames from the
//! callee's side reach the home as [`Signal`]s (directly, or through Redis when the callee is on another node).
//!
//! The call records are written behind the signaling: each change is queued to one writer task that commits
//! what has queued up in one transaction, so a call setup never waits for a commit.

use super::frames::{self, Frame};
use super::hub::Inner as Hub;
use super::CallsConfig;
use crate::store::{CallRecord, CallWrite, Store};
use callbox_core::Reason;
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Record changes queued at most before new ones are dropped (and counted).
const RECORD_QUEUE: usize = 65_536;

/// Record changes committed in one transaction at most.
const RECORD_BATCH: usize = 512;

/// One realtime connection, wherever it is: the address of a call's side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// The node the connection is on.
    pub node: String,
    /// The connection's id on that node.
    pub connection: u64,
    /// Its application.
    pub app_key: String,
    /// Its user.
    pub user_id: String,
    /// Its session.
    pub session_id: String,
}

impl Endpoint {
    fn is(&self, other: &Endpoint) -> bool {
        self.node == other.node && self.connection == other.connection
    }
}

/// What a side asks of the call's home.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum SignalKind {
    /// A callee device showed `call.incoming` (sent by the connection, not the client).
    Ringing,
    /// `call.answer`.
    Answer {
        /// The SDP answer.
        sdp: String,
    },
    /// `call.decline`.
    Decline,
    /// `call.candidate`.
    Candidate {
        /// The candidate object as the client sent it.
        candidate: Value,
    },
    /// `call.hangup`.
    Hangup {
        /// The client gave up because media failed.
        failure: bool,
    },
    /// The connection closed (sent by the connection); `revoked`: because its session ended.
    Lost {
        /// The session ended (revoked, expired, user disabled, app deleted).
        revoked: bool,
    },
    /// `call.rejoin` from a new connection of a side's session.
    Rejoin,
}

/// A signal for one call, from one connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signal {
    /// The call.
    pub call_id: String,
    /// The connection it comes from.
    pub from: Endpoint,
    /// The client frame's `ref`, echoed on refusals.
    pub reference: Option<String>,
    /// What it asks.
    pub kind: SignalKind,
}

/// Who a call frame is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum CallTarget {
    /// One connection.
    Connection(Endpoint),
    /// Every live connection with `calling` of a user, on every node, but those of `except_session` (the caller's
    /// own session, when a user calls another of their devices) and the connection `except`.
    #[serde(rename_all = "camelCase")]
    Devices {
        /// The application.
        app_key: String,
        /// The user.
        user_id: String,
        /// A session whose connections are left out.
        except_session: Option<String>,
        /// A connection left out.
        except: Option<Endpoint>,
    },
}

/// What a connection does with a call frame besides writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CallUpdate {
    /// `call.incoming`: the connection now takes part (as a ringing callee device) and reports ringing.
    Incoming,
    /// `call.answered`: written if the connection takes part; it may now send candidates.
    Answered,
    /// Written only if the connection takes part in the call (candidates, progress).
    Relay,
    /// `call.ended`: written only if the connection takes part; it no longer does.
    Ended,
    /// `call.rejoined`: the connection takes part again (`caller`: as the caller; `answered`: the call was
    /// answered, by this side when it is the callee).
    Rejoined {
        /// As the caller.
        caller: bool,
        /// Already answered.
        answered: bool,
    },
    /// Written as is (an error frame for a remote side).
    Direct,
}

/// A call frame on its way to a connection.
#[derive(Debug, Clone)]
pub struct CallDelivery {
    /// The call.
    pub call_id: String,
    /// The call's home node.
    pub home: String,
    /// What the connection does.
    pub update: CallUpdate,
    /// The rendered frame.
    pub frame: Frame,
}

/// Why a call ended (docs/calls.md, "End causes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// The caller hung up before the answer.
    Canceled,
    /// A callee device declined.
    Denied,
    /// Nobody answered in time, or the callee is unavailable.
    NoAnswer,
    /// A side hung up after the answer.
    HungUp,
    /// Media could not flow, or the server could not keep the call.
    Failure,
    /// A side's connection dropped and did not rejoin in time.
    Timeout,
    /// Another device of the callee answered (only to the callee's other devices).
    OtherDeviceAnswered,
    /// A side's session ended.
    Revoked,
}

impl EndCause {
    /// The wire word.
    pub const fn as_str(self) -> &'static str {
        match self {
            EndCause::Canceled => "canceled",
            EndCause::Denied => "denied",
            EndCause::NoAnswer => "no_answer",
            EndCause::HungUp => "hung_up",
            EndCause::Failure => "failure",
            EndCause::Timeout => "timeout",
            EndCause::OtherDeviceAnswered => "other_device_answered",
            EndCause::Revoked => "revoked",
        }
    }
}

/// A refusal of a realtime frame (call frames and, in the connection, every other frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRefusal {
    /// The §7 reason.
    pub reason: Reason,
    /// The sentence.
    pub message: String,
    /// Seconds to wait, with `rate_limited`.
    pub retry_after: Option<u64>,
}

impl CallRefusal {
    /// A refusal with a sentence and no wait.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into(), retry_after: None }
    }

    fn already_answered() -> Self {
        Self::new(Reason::CallAlreadyAnswered, Reason::CallAlreadyAnswered.default_message())
    }

    fn unknown() -> Self {
        Self::new(Reason::NotFound, "no call with this callId on this connection")
    }
}

/// A call placed by [`CallRegistry::start`].
#[derive(Debug, Clone)]
pub struct Placed {
    /// Its id.
    pub call_id: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// A side that lost its connection: which generation of the grace timer may end the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Caller,
    Callee,
}

#[derive(Debug)]
struct ActiveCall {
    id: String,
    app_key: String,
    caller_id: String,
    callee_id: String,
    caller: Endpoint,
    /// The answering connection, once answered.
    callee: Option<Endpoint>,
    started_at: DateTime<Utc>,
    started: Instant,
    answered_at: Option<DateTime<Utc>>,
    /// The callee's SDP answer, for a caller that rejoins after missing `call.answered`.
    answer_sdp: Option<String>,
    /// `call.progress` was sent.
    ringing: bool,
    /// Sides waiting for a rejoin, with the grace generation that may end the call.
    lost: Vec<(Side, u64)>,
    /// The no-answer or ringing-wait timer, aborted when it no longer applies.
    timer: Option<JoinHandle<()>>,
}

impl ActiveCall {
    fn involves_session(&self, session_id: &str) -> bool {
        self.caller.session_id == session_id || self.callee.as_ref().is_some_and(|c| c.session_id == session_id)
    }

    fn callee_devices(&self, except: Option<Endpoint>) -> CallTarget {
        CallTarget::Devices {
            app_key: self.app_key.clone(),
            user_id: self.callee_id.clone(),
            except_session: Some(self.caller.session_id.clone()),
            except,
        }
    }

    /// Everyone on the callee's side: the answering connection, or every ringing device.
    fn callee_side(&self) -> CallTarget {
        match &self.callee {
            Some(callee) => CallTarget::Connection(callee.clone()),
            None => self.callee_devices(None),
        }
    }
}

#[derive(Debug)]
struct CallMetrics {
    active: metrics::Gauge,
    setup: metrics::Histogram,
    dropped_writes: metrics::Counter,
}

/// The calls homed on this node.
#[derive(Debug)]
pub struct CallRegistry {
    config: CallsConfig,
    calls: Mutex<HashMap<String, ActiveCall>>,
    rates: moka::sync::Cache<String, Arc<DefaultDirectRateLimiter>>,
    records: mpsc::Sender<CallWrite>,
    pending_records: Mutex<Option<mpsc::Receiver<CallWrite>>>,
    next_generation: std::sync::atomic::AtomicU64,
    metrics: CallMetrics,
}

/// What a transition sends, applied after the registry's lock is released.
type Effects = Vec<(CallTarget, CallDelivery)>;

impl CallRegistry {
    /// A registry with `config`; [`CallRegistry::start_writer`] starts the record writer.
    pub fn new(config: CallsConfig) -> Self {
        let (records, pending) = mpsc::channel(RECORD_QUEUE);
        Self {
            config,
            calls: Mutex::default(),
            rates: moka::sync::Cache::builder().time_to_idle(Duration::from_secs(300)).build(),
            records,
            pending_records: Mutex::new(Some(pending)),
            next_generation: std::sync::atomic::AtomicU64::new(1),
            metrics: CallMetrics {
                active: metrics::gauge!("callbox_calls_active"),
                setup: metrics::histogram!("callbox_call_setup_seconds"),
                dropped_writes: metrics::counter!("callbox_call_record_writes_dropped_total"),
            },
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CallsConfig {
        &self.config
    }

    /// Starts the task that writes call records (once; it ends when the registry is dropped).
    pub fn start_writer(&self, store: Arc<dyn Store>) {
        let pending = self.pending_records.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(pending) = pending {
            tokio::spawn(write_records(store, pending));
        }
    }

    /// Calls homed on this node.
    pub fn active(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ActiveCall>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, write: CallWrite) {
        if self.records.try_send(write).is_err() {
            self.metrics.dropped_writes.increment(1);
        }
    }

    /// Whether the call is homed here.
    pub fn has(&self, call_id: &str) -> bool {
        self.lock().contains_key(call_id)
    }

    /// `call.start` from `caller` (a connection of this node, which becomes the call's home).
    pub(super) fn start(
        &self,
        hub: &Arc<Hub>,
        caller: Endpoint,
        callee_id: String,
        sdp: String,
        headers: String,
    ) -> Result<Placed, CallRefusal> {
        let rate = self.rates.get_with(caller.session_id.clone(), || {
            let per_minute = NonZeroU32::new(self.config.attempts_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(self.config.attempt_burst.max(1)).unwrap_or(NonZeroU32::MIN);
            Arc::new(RateLimiter::direct(Quota::per_minute(per_minute).allow_burst(burst)))
        });
        if let Err(not_until) = rate.check() {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
            return Err(CallRefusal {
                reason: Reason::RateLimited,
                message: format!("at most {} calls a minute per session", self.config.attempts_per_minute),
                retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            });
        }
        let started_at = now_ms();
        let call_id = uuid::Uuid::now_v7().to_string();
        let devices_here = hub.calling_devices_here(&caller.app_key, &callee_id, &caller.session_id);
        let clustered = hub.is_clustered();
        let mut effects = Effects::new();
        {
            let mut calls = self.lock();
            let taking_part = calls.values().filter(|c| c.involves_session(&caller.session_id)).count();
            if taking_part >= self.config.max_concurrent_per_session {
                return Err(CallRefusal::new(
                    Reason::TooManyCalls,
                    format!(
                        "this session already takes part in {taking_part} calls; at most {}",
                        self.config.max_concurrent_per_session
                    ),
                ));
            }
            let call = ActiveCall {
                id: call_id.clone(),
                app_key: caller.app_key.clone(),
                caller_id: caller.user_id.clone(),
                callee_id,
                caller,
                callee: None,
                started_at,
                started: Instant::now(),
                answered_at: None,
                answer_sdp: None,
                ringing: false,
                lost: Vec::new(),
                timer: None,
            };
            self.record(CallWrite::Placed(CallRecord {
                id: call.id.clone(),
                app_key: call.app_key.clone(),
                caller_id: call.caller_id.clone(),
                callee_id: call.callee_id.clone(),
                legacy_call_id: None,
                started_at,
                answered_at: None,
                ended_at: None,
                end_cause: None,
                ended_by: None,
            }));
            self.metrics.active.increment(1.0);
            if devices_here == 0 && !clustered {
                // Nobody to ring anywhere: the caller learns it at once (after `call.placed`, which its connection
                // writes before it reads its queue).
                self.end(&mut effects, hub, call, EndCause::NoAnswer, "server", Some("unavailable"));
            } else {
                let incoming =
                    frames::call_incoming(&call.id, &call.caller_id, &call.callee_id, &sdp, &headers, started_at);
                effects.push((call.callee_devices(None), delivery(hub, &call.id, CallUpdate::Incoming, incoming)));
                let wait = if devices_here == 0 {
                    Duration::from_millis(self.config.ringing_wait_milliseconds)
                } else {
                    Duration::from_secs(self.config.answer_timeout_seconds.max(1))
                };
                let mut call = call;
                call.timer = Some(spawn_timer(hub, &call.id, wait, Timer::Unanswered));
                calls.insert(call.id.clone(), call);
            }
        }
        hub.send_calls(effects);
        Ok(Placed { call_id, started_at })
    }

    /// A signal for a call homed here. Refusals go back to the signalling connection as error frames.
    pub(super) fn handle(&self, hub: &Arc<Hub>, signal: Signal) {
        let mut effects = Effects::new();
        let refusal = {
            let mut calls = self.lock();
            match calls.remove(&signal.call_id) {
                None => match signal.kind {
                    SignalKind::Ringing | SignalKind::Lost { .. } => None,
                    _ => Some(CallRefusal::unknown()),
                },
                Some(call) => {
                    let (kept, refusal) = self.transition(&mut effects, hub, call, &signal);
                    if let Some(call) = kept {
                        calls.insert(call.id.clone(), call);
                    }
                    refusal
                }
            }
        };
        if let Some(refusal) = refusal {
            let frame =
                frames::error(signal.reference.as_deref(), refusal.reason, &refusal.message, refusal.retry_after);
            effects.push((
                CallTarget::Connection(signal.from.clone()),
                delivery(hub, &signal.call_id, CallUpdate::Direct, frame),
            ));
        }
        hub.send_calls(effects);
    }

    /// Applies `signal` to `call`; returns the call if it goes on, and a refusal for the sender.
    fn transition(
        &self,
        effects: &mut Effects,
        hub: &Arc<Hub>,
        mut call: ActiveCall,
        signal: &Signal,
    ) -> (Option<ActiveCall>, Option<CallRefusal>) {
        let from = &signal.from;
        let is_caller = from.is(&call.caller);
        let is_answering_callee = call.callee.as_ref().is_some_and(|c| from.is(c));
        // A ringing device of the callee: the callee's user in the call's app, not the caller's own session.
        let is_callee_device =
            from.app_key == call.app_key && from.user_id == call.callee_id && from.session_id != call.caller.session_id;
        let id = call.id.clone();
        match &signal.kind {
            SignalKind::Ringing => {
                if call.callee.is_none() && is_callee_device && !call.ringing {
                    call.ringing = true;
                    if let Some(timer) = call.timer.take() {
                        // The ringing wait (callee on another node) gives way to the answer timeout.
                        timer.abort();
                    }
                    let left = Duration::from_secs(self.config.answer_timeout_seconds.max(1))
                        .saturating_sub(call.started.elapsed());
                    call.timer = Some(spawn_timer(hub, &id, left, Timer::Unanswered));
                    let frame = frames::call_progress(&id);
                    effects.push((
                        CallTarget::Connection(call.caller.clone()),
                        delivery(hub, &id, CallUpdate::Relay, frame),
                    ));
                }
                (Some(call), None)
            }
            SignalKind::Answer { sdp } => {
                if !is_callee_device {
                    return (Some(call), Some(CallRefusal::unknown()));
                }
                if call.callee.is_some() {
                    return (Some(call), Some(CallRefusal::already_answered()));
                }
                let now = now_ms();
                call.answered_at = Some(now);
                call.answer_sdp = Some(sdp.clone());
                call.callee = Some(from.clone());
                if let Some(timer) = call.timer.take() {
                    timer.abort();
                }
                self.metrics.setup.record(call.started.elapsed().as_secs_f64());
                self.record(CallWrite::Answered { id: id.clone(), at: now });
                let to_caller = frames::call_answered(&id, now, Some(sdp));
                effects.push((
                    CallTarget::Connection(call.caller.clone()),
                    delivery(hub, &id, CallUpdate::Answered, to_caller),
                ));
                let to_callee = frames::call_answered(&id, now, None);
                effects
                    .push((CallTarget::Connection(from.clone()), delivery(hub, &id, CallUpdate::Answered, to_callee)));
                let elsewhere = frames::call_ended(
                    &id,
                    EndCause::OtherDeviceAnswered.as_str(),
                    "callee",
                    call.started_at,
                    Some(now),
                    now,
                    None,
                );
                effects
                    .push((call.callee_devices(Some(from.clone())), delivery(hub, &id, CallUpdate::Ended, elsewhere)));
                (Some(call), None)
            }
            SignalKind::Decline => {
                if !is_callee_device {
                    return (Some(call), Some(CallRefusal::unknown()));
                }
                if call.callee.is_some() {
                    return (Some(call), Some(CallRefusal::already_answered()));
                }
                self.end(effects, hub, call, EndCause::Denied, "callee", None);
                (None, None)
            }
            SignalKind::Candidate { candidate } => {
                let frame = frames::call_candidate(&id, candidate);
                if is_caller {
                    effects.push((call.callee_side(), delivery(hub, &id, CallUpdate::Relay, frame)));
                    (Some(call), None)
                } else if is_answering_callee {
                    effects.push((
                        CallTarget::Connection(call.caller.clone()),
                        delivery(hub, &id, CallUpdate::Relay, frame),
                    ));
                    (Some(call), None)
                } else if is_callee_device && call.callee.is_none() {
                    let refusal =
                        CallRefusal::new(Reason::MalformedRequest, "the callee sends candidates after call.answer");
                    (Some(call), Some(refusal))
                } else {
                    (Some(call), Some(CallRefusal::unknown()))
                }
            }
            SignalKind::Hangup { failure } => {
                let answered = call.callee.is_some();
                let cause = match (failure, answered) {
                    (true, _) => EndCause::Failure,
                    (false, true) => EndCause::HungUp,
                    (false, false) if is_caller => EndCause::Canceled,
                    (false, false) => EndCause::Denied,
                };
                if is_caller {
                    self.end(effects, hub, call, cause, "caller", None);
                    (None, None)
                } else if is_answering_callee || (is_callee_device && !answered) {
                    self.end(effects, hub, call, cause, "callee", None);
                    (None, None)
                } else {
                    (Some(call), Some(CallRefusal::unknown()))
                }
            }
            SignalKind::Lost { revoked } => {
                let side = if is_caller {
                    Side::Caller
                } else if is_answering_callee {
                    Side::Callee
                } else {
                    // A ringing device went away: the others still ring, and the answer timeout still runs.
                    return (Some(call), None);
                };
                if *revoked {
                    self.end(effects, hub, call, EndCause::Revoked, "server", None);
                    return (None, None);
                }
                let generation = self.next_generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                call.lost.retain(|(s, _)| *s != side);
                call.lost.push((side, generation));
                let grace = Duration::from_secs(self.config.grace_seconds);
                spawn_timer(hub, &id, grace, Timer::Grace(side, generation));
                (Some(call), None)
            }
            SignalKind::Rejoin => {
                let side = if from.session_id == call.caller.session_id && from.app_key == call.app_key {
                    Side::Caller
                } else if call
                    .callee
                    .as_ref()
                    .is_some_and(|c| c.session_id == from.session_id && c.app_key == from.app_key)
                {
                    Side::Callee
                } else if call.callee.is_none() && is_callee_device {
                    // A ringing device that reconnected rings again.
                    let frame = frames::call_rejoined(signal.reference.as_deref(), &id, "ringing", None);
                    let update = CallUpdate::Rejoined { caller: false, answered: false };
                    effects.push((CallTarget::Connection(from.clone()), delivery(hub, &id, update, frame)));
                    return (Some(call), None);
                } else {
                    return (Some(call), Some(CallRefusal::unknown()));
                };
                call.lost.retain(|(s, _)| *s != side);
                match side {
                    Side::Caller => call.caller = from.clone(),
                    Side::Callee => call.callee = Some(from.clone()),
                }
                let answered = call.callee.is_some();
                let state = if answered { "answered" } else { "ringing" };
                // A caller that was away when the answer came gets it now (it may never have seen call.answered).
                let answer = match (side, call.answered_at, call.answer_sdp.as_deref()) {
                    (Side::Caller, Some(at), Some(sdp)) => Some((at, sdp)),
                    _ => None,
                };
                let frame = frames::call_rejoined(signal.reference.as_deref(), &id, state, answer);
                let update = CallUpdate::Rejoined { caller: side == Side::Caller, answered };
                effects.push((CallTarget::Connection(from.clone()), delivery(hub, &id, update, frame)));
                (Some(call), None)
            }
        }
    }

    /// Ends `call` (already out of the map): both sides are told, the record written, the metrics counted.
    fn end(
        &self,
        effects: &mut Effects,
        hub: &Arc<Hub>,
        mut call: ActiveCall,
        cause: EndCause,
        by: &'static str,
        detail: Option<&str>,
    ) {
        if let Some(timer) = call.timer.take() {
            timer.abort();
        }
        let now = now_ms();
        let frame = frames::call_ended(&call.id, cause.as_str(), by, call.started_at, call.answered_at, now, detail);
        effects.push((
            CallTarget::Connection(call.caller.clone()),
            delivery(hub, &call.id, CallUpdate::Ended, frame.clone()),
        ));
        effects.push((call.callee_side(), delivery(hub, &call.id, CallUpdate::Ended, frame)));
        self.record(CallWrite::Ended {
            id: call.id.clone(),
            at: now,
            cause: cause.as_str().to_owned(),
            by: by.to_owned(),
        });
        metrics::counter!("callbox_calls_total", "cause" => cause.as_str()).increment(1);
        self.metrics.active.decrement(1.0);
    }

    fn fire(&self, hub: &Arc<Hub>, call_id: &str, timer: Timer) {
        let mut effects = Effects::new();
        {
            let mut calls = self.lock();
            let Some(call) = calls.remove(call_id) else { return };
            match timer {
                Timer::Unanswered if call.callee.is_none() => {
                    let detail = if call.ringing { None } else { Some("unavailable") };
                    self.end(&mut effects, hub, call, EndCause::NoAnswer, "server", detail);
                }
                Timer::Grace(side, generation) if call.lost.contains(&(side, generation)) => {
                    self.end(&mut effects, hub, call, EndCause::Timeout, "server", None);
                }
                _ => {
                    calls.insert(call.id.clone(), call);
                }
            }
        }
        hub.send_calls(effects);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Nobody answered (or, before any device rang, nobody is there).
    Unanswered,
    /// A lost side did not rejoin.
    Grace(Side, u64),
}

/// Now, to the millisecond: the precision the records keep, so that a frame's times and `durationMs` agree with
/// the stored call.
fn now_ms() -> DateTime<Utc> {
    callbox_core::time::to_millisecond(Utc::now())
}

fn spawn_timer(hub: &Arc<Hub>, call_id: &str, after: Duration, timer: Timer) -> JoinHandle<()> {
    let hub: Weak<Hub> = Arc::downgrade(hub);
    let call_id = call_id.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if let Some(hub) = hub.upgrade() {
            hub.calls().fire(&hub, &call_id, timer);
        }
    })
}

fn delivery(hub: &Hub, call_id: &str, update: CallUpdate, frame: Frame) -> CallDelivery {
    CallDelivery { call_id: call_id.to_owned(), home: hub.node_id().to_owned(), update, frame }
}

async fn write_records(store: Arc<dyn Store>, mut pending: mpsc::Receiver<CallWrite>) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while pending.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        if let Err(error) = store.write_calls(&batch).await {
            // One retry: a busy or restarting database should not lose a batch of records.
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Err(again) = store.write_calls(&batch).await {
                tracing::warn!(%error, %again, records = batch.len(), "cannot write call records; dropped");
            }
        }
        batch.clear();
    }
}
