//! One realtime connection, from the upgrade to the close (docs/realtime.md describes every frame).

use super::calls::{CallDelivery, CallRefusal, CallUpdate, Endpoint, Signal, SignalKind};
use super::frames::{self, Frame};
use super::hub::{Connection, NewConnection, Outbound, Registered};
use super::{Closing, RealtimeConfig};
use crate::domain::messaging::Accepted;
use crate::domain::{origin_allowed, Callbox, RequestMeta};
use crate::domain::{Capability, SessionRecord};
use crate::http::ApiError;
use crate::http::AppState;
use crate::listener::{ConnectionHandle, ConnectionRefused};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use callbox_core::signing::SignedParts;
use callbox_core::Reason;
use chrono::Utc;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Inbox entries read from the store at a time (replay and gap filling).
const PAGE: u32 = 200;

/// Confirmations of one connection being written at once; more wait in the connection's queue.
const MAX_CONFIRMING: usize = 64;

/// Confirmations waiting for a place; beyond this the connection stops reading its socket (TCP then slows the
/// client down) but goes on writing what it is sent, so that its outbound queue drains.
const MAX_DEFERRED_CONFIRMATIONS: usize = 4096;

/// Longest `ref` echoed back, bytes.
const MAX_REF_BYTES: usize = 128;

/// `GET /v1/realtime`: the WebSocket upgrade. Anything that is not an upgrade is answered with the §7 JSON; the
/// credentials come in the first frame (browsers cannot set headers on a WebSocket, and a URL lands in logs).
pub async fn upgrade(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let meta = crate::http::call::request_meta(&parts, &state);
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(ws) => ws,
        Err(_) => {
            return ApiError::with_message(
                Reason::MalformedRequest,
                "/v1/realtime takes a WebSocket upgrade (GET with Connection: Upgrade, Upgrade: websocket)",
            )
            .into_response()
        }
    };
    let config = state.callbox.realtime().config();
    // The library's own limit sits above ours, so that a frame over our limit still gets a precise error frame;
    // beyond it the library drops the connection without reading the frame into memory.
    let hard_limit = config.max_frame_bytes.saturating_mul(2).max(4096);
    let callbox = state.callbox.clone();
    // The accept loop's handle on this TCP connection: once authenticated, it moves to the realtime budget.
    let connection = parts.extensions.get::<ConnectionHandle>().cloned();
    ws.max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| run(socket, callbox, meta, connection))
}

/// What the client proved in its `auth` frame.
struct Authenticated {
    session: SessionRecord,
    resume_after: Option<u64>,
}

struct Socket {
    ws: WebSocket,
    /// A write that takes longer means the peer stopped reading: the connection is dropped.
    write_timeout: Duration,
}

impl Socket {
    async fn send(&mut self, frame: &str) -> bool {
        matches!(tokio::time::timeout(self.write_timeout, self.ws.send(Message::Text(frame.into()))).await, Ok(Ok(())))
    }

    /// The last error frame, then the close frame.
    async fn close(&mut self, reference: Option<&str>, closing: &Closing) {
        if self.send(&frames::error(reference, closing.reason, &closing.message, None)).await {
            let frame = CloseFrame { code: closing.code, reason: closing.word.into() };
            let _ = tokio::time::timeout(self.write_timeout, self.ws.send(Message::Close(Some(frame)))).await;
        }
    }
}

