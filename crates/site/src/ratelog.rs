//! Rate limiting for warnings that repeat: a refused connection, a garbage pool line, an
//! EMFILE every 100 ms. An attacker or a broken peer must not be able to fill the disk or
//! drown the one line an operator needs, yet nothing may vanish silently either, so the first
//! event of each window is logged and the next logged line says how many were suppressed.
//!
//! The gate is lock-free (two atomics) because it sits on accept and read paths; it takes the
//! caller's `now` so that it is testable without a clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long one warning of a kind stands for the ones after it, unless the caller picks.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// Lets one event through per window and counts the ones it holds back.
#[derive(Debug)]
pub struct RateLimitedLog {
    origin: Instant,
    window_nanos: u64,
    /// Nanoseconds after `origin` at which the next event may be logged (0: at once).
    next_nanos: AtomicU64,
    suppressed: AtomicU64,
}

/// What the caller should do with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it, saying that `suppressed` similar events were held back since the last line.
    Log {
        /// Events of this kind not logged since the previous logged one.
        suppressed: u64,
    },
    /// Do not log it; it is counted and reported with the next logged one.
    Suppress,
}

impl RateLimitedLog {
    /// A gate that logs at most one event per `window`.
    pub fn new(window: Duration) -> Self {
        Self::starting_at(window, Instant::now())
    }

    /// A gate whose clock starts at `origin` (tests pass a synthetic instant).
    pub fn starting_at(window: Duration, origin: Instant) -> Self {
        RateLimitedLog {
            origin,
            window_nanos: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX).max(1),
            next_nanos: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Decides for one event happening at `now`.
    pub fn check(&self, now: Instant) -> Verdict {
        let at = u64::try_from(now.saturating_duration_since(self.origin).as_nanos())
            .unwrap_or(u64::MAX);
        let next = self.next_nanos.load(Ordering::Relaxed);
        if at >= next
            && self
                .next_nanos
                .compare_exchange(
                    next,
                    at.saturating_add(self.window_nanos),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Verdict::Log {
                suppressed: self.suppressed.swap(0, Ordering::Relaxed),
            };
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        Verdict::Suppress
    }

    /// [`check`](Self::check) at the current instant.
    pub fn check_now(&self) -> Verdict {
        self.check(Instant::now())
    }
}

impl Default for RateLimitedLog {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_event_logs_then_window_suppresses_and_reports_the_count() {
        let t0 = Instant::now();
        let gate = RateLimitedLog::starting_at(Duration::from_secs(10), t0);
        assert_eq!(gate.check(t0), Verdict::Log { suppressed: 0 });
        for i in 1..=5 {
            assert_eq!(gate.check(t0 + Duration::from_secs(i)), Verdict::Suppress);
        }
        assert_eq!(
            gate.check(t0 + Duration::from_secs(10)),
            Verdict::Log { suppressed: 5 }
        );
        assert_eq!(gate.check(t0 + Duration::from_secs(11)), Verdict::Suppress);
        assert_eq!(
            gate.check(t0 + Duration::from_secs(60)),
            Verdict::Log { suppressed: 1 }
        );
    }

    #[test]
    fn concurrent_callers_log_once_per_window_and_lose_no_count() {
        let t0 = Instant::now();
        let gate = std::sync::Arc::new(RateLimitedLog::starting_at(Duration::from_secs(3600), t0));
        let logged = std::sync::Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let gate = gate.clone();
                let logged = logged.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        if let Verdict::Log { .. } = gate.check(t0) {
                            logged.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(logged.load(Ordering::Relaxed), 1);
        assert_eq!(
            gate.check(t0 + Duration::from_secs(3600)),
            Verdict::Log { suppressed: 3999 }
        );
    }
}
