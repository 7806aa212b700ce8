//! The accept loop: every TCP connection the server takes, and how long it may keep it.
//!
//! `axum::serve` keeps a connection as long as its peer likes: 20,000 connections that each send half a request
//! and go silent exhausted the file descriptors and stalled `accept` (issue 16). This loop drives hyper's HTTP/1
//! connection itself and adds:
//!
//! - **a header timeout** ([`ConnectionConfig::header_timeout_seconds`]): a new connection must deliver its first
//!   request's headers within it, and a kept-alive one the next request's headers within it of their first byte;
//! - **an idle timeout** ([`ConnectionConfig::idle_timeout_seconds`]): a kept-alive connection that sends nothing
//!   for that long is closed;
//! - **caps** per client address and in total ([`Budget`]): the excess is answered at once, without reading, with
//!   a one-shot §7 error (429 `rate_limited` for the address cap, 503 `service_unavailable` for the total) and
//!   closed, so a flood never stalls `accept`;
//! - **`accept` errors** (`EMFILE` and kin) back off briefly and are logged at most every few seconds;
//! - **graceful shutdown**: on the signal it stops accepting, lets in-flight requests finish, closes idle
//!   connections, and returns when the last connection has gone.
//!
//! hyper's own `header_read_timeout` is not used: its clock also runs while a kept-alive connection waits for
//! its next request, so it cannot give a short header timeout together with an idle timeout longer than a
//! proxy's (a backend that closes kept-alive connections before the proxy does makes the proxy's reuse race
//! into 502s).
//!
//! # Realtime connections
//!
//! Every request carries a [`ConnectionHandle`] in its extensions (next to `ConnectInfo<SocketAddr>`). A
//! handler that has authenticated a long-lived realtime connection (a WebSocket upgrade, a long poll) calls
//! [`ConnectionHandle::promote_to_realtime`]: the connection then leaves the budget of plain HTTP connections
//! (which stays small per address, because those are anonymous) for the separate realtime budget, and is no
//! longer subject to the header and idle timeouts (the realtime protocol keeps its own heartbeat). Its place in
//! the realtime budget is held until the socket closes, including after an HTTP upgrade: the budget slot lives
//! in the I/O object that hyper hands to the upgrade.
//!
//! # TLS
//!
//! With a [`TlsAcceptor`] ([`serve_with_tls`], `[tls]` in the configuration, [`crate::tls`]) every connection is
//! TLS over the same tracked socket, so budgets, timeouts, promotion and upgrades work as above:
//!
//! - the handshake counts as part of the first request: it and that request's headers together must arrive
//!   within the header timeout of the connection being accepted, so a silent or trickling client holds its
//!   place no longer than a slow plain HTTP one;
//! - a connection whose first byte is not a TLS handshake record (plain HTTP sent to the HTTPS port) is answered
//!   one plain-text `400 malformed_request` that says so, and closed;
//! - a failed handshake (an untrusted certificate, no common protocol or ALPN) is logged at debug and counted in
//!   `callbox_connections_tls_handshake_failures_total`; the loop goes on;
//! - a connection over a cap is closed without an answer: answering would take a handshake, the very cost the
//!   caps keep from a flood.

use crate::config::{Config, ConnectionConfig};
use axum::extract::ConnectInfo;
use axum::Router;
use callbox_core::Reason;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use metrics::{Counter, Gauge};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// File descriptors kept out of the connection caps for everything else the process opens: the database pool,
/// SQLite's journal, Redis, log files. At least this many, or an eighth of the limit when that is more.
const FILE_DESCRIPTOR_HEADROOM: u64 = 128;

/// How long `accept` pauses after an error that is not about one connection (`EMFILE`, `ENFILE`, `ENOBUFS`):
/// the descriptors come back as timed-out connections close; retrying at once would spin a core.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// At most one log line per this period about failing `accept`s (with how many failed meanwhile).
const ACCEPT_ERROR_LOG_PERIOD: Duration = Duration::from_secs(5);

static FILE_DESCRIPTOR_LIMIT: OnceLock<Option<u64>> = OnceLock::new();

