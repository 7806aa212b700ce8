//! The admin commands against a real `callbox serve` (SQLite file in a temporary data directory).

use serde_json::Value;
use std::process::{Command, Output, Stdio};

use crate::served::Served;

struct Server {
    served: Served,
    data: tempfile::TempDir,
}

fn start() -> Server {
    let data = tempfile::TempDir::new().unwrap();
    Server { served: crate::served::serve(data.path(), |_| {}), data }
}

impl Server {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_callbox"))
            .args(args)
            .args(["--server", &self.served.url, "--data"])
            .arg(self.data.path())
            .env_remove("CALLBOX_URL")
            .env_remove("CALLBOX_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let output = self.run(args);
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    }
}

#[test]
fn admin_commands_drive_a_real_server() {
    let server = start();
    let created = server.json(&["app", "create", "--name", "CLI app", "--json"]);
    let key = created["applicationKey"].as_str().unwrap().to_owned();
    let secret = created["applicationSecret"].as_str().unwrap().to_owned();
    assert!(created["secretId"].is_string());

    // Human output flags platform-managed users loudly while on.
    let shown = server.run(&["app", "show", &key]);
    assert!(String::from_utf8_lossy(&shown.stderr).contains("WARNING"));
    let set = server.json(&["app", "set", &key, "--platform-user-auth", "false", "--max-ticket-ttl", "3600", "--json"]);
    assert_eq!(set["platformUserAuth"], false);
    assert_eq!(set["maxTicketTtl"], 3600);
    let listed = server.json(&["app", "list", "--json"]);
    assert!(listed.to_string().contains(&key));

    // Rotation then retirement of the first secret.
    let rotated = server.json(&["app", "rotate-secret", &key, "--json"]);
    let old_id = created["secretId"].as_str().unwrap();
    assert_ne!(rotated["secretId"].as_str().unwrap(), old_id);
    assert!(server.run(&["app", "retire-secret", &key, old_id]).status.success());
    let last = server.run(&["app", "retire-secret", &key, rotated["secretId"].as_str().unwrap()]);
    assert_eq!(last.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&last.stderr).contains("last_secret"));

    // Users.
    assert!(server.run(&["user", "add", "--app", &key, "alice", "--password", "correct horse"]).status.success());
    let users = server.json(&["user", "list", "--app", &key, "--json"]);
    assert_eq!(users["users"][0]["userId"], "alice");
    assert!(server.run(&["user", "disable", "--app", &key, "alice"]).status.success());
    let users = server.json(&["user", "list", "--app", &key, "--search", "ali", "--json"]);
    assert_eq!(users["users"][0]["disabled"], true);
    assert!(server.run(&["user", "remove", "--app", &key, "alice"]).status.success());
    let missing = server.run(&["user", "remove", "--app", &key, "alice"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not_found"));

    // Sessions: made with a backend ticket (the retired secret no longer verifies, the rotated one does).
    let new_secret = rotated["applicationSecret"].as_str().unwrap();
    let minted = Command::new(env!("CARGO_BIN_EXE_callbox"))
        .args(["ticket", "mint", "--key", &key, "--secret", new_secret, "--user", "bob"])
        .output()
        .unwrap();
    let ticket: Value = serde_json::from_slice(&minted.stdout).unwrap();
    let response = std::process::Command::new("curl")
        .args(["-s", "-X", "POST", &format!("{}/v1/instance", server.served.url), "-H"])
        .arg(format!("Authorization: User {}", ticket["userTicket"].as_str().unwrap()))
        .args(["-H", "Content-Type: application/json", "-d", "{}"])
        .output();
    let response = response.expect("curl (scripts/test.sh installs it)");
    let session: Value = serde_json::from_slice(&response.stdout).unwrap();
    let session_id = session["id"].as_str().unwrap();
    let sessions = server.json(&["session", "list", "--app", &key, "--user", "bob", "--json"]);
    assert_eq!(sessions["sessions"][0]["id"], session_id);
    assert!(server.run(&["session", "revoke", "--app", &key, session_id]).status.success());
    let sessions = server.json(&["session", "list", "--app", &key, "--json"]);
    assert!(sessions["sessions"].as_array().unwrap().is_empty());
    assert!(!String::from_utf8_lossy(&server.run(&["app", "show", &key]).stdout).contains(&secret));
}
