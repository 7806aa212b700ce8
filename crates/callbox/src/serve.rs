//! `callbox serve`: loads the layered configuration and runs the server until SIGTERM.

use anyhow::Context;
use callbox_server::config::{Config, LogFormat};
use clap::Args;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Options of `callbox serve`. Each one overrides the configuration file and `CALLBOX_*` variables.
#[derive(Debug, Args, Serialize)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080; env CALLBOX_LISTEN]. Port 0 picks a free port; the
    /// chosen URL is printed on stdout as {"event":"listening","url":...}.
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Data directory: SQLite database, master key and admin token [default: ./callbox-data; env CALLBOX_DATA].
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user:password@host/db) to share one database between nodes [default: SQLite in
    /// the data directory; env CALLBOX_DATABASE_URL]. Every node also needs the same master key
    /// (CALLBOX_MASTER_KEY).
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Redis URL (redis://host:port/) to share login attempt counters, lockouts and sign-up rates between nodes
    /// [default: kept in this node's memory; env CALLBOX_REDIS_URL].
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Configuration file (TOML), below environment variables and flags.
    #[arg(long, value_name = "FILE", env = "CALLBOX_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Log format: text or json [default: text; env CALLBOX_LOG_FORMAT].
    #[arg(long, value_name = "FORMAT", value_parser = parse_log_format)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// TLS on the listener: the `[tls]` table.
    #[command(flatten)]
    #[serde(skip_serializing_if = "TlsArgs::is_empty")]
    pub tls: TlsArgs,
}

/// `--tls-cert` and `--tls-key`, serialized as the `[tls]` table they override.
#[derive(Debug, Args, Serialize)]
pub struct TlsArgs {
    /// Serve HTTPS with this PEM certificate chain (server certificate first) [env CALLBOX_TLS__CERT]. Needs
    /// --tls-key; SIGHUP reloads both files.
    #[arg(long = "tls-cert", id = "tls_cert", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1) [env CALLBOX_TLS__KEY].
    #[arg(long = "tls-key", id = "tls_key", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

impl TlsArgs {
    fn is_empty(&self) -> bool {
        self.cert.is_none() && self.key.is_none()
    }
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("unknown log format {other:?}: use text or json")),
    }
}

/// Runs the server.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref(), &args).context("reading the configuration")?;
    callbox_server::init_logging(config.log_format);
    callbox_server::run(config).await.context("callbox serve")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ServeArgs;
    use callbox_server::config::Config;
    use callbox_server::config_reference::ENTRIES;
    use clap::Parser;
    use std::path::PathBuf;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    /// `--tls-cert`/`--tls-key` land in `[tls]`, over the file and the environment, and leave it alone when absent.
    #[test]
    fn the_tls_flags_set_the_tls_table() {
        let both = Cli::parse_from(["serve", "--tls-cert", "/c.pem", "--tls-key", "/k.pem"]).serve;
        let config = Config::load(None, &both).unwrap();
        assert_eq!(config.tls.cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(config.tls.key, Some(PathBuf::from("/k.pem")));
        let one = Cli::parse_from(["serve", "--tls-key", "/k.pem"]).serve;
        let config = Config::load(None, &one).unwrap();
        assert_eq!((config.tls.cert, config.tls.key), (None, Some(PathBuf::from("/k.pem"))));
        let none = Cli::parse_from(["serve"]).serve;
        assert_eq!(serde_json::to_value(&none).unwrap(), serde_json::json!({}), "no flag, no override");
    }

    /// docs/configuration.md names each key's `callbox serve` flag from `config_reference`; these are the flags
    /// clap actually has (`--config` names the file itself, not a key).
    #[test]
    fn the_configuration_reference_names_every_serve_flag() {
        let command = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
        let mut flags: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| arg.get_long())
            .filter(|long| *long != "config")
            .map(|long| format!("--{long}"))
            .collect();
        flags.sort();
        let mut documented: Vec<String> = ENTRIES.iter().filter_map(|entry| entry.flag).map(str::to_owned).collect();
        documented.sort();
        assert_eq!(flags, documented, "config_reference.rs ENTRIES must name exactly the flags of callbox serve");
        for entry in ENTRIES.iter().filter(|entry| entry.flag.is_some()) {
            // Each flag sets the key of the same name (serde field = flag without dashes; a table's flags start
            // with the table's name: `--tls-cert` sets `tls.cert`).
            assert_eq!(
                entry.flag.map(|flag| flag.trim_start_matches("--").replace('-', "_")),
                Some(entry.key.replace('.', "_"))
            );
        }
    }
}
