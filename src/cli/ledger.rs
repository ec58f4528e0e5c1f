//! `hashgate ledger export`: the ledger's hours as CSV or JSON, for billing and reports.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};

use hashgate_site::config::Config;
use hashgate_site::ledger::{GroupBy, Reader, parse_time};

/// `hashgate ledger ...`
#[derive(Debug, Args)]
pub(crate) struct LedgerArgs {
    /// What to do with the ledger.
    #[command(subcommand)]
    pub command: LedgerCommand,
}

/// The ledger subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum LedgerCommand {
    /// Print the hours in a window, one row per hour and miner, container or customer.
    Export(ExportArgs),
}

/// How the export groups the hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum By {
    /// One row per miner per hour.
    Miner,
    /// One row per container per hour (miners summed, meter, PUE, inlet).
    Container,
    /// One row per customer tag per hour.
    Customer,
}

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// RFC 4180 CSV with a header line.
    Csv,
    /// A JSON array of objects keyed by column.
    Json,
}

/// `hashgate ledger export` arguments.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The site configuration whose `[ledger] path` to read.
    #[arg(long, short, env = "HASHGATE_CONFIG", required_unless_present = "file")]
    pub config: Option<PathBuf>,
    /// The ledger file itself (instead of `--config`).
    #[arg(long, conflicts_with = "config")]
    pub file: Option<PathBuf>,
    /// First hour (Unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ; UTC); default 24 h
    /// before `--to`.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the window, exclusive (same forms); default now.
    #[arg(long)]
    pub to: Option<String>,
    /// Grouping.
    #[arg(long, value_enum, default_value_t = By::Miner)]
    pub by: By,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
}

/// Runs `hashgate ledger ...`.
///
/// # Errors
/// An unreadable configuration or ledger, a bad time.
pub(crate) fn run(args: &LedgerArgs) -> anyhow::Result<()> {
    match &args.command {
        LedgerCommand::Export(export) => run_export(export),
    }
}

fn run_export(args: &ExportArgs) -> anyhow::Result<()> {
    let path = match (&args.file, &args.config) {
        (Some(file), _) => file.clone(),
        (None, Some(config)) => {
            let config =
                Config::load(config).with_context(|| format!("reading {}", config.display()))?;
            config
                .ledger
                .map(|l| l.path)
                .context("the configuration has no [ledger] section")?
        }
        (None, None) => anyhow::bail!("give --config or --file"),
    };
    let to = match &args.to {
        Some(t) => parse_time(t).context("--to")?,
        None => parse_time("now")?,
    };
    let from = match &args.from {
        Some(t) => parse_time(t).context("--from")?,
        None => to - 86_400,
    };
    let by = match args.by {
        By::Miner => GroupBy::Miner,
        By::Container => GroupBy::Container,
        By::Customer => GroupBy::Customer,
    };
    let table = Reader::open(&path)?.export(from, to, by)?;
    let text = match args.format {
        Format::Csv => table.to_csv(),
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&table.to_json())?),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
