//! `[ledger]`: where the site ledger lives and how long it keeps hours.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

/// Default retention: a little over 13 months, so a yearly bill can be compared with the
/// same month a year before.
pub const DEFAULT_RETENTION_DAYS: u32 = 400;
/// Default flush interval: the most a crash can lose, and one small transaction a minute.
pub const DEFAULT_FLUSH: Duration = Duration::from_secs(60);

/// `[ledger]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfigRaw {
    /// SQLite file, created when missing.
    pub path: Option<String>,
    /// Days of hours kept, default [`DEFAULT_RETENTION_DAYS`].
    pub retention_days: Option<u32>,
    /// Seconds between flushes, default 60.
    pub flush_secs: Option<f64>,
}

/// `[ledger]` validated.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerConfig {
    /// The SQLite file.
    pub path: PathBuf,
    /// Hours older than this many days are deleted (at start and once an hour).
    pub retention_days: u32,
    /// Time between flushes: the most a crash (SIGKILL, power cut) loses.
    pub flush: Duration,
}

impl LedgerConfigRaw {
    /// Checks every field.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `ledger.path` (missing or empty),
    /// `ledger.retention_days` (0 or over 10 years) or `ledger.flush_secs` (not 1 s to 1 h).
    pub fn validate(&self) -> Result<LedgerConfig, ConfigError> {
        let path = match self.path.as_deref() {
            Some(p) if !p.trim().is_empty() => PathBuf::from(p),
            _ => {
                return Err(ConfigError::invalid(
                    "ledger.path",
                    "missing: the SQLite file to write (e.g. \"/var/lib/hashgate/ledger.sqlite\")",
                ));
            }
        };
        let retention_days = self.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS);
        if !(1..=3660).contains(&retention_days) {
            return Err(ConfigError::invalid(
                "ledger.retention_days",
                "must be 1 to 3660 days",
            ));
        }
        let flush = match self.flush_secs {
            None => DEFAULT_FLUSH,
            Some(s) if s.is_finite() && (1.0..=3600.0).contains(&s) => Duration::from_secs_f64(s),
            Some(s) => {
                return Err(ConfigError::invalid(
                    "ledger.flush_secs",
                    format!("{s}: must be 1 to 3600 seconds"),
                ));
            }
        };
        Ok(LedgerConfig {
            path,
            retention_days,
            flush,
        })
    }
}
