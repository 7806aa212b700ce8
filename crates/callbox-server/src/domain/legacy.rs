//! The legacy Sinch SDK's messaging (docs/legacy-sdk.md): the keys and channels a session is handed, transports
//! (a set of users of one application with an AES key), and the MXP frames a legacy client publishes, assembled,
//! decrypted and turned into the messages and receipts of [`super::messaging`]; and back, inbox entries rendered
//! as the frames a legacy client reads. The PubNub-style front end (`realtime::legacy`) parses the HTTP requests
//! and fans out; this module decides.
//!
//! - [`LegacyProfile`]: the keys and channels of `GET /v1/configuration/user`.
//! - [`Transport`]: what `POST/GET /v1/transport` answer.
//! - [`Publication`]: what one published frame amounted to.
//! - [`LegacyNode`]: this node's share of the legacy state: frames of multi-frame messages being assembled,
//!   recently seen message ids, rate limiters and long-poll counts. Everything durable is in the store, so any
//!   node serves any long-poll; only the frames of one multi-frame message must reach one node (docs/legacy-sdk.md).
//!
//! Every name is derived from the master key, never stored: a key or channel name proves which session or user
//! it was made for (the SDK sends no other credential on the PubNub calls), and every node derives the same.

use super::{Callbox, DomainError, DomainResult};
use crate::store::{Capability, InboxEntry, InboxItem, SessionRecord, StoreError};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use callbox_core::legacy::{self as frames, FrameError};
use callbox_core::Reason;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long the frames of one multi-frame message may take to arrive, and how long a message id is remembered
/// after it was handled (the SDK publishes each frame once per participant channel, all at once).
const ASSEMBLY_WINDOW: Duration = Duration::from_secs(60);
/// Multi-frame messages one session may have in assembly at once.
const MAX_ASSEMBLIES_PER_SESSION: usize = 16;
/// Multi-frame messages in assembly on this node at once, and message ids remembered.
const MAX_ASSEMBLIES: usize = 10_000;
const MAX_REMEMBERED: usize = 100_000;
/// Transports whose participants this node keeps in memory (an id never changes its participants).
const MAX_CACHED_TRANSPORTS: usize = 10_000;
/// The MXP version of messaging frames.
const MESSAGING_VERSION: u64 = 10;

/// The keys and channel names of one session (and its user), as `GET /v1/configuration/user` hands them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyProfile {
    /// The PubNub publish key: names the session, with a tag only the server can make.
    pub publish_key: String,
    /// The PubNub subscribe key.
    pub subscribe_key: String,
    /// The channels it may subscribe to.
    pub channels: LegacyChannels,
    /// The user's "instance key" (base64 AES-256), which decrypts the INVITEs the server makes for it.
    pub key: String,
}

/// The channels one session may subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyChannels {
    /// The user's transport channel: messages to the user arrive on it, on every device.
    pub transport: String,
    /// The session's broadcast channel (nothing is sent on it today; the SDK subscribes to it).
    pub broadcast: String,
    /// The session's signal channel (calls).
    pub signal: String,
}

impl LegacyChannels {
    /// Whether `channel` is one of them.
    pub fn owns(&self, channel: &str) -> bool {
        channel == self.transport || channel == self.broadcast || channel == self.signal
    }
}

/// A transport: the users of one application a legacy client exchanges messages with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    /// Derived from the application and the sorted participants.
    pub id: String,
    /// Its AES-256 key, base64 (derived, never stored).
    pub key: String,
    /// Every participant, sorted, with each one's transport channel.
    pub participants: Vec<(String, String)>,
}

/// Which key of a session a PubNub call names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `pub-c-...`: publish.
    Publish,
    /// `sub-c-...`: subscribe, leave.
    Subscribe,
}

impl KeyKind {
    fn prefix(self) -> &'static str {
        match self {
            KeyKind::Publish => "pub-c-",
            KeyKind::Subscribe => "sub-c-",
        }
    }

    fn label(self) -> &'static str {
        match self {
            KeyKind::Publish => "publish-key",
            KeyKind::Subscribe => "subscribe-key",
        }
    }
}

/// What one published frame amounted to.
#[derive(Debug, Clone)]
pub enum Publication {
    /// A frame of a multi-frame message that is not complete yet, or a frame of a message already handled (the
    /// SDK sends each frame once per participant channel): nothing more to do.
    Nothing,
    /// A message, durable in its recipients' inboxes: fan it out.
    Message(super::messaging::Accepted),
    /// A delivery receipt, the first for this message and recipient: the receipt entry of the sender to fan out.
    Receipt(String, InboxEntry),
}

