//! `callbox serve` with `metrics_listen` and `metrics_token` (issue 16): the listening line names the metrics URL,
//! `/metrics` is served only there and only with the token, and `/readyz` reports the file-descriptor limit.

use serde_json::Value;
use std::time::Duration;

#[tokio::test]
async fn metrics_move_to_their_own_listener_behind_the_token() {
    let data = tempfile::TempDir::new().unwrap();
    let served = crate::served::serve(data.path(), |command| {
        command.env("CALLBOX_METRICS_LISTEN", "127.0.0.1:0").env("CALLBOX_METRICS_TOKEN", "cli-metrics-token");
    });
    let metrics_url = served.listening["metricsUrl"].as_str().expect("the listening line names metricsUrl").to_owned();
    assert!(metrics_url.starts_with("http://127.0.0.1:") && metrics_url.ends_with("/metrics"), "{metrics_url}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    let main = http.get(format!("{}/metrics", served.url)).send().await.unwrap();
    assert_eq!(main.status().as_u16(), 404);
    assert_eq!(main.json::<Value>().await.unwrap()["reason"], "not_found");
    let without = http.get(&metrics_url).send().await.unwrap();
    assert_eq!(without.status().as_u16(), 401);
    let with = http.get(&metrics_url).bearer_auth("cli-metrics-token").send().await.unwrap();
    assert_eq!(with.status().as_u16(), 200);
    assert!(with.text().await.unwrap().contains("callbox_connections_open"));

    let ready: Value = http.get(format!("{}/readyz", served.url)).send().await.unwrap().json().await.unwrap();
    assert!(ready["fileDescriptorLimit"].as_u64().is_some_and(|limit| limit > 0), "{ready}");
}
