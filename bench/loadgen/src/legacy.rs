//! Legacy-transport scenarios (docs/legacy-sdk.md), the way `sinch-rtc` 1.4.12 talks: idle long-poll subscribers
//! held (server memory per subscriber), and 1:1 messages published as MXP frames, read by long-polls and
//! confirmed with receipt frames (delivered messages a second, delivery latency) — beside the WebSocket figures of
//! [`crate::realtime`], with the same app, users and limits.

use crate::realtime::{create_app, deliveries, sessions, Session};
use crate::{rss, target};
use anyhow::{anyhow, bail, Context};
use callbox_core::legacy as mxp;
use callbox_core::signing::{self, SignedParts};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MESSAGING: &str = r#"{"im":true}"#;

/// One legacy client: its session and configuration.
struct Client {
    user: String,
    session: Session,
    publish_key: String,
    subscribe_key: String,
    channel: String,
}

fn signed(
    http: &reqwest::Client,
    method: reqwest::Method,
    base: &str,
    path: &str,
    body: &[u8],
    session: &Session,
) -> reqwest::RequestBuilder {
    let timestamp = callbox_core::time::format_iso_seconds(chrono::Utc::now());
    let content_type = if body.is_empty() { "" } else { "application/json" };
    let parts = SignedParts { method: method.as_str(), body, content_type, timestamp: &timestamp, path };
    let signature = signing::sign(&session.secret, &parts);
    let mut request = http
        .request(method, format!("{base}{path}"))
        .header("authorization", format!("Instance {}:{signature}", session.id))
        .header("x-timestamp", timestamp);
    if !body.is_empty() {
        request = request.header("content-type", content_type).body(body.to_vec());
    }
    request
}

async fn client(http: &reqwest::Client, base: &str, user: String, session: Session) -> anyhow::Result<Client> {
    let config: Value = signed(http, reqwest::Method::GET, base, "/v1/configuration/user", b"", &session)
        .send()
        .await?
        .json()
        .await
        .context("the configuration")?;
    let text = |value: &Value| value.as_str().map(str::to_owned).ok_or_else(|| anyhow!("configuration: {config}"));
    Ok(Client {
        user,
        publish_key: text(&config["rtcConfiguration"]["broadcastNetwork"]["publishKey"])?,
        subscribe_key: text(&config["rtcConfiguration"]["broadcastNetwork"]["subscribeKey"])?,
        channel: text(&config["rtcProfile"]["transportChannel"])?,
        session,
    })
}

async fn clients(http: &reqwest::Client, base: &str, token: &str, count: usize) -> anyhow::Result<Vec<Client>> {
    let app = create_app(http, base, token).await?;
    let sessions = sessions(http, base, &app, count, MESSAGING).await?;
    let mut out = Vec::with_capacity(count);
    for (n, session) in sessions.into_iter().enumerate() {
        out.push(client(http, base, format!("loaduser{n}"), session).await?);
    }
    Ok(out)
}

fn url(base: &str, segments: &[&str]) -> anyhow::Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(base)?;
    url.path_segments_mut().map_err(|()| anyhow!("a base URL"))?.extend(segments);
    Ok(url)
}

/// One poll: the frames and the next timetoken.
async fn poll(
    http: &reqwest::Client,
    base: &str,
    client: &Client,
    timetoken: &str,
) -> anyhow::Result<(Vec<String>, String)> {
    let answer: Value = http
        .get(url(base, &["subscribe", &client.subscribe_key, &client.channel, "0", timetoken])?)
        .send()
        .await?
        .json()
        .await?;
    let next = answer[1].as_str().ok_or_else(|| anyhow!("poll: {answer}"))?.to_owned();
    let frames = answer[0].as_array().map(|f| f.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect());
    Ok((frames.unwrap_or_default(), next))
}

async fn publish(
    http: &reqwest::Client,
    base: &str,
    client: &Client,
    channel: &str,
    frame: &str,
) -> anyhow::Result<()> {
    let message = Value::String(frame.to_owned()).to_string();
    let response = http
        .get(url(base, &["publish", &client.publish_key, &client.subscribe_key, "0", channel, "0", &message])?)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("publish: {} {}", response.status(), response.text().await.unwrap_or_default());
    }
    Ok(())
}

