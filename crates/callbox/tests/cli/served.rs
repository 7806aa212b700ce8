//! A real `callbox serve` process on 127.0.0.1:0, shared by the tests that need one: started, its URL read from
//! the `{"event":"listening"}` line, killed when dropped.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Served {
    pub child: Child,
    pub url: String,
    /// The whole `listening` event (with `metricsUrl` when `metrics_listen` is set).
    pub listening: Value,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `callbox serve --listen 127.0.0.1:0 --data <data>`, with the listen/data/config variables of the calling
/// environment removed and `configure` adding the test's own flags and variables; returns once it listens.
pub fn serve(data: &Path, configure: impl FnOnce(&mut Command)) -> Served {
    let mut command = Command::new(env!("CARGO_BIN_EXE_callbox"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env_remove("CALLBOX_LISTEN")
        .env_remove("CALLBOX_DATA")
        .env_remove("CALLBOX_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    configure(&mut command);
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let event: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not the listening line: {line:?}"));
    assert_eq!(event["event"], "listening");
    Served { url: event["url"].as_str().unwrap().to_owned(), child, listening: event }
}
