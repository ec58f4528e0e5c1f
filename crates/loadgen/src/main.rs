//! The `hashgate-loadgen` binary: the command-line edge of the load generator.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    hashgate_loadgen::cli::run(hashgate_loadgen::cli::LoadgenArgs::parse())
}
