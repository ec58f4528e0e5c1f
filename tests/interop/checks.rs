//! Expectations collected over a whole scenario and reported together.
//!
//! A scenario keeps measuring after its first broken expectation (a failover that goes
//! wrong still has timings worth printing), then fails once with every finding.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// The findings of one scenario.
#[derive(Debug)]
pub struct Checks {
    scenario: &'static str,
    logs: PathBuf,
    failed: Vec<String>,
    notes: Vec<String>,
}

impl Checks {
    /// Findings of `scenario`, whose processes log into `logs`.
    pub fn new(scenario: &'static str, logs: PathBuf) -> Checks {
        Checks {
            scenario,
            logs,
            failed: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Records a broken expectation unless `ok`; `seen` says what was observed instead.
    pub fn expect(&mut self, ok: bool, seen: impl FnOnce() -> String) {
        if !ok {
            self.failed.push(seen());
        }
    }

    /// Records a measurement; printed at once and repeated in a failure message.
    pub fn note(&mut self, line: impl Into<String>) {
        let line = line.into();
        println!("interop {}: {line}", self.scenario);
        self.notes.push(line);
    }

    /// Panics with every broken expectation and every measurement, if anything broke.
    pub fn finish(self) {
        if self.failed.is_empty() {
            println!("interop {}: all expectations held", self.scenario);
            return;
        }
        let mut msg = format!(
            "{}: {} expectation(s) broken\n",
            self.scenario,
            self.failed.len()
        );
        for (i, f) in self.failed.iter().enumerate() {
            let _ = writeln!(msg, "  {}. {f}", i + 1);
        }
        msg.push_str("measured:\n");
        for n in &self.notes {
            let _ = writeln!(msg, "  - {n}");
        }
        let _ = write!(msg, "logs: {}", self.logs.display());
        panic!("{msg}");
    }
}

/// A measured duration for a report line, or "never".
pub fn secs(d: Option<Duration>) -> String {
    d.map_or_else(
        || "never".to_owned(),
        |d| format!("{:.2} s", d.as_secs_f64()),
    )
}