/// Raises this process's file-descriptor soft limit to its hard limit (once; later calls return the first
/// answer) and returns the limit now in force; `None` where the platform has no such limit or it cannot be read.
pub fn raise_file_descriptor_limit() -> Option<u64> {
    *FILE_DESCRIPTOR_LIMIT.get_or_init(|| {
        // `increase_nofile_limit` asks for the hard limit; where the hard limit is "unlimited" the kernel refuses
        // that, and the soft limit read afterwards is the answer.
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => Some(limit),
            Err(error) => {
                tracing::warn!(%error, "could not raise the file-descriptor limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
            }
        }
    })
}

/// The file-descriptor limit found at start-up ([`raise_file_descriptor_limit`]), for `/readyz`.
pub fn file_descriptor_limit() -> Option<u64> {
    FILE_DESCRIPTOR_LIMIT.get().copied().flatten()
}

/// The limits one accept loop applies, resolved from [`ConnectionConfig`] and the file-descriptor limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Time for a request's headers (see the module doc).
    pub header_timeout: Duration,
    /// Time a kept-alive connection may stay silent between requests.
    pub idle_timeout: Duration,
    /// Plain HTTP connections per client address (`usize::MAX`: no cap).
    pub max_per_address: usize,
    /// Plain HTTP connections in all.
    pub max_total: usize,
    /// Promoted realtime connections per client address.
    pub realtime_max_per_address: usize,
    /// Promoted realtime connections in all.
    pub realtime_max_total: usize,
}

impl ConnectionSettings {
    /// Resolves the configuration: unset totals share the file descriptors left after a headroom half and half
    /// between plain HTTP and realtime connections; an unset per-address cap is
    /// [`ConnectionConfig::DEFAULT_MAX_PER_ADDRESS`], or none when `trust_forwarded_for` is on (every
    /// connection then comes from the proxy's address). 0 means no cap.
    pub fn resolve(config: &Config, file_descriptor_limit: Option<u64>) -> Self {
        let connections: &ConnectionConfig = &config.connections;
        let usable = match file_descriptor_limit {
            Some(limit) => {
                let headroom = FILE_DESCRIPTOR_HEADROOM.max(limit / 8);
                usize::try_from(limit.saturating_sub(headroom)).unwrap_or(usize::MAX).max(2)
            }
            None => 2 * ConnectionConfig::FALLBACK_MAX_TOTAL,
        };
        let cap = |value: usize| if value == 0 { usize::MAX } else { value };
        let default_per_address =
            if config.trust_forwarded_for { usize::MAX } else { ConnectionConfig::DEFAULT_MAX_PER_ADDRESS };
        Self {
            header_timeout: Duration::from_secs(connections.header_timeout_seconds.max(1)),
            idle_timeout: Duration::from_secs(connections.idle_timeout_seconds.max(1)),
            max_per_address: connections.max_per_address.map_or(default_per_address, cap),
            max_total: connections.max_total.map_or(usable / 2, cap),
            realtime_max_per_address: connections.realtime_max_per_address.map_or(default_per_address, cap),
            realtime_max_total: connections.realtime_max_total.map_or(usable - usable / 2, cap),
        }
    }
}

/// A cap for logs: its number, or `none`.
pub fn describe_cap(cap: usize) -> String {
    if cap == usize::MAX {
        "none".to_owned()
    } else {
        cap.to_string()
    }
}

/// Why a connection was refused a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionRefused {
    /// Its client address has as many as the per-address cap allows.
    #[error("too many connections from this address")]
    PerAddress,
    /// The server has as many as the total cap allows.
    #[error("too many connections")]
    Total,
}

impl ConnectionRefused {
    fn label(self) -> &'static str {
        match self {
            ConnectionRefused::PerAddress => "per_address",
            ConnectionRefused::Total => "total",
        }
    }
}

/// The key connections are counted under: the IPv4 address, or the IPv6 /64 (one host usually has a whole /64,
/// so counting single IPv6 addresses would cap nothing).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

/// One kind of connection's places: counted per client address and in total.
#[derive(Debug)]
pub struct Budget {
    max_per_address: usize,
    max_total: usize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
    total: AtomicUsize,
    open: Gauge,
    refused_per_address: Counter,
    refused_total: Counter,
}

impl Budget {
    fn new(kind: &'static str, max_per_address: usize, max_total: usize) -> Self {
        let refused = |cause: &'static str| metrics::counter!("callbox_connections_refused_total", "kind" => kind, "cause" => cause);
        Self {
            max_per_address,
            max_total,
            by_address: Mutex::new(HashMap::new()),
            total: AtomicUsize::new(0),
            open: metrics::gauge!("callbox_connections_open", "kind" => kind),
            refused_per_address: refused("per_address"),
            refused_total: refused("total"),
        }
    }

