//! `callbox connection`: a user's live realtime connections (docs/realtime.md, section 8).

use crate::admin::{app_path, print_json, print_table, segment, Client, Connection};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;
use std::process::ExitCode;

/// `callbox connection`.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: ConnectionCommand,
}

#[derive(Debug, Subcommand)]
enum ConnectionCommand {
    /// List a user's live connections (on the node that answers).
    List(Target),
    /// Close a user's live connections on every node (their sessions stay valid: clients reconnect; revoke the
    /// sessions with `callbox session revoke --user` to keep them out).
    Drop(Target),
}

#[derive(Debug, Args)]
struct Target {
    /// Application key.
    #[arg(long = "app", value_name = "KEY")]
    app: String,
    /// User id.
    #[arg(value_name = "USER", allow_hyphen_values = true)]
    user: String,
}

fn connections_path(target: &Target) -> anyhow::Result<String> {
    Ok(format!("{}/users/{}/connections", app_path(&target.app)?, segment("user id", &target.user)?))
}

/// Runs a `callbox connection` subcommand.
pub async fn run(args: ConnectionArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.connection)?;
    let json_out = args.connection.json;
    match args.command {
        ConnectionCommand::List(target) => {
            let answer = client.get(&connections_path(&target)?, &[]).await?.json().clone();
            if json_out {
                return print_json(&answer).map(|()| ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list(&answer, "connections")
                .iter()
                .map(|c| {
                    vec![
                        cell(c.get("sessionId")),
                        cell(c.get("connectedAt")),
                        cell(c.get("peer")),
                        cell(c.get("messaging")),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("No live connections for {} on this node.", target.user);
            } else {
                print_table(&["SESSION", "CONNECTED", "PEER", "MESSAGING"], &rows);
            }
        }
        ConnectionCommand::Drop(target) => {
            let answer = client
                .call::<()>(Method::DELETE, &connections_path(&target)?, &[], None)
                .await?
                .map(|answer| answer.json().clone())
                .unwrap_or_default();
            if json_out {
                print_json(&answer)?;
            } else {
                println!(
                    "Dropped {} connection(s) of {} on this node (and any on other nodes).",
                    cell(answer.get("dropped")),
                    target.user
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A JSON value as a table cell: strings bare, null or absent as `-`.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

fn list<'a>(body: &'a Value, field: &str) -> &'a [Value] {
    body.get(field).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}
