//! The load generator's engine: scenarios, the HTTP/1.1 connection loop, results as JSON, and the report table.
//!
//! Loopback only: [`target`] refuses any URL whose host is not `127.0.0.1`, `::1` or `localhost`.

pub mod calls;
pub mod legacy;
pub mod realtime;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use callbox_core::signing::{self, SignedParts};
use callbox_core::ticket::{self, NewTicket};
use callbox_core::{Identity, Secret};
use chrono::Utc;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::HeaderValue;
use hyper::{header, Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `POST /v1/instance` with `User <ticket>`: ticket → durable session.
    Exchange,
    /// `GET /v1/user/profile` signed with `Instance <id>:<sig>`.
    Signed,
    /// `POST /v1/users/username/{u}/authentication`: platform-managed login (argon2id).
    Login,
    /// Exchanges (`--connections`) while logins (`--login-connections`) saturate the hashing pool.
    Mixed,
    /// `GET /` of the bare axum hello-world.
    Hello,
    /// The bare SQLite baseline: single-row INSERT commits in a loop, same pragmas as Callbox's store.
    SqliteInsert,
}

impl Scenario {
    /// The name in results.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Exchange => "exchange",
            Scenario::Signed => "signed",
            Scenario::Login => "login",
            Scenario::Mixed => "mixed",
            Scenario::Hello => "hello",
            Scenario::SqliteInsert => "sqlite-insert",
        }
    }
}

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base URL (loopback).
    pub url: String,
    /// Admin token: set for Callbox (the scenario creates its own app); unset for the Node peer.
    pub admin_token: Option<String>,
    /// The app to use when there is no admin token.
    pub app_key: Option<String>,
    /// Its secret (base64).
    pub app_secret: Option<String>,
    /// Keep-alive connections.
    pub connections: usize,
    /// Login connections in `Mixed`.
    pub login_connections: usize,
    /// Measured time.
    pub duration: Duration,
    /// Request budget.
    pub max_requests: u64,
    /// Where `SqliteInsert` puts its file (a temporary directory when unset).
    pub db_dir: Option<PathBuf>,
}

/// A loopback target.
#[derive(Debug, Clone)]
pub struct Target {
    /// Socket address.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// Base URL without trailing slash.
    pub base: String,
}

/// Parses `url` and refuses anything that is not plain HTTP on loopback.
pub fn target(url: &str) -> anyhow::Result<Target> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("not a URL: {url}"))?;
    if parsed.scheme() != "http" {
        bail!("only http:// targets are supported");
    }
    let host = parsed.host_str().ok_or_else(|| anyhow!("the URL has no host"))?;
    let port = parsed.port_or_known_default().ok_or_else(|| anyhow!("the URL has no port"))?;
    let addr = (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}"))?
        .next()
        .ok_or_else(|| anyhow!("{host} does not resolve"))?;
    let loopback = match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => ip.is_loopback(),
    };
    if !loopback || !(host == "localhost" || host.parse::<IpAddr>().is_ok() || host.starts_with('[')) {
        bail!("refusing {url}: the load generator only targets loopback addresses");
    }
    Ok(Target { addr, host: format!("{host}:{port}"), base: url.trim_end_matches('/').to_owned() })
}

/// Makes the `i`-th request of a connection.
type MakeRequest = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// What one drive measured.
#[derive(Debug)]
pub struct Tally {
    /// Latency of answered requests, microseconds.
    pub histogram: Histogram<u64>,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Answers with the expected status.
    pub ok: u64,
    /// Connection or protocol errors.
    pub errors: u64,
    /// Wall time from start to the last answer.
    pub elapsed: Duration,
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 120_000_000, 3).map_err(|e| anyhow!("histogram: {e}"))
}

impl Tally {
    fn empty() -> anyhow::Result<Self> {
        Ok(Self { histogram: new_histogram()?, statuses: BTreeMap::new(), ok: 0, errors: 0, elapsed: Duration::ZERO })
    }

    fn merge(&mut self, other: &Tally) -> anyhow::Result<()> {
        self.histogram.add(&other.histogram).map_err(|e| anyhow!("histogram: {e}"))?;
        for (status, count) in &other.statuses {
            *self.statuses.entry(*status).or_default() += count;
        }
        self.ok += other.ok;
        self.errors += other.errors;
        Ok(())
    }