    /// Connections holding a place now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    fn take(&self, key: IpAddr) -> Result<(), ConnectionRefused> {
        let mut by_address = self.by_address.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let from_address = by_address.get(&key).copied().unwrap_or(0);
        let refused = if from_address >= self.max_per_address {
            Some(ConnectionRefused::PerAddress)
        } else if self.total.load(Ordering::Relaxed) >= self.max_total {
            Some(ConnectionRefused::Total)
        } else {
            None
        };
        if let Some(refused) = refused {
            match refused {
                ConnectionRefused::PerAddress => self.refused_per_address.increment(1),
                ConnectionRefused::Total => self.refused_total.increment(1),
            }
            return Err(refused);
        }
        by_address.insert(key, from_address + 1);
        self.total.fetch_add(1, Ordering::Relaxed);
        self.open.increment(1.0);
        Ok(())
    }

    fn release(&self, key: IpAddr) {
        let mut by_address = self.by_address.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match by_address.get_mut(&key) {
            Some(count) if *count > 1 => *count -= 1,
            Some(_) => {
                by_address.remove(&key);
            }
            None => return,
        }
        self.total.fetch_sub(1, Ordering::Relaxed);
        self.open.decrement(1.0);
    }
}

/// The two budgets of one accept loop.
#[derive(Debug)]
pub struct Budgets {
    /// Plain (unauthenticated, short-lived) HTTP connections: every connection starts here.
    pub http: Budget,
    /// Connections promoted by [`ConnectionHandle::promote_to_realtime`].
    pub realtime: Budget,
}

impl Budgets {
    fn new(settings: &ConnectionSettings) -> Self {
        Self {
            http: Budget::new("http", settings.max_per_address, settings.max_total),
            realtime: Budget::new("realtime", settings.realtime_max_per_address, settings.realtime_max_total),
        }
    }
}

// What a connection is doing, for its deadlines (see `Activity::deadline`).
const AWAITING_FIRST_REQUEST: u8 = 0;
const HANDLING_REQUEST: u8 = 1;
const IDLE: u8 = 2;
const READING_NEXT_REQUEST: u8 = 3;
const REALTIME: u8 = 4;

/// One connection's shared state: its budget place (given back on drop) and its activity.
#[derive(Debug)]
struct Connection {
    peer: SocketAddr,
    key: IpAddr,
    budgets: Arc<Budgets>,
    accepted: Instant,
    phase: AtomicU8,
    /// Milliseconds after `accepted` of the last phase change.
    phase_since: AtomicU64,
    /// Woken when a change moves a deadline earlier or sets one (the watchdog sleeps until the old one).
    changed: Notify,
}