async fn run(ws: WebSocket, callbox: Arc<Callbox>, meta: RequestMeta, connection: Option<ConnectionHandle>) {
    let config = callbox.realtime().config().clone();
    let mut socket = Socket { ws, write_timeout: Duration::from_secs(config.write_timeout_seconds.max(1)) };
    let nonce = crate::crypto::random_token(18);
    if !socket.send(&frames::challenge(&nonce)).await {
        return;
    }
    let authenticated = match authenticate(&mut socket, &callbox, &nonce, &meta, &config).await {
        Ok(Some(authenticated)) => authenticated,
        Ok(None) => return,
        Err(closing) => {
            socket.close(None, &closing).await;
            return;
        }
    };
    // Authenticated: from now on the connection counts against the realtime budget (not the small per-address
    // budget of anonymous HTTP connections) and is kept alive by the realtime heartbeat, not the HTTP timeouts.
    if let Some(Err(refused)) = connection.as_ref().map(ConnectionHandle::promote_to_realtime) {
        let reason = match refused {
            ConnectionRefused::PerAddress => Reason::RateLimited,
            ConnectionRefused::Total => Reason::ServiceUnavailable,
        };
        socket.close(None, &Closing::new(reason, format!("{refused}: realtime connections are full"))).await;
        return;
    }
    let session = authenticated.session;
    let messaging = session.capabilities.contains(&Capability::Messaging);
    let calling = session.capabilities.contains(&Capability::Calling);
    // Registered before the inbox is read: whatever commits from now on also arrives live, and the sequence
    // numbers sort out what arrives both ways.
    let registered = callbox.realtime().register(NewConnection {
        session_id: session.id.clone(),
        app_key: session.app_key.clone(),
        user_id: session.user_id.clone(),
        session_created_at: session.created_at,
        messaging,
        calling,
        peer: meta.ip.to_string(),
    });
    let endpoint = Endpoint {
        node: callbox.realtime().node_id().to_owned(),
        connection: registered.connection.id,
        app_key: session.app_key.clone(),
        user_id: session.user_id.clone(),
        session_id: session.id.clone(),
    };
    let (sends, pending_sends) = mpsc::channel(MAX_PENDING_SENDS);
    if messaging {
        tokio::spawn(accept_in_order(callbox.clone(), registered.connection.clone(), pending_sends));
    }
    let mut live = Live {
        socket,
        callbox: callbox.clone(),
        config,
        registered,
        session,
        messaging,
        calling,
        endpoint,
        calls: HashMap::new(),
        next_seq: 1,
        waiting: BTreeMap::new(),
        gap_deadline: None,
        confirming: Arc::new(tokio::sync::Semaphore::new(MAX_CONFIRMING)),
        deferred: std::collections::VecDeque::new(),
        sends,
    };
    if let Err(closing) = live.start(authenticated.resume_after).await {
        if let Some(closing) = closing {
            live.socket.close(None, &closing).await;
        }
        return;
    }
    live.serve().await;
}

/// Reads frames until the `auth` frame and checks it. `Ok(None)`: the peer went away.
async fn authenticate(
    socket: &mut Socket,
    callbox: &Callbox,
    nonce: &str,
    meta: &RequestMeta,
    config: &RealtimeConfig,
) -> Result<Option<Authenticated>, Closing> {
    let deadline = Instant::now() + Duration::from_secs(config.auth_timeout_seconds.max(1));
    let text = loop {
        let message = match tokio::time::timeout_at(deadline, socket.ws.recv()).await {
            Err(_) => {
                return Err(Closing::new(
                    Reason::MissingAuthorization,
                    format!("no auth frame within {} s", config.auth_timeout_seconds.max(1)),
                )
                .with_close(4408, "missing_authorization"))
            }
            Ok(None | Some(Err(_))) => return Ok(None),
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Text(text) => break text,
            Message::Binary(_) => {
                return Err(Closing::new(Reason::MalformedRequest, "binary frames are not accepted; send JSON text"))
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Close(_) => return Ok(None),
        }
    };
    if text.len() > config.max_frame_bytes {
        return Err(too_large(text.len(), config));
    }
    let frame: Value = serde_json::from_str(text.as_str())
        .map_err(|_| Closing::new(Reason::MalformedRequest, "the frame is not valid JSON"))?;
    if frame.get("type").and_then(Value::as_str) != Some("auth") {
        return Err(Closing::new(Reason::MissingAuthorization, "the first frame must be {\"type\":\"auth\",...}"));
    }
    let field = |name: &str| frame.get(name).and_then(Value::as_str);
    let (Some(session_id), Some(signature)) = (field("sessionId"), field("signature")) else {
        return Err(Closing::new(
            Reason::MalformedAuthorization,
            "auth needs sessionId, timestamp and signature as strings",
        ));
    };
    let resume_after = match frame.get("resumeAfter") {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.as_u64().ok_or_else(|| {
            Closing::new(Reason::MalformedRequest, "resumeAfter must be a non-negative integer (the last seq seen)")
        })?),
    };
    let path = format!("/v1/realtime/{nonce}");
    let parts = SignedParts {
        method: "GET",
        body: b"",
        content_type: "",
        timestamp: field("timestamp").unwrap_or(""),
        path: &path,
    };
    let session = callbox
        .authenticate_call(session_id, signature, &parts, meta.ip)
        .await
        .map_err(|error| Closing::new(error.reason, error.message.to_string()))?;
    let app = match callbox.app(&session.app_key).await {
        Ok(app) => app,
        Err(error) if error.reason == Reason::NotFound => {
            return Err(Closing::new(Reason::UnknownApplication, "the application is gone"))
        }
        Err(other) => return Err(api_closing(other.into())),
    };
    if !origin_allowed(&app, meta.origin.as_deref()) {
        return Err(Closing::new(Reason::OriginNotAllowed, Reason::OriginNotAllowed.default_message()));
    }
    Ok(Some(Authenticated { session, resume_after }))
}

