//! `callbox app`, `callbox user`, `callbox session`: a client of the admin HTTP API (docs/admin-api.md).

use crate::ticket::{IdentityKind, SecretText};
use crate::usage;
use anyhow::{anyhow, Context};
use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::fmt;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Everything but the unreserved characters of RFC 3986 is percent-encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// How to reach the admin API; shared by `app`, `user` and `session`.
#[derive(Debug, Args)]
pub struct Connection {
    /// Base URL of the Callbox server. Plain http:// only for now: this build has no TLS client, so reach a
    /// remote server through an SSH tunnel or a private network.
    #[arg(
        long,
        global = true,
        help_heading = "Admin API",
        value_name = "URL",
        env = "CALLBOX_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// Admin token. When absent, it is read from DIR/admin-token (see --data).
    #[arg(
        long,
        global = true,
        help_heading = "Admin API",
        value_name = "TOKEN",
        env = "CALLBOX_ADMIN_TOKEN",
        hide_env_values = true,
        value_parser = hidden_text
    )]
    admin_token: Option<SecretText>,
    /// The server's data directory, whose admin-token file holds the admin token (read only when no
    /// --admin-token is given).
    #[arg(
        long,
        global = true,
        help_heading = "Admin API",
        value_name = "DIR",
        env = "CALLBOX_DATA",
        default_value = "./callbox-data"
    )]
    data: PathBuf,
    /// Print the server's JSON answer instead of text (commands whose answer is empty print nothing).
    #[arg(long, global = true, help_heading = "Admin API")]
    pub(crate) json: bool,
}

fn hidden_text(text: &str) -> Result<SecretText, std::convert::Infallible> {
    Ok(SecretText::new(text))
}

/// `callbox app`.
#[derive(Debug, Args)]
pub struct AppArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: AppCommand,
}

/// `callbox user`.
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: UserCommand,
}

/// `callbox session`.
#[derive(Debug, Args)]
pub struct SessionArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: SessionCommand,
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// Create an application and print its key and its first secret (shown this once).
    ///
    /// With --json, prints the application object with `applicationSecret` and `secretId` added.
    Create {
        /// Display name.
        #[arg(long, value_name = "NAME")]
        name: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// List the applications.
    List,
    /// Show an application's settings and secrets (ids and fingerprints, never the secrets).
    Show {
        /// Application key.
        #[arg(value_name = "KEY")]
        key: String,
    },
    /// Change an application's settings; only the options given are changed, from the next request on.
    #[command(group(ArgGroup::new("change").required(true).multiple(true).args([
        "name", "platform_user_auth", "allowed_origins", "clear_allowed_origins", "capabilities",
        "default_ticket_ttl", "max_ticket_ttl", "session_ttl", "clock_skew",
    ])))]
    Set {
        /// Application key.
        #[arg(value_name = "KEY")]
        key: String,
        /// New display name.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        #[command(flatten)]
        settings: Settings,
    },
    /// Add a new secret: it signs from now on, and every active secret keeps verifying until retired.
    RotateSecret {
        /// Application key.
        #[arg(value_name = "KEY")]
        key: String,
    },
    /// Retire a secret: tickets signed with it are refused from the next request on. The last active secret
    /// cannot be retired.
    RetireSecret {
        /// Application key.
        #[arg(value_name = "KEY")]
        key: String,
        /// Id of the secret (as `callbox app show` lists them).
        #[arg(value_name = "SECRET_ID")]
        secret_id: String,
    },
    /// Delete an application with its users, secrets and sessions.
    Delete {
        /// Application key.
        #[arg(value_name = "KEY")]
        key: String,
    },
}