    /// The result JSON.
    pub fn to_json(&self) -> Value {
        let ms = |q: f64| self.histogram.value_at_quantile(q) as f64 / 1000.0;
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        let statuses: BTreeMap<String, u64> = self.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        json!({
            "requests": self.histogram.len(),
            "ok": self.ok,
            "errors": self.errors,
            "statuses": statuses,
            "elapsedSeconds": round3(seconds),
            "okPerSecond": round3(self.ok as f64 / seconds),
            "latencyMs": {
                "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999),
                "max": self.histogram.max() as f64 / 1000.0,
                "mean": round3(self.histogram.mean() / 1000.0),
            },
        })
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn connect(addr: SocketAddr) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Runs `connections` closed-loop connections until `deadline` or until `budget` requests have been sent.
async fn drive(
    target: &Target,
    make: MakeRequest,
    connections: usize,
    duration: Duration,
    budget: u64,
    ok_status: u16,
) -> anyhow::Result<Tally> {
    let started = Instant::now();
    let deadline = started + duration;
    let sent = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(connections);
    for worker in 0..connections {
        let make = make.clone();
        let sent = sent.clone();
        let addr = target.addr;
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::empty()?;
            let mut sender: Option<http1::SendRequest<Full<Bytes>>> = None;
            let mut i = worker as u64 * 1_000_000;
            while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < budget {
                i += 1;
                let mut connection = match sender.take() {
                    Some(s) => s,
                    None => match connect(addr).await {
                        Ok(s) => s,
                        Err(_) => {
                            tally.errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let request = make(i);
                let begun = Instant::now();
                let answer = async {
                    connection.ready().await?;
                    let response = connection.send_request(request).await?;
                    let status = response.status().as_u16();
                    response.into_body().collect().await?;
                    Ok::<u16, hyper::Error>(status)
                }
                .await;
                match answer {
                    Ok(status) => {
                        let micros = u64::try_from(begun.elapsed().as_micros()).unwrap_or(u64::MAX);
                        tally.histogram.saturating_record(micros.max(1));
                        *tally.statuses.entry(status).or_default() += 1;
                        if status == ok_status {
                            tally.ok += 1;
                        }
                        sender = Some(connection);
                    }
                    Err(_) => tally.errors += 1,
                }
            }
            Ok::<Tally, anyhow::Error>(tally)
        }));
    }
    let mut total = Tally::empty()?;
    for worker in workers {
        total.merge(&worker.await??)?;
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

fn post_json(target: &Target, path: &str, authorization: &str, body: &'static [u8]) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(Bytes::from_static(body)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = path.parse().unwrap_or_default();
    let headers = request.headers_mut();
    if let Ok(host) = target.host.parse() {
        headers.insert(header::HOST, host);
    }
    if let Ok(value) = authorization.parse() {
        headers.insert(header::AUTHORIZATION, value);
    }
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    request
}

/// The app a scenario runs against: on Callbox one it creates with the admin token, on the peer the given one.
#[derive(Debug, Clone)]
pub struct App {
    /// Key.
    pub key: String,
    /// Secret (base64).
    pub secret: String,
}

async fn setup_app(options: &Options, target: &Target, http: &reqwest::Client) -> anyhow::Result<App> {
    if let Some(token) = &options.admin_token {
        let response = http
            .post(format!("{}/admin/v1/apps", target.base))
            .bearer_auth(token)
            .json(&json!({ "name": "loadgen", "platformUserAuth": true, "sessionTtl": 2_592_000 }))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.context("creating the app")?;
        if !status.is_success() {
            bail!("creating the app: {status} {body}");
        }
        let key = body["application"]["applicationKey"].as_str().ok_or_else(|| anyhow!("no key: {body}"))?;
        let secret = body["applicationSecret"].as_str().ok_or_else(|| anyhow!("no secret: {body}"))?;
        Ok(App { key: key.to_owned(), secret: secret.to_owned() })
    } else {
        match (&options.app_key, &options.app_secret) {
            (Some(key), Some(secret)) => Ok(App { key: key.clone(), secret: secret.clone() }),
            _ => bail!("give --admin-token (Callbox) or --app-key and --app-secret (a peer)"),
        }
    }
}

/// `count` distinct user tickets valid for an hour.
pub fn tickets(app: &App, count: usize) -> anyhow::Result<Vec<String>> {
    let secret = Secret::from_base64(&app.secret).map_err(|e| anyhow!("the app secret: {e}"))?;
    let created = Utc::now();
    Ok((0..count)
        .map(|n| {
            ticket::mint(
                &NewTicket {
                    application_key: app.key.clone(),
                    identity: Identity::username(format!("loaduser{n}")),
                    created,
                    expires_in: Some(3600),
                    nonce: None,
                },
                &secret,
            )
        })
        .collect())
}

const INSTANCE_BODY: &[u8] = br#"{"version":{"os":"loadgen"},"services":{"im":true,"voip":true}}"#;
const PASSWORD: &str = "loadgen password 0123";

fn exchange_requests(target: &Target, app: &App) -> anyhow::Result<MakeRequest> {
    let headers: Vec<String> = tickets(app, 997)?.into_iter().map(|t| format!("User {t}")).collect();
    let target = target.clone();
    Ok(Arc::new(move |i| post_json(&target, "/v1/instance", &headers[(i as usize) % headers.len()], INSTANCE_BODY)))
}

/// A session's id and secret.
#[derive(Debug, Clone)]
struct Session {
    id: String,
    secret: Secret,
}

async fn sessions(target: &Target, app: &App, http: &reqwest::Client, count: usize) -> anyhow::Result<Vec<Session>> {
    let mut out = Vec::with_capacity(count);
    for ticket in tickets(app, count)? {
        let response = http
            .post(format!("{}/v1/instance", target.base))
            .header("authorization", format!("User {ticket}"))
            .header("content-type", "application/json")
            .body(INSTANCE_BODY)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("exchange during set-up: {status} {body}");
        }
        let id = body["id"].as_str().ok_or_else(|| anyhow!("no id: {body}"))?.to_owned();
        let secret = Secret::from_base64(body["secret"].as_str().unwrap_or_default())
            .map_err(|e| anyhow!("session secret: {e}"))?;
        out.push(Session { id, secret });
    }
    Ok(out)
}

/// Signed profile reads. The signature covers `X-Timestamp`, which has one-second resolution, so each session's
/// headers are signed once per second and reused within it (as a client library may): the load generator shares
/// the cores with the server under test, and its own HMAC work would otherwise be taken from the server. The
/// server still verifies every request in full.
fn signed_requests(target: &Target, sessions: Vec<Session>) -> MakeRequest {
    let target = target.clone();
    let signed: Vec<std::sync::Mutex<(i64, HeaderValue, HeaderValue)>> = sessions
        .iter()
        .map(|_| std::sync::Mutex::new((i64::MIN, HeaderValue::from_static(""), HeaderValue::from_static(""))))
        .collect();
    Arc::new(move |i| {
        let index = (i as usize) % sessions.len();
        let session = &sessions[index];
        let now = Utc::now();
        let (authorization, x_timestamp) = {
            let mut cached = signed[index].lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if cached.0 != now.timestamp() {
                let timestamp = callbox_core::time::format_iso_seconds(now);
                let path = "/v1/user/profile";
                let parts = SignedParts { method: "GET", body: b"", content_type: "", timestamp: &timestamp, path };
                let signature = signing::sign(&session.secret, &parts);
                let authorization = HeaderValue::from_str(&format!("Instance {}:{signature}", session.id));
                let x_timestamp = HeaderValue::from_str(&timestamp);
                if let (Ok(authorization), Ok(x_timestamp)) = (authorization, x_timestamp) {
                    *cached = (now.timestamp(), authorization, x_timestamp);
                }
            }
            (cached.1.clone(), cached.2.clone())
        };
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = hyper::Uri::from_static("/v1/user/profile");
        let headers = request.headers_mut();
        if let Ok(host) = target.host.parse() {
            headers.insert(header::HOST, host);
        }
        headers.insert(header::AUTHORIZATION, authorization);
        headers.insert("x-timestamp", x_timestamp);
        request
    })
}

async fn login_requests(
    target: &Target,
    app: &App,
    options: &Options,
    http: &reqwest::Client,
    users: usize,
) -> anyhow::Result<MakeRequest> {
    let token = options.admin_token.as_deref().ok_or_else(|| anyhow!("logins need --admin-token"))?;
    let mut names = Vec::with_capacity(users);
    for n in 0..users {
        let user = format!("loginuser{n}");
        let response = http
            .post(format!("{}/admin/v1/apps/{}/users", target.base, app.key))
            .bearer_auth(token)
            .json(&json!({ "userId": user, "password": PASSWORD }))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("adding a user: {} {}", response.status(), response.text().await.unwrap_or_default());
        }
        names.push(format!("/v1/users/username/{user}/authentication"));
    }
    let authorization = format!("Application {}", app.key);
    let body: &'static [u8] = Box::leak(format!(r#"{{"password":"{PASSWORD}"}}"#).into_bytes().into_boxed_slice());
    let target = target.clone();
    Ok(Arc::new(move |i| post_json(&target, &names[(i as usize) % names.len()], &authorization, body)))
}

fn hello_requests(target: &Target) -> MakeRequest {
    let target = target.clone();
    Arc::new(move |_| {
        let mut request = Request::new(Full::new(Bytes::new()));
        if let Ok(host) = target.host.parse() {
            request.headers_mut().insert(header::HOST, host);
        }
        request
    })
}

/// Runs one scenario and returns its result JSON.
pub async fn run_scenario(scenario: Scenario, options: &Options) -> anyhow::Result<Value> {
    let mut result = json!({
        "scenario": scenario.name(),
        "connections": options.connections,
        "durationSeconds": options.duration.as_secs_f64(),
        "maxRequests": options.max_requests,
        "at": callbox_core::time::format_iso_seconds(Utc::now()),
    });
    if scenario == Scenario::SqliteInsert {
        let measured = sqlite_insert(options).await?;
        merge(&mut result, measured.to_json());
        return Ok(result);
    }
    let target = target(&options.url)?;
    result["target"] = json!(target.base);
    result["peer"] = json!(options.admin_token.is_none());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let tally = match scenario {
        Scenario::Hello => {
            drive(&target, hello_requests(&target), options.connections, options.duration, options.max_requests, 200)
                .await?
        }
        Scenario::Exchange => {
            let app = setup_app(options, &target, &http).await?;
            let make = exchange_requests(&target, &app)?;
            drive(&target, make, options.connections, options.duration, options.max_requests, 200).await?
        }
        Scenario::Signed => {
            let app = setup_app(options, &target, &http).await?;
            let make = signed_requests(&target, sessions(&target, &app, &http, 64).await?);
            drive(&target, make, options.connections, options.duration, options.max_requests, 200).await?
        }
        Scenario::Login => {
            let app = setup_app(options, &target, &http).await?;
            let make = login_requests(&target, &app, options, &http, 16).await?;
            drive(&target, make, options.connections, options.duration, options.max_requests, 200).await?
        }
        Scenario::Mixed => {
            let app = setup_app(options, &target, &http).await?;
            let logins = login_requests(&target, &app, options, &http, 16).await?;
            let exchanges = exchange_requests(&target, &app)?;
            let login_drive =
                drive(&target, logins, options.login_connections, options.duration, options.max_requests, 200);
            // Exchanges start once the hashing pool is busy and stop before the logins do. They run on their own
            // OS thread and runtime: on the shared runtime their responses waited in the load generator's own
            // task queue behind the 48 login connections, and that wait was counted as server latency.
            let measured = options.duration.saturating_sub(Duration::from_secs(1)).max(Duration::from_millis(100));
            let (exchange_target, connections, budget) = (target.clone(), options.connections, options.max_requests);
            let exchange_thread = std::thread::Builder::new().name("exchanges".into()).spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    drive(&exchange_target, exchanges, connections, measured, budget, 200).await
                })
            })?;
            let logins = login_drive.await?;
            let exchanges = tokio::task::spawn_blocking(move || exchange_thread.join())
                .await?
                .map_err(|_| anyhow!("the exchange thread panicked"))??;
            result["loginConnections"] = json!(options.login_connections);
            result["login"] = logins.to_json();
            result["exchange"] = exchanges.to_json();
            return Ok(result);
        }
        Scenario::SqliteInsert => unreachable_sqlite()?,
    };
    merge(&mut result, tally.to_json());
    Ok(result)
}

