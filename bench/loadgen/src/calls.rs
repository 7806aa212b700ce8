//! The `realtime-calls` scenario (issue 12, docs/calls.md): call setups a second through the signaling alone.
//!
//! `pairs` caller/callee pairs, each side its own session with `calling` on its own realtime connection. Each pair
//! runs whole calls back to back, one at a time:
//!
//! ```text
//! caller: call.start {sdp: offer ~2.7 KB}  → call.placed (ref echoed), call.progress (ringing)
//! callee: ← call.incoming {sdp: offer}     → call.answer {sdp: answer}
//! caller: ← call.answered {sdp: answer}    (the setup is complete: its latency is start sent → this read)
//! callee: ← call.answered                  → call.candidate
//! caller: → call.candidate                 ← the callee's call.candidate
//! callee: ← the caller's call.candidate
//! caller: → call.hangup                    ← call.ended hung_up/caller; callee ← call.ended hung_up/caller
//! ```
//!
//! A setup counts once both sides have read `call.ended`. Any frame the wire does not allow at that point, a
//! field that does not match (call id, SDP, cause), or a frame that does not come within [`FRAME_TIMEOUT`] aborts
//! the whole run with a message naming the pair, the side and what was expected: a benchmark of a relay that
//! drops or garbles frames would be meaningless. The one refusal a client is expected to handle, `rate_limited`
//! on `call.start`, is counted, waited out (`retryAfter`) and retried; the bench scripts raise the limit so that
//! it does not happen.

use crate::realtime::{connect_with, create_app, next_text, sessions, Ws};
use crate::target;
use anyhow::{anyhow, bail, Context};
use futures_util::SinkExt;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

/// `POST /v1/instance` services: `voip` asks for `calling` (PROTOCOL §6).
const CALLING: &str = r#"{"voip":true}"#;

/// The client sockets run without Nagle's algorithm, as a browser's WebSocket does (Chrome and Firefox set
/// `TCP_NODELAY`): a side that sends two frames in a row would otherwise hold the second for the server's ACK.
const NO_DELAY: bool = true;

/// Longest wait for one expected frame (the server's answer timeout is 45 s, so a lost frame shows here first).
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// What one pair did.
#[derive(Debug)]
struct PairResult {
    completed: u64,
    rate_limited: u64,
    /// `call.start` sent → `call.answered` read by the caller, in microseconds.
    setup: Histogram<u64>,
}

/// Runs the scenario against `base` (an app is created with the admin `token`) and returns its JSON result.
pub async fn calls(base: &str, token: &str, pairs: usize, duration: f64) -> anyhow::Result<Value> {
    let target = target(base)?;
    let http = reqwest::Client::new();
    let app = create_app(&http, &target.base, token).await?;
    let sessions = sessions(&http, &target.base, &app, pairs * 2, CALLING).await?;
    let mut sockets = Vec::with_capacity(pairs);
    for pair in 0..pairs {
        // Even users call, odd ones answer (`loaduser{2p}` → `loaduser{2p+1}`).
        let callee = connect_with(&target.base, &sessions[pair * 2 + 1], NO_DELAY)
            .await
            .with_context(|| format!("pair {pair}: callee"))?;
        let caller = connect_with(&target.base, &sessions[pair * 2], NO_DELAY)
            .await
            .with_context(|| format!("pair {pair}: caller"))?;
        sockets.push((caller, callee));
    }
    let offer_bytes = offer(0, 0).len();
    let answer_bytes = answer(0, 0).len();
    let run = Duration::from_secs_f64(duration);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (pair, (caller, callee)) in sockets.into_iter().enumerate() {
        let callee_id = format!("loaduser{}", pair * 2 + 1);
        tasks.spawn(async move {
            Pair { index: pair, caller, callee, callee_id }
                .run(started + run)
                .await
                .with_context(|| format!("pair {pair}"))
        });
    }
    let mut completed = 0;
    let mut rate_limited = 0;
    let mut setup = Histogram::<u64>::new(3)?;
    // The first failure ends the run (the other pairs are aborted when the set is dropped).
    while let Some(joined) = tasks.join_next().await {
        let result = joined.context("a pair's task")??;
        completed += result.completed;
        rate_limited += result.rate_limited;
        setup.add(result.setup)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ms = |q: f64| setup.value_at_quantile(q) as f64 / 1000.0;
    Ok(json!({
        "scenario": "realtime-calls",
        "pairs": pairs,
        "seconds": duration,
        // Setups started before `seconds` passed are finished, so the rate is over the time until the last ended.
        "elapsedSeconds": elapsed,
        "completed": completed,
        "rateLimited": rate_limited,
        "setupsPerSecond": completed as f64 / elapsed,
        "setupLatencyMs": { "p50": ms(0.5), "p99": ms(0.99), "max": setup.max() as f64 / 1000.0 },
        "offerBytes": offer_bytes,
        "answerBytes": answer_bytes,
        "framesPerSetup": FRAMES_PER_SETUP,
    }))
}

/// Frames through the server per setup: 5 client → server (start, answer, 2 candidates, hangup) and 9 server →
/// client (placed, progress, incoming, 2 answered, 2 candidates, 2 ended).
const FRAMES_PER_SETUP: u64 = 14;

struct Pair {
    index: usize,
    caller: Ws,
    callee: Ws,
    callee_id: String,
}

/// Which connection of the pair.
#[derive(Debug, Clone, Copy)]
enum Side {
    Caller,
    Callee,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Caller => "caller",
            Side::Callee => "callee",
        }
    }
}

