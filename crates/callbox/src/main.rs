//! `callbox`: the Callbox server, the ticket debugger and the admin client, in one binary.

mod admin;
mod realtime_cli;
mod serve;
mod ticket;

use clap::{Parser, Subcommand};
use std::fmt;
use std::process::ExitCode;

/// Self-hosted Callbox: server, ticket debugger and admin client.
///
/// Exit status: 0 on success, 1 when the operation failed (an invalid ticket, a server error, an unreachable
/// server), 2 for bad arguments.
#[derive(Debug, Parser)]
#[command(name = "callbox", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Callbox server.
    Serve(serve::ServeArgs),
    /// Mint, inspect and verify user tickets and registration JWTs (the ticket debugger; works offline).
    #[command(subcommand)]
    Ticket(ticket::TicketCommand),
    /// Manage applications through the admin API of a running server.
    App(admin::AppArgs),
    /// Manage platform-managed users of an application through the admin API.
    User(admin::UserArgs),
    /// List and revoke client sessions through the admin API.
    Session(admin::SessionArgs),
    /// List and drop a user's live realtime connections through the admin API.
    Connection(realtime_cli::ConnectionArgs),
    /// List an application's recent calls through the admin API.
    Call(admin::CallArgs),
}

/// An error in how the command was called (exit status 2), as opposed to a failed operation (exit status 1).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for an [`anyhow::Error`] wrapping a [`UsageError`].
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// mimalloc rather than glibc's malloc: the server allocates many small, short-lived buffers on every request and
/// frame, across threads, and glibc's arenas cost ~10% of its CPU; mimalloc serves the same work with 10-20% less
/// CPU per request (docs/benchmarks.md, "Sitting of 2026-12-04 evening").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Ticket(command) => ticket::run(command),
        Command::App(args) => admin::run_app(args).await,
        Command::User(args) => admin::run_user(args).await,
        Command::Session(args) => admin::run_session(args).await,
        Command::Connection(args) => realtime_cli::run(args).await,
        Command::Call(args) => admin::run_call(args).await,
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