fn unreachable_sqlite() -> anyhow::Result<Tally> {
    bail!("sqlite-insert is handled before any HTTP set-up")
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// The bare SQLite baseline: one connection, `journal_mode=WAL`, `synchronous=FULL` (as Callbox's store), a
/// sessions-shaped table, one autocommitted INSERT after another.
async fn sqlite_insert(options: &Options) -> anyhow::Result<Tally> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    use sqlx::{ConnectOptions, Connection};
    let temporary;
    let dir = match &options.db_dir {
        Some(dir) => dir.clone(),
        None => {
            temporary = std::env::temp_dir().join(format!("callbox-loadgen-{}", uuid::Uuid::new_v4()));
            temporary
        }
    };
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("sqlite-insert.db");
    let _ = std::fs::remove_file(&path);
    let mut connection = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .connect()
        .await?;
    sqlx::query(
        "CREATE TABLE sessions (id TEXT NOT NULL PRIMARY KEY, app_key TEXT NOT NULL, user_id TEXT NOT NULL, \
         capabilities TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked_at INTEGER, \
         secret_generation INTEGER NOT NULL DEFAULT 0)",
    )
    .execute(&mut connection)
    .await?;
    let mut tally = Tally::empty()?;
    let started = Instant::now();
    let deadline = started + options.duration;
    let mut n = 0u64;
    while Instant::now() < deadline && n < options.max_requests {
        n += 1;
        let begun = Instant::now();
        let now = Utc::now().timestamp_millis();
        sqlx::query("INSERT INTO sessions VALUES ($1, $2, $3, $4, $5, $6, NULL, 0)")
            .bind(uuid::Uuid::new_v4().to_string())
            .bind("loadgen-app")
            .bind(format!("loaduser{}", n % 997))
            .bind("messaging,calling")
            .bind(now)
            .bind(now + 86_400_000)
            .execute(&mut connection)
            .await?;
        let micros = u64::try_from(begun.elapsed().as_micros()).unwrap_or(u64::MAX);
        tally.histogram.saturating_record(micros.max(1));
        tally.ok += 1;
    }
    tally.elapsed = started.elapsed();
    connection.close().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(tally)
}

