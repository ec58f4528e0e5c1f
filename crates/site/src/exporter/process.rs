//! `hashgate_build_info` and the standard `process_*` families (open and maximum file
//! descriptors, resident memory, start time), read from `/proc/self` at scrape time.
//!
//! Every miner is a file descriptor, so `process_open_fds / process_max_fds` is what runs
//! out first on a large site; the alert on it needs both. Off Linux the `/proc` families
//! are simply absent.

use std::sync::OnceLock;
use std::time::SystemTime;

use super::text::{Kind, TextWriter};

/// The crate version `hashgate_build_info` reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit `hashgate_build_info` reports: `HASHGATE_COMMIT` at build time, else `unknown`.
pub const COMMIT: &str = match option_env!("HASHGATE_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

/// The compiler that built hashgate (`rustc --version`, recorded by the build script).
pub const RUSTC: &str = env!("HASHGATE_RUSTC_VERSION");

static STARTED: OnceLock<SystemTime> = OnceLock::new();

/// Notes the process start time (the first call wins); the exporter calls it when built,
/// which is at start-up.
pub fn mark_start() {
    STARTED.get_or_init(SystemTime::now);
}

/// Open file descriptors of this process.
pub fn open_fds() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(entries.count() as u64)
}

/// The soft limit on open file descriptors (`Max open files` in `/proc/self/limits`).
pub fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_max_open_files(&limits)
}

fn parse_max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .strip_prefix("Max open files")?
        .split_whitespace()
        .next()?;
    // "unlimited" has no number; the family is left out rather than faked.
    soft.parse().ok()
}

/// Resident set size in bytes (`VmRSS` in `/proc/self/status`).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn count(n: u64) -> f64 {
    // Exact below 2⁵³.
    n as f64
}

/// Writes the build-info and process families.
pub(super) fn render(w: &mut TextWriter) {
    w.family(
        "hashgate_build_info",
        Kind::Gauge,
        "Always 1; labelled with the hashgate version, the commit it was built from and the compiler.",
    );
    w.sample(
        "hashgate_build_info",
        &[("version", VERSION), ("commit", COMMIT), ("rustc", RUSTC)],
        1.0,
    );
    let mut one = |name: &str, help: &str, value: Option<f64>| {
        if let Some(v) = value {
            w.family(name, Kind::Gauge, help);
            w.sample(name, &[], v);
        }
    };
    one(
        "process_open_fds",
        "Number of open file descriptors.",
        open_fds().map(count),
    );
    one(
        "process_max_fds",
        "Maximum number of open file descriptors (soft limit).",
        max_fds().map(count),
    );
    one(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        resident_bytes().map(count),
    );
    one(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch in seconds.",
        STARTED.get().map(|t| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_status_are_parsed() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63455                63455                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
        assert_eq!(
            parse_max_open_files("Max open files unlimited unlimited files\n"),
            None
        );
        let status = "Name:\thashgate\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_fds_a_limit_and_memory() {
        let open = open_fds().expect("/proc/self/fd");
        let max = max_fds().expect("/proc/self/limits");
        assert!(open > 0 && open <= max, "{open} of {max}");
        assert!(resident_bytes().expect("VmRSS") > 0);
    }
}