/// Where a long-poll resumes, as its timetoken says (docs/legacy-sdk.md section 3). A timetoken is 17 digits, as
/// PubNub's are: the first says which kind, the others the inbox sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// `0`, or a time token such as `/time/0` answers: the client starts. It is answered at once with the
    /// replay of what is in the inbox now.
    Start,
    /// The messages not confirmed yet after `after` up to `until` (the end of the inbox when the client started:
    /// offline delivery), then every entry after `until`.
    Replay {
        /// Replayed up to here.
        after: u64,
        /// The end of the replay.
        until: u64,
    },
    /// Every inbox entry after this sequence number, waiting for one when there is none.
    Live(u64),
}

/// The largest sequence number a replay token holds (8 digits each for `after` and `until`).
const REPLAY_LIMIT: u64 = 99_999_999;

impl Cursor {
    /// Parses a timetoken: `0` or 17 digits.
    pub fn parse(text: &str) -> DomainResult<Cursor> {
        if text == "0" {
            return Ok(Cursor::Start);
        }
        if text.len() != 17 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::with_message(Reason::MalformedRequest, "the timetoken must be 0 or 17 digits"));
        }
        let number = |range: std::ops::Range<usize>| text[range].parse::<u64>().unwrap_or(0);
        Ok(match text.as_bytes()[0] {
            b'2' => Cursor::Replay { after: number(1..9), until: number(9..17) },
            b'3' => Cursor::Live(number(1..17)),
            // PubNub time tokens (10^-7 s since 1970) start with 1 until the year 2286.
            _ => Cursor::Start,
        })
    }

    /// The cursor a poll answers after replaying up to `end`: the rest of the replay, or live once it is done
    /// (or once the numbers outgrow the token, for a user with a hundred million entries: then the replay ends
    /// after one page rather than repeating it).
    pub fn replayed(until: u64, end: u64, more: bool) -> Cursor {
        if more && end < until && until <= REPLAY_LIMIT {
            Cursor::Replay { after: end, until }
        } else {
            Cursor::Live(until)
        }
    }

    /// The cursor of a client that starts when its inbox ends at `until`.
    pub fn started(until: u64) -> Cursor {
        if until <= REPLAY_LIMIT {
            Cursor::Replay { after: 0, until }
        } else {
            // Beyond what a replay token holds (a user with a hundred million inbox entries): no replay.
            Cursor::Live(until)
        }
    }

    /// The timetoken of this cursor.
    pub fn token(self) -> String {
        match self {
            Cursor::Start => "0".to_owned(),
            Cursor::Replay { after, until } => {
                format!("2{:08}{:08}", after.min(REPLAY_LIMIT), until.min(REPLAY_LIMIT))
            }
            Cursor::Live(seq) => format!("3{:016}", seq.min(9_999_999_999_999_999)),
        }
    }
}

/// A multi-frame message being assembled.
#[derive(Debug)]
struct Partial {
    chunks: Vec<Option<String>>,
    received: usize,
    bytes: usize,
    started: Instant,
}

/// Multi-frame messages being assembled and message ids handled lately (see [`ASSEMBLY_WINDOW`]).
#[derive(Debug, Default)]
struct Assembly {
    /// By (session id, message id).
    partial: HashMap<(String, String), Partial>,
    /// Message ids being handled or handled lately, by (session id, message id), with when.
    seen: HashMap<(String, String), Instant>,
    last_sweep: Option<Instant>,
    last_forget: Option<Instant>,
}

impl Assembly {
    fn sweep(&mut self, now: Instant) {
        if self.last_sweep.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
            return;
        }
        self.last_sweep = Some(now);
        self.partial.retain(|_, partial| now.duration_since(partial.started) < ASSEMBLY_WINDOW);
        self.seen.retain(|_, at| now.duration_since(*at) < ASSEMBLY_WINDOW);
    }
}

/// Long-polls held on this node, by session and by client address.
#[derive(Debug, Default)]
struct PollCounts {
    by_session: HashMap<String, usize>,
    by_address: HashMap<IpAddr, usize>,
}

/// This node's legacy state (see the module documentation).
#[derive(Debug)]
pub struct LegacyNode {
    assembly: Mutex<Assembly>,
    polls: Arc<Mutex<PollCounts>>,
    /// New MXP ids (messages and receipts) and call frames per session.
    pub(super) frames: DefaultKeyedRateLimiter<String>,
    /// Messages per session (the `realtime.messages_per_second` of the WebSocket path).
    messages: DefaultKeyedRateLimiter<String>,
    /// Transports used lately, by (application, id), with their derived channels and key: an id is derived from
    /// its participants, so an entry is never stale, and a publish (one per frame and participant channel) needs no
    /// store read and no derivation. Emptied when it reaches `MAX_CACHED_TRANSPORTS`.
    transports: Mutex<HashMap<(String, String), Arc<Transport>>>,
    /// `realtime.legacy_polls_per_session` and `..._per_address`.
    polls_per_session: usize,
    polls_per_address: usize,
    /// Calls: presence, attempt limits.
    pub(super) calls: super::legacy_calls::LegacyCalls,
}

