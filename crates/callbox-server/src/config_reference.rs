//! The configuration reference: every key of [`Config`] with its environment variable, its `callbox serve` flag,
//! its default and its meaning. docs/configuration.md is generated from this list, and the `config_reference`
//! test fails when a key of `Config` has no entry here or when the document differs from [`markdown`].

use crate::config::Config;
use serde_json::Value;

/// One configuration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Dotted key as in the TOML file: `login.max_failures_per_user`.
    pub key: &'static str,
    /// The `callbox serve` flag, when there is one.
    pub flag: Option<&'static str>,
    /// What it does, including what "unset" means for keys without a default.
    pub meaning: &'static str,
}

const fn entry(key: &'static str, flag: Option<&'static str>, meaning: &'static str) -> Entry {
    Entry { key, flag, meaning }
}

/// Every key, in the order of the document.
pub const ENTRIES: &[Entry] = &[
    entry("listen", Some("--listen"), "Address to listen on; port 0 picks a free port (the chosen URL is printed on stdout as `{\"event\":\"listening\",\"url\":...}`)."),
    entry("tls.cert", Some("--tls-cert"), "PEM file with the certificate chain (server certificate first, then intermediates): with `tls.key`, the listener speaks HTTPS only (HTTP/1.1, WebSocket upgrades included) and the `listening` line says `https://`. Set both or neither; a missing, unreadable or invalid file, or a key that is not the certificate's, stops `callbox serve` at start. SIGHUP reloads both files (see TLS below). Unset: plain HTTP."),
    entry("tls.key", Some("--tls-key"), "PEM file with the private key of `tls.cert` (PKCS#8, PKCS#1 RSA or SEC1 EC). Keep it 0600."),
    entry("data", Some("--data"), "Data directory: SQLite database, master key and admin token files (0700, every file in it 0600). Locked while a server runs: a second `callbox serve` on the same folder is refused."),
    entry("master_key", None, "The master key (base64 of 32 bytes) that seals application secrets and derives session secrets. Unset: `<data>/master.key`, created on first start. Every node of a cluster needs the same one; back it up apart from the database."),
    entry("database_url", Some("--database-url"), "`postgres://user:password@host/db` to share one PostgreSQL database between nodes. Unset: SQLite in the data directory."),
    entry("redis_url", Some("--redis-url"), "`redis://host:port/` to share login attempt counters, lockouts and sign-up rates between nodes. Unset: kept in this node's memory."),
    entry("log_format", Some("--log-format"), "Log format on stderr: `text` or `json`. The level comes from `RUST_LOG` (default `info,sqlx=warn`)."),
    entry("trust_forwarded_for", None, "Take the client address from the last `X-Forwarded-For` entry, and mark the dashboard cookie `Secure` when the proxy says `X-Forwarded-Proto: https`. Only behind a reverse proxy that sets these headers itself."),
    entry("demo_app", None, "Create a demo application (platform-managed users on, any origin allowed) on first start."),
    entry("limits.max_body_bytes", None, "Largest request body, bytes; larger ones are refused with `payload_too_large`."),
    entry("limits.request_timeout_seconds", None, "Time a request may take before it is answered 503 `service_unavailable`, seconds."),
    entry("limits.signed_call_skew_seconds", None, "Allowed distance of `X-Timestamp` from server time on signed session calls, seconds (`timestamp_skew` beyond)."),
    entry("passwords.hash_workers", None, "Password hashes run at once (blocking threads). Unset: half the cores, at least 1, so that logins can never take every core from ticket exchanges."),
    entry("passwords.hash_queue", None, "Logins and sign-ups that may wait for a hashing worker; more are refused with `rate_limited`."),
    entry("passwords.queue_wait_milliseconds", None, "How long a login or sign-up that finds the queue full waits for a place before it is refused with `rate_limited`, milliseconds."),
    entry("passwords.memory_kib", None, "argon2id memory, KiB (OWASP minimum 19456)."),
    entry("passwords.iterations", None, "argon2id iterations (OWASP minimum 2)."),
    entry("login.max_failures_per_user", None, "Failed logins for one account before it locks (`locked_out`)."),
    entry("login.max_failures_per_ip_per_minute", None, "Failed logins from one client address (over all accounts of an app) in one minute, beyond which the address's further attempts are refused with `rate_limited` until the minute ends; no account is locked because of its address. `max_failures_per_ip` is read as this, for older files."),
    entry("login.lockout_base_seconds", None, "First lockout of an account, seconds; each failure after a lockout ends doubles it (attempts refused or failing while it holds never extend it)."),
    entry("login.lockout_max_seconds", None, "Longest lockout, seconds."),
    entry("login.signups_per_ip_per_minute", None, "Sign-ups allowed per client address per minute; more are refused with `rate_limited`."),
    entry("cache.ttl_milliseconds", None, "Longest a cached copy of a session, user, application or its secrets is kept, milliseconds; 0 turns the cache off. Unset: 30 s with SQLite (this process is the only writer, so every change drops its copies at once), off with PostgreSQL (so that a revocation made on one node holds on every node from its next request; e.g. 250 trades that for read throughput)."),
    entry("cache.max_sessions", None, "Most sessions kept in the cache (least recently used go first); 0 turns the cache off."),
    entry("metrics_listen", None, "A separate address for `GET /metrics` (e.g. `127.0.0.1:9090`); when set, the main listener answers 404 for `/metrics`. Unset: `/metrics` is on the main listener."),
    entry("metrics_token", None, "When set, `GET /metrics` needs `Authorization: Bearer <this token>` (on whichever listener serves it)."),
    entry("calls.answer_timeout_seconds", None, "A call ringing longer than this ends with `no_answer`, seconds (docs/calls.md)."),
    entry("calls.grace_seconds", None, "How long a side of a call whose connection dropped may take to reconnect and send `call.rejoin` before the call ends with `timeout`, seconds."),
    entry("calls.ringing_wait_milliseconds", None, "With many nodes: how long a call's home node waits for a callee device on another node to report ringing before the callee counts as unavailable (`no_answer`), milliseconds. On one node the answer is immediate."),
    entry("calls.attempts_per_minute", None, "`call.start` frames a session may send per minute, sustained (per node); more are refused with `rate_limited`."),
    entry("calls.attempt_burst", None, "`call.start` frames a session may send in a burst above the sustained rate."),
    entry("calls.max_concurrent_per_session", None, "Calls a session may take part in at once (counted on the call's home node); one more `call.start` is refused with `too_many_calls`."),
    entry("calls.max_sdp_bytes", None, "Largest SDP offer or answer, bytes (`payload_too_large` beyond)."),
    entry("calls.max_candidate_bytes", None, "Largest ICE candidate, bytes of its JSON (`payload_too_large` beyond)."),
    entry("turn.urls", None, "TURN URLs handed to sessions with `calling` (`turn:host:3478?transport=udp`, `turns:host:5349?transport=tcp`), each with a TURN credential. Left out while `turn.shared_secret` is unset."),
    entry("turn.stun_urls", None, "STUN URLs handed to sessions with `calling` (no credential)."),
    entry("turn.shared_secret", None, "coturn's `static-auth-secret` (shared-secret mode): TURN passwords are base64 of HMAC-SHA1 of `<unix expiry>:<user id>` with it. Never logged or shown. Unset: no TURN credentials. Rotation: docs/deploy.md."),
    entry("turn.credential_ttl_seconds", None, "Lifetime of a TURN credential, seconds; never beyond the session's expiry."),
    entry("legacy.realtime_host", None, "The realtime host (`host` or `host:port`) that `GET /v1/configuration/user` hands the legacy SDK, which connects to it over HTTPS only: a name the certificate covers (Callbox's own `tls.cert`, or the proxy's in front). No scheme, no path (`callbox serve` refuses them at start). Unset: the `Host` header of that request, i.e. Callbox's own listener as the client reached it."),
    entry("connections.header_timeout_seconds", None, "Time a new connection has to deliver its first request's headers, and a kept-alive one the next request's headers from their first byte, seconds; slower connections are closed."),
    entry("connections.idle_timeout_seconds", None, "Time a kept-alive connection may stay silent between requests, seconds. Keep it above the idle timeout of a proxy in front (60 s for most), so that the proxy, not Callbox, closes idle connections."),
    entry("connections.max_per_address", None, "Plain HTTP connections from one client address (an IPv6 /64 counts as one); more are answered 429 `rate_limited` at once and closed. Unset: 256, or no cap when `trust_forwarded_for` is on (every connection then comes from the proxy)."),
    entry("connections.max_total", None, "Plain HTTP connections in all; more are answered 503 at once and closed. Unset: half of the file-descriptor limit left after a headroom of an eighth (at least 128)."),
    entry("connections.realtime_max_per_address", None, "Authenticated realtime connections (promoted by the realtime layer) from one client address. Unset: as `max_per_address`."),
    entry("connections.realtime_max_total", None, "Authenticated realtime connections in all. Unset: the other half of the file descriptors."),
    entry("connections.threads", None, "Threads that serve the main listener's connections, each with a single-threaded runtime of its own (a connection stays on one thread: fewer thread switches per request than on shared workers). Unset: one per CPU core. 0: connections are served by the main runtime's workers, with everything else."),
    entry("realtime.heartbeat_seconds", None, "Seconds between the server's `ping` frames."),
    entry("realtime.idle_timeout_seconds", None, "A connection from which nothing arrived for this long is closed (4408), seconds."),
    entry("realtime.auth_timeout_seconds", None, "Time a new connection has to send its `auth` frame, seconds."),
    entry("realtime.max_recipients", None, "Most recipients of one message."),
    entry("realtime.max_text_bytes", None, "Largest text body, bytes (UTF-8)."),
    entry("realtime.max_headers_bytes", None, "Largest headers object, bytes of its JSON."),
    entry("realtime.max_frame_bytes", None, "Largest frame a client may send, bytes."),
    entry("realtime.messages_per_second", None, "Messages a session may send per second (sustained)."),
    entry("realtime.message_burst", None, "Messages a session may send in a burst above the sustained rate."),
    entry("realtime.write_timeout_seconds", None, "A socket write that takes longer than this means the peer stopped reading: the connection is dropped, seconds."),
    entry("realtime.outbound_queue", None, "Frames waiting to be written to one connection; a reader slower than that is closed (4503)."),
    entry("realtime.retention_seconds", None, "Messages older than this are purged from inboxes, seconds."),
    entry("realtime.retention_per_user", None, "Inbox entries kept per user (the newest); older ones are purged."),
    entry("realtime.purge_interval_seconds", None, "Seconds between retention purges."),
    entry("realtime.gap_wait_milliseconds", None, "How long a connection waits for a missing sequence number to arrive live before reading it from the store, milliseconds."),
    entry("realtime.legacy_poll_seconds", None, "How long a legacy long-poll (`/subscribe`) waits for something to answer, seconds. The SDK gives up on a poll after 310 s; a proxy in front must allow this much."),
    entry("realtime.legacy_polls_per_session", None, "Legacy long-polls one session may hold at once on one node; more are refused with `rate_limited`."),
    entry("realtime.legacy_polls_per_address", None, "Legacy long-polls one client address may hold at once on one node; more are refused with `rate_limited`."),
];

