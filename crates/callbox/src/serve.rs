//! `callbox serve`: placeholder until the server is wired in (the server crate replaces this file).

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Options of `callbox serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", env = "CALLBOX_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Data directory (database, admin token).
    #[arg(long, value_name = "DIR", env = "CALLBOX_DATA", default_value = "./callbox-data")]
    pub data: PathBuf,
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE", env = "CALLBOX_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Runs the server.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("`callbox serve` is not wired yet")
}