impl LegacyNode {
    /// The state of a node with the `[realtime]` limits given.
    pub fn new(config: &crate::realtime::RealtimeConfig, calls: &crate::realtime::CallsConfig) -> Self {
        let quota = |per_second: u32, burst: u32| {
            let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
            Quota::per_second(rate).allow_burst(NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN))
        };
        // A receipt is one per message received: a client back online acknowledges its whole backlog at once.
        let frames = quota(config.messages_per_second.saturating_mul(4), config.message_burst.saturating_mul(4));
        Self {
            assembly: Mutex::default(),
            polls: Arc::default(),
            frames: RateLimiter::keyed(frames),
            messages: RateLimiter::keyed(quota(config.messages_per_second, config.message_burst)),
            transports: Mutex::default(),
            polls_per_session: config.legacy_polls_per_session.max(1),
            polls_per_address: config.legacy_polls_per_address.max(1),
            calls: super::legacy_calls::LegacyCalls::new(calls),
        }
    }

    /// A place for one long-poll of `session_id` from `address`, held until the permit is dropped. Beyond
    /// `realtime.legacy_polls_per_session` or `..._per_address` → `rate_limited`.
    pub fn poll_permit(&self, session_id: &str, address: IpAddr) -> DomainResult<PollPermit> {
        let mut counts = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        let per_session = counts.by_session.get(session_id).copied().unwrap_or(0);
        let per_address = counts.by_address.get(&address).copied().unwrap_or(0);
        let refuse = |message: String| DomainError {
            retry_after: Some(1),
            ..DomainError::with_message(Reason::RateLimited, message)
        };
        if per_session >= self.polls_per_session {
            return Err(refuse(format!("this session already holds {per_session} long-polls")));
        }
        if per_address >= self.polls_per_address {
            return Err(refuse(format!("this address already holds {per_address} long-polls")));
        }
        *counts.by_session.entry(session_id.to_owned()).or_default() += 1;
        *counts.by_address.entry(address).or_default() += 1;
        metrics::gauge!("callbox_legacy_polls").increment(1.0);
        Ok(PollPermit { polls: Arc::clone(&self.polls), session_id: session_id.to_owned(), address })
    }

    /// Long-polls held on this node.
    pub fn poll_count(&self) -> usize {
        self.polls.lock().unwrap_or_else(|p| p.into_inner()).by_session.values().sum()
    }

    /// Drops the rate limiters' memory of sessions idle for long (once a minute, on a publish).
    fn forget_idle(&self) {
        self.frames.retain_recent();
        self.messages.retain_recent();
        self.frames.shrink_to_fit();
        self.messages.shrink_to_fit();
    }

    /// Keeps a transport in memory (emptied when full: entries are cheap to read again).
    fn remember_transport(&self, key: (String, String), transport: Arc<Transport>) {
        let mut transports = self.transports.lock().unwrap_or_else(|p| p.into_inner());
        if transports.len() >= MAX_CACHED_TRANSPORTS {
            transports.clear();
        }
        transports.insert(key, transport);
    }

    fn cached_transport(&self, key: &(String, String)) -> Option<Arc<Transport>> {
        self.transports.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    pub(super) fn check_rate(limiter: &DefaultKeyedRateLimiter<String>, session_id: &str) -> DomainResult<()> {
        limiter.check_key(&session_id.to_owned()).map_err(|_| DomainError {
            retry_after: Some(1),
            ..DomainError::with_message(Reason::RateLimited, "too many messages")
        })
    }
}

/// One long-poll's place (see [`LegacyNode::poll_permit`]).
#[derive(Debug)]
pub struct PollPermit {
    polls: Arc<Mutex<PollCounts>>,
    session_id: String,
    address: IpAddr,
}

impl Drop for PollPermit {
    fn drop(&mut self) {
        let mut counts = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
            if let Some(count) = map.get_mut(key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    map.remove(key);
                }
            }
        }
        release(&mut counts.by_session, &self.session_id);
        release(&mut counts.by_address, &self.address);
        metrics::gauge!("callbox_legacy_polls").decrement(1.0);
    }
}

/// The key under which a legacy headers string that is not a JSON object is kept.
const LEGACY_HEADERS_KEY: &str = "ph";

