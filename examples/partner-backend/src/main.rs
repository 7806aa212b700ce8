//! A sample "application server" for Callbox: it keeps its own users (argon2id password hashes), and when one
//! logs in at `POST /auth` it answers `{"userTicket": ...}`, a legacy user ticket (PROTOCOL §2) signed with the
//! application secret by `callbox_core::ticket::mint`. The browser passes that ticket to the SDK's `start()`,
//! which exchanges it with Callbox for a session. `GET /` is a page doing exactly that.
//!
//! ```sh
//! partner-backend --callbox-url http://127.0.0.1:8080 --app-key KEY --user alice:somethingSecure
//! # with PARTNER_APP_SECRET=... in the environment; prints {"event":"listening","url":...} once bound
//! ```

use anyhow::{bail, Context as _};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use callbox_core::ticket::{mint, NewTicket};
use callbox_core::{Identity, IdentityType, Secret};
use clap::Parser;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

const PAGE: &str = include_str!("../static/index.html");
const PAGE_JS: &str = include_str!("../static/app.js");

/// A sample application server that logs its own users in and hands them Callbox user tickets.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Callbox's base URL, as the browser reaches it.
    #[arg(long, env = "CALLBOX_URL", default_value = "http://127.0.0.1:8080")]
    callbox_url: String,
    /// The application key (from `callbox app create`).
    #[arg(long, env = "PARTNER_APP_KEY")]
    app_key: String,
    /// The application secret (base64); prefer the environment variable to the flag, which `ps` shows.
    #[arg(long, env = "PARTNER_APP_SECRET", hide_env_values = true)]
    app_secret: String,
    /// Address to listen on; port 0 picks a free port (the `listening` line tells which).
    #[arg(long, env = "PARTNER_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// A user of this backend, `name:password`; repeat, or comma-separate in the environment variable.
    #[arg(long = "user", env = "PARTNER_USERS", value_delimiter = ',', hide_env_values = true)]
    users: Vec<String>,
    /// Lifetime of the tickets it mints, seconds.
    #[arg(long, env = "PARTNER_TICKET_TTL", default_value_t = 600)]
    ticket_ttl: u64,
}

struct Backend {
    callbox_url: String,
    app_key: String,
    secret: Secret,
    ticket_ttl: u64,
    /// User name → argon2id PHC string.
    users: HashMap<String, String>,
    /// Verified against for unknown users, so that both failures take the same time.
    dummy_hash: String,
    csp: HeaderValue,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").field("app_key", &self.app_key).field("users", &self.users.len()).finish()
    }
}

fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// The browser's origin for Callbox, checked so that it can go into a header and a page unescaped.
fn callbox_origin(url: &str) -> anyhow::Result<String> {
    let url = url.trim_end_matches('/');
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)) => {
            Ok(url.to_owned())
        }
        _ => bail!("--callbox-url must be http(s)://host[:port], got {url:?}"),
    }
}

