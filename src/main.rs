//! The `hashgate` binary: the command-line edge of the site and lab crates.

mod cli;

fn main() -> anyhow::Result<std::process::ExitCode> {
    cli::run()
}
