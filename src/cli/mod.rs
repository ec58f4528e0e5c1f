//! Command-line interface of the `hashgate` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

mod miner;
mod run;

pub use miner::{MinerAction, MinerArgs, MinerTarget};
pub use run::RunArgs;

/// Exit code for a bad configuration (BSD `EX_USAGE`), so service managers can tell it apart.
pub const EXIT_BAD_CONFIG: u8 = 64;

/// hashgate: Stratum V1 proxy with local share validation and power-aware gating.
#[derive(Debug, Parser)]
#[command(name = "hashgate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => Ok(check_config(&file)),
        Command::Miner(args) => miner::run(args).map(|()| ExitCode::SUCCESS),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match Config::load(file) {
        Ok(cfg) => {
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
        Err(err) => {
            eprintln!("{}: {err}", file.display());
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}
