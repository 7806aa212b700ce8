//! This node's live connections: who is connected, fan-out of frames to them, and closing them when their session
//! ends. Frames for users on other nodes, and session events, also go to [`super::cluster`] when Redis is set.

use super::calls::{CallDelivery, CallRefusal, CallRegistry, CallTarget, Endpoint, Placed, Signal};
use super::cluster::{Cluster, Published};
use super::frames::{self, Frame};
use super::{CallsConfig, Closing, RealtimeConfig, SessionEvent};
use crate::store::{InboxEntry, MessageRecord, Store};
use callbox_core::Reason;
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use tokio::sync::{mpsc, watch};

/// What a connection's writer is handed.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An entry of the user's inbox, in sequence: written in `seq` order, duplicates dropped.
    Seq(u64, Frame),
    /// Any other frame (the copy of a sent message to the sender's other devices).
    Plain(Frame),
    /// A call frame (docs/calls.md), with what the connection does besides writing it.
    Call(CallDelivery),
}

/// One live connection as the hub sees it.
#[derive(Debug)]
pub struct Connection {
    /// Node-local id.
    pub id: u64,
    /// The session it authenticated with.
    pub session_id: String,
    /// Its application.
    pub app_key: String,
    /// Its user.
    pub user_id: String,
    /// When the session was created (for revoke-before).
    pub session_created_at: DateTime<Utc>,
    /// Whether the session has `messaging` (otherwise nothing is delivered to it).
    pub messaging: bool,
    /// Whether the session has `calling` (otherwise it is never rung).
    pub calling: bool,
    /// When it connected.
    pub connected_at: DateTime<Utc>,
    /// The client's address.
    pub peer: String,
    outbound: mpsc::Sender<Outbound>,
    close: watch::Sender<Option<Closing>>,
}

impl Connection {
    /// Queues a frame for this connection only (never waits; a full queue closes it, as for fan-out).
    pub fn send_plain(&self, frame: Frame) {
        self.offer(Outbound::Plain(frame));
    }

    /// Queues `outbound` without waiting. A full queue is a reader that does not drain its socket: closing it
    /// keeps this node's memory bounded, and the client reconnects (messages resume from the store, calls
    /// rejoin). Returns whether it was closed for that.
    fn offer(&self, outbound: Outbound) -> bool {
        let full = matches!(self.outbound.try_send(outbound), Err(mpsc::error::TrySendError::Full(_)));
        if full {
            self.close(Closing::new(
                Reason::ServiceUnavailable,
                "the connection did not keep up with its frames: reconnect and resume",
            ));
        }
        full
    }

    /// Queues a frame for this connection only, waiting for room: for the answers to the connection's own
    /// frames, which must slow their sender down rather than close it. Returns when the connection is gone.
    pub async fn send_waiting(&self, frame: Frame) {
        let _ = self.outbound.send(Outbound::Plain(frame)).await;
    }

    /// Asks the connection to close with `closing` (the first reason wins).
    pub fn close(&self, closing: Closing) {
        self.close.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(closing);
                true
            } else {
                false
            }
        });
    }
}

/// What the connection task keeps: its receiving ends.
#[derive(Debug)]
pub struct Registered {
    /// The hub's view of it.
    pub connection: Arc<Connection>,
    /// Frames to write.
    pub outbound: mpsc::Receiver<Outbound>,
    /// Set when it must close.
    pub close: watch::Receiver<Option<Closing>>,
    /// The session's message rate limiter (shared by the session's connections on this node).
    pub rate: Arc<DefaultDirectRateLimiter>,
    hub: Hub,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.hub.unregister(&self.connection);
    }
}

/// The parts of a connection given to [`Hub::register`].
#[derive(Debug, Clone)]
pub struct NewConnection {
    /// The session.
    pub session_id: String,
    /// Its application.
    pub app_key: String,
    /// Its user.
    pub user_id: String,
    /// When the session was created.
    pub session_created_at: DateTime<Utc>,
    /// Whether `messaging` was granted.
    pub messaging: bool,
    /// Whether `calling` was granted.
    pub calling: bool,
    /// Client address.
    pub peer: String,
}

