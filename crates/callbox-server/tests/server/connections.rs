//! The accept loop (`callbox_server::listener`, issue 16): silent half-requests are closed after the header
//! timeout while normal requests go on, kept-alive connections after the idle timeout, the excess over the caps
//! is refused at once, promoted realtime connections leave the HTTP budget, shutdown drains; and the metrics
//! listener and token. Every server is the real accept loop on 127.0.0.1:0; clients connect from other
//! loopback addresses (127.0.0.0/8) to be counted as different clients.

use crate::support::*;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::{Extension, Router};
use callbox_server::config::{Config, ConnectionConfig, Redacted};
use callbox_server::http::AppState;
use callbox_server::listener::{self, ConnectionHandle, ConnectionSettings, ConnectionThreads, Listeners};
use reqwest::StatusCode;
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;

const HALF_REQUEST: &[u8] = b"GET /v1/timestamp HTTP/1.1\r\nHost: x\r\n";

/// A server on the real accept loop, stopped (gracefully) by `stop`.
struct Served {
    address: SocketAddr,
    metrics_address: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Served {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(adjust: impl FnOnce(&mut Config)) -> Served {
    listener::raise_file_descriptor_limit();
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = test_config(dir.path());
    config.demo_app = false;
    adjust(&mut config);
    let (callbox, _) = callbox_server::open(&config).await.unwrap();
    let mut listeners = Listeners::bind(&config).await.unwrap();
    // As `callbox serve` does: the accept loop's tests run on the connection threads of the configuration.
    listeners.threads = ConnectionThreads::configured(&config.connections).unwrap();
    let address = listeners.main_address().unwrap();
    let metrics_address = listeners.metrics_address().unwrap();
    let settings = ConnectionSettings::resolve(&config, listener::file_descriptor_limit());
    let state = AppState { callbox: Arc::new(callbox), metrics: callbox_server::metrics_handle() };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(listeners.serve(state, settings, async {
        let _ = stopped.await;
    }));
    Served { address, metrics_address, stop: Some(stop), task, _dir: dir }
}

/// A router of one route that promotes its connection to realtime, answering the peer address it saw.
fn promoting_router() -> Router {
    Router::new().route(
        "/promote",
        get(|Extension(handle): Extension<ConnectionHandle>, ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
            match handle.promote_to_realtime() {
                Ok(()) => (StatusCode::OK, peer.to_string()),
                Err(refused) => (StatusCode::TOO_MANY_REQUESTS, refused.to_string()),
            }
        }),
    )
}

async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source.into(), 0)).unwrap();
    socket.connect(server).await.unwrap()
}

/// Reads one HTTP/1.1 response (headers and a Content-Length body) without waiting for the connection to close.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await.unwrap().unwrap();
        assert!(read > 0, "closed before a whole response: {:?}", String::from_utf8_lossy(&bytes));
        bytes.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                .map_or(0, |length| length.trim().parse::<usize>().unwrap());
            if bytes.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// Waits (at most `limit`) for the server to close `stream`; returns how long that took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