/// The `CALLBOX_*` variable of a dotted key: `login.max_failures_per_user` → `CALLBOX_LOGIN__MAX_FAILURES_PER_USER`.
pub fn env_name(key: &str) -> String {
    format!("CALLBOX_{}", key.replace('.', "__").to_ascii_uppercase())
}

/// Every leaf key of the serialized default configuration, dotted, with its default value.
pub fn default_keys() -> Vec<(String, Value)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
        match value {
            Value::Object(fields) => {
                for (name, field) in fields {
                    let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                    walk(&key, field, out);
                }
            }
            leaf => out.push((prefix.to_owned(), leaf.clone())),
        }
    }
    let mut out = Vec::new();
    // Config is plain data (strings, numbers, booleans, options, nested structs): serializing it cannot fail,
    // and an empty list would make the coverage test fail loudly anyway.
    if let Ok(value) = serde_json::to_value(Config::default()) {
        walk("", &value, &mut out);
    }
    out
}

/// The keys of `Config` without an entry, and the entries that name no key of `Config`.
pub fn coverage_gaps() -> (Vec<String>, Vec<&'static str>) {
    let keys = default_keys();
    let missing =
        keys.iter().filter(|(key, _)| !ENTRIES.iter().any(|e| e.key == key)).map(|(key, _)| key.clone()).collect();
    let stale = ENTRIES.iter().filter(|e| !keys.iter().any(|(key, _)| key == e.key)).map(|e| e.key).collect();
    (missing, stale)
}

