//! What one request costs inside the server, without the network or a load generator sharing the cores: the
//! router (every layer) called with `oneshot`, next to a bare axum hello-world router as the baseline.
//!
//! `cargo bench -p callbox-server --bench request`. Results and their reading: docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use callbox_core::credential::Identity;
use callbox_core::signing::{self, SignedParts};
use callbox_core::ticket::{self, NewTicket};
use callbox_core::{Secret, TicketFormat};
use callbox_server::config::Config;
use callbox_server::domain::{AppSettings, RequestMeta, SessionRequest};
use callbox_server::http::{router, AppState};
use criterion::{criterion_group, criterion_main, Criterion};
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

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (callbox_router, authorization, timestamp) = runtime.block_on(async {
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
        // One signature for the whole run: X-Timestamp stays inside the 10-minute window a criterion run takes.
        let timestamp = callbox_core::time::format_iso_seconds(chrono::Utc::now());
        let parts =
            SignedParts { method: "GET", body: b"", content_type: "", timestamp: &timestamp, path: "/v1/user/profile" };
        let signature = signing::sign(&Secret::from_base64(&grant.secret).unwrap(), &parts);
        let router = router(AppState { callbox: Arc::new(callbox), metrics: callbox_server::metrics_handle() });
        (router, format!("Instance {}:{signature}", grant.id), timestamp)
    });
    let hello = Router::new().route("/", get(|| async { "Hello, World!" }));

    let mut group = c.benchmark_group("request");
    group.bench_function("baseline: axum hello-world router", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = hello.clone().oneshot(request("/", None, &timestamp)).await.unwrap();
            assert!(response.status().is_success());
        });
    });
    group.bench_function("signed call: GET /v1/user/profile", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = callbox_router
                .clone()
                .oneshot(request("/v1/user/profile", Some(&authorization), &timestamp))
                .await
                .unwrap();
            assert!(response.status().is_success());
        });
    });
    group.bench_function("refused call: GET /v1/user/profile without Authorization", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = callbox_router.clone().oneshot(request("/v1/user/profile", None, &timestamp)).await.unwrap();
            assert_eq!(response.status(), 401);
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