fn metric(rendered: &str, series: &str) -> f64 {
    rendered
        .lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse::<f64>().ok()))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_half_requests_are_closed_after_the_header_timeout_while_requests_go_on() {
    const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
    const PER_ADDRESS: usize = 100;
    // Both ends of every connection are in this process: keep well under its descriptor limit.
    let limit = listener::raise_file_descriptor_limit().unwrap_or(1024);
    let addresses = usize::try_from((limit.saturating_sub(2000) / 2).min(2500) / 100).unwrap().max(2);
    let server = serve(|config| {
        config.connections = ConnectionConfig {
            header_timeout_seconds: HEADER_TIMEOUT.as_secs(),
            max_per_address: Some(PER_ADDRESS),
            ..ConnectionConfig::default()
        };
    })
    .await;
    let timeouts_before = metric(
        &callbox_server::metrics_handle().unwrap().render(),
        "callbox_connections_timed_out_total{phase=\"headers\"}",
    );

    let mut silent = Vec::new();
    let mut refused_at_once = None;
    for address in 0..addresses {
        let source = Ipv4Addr::new(127, 0, 1, u8::try_from(address + 1).unwrap());
        for _ in 0..PER_ADDRESS {
            let mut stream = connect_from(source, server.address).await;
            stream.write_all(HALF_REQUEST).await.unwrap();
            let sent = Instant::now();
            silent.push(tokio::spawn(async move {
                let closed = closed_within(&mut stream, HEADER_TIMEOUT * 3).await;
                (sent, closed.map(|_| sent.elapsed()))
            }));
        }
        if address == 0 {
            // One over the cap from the same address: answered and closed at once, while the others are held.
            let started = Instant::now();
            let mut extra = connect_from(source, server.address).await;
            let _ = extra.write_all(HALF_REQUEST).await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(1), extra.read_to_end(&mut answer)).await.unwrap();
            refused_at_once = Some((started.elapsed(), String::from_utf8_lossy(&answer).into_owned()));
        }
    }
    let total = silent.len();

    // A normal request still answers promptly with every silent connection held open.
    let started = Instant::now();
    let response =
        reqwest::Client::new().get(server.url("/v1/timestamp")).timeout(Duration::from_secs(5)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let normal = started.elapsed();
    assert!(normal < Duration::from_secs(2), "a normal request took {normal:?} beside {total} silent connections");

    let (refusal_time, refusal) = refused_at_once.unwrap();
    assert!(refusal_time < Duration::from_millis(900), "the refusal took {refusal_time:?}");
    assert!(refusal.starts_with("HTTP/1.1 429"), "{refusal}");
    assert!(refusal.contains(r#""reason":"rate_limited""#) && refusal.contains(r#""errorCode":42900"#), "{refusal}");

    let mut slowest = Duration::ZERO;
    for task in silent {
        let (_, closed) = task.await.unwrap();
        let closed = closed.expect("a silent connection was still open after three header timeouts");
        assert!(closed >= HEADER_TIMEOUT - Duration::from_millis(300), "closed after only {closed:?}");
        slowest = slowest.max(closed);
    }
    assert!(slowest < HEADER_TIMEOUT + Duration::from_millis(2500), "the slowest close took {slowest:?}");
    let rendered = callbox_server::metrics_handle().unwrap().render();
    let timed_out = metric(&rendered, "callbox_connections_timed_out_total{phase=\"headers\"}") - timeouts_before;
    assert!(timed_out >= total as f64, "{timed_out} header timeouts counted for {total} silent connections");
    assert!(metric(&rendered, "callbox_connections_refused_total{kind=\"http\",cause=\"per_address\"}") >= 1.0);
    eprintln!("{total} silent connections: normal request {normal:?}, slowest close {slowest:?}");
}

#[tokio::test]
async fn kept_alive_connections_close_when_idle_and_a_slow_next_request_on_the_header_timeout() {
    let server = serve(|config| {
        config.connections =
            ConnectionConfig { header_timeout_seconds: 1, idle_timeout_seconds: 3, ..ConnectionConfig::default() };
    })
    .await;
    let request = b"GET /v1/timestamp HTTP/1.1\r\nHost: x\r\n\r\n";

    // Idle after one answered request: closed on the idle timeout (3 s), not the header timeout (1 s).
    let mut idle = connect_from(Ipv4Addr::new(127, 0, 2, 1), server.address).await;
    idle.write_all(request).await.unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    // Half a second of silence, then another request: still served on the same connection.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    idle.write_all(request).await.unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"), "kept alive beyond the header timeout");
    let closed = closed_within(&mut idle, Duration::from_secs(6)).await.expect("an idle connection stayed open");
    assert!(
        closed > Duration::from_millis(2500) && closed < Duration::from_millis(4500),
        "idle close after {closed:?}"
    );

    // The next request's headers trickling in: closed one header timeout after their first byte.
    let mut slow = connect_from(Ipv4Addr::new(127, 0, 2, 2), server.address).await;
    slow.write_all(request).await.unwrap();
    assert!(read_response(&mut slow).await.starts_with("HTTP/1.1 200"));
    slow.write_all(HALF_REQUEST).await.unwrap();
    let closed = closed_within(&mut slow, Duration::from_secs(6)).await.expect("a slow request stayed open");
    assert!(closed > Duration::from_millis(700) && closed < Duration::from_millis(2500), "slow close after {closed:?}");
}

#[tokio::test]
async fn the_total_cap_refuses_the_excess_at_once_with_503() {
    let server = serve(|config| {
        config.connections =
            ConnectionConfig { max_total: Some(3), max_per_address: Some(0), ..ConnectionConfig::default() };
    })
    .await;
    let mut held = Vec::new();
    for index in 0..3 {
        let mut stream = connect_from(Ipv4Addr::new(127, 0, 3, index + 1), server.address).await;
        stream.write_all(HALF_REQUEST).await.unwrap();
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let mut extra = connect_from(Ipv4Addr::new(127, 0, 3, 9), server.address).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), extra.read_to_end(&mut answer)).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(started.elapsed() < Duration::from_millis(900));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains(r#""reason":"service_unavailable""#) && answer.contains("retry-after: 1"), "{answer}");
    // A place freed is a place taken again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from(Ipv4Addr::new(127, 0, 3, 9), server.address).await;
    again.write_all(b"GET /v1/timestamp HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(read_response(&mut again).await.starts_with("HTTP/1.1 200"));
}

#[test]
fn the_configuration_sets_the_connection_threads_and_0_turns_them_off() {
    let threads = |threads| ConnectionThreads::configured(&ConnectionConfig { threads, ..ConnectionConfig::default() });
    assert!(threads(Some(0)).unwrap().is_none(), "0: served on the main runtime");
    assert_eq!(threads(Some(3)).unwrap().unwrap().count(), 3);
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(threads(None).unwrap().unwrap().count(), cores, "unset: one per core");
}

#[tokio::test]
async fn connections_are_served_in_turn_on_the_connection_threads_each_on_one_thread() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = test_config(dir.path());
    config.connections = ConnectionConfig {
        header_timeout_seconds: 1,
        max_per_address: Some(8),
        realtime_max_per_address: Some(1),
        ..ConnectionConfig::default()
    };
    let settings = ConnectionSettings::resolve(&config, Some(4096));
    let bound = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = bound.local_addr().unwrap();
    let threads = ConnectionThreads::start(2).unwrap();
    assert_eq!(threads.count(), 2);
    let thread_name = || async { std::thread::current().name().unwrap_or("unnamed").to_owned() };
    let app = promoting_router().route("/thread", get(thread_name)).route("/v1/realtime", get(thread_name));
    let task =
        tokio::spawn(listener::serve_on_threads(bound, app, settings, None, Some(threads), std::future::pending()));

    let mut names = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut client = connect_from(Ipv4Addr::new(127, 0, 6, 1), address).await;
        // Two requests on one connection: the same thread answers both.
        for _ in 0..2 {
            client.write_all(b"GET /thread HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            let answer = read_response(&mut client).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            names.push(answer.rsplit("\r\n").next().unwrap().to_owned());
        }
        clients.push(client);
    }
    let expected = ["callbox-conn-0", "callbox-conn-1", "callbox-conn-0", "callbox-conn-1"];
    let expected: Vec<&str> = expected.iter().flat_map(|name| [*name, *name]).collect();
    assert_eq!(names, expected, "connections go to the threads in turn, and stay on theirs");

    // A long-lived connection (a WebSocket, a legacy long-poll) stays on the runtime of the accept loop.
    let mut realtime = connect_from(Ipv4Addr::new(127, 0, 6, 1), address).await;
    realtime.write_all(b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let answer = read_response(&mut realtime).await;
    let served_by = answer.rsplit("\r\n").next().unwrap();
    assert!(!served_by.starts_with("callbox-conn-"), "a realtime connection went to {served_by}");
    assert!(ConnectionThreads::stays_on_main_runtime(b"GET /subscribe/sub-c-1/ch/0/0 HTTP/1.1"));
    assert!(!ConnectionThreads::stays_on_main_runtime(b"POST /v1/instance HTTP/1.1"));

    // A connection that sends nothing cannot be placed by its request: it waits where it was accepted, and the
    // header timeout closes it there.
    let mut silent = connect_from(Ipv4Addr::new(127, 0, 6, 2), address).await;
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await.is_some(), "a silent connection stayed open");

    // The budgets are the accept loop's, whichever thread serves: one realtime place per address, in all.
    let promote = b"GET /promote HTTP/1.1\r\nHost: x\r\n\r\n";
    clients[0].write_all(promote).await.unwrap();
    assert!(read_response(&mut clients[0]).await.starts_with("HTTP/1.1 200"));
    clients[1].write_all(promote).await.unwrap();
    let refused = read_response(&mut clients[1]).await;
    assert!(refused.starts_with("HTTP/1.1 429"), "the second thread sees the first one's promotion: {refused}");
    task.abort();
}

#[tokio::test]
async fn a_promoted_connection_leaves_the_http_budget_and_the_timeouts() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = test_config(dir.path());
    config.connections = ConnectionConfig {
        header_timeout_seconds: 1,
        idle_timeout_seconds: 1,
        max_per_address: Some(1),
        realtime_max_per_address: Some(1),
        ..ConnectionConfig::default()
    };
    let settings = ConnectionSettings::resolve(&config, Some(4096));
    let bound = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = bound.local_addr().unwrap();
    let task = tokio::spawn(listener::serve(bound, promoting_router(), settings, std::future::pending()));
    let source = Ipv4Addr::new(127, 0, 4, 1);
    let promote = b"GET /promote HTTP/1.1\r\nHost: x\r\n\r\n";

    let mut realtime = connect_from(source, address).await;
    realtime.write_all(promote).await.unwrap();
    let answer = read_response(&mut realtime).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // ConnectInfo still reaches handlers: the peer it saw is this socket.
    assert!(answer.ends_with(&realtime.local_addr().unwrap().to_string()), "{answer}");

    // Its HTTP place is free again: a second plain connection from the address is served...
    let mut plain = connect_from(source, address).await;
    plain.write_all(promote).await.unwrap();
    let answer = read_response(&mut plain).await;
    // ...but refused promotion (one realtime connection per address), so it stays plain HTTP...
    assert!(answer.starts_with("HTTP/1.1 429") && answer.contains("too many connections from this address"));
    // ...and holds the only HTTP place: a third is refused at once.
    let mut third = connect_from(source, address).await;
    let mut refusal = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), third.read_to_end(&mut refusal)).await.unwrap();
    assert!(String::from_utf8_lossy(&refusal).starts_with("HTTP/1.1 429"));

    // After the idle timeout the plain one is closed; the realtime one is not, and still serves.
    assert!(closed_within(&mut plain, Duration::from_secs(3)).await.is_some(), "the plain connection stayed open");
    tokio::time::sleep(Duration::from_millis(500)).await;
    realtime.write_all(promote).await.unwrap();
    assert!(read_response(&mut realtime).await.starts_with("HTTP/1.1 200"), "promoting twice is a no-op");
    task.abort();
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let mut server = serve(|_| {}).await;
    let mut kept = connect_from(Ipv4Addr::new(127, 0, 5, 1), server.address).await;
    kept.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let answer = read_response(&mut kept).await;
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["fileDescriptorLimit"].as_u64(), listener::file_descriptor_limit(), "{body}");
    assert!(body["fileDescriptorLimit"].as_u64().unwrap() > 0);

    server.stop.take().unwrap().send(()).unwrap();
    let task = &mut server.task;
    tokio::time::timeout(Duration::from_secs(3), task).await.expect("serve did not return after shutdown").unwrap();
    assert!(closed_within(&mut kept, Duration::from_secs(1)).await.is_some(), "the idle connection stayed open");
    assert!(TcpStream::connect(server.address).await.is_err(), "still accepting after shutdown");
}