/// The command that rewrites docs/configuration.md.
pub const REGENERATE: &str = "CALLBOX_BLESS=1 cargo test -p callbox-server --test server config_reference";

fn show_default(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "unset".into(),
        Some(Value::String(text)) => format!("`\"{text}\"`"),
        Some(other) => format!("`{other}`"),
    }
}

/// docs/configuration.md.
pub fn markdown() -> String {
    let defaults = default_keys();
    let mut out = String::new();
    out.push_str("# Configuration reference\n\n");
    out.push_str(&format!(
        "<!-- Generated from crates/callbox-server/src/config_reference.rs; do not edit. Regenerate with:\n     \
         {REGENERATE} -->\n\n"
    ));
    out.push_str(
        "`callbox serve` reads its configuration in layers, each one overriding the one before:\n\n\
         1. the built-in defaults below;\n\
         2. a TOML file given with `--config FILE` (or `CALLBOX_CONFIG=FILE`), with the keys below (dotted keys \
         are tables: `login.max_failures_per_user = 10`, or `max_failures_per_user = 10` under `[login]`);\n\
         3. `CALLBOX_*` environment variables, nested keys joined with `__`;\n\
         4. the flags of `callbox serve`.\n\n\
         Unknown keys are ignored. `CALLBOX_URL`, `CALLBOX_ADMIN_TOKEN` and `CALLBOX_CONFIG` belong to the command \
         line tools, not to the server (`callbox app|user|session` also read `CALLBOX_DATA` to find the admin token, \
         and `callbox ticket` reads `CALLBOX_SECRET`).\n\n",
    );
    out.push_str("| Key | Environment variable | Flag | Default | Meaning |\n|---|---|---|---|---|\n");
    for entry in ENTRIES {
        let default = defaults.iter().find(|(key, _)| key == entry.key).map(|(_, value)| value);
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} |\n",
            entry.key,
            env_name(entry.key),
            entry.flag.map_or_else(|| "—".to_owned(), |flag| format!("`{flag}`")),
            show_default(default),
            entry.meaning.replace('|', "\\|"),
        ));
    }
    out.push_str(
        "\nExample file:\n\n```toml\nlisten = \"0.0.0.0:8080\"\ndata = \"/var/lib/callbox\"\nlog_format = \"json\"\n\
         trust_forwarded_for = true\ndemo_app = false\n\n[login]\nmax_failures_per_user = 10\n```\n",
    );
    out.push_str(TLS_SECTION);
    out
}

