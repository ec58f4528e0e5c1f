//! cpuminer's own record: one `accepted: N/M … (yay!!!)` or `(booooo)` line per answered
//! share, `Stratum connection interrupted` per lost connection, and (with `-P`) every
//! answer as received.

use std::fmt;
use std::path::PathBuf;

/// A cpuminer log file.
#[derive(Debug, Clone)]
pub struct MinerLog {
    path: PathBuf,
}

/// What the miner was told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinerCounts {
    /// Shares answered `true` (`yay!!!` lines).
    pub yay: usize,
    /// Shares answered otherwise (`booooo` lines).
    pub boo: usize,
    /// `mining.submit` requests sent (from the protocol dump).
    pub submits: usize,
    /// `Stratum connection interrupted` lines.
    pub interrupted: usize,
    /// Answers refusing a share as below the difficulty (code 23): hashgate judging work
    /// by a difficulty the miner was not working at.
    pub low_difficulty: usize,
}

impl fmt::Display for MinerCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} submitted, {} yay, {} boo ({} low difficulty), {} connection(s) interrupted",
            self.submits, self.yay, self.boo, self.low_difficulty, self.interrupted
        )
    }
}

impl MinerLog {
    /// The log at `path`.
    pub fn new(path: PathBuf) -> MinerLog {
        MinerLog { path }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    /// Counts the lines above.
    pub fn counts(&self) -> MinerCounts {
        let mut c = MinerCounts::default();
        for line in self.text().lines() {
            if line.contains("] accepted: ") {
                if line.ends_with("(yay!!!)") {
                    c.yay += 1;
                } else if line.ends_with("(booooo)") {
                    c.boo += 1;
                }
            } else if line.contains("] > ") && line.contains("\"mining.submit\"") {
                c.submits += 1;
            } else if line.contains("Stratum connection interrupted") {
                c.interrupted += 1;
            } else if line.contains("] < ") && line.contains("\"error\":[23,") {
                c.low_difficulty += 1;
            }
        }
        c
    }

    /// Up to `n` of the first lines containing `needle`, for failure messages.
    pub fn excerpt(&self, needle: &str, n: usize) -> String {
        crate::excerpt::lines_with(&self.text(), needle, n)
    }
}
