//! `callbox ticket`: the ticket debugger. Mints, decodes and verifies legacy user tickets (PROTOCOL §2) and
//! registration JWTs (PROTOCOL §3) offline, with the same code the server runs.

use crate::usage;
use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use callbox_core::jwt::NewRegistrationJwt;
use callbox_core::ticket::NewTicket;
use callbox_core::{diagnose, AnyTicket, Check, Diagnosis, Identity, IdentityType, Reason, Secret, TicketPolicy};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use std::fmt;
use std::io::Read;
use std::process::ExitCode;

/// Largest input read from standard input; tickets are refused above 8 KiB anyway.
const MAX_STDIN_BYTES: u64 = 1024 * 1024;

/// The `callbox ticket` subcommands.
#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// Make a ticket the way a customer's backend does (for tests and for reproducing a problem).
    ///
    /// Legacy tickets are printed as the `{"userTicket":"..."}` object the client passes to start(); JWTs are
    /// printed bare.
    #[command(override_usage = "callbox ticket mint --key <KEY> --secret <SECRET> --user <ID> [--ttl <SECS>] \
                          [--created <ISO-8601>] [OPTIONS]")]
    Mint(MintArgs),
    /// Decode a ticket of either format without checking its signature, and print its claims as JSON.
    ///
    /// Exit status 1 (with the reason as JSON on standard output) when it cannot be decoded.
    Inspect(InspectArgs),
    /// Run every check the server runs on a ticket and print the diagnosis as JSON.
    ///
    /// Checks the format, the application key, the signature against each --secret, and the validity window.
    /// The single use of a nonce is not checked (only the server knows which nonces it has seen).
    /// Exit status 0 when the ticket is valid, 1 when it is not.
    Verify(VerifyArgs),
}

/// A secret as typed on the command line: never shown by `Debug`, validated after parsing so that no error
/// message can echo it.
#[derive(Clone)]
pub struct SecretText(String);

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

impl SecretText {
    /// Wraps command-line text.
    pub fn new(text: &str) -> Self {
        Self(text.to_owned())
    }

    /// The text itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn decode(&self, what: &str) -> anyhow::Result<Secret> {
        Secret::from_base64(&self.0).map_err(|error| usage(format!("{what}: {error}")))
    }
}

fn secret_text(text: &str) -> Result<SecretText, std::convert::Infallible> {
    Ok(SecretText(text.to_owned()))
}

fn parse_at(text: &str) -> Result<DateTime<Utc>, String> {
    callbox_core::time::parse_timestamp(text)
        .ok_or_else(|| "expected an ISO-8601 time such as 2014-06-04T13:41:58.000Z".to_owned())
}

/// Ticket format to mint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `base64(json):base64(hmac)`, wrapped as {"userTicket":"..."} (PROTOCOL §2).
    Legacy,
    /// Registration JWT, HS256 with an hkdfv1-YYYYMMDD kid (PROTOCOL §3).
    Jwt,
}

/// `identity.type` of a legacy ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdentityKind {
    /// A username.
    Username,
    /// An e-mail address.
    Email,
    /// A phone number.
    Number,
}

impl From<IdentityKind> for IdentityType {
    fn from(kind: IdentityKind) -> Self {
        match kind {
            IdentityKind::Username => IdentityType::Username,
            IdentityKind::Email => IdentityType::Email,
            IdentityKind::Number => IdentityType::Number,
        }
    }
}

/// Options of `callbox ticket mint`.
#[derive(Debug, Args)]
pub struct MintArgs {
    /// Application key.
    #[arg(long, value_name = "KEY")]
    key: String,
    /// Application secret: standard base64 of 16 to 64 bytes, as the admin API hands it out.
    #[arg(
        long,
        value_name = "SECRET",
        env = "CALLBOX_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true,
        value_parser = secret_text
    )]
    secret: SecretText,
    /// User id (`identity.endpoint` of a legacy ticket, the end of `sub` of a JWT).
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    user: String,
    /// Lifetime in seconds (legacy: written as expiresIn; JWT: exp - iat, at least 60).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    ttl: u64,
    /// Add a random single-use nonce (a UUID v4) to a legacy ticket. JWTs always carry one.
    #[arg(long)]
    nonce: bool,
    /// Ticket format.
    #[arg(long, value_enum, default_value_t = Format::Legacy)]
    format: Format,
    /// Identity type of a legacy ticket (JWT users are always usernames).
    #[arg(long, value_enum, value_name = "TYPE", default_value_t = IdentityKind::Username)]
    identity_type: IdentityKind,
    /// Creation time (legacy `created`, JWT `iat` and kid date) instead of now, e.g. 2014-06-04T13:41:58.000Z.
    /// Named after the ticket's own field; `--at` is the older name and still works.
    #[arg(long, visible_alias = "at", value_name = "ISO-8601", value_parser = parse_at)]
    created: Option<DateTime<Utc>>,
}

