//! Holding cpuminer to a set hashrate, so a scenario's fleet has the same shape on any
//! machine.
//!
//! cpuminer has no rate limit, and one thread runs at 8–15 MH/s depending on the host and
//! its load; in a fleet of simulated ASICs worth 4 MH/s that decides whether a weighted
//! split is reachable at all. The throttle stops and continues the process in a fixed
//! period (SIGSTOP/SIGCONT, as `cpulimit` does), so its average rate is the duty cycle times
//! its free-running rate, measured first with cpuminer's own `--benchmark`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::process::{Pid, Signal};

use crate::process::{Sink, Spawn};

/// One stop-and-continue cycle: short enough that a share's arrival is not bunched (a
/// share every 30–60 ms at the scenarios' difficulty), long enough that the signals cost
/// nothing.
const PERIOD: Duration = Duration::from_millis(100);
/// How long the benchmark hashes before its last figure is read; cpuminer prints one every
/// 5 s after the first.
const BENCHMARK: Duration = Duration::from_secs(7);

/// cpuminer's one-thread SHA-256d rate on this machine now, H/s, from `minerd --benchmark`
/// (its last `Total: N khash/s` line); `None` when it printed none.
pub fn benchmark(minerd: &Path, dir: &Path) -> Option<f64> {
    let log = dir.join("cpuminer-benchmark.log");
    let mut proc = Spawn::new("cpuminer-benchmark", minerd, BENCHMARK * 2)
        .args(["--benchmark", "-a", "sha256d", "-t", "1"])
        .stdout(Sink::File(log.clone()))
        .stderr(Sink::File(log.clone()))
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(BENCHMARK);
    proc.kill();
    let text = std::fs::read_to_string(&log).ok()?;
    last_total(&text)
}

/// The rate in cpuminer's last `Total: N khash/s` line, H/s.
fn last_total(text: &str) -> Option<f64> {
    text.lines()
        .filter_map(|line| line.split_once("Total: ")?.1.strip_suffix(" khash/s"))
        .filter_map(|khs| khs.trim().parse::<f64>().ok())
        .next_back()
        .map(|khs| khs * 1e3)
}

/// A running duty cycle on one process; dropping it leaves the process running.
#[derive(Debug)]
pub struct Throttle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pid: Pid,
}

impl Throttle {
    /// Lets `pid` run `duty` (0–1) of every period and stops it for the rest.
    pub fn start(pid: Pid, duty: f64) -> Throttle {
        let duty = duty.clamp(0.05, 1.0);
        let stop = Arc::new(AtomicBool::new(false));
        let running = PERIOD.mul_f64(duty);
        let paused = PERIOD - running;
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                while !stop.load(Ordering::Relaxed) {
                    // A process that has ended answers ESRCH: the cycle ends with it.
                    if rustix::process::kill_process(pid, Signal::CONT).is_err() {
                        return;
                    }
                    std::thread::sleep(running);
                    if paused.is_zero() {
                        continue;
                    }
                    if rustix::process::kill_process(pid, Signal::STOP).is_err() {
                        return;
                    }
                    std::thread::sleep(paused);
                }
            }
        });
        Throttle {
            stop,
            thread: Some(thread),
            pid,
        }
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // The cycle may have ended on a stop; a stopped process would hold its SIGTERM.
        let _ = rustix::process::kill_process(self.pid, Signal::CONT);
    }
}

#[cfg(test)]
mod tests {
    use super::last_total;

    #[test]
    fn the_last_total_line_is_the_rate() {
        let text = "[2026-12-04 18:12:52] thread 0: 2097152 hashes, 14420 khash/s\n\
                    [2026-12-04 18:12:52] Total: 14420 khash/s\n\
                    [2026-12-04 18:12:57] Total: 14948 khash/s\n";
        assert_eq!(last_total(text), Some(14_948_000.0));
        assert_eq!(last_total("no figures yet\n"), None);
    }
}