impl Pair {
    async fn run(mut self, until: Instant) -> anyhow::Result<PairResult> {
        let mut result = PairResult { completed: 0, rate_limited: 0, setup: Histogram::<u64>::new(3)? };
        let mut n = 0u64;
        while Instant::now() < until {
            self.setup(n, &mut result).await.with_context(|| format!("call {n}"))?;
            n += 1;
        }
        Ok(result)
    }

    fn ws(&mut self, side: Side) -> &mut Ws {
        match side {
            Side::Caller => &mut self.caller,
            Side::Callee => &mut self.callee,
        }
    }

    async fn send(&mut self, side: Side, frame: Value) -> anyhow::Result<()> {
        let text = frame.to_string();
        self.ws(side).send(Message::Text(text.into())).await.with_context(|| format!("{} send", side.name()))
    }

    /// The next frame on `side` other than a `ping` (answered), within [`FRAME_TIMEOUT`].
    async fn next(&mut self, side: Side, waiting_for: &str) -> anyhow::Result<Value> {
        loop {
            let frame = tokio::time::timeout(FRAME_TIMEOUT, next_text(self.ws(side)))
                .await
                .map_err(|_| anyhow!("the {} waited {FRAME_TIMEOUT:?} for {waiting_for}", side.name()))?
                .with_context(|| format!("the {} waiting for {waiting_for}", side.name()))?;
            if frame["type"] == "ping" {
                self.send(side, json!({ "type": "pong" })).await?;
                continue;
            }
            return Ok(frame);
        }
    }

    /// The next frame on `side`, which must be of type `wanted` (for the call `call_id` when given).
    async fn expect(&mut self, side: Side, wanted: &str, call_id: Option<&str>) -> anyhow::Result<Value> {
        let frame = self.next(side, wanted).await?;
        if frame["type"] != wanted {
            bail!("the {} expected {wanted}, got {}", side.name(), brief(&frame));
        }
        if let Some(id) = call_id {
            if frame["callId"] != id {
                bail!("the {} expected {wanted} for call {id}, got {}", side.name(), brief(&frame));
            }
        }
        Ok(frame)
    }

