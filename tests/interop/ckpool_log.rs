//! ckpool's own record of what it did: its log file and its `-L` share logs.
//!
//! | log line (level 6) | meaning |
//! |---|---|
//! | `Connected new client …` | a TCP connection accepted |
//! | `Authorised client …` | a `mining.authorize` answered `true` |
//! | `Accepted client … share …` | a share accepted |
//! | `Rejected client …` | a share refused: duplicate, above target, or a bad job id, ntime, nonce… |
//! | `Invalid share from client …` | a submit refused before it was judged as a share: a worker name other than the authorized one, malformed parameters |
//! | `… trying to authorise twice` | a second `mining.authorize` on one connection: never answered |
//! | `Unhandled client … method …` | a method ckpool does not know (e.g. `mining.ping`): never answered |

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The log file and the share-log directory of one ckpool instance.
#[derive(Debug, Clone)]
pub struct CkpoolLog {
    log: PathBuf,
    logdir: PathBuf,
}

/// Counts of the log lines in the table above.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// `Connected new client`.
    pub connections: usize,
    /// `Authorised client`.
    pub authorised: usize,
    /// `Accepted client`.
    pub accepted: usize,
    /// `Rejected client`.
    pub rejected: usize,
    /// `Invalid share from client`.
    pub invalid: usize,
    /// `trying to authorise twice`.
    pub authorise_twice: usize,
    /// `Unhandled client`.
    pub unhandled: usize,
}

impl PoolCounts {
    /// Every submit ckpool logged a verdict for.
    pub fn verdicts(&self) -> usize {
        self.accepted + self.rejected + self.invalid
    }
}

impl fmt::Display for PoolCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} accepted, {} rejected, {} invalid; {} connection(s), {} authorised, \
             {} second authorize(s) unanswered, {} unhandled method(s)",
            self.accepted,
            self.rejected,
            self.invalid,
            self.connections,
            self.authorised,
            self.authorise_twice,
            self.unhandled
        )
    }
}

/// What the `-L` share logs hold: one JSON record per share judged (a submit refused
/// before it was judged, such as a worker mismatch, has none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShareTally {
    /// Records with `result: true`.
    pub accepted: usize,
    /// Records with `result: false`, by ckpool's `error` value as written.
    pub rejected_by_error: BTreeMap<String, usize>,
    /// The worker names ckpool credited.
    pub workers: BTreeSet<String>,
}

impl fmt::Display for ShareTally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} accepted, rejected {:?}, credited to {:?}",
            self.accepted, self.rejected_by_error, self.workers
        )
    }
}

impl CkpoolLog {
    /// The log at `log`, share logs anywhere under `logdir`.
    pub fn new(log: PathBuf, logdir: &Path) -> CkpoolLog {
        CkpoolLog {
            log,
            logdir: logdir.to_owned(),
        }
    }

    fn text(&self) -> String {
        // Not there yet is the same as empty: ckpool creates it on its first line.
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether any line contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.text().contains(needle)
    }

    /// Lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.text().lines().filter(|l| l.contains(needle)).count()
    }

    /// Counts the lines of the module table.
    pub fn counts(&self) -> PoolCounts {
        let mut c = PoolCounts::default();
        for line in self.text().lines() {
            let bump = if line.contains("] Connected new client ") {
                &mut c.connections
            } else if line.contains("] Authorised client ") {
                &mut c.authorised
            } else if line.contains("] Accepted client ") {
                &mut c.accepted
            } else if line.contains("] Rejected client ") {
                &mut c.rejected
            } else if line.contains("] Invalid share from client ") {
                &mut c.invalid
            } else if line.contains(" trying to authorise twice") {
                &mut c.authorise_twice
            } else if line.contains("] Unhandled client ") {
                &mut c.unhandled
            } else {
                continue;
            };
            *bump += 1;
        }
        c
    }

    /// Up to `n` of the first lines containing `needle`, for failure messages.
    pub fn excerpt(&self, needle: &str, n: usize) -> String {
        crate::excerpt::lines_with(&self.text(), needle, n)
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> String {
        let text = self.text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Tallies every record of every `.sharelog` under the log directory.
    pub fn share_tally(&self) -> ShareTally {
        let mut tally = ShareTally::default();
        for file in sharelogs(&self.logdir) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for line in text.lines() {
                // The last line may be half written while the pool runs.
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                if v["result"] == Value::Bool(true) {
                    tally.accepted += 1;
                } else {
                    *tally
                        .rejected_by_error
                        .entry(v["error"].to_string())
                        .or_default() += 1;
                }
                if let Some(worker) = v["workername"].as_str() {
                    tally.workers.insert(worker.to_owned());
                }
            }
        }
        tally
    }
}

/// ckpool writes share logs as `logdir/<height hex>/<workinfo id hex>.sharelog`.
fn sharelogs(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(sharelogs(&path));
        } else if path.extension().is_some_and(|e| e == "sharelog") {
            found.push(path);
        }
    }
    found
}
