//! TLS on the listener (`[tls]`, crates/callbox-server/src/tls.rs): a real server on 127.0.0.1:0 with a test CA
//! and certificate made here, and clients that trust only that CA. HTTPS requests, the WebSocket upgrade,
//! plain HTTP and stalled handshakes on the TLS port, reloading, the files refused at start, the realtime host.

use crate::support::*;
use callbox_server::config::{ConnectionConfig, LegacyConfig, TlsConfig};
use callbox_server::tls::ServerTls;
use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use reqwest::{Method, StatusCode};
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// A certificate authority made for one test; clients built here trust it and nothing else.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        Self { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    /// A server certificate for `names` signed by this CA: (certificate PEM, key PEM).
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a certificate for 127.0.0.1 and localhost into `dir`; the `[tls]` table naming the two files.
    pub fn write_pair(&self, dir: &Path) -> TlsConfig {
        let (cert, key) = self.issue(&["127.0.0.1", "localhost"]);
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        TlsConfig { cert: Some(cert_path), key: Some(key_path) }
    }

    pub fn client_config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }

    /// An HTTPS client that trusts this CA only (verification stays on).
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_preconfigured_tls(self.client_config())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }
}

/// A TLS server with `ca`'s certificate; `adjust` changes its configuration first.
async fn start_tls(ca: &TestCa, dir: &TempDir, adjust: impl FnOnce(&mut callbox_server::config::Config)) -> Server {
    let files = TempDir::new_in(dir.path()).unwrap();
    let mut config = test_config(&dir.path().join("data"));
    config.tls = ca.write_pair(files.path());
    adjust(&mut config);
    let tls = ServerTls::load(&config.tls).unwrap().expect("tls is configured");
    start_serving(config, Some(tls.acceptor()), ca.client()).await
}

fn address(server: &Server) -> String {
    server.url.trim_start_matches("https://").to_owned()
}

