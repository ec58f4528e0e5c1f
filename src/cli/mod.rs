//! Command-line interface of the `hashgate` binary: what a site runs (`run`,
//! `check-config`, `miner`) and the way to see it work (`demo`). The load generator is its
//! own binary, `hashgate-loadgen`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use hashgate_site::config::{CheckedFile, check_file};

mod demo;
mod miner;
mod run;
mod serve;

pub(crate) use demo::DemoArgs;
pub(crate) use miner::MinerArgs;
pub(crate) use run::RunArgs;

/// Exit code for a bad configuration (BSD `EX_USAGE`), so service managers can tell it apart.
pub(crate) const EXIT_BAD_CONFIG: u8 = 64;

/// hashgate: Stratum V1 proxy with local share validation and power-aware gating.
#[derive(Debug, Parser)]
#[command(name = "hashgate", version, about)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
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
            init_demo_tracing();
            demo::run(&args).map(|()| ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            init_tracing();
            serve::run(&args)
        }
        Command::CheckConfig { file } => Ok(check_config(&file)),
        Command::Miner(args) => miner::run(args).map(|()| ExitCode::SUCCESS),
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
            println!(
                "{}: ok (listen {}, {} pool(s): {}; {power})",
                file.display(),
                cfg.proxy.listen,
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

/// Logs to stderr; `RUST_LOG` (e.g. `hashgate=debug`) overrides the default `info` level.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The demo prints its own status lines; log only warnings unless `RUST_LOG` asks for more.
fn init_demo_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
