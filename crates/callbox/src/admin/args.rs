//! The command line of `callbox app`, `callbox user` and `callbox session` (clap definitions), and how each
//! option becomes a request body.

use crate::ticket::{IdentityKind, SecretText};
use crate::usage;
use anyhow::Context;
use callbox_core::Capability;
use callbox_wire::admin::AppSettingsPatch;
use callbox_wire::SecretString;
use chrono::{DateTime, Utc};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Args, Subcommand};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

/// How to reach the admin API; shared by `app`, `user` and `session`.
#[derive(Debug, Args)]
pub(crate) struct Connection {
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
    pub(crate) server: String,
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
    pub(crate) admin_token: Option<SecretText>,
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
    pub(crate) data: PathBuf,
    /// Print the server's JSON answer instead of text (commands whose answer is empty print nothing).
    #[arg(long, global = true, help_heading = "Admin API")]
    pub(crate) json: bool,
}

/// Reads a credential argument into a value that `Debug` redacts.
fn hidden_text(text: &str) -> Result<SecretText, std::convert::Infallible> {
    Ok(SecretText::new(text))
}

/// `callbox app`.
#[derive(Debug, Args)]
pub struct AppArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(subcommand)]
    pub(crate) command: AppCommand,
}

/// `callbox user`.
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(subcommand)]
    pub(crate) command: UserCommand,
}

/// `callbox session`.
#[derive(Debug, Args)]
pub struct SessionArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(subcommand)]
    pub(crate) command: SessionCommand,
}

/// `callbox call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(subcommand)]
    pub(crate) command: CallCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AppCommand {
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
pub(crate) struct Settings {
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
    #[arg(long, value_parser = capability_parser(), value_delimiter = ',', value_name = "LIST")]
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

impl Settings {
    /// The settings given, as the body of `PATCH /admin/v1/apps/{key}` (or, without the name, the settings of
    /// `POST /admin/v1/apps`).
    pub(crate) fn into_patch(self, name: Option<String>) -> AppSettingsPatch {
        let allowed_origins = if self.clear_allowed_origins {
            Some(Vec::new())
        } else if self.allowed_origins.is_empty() {
            None
        } else {
            Some(self.allowed_origins)
        };
        AppSettingsPatch {
            name,
            platform_user_auth: self.platform_user_auth,
            allowed_origins,
            capabilities: self.capabilities,
            default_ticket_ttl: self.default_ticket_ttl,
            max_ticket_ttl: self.max_ticket_ttl,
            session_ttl: self.session_ttl,
            clock_skew: self.clock_skew,
        }
    }
}

/// What `--capabilities` says about a capability in `--help`.
fn capability_help(capability: Capability) -> &'static str {
    match capability {
        Capability::Messaging => "Instant messages",
        Capability::Calling => "Voice calls",
        Capability::Video => "Video calls",
    }
}

/// Parses one capability word with the core's own parser. The words are also given to clap as possible values,
/// so `--help` lists them and a wrong word gets clap's message with the list (and a "similar value" tip).
fn capability_parser() -> impl TypedValueParser<Value = Capability> {
    let words =
        Capability::ALL.map(|capability| PossibleValue::new(capability.as_str()).help(capability_help(capability)));
    PossibleValuesParser::new(words)
        .try_map(|word| Capability::parse(&word).ok_or_else(|| format!("unknown capability {word:?}")))
}

/// Where a user's password comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct PasswordSource {
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    /// The password (other local users can see it in the process list: prefer --password-stdin).
    #[arg(long, value_name = "PASSWORD", allow_hyphen_values = true, value_parser = hidden_text)]
    password: Option<SecretText>,
}

impl PasswordSource {
    /// The password, from the command line or the first line of standard input; never empty.
    pub(crate) fn read(self) -> anyhow::Result<SecretString> {
        let password = match self.password {
            Some(password) => SecretString::new(password.expose()),
            None => {
                let stdin = std::io::stdin();
                if stdin.is_terminal() {
                    eprint!("password (shown as typed): ");
                }
                let mut line = SecretString::default();
                stdin.lock().read_line(&mut line.0).context("could not read the password from standard input")?;
                let length = line.expose().trim_end_matches(['\n', '\r']).len();
                line.0.truncate(length);
                line
            }
        };
        if password.expose().is_empty() {
            return Err(usage("the password is empty"));
        }
        Ok(password)
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
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
pub(crate) struct UserTarget {
    /// Application key.
    #[arg(long = "app", value_name = "KEY")]
    pub(crate) app: String,
    /// User id.
    #[arg(value_name = "USER", allow_hyphen_values = true)]
    pub(crate) user: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SessionCommand {
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

#[derive(Debug, Subcommand)]
pub(crate) enum CallCommand {
    /// List an application's recent calls, newest first (the call records of docs/calls.md section 5).
    List {
        /// Application key.
        #[arg(long = "app", value_name = "KEY")]
        app: String,
        /// Only the calls this user placed or received.
        #[arg(long, value_name = "USER", allow_hyphen_values = true)]
        user: Option<String>,
        /// At most this many calls (server default 50, at most 500).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    callbox_core::time::parse_timestamp(text)
        .ok_or_else(|| "expected an ISO-8601 time such as 2026-11-28T04:00:00Z".into())
}
