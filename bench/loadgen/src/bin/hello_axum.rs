//! The practical HTTP limit of this machine: a bare axum hello-world on the same runtime settings as Callbox.
//! Binds 127.0.0.1:0 (or the first argument) and prints `{"event":"listening","url":...}` like `callbox serve`.

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use std::io::Write;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("binding {listen}"))?;
    let address = listener.local_addr()?;
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::json!({ "event": "listening", "url": format!("http://{address}") }))?;
    stdout.flush()?;
    drop(stdout);
    axum::serve(listener, app).await?;
    Ok(())
}