/// A legacy message's headers (the SDK takes them only as a string) as the headers object of the inboxes: a
/// string holding a JSON object is that object, so both SDKs see the same fields; any other string is kept whole
/// as `{"ph": string}`.
fn headers_from_legacy(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(headers)) => Value::Object(headers).to_string(),
        _ => json!({ LEGACY_HEADERS_KEY: text }).to_string(),
    }
}

/// The inverse of [`headers_from_legacy`]: the string a legacy app reads as its message's headers (`None` for
/// none). `{"ph": string}` gives the string back as it was sent; any other object its JSON text.
fn headers_to_legacy(headers: &str) -> Option<String> {
    match serde_json::from_str::<Value>(headers) {
        Ok(Value::Object(map)) if map.is_empty() => None,
        Ok(Value::Object(map)) if map.len() == 1 && map.get(LEGACY_HEADERS_KEY).is_some_and(Value::is_string) => {
            map.get(LEGACY_HEADERS_KEY).and_then(Value::as_str).map(str::to_owned)
        }
        Ok(Value::Object(map)) => Some(Value::Object(map).to_string()),
        _ => None,
    }
}

fn frame_error(error: FrameError) -> DomainError {
    DomainError::with_message(error.reason(), error.to_string())
}

fn malformed(message: &'static str) -> DomainError {
    DomainError::with_message(Reason::MalformedRequest, message)
}

impl Callbox {
    /// This node's legacy state.
    pub fn legacy(&self) -> &LegacyNode {
        &self.legacy
    }

    /// base64url of the first 16 bytes of a master-key derivation of `parts`: 128 bits, unguessable, the same on
    /// every node. The label starts with `legacy` and a NUL, which no session id contains, so it never names a
    /// session secret; NUL separates the parts, which no user id or application key contains.
    pub(super) fn legacy_tag(&self, parts: &[&str]) -> String {
        URL_SAFE_NO_PAD.encode(&self.legacy_secret(parts).expose_bytes()[..16])
    }

    /// The master-key derivation of `parts` behind [`Callbox::legacy_tag`] and the transport keys.
    pub(super) fn legacy_secret(&self, parts: &[&str]) -> callbox_core::Secret {
        let mut label = String::from("legacy");
        for part in parts {
            label.push('\0');
            label.push_str(part);
        }
        self.master.session_secret(&label, 0)
    }

    /// The transport channel of `user_id` of `app_key`: where messages to the user arrive, on every device.
    pub fn legacy_transport_channel(&self, app_key: &str, user_id: &str) -> String {
        format!("t-{}", self.legacy_tag(&["transport-channel", app_key, user_id]))
    }

    /// The channels `session` may subscribe to.
    pub fn legacy_channels(&self, session: &SessionRecord) -> LegacyChannels {
        LegacyChannels {
            transport: self.legacy_transport_channel(&session.app_key, &session.user_id),
            broadcast: format!("b-{}", self.legacy_tag(&["broadcast-channel", &session.id])),
            signal: self.legacy_signal_channel(&session.id),
        }
    }

    /// The signal channel of session `session_id`: `s-<session id>.<tag>`, so that a node relaying a call frame
    /// knows whose channel it is (the SDK puts its session id in every call frame it sends anyway).
    pub fn legacy_signal_channel(&self, session_id: &str) -> String {
        format!("s-{session_id}.{}", self.legacy_tag(&["signal-channel", session_id]))
    }

    /// The session whose signal channel `channel` is, if it is one this server made (checked in constant time).
    pub fn legacy_signal_channel_owner(&self, channel: &str) -> Option<String> {
        let (session_id, _) = channel.strip_prefix("s-")?.rsplit_once('.')?;
        let expected = self.legacy_signal_channel(session_id);
        bool::from(expected.as_bytes().ct_eq(channel.as_bytes())).then(|| session_id.to_owned())
    }

    fn legacy_key(&self, session_id: &str, kind: KeyKind) -> String {
        format!("{}{session_id}.{}", kind.prefix(), self.legacy_tag(&[kind.label(), session_id]))
    }

    /// The legacy realtime profile of a session: the per-session keys and the channel names of
    /// `GET /v1/configuration/user`.
    pub fn legacy_profile(&self, session: &SessionRecord) -> LegacyProfile {
        LegacyProfile {
            publish_key: self.legacy_key(&session.id, KeyKind::Publish),
            subscribe_key: self.legacy_key(&session.id, KeyKind::Subscribe),
            channels: self.legacy_channels(session),
            key: self.legacy_instance_key(&session.app_key, &session.user_id),
        }
    }

