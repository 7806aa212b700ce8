//! Realtime scenarios (docs/realtime.md): idle authenticated connections held (server memory per connection), and
//! 1:1 messages with durable acknowledgement and confirmation (delivered messages a second, delivery latency).

use crate::{rss, target, tickets, App};
use anyhow::{anyhow, bail, Context};
use callbox_core::signing::{self, SignedParts};
use callbox_core::Secret;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) secret: Secret,
}

/// `POST /v1/instance` services asking for `messaging` only.
const MESSAGING: &str = r#"{"im":true}"#;

pub(crate) async fn create_app(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<App> {
    let body: Value = http
        .post(format!("{base}/admin/v1/apps"))
        .bearer_auth(token)
        .json(&json!({ "name": "loadgen realtime", "platformUserAuth": false, "sessionTtl": 86_400 }))
        .send()
        .await?
        .json()
        .await
        .context("creating the app")?;
    let key = body["application"]["applicationKey"].as_str().ok_or_else(|| anyhow!("no key: {body}"))?;
    let secret = body["applicationSecret"].as_str().ok_or_else(|| anyhow!("no secret: {body}"))?;
    Ok(App { key: key.to_owned(), secret: secret.to_owned() })
}

/// `count` sessions of users `loaduser0..`, each asking for `services` (a JSON object of PROTOCOL §6 service
/// names, e.g. `{"im":true}` for `messaging`).
pub(crate) async fn sessions(
    http: &reqwest::Client,
    base: &str,
    app: &App,
    count: usize,
    services: &str,
) -> anyhow::Result<Vec<Session>> {
    let services: Value = serde_json::from_str(services)?;
    let mut out = Vec::with_capacity(count);
    for ticket in tickets(app, count)? {
        let body: Value = http
            .post(format!("{base}/v1/instance"))
            .header("authorization", format!("User {ticket}"))
            .json(&json!({ "services": services }))
            .send()
            .await?
            .json()
            .await?;
        let id = body["id"].as_str().ok_or_else(|| anyhow!("no session: {body}"))?.to_owned();
        let secret = Secret::from_base64(body["secret"].as_str().unwrap_or("")).map_err(|e| anyhow!("{e}"))?;
        out.push(Session { id, secret });
    }
    Ok(out)
}

pub(crate) async fn next_text(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(text.as_str())?),
            Some(Ok(Message::Close(close))) => bail!("closed: {close:?}"),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.into()),
            None => bail!("the connection ended"),
        }
    }
}

pub(crate) async fn connect(base: &str, session: &Session) -> anyhow::Result<Ws> {
    connect_with(base, session, false).await
}

/// [`connect`], with Nagle's algorithm off on the client socket when `no_delay` (as browsers do for WebSockets).
/// The messaging scenarios keep the default (on) so that their figures stay comparable with the runs recorded in
/// docs/benchmarks.md; the calls scenario turns it off, since a client that sends two frames in a row (a candidate,
/// then the hang-up) would otherwise wait for the server's delayed ACK.
pub(crate) async fn connect_with(base: &str, session: &Session, no_delay: bool) -> anyhow::Result<Ws> {
    let url = format!("{}/v1/realtime", base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, no_delay).await?;
    let challenge = next_text(&mut ws).await?;
    let nonce = challenge["nonce"].as_str().ok_or_else(|| anyhow!("no challenge: {challenge}"))?;
    let timestamp = callbox_core::time::format_iso_seconds(chrono::Utc::now());
    let path = format!("/v1/realtime/{nonce}");
    let parts = SignedParts { method: "GET", body: b"", content_type: "", timestamp: &timestamp, path: &path };
    let auth = json!({ "type": "auth", "sessionId": session.id, "timestamp": timestamp,
                       "signature": signing::sign(&session.secret, &parts) });
    ws.send(Message::Text(auth.to_string().into())).await?;
    let ready = next_text(&mut ws).await?;
    if ready["type"] != "ready" {
        bail!("not ready: {ready}");
    }
    Ok(ws)
}