fn api_closing(error: ApiError) -> Closing {
    Closing::new(error.reason, error.message.to_string())
}

fn too_large(bytes: usize, config: &RealtimeConfig) -> Closing {
    Closing::new(
        Reason::PayloadTooLarge,
        format!("the frame is {bytes} bytes; frames are at most {} bytes", config.max_frame_bytes),
    )
}

/// An authenticated connection.
struct Live {
    socket: Socket,
    callbox: Arc<Callbox>,
    config: RealtimeConfig,
    registered: Registered,
    session: SessionRecord,
    messaging: bool,
    /// Whether the session has `calling`.
    calling: bool,
    /// This connection as a side of a call.
    endpoint: Endpoint,
    /// The calls this connection takes part in, by id.
    calls: HashMap<String, LocalCall>,
    /// The inbox sequence number to write next; entries below it were written (or replayed) already.
    next_seq: u64,
    /// Entries that arrived ahead of a missing one, by sequence number.
    waiting: BTreeMap<u64, Frame>,
    /// When to stop waiting for the missing entry and read it from the store.
    gap_deadline: Option<Instant>,
    /// Places for confirmations being written (see [`Live::message_received`]).
    confirming: Arc<tokio::sync::Semaphore>,
    /// Confirmations waiting for a place, in arrival order.
    deferred: std::collections::VecDeque<Confirmation>,
    /// Messages for the sender task ([`accept_in_order`]).
    sends: mpsc::Sender<PendingSend>,
}

/// A `message.send` that passed its checks, waiting for the connection's sender task.
#[derive(Debug)]
struct PendingSend {
    reference: Option<String>,
    recipients: Vec<String>,
    text: String,
    headers: String,
}

/// Sends of one connection accepted at once at most before it stops reading its socket.
const MAX_PENDING_SENDS: usize = 64;

/// The connection's sender task: stores its messages in the order they were sent (so order holds per sender →
/// recipient pair), acknowledges each after its commit and fans it out. It runs beside the connection's loop, so
/// that a sender waiting for commits still writes what it receives (receipts above all) without delay.
async fn accept_in_order(callbox: Arc<Callbox>, connection: Arc<Connection>, mut pending: mpsc::Receiver<PendingSend>) {
    let mut batch = Vec::with_capacity(MAX_PENDING_SENDS);
    // Every send that waited while the previous ones were being stored goes into the next commit together (in
    // order): a sender with several messages in flight does not pay one commit each.
    while pending.recv_many(&mut batch, MAX_PENDING_SENDS).await > 0 {
        let (app_key, user_id) = (&connection.app_key, &connection.user_id);
        let hub = callbox.realtime();
        let mut references = Vec::with_capacity(batch.len());
        let mut messages = Vec::with_capacity(batch.len());
        for PendingSend { reference, recipients, text, headers } in batch.drain(..) {
            references.push(reference);
            messages.push((recipients, text, headers));
        }
        let outcomes = callbox.accept_messages(app_key, user_id, messages).await;
        for (reference, outcome) in references.into_iter().zip(outcomes) {
            let Accepted { message, seqs, unknown } = match outcome {
                Ok(accepted) => accepted,
                Err(error) => {
                    connection
                        .send_waiting(frames::error(reference.as_deref(), error.reason, &error.message, None))
                        .await;
                    continue;
                }
            };
            let now = message.created_at;
            connection.send_waiting(frames::accepted(reference.as_deref(), &message)).await;
            for recipient in &unknown {
                connection.send_waiting(frames::receipt(None, &message.id, recipient, Some("unknown_user"), now)).await;
            }
            hub.count_failed(unknown.len() as u64);
            hub.fan_out_message(&message, &seqs, Some(connection.id));
        }
    }
}

/// A `message.received` to write.
#[derive(Debug)]
struct Confirmation {
    seq: u64,
    message_id: String,
    reference: Option<String>,
}

/// A call this connection takes part in.
#[derive(Debug, Clone)]
struct LocalCall {
    /// The node that holds the call's state.
    home: String,
    /// This connection placed it.
    caller: bool,
    /// It was answered (by this connection, when it is the callee's).
    answered: bool,
}

/// How a frame handler ends: keep going, or close (`None`: the peer is gone, nothing to send).
type Step = Result<(), Option<Closing>>;

/// A refusal of one frame: an error frame, the connection stays (the call registry's refusals are the same).
type Refusal = CallRefusal;

