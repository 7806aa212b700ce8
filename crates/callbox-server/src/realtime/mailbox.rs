//! The legacy transport's call frames between long-polls (docs/legacy-sdk.md section 6).
//!
//! Messages reach a legacy client from its inbox in the store; call frames (the INVITE the server makes, then
//! the frames the two SDKs exchange) are short-lived and go through here instead: each node keeps every call
//! frame of the last [`RETENTION`] by channel, with a *position* (microseconds since 1970, kept increasing), and a
//! long-poll answers what its channels received after the position in its timetoken. The position is in the
//! token, not in the server, so a poll the client abandoned loses nothing: its next poll asks again from where
//! the last answer it read ended, as PubNub's timetokens work. Every node gets every frame (the cluster fan-out),
//! and positions are times, so a poll that moves to another node resumes at about the same point.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// How long a frame waits for the long-poll of its channel (the SDK polls again within milliseconds of an
/// answer; a minute covers a reconnect).
pub const RETENTION: Duration = Duration::from_secs(60);
/// Frames kept per channel at most (the oldest go first): a call exchanges a few dozen.
const MAX_PER_CHANNEL: usize = 256;
/// Channels with frames kept at most on one node (emptied beyond: a flood must not grow memory without bound).
const MAX_CHANNELS: usize = 100_000;
/// Bytes of frames kept at most on one node; beyond, the oldest frames go first. Every frame comes from a session
/// within its rate limits, so only a flood from many sessions reaches it.
const MAX_BYTES: usize = 64 * 1024 * 1024;
/// How far back a poll that starts (timetoken 0) looks for frames of its channels it has not been answered yet.
const START_LOOKBACK: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Entry {
    position: u64,
    at: Instant,
    frame: Arc<str>,
}

#[derive(Debug, Default)]
struct State {
    channels: HashMap<String, VecDeque<Entry>>,
    /// Bytes of the frames kept.
    bytes: usize,
    last: u64,
    last_sweep: Option<Instant>,
    /// The last position answered to each (session, channel) lately: where a poll that starts over resumes.
    answered: HashMap<(String, String), (u64, Instant)>,
}

/// This node's call frames by channel (see the module documentation).
#[derive(Debug)]
pub struct Mailbox {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Default for Mailbox {
    fn default() -> Self {
        Self { state: Mutex::default(), changed: watch::channel(0).0 }
    }
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

impl Mailbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `frames` for `channel`, in order, and wakes the long-polls.
    pub fn post(&self, channel: &str, frames: &[Arc<str>]) {
        if frames.is_empty() {
            return;
        }
        let now = Instant::now();
        let position = {
            let mut state = self.lock();
            state.sweep(now);
            if state.channels.len() >= MAX_CHANNELS && !state.channels.contains_key(channel) {
                state.channels.clear();
                state.bytes = 0;
            }
            let mut position = state.last;
            let mut entries = state.channels.remove(channel).unwrap_or_default();
            for frame in frames {
                position = (position + 1).max(now_micros());
                state.bytes += frame.len();
                entries.push_back(Entry { position, at: now, frame: Arc::clone(frame) });
                if entries.len() > MAX_PER_CHANNEL {
                    if let Some(dropped) = entries.pop_front() {
                        state.bytes = state.bytes.saturating_sub(dropped.frame.len());
                    }
                }
            }
            state.channels.insert(channel.to_owned(), entries);
            state.last = position;
            if state.bytes > MAX_BYTES {
                state.shed(MAX_BYTES / 2);
            }
            position
        };
        self.changed.send_replace(position);
    }

    /// The frames of `channels` after `after`, in position order, and the position to resume from.
    pub fn read(&self, channels: &[&str], after: u64) -> (Vec<(String, Arc<str>)>, u64) {
        let state = self.lock();
        let mut found: Vec<(u64, &str, &Arc<str>)> = Vec::new();
        for channel in channels {
            if let Some(entries) = state.channels.get(*channel) {
                for entry in entries.iter().filter(|entry| entry.position > after) {
                    found.push((entry.position, channel, &entry.frame));
                }
            }
        }
        found.sort_by_key(|(position, _, _)| *position);
        let next = found.last().map_or(after, |(position, _, _)| *position);
        (found.into_iter().map(|(_, channel, frame)| (channel.to_owned(), Arc::clone(frame))).collect(), next)
    }

    /// Where a poll of `session_id` that starts over (timetoken 0) reads from: after what was last answered to
    /// it on these channels, but at most [`START_LOOKBACK`] ago. The SDK starts a subscription with timetoken 0
    /// every time it subscribes (for instance to its signal channel, once a call begins), and a frame may have
    /// arrived just before.
    pub fn start_position(&self, session_id: &str, channels: &[&str]) -> u64 {
        let floor = now_micros().saturating_sub(START_LOOKBACK.as_micros() as u64);
        let state = self.lock();
        channels
            .iter()
            .map(|channel| {
                let answered = state.answered.get(&(session_id.to_owned(), (*channel).to_owned()));
                answered.map_or(floor, |(position, _)| (*position).max(floor))
            })
            .min()
            .unwrap_or(floor)
    }

    /// Notes that a poll of `session_id` on `channels` was answered up to `position`.
    pub fn note_answered(&self, session_id: &str, channels: &[&str], position: u64) {
        let now = Instant::now();
        let mut state = self.lock();
        for channel in channels {
            state.answered.insert((session_id.to_owned(), (*channel).to_owned()), (position, now));
        }
    }