impl Connection {
    fn elapsed_millis(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn enter(&self, phase: u8) {
        self.phase_since.store(self.elapsed_millis(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
        self.changed.notify_one();
    }

    fn request_started(&self) {
        if self.phase.load(Ordering::Acquire) != REALTIME {
            self.phase.store(HANDLING_REQUEST, Ordering::Release);
        }
    }

    fn request_finished(&self) {
        if self.phase.load(Ordering::Acquire) == HANDLING_REQUEST {
            self.enter(IDLE);
        }
    }

    /// A response is still going out (the handler has returned, hyper writes its body): the connection is not
    /// idle yet. A peer that stops reading stalls these writes, and is closed on the idle timeout.
    fn bytes_sent(&self) {
        if self.phase.load(Ordering::Acquire) == IDLE {
            self.phase_since.store(self.elapsed_millis(), Ordering::Relaxed);
        }
    }

    fn bytes_arrived(&self) {
        if self.phase.load(Ordering::Acquire) == IDLE {
            self.enter(READING_NEXT_REQUEST);
        }
    }

    /// When the connection must be closed if nothing changes, and why; `None` while a request is handled (the
    /// request timeout bounds that) or once the connection is realtime.
    fn deadline(&self, settings: &ConnectionSettings) -> Option<(Instant, TimedOut)> {
        let since = self.accepted + Duration::from_millis(self.phase_since.load(Ordering::Relaxed));
        match self.phase.load(Ordering::Acquire) {
            AWAITING_FIRST_REQUEST => Some((self.accepted + settings.header_timeout, TimedOut::Headers)),
            READING_NEXT_REQUEST => Some((since + settings.header_timeout, TimedOut::Headers)),
            IDLE => Some((since + settings.idle_timeout, TimedOut::Idle)),
            _ => None,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.phase.load(Ordering::Acquire) == REALTIME {
            self.budgets.realtime.release(self.key);
        } else {
            self.budgets.http.release(self.key);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum TimedOut {
    Headers,
    Idle,
}

/// The connection a request came on, in every request's extensions: the hook for the realtime layer (see the
/// module doc). Requests served by anything but [`serve`] (tests driving the router) have none.
#[derive(Debug, Clone)]
pub struct ConnectionHandle(Arc<Connection>);

impl ConnectionHandle {
    /// The peer's socket address.
    pub fn peer(&self) -> SocketAddr {
        self.0.peer
    }

    /// Whether [`ConnectionHandle::promote_to_realtime`] succeeded on this connection.
    pub fn is_realtime(&self) -> bool {
        self.0.phase.load(Ordering::Acquire) == REALTIME
    }

    /// Moves this connection from the plain HTTP budget to the realtime budget, for the rest of its life, and
    /// exempts it from the header and idle timeouts. Call it only once the connection is authenticated. Refused
    /// (the connection stays plain HTTP) when the realtime budget is full for its address or in total; the
    /// caller then answers 503 or 429 as it sees fit. Calling it again is a no-op.
    pub fn promote_to_realtime(&self) -> Result<(), ConnectionRefused> {
        let connection = &self.0;
        if self.is_realtime() {
            return Ok(());
        }
        connection.budgets.realtime.take(connection.key)?;
        connection.phase.store(REALTIME, Ordering::Release);
        connection.budgets.http.release(connection.key);
        connection.changed.notify_one();
        Ok(())
    }
}

/// The socket, noting when bytes arrive on a connection waiting between requests and when a response is still
/// being written. It owns the connection's
/// budget place, so the place lasts as long as the socket, also after an upgrade takes the socket from hyper.
#[derive(Debug)]
struct TrackedStream {
    stream: TcpStream,
    connection: Arc<Connection>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.connection.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.connection.bytes_sent();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.connection.bytes_sent();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Counters of connections closed or lost, made once per accept loop.
#[derive(Debug, Clone)]
struct LoopMetrics {
    header_timeouts: Counter,
    idle_timeouts: Counter,
    accept_errors: Counter,
    tls_handshake_failures: Counter,
}

impl LoopMetrics {
    fn new() -> Self {
        Self {
            header_timeouts: metrics::counter!("callbox_connections_timed_out_total", "phase" => "headers"),
            idle_timeouts: metrics::counter!("callbox_connections_timed_out_total", "phase" => "idle"),
            accept_errors: metrics::counter!("callbox_connections_accept_errors_total"),
            tls_handshake_failures: metrics::counter!("callbox_connections_tls_handshake_failures_total"),
        }
    }
}

/// The first byte of a TLS connection: a handshake record (RFC 8446 §5.1, `ContentType.handshake`).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// How long a connection answered "plain HTTP on the HTTPS port" is read (and the bytes dropped) before it is
/// closed: closing with the request unread would reset the connection, and the client could lose the answer.
const PLAIN_HTTP_LINGER: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` under `settings` until `shutdown` completes, then drains: stops accepting, lets
/// in-flight requests finish, closes idle connections, and returns once every connection has closed (realtime
/// connections taken over by an upgrade live on with their own task).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()> + Send,
) {
    serve_with_tls(listener, app, settings, None, shutdown).await;
}

/// [`serve`], speaking TLS through `tls` when given (see the module doc).
pub async fn serve_with_tls(
    listener: TcpListener,
    app: Router,
    settings: ConnectionSettings,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send,
) {
    serve_on_threads(listener, app, settings, tls, None, shutdown).await;
}

/// [`serve_with_tls`], each connection served on one of `threads` when given (in turn), else on the runtime this
/// runs on.
pub async fn serve_on_threads(
    listener: TcpListener,
    app: Router,
    settings: ConnectionSettings,
    tls: Option<TlsAcceptor>,
    threads: Option<ConnectionThreads>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let settings = Arc::new(settings);
    let budgets = Arc::new(Budgets::new(&settings));
    let loop_metrics = LoopMetrics::new();
    // Each connection task holds a receiver: `send` starts their graceful shutdown, `closed` waits for them all.
    let (draining, drain_signal) = watch::channel(false);
    let mut accept_errors = AcceptErrorLog::default();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                loop_metrics.accept_errors.increment(1);
                if is_per_connection_error(&error) {
                    continue;
                }
                accept_errors.note(&error);
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        // Answers and realtime frames are small and latency-bound: without TCP_NODELAY, Nagle's algorithm holds a
        // frame back until the previous one is acknowledged, which a peer's delayed ACK turns into tens of
        // milliseconds (measured on /v1/realtime, docs/benchmarks.md). A socket that refuses it still serves.
        let _ = stream.set_nodelay(true);
        let key = address_key(peer.ip());
        if let Err(refused) = budgets.http.take(key) {
            if tls.is_none() {
                refuse(&stream, refused);
            } else {
                tracing::debug!(cause = refused.label(), "TLS connection refused (closed without an answer)");
            }
            continue;
        }
        let connection = Arc::new(Connection {
            peer,
            key,
            budgets: Arc::clone(&budgets),
            accepted: Instant::now(),
            phase: AtomicU8::new(AWAITING_FIRST_REQUEST),
            phase_since: AtomicU64::new(0),
            changed: Notify::new(),
        });
        let first_request_deadline = tokio::time::Instant::from(connection.accepted + settings.header_timeout);
        let serve = {
            let (app, settings, loop_metrics) = (app.clone(), Arc::clone(&settings), loop_metrics.clone());
            let (drain_signal, tls) = (drain_signal.clone(), tls.clone());
            move |stream| serve_connection(stream, connection, app, settings, loop_metrics, drain_signal, tls)
        };
        match &threads {
            // TLS hides the request until the handshake: such connections stay here.
            Some(threads) if tls.is_none() => {
                let threads = threads.clone();
                tokio::spawn(async move {
                    let mut first = [0u8; 24];
                    let peeked = tokio::time::timeout_at(first_request_deadline, stream.peek(&mut first)).await;
                    match peeked {
                        Ok(Ok(read)) if !ConnectionThreads::stays_on_main_runtime(&first[..read]) => {
                            threads.serve(stream, serve);
                        }
                        // A long-lived connection, or nothing in time (served here, where the header timeout
                        // closes it and counts it).
                        _ => serve(stream).await,
                    }
                });
            }
            _ => {
                tokio::spawn(serve(stream));
            }
        }
    }
    drop(listener);
    drop(drain_signal);
    let _ = draining.send(true);
    draining.closed().await;
}

/// Threads that serve connections, each running its own single-threaded runtime (`[connections] threads`).
///
/// On the shared multi-threaded runtime a connection's wake-ups land on whichever worker polled the socket, and
/// idle workers park and are woken for each other's work: under many small requests the server spends much of
/// its time in thread switches (docs/benchmarks.md). A connection served on one of these threads is polled,
/// woken and answered on that thread alone. The accept loop hands plain HTTP connections out in turn; what they
/// wait for elsewhere (the store, the realtime hub, the cluster) lives on the main runtime as before.
///
/// Long-lived connections stay on the main runtime (see [`ConnectionThreads::stays_on_main_runtime`]), and so
/// do TLS connections, whose first request cannot be seen before the handshake.
#[derive(Clone)]
pub struct ConnectionThreads(Arc<Threads>);

struct Threads {
    handles: Vec<tokio::runtime::Handle>,
    /// The thread the next connection goes to (modulo their number).
    next: AtomicUsize,
    /// Dropped with the last clone: each thread's runtime then stops.
    _stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for ConnectionThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionThreads").field("threads", &self.count()).finish()
    }
}

impl ConnectionThreads {
    /// The threads `[connections] threads` asks for: that many, one per CPU core when unset, none for 0.
    pub fn configured(config: &ConnectionConfig) -> io::Result<Option<Self>> {
        let count = config
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get));
        if count == 0 {
            return Ok(None);
        }
        Self::start(count).map(Some)
    }

    /// Starts `count` threads (at least one), named `callbox-conn-N`.
    pub fn start(count: usize) -> io::Result<Self> {
        let mut handles = Vec::with_capacity(count.max(1));
        let mut stops = Vec::with_capacity(count.max(1));
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            stops.push(stop);
            std::thread::Builder::new().name(format!("callbox-conn-{index}")).spawn(move || {
                // Ends when every clone of the `ConnectionThreads` is gone; dropping the runtime then ends its tasks.
                let _ = runtime.block_on(stopped);
            })?;
        }
        Ok(Self(Arc::new(Threads { handles, next: AtomicUsize::new(0), _stop: stops })))
    }

    /// Whether a connection whose first bytes are `first` stays on the main runtime: a WebSocket (`/v1/realtime`)
    /// or a legacy long-poll (`/subscribe/...`) relays frames to and from other connections through the hub and
    /// the call registry, and the main runtime's work-stealing scheduler runs a task woken by another on the
    /// waker's own thread, where a connection thread must be woken across threads for every frame: call setups
    /// fell by a third when their connections were served on connection threads (docs/benchmarks.md).
    pub fn stays_on_main_runtime(first: &[u8]) -> bool {
        const LONG_LIVED: [&[u8]; 2] = [b"GET /v1/realtime", b"GET /subscribe/"];
        LONG_LIVED.iter().any(|prefix| first.starts_with(prefix))
    }

    /// How many threads serve connections.
    pub fn count(&self) -> usize {
        self.0.handles.len()
    }

    /// Serves `stream` with `serve` on the next thread in turn.
    fn serve<F, S>(&self, stream: TcpStream, serve: S)
    where
        S: FnOnce(TcpStream) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        // The socket moves to the chosen thread's reactor: out of this one as a plain socket, into that one there.
        let Ok(stream) = stream.into_std() else {
            return;
        };
        let index = self.0.next.fetch_add(1, Ordering::Relaxed) % self.count();
        self.0.handles[index].spawn(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream).await,
                Err(error) => tracing::debug!(%error, "a connection could not move to its thread"),
            }
        });
    }
}

/// One connection: with `tls`, its handshake first (see the module doc), then [`drive`].
async fn serve_connection(
    stream: TcpStream,
    connection: Arc<Connection>,
    app: Router,
    settings: Arc<ConnectionSettings>,
    loop_metrics: LoopMetrics,
    mut drain_signal: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
) {
    let Some(acceptor) = tls else {
        let io = TrackedStream { stream, connection: Arc::clone(&connection) };
        drive(io, connection, app, settings, loop_metrics, drain_signal).await;
        return;
    };
    // The handshake and the first request's headers share the header timeout from the accept (the watchdog in
    // `drive` keeps counting from `accepted` while the connection awaits its first request).
    let deadline = tokio::time::Instant::from(connection.accepted + settings.header_timeout);
    let handshake = async {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(0) => return Err(None),
            Ok(_) if first[0] != TLS_HANDSHAKE_RECORD => return Err(Some(stream)),
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "TLS connection lost before its handshake");
                return Err(None);
            }
        }
        let io = TrackedStream { stream, connection: Arc::clone(&connection) };
        match acceptor.accept(io).await {
            Ok(tls_stream) => Ok(tls_stream),
            Err(error) => {
                loop_metrics.tls_handshake_failures.increment(1);
                tracing::debug!(%error, peer = %connection.peer, "TLS handshake failed");
                Err(None)
            }
        }
    };
    let outcome = tokio::select! {
        outcome = tokio::time::timeout_at(deadline, handshake) => outcome,
        // Shutdown does not wait for handshakes: no request has started on them.
        _ = drain_signal.changed() => return,
    };
    match outcome {
        Ok(Ok(tls_stream)) => drive(tls_stream, connection, app, settings, loop_metrics, drain_signal).await,
        Ok(Err(Some(plain))) => answer_plain_http_on_tls_port(plain).await,
        Ok(Err(None)) => {}
        Err(_elapsed) => {
            loop_metrics.header_timeouts.increment(1);
            tracing::debug!(peer = %connection.peer, "TLS handshake timed out");
        }
    }
}

/// Tells a client that sent plain HTTP to the HTTPS port what happened, in plain HTTP, then closes.
async fn answer_plain_http_on_tls_port(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tracing::debug!("plain HTTP on the TLS listener");
    let response =
        one_shot_response("400 Bad Request", Reason::MalformedRequest, "this port speaks HTTPS: use https://", false);
    let linger = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), io::Error>(())
    };
    let _ = tokio::time::timeout(PLAIN_HTTP_LINGER, linger).await;
}

/// Serves HTTP/1 on `io` (plain or TLS): hyper's state machine, watched for the header and idle deadlines and
/// for shutdown.
async fn drive<I>(
    io: I,
    connection: Arc<Connection>,
    app: Router,
    settings: Arc<ConnectionSettings>,
    loop_metrics: LoopMetrics,
    mut drain_signal: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = connection.peer;
    let handle = ConnectionHandle(Arc::clone(&connection));
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let handle = handle.clone();
        let app = app.clone();
        async move {
            handle.0.request_started();
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(handle.clone());
            let response = app.oneshot(request).await;
            handle.0.request_finished();
            response
        }
    });
    let io = TokioIo::new(io);
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Timeouts are the watchdog's below (see the module doc), not hyper's.
    builder.header_read_timeout(None);
    let mut served = pin!(builder.serve_connection(io, service).with_upgrades());
    let mut draining = *drain_signal.borrow();
    if draining {
        served.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = connection.deadline(&settings);
        let wake_at = deadline.map_or_else(|| Instant::now() + settings.idle_timeout, |(at, _)| at);
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                break;
            }
            () = connection.changed.notified() => {}
            () = tokio::time::sleep_until(wake_at.into()) => {
                // The phase may have moved on since the deadline was read: only a deadline still in force counts.
                if let Some((at, why)) = connection.deadline(&settings) {
                    if at <= Instant::now() {
                        match why {
                            TimedOut::Headers => loop_metrics.header_timeouts.increment(1),
                            TimedOut::Idle => loop_metrics.idle_timeouts.increment(1),
                        }
                        break;
                    }
                }
            }
            changed = drain_signal.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    served.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Answers a refused connection at once with a §7 error and closes it, without reading its request and without
/// waiting: a full socket buffer just loses the answer.
fn refuse(stream: &TcpStream, refused: ConnectionRefused) {
    let (status, reason) = match refused {
        ConnectionRefused::PerAddress => ("429 Too Many Requests", Reason::RateLimited),
        ConnectionRefused::Total => ("503 Service Unavailable", Reason::ServiceUnavailable),
    };
    let response = one_shot_response(status, reason, &refused.to_string(), true);
    let _ = stream.try_write(response.as_bytes());
    tracing::debug!(cause = refused.label(), "connection refused");
}

/// A whole HTTP/1.1 response with a §7 body and `connection: close`, for connections answered outside hyper;
/// `retry` adds `Retry-After: 1` (and marks the error retryable).
fn one_shot_response(status: &str, reason: Reason, message: &str, retry: bool) -> String {
    let mut body = serde_json::json!({
        "errorCode": reason.error_code(),
        "message": message,
        "reason": reason.as_str(),
        "retryable": retry,
        "serverTime": callbox_core::time::format_iso_seconds(chrono::Utc::now()),
    });
    if retry {
        body["retryAfter"] = serde_json::json!(1);
    }
    let body = body.to_string();
    let retry_after = if retry { "retry-after: 1\r\n" } else { "" };
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry_after}\
         connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Errors about one connection that was gone before it was taken: the next `accept` may succeed at once.
fn is_per_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Logs failing `accept`s at most once per [`ACCEPT_ERROR_LOG_PERIOD`], with how many failed meanwhile.
#[derive(Debug, Default)]
struct AcceptErrorLog {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrorLog {
    fn note(&mut self, error: &io::Error) {
        self.unlogged += 1;
        if self.last_logged.is_some_and(|at| at.elapsed() < ACCEPT_ERROR_LOG_PERIOD) {
            return;
        }
        tracing::error!(
            %error,
            failures = self.unlogged,
            file_descriptor_limit = file_descriptor_limit().unwrap_or(0),
            "accept failed; pausing briefly before the next (connections over the caps are refused before this \
             happens: lower connections.max_total or raise the file-descriptor limit)"
        );
        self.last_logged = Some(Instant::now());
        self.unlogged = 0;
    }
}

/// The listeners a server binds: the main one, and the metrics one when `metrics_listen` is set.
pub struct Listeners {
    /// The API, dashboard and operations routes.
    pub main: TcpListener,
    /// Only `/metrics`, when `metrics_listen` is set. Always plain HTTP: it is meant for a private address.
    pub metrics: Option<TcpListener>,
    /// TLS on the main listener (`[tls]`); `None`: plain HTTP. [`Listeners::bind`] leaves it `None`.
    pub tls: Option<TlsAcceptor>,
    /// Threads that serve the main listener's connections; `None`: the runtime the accept loop runs on.
    /// [`Listeners::bind`] leaves it `None`.
    pub threads: Option<ConnectionThreads>,
}

impl std::fmt::Debug for Listeners {
    // By hand: `TlsAcceptor` has no `Debug`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("main", &self.main)
            .field("metrics", &self.metrics)
            .field("tls", &self.tls.is_some())
            .field("threads", &self.threads)
            .finish()
    }
}

impl Listeners {
    /// Binds `listen` and, when set, `metrics_listen`.
    pub async fn bind(config: &Config) -> Result<Self, (SocketAddr, io::Error)> {
        let main = TcpListener::bind(config.listen).await.map_err(|error| (config.listen, error))?;
        let metrics = match config.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await.map_err(|error| (address, error))?),
            None => None,
        };
        Ok(Self { main, metrics, tls: None, threads: None })
    }

    /// The bound main address (the real port when `listen` asked for port 0).
    pub fn main_address(&self) -> io::Result<SocketAddr> {
        self.main.local_addr()
    }

    /// The bound metrics address, when there is a metrics listener.
    pub fn metrics_address(&self) -> io::Result<Option<SocketAddr>> {
        self.metrics.as_ref().map(TcpListener::local_addr).transpose()
    }

    /// Serves the router of `state` on the main listener and `/metrics` on the metrics listener until
    /// `shutdown`, then drains both.
    pub async fn serve(
        self,
        state: crate::http::AppState,
        settings: ConnectionSettings,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let (stop, stopped) = watch::channel(false);
        let wait = |mut stopped: watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let main = serve_on_threads(
            self.main,
            crate::http::router(state.clone()),
            settings.clone(),
            self.tls,
            self.threads,
            wait(stopped.clone()),
        );
        let metrics = async {
            if let Some(listener) = self.metrics {
                serve(listener, crate::http::scrape::router(state), settings, wait(stopped)).await;
            }
        };
        let signal = async {
            shutdown.await;
            let _ = stop.send(true);
        };
        tokio::join!(main, metrics, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_counted_by_slash_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_budget_refuses_beyond_either_cap_and_gives_places_back() {
        let budget = Budget::new("test", 2, 3);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert_eq!(budget.take(a), Ok(()));
        assert_eq!(budget.take(a), Ok(()));
        assert_eq!(budget.take(a), Err(ConnectionRefused::PerAddress));
        assert_eq!(budget.take(b), Ok(()));
        assert_eq!(budget.take(b), Err(ConnectionRefused::Total));
        budget.release(a);
        assert_eq!(budget.open(), 2);
        assert_eq!(budget.take(b), Ok(()));
        budget.release(b);
        budget.release(b);
        budget.release(b); // more releases than takes change nothing
        assert_eq!(budget.open(), 1);
    }

    #[test]
    fn defaults_come_from_the_file_descriptor_limit_with_headroom() {
        let config = Config::default();
        let settings = ConnectionSettings::resolve(&config, Some(20_000));
        // An eighth (2,500) is kept for the rest of the process; the rest is halved between the two budgets.
        assert_eq!(settings.max_total, 8_750);
        assert_eq!(settings.realtime_max_total, 8_750);
        assert_eq!(settings.max_per_address, ConnectionConfig::DEFAULT_MAX_PER_ADDRESS);
        let small = ConnectionSettings::resolve(&config, Some(1024));
        assert_eq!(small.max_total + small.realtime_max_total, 1024 - 128);
        let behind_proxy = Config { trust_forwarded_for: true, ..Config::default() };
        assert_eq!(ConnectionSettings::resolve(&behind_proxy, Some(1024)).max_per_address, usize::MAX);
        let explicit = Config {
            connections: ConnectionConfig {
                max_total: Some(0),
                max_per_address: Some(3),
                ..ConnectionConfig::default()
            },
            ..Config::default()
        };
        let explicit = ConnectionSettings::resolve(&explicit, Some(1024));
        assert_eq!((explicit.max_total, explicit.max_per_address), (usize::MAX, 3));
    }
}
