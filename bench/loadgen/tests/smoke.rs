//! Exercises the load generator for about a second per scenario against an in-process Callbox on 127.0.0.1:0, so
//! `cargo test` covers the code that bench/run.sh relies on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use callbox_loadgen::{live_sessions, report, run_scenario, Options, Scenario};
use callbox_server::config::Config;
use callbox_server::http::{router, AppState};
use std::time::Duration;

/// Opens Callbox on `config` (its data directory bootstrapped) and serves it on 127.0.0.1:0: the base URL, what the
/// bootstrap made (the admin token) and the server task to abort at the end.
async fn serve(config: &Config) -> (String, callbox_server::Bootstrapped, tokio::task::JoinHandle<()>) {
    let (callbox, made) = callbox_server::open(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = router(AppState { callbox: std::sync::Arc::new(callbox), metrics: None });
    let server = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
    });
    (url, made, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_briefly_against_an_in_process_server() {
    let dir = tempfile::TempDir::new().unwrap();
    let config = Config { listen: "127.0.0.1:0".parse().unwrap(), data: dir.path().to_owned(), ..Config::default() };
    let (url, made, server) = serve(&config).await;
    let options = Options {
        url,
        admin_token: made.admin_token,
        app_key: None,
        app_secret: None,
        connections: 2,
        login_connections: 2,
        duration: Duration::from_millis(700),
        max_requests: 200,
        db_dir: Some(dir.path().join("sqlite-insert")),
    };
    let results = dir.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    for scenario in [Scenario::Exchange, Scenario::Signed, Scenario::Login, Scenario::Mixed, Scenario::SqliteInsert] {
        let result = run_scenario(scenario, &options).await.unwrap();
        let measured = if scenario == Scenario::Mixed { &result["exchange"] } else { &result };
        assert!(measured["ok"].as_u64().unwrap() > 0, "{result}");
        assert_eq!(measured["errors"], 0, "{result}");
        assert!(measured["requests"].as_u64().unwrap() <= 200, "{result}");
        std::fs::write(results.join(format!("{}.json", scenario.name())), result.to_string()).unwrap();
    }
    assert!(live_sessions(&dir.path().join("callbox.db")).await.unwrap() > 0);
    let table = report(&results).unwrap();
    assert!(table.contains("ticket → session exchange"), "{table}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calls_scenario_completes_whole_calls_against_an_in_process_server() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut config =
        Config { listen: "127.0.0.1:0".parse().unwrap(), data: dir.path().to_owned(), ..Config::default() };
    // As bench/calls.sh does: the per-session call.start limit must not cap the run.
    config.calls.attempts_per_minute = 1_000_000;
    config.calls.attempt_burst = 1_000_000;
    let (url, made, server) = serve(&config).await;
    let result = callbox_loadgen::calls::calls(&url, &made.admin_token.unwrap(), 2, 0.5).await.unwrap();
    assert!(result["completed"].as_u64().unwrap() > 10, "{result}");
    assert_eq!(result["rateLimited"], 0, "{result}");
    assert!(result["setupLatencyMs"]["p99"].as_f64().unwrap() > 0.0, "{result}");
    assert!(result["offerBytes"].as_u64().unwrap() > 2_000, "{result}");
    server.abort();
}

#[tokio::test]
async fn refuses_a_non_loopback_target() {
    let options = Options {
        url: "http://192.0.2.1:80".into(),
        admin_token: Some("x".into()),
        app_key: None,
        app_secret: None,
        connections: 1,
        login_connections: 1,
        duration: Duration::from_millis(100),
        max_requests: 1,
        db_dir: None,
    };
    assert!(run_scenario(Scenario::Hello, &options).await.is_err());
}
