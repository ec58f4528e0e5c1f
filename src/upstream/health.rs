//! Is the pool still there? Decides when to probe an idle pool and when its silence means
//! it is gone. Pure: every call takes `now`.
//!
//! A pool that closes or resets the connection is noticed at once by the reader. A pool
//! that stays connected but stops talking (a hung process, a black-holed route) only shows
//! as silence, and an idle pool is silent too: so after [`PROBE_AFTER`] without a line
//! the connection sends a probe (see `connection/`: a re-authorize of the pool user,
//! the one request every Stratum V1 pool must answer), and a pool that then stays silent
//! for the whole silence timeout is declared down.

use std::time::{Duration, Instant};

/// Quiet time after which an idle pool is probed; with the default 3 s silence timeout
/// this leaves room for two probes before the verdict.
pub const PROBE_AFTER: Duration = Duration::from_secs(1);

/// What the connection should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheck {
    /// Nothing to do.
    Fine,
    /// Send a probe request (nothing heard for a while).
    Probe,
    /// The pool has been silent (or left a request unanswered) this long: give it up.
    Silent(Duration),
}

/// Liveness bookkeeping of one pool connection.
#[derive(Debug, Clone)]
pub struct Health {
    /// Silence after which the pool counts as down.
    silence: Duration,
    /// Quiet time before a probe (and between probes).
    probe_after: Duration,
    /// Last time any line came from the pool.
    last_heard: Instant,
    /// When the oldest request not yet followed by any answer was sent; pools answer in
    /// order, so any answer means every earlier line was read.
    awaiting_since: Option<Instant>,
    /// Last probe sent, so probes go at most once per `probe_after`.
    last_probe: Option<Instant>,
}

impl Health {
    /// Starts counting at `now` (the connection was just made).
    pub fn new(silence: Duration, now: Instant) -> Health {
        Health {
            silence,
            probe_after: PROBE_AFTER.min(silence / 3),
            last_heard: now,
            awaiting_since: None,
            last_probe: None,
        }
    }

    /// A line came from the pool.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// An answer came from the pool: every request sent before it was read.
    pub fn answered(&mut self, now: Instant) {
        self.last_heard = now;
        self.awaiting_since = None;
    }

    /// A request went out; its answer is due within the silence timeout.
    pub fn sent_request(&mut self, now: Instant) {
        self.awaiting_since.get_or_insert(now);
    }

    /// Decides what to do at `now`; a [`HealthCheck::Probe`] answer is remembered, so the
    /// next probe comes `probe_after` later at the earliest.
    pub fn check(&mut self, now: Instant) -> HealthCheck {
        let quiet = now.saturating_duration_since(self.last_heard);
        let unanswered = self
            .awaiting_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        let worst = quiet.max(unanswered);
        if worst >= self.silence {
            return HealthCheck::Silent(worst);
        }
        let probed_recently = self
            .last_probe
            .is_some_and(|at| now.saturating_duration_since(at) < self.probe_after);
        if quiet >= self.probe_after && !probed_recently {
            self.last_probe = Some(now);
            return HealthCheck::Probe;
        }
        HealthCheck::Fine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S3: Duration = Duration::from_secs(3);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_idle_pool_is_probed_once_a_second() {
        let t0 = Instant::now();
        let mut h = Health::new(S3, t0);
        assert_eq!(h.check(t0 + ms(900)), HealthCheck::Fine);
        assert_eq!(h.check(t0 + ms(1000)), HealthCheck::Probe);
        h.sent_request(t0 + ms(1000));
        assert_eq!(
            h.check(t0 + ms(1500)),
            HealthCheck::Fine,
            "one probe per second"
        );
        // The answer comes: quiet again from there.
        h.answered(t0 + ms(1010));
        assert_eq!(h.check(t0 + ms(1900)), HealthCheck::Fine);
        assert_eq!(h.check(t0 + ms(2010)), HealthCheck::Probe);
    }

    #[test]
    fn silence_for_the_timeout_is_down() {
        let t0 = Instant::now();
        let mut h = Health::new(S3, t0);
        assert_eq!(h.check(t0 + ms(1000)), HealthCheck::Probe);
        assert_eq!(h.check(t0 + ms(2000)), HealthCheck::Probe);
        assert_eq!(h.check(t0 + ms(2999)), HealthCheck::Fine);
        assert_eq!(h.check(t0 + ms(3000)), HealthCheck::Silent(S3));
    }

    #[test]
    fn jobs_without_answers_are_still_silence() {
        let t0 = Instant::now();
        let mut h = Health::new(S3, t0);
        h.sent_request(t0 + ms(100));
        // Notifies keep coming but the request is never answered.
        for step in 1..=30 {
            h.heard(t0 + ms(100 * step));
        }
        assert_eq!(h.check(t0 + ms(3000)), HealthCheck::Fine);
        assert_eq!(h.check(t0 + ms(3100)), HealthCheck::Silent(S3));
    }

    #[test]
    fn a_short_silence_timeout_probes_sooner() {
        let t0 = Instant::now();
        let mut h = Health::new(ms(600), t0);
        assert_eq!(h.check(t0 + ms(200)), HealthCheck::Probe);
        assert_eq!(h.check(t0 + ms(600)), HealthCheck::Silent(ms(600)));
    }
}