#[tokio::test]
async fn metrics_on_their_own_listener_behind_a_token() {
    let server = serve(|config| {
        config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        config.metrics_token = Some(Redacted("metrics-token-for-tests".into()));
    })
    .await;
    let http = reqwest::Client::new();
    // The main listener no longer knows /metrics.
    assert_error(http.get(server.url("/metrics")).send().await.unwrap(), 404, "not_found").await;
    let metrics_url = format!("http://{}", server.metrics_address.unwrap());
    let page = |auth: Option<&str>| {
        let mut request = http.get(format!("{metrics_url}/metrics"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };
    assert_error(page(None).await.unwrap(), 401, "missing_authorization").await;
    assert_error(page(Some("Bearer wrong")).await.unwrap(), 401, "invalid_admin_token").await;
    assert_error(page(Some("Basic bWV0cmljcy10b2tlbg==")).await.unwrap(), 401, "malformed_authorization").await;
    let response = page(Some("Bearer metrics-token-for-tests")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("callbox_connections_open"));
    // The metrics listener serves nothing else.
    assert_error(http.get(format!("{metrics_url}/v1/timestamp")).send().await.unwrap(), 404, "not_found").await;
    assert_error(http.post(format!("{metrics_url}/metrics")).send().await.unwrap(), 405, "method_not_allowed").await;
}

#[tokio::test]
async fn a_metrics_token_guards_metrics_on_the_main_listener() {
    let server = serve(|config| config.metrics_token = Some(Redacted("main-listener-token".into()))).await;
    let http = reqwest::Client::new();
    assert_error(http.get(server.url("/metrics")).send().await.unwrap(), 401, "missing_authorization").await;
    let response = http.get(server.url("/metrics")).bearer_auth("main-listener-token").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("# TYPE"));
    // Without a token configured, /metrics stays open (the default).
    let open = serve(|_| {}).await;
    assert_eq!(http.get(open.url("/metrics")).send().await.unwrap().status(), StatusCode::OK);
}