/// Options of `callbox ticket inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The ticket, a JWT, or the {"userTicket":"..."} / {"jwt":"..."} object that carries it; `-` reads it from
    /// standard input.
    #[arg(value_name = "TICKET", allow_hyphen_values = true)]
    ticket: String,
}

/// Options of `callbox ticket verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Application key the ticket must be for.
    #[arg(long, value_name = "KEY")]
    key: String,
    /// Application secret (standard base64 of 16 to 64 bytes). Repeat it to check against every active secret
    /// during a rotation, as the server does.
    #[arg(
        long = "secret",
        value_name = "SECRET",
        required = true,
        env = "CALLBOX_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true,
        value_parser = secret_text
    )]
    secrets: Vec<SecretText>,
    /// Check as of this time instead of now, e.g. 2014-06-04T13:41:58Z.
    #[arg(long, value_name = "ISO-8601", value_parser = parse_at)]
    at: Option<DateTime<Utc>>,
    /// Allowed clock difference in seconds, on both ends of the validity window.
    #[arg(long, value_name = "SECS", default_value_t = TicketPolicy::default().skew)]
    skew: u64,
    /// Lifetime in seconds of a legacy ticket that carries no expiresIn.
    #[arg(long, value_name = "SECS", default_value_t = TicketPolicy::default().default_ttl)]
    default_ttl: u64,
    /// Largest lifetime in seconds a ticket may ask for.
    #[arg(long, value_name = "SECS", default_value_t = TicketPolicy::default().max_ttl)]
    max_ttl: u64,
    /// The ticket, a JWT, or the {"userTicket":"..."} / {"jwt":"..."} object that carries it; `-` reads it from
    /// standard input.
    #[arg(value_name = "TICKET", allow_hyphen_values = true)]
    ticket: String,
}

/// Runs a `callbox ticket` subcommand.
pub fn run(command: TicketCommand) -> anyhow::Result<ExitCode> {
    match command {
        TicketCommand::Mint(args) => mint(args),
        TicketCommand::Inspect(args) => inspect(args),
        TicketCommand::Verify(args) => verify(args),
    }
}

