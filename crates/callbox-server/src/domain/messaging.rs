//! Realtime messaging: the rules of a message (who may receive it, what is stored, when it is durable) and the
//! inbox a connection reads. The WebSocket connection (`realtime::connection`) parses frames and calls these; the
//! hub (`realtime::hub`) fans out what they stored.

use super::{Callbox, DomainError, DomainResult};
use crate::realtime::Hub;
use crate::store::{AppRecord, InboxEntry, MessageRecord, SessionRecord, StoreError};
use callbox_core::Reason;

/// An application's realtime activity, for the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// Live connections on this node.
    pub live_connections: usize,
    /// Message copies (one per recipient) stored in the last hour.
    pub messages_last_hour: u64,
    /// Of those, the ones their recipient confirmed.
    pub delivered_last_hour: u64,
}

/// A message accepted for delivery: durable in each accepted recipient's inbox.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The stored message (its `recipient_ids` are the accepted recipients).
    pub message: MessageRecord,
    /// Each accepted recipient's inbox sequence number, in `message.recipient_ids` order.
    pub seqs: Vec<u64>,
    /// Recipients refused as unknown in the application (a user of another application is one of them).
    pub unknown: Vec<String>,
}

impl Callbox {
    /// This node's live realtime connections and the fan-out between nodes.
    pub fn realtime(&self) -> &Hub {
        &self.realtime
    }

    /// Live connections (this node) and messages of the last hour (all nodes) of an application.
    pub async fn realtime_activity(&self, app_key: &str) -> DomainResult<Activity> {
        self.store.get_app(app_key).await?;
        let (messages_last_hour, delivered_last_hour) =
            self.store.message_counts(app_key, self.now() - chrono::Duration::hours(1)).await?;
        Ok(Activity {
            live_connections: self.realtime.app_connection_count(app_key),
            messages_last_hour,
            delivered_last_hour,
        })
    }

    /// An application. Unknown → `not_found`.
    pub async fn app(&self, key: &str) -> DomainResult<AppRecord> {
        Ok(self.store.get_app(key).await?)
    }

    /// A session read again from the database (not from a cache): after its known expiry, whether an HTTP
    /// renewal moved it. Unknown → `not_found`.
    pub async fn fresh_session(&self, id: &str) -> DomainResult<SessionRecord> {
        self.store.forget_session(id);
        Ok(self.store.get_session(id).await?)
    }

    /// Stores a message from `sender_id` to `recipients` (distinct user ids) of `app_key`, durably, before it is
    /// acknowledged. Apps with platform-managed users deliver only to users known in the application (see
    /// docs/realtime.md); a user of another application is looked up in this one only, so it is exactly an
    /// unknown user.
    pub async fn accept_message(
        &self,
        app_key: &str,
        sender_id: &str,
        recipients: Vec<String>,
        text: String,
        headers: String,
    ) -> DomainResult<Accepted> {
        let mut outcomes = self.accept_messages(app_key, sender_id, vec![(recipients, text, headers)]).await;
        outcomes.pop().unwrap_or_else(|| Err(DomainError::new(Reason::Internal)))
    }

    /// [`Callbox::accept_message`] for several messages of one sender, stored in their order in one go (one group
    /// commit where the engine has one), each with its own answer.
    pub async fn accept_messages(
        &self,
        app_key: &str,
        sender_id: &str,
        messages: Vec<(Vec<String>, String, String)>,
    ) -> Vec<DomainResult<Accepted>> {
        let messages =
            messages.into_iter().map(|(recipients, text, headers)| (None, recipients, text, headers)).collect();
        self.accept_messages_with_ids(app_key, sender_id, messages).await
    }

    /// [`Callbox::accept_messages`], each message with the id its sender gave it (the legacy SDK names its
    /// messages itself and matches receipts by that name) or `None` for a server-given UUIDv7.
    pub(crate) async fn accept_messages_with_ids(
        &self,
        app_key: &str,
        sender_id: &str,
        messages: Vec<(Option<String>, Vec<String>, String, String)>,
    ) -> Vec<DomainResult<Accepted>> {
        let app = match self.store.get_app(app_key).await {
            Ok(app) => app,
            Err(error) => {
                let error = DomainError::from(error);
                return messages.iter().map(|_| Err(error.clone())).collect();
            }
        };
        let mut prepared: Vec<DomainResult<(MessageRecord, Vec<String>)>> = Vec::with_capacity(messages.len());
        for (id, recipients, text, headers) in messages {
            let known = if app.platform_user_auth {
                match self.store.known_users(app_key, &recipients).await {
                    Ok(known) => known,
                    Err(error) => {
                        prepared.push(Err(error.into()));
                        continue;
                    }
                }
            } else {
                recipients.clone()
            };
            let (accepted, unknown): (Vec<String>, Vec<String>) =
                recipients.into_iter().partition(|r| known.contains(r));
            let now = self.now();
            let created_at = callbox_core::time::to_millisecond(now);
            let message = MessageRecord {
                id: id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
                app_key: app_key.to_owned(),
                sender_id: sender_id.to_owned(),
                recipient_ids: accepted,
                text,
                headers,
                created_at,
            };
            prepared.push(Ok((message, unknown)));
        }
        let to_store: Vec<MessageRecord> = prepared
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .filter(|(m, _)| !m.recipient_ids.is_empty())
            .map(|(m, _)| m.clone())
            .collect();
        let mut stored = self.store.append_messages(&to_store).await.into_iter();
        prepared
            .into_iter()
            .map(|p| {
                let (message, unknown) = p?;
                let seqs = if message.recipient_ids.is_empty() {
                    Vec::new()
                } else {
                    stored.next().unwrap_or_else(|| Err(StoreError::Unavailable("missing answer".into())))?
                };
                Ok(Accepted { message, seqs, unknown })
            })
            .collect()
    }

    /// A recipient confirms entry `seq` (message `message_id`) of its inbox. The first time, the sender's receipt
    /// is stored and returned with the sender; `None` when it was confirmed before.
    pub async fn confirm_delivery(
        &self,
        app_key: &str,
        user_id: &str,
        seq: u64,
        message_id: &str,
    ) -> DomainResult<Option<(String, InboxEntry)>> {
        match self.store.confirm_delivery(app_key, user_id, seq, message_id, self.now()).await {
            Err(StoreError::NotFound) => {
                Err(DomainError::with_message(Reason::NotFound, "no message with this messageId and seq in your inbox"))
            }
            other => Ok(other?),
        }
    }

    /// `user_id`'s inbox after `after_seq`, at most `limit` entries (with `unconfirmed_only`: unconfirmed messages).
    pub async fn read_inbox(
        &self,
        app_key: &str,
        user_id: &str,
        after_seq: u64,
        limit: u32,
        unconfirmed_only: bool,
    ) -> DomainResult<Vec<InboxEntry>> {
        Ok(self.store.read_inbox(app_key, user_id, after_seq, limit, unconfirmed_only).await?)
    }

    /// The last sequence number of `user_id`'s inbox (0 when empty).
    pub async fn inbox_last_seq(&self, app_key: &str, user_id: &str) -> DomainResult<u64> {
        Ok(self.store.inbox_last_seq(app_key, user_id).await?)
    }
}
