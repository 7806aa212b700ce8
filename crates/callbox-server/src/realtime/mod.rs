//! The realtime layer: one authenticated WebSocket per client at `/v1/realtime` (docs/realtime.md is the wire
//! contract), over which the `messaging` capability delivers messages between the users of one application.
//!
//! - [`connection`] runs one socket: challenge, signed `auth` frame (the same check as every `Instance`-signed
//!   call, [`crate::domain::Callbox::authenticate_call`]), heartbeats, frames, in-order delivery with resume.
//! - [`hub::Hub`] knows this node's live connections, fans frames out to them, and closes them when their
//!   session ends ([`SessionEvent`], sent by the domain after each revocation write).
//! - [`cluster`] carries fan-out and session events between nodes through Redis pub/sub.
//! - [`calls`] holds the call signaling state of the calls homed on this node (docs/calls.md).
//! - [`frames`] renders server frames.
//! - [`legacy`] serves the legacy SDK's PubNub-style long-poll transport over the same inboxes and fan-out;
//!   [`mailbox`] keeps its call frames between polls.
//!
//! The store is the source of truth: a message is acknowledged only after it is in every recipient's inbox, with
//! a per-recipient sequence number. Live delivery is an optimisation on top: a connection that sees a gap in its
//! sequence (a lost or late publish) reads the gap from the store, and a reconnecting client resumes after the
//! last sequence number it saw.

pub mod admin;
pub mod calls;
pub mod cluster;
pub mod connection;
pub mod frames;
pub mod hub;
pub mod legacy;
pub mod mailbox;

pub use hub::Hub;

use callbox_core::Reason;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `[realtime]` configuration (docs/realtime.md lists the defaults and why).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct RealtimeConfig {
    /// Seconds between the server's `ping` frames.
    pub heartbeat_seconds: u64,
    /// A connection from which nothing arrived for this long is closed (4408), seconds.
    pub idle_timeout_seconds: u64,
    /// Time a new connection has to send its `auth` frame, seconds.
    pub auth_timeout_seconds: u64,
    /// Most recipients of one message.
    pub max_recipients: usize,
    /// Largest text body, bytes (UTF-8).
    pub max_text_bytes: usize,
    /// Largest headers object, bytes of its JSON.
    pub max_headers_bytes: usize,
    /// Largest frame a client may send, bytes.
    pub max_frame_bytes: usize,
    /// Messages a session may send per second (sustained).
    pub messages_per_second: u32,
    /// Messages a session may send in a burst above the sustained rate.
    pub message_burst: u32,
    /// A socket write that takes longer than this means the peer stopped reading: the connection is dropped,
    /// seconds.
    pub write_timeout_seconds: u64,
    /// Frames waiting to be written to one connection; a reader slower than that is closed (4503).
    pub outbound_queue: usize,
    /// Messages older than this are purged from inboxes, seconds.
    pub retention_seconds: u64,
    /// Inbox entries kept per user (the newest); older ones are purged.
    pub retention_per_user: u64,
    /// Seconds between retention purges.
    pub purge_interval_seconds: u64,
    /// How long a connection waits for a missing sequence number to arrive live before reading it from the
    /// store, milliseconds.
    pub gap_wait_milliseconds: u64,
    /// How long a legacy long-poll (`/subscribe`) waits for something to answer, seconds. The SDK gives up on a
    /// poll after 310 s; a proxy in front must allow this much.
    pub legacy_poll_seconds: u64,
    /// Legacy long-polls one session may hold at once on one node; more are refused with `rate_limited`.
    pub legacy_polls_per_session: usize,
    /// Legacy long-polls one client address may hold at once on one node.
    pub legacy_polls_per_address: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            heartbeat_seconds: 15,
            idle_timeout_seconds: 30,
            auth_timeout_seconds: 10,
            max_recipients: 50,
            max_text_bytes: 8 * 1024,
            max_headers_bytes: 1024,
            max_frame_bytes: 32 * 1024,
            messages_per_second: 20,
            message_burst: 40,
            write_timeout_seconds: 10,
            outbound_queue: 256,
            retention_seconds: 30 * 24 * 3600,
            retention_per_user: 1000,
            purge_interval_seconds: 300,
            gap_wait_milliseconds: 250,
            legacy_poll_seconds: 280,
            legacy_polls_per_session: 4,
            legacy_polls_per_address: 128,
        }
    }
}

