//! The data directory of a real `callbox serve`: one server per folder (a second one is refused with one clear
//! line and a non-zero exit, and the folder is free again once the first stops, even after SIGKILL), and every
//! file in it readable by the owner only.

use crate::served::serve;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `callbox serve` on `data`, expected to give up: its exit status and what it printed on stderr.
fn refused_serve(data: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_callbox"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env_remove("CALLBOX_LISTEN")
        .env_remove("CALLBOX_DATA")
        .env_remove("CALLBOX_CONFIG")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("a second server kept running: {}", String::from_utf8_lossy(&output.stdout));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.stdout.is_empty(), "no listening line: {}", String::from_utf8_lossy(&output.stdout));
    (output.status.code(), String::from_utf8(output.stderr).unwrap())
}

async fn healthy(url: &str) -> bool {
    reqwest::get(format!("{url}/healthz")).await.is_ok_and(|response| response.status().is_success())
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_is_refused() {
    let data = tempfile::TempDir::new().unwrap();
    let mut first = serve(data.path(), |command| {
        command.env("RUST_LOG", "error");
    });
    let (code, stderr) = refused_serve(data.path());
    assert_eq!(code, Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|line| !line.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    let line = lines[0];
    assert!(line.starts_with("error: "), "{line}");
    assert!(line.contains(&format!("{} is already in use by another callbox serve", data.path().display())), "{line}");
    assert!(line.contains(&format!("process {}", first.child.id())), "names the holder: {line}");
    assert!(line.contains("--data"), "says what to do: {line}");
    assert!(healthy(&first.url).await, "the first server is untouched");

    // SIGKILL leaves no stale lock: the kernel drops it with the process.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let again = serve(data.path(), |command| {
        command.env("RUST_LOG", "error");
    });
    assert!(healthy(&again.url).await);
    // Another folder is another server.
    let other = tempfile::TempDir::new().unwrap();
    let second = serve(other.path(), |command| {
        command.env("RUST_LOG", "error");
    });
    assert!(healthy(&second.url).await);
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every entry of `data` with its mode.
#[cfg(unix)]
fn modes(data: &Path) -> Vec<(String, u32)> {
    let mut entries: Vec<(String, u32)> = std::fs::read_dir(data)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), mode(&path))
        })
        .collect();
    entries.sort();
    entries
}

#[cfg(unix)]
#[tokio::test]
async fn every_file_in_the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::TempDir::new().unwrap();
    let dir = data.path().join("callbox-data");
    let server = serve(&dir, |command| {
        command.env("RUST_LOG", "error");
    });
    assert!(healthy(&server.url).await);
    let found = modes(&dir);
    let names: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
    for expected in ["admin-token", "callbox.db", "callbox.db-shm", "callbox.db-wal", "callbox.lock", "master.key"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    for (name, mode) in &found {
        assert_eq!(*mode, 0o600, "{name} is {mode:o}");
    }
    assert_eq!(mode(&dir), 0o700);
    drop(server);

    // A folder made by an older version (0644 database files, 0755 folder) is tightened on the next start.
    for (name, _) in &found {
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = serve(&dir, |command| {
        command.env("RUST_LOG", "error");
    });
    assert!(healthy(&server.url).await);
    for (name, mode) in modes(&dir) {
        assert_eq!(mode, 0o600, "{name} is {mode:o} after a restart");
    }
    assert_eq!(mode(&dir), 0o700);
}