    /// The session a publish or subscribe key was made for. A key this server did not make → `not_found` (the
    /// same answer as an unknown session: a key proves nothing else); an ended session → `session_revoked`; an
    /// expired one → `session_expired`.
    pub async fn legacy_session(&self, key: &str, kind: KeyKind) -> DomainResult<SessionRecord> {
        let unknown = || DomainError::with_message(Reason::NotFound, "unknown key");
        let rest = key.strip_prefix(kind.prefix()).ok_or_else(unknown)?;
        let (session_id, _) = rest.rsplit_once('.').ok_or_else(unknown)?;
        let expected = self.legacy_key(session_id, kind);
        if !bool::from(expected.as_bytes().ct_eq(key.as_bytes())) {
            return Err(unknown());
        }
        let mut session = match self.store.get_session(session_id).await {
            Ok(session) => session,
            Err(StoreError::NotFound) => return Err(unknown()),
            Err(other) => return Err(other.into()),
        };
        if session.revoked_at.is_none() && session.expires_at <= self.now() {
            // The cached copy may predate a renewal made on another node.
            session = self.fresh_session(session_id).await?;
        }
        if session.revoked_at.is_some() {
            return Err(DomainError::new(Reason::SessionRevoked));
        }
        if session.expires_at <= self.now() {
            return Err(DomainError::new(Reason::SessionExpired));
        }
        Ok(session)
    }

    /// The session of a `/publish` call, which names both of its keys: the publish key proves the session, and
    /// the subscribe key must be the same session's (checked in constant time); another session's → `not_found`.
    pub async fn legacy_publisher(&self, publish_key: &str, subscribe_key: &str) -> DomainResult<SessionRecord> {
        let session = self.legacy_session(publish_key, KeyKind::Publish).await?;
        let expected = self.legacy_key(&session.id, KeyKind::Subscribe);
        if !bool::from(expected.as_bytes().ct_eq(subscribe_key.as_bytes())) {
            return Err(DomainError::with_message(Reason::NotFound, "the subscribe key is not this session's"));
        }
        Ok(session)
    }

    fn transport_of(&self, app_key: &str, id: String, participants: Vec<String>) -> Transport {
        let key = self.legacy_secret(&["transport-key", app_key, &id]);
        let participants = participants
            .into_iter()
            .map(|user| {
                let channel = self.legacy_transport_channel(app_key, &user);
                (user, channel)
            })
            .collect();
        Transport { id, key: STANDARD.encode(key.expose_bytes()), participants }
    }

    /// The transport of `participants` (sorted, distinct) of `app_key`, recorded so that any participant can
    /// look it up by id.
    async fn ensure_transport(&self, app_key: &str, participants: Vec<String>) -> DomainResult<Arc<Transport>> {
        let mut parts = vec!["transport-id", app_key];
        parts.extend(participants.iter().map(String::as_str));
        let id = format!("T{}", self.legacy_tag(&parts));
        let cache_key = (app_key.to_owned(), id.clone());
        if let Some(cached) = self.legacy.cached_transport(&cache_key) {
            return Ok(cached);
        }
        self.store.put_transport(app_key, &id, &participants, self.now()).await?;
        let transport = Arc::new(self.transport_of(app_key, id, participants));
        self.legacy.remember_transport(cache_key, Arc::clone(&transport));
        Ok(transport)
    }

    /// `POST /v1/transport`: the transport between `session`'s user and `identities`. Apps with
    /// platform-managed users leave unknown users out (the SDK then reports them as not existing). Needs
    /// `messaging`; at most `realtime.max_recipients` others.
    pub async fn open_transport(
        &self,
        session: &SessionRecord,
        identities: Vec<String>,
    ) -> DomainResult<Arc<Transport>> {
        if !session.capabilities.contains(&Capability::Messaging) {
            return Err(DomainError::new(Reason::CapabilityNotGranted));
        }
        let max = self.realtime.config().max_recipients;
        let mut others: Vec<String> = identities.into_iter().filter(|user| *user != session.user_id).collect();
        others.sort();
        others.dedup();
        if others.is_empty() {
            return Err(malformed("name at least one identity other than yourself"));
        }
        if others.len() > max {
            return Err(DomainError::with_message(
                Reason::MalformedRequest,
                format!("a transport has at most {max} participants besides you"),
            ));
        }
        if !others.iter().all(|user| callbox_core::is_valid_user_id(user)) {
            return Err(malformed("identities must be 1-255 bytes without control characters"));
        }
        let app = self.store.get_app(&session.app_key).await?;
        let known = if app.platform_user_auth {
            self.store.known_users(&session.app_key, &others).await?
        } else {
            others.clone()
        };
        let mut participants: Vec<String> = others.into_iter().filter(|user| known.contains(user)).collect();
        participants.push(session.user_id.clone());
        participants.sort();
        self.ensure_transport(&session.app_key, participants).await
    }