    /// One whole call; `n` numbers it within the pair.
    async fn setup(&mut self, n: u64, result: &mut PairResult) -> anyhow::Result<()> {
        let offer = offer(self.index, n);
        let answer = answer(self.index, n);
        let reference = format!("start-{n}");
        let (placed, sent) = loop {
            let sent = Instant::now();
            let start = json!({ "type": "call.start", "ref": reference, "calleeId": self.callee_id, "sdp": offer });
            self.send(Side::Caller, start).await?;
            let placed = self.next(Side::Caller, "call.placed").await?;
            if placed["type"] == "error" && placed["reason"] == "rate_limited" {
                result.rate_limited += 1;
                let wait = placed["retryAfter"].as_u64().unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            break (placed, sent);
        };
        if placed["type"] != "call.placed" || placed["ref"] != reference.as_str() {
            bail!("the caller expected call.placed with ref {reference}, got {}", brief(&placed));
        }
        let id = placed["callId"].as_str().ok_or_else(|| anyhow!("call.placed without a callId: {placed}"))?.to_owned();
        let id = id.as_str();

        let incoming = self.expect(Side::Callee, "call.incoming", Some(id)).await?;
        if incoming["sdp"] != offer.as_str() {
            bail!("call.incoming carried another offer ({} bytes)", incoming["sdp"].as_str().map_or(0, str::len));
        }
        self.send(Side::Callee, json!({ "type": "call.answer", "callId": id, "sdp": answer })).await?;

        // call.progress (the callee's device rang) comes before the answer: the callee's connection reports the
        // ringing before it reads the callee's call.answer.
        self.expect(Side::Caller, "call.progress", Some(id)).await?;
        let answered = self.expect(Side::Caller, "call.answered", Some(id)).await?;
        let latency = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        if answered["sdp"] != answer.as_str() {
            bail!("the caller's call.answered carried another answer: {}", brief(&answered));
        }
        result.setup.record(latency.max(1))?;

        let answered = self.expect(Side::Callee, "call.answered", Some(id)).await?;
        if answered.get("sdp").is_some() {
            bail!("the callee's call.answered carried an SDP");
        }
        self.send(Side::Callee, json!({ "type": "call.candidate", "callId": id, "candidate": candidate(n, "b") }))
            .await?;
        self.send(Side::Caller, json!({ "type": "call.candidate", "callId": id, "candidate": candidate(n, "a") }))
            .await?;
        let relayed = self.expect(Side::Caller, "call.candidate", Some(id)).await?;
        if relayed["candidate"] != candidate(n, "b") {
            bail!("the caller got another candidate: {}", brief(&relayed));
        }
        let relayed = self.expect(Side::Callee, "call.candidate", Some(id)).await?;
        if relayed["candidate"] != candidate(n, "a") {
            bail!("the callee got another candidate: {}", brief(&relayed));
        }

        self.send(Side::Caller, json!({ "type": "call.hangup", "callId": id })).await?;
        for side in [Side::Caller, Side::Callee] {
            let ended = self.expect(side, "call.ended", Some(id)).await?;
            if ended["cause"] != "hung_up" || ended["endedBy"] != "caller" {
                bail!("the {} expected call.ended hung_up by the caller, got {}", side.name(), brief(&ended));
            }
        }
        result.completed += 1;
        Ok(())
    }
}

/// A frame for an error message: the SDP (kilobytes) cut short.
fn brief(frame: &Value) -> String {
    let mut shown = frame.clone();
    if let Some(sdp) = shown.get_mut("sdp") {
        *sdp = json!(format!("<{} bytes>", sdp.as_str().map_or(0, str::len)));
    }
    shown.to_string()
}

/// Hex digits derived from `pair`, `n` and `salt`, standing in for the random parts of an SDP.
fn hex(pair: usize, n: u64, salt: u64, digits: usize) -> String {
    let mut x = (pair as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n.wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ salt;
    let mut out = String::with_capacity(digits);
    while out.len() < digits {
        x ^= x >> 31;
        x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
        let _ = write!(out, "{x:016x}");
    }
    out.truncate(digits);
    out
}

/// The media section both SDPs share: what Chrome offers for one audio track (Opus, RED, G.722, G.711, CN, DTMF).
fn audio_section(pair: usize, n: u64, salt: u64, setup: &str) -> String {
    let fingerprint: Vec<String> =
        hex(pair, n, salt ^ 1, 64).as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).to_uppercase()).collect();
    let mut s = String::new();
    let _ = write!(
        s,
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
         c=IN IP4 0.0.0.0\r\n\
         a=rtcp:9 IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:{ufrag}\r\n\
         a=ice-pwd:{pwd}\r\n\
         a=ice-options:trickle\r\n\
         a=fingerprint:sha-256 {fingerprint}\r\n\
         a=setup:{setup}\r\n\
         a=mid:0\r\n\
         a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
         a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
         a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
         a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
         a=sendrecv\r\n\
         a=msid:{stream} {track}\r\n\
         a=rtcp-mux\r\n\
         a=rtpmap:111 opus/48000/2\r\n\
         a=rtcp-fb:111 transport-cc\r\n\
         a=fmtp:111 minptime=10;useinbandfec=1\r\n\
         a=rtpmap:63 red/48000/2\r\n\
         a=fmtp:63 111/111\r\n\
         a=rtpmap:9 G722/8000\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:13 CN/8000\r\n\
         a=rtpmap:110 telephone-event/48000\r\n\
         a=rtpmap:126 telephone-event/8000\r\n\
         a=ssrc:{ssrc} cname:{cname}\r\n\
         a=ssrc:{ssrc} msid:{stream} {track}\r\n",
        ufrag = hex(pair, n, salt ^ 2, 4),
        pwd = hex(pair, n, salt ^ 3, 24),
        fingerprint = fingerprint.join(":"),
        stream = hex(pair, n, salt ^ 4, 36),
        track = hex(pair, n, salt ^ 5, 36),
        ssrc = u32::from_str_radix(&hex(pair, n, salt ^ 6, 8), 16).unwrap_or(1),
        cname = hex(pair, n, salt ^ 7, 16),
    );
    s
}