/// `[calls]` configuration (docs/calls.md section 6).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct CallsConfig {
    /// Ringing longer than this ends the call with `no_answer`, seconds.
    pub answer_timeout_seconds: u64,
    /// How long a side whose connection dropped may take to `call.rejoin` before the call ends with `timeout`,
    /// seconds.
    pub grace_seconds: u64,
    /// With many nodes: how long a call's home waits for a callee device on another node to report ringing
    /// before the callee counts as unavailable, milliseconds.
    pub ringing_wait_milliseconds: u64,
    /// `call.start` frames a session may send per minute (sustained, per node).
    pub attempts_per_minute: u32,
    /// `call.start` frames a session may send in a burst above that.
    pub attempt_burst: u32,
    /// Calls a session takes part in at once (on the call's home node).
    pub max_concurrent_per_session: usize,
    /// Largest SDP offer or answer, bytes.
    pub max_sdp_bytes: usize,
    /// Largest ICE candidate, bytes of its JSON.
    pub max_candidate_bytes: usize,
}

impl Default for CallsConfig {
    fn default() -> Self {
        Self {
            answer_timeout_seconds: 45,
            grace_seconds: 10,
            ringing_wait_milliseconds: 1000,
            attempts_per_minute: 30,
            attempt_burst: 10,
            max_concurrent_per_session: 3,
            max_sdp_bytes: 16 * 1024,
            max_candidate_bytes: 1024,
        }
    }
}

/// A change to sessions that must reach their live connections (on every node), sent by the domain after the
/// write is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum SessionEvent {
    /// One session ended or was revoked.
    #[serde(rename_all = "camelCase")]
    Session {
        /// Its application.
        app_key: String,
        /// The session.
        session_id: String,
    },
    /// Every session of a user was revoked (`reason`: `session_revoked`, or `user_disabled`).
    #[serde(rename_all = "camelCase")]
    User {
        /// The application.
        app_key: String,
        /// The user.
        user_id: String,
        /// The §7 reason word the connections are closed with.
        reason: String,
    },
    /// Every session of an application created before `before` was revoked.
    #[serde(rename_all = "camelCase")]
    Before {
        /// The application.
        app_key: String,
        /// The cut-off.
        before: DateTime<Utc>,
    },
    /// The application was deleted.
    #[serde(rename_all = "camelCase")]
    AppDeleted {
        /// The application.
        app_key: String,
    },
    /// The operator dropped a user's connections (the sessions stay valid; clients reconnect).
    #[serde(rename_all = "camelCase")]
    Drop {
        /// The application.
        app_key: String,
        /// The user.
        user_id: String,
    },
}

impl SessionEvent {
    /// One session ended.
    pub fn session(app_key: &str, session_id: &str) -> Self {
        Self::Session { app_key: app_key.to_owned(), session_id: session_id.to_owned() }
    }

    /// Every session of a user ended, for `reason`.
    pub fn user(app_key: &str, user_id: &str, reason: Reason) -> Self {
        Self::User { app_key: app_key.to_owned(), user_id: user_id.to_owned(), reason: reason.as_str().to_owned() }
    }
}

/// Why a connection is being closed: the last `error` frame and the close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    /// The §7 reason of the last error frame.
    pub reason: Reason,
    /// The sentence of the error frame.
    pub message: String,
    /// The close code: 4000 + the reason's HTTP status, or 4408 for timeouts.
    pub code: u16,
    /// The close frame's reason text: the §7 word, or `heartbeat_timeout`.
    pub word: &'static str,
}

impl Closing {
    /// With a sentence; the close code is 4000 + the reason's HTTP status.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into(), code: 4000 + reason.http_status(), word: reason.as_str() }
    }

    /// With another close code and close reason text.
    pub fn with_close(self, code: u16, word: &'static str) -> Self {
        Self { code, word, ..self }
    }
}
