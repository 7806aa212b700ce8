//! A real server on 127.0.0.1:0 with a real SQLite file, and the client-side helpers the tests share.

use callbox_core::credential::Identity;
use callbox_core::signing::{self, SignedParts};
use callbox_core::ticket::{self, NewTicket};
use callbox_core::Secret;
use callbox_server::config::{Config, LoginConfig};
use callbox_server::domain::{Callbox, TestClock};
use callbox_server::http::{router, AppState};
use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

pub struct Server {
    pub url: String,
    pub token: String,
    pub demo_key: Option<String>,
    pub data: PathBuf,
    /// The shared database, when not the data directory's SQLite file.
    pub database_url: Option<String>,
    pub callbox: Callbox,
    /// The domain's clock: tests move it to expire sessions and lockouts.
    pub clock: TestClock,
    pub http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
    _dir: Option<TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn test_config(data: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data: data.to_owned(),
        login: LoginConfig { signups_per_ip_per_minute: 10_000, ..LoginConfig::default() },
        ..Config::default()
    }
}

/// A fresh server in a new temporary data directory.
pub async fn start() -> Server {
    let dir = TempDir::new().unwrap();
    let mut server = start_with(test_config(dir.path())).await;
    server._dir = Some(dir);
    server
}

/// A server on `config` (its data directory is kept by the caller).
pub async fn start_with(config: Config) -> Server {
    start_serving(config, None, reqwest::Client::new()).await
}

/// A server on `config` whose listener speaks TLS through `tls` (its URL is then `https://`), with `http` as the
/// tests' client (one that trusts the test CA).
pub async fn start_serving(config: Config, tls: Option<tokio_rustls::TlsAcceptor>, http: reqwest::Client) -> Server {
    let clock = TestClock::new();
    let (callbox, made) = callbox_server::open_with_clock(&config, std::sync::Arc::new(clock.clone())).await.unwrap();
    // A second node of a cluster finds the token already made by the first: it has no token file then.
    let token = match made.admin_token {
        Some(token) => token,
        None => std::fs::read_to_string(config.admin_token_path()).map(|t| t.trim().to_owned()).unwrap_or_default(),
    };
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}", listener.local_addr().unwrap());
    let app =
        router(AppState { callbox: std::sync::Arc::new(callbox.clone()), metrics: callbox_server::metrics_handle() });
    // The real accept loop, with its timeouts and caps, as `callbox serve` runs it.
    let settings = callbox_server::listener::ConnectionSettings::resolve(
        &config,
        callbox_server::listener::raise_file_descriptor_limit(),
    );
    let task =
        tokio::spawn(callbox_server::listener::serve_with_tls(listener, app, settings, tls, std::future::pending()));
    Server {
        url,
        token,
        demo_key: made.demo_app.map(|(key, _)| key),
        data: config.data.clone(),
        database_url: config.database_url.as_ref().map(|url| url.0.clone()),
        callbox,
        clock,
        http,
        task,
        _dir: None,
    }
}

#[derive(Debug, Clone)]
pub struct App {
    pub key: String,
    pub secret: String,
    pub secret_id: String,
}

impl App {
    pub fn secret(&self) -> Secret {
        Secret::from_base64(&self.secret).unwrap()
    }

    /// A legacy ticket made as a customer backend would.
    pub fn ticket(&self, user: &str) -> String {
        self.ticket_with(user, Utc::now(), Some(600), None)
    }