impl Live {
    fn app_key(&self) -> &str {
        &self.session.app_key
    }

    fn user_id(&self) -> &str {
        &self.session.user_id
    }

    async fn send(&mut self, frame: &str) -> Step {
        if self.socket.send(frame).await {
            Ok(())
        } else {
            Err(None)
        }
    }

    /// `ready`, then the inbox after `resume_after` (without a cursor: every message not yet confirmed).
    async fn start(&mut self, resume_after: Option<u64>) -> Step {
        let callbox = self.callbox.clone();
        let last = if self.messaging {
            callbox.inbox_last_seq(self.app_key(), self.user_id()).await.map_err(|e| Some(api_closing(e.into())))?
        } else {
            0
        };
        let ready = frames::ready(
            &self.session.id,
            self.user_id(),
            &self.session.capabilities,
            self.session.expires_at,
            &self.config,
            last,
        );
        self.send(&ready).await?;
        if !self.messaging {
            return Ok(());
        }
        // A cursor beyond the inbox (a client of a database that was reset) replays nothing.
        let unconfirmed_only = resume_after.is_none();
        let mut cursor = resume_after.unwrap_or(0).min(last);
        loop {
            let page = callbox
                .read_inbox(self.app_key(), self.user_id(), cursor, PAGE, unconfirmed_only)
                .await
                .map_err(|e| Some(api_closing(e.into())))?;
            for entry in &page {
                self.send(&frames::entry(entry)).await?;
                cursor = entry.seq;
            }
            if page.len() < PAGE as usize {
                break;
            }
        }
        self.next_seq = last.max(cursor) + 1;
        Ok(())
    }

    async fn serve(mut self) {
        let heartbeat = Duration::from_secs(self.config.heartbeat_seconds.max(1));
        let idle = Duration::from_secs(self.config.idle_timeout_seconds.max(1));
        let mut pings = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        let mut last_heard = Instant::now();
        let mut expiry = deadline_of(self.session.expires_at, self.callbox.now());
        let outcome: Option<Closing> = loop {
            let gap = self.gap_deadline;
            // Unbiased: a client that pipelines frames must not starve its outbound queue (which would then fill
            // and close it as a slow reader), nor a busy outbound queue its reads.
            let step = tokio::select! {
                changed = self.registered.close.changed() => {
                    let closing = self.registered.close.borrow().clone();
                    match (changed, closing) {
                        (Ok(()), Some(closing)) => Err(Some(closing)),
                        _ => Err(None),
                    }
                }
                // A place for the oldest waiting confirmation.
                permit = self.confirming.clone().acquire_owned(), if !self.deferred.is_empty() => {
                    if let (Ok(permit), Some(confirmation)) = (permit, self.deferred.pop_front()) {
                        self.confirm(permit, confirmation);
                    }
                    Ok(())
                }
                // Reading stops while confirmations or sends back up (TCP then slows the client); writing goes on.
                incoming = self.socket.ws.recv(),
                    if self.deferred.len() < MAX_DEFERRED_CONFIRMATIONS && self.sends.capacity() > 0 => match incoming {
                    None | Some(Err(_)) => Err(None),
                    Some(Ok(message)) => {
                        last_heard = Instant::now();
                        self.incoming(message).await
                    }
                },
                Some(outbound) = self.registered.outbound.recv() => self.outbound(outbound).await,
                () = tokio::time::sleep_until(last_heard + idle) => Err(Some(
                    Closing::new(Reason::ServiceUnavailable, format!("nothing heard for {} s", idle.as_secs()))
                        .with_close(4408, "heartbeat_timeout"),
                )),
                _ = pings.tick() => self.send(&frames::ping()).await,
                () = tokio::time::sleep_until(expiry) => match self.recheck_session().await {
                    Ok(next) => {
                        expiry = next;
                        Ok(())
                    }
                    Err(closing) => Err(Some(closing)),
                },
                () = tokio::time::sleep_until(gap.unwrap_or(expiry)), if gap.is_some() => self.fill_gap().await,
            };
            if let Err(outcome) = step {
                break outcome;
            }
        };
        // Calls of this connection wait for a rejoin (grace), or end at once when the session ended.
        let revoked = outcome.as_ref().is_some_and(|c| {
            matches!(
                c.reason,
                Reason::SessionRevoked | Reason::SessionExpired | Reason::UserDisabled | Reason::UnknownApplication
            )
        });
        for (call_id, local) in std::mem::take(&mut self.calls) {
            let lost =
                Signal { call_id, from: self.endpoint.clone(), reference: None, kind: SignalKind::Lost { revoked } };
            self.callbox.realtime().signal_home(&local.home, lost);
        }
        if let Some(closing) = outcome {
            self.socket.close(None, &closing).await;
        }
    }