/// The "TLS" section of docs/configuration.md.
const TLS_SECTION: &str = "
## TLS

The legacy Sinch JS SDK talks only HTTPS to its realtime host, so `callbox serve` can terminate TLS itself when no
proxy does it in front (docs/deploy.md):

```sh
callbox serve --listen 0.0.0.0:443 --tls-cert /etc/callbox/fullchain.pem --tls-key /etc/callbox/privkey.pem
# or [tls] cert = \"...\" / key = \"...\" in the file, or CALLBOX_TLS__CERT / CALLBOX_TLS__KEY
```

- The main listener then speaks only HTTPS: TLS 1.2 and 1.3 (rustls, aws-lc-rs), ALPN `http/1.1`, every route
  including the WebSocket upgrade at `/v1/realtime`. The metrics listener (`metrics_listen`) stays plain HTTP.
- Both files are read and checked against each other at start: one without the other, an unreadable file, a file
  without a PEM certificate or key, or a key that is not the certificate's ends `callbox serve` with one line on
  stderr (`error: callbox serve: tls: ...`) and exit status 1, before the data directory is opened.
- The handshake counts against `connections.header_timeout_seconds`: a client has that long from its connection
  to finish the handshake and send its first request's headers. Failed handshakes are logged at debug and counted
  in `callbox_connections_tls_handshake_failures_total`. A plain HTTP request sent to the HTTPS port is answered
  `400 malformed_request` in plain HTTP and closed. A connection over a cap is closed without an answer.
- **Reload: supported.** `kill -HUP <pid>` reads both files again and serves the new pair from the next handshake
  on (renewing with certbot: a `--deploy-hook` that sends SIGHUP). When the new files are bad, the pair in use
  stays and a warning is logged (`SIGHUP: kept the TLS certificate in use`). Open connections keep their
  certificate. Without TLS, SIGHUP is not handled (it ends the process, as before). Under systemd:
  `ExecReload=/bin/kill -HUP $MAINPID`, then `systemctl reload callbox`.
- Port 443 needs root or, better, `AmbientCapabilities=CAP_NET_BIND_SERVICE` in the unit; the key file needs
  to be readable by the user Callbox runs as, and by no one else.
- The certificate must cover every name clients use: the host in their Callbox URL and, for the legacy SDK,
  `legacy.realtime_host` (by default the host of the client's own request, so the same name).
- With TLS on, the dashboard's cookie is always `Secure`.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_follow_the_double_underscore_rule() {
        assert_eq!(env_name("listen"), "CALLBOX_LISTEN");
        assert_eq!(env_name("login.max_failures_per_user"), "CALLBOX_LOGIN__MAX_FAILURES_PER_USER");
    }
}