    /// `GET /v1/transport?transportId=`: a transport `session`'s user takes part in; any other → `not_found`.
    pub async fn transport(&self, session: &SessionRecord, id: &str) -> DomainResult<Arc<Transport>> {
        let not_found = || DomainError::with_message(Reason::NotFound, "no such transport");
        if id.is_empty() || id.len() > frames::MAX_ID_LEN {
            return Err(not_found());
        }
        let cache_key = (session.app_key.clone(), id.to_owned());
        let transport = match self.legacy.cached_transport(&cache_key) {
            Some(transport) => transport,
            None => match self.store.get_transport(&session.app_key, id).await {
                Ok(participants) => {
                    let transport = Arc::new(self.transport_of(&session.app_key, id.to_owned(), participants));
                    self.legacy.remember_transport(cache_key, Arc::clone(&transport));
                    transport
                }
                Err(StoreError::NotFound) => return Err(not_found()),
                Err(other) => return Err(other.into()),
            },
        };
        if !transport.participants.iter().any(|(user, _)| *user == session.user_id) {
            return Err(not_found());
        }
        Ok(transport)
    }

    /// One frame `session` published on `channel` (`/publish/...`): a frame of a message to the transport's
    /// other participants, or of a delivery receipt. Refusals: a malformed or undecryptable frame, a transport
    /// or channel not the session's, no `messaging`, too many messages, too large a message. A frame without a
    /// transport id is a call frame ([`Callbox::legacy_call_frame`]).
    pub async fn legacy_publish(
        &self,
        session: &SessionRecord,
        channel: &str,
        frame: &str,
    ) -> DomainResult<Publication> {
        let part = frames::parse_frame(frame).map_err(frame_error)?;
        let Some(transport_id) = part.transport_id else {
            self.legacy_call_frame(session, channel, &part, frame).await?;
            return Ok(Publication::Nothing);
        };
        if !session.capabilities.contains(&Capability::Messaging) {
            return Err(DomainError::new(Reason::CapabilityNotGranted));
        }
        let transport = self.transport(session, transport_id).await?;
        if !transport.participants.iter().any(|(_, owned)| owned == channel) {
            return Err(DomainError::with_message(Reason::NotFound, "the channel is not in this transport"));
        }
        let Some(encrypted) = self.assemble(session, &part)? else { return Ok(Publication::Nothing) };
        let message_id = part.session_id.to_owned();
        let seen_key = (session.id.clone(), message_id.clone());
        let outcome = self.publish_assembled(session, &transport, &message_id, &encrypted).await;
        let mut assembly = self.legacy.assembly.lock().unwrap_or_else(|p| p.into_inner());
        match &outcome {
            // A retry of a refused message may succeed.
            Err(_) => assembly.seen.remove(&seen_key),
            Ok(_) => assembly.seen.insert(seen_key, Instant::now()),
        };
        outcome
    }

    /// Adds a frame to its message. `Some(ciphertext)` when the message is complete and not handled before (it is
    /// then marked in flight); `None` when more frames are due or it was handled.
    fn assemble(&self, session: &SessionRecord, part: &frames::FramePart<'_>) -> DomainResult<Option<String>> {
        let config = self.realtime.config();
        // base64 of the encrypted JSON of the largest message, with room for the envelope.
        let max_bytes = (config.max_text_bytes + config.max_headers_bytes) * 3 + 4096;
        let now = Instant::now();
        let key = (session.id.clone(), part.session_id.to_owned());
        let mut assembly = self.legacy.assembly.lock().unwrap_or_else(|p| p.into_inner());
        assembly.sweep(now);
        if assembly.last_forget.is_none_or(|at| now.duration_since(at) > ASSEMBLY_WINDOW) {
            assembly.last_forget = Some(now);
            self.legacy.forget_idle();
        }
        if assembly.seen.contains_key(&key) {
            return Ok(None);
        }
        let complete = if part.count == 1 {
            LegacyNode::check_rate(&self.legacy.frames, &session.id)?;
            part.chunk.to_owned()
        } else {
            if !assembly.partial.contains_key(&key) {
                let of_session = assembly.partial.keys().filter(|(owner, _)| *owner == session.id).count();
                if of_session >= MAX_ASSEMBLIES_PER_SESSION || assembly.partial.len() >= MAX_ASSEMBLIES {
                    return Err(DomainError {
                        retry_after: Some(1),
                        ..DomainError::with_message(Reason::RateLimited, "too many multi-frame messages in progress")
                    });
                }
                LegacyNode::check_rate(&self.legacy.frames, &session.id)?;
                let partial = Partial { chunks: vec![None; part.count], received: 0, bytes: 0, started: now };
                assembly.partial.insert(key.clone(), partial);
            }
            let Some(partial) = assembly.partial.get_mut(&key) else { return Ok(None) };
            if partial.chunks.len() != part.count {
                return Err(malformed("the frames of one message disagree on their count"));
            }
            if partial.chunks[part.index].is_some() {
                return Ok(None);
            }
            partial.bytes += part.chunk.len();
            if partial.bytes > max_bytes {
                assembly.partial.remove(&key);
                return Err(DomainError::with_message(Reason::PayloadTooLarge, "the message is too large"));
            }
            partial.chunks[part.index] = Some(part.chunk.to_owned());
            partial.received += 1;
            if partial.received < part.count {
                return Ok(None);
            }
            let Some(partial) = assembly.partial.remove(&key) else { return Ok(None) };
            partial.chunks.into_iter().flatten().collect()
        };
        if complete.len() > max_bytes {
            return Err(DomainError::with_message(Reason::PayloadTooLarge, "the message is too large"));
        }
        if assembly.seen.len() >= MAX_REMEMBERED {
            assembly.seen.clear();
        }
        // In flight: the same frame on the other participants' channels, arriving meanwhile, is not handled twice.
        assembly.seen.insert(key, now);
        Ok(Some(complete))
    }