/// Resident set size (current and peak) of `pid`, from `/proc/PID/status`.
pub fn rss(pid: u32, label: &str, sessions: u64) -> anyhow::Result<Value> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("process {pid}"))?;
    let field = |name: &str| -> Option<u64> {
        status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
    };
    Ok(json!({
        "scenario": format!("rss-{label}"),
        "label": label,
        "liveSessions": sessions,
        "rssKiB": field("VmRSS:"),
        "peakRssKiB": field("VmHWM:"),
    }))
}

/// Live (unrevoked, unexpired) sessions in a Callbox SQLite database, opened read-only.
pub async fn live_sessions(db: &Path) -> anyhow::Result<i64> {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    let mut connection = SqliteConnectOptions::new().filename(db).read_only(true).connect().await?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1")
        .bind(Utc::now().timestamp_millis())
        .fetch_one(&mut connection)
        .await?;
    connection.close().await?;
    Ok(count)
}

fn load(dir: &Path, name: &str) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

fn rate(v: &Value) -> f64 {
    v["okPerSecond"].as_f64().unwrap_or(0.0)
}

fn p(v: &Value, q: &str) -> f64 {
    v["latencyMs"][q].as_f64().unwrap_or(f64::NAN)
}

/// The Markdown table of a run directory (files named after the scenarios, see bench/run.sh).
pub fn report(dir: &Path) -> anyhow::Result<String> {
    let get = |name: &str| load(dir, name).unwrap_or(Value::Null);
    let hello = get("hello");
    let exchange = get("exchange");
    let signed = get("signed");
    let login = get("login");
    let mixed = get("mixed");
    let peer_exchange = get("peer-exchange");
    let peer_signed = get("peer-signed");
    let sqlite = get("sqlite-insert");
    let mut out = String::new();
    let _ = writeln!(out, "| path | req/s | p50 ms | p99 ms | compared with | its req/s | ratio | target | met |");
    let _ = writeln!(out, "|---|---:|---:|---:|---|---:|---:|---|---|");
    let mut row = |path: &str, v: &Value, base_name: &str, base: &Value, target: &str, needed: f64| {
        let ratio = rate(v) / rate(base).max(1e-9);
        let met = if base.is_null() || v.is_null() || needed == 0.0 {
            "n/a"
        } else if ratio >= needed {
            "yes"
        } else {
            "**no**"
        };
        let (base_rate, ratio) = if base.is_null() {
            ("—".to_owned(), "—".to_owned())
        } else {
            (format!("{:.0}", rate(base)), format!("{ratio:.2}"))
        };
        let _ = writeln!(
            out,
            "| {path} | {:.0} | {:.2} | {:.2} | {base_name} | {base_rate} | {ratio} | {target} | {met} |",
            rate(v),
            p(v, "p50"),
            p(v, "p99"),
        );
    };
    row("ticket → session exchange", &exchange, "bare SQLite insert loop", &sqlite, "≥ 0.60 (or ≥ 30k/s)", 0.6);
    row("ticket → session exchange", &exchange, "Node peer exchange", &peer_exchange, "≥ 3", 3.0);
    row("ticket → session exchange", &exchange, "axum hello-world", &hello, "(context)", 0.0);
    row("Instance-signed call", &signed, "axum hello-world", &hello, "≥ 0.60", 0.6);
    row("Instance-signed call", &signed, "Node peer signed call", &peer_signed, "≥ 3", 3.0);
    row("platform login (argon2id)", &login, "(no peer: hashing-bound)", &Value::Null, "(context)", 0.0);
    let _ = writeln!(out);
    let _ = writeln!(out, "| baseline | req/s | p50 ms | p99 ms |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (name, v) in [
        ("axum hello-world", &hello),
        ("Node peer exchange", &peer_exchange),
        ("Node peer signed call", &peer_signed),
        ("bare SQLite insert loop", &sqlite),
    ] {
        let _ = writeln!(out, "| {name} | {:.0} | {:.3} | {:.3} |", rate(v), p(v, "p50"), p(v, "p99"));
    }
    if !mixed.is_null() {
        let ex = &mixed["exchange"];
        let lg = &mixed["login"];
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Mixed: {} exchange connections beside {} login connections: exchanges {:.0}/s, p50 {:.2} ms, \
             p99 {:.2} ms (target p99 < 5 ms: {}); logins {:.0}/s accepted, statuses {}.",
            mixed["connections"],
            mixed["loginConnections"],
            rate(ex),
            p(ex, "p50"),
            p(ex, "p99"),
            if p(ex, "p99") < 5.0 { "met" } else { "**missed**" },
            rate(lg),
            lg["statuses"]
        );
    }
    for label in ["idle", "100k"] {
        if let Some(v) = load(dir, &format!("rss-{label}")) {
            let _ = writeln!(
                out,
                "RSS {label}: {} KiB (peak {} KiB) with {} live sessions in the database.",
                v["rssKiB"], v["peakRssKiB"], v["liveSessions"]
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        assert!(target("http://127.0.0.1:8080").is_ok());
        assert!(target("http://localhost:8080/").is_ok());
        assert!(target("http://[::1]:8080").is_ok());
        assert!(target("http://10.0.0.1:8080").is_err());
        assert!(target("https://127.0.0.1:8080").is_err());
        assert!(target("http://example.com:80").is_err());
    }

    #[test]
    fn tickets_verify_against_their_app() {
        let app = App { key: "k".into(), secret: "JViE5vDor0Sw3WllZka15Q==".into() };
        let minted = tickets(&app, 3).unwrap_or_default();
        assert_eq!(minted.len(), 3);
        assert_ne!(minted[0], minted[1]);
    }
}