/// Application settings; each one given is sent, the others are left alone.
#[derive(Debug, Args)]
struct Settings {
    /// Platform-managed users: whether browsers may sign users up and log them in with a password. While on,
    /// anyone who knows the application key can create an account; switch it off before going live.
    #[arg(long, value_name = "BOOL", value_parser = clap::value_parser!(bool))]
    platform_user_auth: Option<bool>,
    /// Browser origin allowed to call the client API, as scheme://host[:port] or `*`. Repeat for several;
    /// replaces the whole list.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// Remove every allowed origin.
    #[arg(long, conflicts_with = "allowed_origins")]
    clear_allowed_origins: bool,
    /// Capabilities the application may grant to sessions, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    capabilities: Option<Vec<Capability>>,
    /// Lifetime in seconds of a ticket without expiresIn (at most --max-ticket-ttl).
    #[arg(long, value_name = "SECS")]
    default_ticket_ttl: Option<u64>,
    /// Largest lifetime in seconds a ticket may ask for (at most 604800).
    #[arg(long, value_name = "SECS")]
    max_ticket_ttl: Option<u64>,
    /// Lifetime in seconds of a client session (60 to 2592000).
    #[arg(long, value_name = "SECS")]
    session_ttl: Option<u64>,
    /// Allowed clock difference in seconds between ticket makers and the server (at most 3600).
    #[arg(long, value_name = "SECS")]
    clock_skew: Option<u64>,
}

/// A capability an application can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Capability {
    /// Instant messages.
    Messaging,
    /// Voice calls.
    Calling,
    /// Video calls.
    Video,
}

impl Capability {
    fn as_str(self) -> &'static str {
        match self {
            Capability::Messaging => "messaging",
            Capability::Calling => "calling",
            Capability::Video => "video",
        }
    }
}

impl Settings {
    fn into_json(self, body: &mut Map<String, Value>) {
        if let Some(on) = self.platform_user_auth {
            body.insert("platformUserAuth".into(), json!(on));
        }
        if self.clear_allowed_origins {
            body.insert("allowedOrigins".into(), json!([]));
        } else if !self.allowed_origins.is_empty() {
            body.insert("allowedOrigins".into(), json!(self.allowed_origins));
        }
        if let Some(capabilities) = self.capabilities {
            let words: Vec<&str> = capabilities.iter().map(|capability| capability.as_str()).collect();
            body.insert("capabilities".into(), json!(words));
        }
        for (name, value) in [
            ("defaultTicketTtl", self.default_ticket_ttl),
            ("maxTicketTtl", self.max_ticket_ttl),
            ("sessionTtl", self.session_ttl),
            ("clockSkew", self.clock_skew),
        ] {
            if let Some(value) = value {
                body.insert(name.into(), json!(value));
            }
        }
    }
}

/// Where a user's password comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct PasswordSource {
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    /// The password (other local users can see it in the process list: prefer --password-stdin).
    #[arg(long, value_name = "PASSWORD", allow_hyphen_values = true, value_parser = hidden_text)]
    password: Option<SecretText>,
}

