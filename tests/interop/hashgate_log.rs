//! hashgate's log, read only to explain what the peers recorded (never as the count under
//! test) and for the one figure it alone has after a SIGTERM: shares it still held.

use std::path::PathBuf;

/// hashgate's stderr log (`RUST_LOG=info`, no colours).
#[derive(Debug, Clone)]
pub struct HashgateLog {
    path: PathBuf,
}

impl HashgateLog {
    /// The log at `path`.
    pub fn new(path: PathBuf) -> HashgateLog {
        HashgateLog { path }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    /// Lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.text().lines().filter(|l| l.contains(needle)).count()
    }

    /// Σ `shares=N` over `shares left without a pool verdict` lines with `reason=<reason>`:
    /// the sent shares a closing pool connection never got an answer for.
    pub fn shares_left_without_verdict(&self, reason: &str) -> u64 {
        let tag = format!("reason={reason}");
        self.text()
            .lines()
            .filter(|l| l.contains("shares left without a pool verdict") && l.contains(&tag))
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("shares="))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .sum()
    }

    /// Up to `n` of the first lines containing `needle`, for failure messages.
    pub fn excerpt(&self, needle: &str, n: usize) -> String {
        crate::excerpt::lines_with(&self.text(), needle, n)
    }

    /// The log's length now, to quote only what comes after it.
    pub fn mark(&self) -> usize {
        self.text().len()
    }

    /// Up to `n` of the first lines containing `needle` written after `mark`.
    pub fn excerpt_since(&self, mark: usize, needle: &str, n: usize) -> String {
        let text = self.text();
        crate::excerpt::lines_with(text.get(mark..).unwrap_or_default(), needle, n)
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> String {
        let text = self.text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}
