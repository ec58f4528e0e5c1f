//! The site ledger: per miner per hour share-proven work, shares by outcome, energy and
//! minutes awake, asleep by reason and unreachable; per container per hour metered energy,
//! inlet temperature, and (with `[economics]`) revenue and cost; and the lifetime run
//! seconds of each climate device, which seed the climate controller's fan rotation at
//! start-up. An embedded
//! SQLite file (`rusqlite`, built in), written once per flush interval off the share path,
//! read by `hashgate ledger export` and `GET /api/v1/ledger`.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | `[ledger]`: path, retention, flush interval |
//! | [`schema`] | the tables and their numbered migrations |
//! | [`accumulate`] | pure: counter snapshots and driver readings into this boot's hour figures |
//! | [`store`] | the file: the writer (one transaction per flush), readers, exports |
//! | [`task`] | the site's ledger task: samples, flushes, prunes, sets the current-hour gauges |
//!
//! # Guarantees
//!
//! - Nothing is done per share: a flush reads the totals the stats registry already keeps.
//! - Each boot writes its own rows with absolute figures, so a flush replayed changes
//!   nothing and a restart adds to the hour rather than replacing it.
//! - A crash loses at most the figures since the last flush (one flush interval); what a
//!   flush wrote is kept whole (WAL, one transaction, `synchronous = FULL`).
//!
//! See `docs/LEDGER.md`.

pub mod accumulate;
pub mod config;
pub mod schema;
pub mod store;
pub mod task;

use std::path::PathBuf;

pub use accumulate::{
    Accumulator, Batch, DeviceRun, MinerPhase, Placement, PowerSample, Pricer, SleepReason,
};
pub use config::{LedgerConfig, LedgerConfigRaw};
pub use store::{Cell, GroupBy, Reader, Store, Table};
pub use task::{LedgerHandle, spawn};

/// What went wrong with the ledger file.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The file could not be opened or created.
    #[error("ledger {}: cannot open: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file system refused WAL (a network file system, a read-only directory).
    #[error("ledger {}: journal mode is {mode:?}, not WAL (is the directory on a local, writable file system?)", path.display())]
    NoWal {
        /// The file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// Written by a newer hashgate; refused rather than misread.
    #[error(
        "ledger schema version {found} is newer than this hashgate knows ({known}); upgrade hashgate"
    )]
    NewerSchema {
        /// Version in the file.
        found: i64,
        /// Newest this build knows.
        known: i64,
    },
    /// A time in `from`/`to` could not be read.
    #[error("{0:?} is not a time: use Unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)")]
    BadTime(String),
    /// Any other SQLite failure.
    #[error("ledger: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The ledger task has stopped.
    #[error("ledger: the writer has stopped")]
    Stopped,
}

/// Reads a time given on the command line or in the API: Unix seconds, `YYYY-MM-DD`,
/// `YYYY-MM-DDTHH:MM[:SS][Z|±HH:MM]` (UTC unless an offset is given) or `now`.
///
/// # Errors
/// [`LedgerError::BadTime`].
pub fn parse_time(text: &str) -> Result<i64, LedgerError> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    // SQLite's own date reader, so the CLI, the API and the stored hours agree on what a
    // time means.
    let conn = rusqlite::Connection::open_in_memory()?;
    let secs: Option<i64> = conn.query_row("SELECT unixepoch(?1)", [text], |r| r.get(0))?;
    secs.ok_or_else(|| LedgerError::BadTime(text.to_owned()))
}

#[cfg(test)]
mod tests;