impl PasswordSource {
    fn read(self) -> anyhow::Result<String> {
        let password = match self.password {
            Some(password) => password.expose().to_owned(),
            None => {
                let stdin = std::io::stdin();
                if stdin.is_terminal() {
                    eprint!("password (shown as typed): ");
                }
                let mut line = String::new();
                stdin.lock().read_line(&mut line).context("could not read the password from standard input")?;
                line.trim_end_matches(['\n', '\r']).to_owned()
            }
        };
        if password.is_empty() {
            return Err(usage("the password is empty"));
        }
        Ok(password)
    }
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a platform-managed user.
    Add {
        /// Application key.
        #[arg(long = "app", value_name = "KEY")]
        app: String,
        /// User id (the identity's endpoint).
        #[arg(value_name = "USER", allow_hyphen_values = true)]
        user: String,
        #[command(flatten)]
        password: PasswordSource,
        /// Identity type of the user id (the server's default when absent).
        #[arg(long, value_enum, value_name = "TYPE")]
        identity_type: Option<IdentityKind>,
    },
    /// List platform-managed users.
    List {
        /// Application key.
        #[arg(long = "app", value_name = "KEY")]
        app: String,
        /// Only users whose id contains this text.
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
        /// At most this many users (server default 100, at most 1000).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Disable a user: they can no longer log in, and their sessions are revoked.
    Disable(UserTarget),
    /// Enable a disabled user.
    Enable(UserTarget),
    /// Remove a user and revoke their sessions.
    Remove(UserTarget),
    /// Set a user's password.
    SetPassword {
        /// Application key.
        #[arg(long = "app", value_name = "KEY")]
        app: String,
        /// User id.
        #[arg(value_name = "USER", allow_hyphen_values = true)]
        user: String,
        #[command(flatten)]
        password: PasswordSource,
    },
}

/// A user of an application.
#[derive(Debug, Args)]
struct UserTarget {
    /// Application key.
    #[arg(long = "app", value_name = "KEY")]
    app: String,
    /// User id.
    #[arg(value_name = "USER", allow_hyphen_values = true)]
    user: String,
}

#[derive(Debug, Subcommand)]
enum SessionCommand {
    /// List live sessions.
    List {
        /// Application key.
        #[arg(long = "app", value_name = "KEY")]
        app: String,
        /// Only this user's sessions.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// At most this many sessions.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Revoke one session, every session of a user, or every session created before a time.
    #[command(group(ArgGroup::new("which").required(true).args(["session_id", "user", "issued_before"])))]
    Revoke {
        /// Application key.
        #[arg(long = "app", value_name = "KEY")]
        app: String,
        /// Id of the session to revoke.
        #[arg(value_name = "SESSION_ID")]
        session_id: Option<String>,
        /// Revoke every session of this user.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Revoke every session created before this time, e.g. 2026-11-28T04:00:00Z.
        #[arg(long, value_name = "ISO-8601", value_parser = parse_time)]
        issued_before: Option<DateTime<Utc>>,
    },
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    callbox_core::time::parse_timestamp(text)
        .ok_or_else(|| "expected an ISO-8601 time such as 2026-11-28T04:00:00Z".into())
}

/// A PROTOCOL §7 error answered by the server.
#[derive(Debug)]
struct ApiError {
    reason: String,
    message: String,
    hint: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// An authenticated admin API client.
pub(crate) struct Client {
    http: reqwest::Client,
    /// The server URL without a trailing slash.
    base: String,
    token: String,
    /// Where the token came from, for the hint when the server refuses it.
    token_source: String,
}

impl Client {
    pub(crate) fn new(connection: &Connection) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(&connection.server)
            .map_err(|error| usage(format!("--server {}: not a URL ({error})", connection.server)))?;
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(usage(format!(
                    "--server {}: https is not supported yet (this build speaks plain http only); use an http:// \
                     URL through an SSH tunnel or a private network",
                    connection.server
                )))
            }
            other => return Err(usage(format!("--server {}: unsupported scheme {other}:", connection.server))),
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(usage(format!("--server {}: must not have a query or a fragment", connection.server)));
        }
        let base = url.as_str().trim_end_matches('/').to_owned();
        let (token, token_source) = match &connection.admin_token {
            Some(token) => (token.expose().trim().to_owned(), "--admin-token or CALLBOX_ADMIN_TOKEN".to_owned()),
            None => {
                let path = connection.data.join("admin-token");
                let text = std::fs::read_to_string(&path).map_err(|error| {
                    usage(format!(
                        "no admin token: pass --admin-token or set CALLBOX_ADMIN_TOKEN, or point --data (CALLBOX_DATA) \
                         at the server's data directory (cannot read {}: {error})",
                        path.display()
                    ))
                })?;
                (text.trim().to_owned(), path.display().to_string())
            }
        };
        if token.is_empty() {
            return Err(usage(format!("the admin token from {token_source} is empty")));
        }
        if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(usage(format!("the admin token from {token_source} has characters a header cannot carry")));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("callbox/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .context("could not set up the HTTP client")?;
        Ok(Self { http, base, token, token_source })
    }