fn session_header(pair: usize, n: u64, salt: u64) -> String {
    let id = u64::from_str_radix(&hex(pair, n, salt, 15), 16).unwrap_or(1);
    format!(
        "v=0\r\no=- {id} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=extmap-allow-mixed\r\n\
         a=msid-semantic: WMS {}\r\n",
        hex(pair, n, salt ^ 4, 36)
    )
}

/// Host and server-reflexive candidates in the SDP, as a non-trickling offer carries them.
fn sdp_candidates(pair: usize, n: u64, salt: u64, count: usize) -> String {
    let mut s = String::new();
    let ufrag = hex(pair, n, salt ^ 2, 4);
    for i in 0..count {
        let port = 50_000 + (pair * 7 + i * 13) % 10_000;
        let (kind, address, extra) = if i % 2 == 0 {
            ("host", format!("192.168.1.{}", 10 + i), String::new())
        } else {
            ("srflx", format!("203.0.113.{}", 10 + i), format!(" raddr 192.168.1.{} rport {port}", 9 + i))
        };
        let _ = write!(
            s,
            "a=candidate:{} 1 udp {} {address} {port} typ {kind}{extra} generation 0 network-id {} ufrag {ufrag} \
             network-cost 10\r\n",
            u32::from_str_radix(&hex(pair, n, salt ^ (10 + i as u64), 8), 16).unwrap_or(1),
            2_122_260_223u32 - i as u32 * 100,
            i + 1,
        );
    }
    s
}

/// A fake SDP offer (about 2.7 KB, 10 candidates): one audio track with its candidates, different for every call.
pub fn offer(pair: usize, n: u64) -> String {
    let mut sdp = session_header(pair, n, 0x0FFE);
    sdp.push_str(&audio_section(pair, n, 0x0FFE, "actpass"));
    sdp.push_str(&sdp_candidates(pair, n, 0x0FFE, 10));
    sdp
}

/// A fake SDP answer (about 2 KB, 5 candidates).
pub fn answer(pair: usize, n: u64) -> String {
    let mut sdp = session_header(pair, n, 0xA115);
    sdp.push_str(&audio_section(pair, n, 0xA115, "active"));
    sdp.push_str(&sdp_candidates(pair, n, 0xA115, 5));
    sdp
}

/// One trickled `RTCIceCandidateInit`; `side` tells the caller's ("a") from the callee's ("b").
fn candidate(n: u64, side: &str) -> Value {
    let ufrag = if side == "a" { "a1b2" } else { "c3d4" };
    json!({
        "candidate": format!(
            "candidate:{} 1 udp 1677729535 198.51.100.{} {} typ srflx raddr 10.0.0.2 rport 51234 generation 0 \
             ufrag {ufrag} network-cost 10",
            3_000_000_000u64 + n,
            if side == "a" { 7 } else { 9 },
            40_000 + n % 20_000,
        ),
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": ufrag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_sdps_have_a_realistic_size_and_differ_per_call() {
        let (o, a) = (offer(3, 7), answer(3, 7));
        assert!((2_000..=3_200).contains(&o.len()), "offer {} bytes", o.len());
        assert!((1_500..=3_000).contains(&a.len()), "answer {} bytes", a.len());
        assert!(o.starts_with("v=0\r\n") && o.ends_with("\r\n"));
        assert_ne!(offer(3, 7), offer(3, 8));
        assert_ne!(offer(3, 7), offer(4, 7));
        assert_ne!(o, a);
    }

    #[test]
    fn candidates_differ_per_side_and_call() {
        assert_ne!(candidate(1, "a"), candidate(1, "b"));
        assert_ne!(candidate(1, "a"), candidate(2, "a"));
        assert!(candidate(1, "a").to_string().len() < 1024);
    }
}
