//! The dashboard's sign-in, session cookie and CSRF checks over real HTTP (the pages themselves are tested in a
//! browser by e2e/dashboard.test.mjs).

use crate::support::{start, start_with, test_config};
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// `name=value` of the `Set-Cookie` for `name`, and the whole header.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<(String, String)> {
    headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|line| {
        let pair = line.split(';').next()?.trim();
        pair.starts_with(&format!("{name}=")).then(|| (pair.to_owned(), line.to_owned()))
    })
}

struct Signin {
    pre_cookie: String,
    pre_token: String,
}

async fn signin_form(http: &reqwest::Client, url: &str) -> Signin {
    let response = http.get(format!("{url}/dashboard/api/signin")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (pre_cookie, line) = set_cookie(response.headers(), "callbox_dashboard_signin").unwrap();
    assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict"), "{line}");
    let body: Value = response.json().await.unwrap();
    Signin { pre_cookie, pre_token: body["signinToken"].as_str().unwrap().to_owned() }
}

async fn post_signin(http: &reqwest::Client, url: &str, form: &Signin, token: &str) -> reqwest::Response {
    http.post(format!("{url}/dashboard/api/signin"))
        .header("cookie", &form.pre_cookie)
        .header("x-csrf-token", &form.pre_token)
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
}

/// Signs in: (session cookie `name=value`, CSRF token).
async fn sign_in(http: &reqwest::Client, url: &str, token: &str) -> (String, String) {
    let form = signin_form(http, url).await;
    let response = post_signin(http, url, &form, token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (cookie, line) = set_cookie(response.headers(), "callbox_dashboard").unwrap();
    assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict") && line.contains("Path=/"), "{line}");
    assert!(!line.contains("Secure"), "plain HTTP: no Secure flag");
    let body: Value = response.json().await.unwrap();
    (cookie, body["csrfToken"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn pages_carry_the_security_headers() {
    let server = start().await;
    for path in ["/dashboard", "/dashboard/", "/dashboard/app.js", "/dashboard/app.css", "/dashboard/api/signin"] {
        let response = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let h = response.headers();
        assert_eq!(h["content-security-policy"], callbox_server::http::dashboard::CSP, "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
    }
    let js = server.http.get(server.url("/dashboard/app.js")).send().await.unwrap();
    assert!(js.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
}

#[tokio::test]
async fn a_wrong_admin_token_or_a_missing_signin_token_creates_no_session() {
    let server = start().await;
    let form = signin_form(&server.http, &server.url).await;
    let wrong = post_signin(&server.http, &server.url, &form, "cbadm_wrong").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(wrong.headers(), "callbox_dashboard").is_none());
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["reason"], "invalid_admin_token");

    // The right admin token without the sign-in form's token (login CSRF), or with a wrong one.
    let bare = server.http.post(server.url("/dashboard/api/signin")).json(&json!({ "token": server.token }));
    let bare = bare.send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(bare.headers(), "callbox_dashboard").is_none());
    // Each case below takes a fresh form: a sign-in token is used up by any attempt.
    let fresh = signin_form(&server.http, &server.url).await;
    let forged = Signin { pre_cookie: fresh.pre_cookie.clone(), pre_token: "not-it".into() };
    assert_eq!(post_signin(&server.http, &server.url, &forged, &server.token).await.status(), StatusCode::UNAUTHORIZED);
    // From another origin.
    let form = signin_form(&server.http, &server.url).await;
    let cross = server
        .http
        .post(server.url("/dashboard/api/signin"))
        .header("cookie", &form.pre_cookie)
        .header("x-csrf-token", &form.pre_token)
        .header("origin", "http://evil.example")
        .json(&json!({ "token": server.token }))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::UNAUTHORIZED);
    // The same form, now from the dashboard's own origin, was used up by the cross-origin attempt.
    assert_eq!(post_signin(&server.http, &server.url, &form, &server.token).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_signin_token_signs_in_once() {
    let server = start().await;
    let form = signin_form(&server.http, &server.url).await;
    let first = post_signin(&server.http, &server.url, &form, &server.token).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(set_cookie(first.headers(), "callbox_dashboard").is_some());
    // Replaying the same sign-in token and cookie (the one the first answer asked the browser to delete).
    let again = post_signin(&server.http, &server.url, &form, &server.token).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(again.headers(), "callbox_dashboard").is_none());
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["reason"], "invalid_admin_token", "{body}");
    // A wrong admin token uses a form up too: the right one afterwards needs a new form.
    let form = signin_form(&server.http, &server.url).await;
    assert_eq!(post_signin(&server.http, &server.url, &form, "cbadm_wrong").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(post_signin(&server.http, &server.url, &form, &server.token).await.status(), StatusCode::UNAUTHORIZED);
    let form = signin_form(&server.http, &server.url).await;
    assert_eq!(post_signin(&server.http, &server.url, &form, &server.token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_session_cookie_opens_the_admin_api_and_changes_need_the_csrf_token() {
    let server = start().await;
    let (cookie, csrf) = sign_in(&server.http, &server.url, &server.token).await;
    let call = |method: Method, path: &str| server.http.request(method, server.url(path)).header("cookie", &cookie);

    // Reading needs only the cookie; GET /dashboard/api/session hands the page its CSRF token.
    assert_eq!(call(Method::GET, "/admin/v1/apps").send().await.unwrap().status(), StatusCode::OK);
    let info: Value = call(Method::GET, "/dashboard/api/session").send().await.unwrap().json().await.unwrap();
    assert_eq!(info["csrfToken"], csrf.as_str());

    // A change without the token, with a wrong one, or from another origin: refused, nothing made.
    let create = |token: Option<&str>, origin: Option<&str>| {
        let mut request = call(Method::POST, "/admin/v1/apps").json(&json!({ "name": "via cookie" }));
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    for (token, origin) in [(None, None), (Some("wrong"), None), (Some(csrf.as_str()), Some("http://evil.example"))] {
        let refused = create(token, origin).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{token:?} {origin:?}");
        let body: Value = refused.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains("CSRF"));
    }
    let refused = call(Method::POST, "/admin/v1/apps")
        .header("x-csrf-token", &csrf)
        .header("sec-fetch-site", "same-site")
        .json(&json!({ "name": "via cookie" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let apps: Value = server.admin(Method::GET, "/admin/v1/apps", None).await.json().await.unwrap();
    assert!(!apps.to_string().contains("via cookie"));

    // With it, from the same origin: done.
    let host = server.url.trim_start_matches("http://").to_owned();
    let made = create(Some(&csrf), Some(&format!("http://{host}"))).await.unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);

    // A Bearer header takes precedence: a wrong one is refused even with a good cookie.
    let bearer = call(Method::GET, "/admin/v1/apps").bearer_auth("cbadm_wrong").send().await.unwrap();
    assert_eq!(bearer.status(), StatusCode::UNAUTHORIZED);

    // Sign-out needs the token too, then ends the session for good.
    let signout = call(Method::POST, "/dashboard/api/signout").send().await.unwrap();
    assert_eq!(signout.status(), StatusCode::UNAUTHORIZED);
    let signout = call(Method::POST, "/dashboard/api/signout").header("x-csrf-token", &csrf).send().await.unwrap();
    assert_eq!(signout.status(), StatusCode::NO_CONTENT);
    let (_, line) = set_cookie(signout.headers(), "callbox_dashboard").unwrap();
    assert!(line.contains("Max-Age=0"), "{line}");
    assert_eq!(call(Method::GET, "/admin/v1/apps").send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(call(Method::GET, "/dashboard/api/session").send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_cookies_are_refused() {
    let server = start().await;
    let response = server
        .http
        .get(server.url("/admin/v1/apps"))
        .header("cookie", "callbox_dashboard=made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A session of another server (another admin token) does not open this one.
    let other = start().await;
    let (cookie, _) = sign_in(&other.http, &other.url, &other.token).await;
    let response = server.http.get(server.url("/admin/v1/apps")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_cookie_is_secure_behind_a_trusted_https_proxy() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = test_config(dir.path());
    config.trust_forwarded_for = true;
    let server = start_with(config).await;
    let form = server.http.get(server.url("/dashboard/api/signin")).header("x-forwarded-proto", "https");
    let form = form.send().await.unwrap();
    let (pre_cookie, line) = set_cookie(form.headers(), "callbox_dashboard_signin").unwrap();
    assert!(line.ends_with("; Secure"), "{line}");
    let pre_token = form.json::<Value>().await.unwrap()["signinToken"].as_str().unwrap().to_owned();
    let response = server
        .http
        .post(server.url("/dashboard/api/signin"))
        .header("x-forwarded-proto", "https")
        .header("cookie", pre_cookie)
        .header("x-csrf-token", pre_token)
        .json(&json!({ "token": server.token }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, line) = set_cookie(response.headers(), "callbox_dashboard").unwrap();
    assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict") && line.ends_with("; Secure"), "{line}");
}
