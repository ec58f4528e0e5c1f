//! The submit schedule of one connection: evenly spaced, phase-shifted per connection.
//!
//! With a total rate `R` over `N` connections, connection `i` sends its `k`-th share at
//! `t0 + i/R + k·N/R`, so the whole fleet sends one share every `1/R` seconds rather
//! than all at once. Counting what is due from the elapsed time (not from timer ticks)
//! keeps the rate exact whatever the timer's granularity: a late wake sends what it owes.

use std::time::{Duration, Instant};

/// One connection's schedule over the submit window.
///
/// Due times are computed from `(index + k·connections) / rate` directly rather than by
/// adding up a rounded period, so the fleet sends exactly `rate × duration` shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    /// Start of the window.
    t0: Instant,
    /// End of the window (exclusive): nothing is due at or after it.
    end: Instant,
    /// This connection's place in the fleet.
    index: f64,
    /// Connections in the fleet.
    connections: f64,
    /// Total shares per second.
    rate: f64,
    /// Shares already sent (or given up) under this schedule.
    pub sent: u64,
}

impl Schedule {
    /// The schedule of connection `index` of `connections` sharing `rate` shares/s,
    /// over `t0..end`.
    pub(crate) fn new(
        index: usize,
        connections: usize,
        rate: f64,
        t0: Instant,
        end: Instant,
    ) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            f64::MIN_POSITIVE
        };
        Schedule {
            t0,
            end,
            index: index as f64,
            connections: connections.max(1) as f64,
            rate,
            sent: 0,
        }
    }

    /// When share number `k` is due, `None` if it falls outside the window.
    pub(crate) fn due_at(&self, k: u64) -> Option<Instant> {
        let secs = (self.index + k as f64 * self.connections) / self.rate;
        let at = self
            .t0
            .checked_add(Duration::try_from_secs_f64(secs).ok()?)?;
        (at < self.end).then_some(at)
    }

    /// When the next unsent share is due, `None` once the window is done.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due_at(self.sent)
    }

    /// How many shares are due by `now` and not yet sent.
    pub(crate) fn owed(&self, now: Instant) -> u64 {
        let due_by = |k: u64| self.due_at(k).is_some_and(|at| at <= now);
        let elapsed = now.saturating_duration_since(self.t0).as_secs_f64();
        let estimate = ((elapsed * self.rate - self.index) / self.connections).floor();
        // An estimate from floats may be one off either way; settle it on due_at.
        let mut count = if estimate < 0.0 {
            0
        } else {
            estimate as u64 + 1
        };
        while count > 0 && !due_by(count - 1) {
            count -= 1;
        }
        while due_by(count) {
            count += 1;
        }
        count.saturating_sub(self.sent)
    }

    /// Whether every share of the window was sent.
    pub(crate) fn done(&self) -> bool {
        self.next_due().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_schedule_interleaves_and_totals_rate_times_duration() {
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(2);
        // 4 connections sharing 100 shares/s: each every 40 ms, offset by 10 ms.
        let scheds: Vec<Schedule> = (0..4)
            .map(|i| Schedule::new(i, 4, 100.0, t0, end))
            .collect();
        assert_eq!(scheds[1].next_due(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(scheds[1].due_at(1), Some(t0 + Duration::from_millis(50)));
        let total: u64 = scheds
            .iter()
            .map(|s| s.owed(end + Duration::from_secs(1)))
            .sum();
        assert_eq!(total, 200);
    }

    #[test]
    fn owed_counts_what_a_late_wake_missed() {
        let t0 = Instant::now();
        let mut s = Schedule::new(0, 1, 1000.0, t0, t0 + Duration::from_secs(1));
        assert_eq!(s.owed(t0), 1);
        assert_eq!(s.owed(t0 + Duration::from_micros(4500)), 5);
        s.sent = 5;
        assert_eq!(s.owed(t0 + Duration::from_micros(4500)), 0);
        assert_eq!(s.next_due(), Some(t0 + Duration::from_millis(5)));
        assert_eq!(s.owed(t0 + Duration::from_secs(5)), 995);
        s.sent = 1000;
        assert!(s.done());
    }

    #[test]
    fn totals_are_exact_where_a_rounded_period_would_drift() {
        // 50 connections at 600/s: a period of 83.333… ms rounds down, and adding it up
        // would squeeze a 19th share into connection 0's 1.5 s window.
        let t0 = Instant::now();
        let end = t0 + Duration::from_millis(1500);
        let total: u64 = (0..50)
            .map(|i| Schedule::new(i, 50, 600.0, t0, end).owed(end))
            .sum();
        assert_eq!(total, 900);
    }

    #[test]
    fn nothing_is_owed_before_the_first_share() {
        let t0 = Instant::now();
        let s = Schedule::new(3, 10, 10.0, t0, t0 + Duration::from_secs(10));
        assert_eq!(s.owed(t0 + Duration::from_millis(299)), 0);
        assert_eq!(s.owed(t0 + Duration::from_millis(300)), 1);
    }
}
