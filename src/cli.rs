//! Command-line interface of the `hashgate` binary.

use clap::Parser;

/// hashgate command line.
#[derive(Debug, Parser)]
#[command(name = "hashgate", version, about)]
pub struct Cli {}

/// Parses the command line and runs the chosen command.
pub fn run() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