    pub fn ticket_with(
        &self,
        user: &str,
        created: DateTime<Utc>,
        expires_in: Option<u64>,
        nonce: Option<&str>,
    ) -> String {
        ticket::mint(
            &NewTicket {
                application_key: self.key.clone(),
                identity: Identity::username(user),
                created,
                expires_in,
                nonce: nonce.map(str::to_owned),
            },
            &self.secret(),
        )
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub secret: String,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    pub async fn create_app(&self, settings: Value) -> App {
        let mut body = json!({ "name": "Test app" });
        body.as_object_mut().unwrap().extend(settings.as_object().unwrap().clone());
        let response = self.admin(Method::POST, "/admin/v1/apps", Some(body)).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        App {
            key: body["application"]["applicationKey"].as_str().unwrap().to_owned(),
            secret: body["applicationSecret"].as_str().unwrap().to_owned(),
            secret_id: body["secretId"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn patch_app(&self, key: &str, patch: Value) -> Response {
        self.admin(Method::PATCH, &format!("/admin/v1/apps/{key}"), Some(patch)).await
    }

    /// `POST /v1/instance` with the given Authorization.
    pub async fn exchange_with(&self, authorization: &str, body: Value) -> Response {
        self.http
            .post(self.url("/v1/instance"))
            .header("authorization", authorization)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn exchange(&self, ticket: &str) -> Response {
        self.exchange_with(
            &format!("User {ticket}"),
            json!({ "version": {"os": "test"}, "services": {"im": true, "voip": true} }),
        )
        .await
    }

    pub async fn session(&self, ticket: &str) -> Session {
        self.session_with(ticket, json!({ "version": {"os": "test"}, "services": {"im": true, "voip": true} })).await
    }

    /// A session from an exchange with `body` (e.g. a short `expiresIn`).
    pub async fn session_with(&self, ticket: &str, body: Value) -> Session {
        let response = self.exchange_with(&format!("User {ticket}"), body).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
        let body: Value = response.json().await.unwrap();
        Session { id: body["id"].as_str().unwrap().to_owned(), secret: body["secret"].as_str().unwrap().to_owned() }
    }

    /// A session-signed call, signed exactly as PROTOCOL §4 says, stamped with the server's (test) clock.
    pub async fn signed(&self, method: Method, path: &str, body: Option<Value>, session: &Session) -> Response {
        self.signed_at(method, path, body, session, self.now()).await
    }

    /// A second handle on the server's database, behind the domain's back: for a write made by "another node"
    /// (no fan-out here) and for running the store's own conformance checks. Caches of this server do not see
    /// its writes.
    pub async fn raw_store(&self) -> std::sync::Arc<dyn callbox_server::store::Store> {
        use callbox_server::store::sql::SqlStore;
        match &self.database_url {
            Some(url) => std::sync::Arc::new(SqlStore::connect_postgres(url).await.unwrap()),
            None => std::sync::Arc::new(SqlStore::open(&self.data.join("callbox.db")).await.unwrap()),
        }
    }

    /// The server's time (its test clock).
    pub fn now(&self) -> DateTime<Utc> {
        use callbox_server::domain::Clock;
        self.clock.now()
    }

    /// Moves the server's clock.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub async fn signed_at(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        session: &Session,
        at: DateTime<Utc>,
    ) -> Response {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
        let content_type = if bytes.is_empty() { "" } else { "application/json" };
        let timestamp = callbox_core::time::format_iso_seconds(at);
        let parts = SignedParts { method: method.as_str(), body: &bytes, content_type, timestamp: &timestamp, path };
        let signature = signing::sign(&Secret::from_base64(&session.secret).unwrap(), &parts);
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("authorization", format!("Instance {}:{signature}", session.id))
            .header("x-timestamp", timestamp);
        if !bytes.is_empty() {
            request = request.header("content-type", content_type).body(bytes);
        }
        request.send().await.unwrap()
    }

    pub async fn sign_up(&self, key: &str, user: &str, password: &str) -> Response {
        self.http
            .post(self.url("/v1/users"))
            .header("authorization", format!("Application {key}"))
            .json(&json!({ "password": password, "identities": [{ "type": "username", "endpoint": user }] }))
            .send()
            .await
            .unwrap()
    }

    pub async fn log_in(&self, key: &str, user: &str, password: &str) -> Response {
        self.http
            .post(self.url(&format!("/v1/users/username/{user}/authentication")))
            .header("authorization", format!("Application {key}"))
            .json(&json!({ "password": password }))
            .send()
            .await
            .unwrap()
    }
}

/// Asserts a PROTOCOL §7 error: status, errorCode, reason, and the fields every error carries.
pub async fn assert_error(response: Response, status: u16, reason: &str) -> Value {
    let actual = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").is_some();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "expected {status} {reason}, got {actual}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("error body is not JSON: {text}"));
    assert_eq!(body["reason"], reason, "{text}");
    assert_eq!(body["errorCode"].as_u64().unwrap() / 100, u64::from(status), "{text}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{text}");
    assert!(body["retryable"].is_boolean(), "{text}");
    assert!(callbox_core::time::parse_timestamp(body["serverTime"].as_str().unwrap()).is_some(), "{text}");
    if status == 429 {
        assert!(retry_after, "429 without Retry-After: {text}");
    }
    body
}

pub fn ago(seconds: i64) -> DateTime<Utc> {
    Utc::now() - Duration::seconds(seconds)
}