    /// The newest position here. It is also the floor for the next frame: a frame posted after this call gets a
    /// greater position even within the same microsecond, so a poll that resumes from the head misses nothing.
    pub fn head(&self) -> u64 {
        let mut state = self.lock();
        state.last = state.last.max(now_micros());
        state.last
    }

    /// Changes each time a frame arrives (the newest position).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

impl State {
    /// Drops the oldest frames until at most `keep` bytes are left.
    fn shed(&mut self, keep: usize) {
        let mut oldest: Vec<(u64, String)> = Vec::new();
        for (channel, entries) in &self.channels {
            oldest.extend(entries.iter().map(|entry| (entry.position, channel.clone())));
        }
        oldest.sort_unstable();
        for (_, channel) in oldest {
            if self.bytes <= keep {
                break;
            }
            if let Some(entries) = self.channels.get_mut(&channel) {
                if let Some(dropped) = entries.pop_front() {
                    self.bytes = self.bytes.saturating_sub(dropped.frame.len());
                }
                if entries.is_empty() {
                    self.channels.remove(&channel);
                }
            }
        }
        metrics::counter!("callbox_legacy_mailbox_shed_total").increment(1);
    }

    fn sweep(&mut self, now: Instant) {
        if self.last_sweep.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
            return;
        }
        self.last_sweep = Some(now);
        let mut freed = 0;
        self.channels.retain(|_, entries| {
            while entries.front().is_some_and(|entry| now.duration_since(entry.at) >= RETENTION) {
                if let Some(dropped) = entries.pop_front() {
                    freed += dropped.frame.len();
                }
            }
            !entries.is_empty()
        });
        self.bytes = self.bytes.saturating_sub(freed);
        self.answered.retain(|_, (_, at)| now.duration_since(*at) < RETENTION);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn frames(texts: &[&str]) -> Vec<Arc<str>> {
        texts.iter().map(|text| Arc::from(*text)).collect()
    }

    #[test]
    fn a_poll_reads_what_its_channels_got_after_its_position_in_order() {
        let mailbox = Mailbox::default();
        let start = mailbox.head();
        mailbox.post("a", &frames(&["a1", "a2"]));
        mailbox.post("b", &frames(&["b1"]));
        mailbox.post("c", &frames(&["c1"]));
        let (read, next) = mailbox.read(&["a", "b"], start);
        let texts: Vec<&str> = read.iter().map(|(_, frame)| &**frame).collect();
        assert_eq!(texts, ["a1", "a2", "b1"]);
        assert_eq!(read[2].0, "b");
        // Resuming from the answer's position gives nothing more until something arrives.
        assert!(mailbox.read(&["a", "b"], next).0.is_empty());
        mailbox.post("a", &frames(&["a3"]));
        let (read, _) = mailbox.read(&["a", "b"], next);
        assert_eq!(read.len(), 1);
        assert_eq!(&*read[0].1, "a3");
        // An abandoned answer loses nothing: the same position reads the same frames again.
        assert_eq!(mailbox.read(&["a", "b"], start).0.len(), 4);
    }

    #[test]
    fn a_frame_posted_right_after_the_head_is_read_from_it_even_within_one_microsecond() {
        let mailbox = Mailbox::default();
        for round in 0..10_000 {
            let head = mailbox.head();
            mailbox.post("a", &frames(&["frame"]));
            assert_eq!(mailbox.read(&["a"], head).0.len(), 1, "round {round}: the frame after the head was missed");
        }
    }

    #[test]
    fn a_poll_that_starts_over_resumes_after_what_it_was_answered() {
        let mailbox = Mailbox::default();
        mailbox.post("s", &frames(&["early"]));
        let start = mailbox.start_position("session", &["s"]);
        assert_eq!(mailbox.read(&["s"], start).0.len(), 1, "a frame of the last seconds is not lost");
        let (_, next) = mailbox.read(&["s"], start);
        mailbox.note_answered("session", &["s"], next);
        assert!(mailbox.read(&["s"], mailbox.start_position("session", &["s"])).0.is_empty());
    }

    #[test]
    fn past_the_byte_limit_the_oldest_frames_go_first() {
        let mailbox = Mailbox::default();
        let start = mailbox.head();
        let big: Arc<str> = Arc::from("x".repeat(1024 * 1024).as_str());
        for n in 0..80 {
            mailbox.post(&format!("c{n}"), &[Arc::clone(&big)]);
        }
        let state = mailbox.lock();
        assert!(state.bytes <= MAX_BYTES, "{} bytes kept", state.bytes);
        assert!(!state.channels.contains_key("c0"), "the oldest went");
        assert!(state.channels.contains_key("c79"), "the newest stayed");
        drop(state);
        assert_eq!(mailbox.read(&["c79"], start).0.len(), 1);
    }

    #[test]
    fn a_channel_keeps_its_newest_frames_only() {
        let mailbox = Mailbox::default();
        let start = mailbox.head();
        let many: Vec<String> = (0..MAX_PER_CHANNEL + 10).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        mailbox.post("x", &frames(&many));
        let (read, _) = mailbox.read(&["x"], start);
        assert_eq!(read.len(), MAX_PER_CHANNEL);
        assert_eq!(&*read[0].1, "10");
    }
}
