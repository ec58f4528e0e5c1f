//! Command-line interface of the `hashgate` binary: what a site runs (`run`,
//! `check-config`, `miner`) and the way to see it work (`demo`). The load generator is its
//! own binary, `hashgate-loadgen`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use hashgate_site::config::{CheckedFile, check_file};

mod demo;
mod ledger;
mod miner;
mod run;
mod serve;

pub(crate) use demo::DemoArgs;
pub(crate) use miner::MinerArgs;
pub(crate) use run::RunArgs;

/// Exit code for a bad configuration (BSD `EX_USAGE`), so service managers can tell it apart.
pub(crate) const EXIT_BAD_CONFIG: u8 = 64;

/// `hashgate --version`: the crate version and the git commit it was built from (`unknown`
/// when built outside a git checkout, e.g. from a source tarball).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HASHGATE_GIT_COMMIT"),
    ")"
);

/// hashgate: Stratum V1 proxy with local share validation and power-aware gating.
#[derive(Debug, Parser)]
#[command(name = "hashgate", version = VERSION, about)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log format: `text` (coloured only on a terminal; `NO_COLOR` turns colour off) or
    /// `json` (one object per line).
    #[arg(long, global = true, env = "HASHGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the proxy against an in-process simulated site (pools, ASICs, management APIs).
    Demo(DemoArgs),
    /// Run the proxy: listen for miners, mine through the configured pools.
    Run(RunArgs),
    /// Validate a configuration file and name the first bad field.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Read the site ledger (hourly work, shares and energy): `hashgate ledger export`.
    Ledger(ledger::LedgerArgs),
    /// Ask one miner's management API for its status, or sleep / wake / power-limit it.
    Miner(MinerArgs),
}

/// Parses the command line and runs the chosen command.
///
/// # Errors
/// Whatever the command fails with; configuration errors exit with [`EXIT_BAD_CONFIG`].
pub(crate) fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => {
            // The demo prints its own status lines; only warnings unless RUST_LOG asks.
            init_tracing(cli.log_format, "warn");
            demo::run(&args).map(|()| ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            init_tracing(cli.log_format, "info");
            serve::run(&args)
        }
        Command::CheckConfig { file } => Ok(check_config(&file)),
        Command::Miner(args) => miner::run(args).map(|()| ExitCode::SUCCESS),
        Command::Ledger(args) => {
            init_tracing(cli.log_format, "warn");
            ledger::run(&args).map(|()| ExitCode::SUCCESS)
        }
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match check_file(file) {
        Ok(CheckedFile::Site(cfg)) => {
            let power = match &cfg.power {
                Some(p) => format!(
                    "power gating: {} container(s), {} miner(s)",
                    p.containers.len(),
                    p.miners.len()
                ),
                None => "no power gating".to_owned(),
            };
            let economics = match &cfg.economics {
                Some(e) => format!(
                    "; economics: {} price, {} tariff(s), curtailment {}",
                    match e.price {
                        hashgate_site::economics::PriceSource::Fixed(_) => "fixed",
                        hashgate_site::economics::PriceSource::Http { .. } => "polled",
                    },
                    e.tariffs.len(),
                    if e.rule.is_some() { "on" } else { "off" }
                ),
                None => String::new(),
            };
            let ledger = match &cfg.ledger {
                Some(l) => format!(
                    "; ledger {} (kept {} days, flushed every {} s)",
                    l.path.display(),
                    l.retention_days,
                    l.flush.as_secs_f64()
                ),
                None => String::new(),
            };
            // One listener reads as before; several are named with their addresses.
            let listen = if cfg.listeners.is_empty() {
                cfg.proxy.listen.to_string()
            } else {
                cfg.listeners
                    .iter()
                    .map(|l| {
                        let tls = if l.tls.is_some() { " tls" } else { "" };
                        format!("{} {}{tls}", l.name, l.listen)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            println!(
                "{}: ok (listen {listen}, {} pool(s): {}; {power}{economics}{ledger})",
                file.display(),
                cfg.pools.len(),
                cfg.pools
                    .iter()
                    .map(|p| format!("{} {}", p.name, p.url))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            ExitCode::SUCCESS
        }
        Ok(CheckedFile::PowerInventory(power)) => {
            println!(
                "{}: ok (a power inventory on its own, for the [power] section of a site file: \
                 {} container(s), {} miner(s))",
                file.display(),
                power.containers.len(),
                power.miners.len()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{}: {err}", file.display());
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One human-readable line per event; coloured only on a terminal without `NO_COLOR`.
    Text,
    /// One JSON object per line (timestamp, level, target, message and fields), for log
    /// shippers.
    Json,
}

/// Whether text logs get ANSI colours: only when stderr is a terminal and `NO_COLOR`
/// (<https://no-color.org>) is unset or empty, so files, pipes and journald get plain text.
fn log_colours(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Logs to stderr at `default_level`; `RUST_LOG` (e.g. `hashgate=debug`) overrides it.
fn init_tracing(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(log_colours(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(log_colours(true, None));
        assert!(log_colours(true, Some(OsStr::new(""))));
        assert!(!log_colours(true, Some(OsStr::new("1"))));
        assert!(!log_colours(false, None));
    }

    #[test]
    fn version_names_the_commit() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")), "{VERSION}");
        assert!(VERSION.contains("(commit "), "{VERSION}");
    }
}
