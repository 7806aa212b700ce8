//! The authenticated admin HTTP client: one call per command, PROTOCOL §7 errors turned into readable ones,
//! and the percent-encoding of path segments.

use super::args::Connection;
use crate::usage;
use anyhow::{anyhow, Context};
use callbox_wire::{ErrorBody, Reason};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// Everything but the unreserved characters of RFC 3986 is percent-encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

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

/// A successful JSON answer. `--json` prints it as it came ([`Answer::json`]); the text mode reads it into a
/// callbox-wire type ([`Answer::typed`]).
pub(crate) struct Answer {
    body: Value,
    /// Where it came from, for the message when it does not have the expected shape.
    origin: String,
}

impl Answer {
    /// The answer as the server sent it.
    pub(crate) fn json(&self) -> &Value {
        &self.body
    }

    /// The answer read as `T`.
    pub(crate) fn typed<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        T::deserialize(&self.body).map_err(|error| anyhow!("{} is not what this callbox expects: {error}", self.origin))
    }
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
    pub(crate) async fn call<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> anyhow::Result<Option<Answer>> {
        let url = format!("{}/admin/v1{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|error| self.transport_error(&error))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|error| self.transport_error(&error))?;
        if status.is_success() {
            if status == StatusCode::NO_CONTENT || bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            let body = serde_json::from_slice(&bytes).map_err(|_| {
                anyhow!(
                    "the server at {} answered {status} with a body that is not JSON: {}",
                    self.base,
                    snippet(&bytes)
                )
            })?;
            let origin = format!("the answer of the server at {} to /admin/v1{path}", self.base);
            return Ok(Some(Answer { body, origin }));
        }
        Err(self.api_error(status, &bytes))
    }

    /// A call without a body whose answer must not be empty.
    pub(crate) async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Answer> {
        self.call::<()>(Method::GET, path, query, None).await?.ok_or_else(|| self.empty_answer(path))
    }

    /// A call with a JSON body whose answer must not be empty.
    pub(crate) async fn send<B: Serialize>(&self, method: Method, path: &str, body: &B) -> anyhow::Result<Answer> {
        self.call(method, path, &[], Some(body)).await?.ok_or_else(|| self.empty_answer(path))
    }

    /// A `DELETE`; its answer is normally empty.
    pub(crate) async fn delete(&self, path: &str) -> anyhow::Result<Option<Answer>> {
        self.call::<()>(Method::DELETE, path, &[], None).await
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

    /// A refusal: the §7 body's reason and message, or the start of the body when it is not a §7 error (a
    /// proxy's page, say).
    fn api_error(&self, status: StatusCode, bytes: &[u8]) -> anyhow::Error {
        let Ok(body) = serde_json::from_slice::<ErrorBody>(bytes) else {
            return anyhow!("the server at {} answered HTTP {status}: {}", self.base, snippet(bytes));
        };
        let mut message = body.message;
        if let Some(seconds) = body.retry_after {
            message.push_str(&format!(" (retry after {seconds} s)"));
        }
        let hint = (Reason::from_wire(&body.reason) == Some(Reason::InvalidAdminToken))
            .then(|| format!("the admin token was taken from {}", self.token_source));
        anyhow::Error::new(ApiError { reason: body.reason, message, hint })
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

/// `/apps/{key}`.
pub(crate) fn app_path(key: &str) -> anyhow::Result<String> {
    Ok(format!("/apps/{}", segment("application key", key)?))
}

/// `/apps/{key}/users/{user}`.
pub(crate) fn user_path(app: &str, user: &str) -> anyhow::Result<String> {
    Ok(format!("{}/users/{}", app_path(app)?, segment("user id", user)?))
}

/// `/apps/{key}/calls`.
pub(crate) fn calls_path(app: &str) -> anyhow::Result<String> {
    Ok(format!("{}/calls", app_path(app)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn segments_encode_everything_but_unreserved_characters() {
        assert_eq!(segment("user id", "a b/c?d%e").unwrap(), "a%20b%2Fc%3Fd%25e");
        assert_eq!(segment("user id", "Ab-9._~").unwrap(), "Ab-9._~");
        assert_eq!(user_path("k/1", "é").unwrap(), "/apps/k%2F1/users/%C3%A9");
        assert_eq!(calls_path("k?1").unwrap(), "/apps/k%3F1/calls");
        for refused in ["", ".", ".."] {
            assert!(segment("user id", refused).unwrap_err().downcast_ref::<crate::UsageError>().is_some());
        }
    }

    #[test]
    fn an_answer_of_the_wrong_shape_is_named_not_blanked() {
        let answer = Answer { body: serde_json::json!({ "revoked": "many" }), origin: "the answer".into() };
        let error = answer.typed::<callbox_wire::admin::Revoked>().unwrap_err().to_string();
        assert!(error.starts_with("the answer is not what this callbox expects"), "{error}");
        let answer = Answer { body: serde_json::json!({ "revoked": 3 }), origin: "the answer".into() };
        assert_eq!(answer.typed::<callbox_wire::admin::Revoked>().unwrap().revoked, 3);
    }
}