/// Metric handles, made once.
#[derive(Debug)]
struct Metrics {
    connections: metrics::Gauge,
    accepted: metrics::Counter,
    delivered: metrics::Counter,
    failed: metrics::Counter,
    fanout: metrics::Histogram,
    slow_closed: metrics::Counter,
}

impl Metrics {
    fn new() -> Self {
        Self {
            connections: metrics::gauge!("callbox_realtime_connections"),
            accepted: metrics::counter!("callbox_realtime_messages_total", "outcome" => "accepted"),
            delivered: metrics::counter!("callbox_realtime_messages_total", "outcome" => "delivered"),
            failed: metrics::counter!("callbox_realtime_messages_total", "outcome" => "failed"),
            fanout: metrics::histogram!("callbox_realtime_fanout_seconds"),
            slow_closed: metrics::counter!("callbox_realtime_slow_readers_closed_total"),
        }
    }
}

type UserKey = (String, String);

/// The hub's state (shared with the cluster tasks through a weak reference).
#[derive(Debug)]
pub(super) struct Inner {
    config: RealtimeConfig,
    store: Arc<dyn Store>,
    /// This node's name in the cluster (random per start): the home of the calls placed here.
    node_id: String,
    calls: CallRegistry,
    next_id: AtomicU64,
    by_user: RwLock<HashMap<UserKey, Vec<Arc<Connection>>>>,
    /// Rate limiters by session id, with how many of this node's connections use each.
    rates: Mutex<HashMap<String, (Arc<DefaultDirectRateLimiter>, usize)>>,
    cluster: OnceLock<Cluster>,
    /// The legacy transport's call frames (every node keeps every one; see `mailbox`).
    mailbox: super::mailbox::Mailbox,
    metrics: Metrics,
}

/// This node's realtime hub. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// A live connection as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    /// The session it authenticated with.
    pub session_id: String,
    /// When it connected (ISO-8601).
    pub connected_at: String,
    /// The client address.
    pub peer: String,
    /// Whether it receives messages.
    pub messaging: bool,
}

