//! Instructions per request through the router, counted by callgrind (repeatable whatever else the machine is
//! doing, unlike the criterion timings of `benches/request.rs` on a shared 2-core machine): `N` signed calls
//! (`GET /v1/user/profile`), or with `REFUSED` set `N` calls without Authorization, after the same set-up.
//!
//! ```sh
//! cargo build --release -p callbox-server --example signed_loop
//! for n in 0 2000; do N=$n valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!   target/release/examples/signed_loop 2>&1 | grep Collected; done   # (difference) / 2000 = per request
//! ```
#![allow(clippy::unwrap_used)]
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use callbox_core::credential::Identity;
use callbox_core::signing::{self, SignedParts};
use callbox_core::ticket::{self, NewTicket};
use callbox_core::{Secret, TicketFormat};
use callbox_server::config::Config;
use callbox_server::domain::{AppSettings, RequestMeta, SessionRequest};
use callbox_server::http::{router, AppState};
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;

fn request(path: &str, authorization: Option<&str>, timestamp: &str) -> Request<Body> {
    let mut builder = Request::get(path).header("x-timestamp", timestamp);
    if let Some(value) = authorization {
        builder = builder.header("authorization", value);
    }
    let mut request = builder.body(Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    request
}

fn main() {
    let n: usize = std::env::var("N").unwrap().parse().unwrap();
    let refused = std::env::var("REFUSED").is_ok();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        let config = Config { data: dir.path().to_owned(), demo_app: false, ..Config::default() };
        let (callbox, _) = callbox_server::open(&config).await.unwrap();
        let app = callbox.create_app("bench".into(), AppSettings::default()).await.unwrap();
        let secret = Secret::from_base64(&app.secret).unwrap();
        let ticket = ticket::mint(
            &NewTicket {
                application_key: app.app.key.clone(),
                identity: Identity::username("alice"),
                created: chrono::Utc::now(),
                expires_in: Some(600),
                nonce: None,
            },
            &secret,
        );
        let meta = RequestMeta::from_ip([127, 0, 0, 1].into());
        let grant = callbox.exchange(&ticket, TicketFormat::Legacy, &SessionRequest::default(), &meta).await.unwrap();
        let timestamp = callbox_core::time::format_iso_seconds(chrono::Utc::now());
        let parts =
            SignedParts { method: "GET", body: b"", content_type: "", timestamp: &timestamp, path: "/v1/user/profile" };
        let signature = signing::sign(&Secret::from_base64(&grant.secret).unwrap(), &parts);
        let router = router(AppState { callbox: Arc::new(callbox), metrics: None });
        let authorization = format!("Instance {}:{signature}", grant.id);
        for _ in 0..n {
            let auth = if refused { None } else { Some(authorization.as_str()) };
            let response = router.clone().oneshot(request("/v1/user/profile", auth, &timestamp)).await.unwrap();
            assert_eq!(response.status().is_success(), !refused);
        }
    });
}