/// Answers pings until the connection ends or `hold` passes.
async fn keep_alive(mut ws: Ws, hold: Duration) {
    let until = tokio::time::Instant::now() + hold;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until, ws.next()).await {
        if let Message::Text(text) = message {
            if text.as_str().contains("\"ping\"") && ws.send(Message::Text(r#"{"type":"pong"}"#.into())).await.is_err()
            {
                return;
            }
        }
    }
}

/// Opens `connections` authenticated idle connections (one session each), samples the server's RSS (`pid`)
/// before and after, holds them `hold` seconds.
pub async fn idle(base: &str, token: &str, connections: usize, pid: Option<u32>, hold: f64) -> anyhow::Result<Value> {
    let target = target(base)?;
    let http = reqwest::Client::new();
    let app = create_app(&http, &target.base, token).await?;
    let sessions = sessions(&http, &target.base, &app, connections, MESSAGING).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = pid.map(|pid| rss(pid, "before", 0)).transpose()?;
    let started = Instant::now();
    let opened = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let sessions = Arc::new(sessions);
    let hold = Duration::from_secs_f64(hold);
    // 32 at a time: the server's accept queue and this machine's two cores, not the test, should set the pace.
    let chunk = sessions.len().div_ceil(32).max(1);
    for part in 0..32 {
        let (sessions, opened, base) = (sessions.clone(), opened.clone(), target.base.clone());
        tasks.push(tokio::spawn(async move {
            let mut held = Vec::new();
            for session in sessions.iter().skip(part * chunk).take(chunk) {
                match connect(&base, session).await {
                    Ok(ws) => {
                        opened.fetch_add(1, Ordering::Relaxed);
                        held.push(tokio::spawn(keep_alive(ws, hold)));
                    }
                    Err(error) => eprintln!("connect failed: {error}"),
                }
            }
            held
        }));
    }
    let mut held = Vec::new();
    for task in tasks {
        held.extend(task.await?);
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = pid.map(|pid| rss(pid, "after", 0)).transpose()?;
    let open = opened.load(Ordering::Relaxed);
    let per_connection = match (&before, &after) {
        (Some(b), Some(a)) => {
            let delta = a["rssKiB"].as_f64().unwrap_or(0.0) - b["rssKiB"].as_f64().unwrap_or(0.0);
            Some(delta * 1024.0 / open.max(1) as f64)
        }
        _ => None,
    };
    for task in held {
        task.abort();
    }
    Ok(json!({
        "scenario": "realtime-idle",
        "connections": open,
        "connectSeconds": connect_seconds,
        "serverRssKiBBefore": before.map(|b| b["rssKiB"].clone()),
        "serverRssKiBAfter": after.map(|a| a["rssKiB"].clone()),
        "bytesPerConnection": per_connection,
    }))
}

/// `pairs` sender → receiver pairs; each sender keeps `window` messages unacknowledged; each receiver confirms
/// what it gets. Delivered a second and the send → receive latency (one process, one clock).
pub async fn messages(base: &str, token: &str, pairs: usize, window: usize, duration: f64) -> anyhow::Result<Value> {
    let target = target(base)?;
    let http = reqwest::Client::new();
    let app = create_app(&http, &target.base, token).await?;
    let sessions = sessions(&http, &target.base, &app, pairs * 2, MESSAGING).await?;
    let epoch = Instant::now();
    let run = Duration::from_secs_f64(duration);
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for pair in 0..pairs {
        let receiver = connect(&target.base, &sessions[pair * 2 + 1]).await?;
        let sender = connect(&target.base, &sessions[pair * 2]).await?;
        let to = format!("loaduser{}", pair * 2 + 1);
        receivers.push(tokio::spawn(receive(receiver, epoch, run + Duration::from_secs(2))));
        senders.push(tokio::spawn(send(sender, to, window, epoch, run, accepted.clone(), refused.clone())));
    }
    for sender in senders {
        sender.await??;
    }
    let (delivered, latency) = deliveries(receivers).await?;
    Ok(json!({
        "scenario": "realtime-messages",
        "pairs": pairs,
        "window": window,
        "seconds": duration,
        "accepted": accepted.load(Ordering::Relaxed),
        "refused": refused.load(Ordering::Relaxed),
        "delivered": delivered,
        "deliveredPerSecond": delivered as f64 / duration,
        "deliveryLatencyMs": latency,
    }))
}

/// A receiver task's answer: messages it read and their send → receive latencies (µs).
pub(crate) type Received = tokio::task::JoinHandle<anyhow::Result<(u64, Histogram<u64>)>>;

/// Waits for every receiver: messages delivered in all, and the latency quantiles in milliseconds
/// (`{"p50","p99","max"}`), for the messages scenarios of both transports.
pub(crate) async fn deliveries(receivers: Vec<Received>) -> anyhow::Result<(u64, Value)> {
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut delivered = 0u64;
    for receiver in receivers {
        let (count, latencies) = receiver.await??;
        delivered += count;
        histogram.add(latencies)?;
    }
    let quantile = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let latency = json!({ "p50": quantile(0.5), "p99": quantile(0.99), "max": histogram.max() as f64 / 1000.0 });
    Ok((delivered, latency))
}

async fn send(
    mut ws: Ws,
    to: String,
    window: usize,
    epoch: Instant,
    run: Duration,
    accepted: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut in_flight = 0;
    loop {
        while in_flight < window && epoch.elapsed() < run {
            let at = epoch.elapsed().as_micros().to_string();
            let frame = json!({ "type": "message.send", "recipients": [to], "text": at });
            ws.send(Message::Text(frame.to_string().into())).await?;
            in_flight += 1;
        }
        if in_flight == 0 {
            return Ok(());
        }
        let frame = next_text(&mut ws).await?;
        match frame["type"].as_str() {
            Some("message.accepted") => {
                accepted.fetch_add(1, Ordering::Relaxed);
                in_flight -= 1;
            }
            Some("error") => {
                refused.fetch_add(1, Ordering::Relaxed);
                in_flight -= 1;
            }
            Some("ping") => ws.send(Message::Text(r#"{"type":"pong"}"#.into())).await?,
            _ => {}
        }
    }
}

async fn receive(mut ws: Ws, epoch: Instant, until: Duration) -> anyhow::Result<(u64, Histogram<u64>)> {
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut count = 0;
    let deadline = tokio::time::Instant::from_std(epoch + until);
    while let Ok(Ok(frame)) = tokio::time::timeout_at(deadline, next_text(&mut ws)).await {
        match frame["type"].as_str() {
            Some("message") => {
                let sent: u128 = frame["text"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
                let latency = epoch.elapsed().as_micros().saturating_sub(sent);
                let _ = histogram.record(u64::try_from(latency).unwrap_or(u64::MAX));
                count += 1;
                let confirm =
                    json!({ "type": "message.received", "messageId": frame["messageId"], "seq": frame["seq"] });
                if ws.send(Message::Text(confirm.to_string().into())).await.is_err() {
                    break;
                }
            }
            Some("ping") if ws.send(Message::Text(r#"{"type":"pong"}"#.into())).await.is_err() => break,
            _ => {}
        }
    }
    Ok((count, histogram))
}