/// Opens `subscribers` sessions, each holding one live long-poll; samples the server's RSS (`pid`) before and
/// after. Each poll is one HTTP request on its own connection, as each SDK client's is.
pub async fn idle(base: &str, token: &str, subscribers: usize, pid: Option<u32>) -> anyhow::Result<Value> {
    let target = target(base)?;
    let http = reqwest::Client::new();
    let clients = clients(&http, &target.base, token, subscribers).await?;
    // The start poll (answered at once) of each, so that what is measured is only the waiting polls.
    let mut live = Vec::with_capacity(clients.len());
    for client in &clients {
        live.push(poll(&http, &target.base, client, "0").await?.1);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = pid.map(|pid| rss(pid, "before", 0)).transpose()?;
    let started = Instant::now();
    let mut held = Vec::with_capacity(clients.len());
    for (client, timetoken) in clients.iter().zip(&live) {
        // A client per poll: one connection each, as SDK clients in different browsers have.
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
        let url = url(&target.base, &["subscribe", &client.subscribe_key, &client.channel, "0", timetoken])?;
        held.push(tokio::spawn(async move { http.get(url).send().await.map(|r| r.status().as_u16()) }));
    }
    // Until the server holds them all (or 30 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let connect_seconds = started.elapsed().as_secs_f64();
    let after = pid.map(|pid| rss(pid, "after", 0)).transpose()?;
    let mut answered_early = 0u64;
    for task in &held {
        if task.is_finished() {
            answered_early += 1;
        }
    }
    for task in held {
        task.abort();
    }
    let open = subscribers as u64 - answered_early;
    let per_subscriber = match (&before, &after) {
        (Some(b), Some(a)) => {
            let delta = a["rssKiB"].as_f64().unwrap_or(0.0) - b["rssKiB"].as_f64().unwrap_or(0.0);
            Some(delta * 1024.0 / open.max(1) as f64)
        }
        _ => None,
    };
    Ok(json!({
        "scenario": "legacy-idle",
        "subscribers": subscribers,
        "held": open,
        "answeredEarly": answered_early,
        "secondsToHold": connect_seconds,
        "serverRssKiBBefore": before.map(|b| b["rssKiB"].clone()),
        "serverRssKiBAfter": after.map(|a| a["rssKiB"].clone()),
        "bytesPerSubscriber": per_subscriber,
    }))
}

/// `pairs` sender → receiver pairs through the legacy transport: each sender publishes one single-frame message
/// at a time (the next once `Sent` came back, i.e. once it is durable); each receiver long-polls and publishes the
/// receipt of each message it reads. Delivered a second and the publish → poll-answer latency.
pub async fn messages(base: &str, token: &str, pairs: usize, duration: f64) -> anyhow::Result<Value> {
    let target = target(base)?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(pairs * 4).build()?;
    let clients = clients(&http, &target.base, token, pairs * 2).await?;
    let clients: Vec<Arc<Client>> = clients.into_iter().map(Arc::new).collect();
    let epoch = Instant::now();
    let run = Duration::from_secs_f64(duration);
    let accepted = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for pair in 0..pairs {
        let (sender, receiver) = (clients[pair * 2].clone(), clients[pair * 2 + 1].clone());
        let body = json!([{ "identity": receiver.user }]).to_string();
        let transport: Value =
            signed(&http, reqwest::Method::POST, &target.base, "/v1/transport", body.as_bytes(), &sender.session)
                .send()
                .await?
                .json()
                .await?;
        let transport = Arc::new(transport);
        let start = poll(&http, &target.base, &receiver, "0").await?.1;
        let (http_r, base_r, t_r, to) = (http.clone(), target.base.clone(), transport.clone(), sender.channel.clone());
        receivers
            .push(tokio::spawn(async move { receive(http_r, base_r, receiver, to, t_r, start, epoch, run).await }));
        let (http_s, base_s, accepted) = (http.clone(), target.base.clone(), accepted.clone());
        senders.push(tokio::spawn(async move { send(http_s, base_s, sender, transport, epoch, run, accepted).await }));
    }
    for sender in senders {
        sender.await??;
    }
    let (delivered, latency) = deliveries(receivers).await?;
    Ok(json!({
        "scenario": "legacy-messages",
        "pairs": pairs,
        "seconds": duration,
        "accepted": accepted.load(Ordering::Relaxed),
        "delivered": delivered,
        "deliveredPerSecond": delivered as f64 / duration,
        "deliveryLatencyMs": latency,
    }))
}

/// The frames of `body`, as the SDK makes them (a fixed IV: this is load, not secrecy).
fn frames_of(transport: &Value, message_id: &str, body: &Value) -> anyhow::Result<Vec<String>> {
    let key = mxp::parse_key(transport["key"].as_str().unwrap_or("")).map_err(|e| anyhow!("transport key: {e}"))?;
    let encrypted = mxp::encrypt(&key, &[9; 16], body.to_string().as_bytes());
    Ok(mxp::split_frames(message_id, transport["transportId"].as_str(), &encrypted, 1))
}

async fn send(
    http: reqwest::Client,
    base: String,
    sender: Arc<Client>,
    transport: Arc<Value>,
    epoch: Instant,
    run: Duration,
    accepted: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let channel = transport["participants"][0]["channel"].as_str().ok_or_else(|| anyhow!("transport: {transport}"))?;
    let mut n = 0u64;
    while epoch.elapsed() < run {
        let at = epoch.elapsed().as_micros().to_string();
        let body = json!({ "md": 1, "bt": "msg", "bv": 10, "bd": json!({ "t": at }).to_string(),
                           "fu": sender.user, "fi": "", "fd": "", "fs": sender.channel, "fc": "" });
        let id = format!("{}-{n}", sender.user);
        for frame in frames_of(&transport, &id, &body)? {
            publish(&http, &base, &sender, channel, &frame).await?;
        }
        accepted.fetch_add(1, Ordering::Relaxed);
        n += 1;
    }
    Ok(())
}

/// Long-polls and confirms each message it reads. As the SDK, it polls again at once and sends the receipts
/// meanwhile (each on its own request), rather than waiting for them before the next poll.
#[allow(clippy::too_many_arguments)]
async fn receive(
    http: reqwest::Client,
    base: String,
    receiver: Arc<Client>,
    sender_channel: String,
    transport: Arc<Value>,
    mut timetoken: String,
    epoch: Instant,
    run: Duration,
) -> anyhow::Result<(u64, Histogram<u64>)> {
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut count = 0;
    let key = mxp::parse_key(transport["key"].as_str().unwrap_or("")).map_err(|e| anyhow!("transport key: {e}"))?;
    let deadline = tokio::time::Instant::from_std(epoch + run + Duration::from_secs(2));
    let mut receipts = tokio::task::JoinSet::new();
    let sender_channel = Arc::new(sender_channel);
    while let Ok(polled) = tokio::time::timeout_at(deadline, poll(&http, &base, &receiver, &timetoken)).await {
        let (frames, next) = polled?;
        timetoken = next;
        for frame in frames {
            let part = mxp::parse_frame(&frame).map_err(|e| anyhow!("frame: {e}"))?;
            let body = mxp::decrypt_json(&key, part.chunk).map_err(|e| anyhow!("frame: {e}"))?;
            let Some(bd) = body.get("bd").and_then(Value::as_str) else { continue };
            let sent: u128 = serde_json::from_str::<Value>(bd)?["t"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
            let latency = epoch.elapsed().as_micros().saturating_sub(sent);
            let _ = histogram.record(u64::try_from(latency).unwrap_or(u64::MAX));
            count += 1;
            let receipt = json!({ "md": 2, "bt": "msg", "bv": 10, "fu": receiver.user, "fi": "", "fd": "",
                                  "fs": receiver.channel, "fc": "" });
            let acks = frames_of(&transport, part.session_id, &receipt)?;
            let (http, base, receiver, to) = (http.clone(), base.clone(), receiver.clone(), sender_channel.clone());
            receipts.spawn(async move {
                for ack in acks {
                    publish(&http, &base, &receiver, &to, &ack).await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(done) = receipts.try_join_next() {
            done??;
        }
    }
    while let Some(done) = receipts.join_next().await {
        done??;
    }
    Ok((count, histogram))
}