    async fn publish_assembled(
        &self,
        session: &SessionRecord,
        transport: &Transport,
        message_id: &str,
        encrypted: &str,
    ) -> DomainResult<Publication> {
        let key = frames::parse_key(&transport.key).map_err(frame_error)?;
        let body = frames::decrypt_json(&key, encrypted).map_err(frame_error)?;
        if body.get("fu").and_then(Value::as_str) != Some(session.user_id.as_str()) {
            return Err(malformed("fu must be the sender's user id"));
        }
        let kind = (body.get("md").and_then(Value::as_u64), body.get("bt").and_then(Value::as_str));
        match kind {
            (Some(1), Some("msg")) => self.legacy_message(session, transport, message_id, &body).await,
            (Some(2), Some("msg")) => self.legacy_receipt(session, message_id).await,
            _ => Err(malformed("only messages (md 1) and receipts (md 2) of body type msg are supported")),
        }
    }

    async fn legacy_message(
        &self,
        session: &SessionRecord,
        transport: &Transport,
        message_id: &str,
        body: &Map<String, Value>,
    ) -> DomainResult<Publication> {
        let config = self.realtime.config();
        let text = body
            .get("bd")
            .and_then(Value::as_str)
            .and_then(|bd| serde_json::from_str::<Value>(bd).ok())
            .and_then(|bd| bd.get("t").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| malformed("bd must be the JSON of {\"t\": text}"))?;
        let headers = match body.get("nvps").and_then(|nvps| nvps.get("ph")) {
            None | Some(Value::Null) => "{}".to_owned(),
            Some(Value::String(text)) => headers_from_legacy(text),
            Some(Value::Object(headers)) => Value::Object(headers.clone()).to_string(),
            Some(_) => return Err(malformed("nvps.ph (the message headers) must be a string")),
        };
        if text.len() > config.max_text_bytes {
            return Err(DomainError::with_message(
                Reason::PayloadTooLarge,
                format!("the text is {} bytes; at most {} are accepted", text.len(), config.max_text_bytes),
            ));
        }
        if headers.len() > config.max_headers_bytes {
            return Err(DomainError::with_message(
                Reason::PayloadTooLarge,
                format!("the headers are {} bytes; at most {} are accepted", headers.len(), config.max_headers_bytes),
            ));
        }
        let recipients: Vec<String> = transport
            .participants
            .iter()
            .map(|(user, _)| user.clone())
            .filter(|user| *user != session.user_id)
            .collect();
        if recipients.is_empty() {
            return Err(malformed("the transport has no other participant"));
        }
        LegacyNode::check_rate(&self.legacy.messages, &session.id)?;
        let mut outcomes = self
            .accept_messages_with_ids(
                &session.app_key,
                &session.user_id,
                vec![(Some(message_id.to_owned()), recipients, text, headers)],
            )
            .await;
        let accepted = outcomes.pop().unwrap_or_else(|| Err(DomainError::new(Reason::Internal)))?;
        Ok(Publication::Message(accepted))
    }

    async fn legacy_receipt(&self, session: &SessionRecord, message_id: &str) -> DomainResult<Publication> {
        let Some(seq) = self.store.find_inbox_message(&session.app_key, &session.user_id, message_id).await? else {
            return Err(DomainError::with_message(Reason::NotFound, "no message with this id in your inbox"));
        };
        Ok(match self.confirm_delivery(&session.app_key, &session.user_id, seq, message_id).await? {
            Some((sender, entry)) => Publication::Receipt(sender, entry),
            None => Publication::Nothing,
        })
    }

