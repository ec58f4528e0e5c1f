//! The `hashgate` binary: the command-line edge of the library.

fn main() -> anyhow::Result<std::process::ExitCode> {
    hashgate::cli::run()
}