impl Hub {
    /// A hub for this node over `store`.
    pub fn new(store: Arc<dyn Store>, config: RealtimeConfig, calls: CallsConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                store,
                node_id: crate::crypto::random_token(12),
                calls: CallRegistry::new(calls),
                next_id: AtomicU64::new(1),
                by_user: RwLock::default(),
                rates: Mutex::default(),
                cluster: OnceLock::new(),
                mailbox: super::mailbox::Mailbox::default(),
                metrics: Metrics::new(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RealtimeConfig {
        &self.inner.config
    }

    /// Connects the hub to the other nodes through Redis at `url`, and starts the retention purge. Called once
    /// at start; the background tasks end when the last clone of the hub is dropped.
    pub async fn start(&self, redis_url: Option<&str>) -> Result<(), redis::RedisError> {
        self.inner.calls.start_writer(self.inner.store.clone());
        if let Some(url) = redis_url {
            let cluster = Cluster::connect(url, Arc::downgrade(&self.inner), self.inner.node_id.clone()).await?;
            let _ = self.inner.cluster.set(cluster);
        }
        tokio::spawn(purge_in_the_background(Arc::downgrade(&self.inner)));
        Ok(())
    }

    /// Whether frames go to other nodes too.
    pub fn clustered(&self) -> bool {
        self.inner.cluster.get().is_some()
    }

    /// Registers a connection that passed authentication.
    pub fn register(&self, new: NewConnection) -> Registered {
        let (outbound_tx, outbound) = mpsc::channel(self.inner.config.outbound_queue.max(1));
        let (close_tx, close) = watch::channel(None);
        let connection = Arc::new(Connection {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            session_id: new.session_id,
            app_key: new.app_key,
            user_id: new.user_id,
            session_created_at: new.session_created_at,
            messaging: new.messaging,
            calling: new.calling,
            connected_at: Utc::now(),
            peer: new.peer,
            outbound: outbound_tx,
            close: close_tx,
        });
        let rate = {
            let mut rates = self.inner.rates.lock().unwrap_or_else(|p| p.into_inner());
            let entry = rates.entry(connection.session_id.clone()).or_insert_with(|| {
                let config = &self.inner.config;
                let per_second = NonZeroU32::new(config.messages_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
                let burst = NonZeroU32::new(config.message_burst.max(1)).unwrap_or(NonZeroU32::MIN);
                (Arc::new(RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst))), 0)
            });
            entry.1 += 1;
            entry.0.clone()
        };
        self.inner
            .by_user
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry((connection.app_key.clone(), connection.user_id.clone()))
            .or_default()
            .push(connection.clone());
        self.inner.metrics.connections.increment(1.0);
        Registered { connection, outbound, close, rate, hub: self.clone() }
    }

    fn unregister(&self, connection: &Arc<Connection>) {
        {
            let mut by_user = self.inner.by_user.write().unwrap_or_else(|p| p.into_inner());
            let key = (connection.app_key.clone(), connection.user_id.clone());
            if let Some(list) = by_user.get_mut(&key) {
                list.retain(|c| c.id != connection.id);
                if list.is_empty() {
                    by_user.remove(&key);
                }
            }
        }
        {
            let mut rates = self.inner.rates.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = rates.get_mut(&connection.session_id) {
                entry.1 = entry.1.saturating_sub(1);
                if entry.1 == 0 {
                    rates.remove(&connection.session_id);
                }
            }
        }
        self.inner.metrics.connections.decrement(1.0);
    }

    /// Live connections of a user on this node.
    pub fn local_connections(&self, app_key: &str, user_id: &str) -> Vec<ConnectionView> {
        let by_user = self.inner.by_user.read().unwrap_or_else(|p| p.into_inner());
        by_user
            .get(&(app_key.to_owned(), user_id.to_owned()))
            .map(|list| {
                list.iter()
                    .map(|c| ConnectionView {
                        session_id: c.session_id.clone(),
                        connected_at: callbox_core::time::format_iso_seconds(c.connected_at),
                        peer: c.peer.clone(),
                        messaging: c.messaging,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Live connections of an application on this node.
    pub fn app_connection_count(&self, app_key: &str) -> usize {
        let by_user = self.inner.by_user.read().unwrap_or_else(|p| p.into_inner());
        by_user.iter().filter(|((app, _), _)| app == app_key).map(|(_, list)| list.len()).sum()
    }

    /// Live connections on this node, in all.
    pub fn connection_count(&self) -> usize {
        self.inner.by_user.read().unwrap_or_else(|p| p.into_inner()).values().map(Vec::len).sum()
    }

    /// Delivers `outbound` to every messaging connection of a user, on this node and (when clustered) the
    /// others, except connection `except` of this node. `accepted_at` times the fan-out.
    pub fn deliver(
        &self,
        app_key: &str,
        user_id: &str,
        outbound: Outbound,
        except: Option<u64>,
        accepted_at: DateTime<Utc>,
    ) {
        self.inner.deliver_local(app_key, user_id, &outbound, except, accepted_at);
        let (seq, frame) = match &outbound {
            Outbound::Seq(seq, frame) => (Some(*seq), frame),
            Outbound::Plain(frame) => (None, frame),
            // Call frames travel through `send_calls`.
            Outbound::Call(_) => return,
        };
        if let Some(cluster) = self.inner.cluster.get() {
            cluster.publish(Published::Deliver {
                app_key: app_key.to_owned(),
                user_id: user_id.to_owned(),
                seq,
                frame: frame.to_string(),
                accepted_at,
            });
        }
    }

    /// Applies a session event here and on every other node. Called by the domain after the write.
    pub fn session_event(&self, event: SessionEvent) {
        self.inner.apply(&event);
        if let Some(cluster) = self.inner.cluster.get() {
            cluster.publish(Published::Event(event));
        }
    }

    /// This node's name in the cluster.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// The calls homed on this node.
    pub fn calls(&self) -> &CallRegistry {
        &self.inner.calls
    }

    /// `call.start` from a connection of this node (docs/calls.md).
    pub fn start_call(
        &self,
        caller: Endpoint,
        callee_id: String,
        sdp: String,
        headers: String,
    ) -> Result<Placed, CallRefusal> {
        self.inner.calls.start(&self.inner, caller, callee_id, sdp, headers)
    }

    /// Sends a signal to the home of its call: this node's registry, or another node's through Redis.
    pub fn signal_home(&self, home: &str, signal: Signal) {
        self.inner.signal_home(home, signal);
    }

    /// Sends a signal to whichever node is the call's home (`call.rejoin` from a new connection, which does not
    /// know it). Without a cluster, an unknown call is refused at once.
    pub fn signal_any(&self, signal: Signal) {
        if self.inner.calls.has(&signal.call_id) || self.inner.cluster.get().is_none() {
            self.inner.calls.handle(&self.inner, signal);
        } else if let Some(cluster) = self.inner.cluster.get() {
            cluster.publish(Published::CallSignal { home: ANY_NODE.to_owned(), signal });
        }
    }

    /// Fans out a message just accepted from `message.sender_id` (`seqs`: each recipient's inbox sequence number,
    /// in `message.recipient_ids` order): its inbox entry to every recipient's connections, and a copy without a
    /// sequence number to the sender's other connections (all but `except`, the one it came from), since it is
    /// not in the sender's inbox unless the sender is a recipient. Counted as accepted. The WebSocket and the
    /// legacy transport both send through this.
    pub fn fan_out_message(&self, message: &MessageRecord, seqs: &[u64], except: Option<u64>) {
        self.inner.metrics.accepted.increment(1);
        let (app_key, now) = (&message.app_key, message.created_at);
        for (recipient, seq) in message.recipient_ids.iter().zip(seqs) {
            self.deliver(app_key, recipient, Outbound::Seq(*seq, frames::message(Some(*seq), message)), None, now);
        }
        if !message.recipient_ids.contains(&message.sender_id) {
            self.deliver(app_key, &message.sender_id, Outbound::Plain(frames::message(None, message)), except, now);
        }
    }

    /// Fans out the receipt entry a recipient's confirmation stored in `sender_id`'s inbox (the answer of
    /// [`crate::domain::Callbox::confirm_delivery`]). Counted as delivered.
    pub fn fan_out_receipt(&self, app_key: &str, sender_id: &str, entry: &InboxEntry, at: DateTime<Utc>) {
        self.inner.metrics.delivered.increment(1);
        self.deliver(app_key, sender_id, Outbound::Seq(entry.seq, frames::entry(entry)), None, at);
    }

    /// Call frames of the legacy transport for `channel`, here and on every other node.
    pub fn post_legacy_frames(&self, channel: &str, frames: Vec<String>) {
        let shared: Vec<Arc<str>> = frames.iter().map(|frame| Arc::from(frame.as_str())).collect();
        self.inner.mailbox.post(channel, &shared);
        if let Some(cluster) = self.inner.cluster.get() {
            cluster.publish(Published::LegacyFrames { channel: channel.to_owned(), frames });
        }
    }

    /// This node's legacy call frames.
    pub fn mailbox(&self) -> &super::mailbox::Mailbox {
        &self.inner.mailbox
    }

    /// Counts failed receipts.
    pub fn count_failed(&self, n: u64) {
        self.inner.metrics.failed.increment(n);
    }
}

/// The `home` of a call signal that any node holding the call may take.
pub(super) const ANY_NODE: &str = "*";

impl Inner {
    pub(super) fn node_id(&self) -> &str {
        &self.node_id
    }

    pub(super) fn calls(&self) -> &CallRegistry {
        &self.calls
    }

    pub(super) fn mailbox(&self) -> &super::mailbox::Mailbox {
        &self.mailbox
    }

    pub(super) fn is_clustered(&self) -> bool {
        self.cluster.get().is_some()
    }

    /// Connections with `calling` of `user_id` on this node, but those of `except_session`.
    pub(super) fn calling_devices_here(&self, app_key: &str, user_id: &str, except_session: &str) -> usize {
        let by_user = self.by_user.read().unwrap_or_else(|p| p.into_inner());
        by_user
            .get(&(app_key.to_owned(), user_id.to_owned()))
            .map(|list| list.iter().filter(|c| c.calling && c.session_id != except_session).count())
            .unwrap_or(0)
    }

    /// Delivers call frames here and, for targets that may be elsewhere, to the other nodes.
    pub(super) fn send_calls(&self, effects: Vec<(CallTarget, CallDelivery)>) {
        for (target, delivery) in effects {
            let elsewhere = match &target {
                CallTarget::Connection(endpoint) => endpoint.node != self.node_id,
                CallTarget::Devices { .. } => true,
            };
            self.deliver_call_local(&target, &delivery);
            if elsewhere {
                if let Some(cluster) = self.cluster.get() {
                    cluster.publish(Published::CallDeliver {
                        target,
                        call_id: delivery.call_id,
                        home: delivery.home,
                        update: delivery.update,
                        frame: delivery.frame.to_string(),
                    });
                }
            }
        }
    }

    /// Queues a call frame for the matching connections of this node.
    pub(super) fn deliver_call_local(&self, target: &CallTarget, delivery: &CallDelivery) {
        let (app_key, user_id) = match target {
            CallTarget::Connection(endpoint) => {
                if endpoint.node != self.node_id {
                    return;
                }
                (&endpoint.app_key, &endpoint.user_id)
            }
            CallTarget::Devices { app_key, user_id, .. } => (app_key, user_id),
        };
        let targets: Vec<Arc<Connection>> = {
            let by_user = self.by_user.read().unwrap_or_else(|p| p.into_inner());
            let Some(list) = by_user.get(&(app_key.clone(), user_id.clone())) else { return };
            list.iter()
                .filter(|c| match target {
                    CallTarget::Connection(endpoint) => c.id == endpoint.connection,
                    CallTarget::Devices { except_session, except, .. } => {
                        c.calling
                            && except_session.as_deref() != Some(c.session_id.as_str())
                            && !except.as_ref().is_some_and(|e| e.node == self.node_id && e.connection == c.id)
                    }
                })
                .cloned()
                .collect()
        };
        for connection in targets {
            if connection.offer(Outbound::Call(delivery.clone())) {
                self.metrics.slow_closed.increment(1);
            }
        }
    }

    /// A signal for a call homed on `home`.
    pub(super) fn signal_home(self: &Arc<Self>, home: &str, signal: Signal) {
        if home == self.node_id {
            self.calls.handle(self, signal);
        } else if let Some(cluster) = self.cluster.get() {
            cluster.publish(Published::CallSignal { home: home.to_owned(), signal });
        }
    }

    pub(super) fn deliver_local(
        &self,
        app_key: &str,
        user_id: &str,
        outbound: &Outbound,
        except: Option<u64>,
        accepted_at: DateTime<Utc>,
    ) {
        let targets: Vec<Arc<Connection>> = {
            let by_user = self.by_user.read().unwrap_or_else(|p| p.into_inner());
            match by_user.get(&(app_key.to_owned(), user_id.to_owned())) {
                Some(list) => list.iter().filter(|c| c.messaging && Some(c.id) != except).cloned().collect(),
                None => return,
            }
        };
        for connection in targets {
            if connection.offer(outbound.clone()) {
                self.metrics.slow_closed.increment(1);
            }
        }
        let elapsed = (Utc::now() - accepted_at).num_microseconds().unwrap_or(0).max(0);
        self.metrics.fanout.record(elapsed as f64 / 1e6);
    }

    pub(super) fn apply(&self, event: &SessionEvent) {
        let by_user = self.by_user.read().unwrap_or_else(|p| p.into_inner());
        let revoked = || Closing::new(Reason::SessionRevoked, Reason::SessionRevoked.default_message());
        match event {
            SessionEvent::Session { app_key, session_id } => {
                for connection in by_user.iter().filter(|((app, _), _)| app == app_key).flat_map(|(_, l)| l) {
                    if &connection.session_id == session_id {
                        connection.close(revoked());
                    }
                }
            }
            SessionEvent::User { app_key, user_id, reason } => {
                let reason = Reason::from_wire(reason).unwrap_or(Reason::SessionRevoked);
                for connection in by_user.get(&(app_key.clone(), user_id.clone())).into_iter().flatten() {
                    connection.close(Closing::new(reason, reason.default_message()));
                }
            }
            SessionEvent::Before { app_key, before } => {
                for connection in by_user.iter().filter(|((app, _), _)| app == app_key).flat_map(|(_, l)| l) {
                    if connection.session_created_at < *before {
                        connection.close(revoked());
                    }
                }
            }
            SessionEvent::AppDeleted { app_key } => {
                for connection in by_user.iter().filter(|((app, _), _)| app == app_key).flat_map(|(_, l)| l) {
                    connection.close(Closing::new(Reason::UnknownApplication, "the application was deleted"));
                }
            }
            SessionEvent::Drop { app_key, user_id } => {
                for connection in by_user.get(&(app_key.clone(), user_id.clone())).into_iter().flatten() {
                    connection.close(Closing::new(
                        Reason::ServiceUnavailable,
                        "the operator closed this connection: reconnect",
                    ));
                }
            }
        }
    }
}

/// Re-reads the session of every local connection and closes those that ended (after session events may have
/// been missed).
pub(super) async fn recheck_sessions(inner: Arc<Inner>) {
    let all: Vec<Arc<Connection>> =
        inner.by_user.read().unwrap_or_else(|p| p.into_inner()).values().flatten().cloned().collect();
    for connection in all {
        inner.store.forget_session(&connection.session_id);
        let ended = match inner.store.get_session(&connection.session_id).await {
            Ok(session) => session.revoked_at.is_some(),
            Err(crate::store::StoreError::NotFound) => true,
            Err(_) => false,
        };
        if ended {
            connection.close(Closing::new(Reason::SessionRevoked, Reason::SessionRevoked.default_message()));
        }
    }
}

/// Retention: every `purge_interval_seconds`, entries older than `retention_seconds` and beyond
/// `retention_per_user` per user are removed. Every node runs it; the deletes are idempotent.
async fn purge_in_the_background(hub: std::sync::Weak<Inner>) {
    let interval = {
        let Some(inner) = hub.upgrade() else { return };
        std::time::Duration::from_secs(inner.config.purge_interval_seconds.max(1))
    };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = hub.upgrade() else { return };
        let max_age =
            chrono::Duration::seconds(i64::try_from(inner.config.retention_seconds).unwrap_or(i64::MAX / 1000));
        let older_than = Utc::now().checked_sub_signed(max_age).unwrap_or(DateTime::<Utc>::MIN_UTC);
        match inner.store.purge_inbox(older_than, inner.config.retention_per_user).await {
            Ok(removed) if removed > 0 => tracing::info!(removed, "purged old realtime messages"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "realtime message purge failed"),
        }
        // A legacy transport names who may read the messages of its id; unused for as long as a message is kept,
        // it names nothing left to read (a client that asks again gets a new row with the same id).
        match inner.store.purge_transports(older_than).await {
            Ok(removed) if removed > 0 => tracing::info!(removed, "purged unused legacy transports"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "legacy transport purge failed"),
        }
    }
}