fn load(args: Args) -> anyhow::Result<Backend> {
    let secret = Secret::from_base64(args.app_secret.trim()).context("--app-secret must be the base64 secret")?;
    let callbox_url = callbox_origin(&args.callbox_url)?;
    let mut users = HashMap::new();
    for entry in &args.users {
        let Some((name, password)) = entry.split_once(':') else {
            bail!("--user takes name:password");
        };
        if !callbox_core::is_valid_user_id(name) || password.is_empty() {
            bail!("--user {name:?}: the name must be a valid user id and the password not empty");
        }
        users.insert(name.to_owned(), hash_password(password)?);
    }
    let csp = HeaderValue::from_str(&format!(
        "default-src 'none'; script-src 'self' {callbox_url}; connect-src 'self' {callbox_url}; style-src 'self'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ))
    .context("building the Content-Security-Policy")?;
    Ok(Backend {
        callbox_url,
        app_key: args.app_key,
        secret,
        ticket_ttl: args.ticket_ttl,
        users,
        dummy_hash: hash_password("partner-backend-dummy-password")?,
        csp,
    })
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

/// The login, as JSON or as a form (what jQuery's `$.post` sends).
async fn read_login(request: Request) -> Option<Login> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        Json::<Login>::from_request(request, &()).await.ok().map(|Json(login)| login)
    } else {
        Form::<Login>::from_request(request, &()).await.ok().map(|Form(login)| login)
    }
}

/// `POST /auth`: `{username, password}` → `{"userTicket": ...}`, or 401.
async fn auth(State(backend): State<Arc<Backend>>, request: Request) -> Response {
    let Some(login) = read_login(request).await else {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "send username and password" }))).into_response();
    };
    let checker = backend.clone();
    let name = login.username.clone();
    let verified = tokio::task::spawn_blocking(move || match checker.users.get(&login.username) {
        Some(phc) => verify_password(phc, &login.password),
        None => {
            let _ = verify_password(&checker.dummy_hash, &login.password);
            false
        }
    })
    .await
    .unwrap_or(false);
    if !verified {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "wrong username or password" }))).into_response();
    }
    let ticket = mint(
        &NewTicket {
            application_key: backend.app_key.clone(),
            identity: Identity { kind: IdentityType::Username, endpoint: name },
            created: chrono::Utc::now(),
            expires_in: Some(backend.ticket_ttl),
            nonce: Some(uuid::Uuid::new_v4().to_string()),
        },
        &backend.secret,
    );
    let mut response = Json(json!({ "userTicket": ticket })).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

async fn page(State(backend): State<Arc<Backend>>) -> Response {
    let html = PAGE
        .replace("{{CALLBOX_URL}}", &escape_html(&backend.callbox_url))
        .replace("{{APPLICATION_KEY}}", &escape_html(&backend.app_key));
    let mut response = html.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, backend.csp.clone());
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

async fn page_js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")], PAGE_JS)
        .into_response()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listen = args.listen;
    let backend = Arc::new(load(args)?);
    let app = Router::new()
        .route("/", get(page))
        .route("/app.js", get(page_js))
        .route("/auth", post(auth))
        .with_state(backend.clone());
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let address = listener.local_addr().context("reading the bound address")?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", json!({ "event": "listening", "url": format!("http://{address}") }))?;
        stdout.flush()?;
    }
    eprintln!("partner-backend: {} users, Callbox at {}", backend.users.len(), backend.callbox_url);
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.context("serving")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_against_their_hash_only() -> anyhow::Result<()> {
        let phc = hash_password("somethingSecure")?;
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password(&phc, "somethingSecure"));
        assert!(!verify_password(&phc, "somethingsecure"));
        Ok(())
    }

    #[test]
    fn the_callbox_url_must_be_a_plain_origin() {
        assert_eq!(callbox_origin("http://127.0.0.1:8080/").ok().as_deref(), Some("http://127.0.0.1:8080"));
        assert!(callbox_origin("https://callbox.example.com").is_ok());
        assert!(callbox_origin("javascript:alert(1)").is_err());
        assert!(callbox_origin("http://x; script-src *").is_err());
    }

    #[test]
    fn tickets_verify_with_the_secret() -> anyhow::Result<()> {
        let secret = Secret::from_base64("JViE5vDor0Sw3WllZka15Q==")?;
        let ticket = mint(
            &NewTicket {
                application_key: "k".into(),
                identity: Identity { kind: IdentityType::Username, endpoint: "alice".into() },
                created: chrono::Utc::now(),
                expires_in: Some(600),
                nonce: Some("n".into()),
            },
            &secret,
        );
        let now = chrono::Utc::now();
        let verified = callbox_core::ticket::verify(&ticket, "k", &[secret], &Default::default(), now)?;
        assert_eq!(verified.claims.identity.endpoint, "alice");
        let other = Secret::from_base64("ax8hTTQJF0OPXL32r1LHMA==")?;
        assert!(callbox_core::ticket::verify(&ticket, "k", &[other], &Default::default(), now).is_err());
        Ok(())
    }
}