fn mint(args: MintArgs) -> anyhow::Result<ExitCode> {
    let secret = args.secret.decode("--secret")?;
    if args.key.is_empty() {
        return Err(usage("--key must not be empty"));
    }
    if !callbox_core::is_valid_user_id(&args.user) {
        return Err(usage("--user must be 1 to 255 bytes without control characters"));
    }
    let created = args.created.unwrap_or_else(Utc::now);
    let max_ttl = TicketPolicy::default().max_ttl;
    if args.ttl > max_ttl {
        eprintln!(
            "note: --ttl {} is above the default maximum ticket lifetime ({max_ttl} s); the server refuses it \
             (ticket_ttl_exceeds_max) unless the application's maxTicketTtl allows it",
            args.ttl
        );
    }
    match args.format {
        Format::Legacy => {
            let ticket = NewTicket {
                application_key: args.key,
                identity: Identity { kind: args.identity_type.into(), endpoint: args.user },
                created,
                expires_in: Some(args.ttl),
                nonce: args.nonce.then(new_nonce),
            };
            let ticket = callbox_core::ticket::mint(&ticket, &secret);
            println!("{}", serde_json::json!({ "userTicket": ticket }));
        }
        Format::Jwt => {
            if args.identity_type != IdentityKind::Username {
                return Err(usage("--identity-type: registration JWTs only carry usernames"));
            }
            if args.ttl < callbox_core::jwt::MIN_JWT_TTL {
                return Err(usage(format!(
                    "--ttl: a registration JWT must live at least {} s",
                    callbox_core::jwt::MIN_JWT_TTL
                )));
            }
            let jwt = NewRegistrationJwt {
                application_key: args.key,
                user_id: args.user,
                issued_at: created,
                ttl: args.ttl,
                nonce: new_nonce(),
            };
            let token = callbox_core::jwt::mint(&jwt, &secret).context("could not make the JWT")?;
            println!("{token}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn new_nonce() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// What `inspect` prints for a ticket that decodes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inspection {
    format: callbox_core::TicketFormat,
    application_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<serde_json::Value>,
    claims: serde_json::Value,
}

/// What `inspect` prints for one that does not.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Undecodable {
    format: Option<callbox_core::TicketFormat>,
    valid: bool,
    reason: &'static str,
    message: String,
}

fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let input = read_input(&args.ticket)?;
    let refused = |format, reason: Reason, message: String| -> anyhow::Result<ExitCode> {
        let out = Undecodable { format, valid: false, reason: reason.as_str(), message };
        println!("{}", serde_json::to_string_pretty(&out)?);
        Ok(ExitCode::FAILURE)
    };
    let text = match unwrap_ticket(&input) {
        Ok(text) => text,
        Err(message) => return refused(None, Reason::MalformedTicket, message),
    };
    let ticket = match AnyTicket::decode(&text) {
        Ok(ticket) => ticket,
        Err(error) => return refused(None, error.reason(), error.to_string()),
    };
    let claims = match ticket.claims_json() {
        Ok(claims) => claims,
        Err(error) => return refused(Some(ticket.format()), error.reason(), error.to_string()),
    };
    let header = match ticket {
        AnyTicket::Jwt(_) => jwt_header(&text),
        AnyTicket::Legacy(_) => None,
    };
    let out = Inspection { format: ticket.format(), application_key: ticket.peek_application_key(), header, claims };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

/// The decoded JOSE header (alg, kid, ...) of a JWT that already passed [`AnyTicket::decode`].
fn jwt_header(token: &str) -> Option<serde_json::Value> {
    let encoded = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let secrets = args
        .secrets
        .iter()
        .enumerate()
        .map(|(index, text)| text.decode(&format!("--secret #{}", index + 1)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.key.is_empty() {
        return Err(usage("--key must not be empty"));
    }
    let policy = TicketPolicy { default_ttl: args.default_ttl, max_ttl: args.max_ttl, skew: args.skew };
    let now = args.at.unwrap_or_else(Utc::now);
    let input = read_input(&args.ticket)?;
    let diagnosis = match unwrap_ticket(&input) {
        Ok(text) => diagnose(&text, &args.key, &secrets, &policy, now),
        Err(message) => Diagnosis {
            format: None,
            claims: None,
            checks: vec![Check { name: "format", passed: Some(false), detail: message.clone() }],
            valid: false,
            reason: Some(Reason::MalformedTicket.as_str()),
            message: Some(message),
        },
    };
    println!("{}", serde_json::to_string_pretty(&diagnosis)?);
    Ok(if diagnosis.valid { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The TICKET argument, or standard input when it is `-`.
fn read_input(arg: &str) -> anyhow::Result<String> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_STDIN_BYTES)
        .read_to_end(&mut bytes)
        .context("could not read the ticket from standard input")?;
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("standard input is not UTF-8 text"))
}

/// Takes the ticket out of what a developer is likely to paste: the bare ticket or JWT, the
/// `{"userTicket":"..."}` or `{"jwt":"..."}` object, a JSON string, or an `Authorization` value
/// (`User <ticket>`, `Bearer <jwt>`). `Err` says why nothing could be taken out.
fn unwrap_ticket(input: &str) -> Result<String, String> {
    let text = input.trim();
    if text.starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|_| "the input starts with '{' but is not a JSON object".to_owned())?;
        let object = value.as_object().ok_or_else(|| "the input is not a JSON object".to_owned())?;
        return object
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("userTicket") || name.eq_ignore_ascii_case("jwt"))
            .and_then(|(_, value)| value.as_str())
            .map(|ticket| ticket.trim().to_owned())
            .ok_or_else(|| "the JSON object has no \"userTicket\" or \"jwt\" string field".to_owned());
    }
    if text.starts_with('"') {
        return serde_json::from_str::<String>(text)
            .map(|ticket| ticket.trim().to_owned())
            .map_err(|_| "the input starts with '\"' but is not a JSON string".to_owned());
    }
    for scheme in ["User ", "Bearer "] {
        if text.len() > scheme.len() && text.is_char_boundary(scheme.len()) {
            let (head, rest) = text.split_at(scheme.len());
            if head.eq_ignore_ascii_case(scheme) {
                return Ok(rest.trim().to_owned());
            }
        }
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::unwrap_ticket;

    #[test]
    fn unwraps_what_developers_paste() {
        assert_eq!(unwrap_ticket("  abc:def\n").unwrap(), "abc:def");
        assert_eq!(unwrap_ticket("{\"userTicket\":\"abc:def\"}\n").unwrap(), "abc:def");
        assert_eq!(unwrap_ticket("{\"userticket\": \" abc:def \"}").unwrap(), "abc:def");
        assert_eq!(unwrap_ticket("{\"jwt\":\"a.b.c\"}").unwrap(), "a.b.c");
        assert_eq!(unwrap_ticket("\"a.b.c\"").unwrap(), "a.b.c");
        assert_eq!(unwrap_ticket("user abc:def").unwrap(), "abc:def");
        assert_eq!(unwrap_ticket("Bearer a.b.c").unwrap(), "a.b.c");
        assert!(unwrap_ticket("{\"ticket\":\"abc\"}").is_err());
        assert!(unwrap_ticket("{not json").is_err());
        assert!(unwrap_ticket("{\"userTicket\":5}").is_err());
    }
}
