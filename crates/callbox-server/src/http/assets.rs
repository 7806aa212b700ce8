//! Static assets: the browser SDK built from `sdk/js` (`/sdk/callbox.js` ES module, `/sdk/callbox.min.js`
//! script-tag bundle with the global `Callbox`, `/sdk/callbox.d.ts`) and the demo page (`/demo`) that signs in to
//! the demo application both ways: with a ticket from a backend, and as a platform-managed user.
//!
//! The SDK files are the committed `sdk/js/dist` build, embedded at compile time, so building the server needs
//! no npm.

use super::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const SDK_MODULE: &str = include_str!("../../../../sdk/js/dist/callbox.js");
const SDK_BUNDLE: &str = include_str!("../../../../sdk/js/dist/callbox.min.js");
const SDK_TYPES: &str = include_str!("../../../../sdk/js/dist/callbox.d.ts");
const DEMO_HTML: &str = include_str!("assets/demo.html");
const DEMO_JS: &str = include_str!("assets/demo.js");
const DEMO_CSS: &str = include_str!("assets/demo.css");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// The demo page's policy: its own scripts, styles and API only; no inline code, no framing.
pub const DEMO_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                            img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The asset routes, to merge into the main router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sdk/callbox.js", get(|| async { asset(JAVASCRIPT, SDK_MODULE) }))
        .route("/sdk/callbox.min.js", get(|| async { asset(JAVASCRIPT, SDK_BUNDLE) }))
        .route("/sdk/callbox.d.ts", get(|| async { asset("text/plain; charset=utf-8", SDK_TYPES) }))
        .route("/demo", get(demo_page))
        .route("/demo/demo.js", get(|| async { asset(JAVASCRIPT, DEMO_JS) }))
        .route("/demo/demo.css", get(|| async { asset("text/css; charset=utf-8", DEMO_CSS) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Any page may load the SDK with a script tag or an import.
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

/// `GET /demo`: the demo page, for the demo application (or a note that there is none).
async fn demo_page(State(state): State<AppState>) -> Response {
    let key = match state.callbox.demo_app_key().await {
        Ok(key) => key.unwrap_or_default(),
        Err(error) => {
            tracing::warn!(error = %error.message, "demo page: reading the demo application's key");
            String::new()
        }
    };
    let html = render_demo(&key);
    let mut response = html.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DEMO_CSP));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// The page with the application key filled in (HTML-escaped; empty when there is no demo application).
pub fn render_demo(application_key: &str) -> String {
    DEMO_HTML.replace("{{APPLICATION_KEY}}", &escape_html(application_key))
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_escaped_into_the_page() {
        let page = render_demo("k\"><script>");
        assert!(page.contains("data-application-key=\"k&quot;&gt;&lt;script&gt;\""));
        assert!(!page.contains("{{APPLICATION_KEY}}"));
    }

    #[test]
    fn the_embedded_sdk_is_the_built_one() {
        assert!(SDK_MODULE.contains("export {"));
        assert!(SDK_BUNDLE.starts_with("\"use strict\";var Callbox="));
        assert!(SDK_TYPES.contains("export declare class Client"));
    }

    #[test]
    fn the_demo_page_has_no_inline_script() {
        assert!(!DEMO_HTML.contains("<script>"));
        assert!(!DEMO_HTML.contains("onclick"));
    }
}