    /// `entry` of `session`'s user's inbox as the frames a legacy client reads, encrypted with the key of the
    /// transport of the message's sender and recipients (of the receipt's two users).
    pub async fn legacy_frames(&self, session: &SessionRecord, entry: &InboxEntry) -> DomainResult<Vec<String>> {
        let app_key = &session.app_key;
        let (message_id, participants, body) = match &entry.item {
            InboxItem::Message(message) => {
                let mut participants = message.recipient_ids.clone();
                participants.push(message.sender_id.clone());
                let mut body = json!({
                    "md": 1, "bt": "msg", "bv": MESSAGING_VERSION,
                    "bd": json!({ "t": message.text }).to_string(),
                    "fu": message.sender_id, "fi": "", "fd": "",
                    "fs": self.legacy_transport_channel(app_key, &message.sender_id), "fc": "",
                });
                if let Some(ph) = headers_to_legacy(&message.headers) {
                    body["nvps"] = json!({ "ph": ph });
                }
                (message.id.clone(), participants, body)
            }
            InboxItem::Receipt { message_id, recipient_id, .. } => {
                let body = json!({
                    "md": 2, "bt": "msg", "bv": MESSAGING_VERSION,
                    "fu": recipient_id, "fi": "", "fd": "",
                    "fs": self.legacy_transport_channel(app_key, recipient_id), "fc": "",
                });
                (message_id.clone(), vec![recipient_id.clone(), session.user_id.clone()], body)
            }
        };
        let mut participants = participants;
        participants.sort();
        participants.dedup();
        let transport = self.ensure_transport(app_key, participants).await?;
        let key = frames::parse_key(&transport.key).map_err(frame_error)?;
        let mut iv = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut iv);
        let encrypted = frames::encrypt(&key, &iv, body.to_string().as_bytes());
        let multi_id = rand::rngs::OsRng.next_u32() % 2_000_000_000;
        Ok(frames::split_frames(&message_id, Some(&transport.id), &encrypted, multi_id))
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn timetokens_are_17_digits_and_read_back_as_written() {
        for cursor in [
            Cursor::Replay { after: 0, until: 0 },
            Cursor::Replay { after: 12, until: 99_999_999 },
            Cursor::Live(0),
            Cursor::Live(9_999_999_999_999_999),
        ] {
            let token = cursor.token();
            assert_eq!(token.len(), 17, "{token}");
            assert_eq!(Cursor::parse(&token).unwrap(), cursor);
        }
        assert_eq!(Cursor::parse("0").unwrap(), Cursor::Start);
        // A PubNub time token (what /time/0 answers) is a fresh start.
        assert_eq!(Cursor::parse("17647987654321234").unwrap(), Cursor::Start);
        for bad in ["", "00", "abc", "1234567890123456", "123456789012345678", "2000000000000000x"] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn legacy_header_strings_map_to_header_objects_and_back() {
        use super::{headers_from_legacy, headers_to_legacy};
        assert_eq!(headers_from_legacy(r#"{"topic":"x"}"#), r#"{"topic":"x"}"#);
        assert_eq!(headers_to_legacy(r#"{"topic":"x"}"#).as_deref(), Some(r#"{"topic":"x"}"#));
        for text in ["plain words", "[1,2]", "\"quoted\"", ""] {
            let stored = headers_from_legacy(text);
            assert!(stored.starts_with('{'), "{stored}");
            assert_eq!(headers_to_legacy(&stored).as_deref(), Some(text), "a legacy string comes back as it was sent");
        }
        assert_eq!(headers_to_legacy("{}"), None);
        assert_eq!(headers_to_legacy(r#"{"ph":1}"#).as_deref(), Some(r#"{"ph":1}"#));
    }

    #[test]
    fn a_replay_beyond_what_the_token_holds_ends_after_one_page() {
        assert_eq!(Cursor::started(5), Cursor::Replay { after: 0, until: 5 });
        assert_eq!(Cursor::started(100_000_000), Cursor::Live(100_000_000));
        assert_eq!(Cursor::replayed(5, 3, true), Cursor::Replay { after: 3, until: 5 });
        assert_eq!(Cursor::replayed(5, 5, true), Cursor::Live(5));
        assert_eq!(Cursor::replayed(5, 3, false), Cursor::Live(5));
        assert_eq!(Cursor::replayed(200_000_000, 3, true), Cursor::Live(200_000_000));
    }
}
