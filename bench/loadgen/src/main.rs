//! `callbox-loadgen`: the loopback load generator behind docs/benchmarks.md.
//!
//! Every scenario is bounded in time (`--duration`) and count (`--max-requests`), keeps a fixed number of
//! HTTP/1.1 keep-alive connections (`--connections`), refuses any target that is not loopback, and prints one JSON
//! object (throughput, status counts, latency percentiles from an HDR histogram).
//!
//! ```text
//! callbox-loadgen run --scenario exchange --url http://127.0.0.1:PORT --admin-token T
//! callbox-loadgen run --scenario exchange --url http://127.0.0.1:PORT --app-key K --app-secret S
//! callbox-loadgen run --scenario sqlite-insert --db-dir /tmp/x
//! callbox-loadgen rss --pid PID --label idle
//! callbox-loadgen realtime-calls --url http://127.0.0.1:PORT --admin-token T --pairs 16 --duration 10
//! callbox-loadgen report bench/results/RUN
//! ```

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

use callbox_loadgen::{live_sessions, report, rss, run_scenario, Options, Scenario};

#[derive(Parser, Debug)]
#[command(name = "callbox-loadgen", about = "Loopback load generator for Callbox and its baselines")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The server under test of the realtime, legacy and call scenarios (Callbox, or a peer speaking its wire).
#[derive(Args, Debug)]
struct Target {
    /// Base URL of the server under test (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Admin token (an app is created for the run).
    #[arg(long, env = "CALLBOX_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs one scenario and prints its JSON result.
    Run {
        /// What to measure.
        #[arg(long, value_enum)]
        scenario: ScenarioArg,
        /// Base URL of the target (loopback only).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Admin token of the Callbox under test (scenarios against Callbox create their own app).
        #[arg(long, env = "CALLBOX_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// Application key and secret (peer-exchange: the Node peer's app).
        #[arg(long)]
        app_key: Option<String>,
        /// See `--app-key`.
        #[arg(long)]
        app_secret: Option<String>,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Login connections in the mixed scenario (exchanges use `--connections`).
        #[arg(long, default_value_t = 48)]
        login_connections: usize,
        /// Seconds to run (after set-up).
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Stop after this many requests.
        #[arg(long, default_value_t = 10_000_000)]
        max_requests: u64,
        /// Directory for the sqlite-insert baseline's database file.
        #[arg(long)]
        db_dir: Option<PathBuf>,
        /// Also write the JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Holds idle authenticated realtime connections and reports the server's memory per connection.
    RealtimeIdle {
        #[command(flatten)]
        target: Target,
        /// Connections to open (one session each).
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// The server's process id, to sample its RSS before and after.
        #[arg(long)]
        pid: Option<u32>,
        /// Seconds to hold them after the sample.
        #[arg(long, default_value_t = 0.0)]
        hold: f64,
        /// Also write the JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// 1:1 realtime messages (acknowledged after the commit, confirmed by the receiver): delivered a second and
    /// delivery latency.
    RealtimeMessages {
        #[command(flatten)]
        target: Target,
        /// Sender → receiver pairs.
        #[arg(long, default_value_t = 16)]
        pairs: usize,
        /// Unacknowledged messages each sender keeps in flight.
        #[arg(long, default_value_t = 4)]
        window: usize,
        /// Seconds to send.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Also write the JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Idle legacy long-poll subscribers (docs/legacy-sdk.md), one live `/subscribe` each, and the server's
    /// memory per subscriber.
    LegacyIdle {
        #[command(flatten)]
        target: Target,
        /// Subscribers (one session and one held poll each).
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// The server's process id, to sample its RSS before and after.
        #[arg(long)]
        pid: Option<u32>,
        /// Also write the JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// 1:1 messages through the legacy transport (MXP frames published, read by long-polls, each confirmed with
    /// a receipt frame): delivered a second and delivery latency.
    LegacyMessages {
        #[command(flatten)]
        target: Target,
        /// Sender → receiver pairs.
        #[arg(long, default_value_t = 16)]
        pairs: usize,
        /// Seconds to send.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Also write the JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Call setups through the signaling alone (docs/calls.md): caller/callee pairs each run whole calls back to
    /// back (start → incoming → answer → answered → a candidate each way → hangup → ended on both); setups a
    /// second and the start → answered latency.
    RealtimeCalls {
        #[command(flatten)]
        target: Target,
        /// Caller → callee pairs (two sessions with `calling` each).
        #[arg(long, default_value_t = 16)]
        pairs: usize,
        /// Seconds to start calls (the calls under way then are finished).
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Also write the JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Prints the resident set size of a process as JSON.
    Rss {
        /// Process id.
        #[arg(long)]
        pid: u32,
        /// A label for the table.
        #[arg(long)]
        label: String,
        /// Live sessions in the database at the time.
        #[arg(long, default_value_t = 0)]
        sessions: u64,
        /// Also write the JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Counts the live sessions in a Callbox database (opened read-only).
    Sessions {
        /// The `callbox.db` file.
        #[arg(long)]
        db: PathBuf,
    },
    /// Reads every `*.json` result in a directory and prints the Markdown table.
    Report {
        /// The run's directory.
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    Exchange,
    Signed,
    Login,
    Mixed,
    Hello,
    SqliteInsert,
}

fn write_out(value: &serde_json::Value, out: Option<&PathBuf>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{text}");
    if let Some(path) = out {
        std::fs::write(path, format!("{text}\n")).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenario,
            url,
            admin_token,
            app_key,
            app_secret,
            connections,
            login_connections,
            duration,
            max_requests,
            db_dir,
            out,
        } => {
            if !(0.1..=600.0).contains(&duration) {
                bail!("--duration must be between 0.1 and 600 seconds");
            }
            let scenario = match scenario {
                ScenarioArg::Exchange => Scenario::Exchange,
                ScenarioArg::Signed => Scenario::Signed,
                ScenarioArg::Login => Scenario::Login,
                ScenarioArg::Mixed => Scenario::Mixed,
                ScenarioArg::Hello => Scenario::Hello,
                ScenarioArg::SqliteInsert => Scenario::SqliteInsert,
            };
            let options = Options {
                url,
                admin_token: admin_token.filter(|t| !t.is_empty()),
                app_key,
                app_secret,
                connections: connections.clamp(1, 1024),
                login_connections: login_connections.clamp(1, 1024),
                duration: Duration::from_secs_f64(duration),
                max_requests,
                db_dir,
            };
            let result = run_scenario(scenario, &options).await?;
            write_out(&result, out.as_ref())
        }
        Command::RealtimeIdle { target: Target { url, admin_token }, connections, pid, hold, out } => {
            write_out(&callbox_loadgen::realtime::idle(&url, &admin_token, connections, pid, hold).await?, out.as_ref())
        }
        Command::RealtimeMessages { target: Target { url, admin_token }, pairs, window, duration, out } => write_out(
            &callbox_loadgen::realtime::messages(&url, &admin_token, pairs, window, duration).await?,
            out.as_ref(),
        ),
        Command::LegacyIdle { target: Target { url, admin_token }, subscribers, pid, out } => {
            if !(1..=20_000).contains(&subscribers) {
                bail!("--subscribers must be between 1 and 20000");
            }
            write_out(&callbox_loadgen::legacy::idle(&url, &admin_token, subscribers, pid).await?, out.as_ref())
        }
        Command::LegacyMessages { target: Target { url, admin_token }, pairs, duration, out } => {
            if !(0.1..=600.0).contains(&duration) || !(1..=1000).contains(&pairs) {
                bail!("--duration must be 0.1-600 seconds and --pairs 1-1000");
            }
            write_out(&callbox_loadgen::legacy::messages(&url, &admin_token, pairs, duration).await?, out.as_ref())
        }
        Command::RealtimeCalls { target: Target { url, admin_token }, pairs, duration, out } => {
            if !(0.1..=600.0).contains(&duration) {
                bail!("--duration must be between 0.1 and 600 seconds");
            }
            if !(1..=5000).contains(&pairs) {
                bail!("--pairs must be between 1 and 5000");
            }
            write_out(&callbox_loadgen::calls::calls(&url, &admin_token, pairs, duration).await?, out.as_ref())
        }
        Command::Rss { pid, label, sessions, out } => write_out(&rss(pid, &label, sessions)?, out.as_ref()),
        Command::Sessions { db } => {
            println!("{}", live_sessions(&db).await?);
            Ok(())
        }
        Command::Report { dir } => {
            print!("{}", report(&dir)?);
            Ok(())
        }
    }
}