    /// Sends one admin call; `Ok(None)` for an empty answer (204).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> anyhow::Result<Option<Value>> {
        let url = format!("{}/admin/v1{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|error| self.transport_error(&error))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|error| self.transport_error(&error))?;
        if status.is_success() {
            if status == StatusCode::NO_CONTENT || bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            return serde_json::from_slice(&bytes).map(Some).map_err(|_| {
                anyhow!(
                    "the server at {} answered {status} with a body that is not JSON: {}",
                    self.base,
                    snippet(&bytes)
                )
            });
        }
        Err(self.api_error(status, &bytes))
    }

    pub(crate) async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.call(Method::GET, path, query, None).await?.ok_or_else(|| self.empty_answer(path))
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(method, path, &[], Some(body)).await?.ok_or_else(|| self.empty_answer(path))
    }

    fn empty_answer(&self, path: &str) -> anyhow::Error {
        anyhow!("the server at {} gave an empty answer to /admin/v1{path}", self.base)
    }

    fn transport_error(&self, error: &reqwest::Error) -> anyhow::Error {
        let mut cause: &dyn std::error::Error = error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        if error.is_connect() {
            anyhow!(
                "cannot connect to the Callbox server at {}: {cause} (is it running? set --server or CALLBOX_URL)",
                self.base
            )
        } else if error.is_timeout() {
            anyhow!("the Callbox server at {} did not answer in time", self.base)
        } else {
            anyhow!("the request to the Callbox server at {} failed: {cause}", self.base)
        }
    }

    fn api_error(&self, status: StatusCode, bytes: &[u8]) -> anyhow::Error {
        let body: Option<Value> = serde_json::from_slice(bytes).ok();
        let text =
            |name: &str| body.as_ref().and_then(|body| body.get(name)).and_then(Value::as_str).map(str::to_owned);
        match (text("reason"), text("message")) {
            (Some(reason), message) => {
                let mut message = message.unwrap_or_else(|| format!("HTTP {status}"));
                if let Some(seconds) = body.as_ref().and_then(|body| body.get("retryAfter")).and_then(Value::as_u64) {
                    message.push_str(&format!(" (retry after {seconds} s)"));
                }
                let hint = (reason == "invalid_admin_token")
                    .then(|| format!("the admin token was taken from {}", self.token_source));
                anyhow::Error::new(ApiError { reason, message, hint })
            }
            (None, _) => anyhow!("the server at {} answered HTTP {status}: {}", self.base, snippet(bytes)),
        }
    }
}

/// The start of a body, on one line, for error messages.
fn snippet(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes).split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None if text.is_empty() => "(empty body)".into(),
        None => text,
    }
}

/// Percent-encodes one path segment (an application key, user id, secret or session id).
pub(crate) fn segment(what: &str, value: &str) -> anyhow::Result<String> {
    if value.is_empty() {
        return Err(usage(format!("the {what} must not be empty")));
    }
    // URLs resolve `.` and `..` segments (even percent-encoded), so these can never reach the server as ids.
    if value == "." || value == ".." {
        return Err(usage(format!("the {what} {value:?} cannot be addressed in a URL path")));
    }
    Ok(utf8_percent_encode(value, SEGMENT).to_string())
}

pub(crate) fn app_path(key: &str) -> anyhow::Result<String> {
    Ok(format!("/apps/{}", segment("application key", key)?))
}

pub(crate) fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A JSON value as a table cell: strings bare, null as `-`, arrays comma-separated.
pub(crate) fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) if items.is_empty() => "(none)".into(),
        Some(Value::Array(items)) => items.iter().map(|item| cell(Some(item))).collect::<Vec<_>>().join(", "),
        Some(Value::Bool(true)) => "on".into(),
        Some(Value::Bool(false)) => "off".into(),
        Some(other) => other.to_string(),
    }
}

pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.chars().count()).collect();
    for row in rows {
        for (width, value) in widths.iter_mut().zip(row) {
            *width = (*width).max(value.chars().count());
        }
    }
    let line = |values: Vec<String>| {
        let cells: Vec<String> = values.iter().zip(&widths).map(|(value, width)| format!("{value:<width$}")).collect();
        println!("{}", cells.join("  ").trim_end());
    };
    line(headers.iter().map(|header| (*header).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

pub(crate) fn list<'a>(body: &'a Value, field: &str) -> &'a [Value] {
    body.get(field).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn warn_platform_user_auth(app: &Value) {
    if app.get("platformUserAuth").and_then(Value::as_bool) == Some(true) {
        let key = cell(app.get("applicationKey"));
        eprintln!(
            "WARNING: platform-managed users are ON: anyone who knows the application key can sign up and log in. \
             Switch it off before going live: callbox app set {key} --platform-user-auth false"
        );
    }
}

fn print_app(app: &Value) {
    let field = |name: &str| cell(app.get(name));
    let seconds = |name: &str| match app.get(name) {
        Some(Value::Number(number)) => format!("{number} s"),
        other => cell(other),
    };
    println!("{:<23}{}", "application key", field("applicationKey"));
    println!("{:<23}{}", "name", field("name"));
    println!("{:<23}{}", "created", field("createdAt"));
    println!("{:<23}{}", "platform-managed users", field("platformUserAuth"));
    println!("{:<23}{}", "allowed origins", field("allowedOrigins"));
    println!("{:<23}{}", "capabilities", field("capabilities"));
    println!("{:<23}{}", "default ticket TTL", seconds("defaultTicketTtl"));
    println!("{:<23}{}", "max ticket TTL", seconds("maxTicketTtl"));
    println!("{:<23}{}", "session TTL", seconds("sessionTtl"));
    println!("{:<23}{}", "clock skew", seconds("clockSkew"));
    let secrets = list(app, "secrets");
    println!("{:<23}{}", "secrets", secrets.len());
    for secret in secrets {
        let last_used = match secret.get("lastUsedAt") {
            None | Some(Value::Null) => "never".to_owned(),
            other => cell(other),
        };
        println!(
            "  {}  fingerprint {}  created {}  last used {last_used}",
            cell(secret.get("id")),
            cell(secret.get("fingerprint")),
            cell(secret.get("createdAt")),
        );
    }
    warn_platform_user_auth(app);
}

/// Runs a `callbox app` subcommand.
pub async fn run_app(args: AppArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.connection)?;
    let json_out = args.connection.json;
    match args.command {
        AppCommand::Create { name, settings } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            settings.into_json(&mut body);
            let answer = client.send(Method::POST, "/apps", Value::Object(body)).await?;
            let mut flat = answer.get("application").and_then(Value::as_object).cloned().unwrap_or_default();
            for name in ["applicationSecret", "secretId"] {
                if let Some(value) = answer.get(name) {
                    flat.insert(name.into(), value.clone());
                }
            }
            let flat = Value::Object(flat);
            if json_out {
                print_json(&flat)?;
                warn_platform_user_auth(&flat);
            } else {
                println!("Created application {}", cell(flat.get("name")));
                println!("  application key:    {}", cell(flat.get("applicationKey")));
                println!("  application secret: {}", cell(flat.get("applicationSecret")));
                println!("  secret id:          {}", cell(flat.get("secretId")));
                println!("The secret is shown this once: put it in your backend's configuration now.");
                warn_platform_user_auth(&flat);
            }
        }
        AppCommand::List => {
            let answer = client.get("/apps", &[]).await?;
            if json_out {
                return print_json(&answer).map(|()| ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list(&answer, "applications")
                .iter()
                .map(|app| {
                    vec![
                        cell(app.get("applicationKey")),
                        cell(app.get("name")),
                        cell(app.get("platformUserAuth")),
                        list(app, "secrets").len().to_string(),
                        cell(app.get("createdAt")),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("No applications yet: create one with callbox app create --name NAME");
            } else {
                print_table(&["KEY", "NAME", "PLATFORM USERS", "SECRETS", "CREATED"], &rows);
            }
        }
        AppCommand::Show { key } => {
            let answer = client.get(&app_path(&key)?, &[]).await?;
            if json_out {
                print_json(&answer)?;
            } else {
                print_app(&answer);
            }
        }
        AppCommand::Set { key, name, settings } => {
            let path = app_path(&key)?;
            let mut body = Map::new();
            if let Some(name) = name {
                body.insert("name".into(), json!(name));
            }
            settings.into_json(&mut body);
            let answer = client.send(Method::PATCH, &path, Value::Object(body)).await?;
            if json_out {
                print_json(&answer)?;
            } else {
                println!("Updated application {key}:");
                print_app(&answer);
            }
        }
        AppCommand::RotateSecret { key } => {
            let path = format!("{}/secrets", app_path(&key)?);
            let answer = client.send(Method::POST, &path, json!({})).await?;
            if json_out {
                print_json(&answer)?;
            } else {
                println!("New secret {} for application {key}", cell(answer.get("secretId")));
                println!("  application secret: {}", cell(answer.get("applicationSecret")));
                println!("It signs from now on and is shown this once; every active secret still verifies.");
                println!("Once your backend uses it, retire the old one (callbox app show {key} lists them):");
                println!("  callbox app retire-secret {key} OLD_SECRET_ID");
            }
        }
        AppCommand::RetireSecret { key, secret_id } => {
            let path = format!("{}/secrets/{}", app_path(&key)?, segment("secret id", &secret_id)?);
            finish_empty(client.call(Method::DELETE, &path, &[], None).await?, json_out, || {
                format!("Retired secret {secret_id} of application {key}: tickets signed with it are now refused.")
            })?;
        }
        AppCommand::Delete { key } => {
            let path = app_path(&key)?;
            finish_empty(client.call(Method::DELETE, &path, &[], None).await?, json_out, || {
                format!("Deleted application {key} with its users, secrets and sessions.")
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Ends a command whose answer is normally empty: prints `done` in text mode, any body the server did send in
/// JSON mode.
fn finish_empty(answer: Option<Value>, json_out: bool, done: impl FnOnce() -> String) -> anyhow::Result<()> {
    match answer {
        Some(body) if json_out => print_json(&body),
        _ if json_out => Ok(()),
        _ => {
            println!("{}", done());
            Ok(())
        }
    }
}

fn user_path(app: &str, user: &str) -> anyhow::Result<String> {
    Ok(format!("{}/users/{}", app_path(app)?, segment("user id", user)?))
}

fn print_user_line(verb: &str, user: &Value) {
    let status = if user.get("disabled").and_then(Value::as_bool) == Some(true) { "disabled" } else { "enabled" };
    println!("{verb} user {} ({}, {status})", cell(user.get("userId")), cell(user.get("identityType")));
}

/// Runs a `callbox user` subcommand.
pub async fn run_user(args: UserArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.connection)?;
    let json_out = args.connection.json;
    match args.command {
        UserCommand::Add { app, user, password, identity_type } => {
            let path = format!("{}/users", app_path(&app)?);
            let mut body = json!({ "userId": user, "password": password.read()? });
            if let Some(kind) = identity_type {
                body["identityType"] = json!(callbox_core::IdentityType::from(kind).as_str());
            }
            let answer = client.send(Method::POST, &path, body).await?;
            if json_out {
                print_json(&answer)?;
            } else {
                print_user_line("Added", &answer);
            }
        }
        UserCommand::List { app, search, limit } => {
            let path = format!("{}/users", app_path(&app)?);
            let mut query = Vec::new();
            if let Some(search) = search {
                query.push(("search", search));
            }
            if let Some(limit) = limit {
                query.push(("limit", limit.to_string()));
            }
            let answer = client.get(&path, &query).await?;
            if json_out {
                return print_json(&answer).map(|()| ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list(&answer, "users")
                .iter()
                .map(|user| {
                    let disabled = user.get("disabled").and_then(Value::as_bool) == Some(true);
                    vec![
                        cell(user.get("userId")),
                        cell(user.get("identityType")),
                        if disabled { "disabled" } else { "enabled" }.to_owned(),
                        cell(user.get("createdAt")),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("No users.");
            } else {
                print_table(&["USER", "TYPE", "STATUS", "CREATED"], &rows);
            }
        }
        UserCommand::Disable(UserTarget { app, user }) => {
            let path = format!("{}/disable", user_path(&app, &user)?);
            let answer = client.send(Method::POST, &path, json!({})).await?;
            if json_out {
                print_json(&answer)?;
            } else {
                print_user_line("Disabled", &answer);
                println!("Their sessions were revoked.");
            }
        }
        UserCommand::Enable(UserTarget { app, user }) => {
            let path = format!("{}/enable", user_path(&app, &user)?);
            let answer = client.send(Method::POST, &path, json!({})).await?;
            if json_out {
                print_json(&answer)?;
            } else {
                print_user_line("Enabled", &answer);
            }
        }
        UserCommand::Remove(UserTarget { app, user }) => {
            let path = user_path(&app, &user)?;
            finish_empty(client.call(Method::DELETE, &path, &[], None).await?, json_out, || {
                format!("Removed user {user} and revoked their sessions.")
            })?;
        }
        UserCommand::SetPassword { app, user, password } => {
            let path = format!("{}/password", user_path(&app, &user)?);
            let body = json!({ "password": password.read()? });
            finish_empty(client.call(Method::PUT, &path, &[], Some(body)).await?, json_out, || {
                format!("Set the password of user {user}.")
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `callbox session` subcommand.
pub async fn run_session(args: SessionArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.connection)?;
    let json_out = args.connection.json;
    match args.command {
        SessionCommand::List { app, user, limit } => {
            let path = format!("{}/sessions", app_path(&app)?);
            let mut query = Vec::new();
            if let Some(user) = user {
                query.push(("userId", user));
            }
            if let Some(limit) = limit {
                query.push(("limit", limit.to_string()));
            }
            let answer = client.get(&path, &query).await?;
            if json_out {
                return print_json(&answer).map(|()| ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list(&answer, "sessions")
                .iter()
                .map(|session| {
                    vec![
                        cell(session.get("id")),
                        cell(session.get("userId")),
                        cell(session.get("capabilities")),
                        cell(session.get("createdAt")),
                        cell(session.get("expiresAt")),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("No live sessions.");
            } else {
                print_table(&["ID", "USER", "CAPABILITIES", "CREATED", "EXPIRES"], &rows);
            }
        }
        SessionCommand::Revoke { app, session_id, user, issued_before } => {
            let base = format!("{}/sessions", app_path(&app)?);
            if let Some(id) = session_id {
                let path = format!("{base}/{}", segment("session id", &id)?);
                finish_empty(client.call(Method::DELETE, &path, &[], None).await?, json_out, || {
                    format!("Revoked session {id}.")
                })?;
                return Ok(ExitCode::SUCCESS);
            }
            let body = match (user, issued_before) {
                (Some(user), _) => json!({ "userId": user }),
                (None, Some(before)) => json!({ "issuedBefore": callbox_core::time::format_iso_seconds(before) }),
                (None, None) => return Err(usage("give a SESSION_ID, --user or --issued-before")),
            };
            let answer = client.send(Method::POST, &format!("{base}/revoke"), body).await?;
            if json_out {
                print_json(&answer)?;
            } else {
                println!("Revoked {} session(s).", cell(answer.get("revoked")));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