#[tokio::test]
async fn https_requests_work_with_a_client_that_trusts_the_ca_and_fail_for_one_that_does_not() {
    let ca = TestCa::new("Callbox test CA");
    let dir = TempDir::new().unwrap();
    let server = start_tls(&ca, &dir, |_| {}).await;
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);

    let response = server.http.get(server.url("/v1/timestamp")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let body: Value = response.json().await.unwrap();
    assert!(body["timestamp"].as_str().is_some(), "{body}");

    // A client trusting another CA refuses the certificate: the handshake fails, and only that connection.
    let stranger = TestCa::new("Another CA").client();
    let refused = stranger.get(server.url("/v1/timestamp")).send().await;
    assert!(refused.is_err(), "an untrusted certificate must not be accepted: {refused:?}");

    // A client offering only h2 over ALPN finds no common protocol: refused in the handshake.
    let mut h2_only = ca.client_config();
    h2_only.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(address(&server)).await.unwrap();
    let name = ServerName::try_from("127.0.0.1".to_owned()).unwrap();
    let handshake = tokio_rustls::TlsConnector::from(Arc::new(h2_only)).connect(name, tcp).await;
    assert!(handshake.is_err(), "ALPN h2 alone must be refused");

    // The admin API and signed client calls over the same TLS connection pool.
    let app = server.create_app(json!({})).await;
    let session = server.session(&app.ticket("alice")).await;
    let profile = server.signed(Method::GET, "/v1/user/profile", None, &session).await;
    assert_eq!(profile.status(), StatusCode::OK);
    let again = server.http.get(server.url("/v1/timestamp")).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK, "the server goes on after failed handshakes");
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_told_to_use_https_and_the_server_goes_on() {
    let ca = TestCa::new("Callbox test CA");
    let dir = TempDir::new().unwrap();
    let server = start_tls(&ca, &dir, |_| {}).await;
    let plain = format!("http://{}/v1/timestamp", address(&server));
    for _ in 0..3 {
        let response = reqwest::Client::new().get(&plain).send().await.unwrap();
        assert_error(response, 400, "malformed_request").await;
    }
    let response = server.http.get(server.url("/v1/timestamp")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Reads until the server closes the connection (EOF or reset); how long that took.
async fn closed_after(stream: &mut tokio::net::TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await.expect("the server closes the connection") {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn a_silent_or_stalled_handshake_is_closed_at_the_header_timeout() {
    let ca = TestCa::new("Callbox test CA");
    let dir = TempDir::new().unwrap();
    let server = start_tls(&ca, &dir, |config| {
        config.connections = ConnectionConfig { header_timeout_seconds: 1, ..ConnectionConfig::default() };
    })
    .await;
    let mut silent = tokio::net::TcpStream::connect(address(&server)).await.unwrap();
    let mut stalled = tokio::net::TcpStream::connect(address(&server)).await.unwrap();
    // The start of a TLS record header (handshake, TLS 1.0 record version), then nothing.
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let (silent_for, stalled_for) = tokio::join!(
        closed_after(&mut silent, Duration::from_secs(5)),
        closed_after(&mut stalled, Duration::from_secs(5))
    );
    for held in [silent_for, stalled_for] {
        assert!(held >= Duration::from_millis(800) && held < Duration::from_secs(3), "held for {held:?}");
    }
    let response = server.http.get(server.url("/v1/timestamp")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_realtime_websocket_upgrades_over_tls_and_outlives_the_http_timeouts() {
    let ca = TestCa::new("Callbox test CA");
    let dir = TempDir::new().unwrap();
    let server = start_tls(&ca, &dir, |config| {
        config.connections =
            ConnectionConfig { header_timeout_seconds: 1, idle_timeout_seconds: 1, ..ConnectionConfig::default() };
    })
    .await;
    let app = server.create_app(json!({})).await;
    let session = server.session(&app.ticket("alice")).await;

    let tcp = tokio::net::TcpStream::connect(address(&server)).await.unwrap();
    let name = ServerName::try_from("127.0.0.1".to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(ca.client_config())).connect(name, tcp).await.unwrap();
    let url = format!("wss://{}/v1/realtime", address(&server));
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    let challenge = read_frame(&mut ws).await;
    assert_eq!(challenge["type"], "challenge", "{challenge}");
    let nonce = challenge["nonce"].as_str().unwrap().to_owned();
    let auth = crate::realtime::auth_frame_at(&session, &nonce, None, server.now());
    ws.send(Message::Text(auth.to_string().into())).await.unwrap();
    let frame = read_frame(&mut ws).await;
    assert_eq!(frame["type"], "ready", "{frame}");

    // Promoted to realtime: neither the header nor the idle timeout (1 s each) closes it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let send = json!({ "type": "message.send", "ref": "r1", "recipients": ["bob"], "text": "over TLS" });
    ws.send(Message::Text(send.to_string().into())).await.unwrap();
    let accepted = read_frame(&mut ws).await;
    assert_eq!(accepted["type"], "message.accepted", "{accepted}");
}

/// The next frame that is not a ping.
async fn read_frame<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a frame").unwrap().unwrap();
        if let Message::Text(text) = frame {
            let frame: Value = serde_json::from_str(text.as_str()).unwrap();
            if frame["type"] != "ping" {
                return frame;
            }
        }
    }
}

#[tokio::test]
async fn the_configured_realtime_host_is_handed_out_and_the_host_header_by_default() {
    let ca = TestCa::new("Callbox test CA");
    let dir = TempDir::new().unwrap();
    let default = start_tls(&ca, &dir, |_| {}).await;
    let app = default.create_app(json!({})).await;
    let session = default.session(&app.ticket("alice")).await;
    let config: Value =
        default.signed(Method::GET, "/v1/configuration/user", None, &session).await.json().await.unwrap();
    for network in ["broadcastNetwork", "signalNetwork"] {
        assert_eq!(config["rtcConfiguration"][network]["host"], address(&default), "{config}");
    }

    let other = TempDir::new().unwrap();
    let configured = start_tls(&ca, &other, |config| {
        config.legacy = LegacyConfig { realtime_host: Some("rt.callbox.example:8443".into()) };
    })
    .await;
    let app = configured.create_app(json!({})).await;
    let session = configured.session(&app.ticket("alice")).await;
    let config: Value =
        configured.signed(Method::GET, "/v1/configuration/user", None, &session).await.json().await.unwrap();
    for network in ["broadcastNetwork", "signalNetwork"] {
        assert_eq!(config["rtcConfiguration"][network]["host"], "rt.callbox.example:8443", "{config}");
    }
}

#[tokio::test]
async fn the_dashboard_cookie_is_secure_over_tls() {
    let ca = TestCa::new("Callbox test CA");
    let dir = TempDir::new().unwrap();
    let server = start_tls(&ca, &dir, |_| {}).await;
    let response = server.http.get(server.url("/dashboard/api/signin")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}

#[tokio::test]
async fn reload_serves_the_new_pair_and_keeps_the_old_one_when_the_new_files_are_bad() {
    let first = TestCa::new("First CA");
    let second = TestCa::new("Second CA");
    let dir = TempDir::new().unwrap();
    let files = TempDir::new().unwrap();
    let mut config = test_config(dir.path());
    config.tls = first.write_pair(files.path());
    let tls = ServerTls::load(&config.tls).unwrap().unwrap();
    let server = start_serving(config.clone(), Some(tls.acceptor()), first.client()).await;
    let get = |client: reqwest::Client| {
        let url = server.url("/v1/timestamp");
        async move { client.get(url).send().await.map(|response| response.status()) }
    };
    assert_eq!(get(first.client()).await.unwrap(), StatusCode::OK);

    second.write_pair(files.path());
    tls.reload().unwrap();
    assert_eq!(get(second.client()).await.unwrap(), StatusCode::OK, "new handshakes get the new certificate");
    assert!(get(first.client()).await.is_err(), "the old certificate is gone");
    let in_force = tls.certificate();

    // Bad new files: the pair in force stays.
    std::fs::write(config.tls.key.as_ref().unwrap(), "not a key").unwrap();
    let error = tls.reload().unwrap_err().to_string();
    assert!(error.contains("key.pem") && error.contains("no PEM private key"), "{error}");
    let (_, other_key) = second.issue(&["127.0.0.1"]);
    std::fs::write(config.tls.key.as_ref().unwrap(), other_key).unwrap();
    let error = tls.reload().unwrap_err().to_string();
    assert!(error.contains("cannot be used together"), "a key of another certificate: {error}");
    assert_eq!(tls.certificate(), in_force);
    assert_eq!(get(second.client()).await.unwrap(), StatusCode::OK);
}

#[test]
fn start_up_refuses_one_file_without_the_other_and_files_it_cannot_use() {
    let ca = TestCa::new("Callbox test CA");
    let dir = TempDir::new().unwrap();
    let good = ca.write_pair(dir.path());
    let (cert, key) = (good.cert.clone().unwrap(), good.key.clone().unwrap());
    let error = |tls: TlsConfig| ServerTls::load(&tls).unwrap_err().to_string();

    assert!(ServerTls::load(&TlsConfig::default()).unwrap().is_none(), "neither: plain HTTP");
    assert!(ServerTls::load(&good).unwrap().is_some());
    let only_cert = error(TlsConfig { cert: Some(cert.clone()), key: None });
    assert!(only_cert.starts_with("tls.cert is set but tls.key is not"), "{only_cert}");
    let only_key = error(TlsConfig { cert: None, key: Some(key.clone()) });
    assert!(only_key.starts_with("tls.key is set but tls.cert is not"), "{only_key}");
    for message in [only_cert, only_key] {
        assert!(!message.contains('\n') && message.contains("--tls-cert") && message.contains("CALLBOX_TLS__KEY"));
    }

    let missing = dir.path().join("missing.pem");
    let unreadable = error(TlsConfig { cert: Some(missing.clone()), key: Some(key.clone()) });
    assert!(
        unreadable.contains("cannot read the TLS certificate") && unreadable.contains("missing.pem"),
        "{unreadable}"
    );
    let garbage: PathBuf = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello, not PEM\n").unwrap();
    let no_cert = error(TlsConfig { cert: Some(garbage.clone()), key: Some(key.clone()) });
    assert!(no_cert.contains("holds no PEM certificate"), "{no_cert}");
    let no_key = error(TlsConfig { cert: Some(cert.clone()), key: Some(garbage) });
    assert!(no_key.contains("holds no PEM private key"), "{no_key}");
    // The key file given as the certificate: PEM, but no certificate in it.
    let swapped = error(TlsConfig { cert: Some(key.clone()), key: Some(cert.clone()) });
    assert!(swapped.contains("holds no PEM certificate"), "{swapped}");
    let broken = dir.path().join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
    let broken = error(TlsConfig { cert: Some(broken), key: Some(key) });
    assert!(broken.contains("cannot be used together"), "{broken}");
}

/// A TLS connection to `address` trusting `ca`.
async fn tls_connect(
    ca: &TestCa,
    address: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = ServerName::try_from("127.0.0.1".to_owned()).unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(ca.client_config())).connect(name, tcp).await.unwrap()
}

/// Sends `GET path` on a kept-alive connection and reads one whole response (status line to end of body).
async fn get_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(stream: &mut S, path: &str) -> String {
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(read > 0, "closed mid-response: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buf[..read]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                .map_or(0, |length| length.trim().parse::<usize>().unwrap());
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn caps_timeouts_and_long_requests_hold_under_tls() {
    use axum::routing::get;
    use callbox_server::listener::{self, ConnectionSettings};
    let ca = TestCa::new("Callbox test CA");
    let dir = TempDir::new().unwrap();
    let mut config = test_config(dir.path());
    config.tls = ca.write_pair(dir.path());
    config.connections = ConnectionConfig {
        header_timeout_seconds: 1,
        idle_timeout_seconds: 1,
        max_per_address: Some(1),
        ..ConnectionConfig::default()
    };
    let tls = ServerTls::load(&config.tls).unwrap().unwrap();
    let router = axum::Router::new().route("/fast", get(|| async { "fast" })).route(
        "/slow",
        get(|| async {
            // Longer than both timeouts: a request being handled is bounded by the request timeout only.
            tokio::time::sleep(Duration::from_millis(2500)).await;
            "slow"
        }),
    );
    let settings = ConnectionSettings::resolve(&config, Some(4096));
    let bound = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = bound.local_addr().unwrap();
    let task =
        tokio::spawn(listener::serve_with_tls(bound, router, settings, Some(tls.acceptor()), std::future::pending()));

    let mut first = tls_connect(&ca, address).await;
    let answer = get_on(&mut first, "/slow").await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("slow"), "{answer}");

    // The only place of this address is taken: a second connection is closed at once, unanswered.
    let mut second = tokio::net::TcpStream::connect(address).await.unwrap();
    let started = Instant::now();
    let mut refusal = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), second.read_to_end(&mut refusal)).await.unwrap();
    assert!(refusal.is_empty() && started.elapsed() < Duration::from_millis(900), "{refusal:?}");

    // Kept alive, then silent beyond the idle timeout: closed, and its place is free again.
    let answer = get_on(&mut first, "/fast").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(3), first.read(&mut buf)).await.expect("closed when idle");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = tls_connect(&ca, address).await;
    assert!(get_on(&mut third, "/fast").await.starts_with("HTTP/1.1 200"));
    task.abort();
}

#[tokio::test]
async fn the_legacy_wire_works_over_tls_with_polls_longer_than_the_http_timeouts() {
    let ca = TestCa::new("Callbox test CA");
    let dir = TempDir::new().unwrap();
    let server = start_tls(&ca, &dir, |config| {
        config.connections =
            ConnectionConfig { header_timeout_seconds: 1, idle_timeout_seconds: 1, ..ConnectionConfig::default() };
        config.realtime.legacy_poll_seconds = 2;
    })
    .await;
    let app = server.create_app(json!({})).await;
    let alice = crate::legacy::legacy(&server, &app, "alice").await;
    let bob = crate::legacy::legacy(&server, &app, "bob").await;
    let transport = alice.open_transport(&server, &["bob"]).await;
    let mut bob_tt = bob.start(&server).await;

    // A poll with nothing to answer waits its 2 s, beyond both connection timeouts, and answers empty.
    let started = Instant::now();
    let poll = bob.poll(&server, &bob_tt).await;
    assert!(poll.frames.is_empty(), "{:?}", poll.frames);
    assert!(started.elapsed() >= Duration::from_millis(1800), "the poll ended after {:?}", started.elapsed());
    bob_tt = poll.next;

    alice.send(&server, &transport, "tls-1", "over TLS").await;
    let received = bob.receive(&server, &mut bob_tt, 1).await;
    let body: Value = serde_json::from_str(received[0].body["bd"].as_str().unwrap()).unwrap();
    assert_eq!(body["t"], "over TLS");
}
