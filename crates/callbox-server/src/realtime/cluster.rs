//! Fan-out between nodes through Redis pub/sub, on one channel ([`CHANNEL`]).
//!
//! Why pub/sub and not streams: the store already holds every message durably with a per-recipient sequence
//! number, so the inter-node path only has to be fast, not reliable. A node that misses a publish (Redis
//! restarting, a subscriber reconnecting) loses nothing: the recipient's connection notices the gap in its
//! sequence at the next frame and reads it from the store, and a reconnecting client resumes from the store.
//! Streams would add a second durable log to trim and replay for no gain. Session events missed while the
//! subscriber was away are caught up by re-checking every local connection's session after it resubscribes.
//!
//! Publishes leave through one task in the order they were made, pipelined, so one sender's frames reach the
//! other nodes in order.

use super::calls::{CallDelivery, CallTarget, CallUpdate, Signal};
use super::hub::{Outbound, ANY_NODE};
use super::SessionEvent;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// The pub/sub channel every node publishes to and listens on.
pub const CHANNEL: &str = "callbox:realtime:v1";

/// Publishes queued at most before new ones are dropped (and counted): the store still has them.
const PUBLISH_QUEUE: usize = 65_536;

/// What goes between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Published {
    /// A frame for a user's connections.
    #[serde(rename_all = "camelCase")]
    Deliver {
        /// The application.
        app_key: String,
        /// The user.
        user_id: String,
        /// The inbox sequence number, for inbox entries.
        seq: Option<u64>,
        /// The rendered frame.
        frame: String,
        /// When the message was accepted (fan-out latency).
        accepted_at: DateTime<Utc>,
    },
    /// A session event.
    Event(SessionEvent),
    /// A call frame for connections that may be on another node.
    #[serde(rename_all = "camelCase")]
    CallDeliver {
        /// Who it is for.
        target: CallTarget,
        /// The call.
        call_id: String,
        /// The call's home node.
        home: String,
        /// What the connection does besides writing it.
        update: CallUpdate,
        /// The rendered frame.
        frame: String,
    },
    /// A signal for the call's home node (`*`: whichever node has the call).
    #[serde(rename_all = "camelCase")]
    CallSignal {
        /// The node that holds the call.
        home: String,
        /// The signal.
        signal: Signal,
    },
    /// Call frames of the legacy transport for a channel (kept by every node: see `mailbox`).
    #[serde(rename_all = "camelCase")]
    LegacyFrames {
        /// The channel.
        channel: String,
        /// The frames, in order.
        frames: Vec<String>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    /// The publishing node, so it ignores its own publishes (it applied them already).
    from: String,
    #[serde(flatten)]
    body: Published,
}

/// The publishing side; the subscriber runs in its own task.
#[derive(Debug)]
pub struct Cluster {
    queue: mpsc::Sender<Published>,
    dropped: metrics::Counter,
}

impl Cluster {
    /// Connects to Redis at `url` and starts the publisher and the subscriber (which apply what other nodes
    /// publish to `hub`). Both end when the hub is dropped.
    pub(super) async fn connect(url: &str, hub: Weak<super::hub::Inner>, node: String) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_millis(500))
            .set_response_timeout(Duration::from_secs(2));
        let publisher = redis::aio::ConnectionManager::new_with_config(client.clone(), manager_config).await?;
        // Subscribe before answering, so that a node is listening by the time it serves connections.
        let pubsub = subscribe(&client).await?;
        let (queue, pending) = mpsc::channel(PUBLISH_QUEUE);
        tokio::spawn(publish_in_order(publisher, node.clone(), pending));
        tokio::spawn(listen(client, pubsub, node, hub));
        Ok(Self { queue, dropped: metrics::counter!("callbox_realtime_publish_dropped_total") })
    }

    /// Queues a publish (never waits: a full queue drops it, the store has the data).
    pub fn publish(&self, item: Published) {
        if self.queue.try_send(item).is_err() {
            self.dropped.increment(1);
        }
    }
}

async fn subscribe(client: &redis::Client) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    Ok(pubsub)
}

async fn publish_in_order(
    mut redis: redis::aio::ConnectionManager,
    node: String,
    mut pending: mpsc::Receiver<Published>,
) {
    let mut batch = Vec::with_capacity(256);
    while pending.recv_many(&mut batch, 256).await > 0 {
        let mut pipe = redis::pipe();
        for body in batch.drain(..) {
            match serde_json::to_string(&Wire { from: node.clone(), body }) {
                Ok(text) => {
                    pipe.cmd("PUBLISH").arg(CHANNEL).arg(text).ignore();
                }
                Err(error) => tracing::warn!(%error, "cannot encode a realtime publish"),
            }
        }
        if let Err(error) = pipe.query_async::<()>(&mut redis).await {
            tracing::warn!(%error, "realtime publish to Redis failed (receivers catch up from the store)");
        }
    }
}

async fn listen(client: redis::Client, mut pubsub: redis::aio::PubSub, node: String, hub: Weak<super::hub::Inner>) {
    loop {
        {
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let Some(hub) = hub.upgrade() else { return };
                let Ok(payload) = message.get_payload::<String>() else { continue };
                let Ok(wire) = serde_json::from_str::<Wire>(&payload) else {
                    tracing::warn!("ignoring an undecodable realtime publish");
                    continue;
                };
                if wire.from == node {
                    continue;
                }
                match wire.body {
                    Published::Deliver { app_key, user_id, seq, frame, accepted_at } => {
                        let frame: Arc<str> = Arc::from(frame);
                        let outbound = match seq {
                            Some(seq) => Outbound::Seq(seq, frame),
                            None => Outbound::Plain(frame),
                        };
                        hub.deliver_local(&app_key, &user_id, &outbound, None, accepted_at);
                    }
                    Published::Event(event) => hub.apply(&event),
                    Published::CallDeliver { target, call_id, home, update, frame } => {
                        let delivery = CallDelivery { call_id, home, update, frame: Arc::from(frame) };
                        hub.deliver_call_local(&target, &delivery);
                    }
                    Published::LegacyFrames { channel, frames } => {
                        let frames: Vec<Arc<str>> = frames.into_iter().map(Arc::from).collect();
                        hub.mailbox().post(&channel, &frames);
                    }
                    Published::CallSignal { home, signal } => {
                        let here = hub.node_id() == home || (home == ANY_NODE && hub.calls().has(&signal.call_id));
                        if here {
                            hub.calls().handle(&hub, signal);
                        }
                    }
                }
            }
        }
        // The subscription ended (Redis restarted or the connection broke): resubscribe, then re-check every
        // session of this node, since revocations published meanwhile were missed.
        tracing::warn!("realtime subscription to Redis lost; resubscribing");
        loop {
            if hub.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            match subscribe(&client).await {
                Ok(again) => {
                    pubsub = again;
                    break;
                }
                Err(error) => tracing::debug!(%error, "Redis still unreachable"),
            }
        }
        if let Some(hub) = hub.upgrade() {
            tokio::spawn(super::hub::recheck_sessions(hub));
        }
    }
}