    /// At the session's known expiry: re-read it, since an HTTP renewal may have moved it.
    async fn recheck_session(&mut self) -> Result<Instant, Closing> {
        let session = match self.callbox.fresh_session(&self.session.id).await {
            Ok(session) => session,
            Err(error) if error.reason == Reason::NotFound => {
                return Err(Closing::new(Reason::SessionRevoked, Reason::SessionRevoked.default_message()))
            }
            // The store is down: look again shortly rather than close a session that may have been renewed.
            Err(_) => return Ok(Instant::now() + Duration::from_secs(1)),
        };
        if session.revoked_at.is_some() {
            return Err(Closing::new(Reason::SessionRevoked, Reason::SessionRevoked.default_message()));
        }
        if session.expires_at <= self.callbox.now() {
            return Err(Closing::new(Reason::SessionExpired, Reason::SessionExpired.default_message()));
        }
        self.session.expires_at = session.expires_at;
        Ok(deadline_of(session.expires_at, self.callbox.now()))
    }

    async fn incoming(&mut self, message: Message) -> Step {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return self
                    .refuse(None, Refusal::new(Reason::MalformedRequest, "binary frames are not accepted"))
                    .await
            }
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
            Message::Close(_) => return Err(None),
        };
        if text.len() > self.config.max_frame_bytes {
            return Err(Some(too_large(text.len(), &self.config).with_close(4413, "payload_too_large")));
        }
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            return self.refuse(None, Refusal::new(Reason::MalformedRequest, "the frame is not valid JSON")).await;
        };
        let Some(object) = frame.as_object() else {
            return self.refuse(None, Refusal::new(Reason::MalformedRequest, "a frame is a JSON object")).await;
        };
        let reference = match object.get("ref") {
            None | Some(Value::Null) => None,
            Some(Value::String(reference)) if reference.len() <= MAX_REF_BYTES => Some(reference.clone()),
            Some(_) => {
                let message = format!("ref must be a string of at most {MAX_REF_BYTES} bytes");
                return self.refuse(None, Refusal::new(Reason::MalformedRequest, message)).await;
            }
        };
        let kind = object.get("type").and_then(Value::as_str).unwrap_or("");
        let outcome = match kind {
            "ping" => return self.send(&frames::pong()).await,
            "pong" => return Ok(()),
            "message.send" => self.message_send(reference.as_deref(), &frame).await,
            "message.received" => self.message_received(reference.as_deref(), &frame).await,
            "call.start" | "call.answer" | "call.decline" | "call.candidate" | "call.hangup" | "call.rejoin" => {
                self.call_frame(kind, reference.as_deref(), &frame).await
            }
            "auth" => Err(Refusal::new(Reason::MalformedRequest, "this connection is already authenticated")),
            "" => Err(Refusal::new(Reason::MalformedRequest, "a frame needs a string \"type\"")),
            other => {
                let shown: String = other.chars().take(40).collect();
                Err(Refusal::new(Reason::MalformedRequest, format!("unknown frame type {shown:?}")))
            }
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(refusal) => self.refuse(reference.as_deref(), refusal).await,
        }
    }

    async fn refuse(&mut self, reference: Option<&str>, refusal: Refusal) -> Step {
        self.send(&frames::error(reference, refusal.reason, &refusal.message, refusal.retry_after)).await
    }

    fn require_messaging(&self) -> Result<(), Refusal> {
        if self.messaging {
            Ok(())
        } else {
            Err(Refusal::new(Reason::CapabilityNotGranted, "this session was not granted the messaging capability"))
        }
    }

    /// `message.send`: validate, rate-limit, store in every known recipient's inbox, acknowledge, fan out.
    async fn message_send(&mut self, reference: Option<&str>, frame: &Value) -> Result<(), Refusal> {
        self.require_messaging()?;
        let config = &self.config;
        let recipients: Vec<String> = match frame.get("recipients") {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Refusal::new(Reason::MalformedRequest, "recipients must be user id strings"))?,
            _ => return Err(Refusal::new(Reason::MalformedRequest, "recipients must be a user id or a list of them")),
        };
        let mut unique: Vec<String> = Vec::with_capacity(recipients.len());
        for recipient in recipients {
            if !callbox_core::is_valid_user_id(&recipient) {
                return Err(Refusal::new(
                    Reason::MalformedRequest,
                    "a recipient id must be 1-255 bytes without control characters",
                ));
            }
            if !unique.contains(&recipient) {
                unique.push(recipient);
            }
            if unique.len() > config.max_recipients {
                return Err(Refusal::new(
                    Reason::PayloadTooLarge,
                    format!("too many recipients: a message names at most {}", config.max_recipients),
                ));
            }
        }
        if unique.is_empty() {
            return Err(Refusal::new(Reason::MalformedRequest, "a message needs at least one recipient"));
        }
        let text = match frame.get("text") {
            Some(Value::String(text)) => text.clone(),
            _ => return Err(Refusal::new(Reason::MalformedRequest, "text must be a string")),
        };
        if text.len() > config.max_text_bytes {
            return Err(Refusal::new(
                Reason::PayloadTooLarge,
                format!("the text is {} bytes; at most {}", text.len(), config.max_text_bytes),
            ));
        }
        let headers = match frame.get("headers") {
            None | Some(Value::Null) => "{}".to_owned(),
            Some(headers @ Value::Object(_)) => headers.to_string(),
            Some(_) => return Err(Refusal::new(Reason::MalformedRequest, "headers must be a JSON object")),
        };
        if headers.len() > config.max_headers_bytes {
            return Err(Refusal::new(
                Reason::PayloadTooLarge,
                format!("the headers are {} bytes of JSON; at most {}", headers.len(), config.max_headers_bytes),
            ));
        }
        if let Err(not_until) = self.registered.rate.check() {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
            return Err(Refusal {
                reason: Reason::RateLimited,
                message: format!("at most {} messages a second", config.messages_per_second),
                retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            });
        }
        let send = PendingSend { reference: reference.map(str::to_owned), recipients: unique, text, headers };
        // The loop's guard keeps a place free; a full queue (a bug) waits rather than drops a message.
        if let Err(mpsc::error::TrySendError::Full(send)) = self.sends.try_send(send) {
            let _ = self.sends.send(send).await;
        }
        Ok(())
    }

    /// `message.received`: the recipient confirms an entry; the first confirmation becomes a receipt for the
    /// sender (stored in the sender's inbox, delivered to their connections). The store write runs beside the
    /// connection (at most [`MAX_CONFIRMING`] at once; more wait in order): awaiting it here would stop this
    /// connection's deliveries for a commit per message, and a recipient confirming each message could then never
    /// keep up with a sender.
    async fn message_received(&mut self, reference: Option<&str>, frame: &Value) -> Result<(), Refusal> {
        self.require_messaging()?;
        let (Some(message_id), Some(seq)) =
            (frame.get("messageId").and_then(Value::as_str), frame.get("seq").and_then(Value::as_u64))
        else {
            return Err(Refusal::new(Reason::MalformedRequest, "message.received needs messageId and seq"));
        };
        let confirmation =
            Confirmation { seq, message_id: message_id.to_owned(), reference: reference.map(str::to_owned) };
        // Never wait here: a connection waiting for a place would stop writing its deliveries too, and its
        // outbound queue would fill while the store catches up.
        match self.confirming.clone().try_acquire_owned() {
            Ok(permit) if self.deferred.is_empty() => self.confirm(permit, confirmation),
            _ => self.deferred.push_back(confirmation),
        }
        Ok(())
    }

    /// Writes a confirmation beside the connection, holding one of its places until done.
    fn confirm(&self, permit: tokio::sync::OwnedSemaphorePermit, confirmation: Confirmation) {
        let (callbox, connection) = (self.callbox.clone(), self.registered.connection.clone());
        let Confirmation { seq, message_id, reference } = confirmation;
        tokio::spawn(async move {
            let at = callbox.now();
            let (app_key, user_id) = (&connection.app_key, &connection.user_id);
            let refusal = match callbox.confirm_delivery(app_key, user_id, seq, &message_id).await {
                Ok(Some((sender, entry))) => {
                    callbox.realtime().fan_out_receipt(app_key, &sender, &entry, at);
                    None
                }
                Ok(None) => None,
                Err(error) => Some((error.reason, error.message.to_string())),
            };
            if let Some((reason, message)) = refusal {
                connection.send_plain(frames::error(reference.as_deref(), reason, &message, None));
            }
            drop(permit);
        });
    }

    fn require_calling(&self) -> Result<(), Refusal> {
        if self.calling {
            Ok(())
        } else {
            Err(Refusal::new(Reason::CapabilityNotGranted, "this session was not granted the calling capability"))
        }
    }

    /// A `call.*` frame (docs/calls.md): checked here, decided by the call's home.
    async fn call_frame(&mut self, kind: &str, reference: Option<&str>, frame: &Value) -> Result<(), Refusal> {
        self.require_calling()?;
        let config = self.callbox.realtime().calls().config().clone();
        let sdp = |frame: &Value| -> Result<String, Refusal> {
            match frame.get("sdp") {
                Some(Value::String(sdp)) if sdp.len() > config.max_sdp_bytes => Err(Refusal::new(
                    Reason::PayloadTooLarge,
                    format!("the sdp is {} bytes; at most {}", sdp.len(), config.max_sdp_bytes),
                )),
                Some(Value::String(sdp)) if !sdp.is_empty() => Ok(sdp.clone()),
                _ => Err(Refusal::new(Reason::MalformedRequest, "sdp must be a non-empty string (the SDP)")),
            }
        };
        if kind == "call.start" {
            let callee_id = match frame.get("calleeId") {
                Some(Value::String(id)) if callbox_core::is_valid_user_id(id) => id.clone(),
                _ => {
                    return Err(Refusal::new(
                        Reason::MalformedRequest,
                        "calleeId must be a user id (1-255 bytes without control characters)",
                    ))
                }
            };
            if callee_id == self.session.user_id {
                return Err(Refusal::new(Reason::MalformedRequest, "a call needs another user than the caller"));
            }
            let sdp = sdp(frame)?;
            let headers = match frame.get("headers") {
                None | Some(Value::Null) => "{}".to_owned(),
                Some(headers @ Value::Object(_)) => headers.to_string(),
                Some(_) => return Err(Refusal::new(Reason::MalformedRequest, "headers must be a JSON object")),
            };
            if headers.len() > self.config.max_headers_bytes {
                return Err(Refusal::new(
                    Reason::PayloadTooLarge,
                    format!(
                        "the headers are {} bytes of JSON; at most {}",
                        headers.len(),
                        self.config.max_headers_bytes
                    ),
                ));
            }
            let hub = self.callbox.realtime().clone();
            let placed = hub.start_call(self.endpoint.clone(), callee_id.clone(), sdp, headers)?;
            let home = hub.node_id().to_owned();
            self.calls.insert(placed.call_id.clone(), LocalCall { home, caller: true, answered: false });
            let frame = frames::call_placed(reference, &placed.call_id, &callee_id, placed.started_at);
            return self.send(&frame).await.map_err(|_| Refusal::new(Reason::Internal, ""));
        }
        let call_id = match frame.get("callId") {
            Some(Value::String(id)) if !id.is_empty() && id.len() <= 64 => id.clone(),
            _ => return Err(Refusal::new(Reason::MalformedRequest, "callId must be the call's id (a string)")),
        };
        let signal_kind = match kind {
            "call.answer" => SignalKind::Answer { sdp: sdp(frame)? },
            "call.decline" => SignalKind::Decline,
            "call.candidate" => {
                let candidate = match frame.get("candidate") {
                    Some(candidate @ Value::Object(_)) => candidate.clone(),
                    _ => {
                        return Err(Refusal::new(
                            Reason::MalformedRequest,
                            "candidate must be an object (RTCIceCandidateInit)",
                        ))
                    }
                };
                let bytes = candidate.to_string().len();
                if bytes > config.max_candidate_bytes {
                    return Err(Refusal::new(
                        Reason::PayloadTooLarge,
                        format!("the candidate is {bytes} bytes of JSON; at most {}", config.max_candidate_bytes),
                    ));
                }
                SignalKind::Candidate { candidate }
            }
            "call.hangup" => match frame.get("cause") {
                None | Some(Value::Null) => SignalKind::Hangup { failure: false },
                Some(Value::String(cause)) => SignalKind::Hangup { failure: cause == "failure" },
                Some(_) => return Err(Refusal::new(Reason::MalformedRequest, "cause must be a string")),
            },
            _ => SignalKind::Rejoin,
        };
        let hub = self.callbox.realtime().clone();
        let signal =
            Signal { call_id, from: self.endpoint.clone(), reference: reference.map(str::to_owned), kind: signal_kind };
        if signal.kind == SignalKind::Rejoin {
            if self.calls.contains_key(&signal.call_id) {
                return Err(Refusal::new(Reason::MalformedRequest, "this connection already takes part in the call"));
            }
            hub.signal_any(signal);
            return Ok(());
        }
        let Some(local) = self.calls.get(&signal.call_id) else {
            return Err(Refusal::new(Reason::NotFound, "no call with this callId on this connection"));
        };
        match &signal.kind {
            SignalKind::Answer { .. } | SignalKind::Decline if local.caller => {
                return Err(Refusal::new(Reason::NotFound, "no incoming call with this callId on this connection"))
            }
            SignalKind::Candidate { .. } if !local.caller && !local.answered => {
                return Err(Refusal::new(Reason::MalformedRequest, "the callee sends candidates after call.answer"))
            }
            _ => {}
        }
        hub.signal_home(&local.home.clone(), signal);
        Ok(())
    }

    /// A call frame from the hub.
    async fn call_delivery(&mut self, delivery: CallDelivery) -> Step {
        let CallDelivery { call_id, home, update, frame } = delivery;
        match update {
            CallUpdate::Incoming => {
                self.calls.insert(call_id.clone(), LocalCall { home: home.clone(), caller: false, answered: false });
                self.send(&frame).await?;
                let ringing =
                    Signal { call_id, from: self.endpoint.clone(), reference: None, kind: SignalKind::Ringing };
                self.callbox.realtime().signal_home(&home, ringing);
                Ok(())
            }
            CallUpdate::Answered => match self.calls.get_mut(&call_id) {
                Some(local) => {
                    local.answered = true;
                    self.send(&frame).await
                }
                None => Ok(()),
            },
            CallUpdate::Relay => {
                if self.calls.contains_key(&call_id) {
                    self.send(&frame).await
                } else {
                    Ok(())
                }
            }
            CallUpdate::Ended => {
                if self.calls.remove(&call_id).is_some() {
                    self.send(&frame).await
                } else {
                    Ok(())
                }
            }
            CallUpdate::Rejoined { caller, answered } => {
                self.calls.insert(call_id, LocalCall { home, caller, answered });
                self.send(&frame).await
            }
            CallUpdate::Direct => self.send(&frame).await,
        }
    }

    /// A frame from the hub: inbox entries are written in sequence order (see the module docs of
    /// [`super`]); others at once.
    async fn outbound(&mut self, outbound: Outbound) -> Step {
        match outbound {
            Outbound::Plain(frame) => self.send(&frame).await,
            Outbound::Call(delivery) => self.call_delivery(delivery).await,
            Outbound::Seq(seq, frame) => {
                if seq < self.next_seq {
                    return Ok(());
                }
                if seq > self.next_seq {
                    self.waiting.insert(seq, frame);
                    if self.waiting.len() >= self.config.outbound_queue.max(1) {
                        return self.fill_gap().await;
                    }
                    if self.gap_deadline.is_none() {
                        self.gap_deadline =
                            Some(Instant::now() + Duration::from_millis(self.config.gap_wait_milliseconds));
                    }
                    return Ok(());
                }
                self.send(&frame).await?;
                self.next_seq = seq + 1;
                self.flush_waiting().await
            }
        }
    }

    async fn flush_waiting(&mut self) -> Step {
        while let Some(frame) = self.waiting.remove(&self.next_seq) {
            self.send(&frame).await?;
            self.next_seq += 1;
        }
        if self.waiting.is_empty() {
            self.gap_deadline = None;
        }
        Ok(())
    }

    /// A missing entry did not arrive live in time (a publish lost between nodes, say): read it from the store.
    async fn fill_gap(&mut self) -> Step {
        self.gap_deadline = None;
        let after = self.next_seq.saturating_sub(1);
        match self.callbox.read_inbox(self.app_key(), self.user_id(), after, PAGE, false).await {
            Ok(entries) => {
                let found = !entries.is_empty();
                for entry in &entries {
                    if entry.seq >= self.next_seq {
                        self.send(&frames::entry(entry)).await?;
                        self.next_seq = entry.seq + 1;
                    }
                }
                let next = self.next_seq;
                self.waiting.retain(|seq, _| *seq >= next);
                if !found {
                    // Purged meanwhile (retention): skip to what is there.
                    if let Some(first) = self.waiting.keys().next().copied() {
                        self.next_seq = first;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read a realtime inbox gap; retrying"),
        }
        self.flush_waiting().await?;
        if !self.waiting.is_empty() {
            self.gap_deadline = Some(Instant::now() + Duration::from_millis(self.config.gap_wait_milliseconds));
        }
        Ok(())
    }
}

fn deadline_of(at: chrono::DateTime<Utc>, now: chrono::DateTime<Utc>) -> Instant {
    let left = (at - now).to_std().unwrap_or(Duration::ZERO);
    // One extra millisecond: waking exactly at the expiry would find the session still valid by a hair.
    Instant::now() + left + Duration::from_millis(1)
}
