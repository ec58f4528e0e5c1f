//! Is the pool still there? Decides when to probe an idle pool and when its silence means
//! it is gone. Pure: every call takes `now`.
//!
//! A pool that closes or resets the connection is noticed at once by the reader. A pool
//! that stays connected but stops talking (a hung process, a black-holed route) only shows
//! as silence, and an idle pool is silent too: so after [`PROBE_AFTER`] without a line
//! the connection sends a probe (see `connection/`: a re-authorize of the pool user,
//! the one request every Stratum V1 pool must answer), and a pool that then stays silent
//! for the whole silence timeout is declared down.
//!
//! # Silence is the pool's, not the proxy's
//!
//! Quiet time only counts while the connection could have read. The connection checks on
//! a fixed tick; when a check comes more than one tick late, the proxy's own task was not
//! running (a starved CPU, a blocked hand-over) and whatever the pool sent in that gap is
//! still unread in the socket. The lateness is then excused: it is taken off the quiet
//! time, the unanswered time and the setup clock, as if time had stood still. A really
//! silent pool next to a proxy that runs on time is still declared down after exactly the
//! silence timeout (to within one tick).
//!
//! | since the last check | counted as |
//! |---|---|
//! | up to two ticks | the pool's quiet time |
//! | more than two ticks | one tick of it; the rest is the proxy's stall |

use std::time::{Duration, Instant};

/// Quiet time after which an idle pool is probed; with the default 3 s silence timeout
/// this leaves room for two probes before the verdict.
pub(crate) const PROBE_AFTER: Duration = Duration::from_secs(1);

/// What the connection should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HealthCheck {
    /// Nothing to do.
    Fine,
    /// Send a probe request (nothing heard for a while).
    Probe,
    /// The pool has been silent (or left a request unanswered) this long: give it up.
    Silent(Duration),
}

/// Liveness bookkeeping of one pool connection.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    /// Silence after which the pool counts as down.
    silence: Duration,
    /// Quiet time before a probe (and between probes).
    probe_after: Duration,
    /// How often the connection calls [`Health::check`]; a check later than one tick past
    /// due marks a stall of the proxy.
    tick: Duration,
    /// When the connection was made, for [`Health::awake_for`].
    born: Instant,
    /// The previous check (or birth): where a stall would have begun.
    last_check: Instant,
    /// Total stall time excused since birth.
    stalled: Duration,
    /// Stall time excused since the last [`Health::take_stall`], for the caller's own
    /// deadlines (shares awaiting an answer).
    untaken_stall: Duration,
    /// Last time any line came from the pool, moved later by stalls since.
    last_heard: Instant,
    /// When the oldest request not yet followed by any answer was sent (moved later by
    /// stalls since); pools answer in order, so any answer means every earlier line was
    /// read.
    awaiting_since: Option<Instant>,
    /// Last probe sent, so probes go at most once per `probe_after`.
    last_probe: Option<Instant>,
}

impl Health {
    /// Starts counting at `now` (the connection was just made); the connection will call
    /// [`Health::check`] every `tick`.
    pub(crate) fn new(silence: Duration, tick: Duration, now: Instant) -> Health {
        Health {
            silence,
            probe_after: PROBE_AFTER.min(silence / 3),
            tick,
            born: now,
            last_check: now,
            stalled: Duration::ZERO,
            untaken_stall: Duration::ZERO,
            last_heard: now,
            awaiting_since: None,
            last_probe: None,
        }
    }

    /// A line came from the pool.
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// An answer came from the pool: every request sent before it was read.
    pub(crate) fn answered(&mut self, now: Instant) {
        self.last_heard = now;
        self.awaiting_since = None;
    }

    /// A request went out; its answer is due within the silence timeout.
    pub(crate) fn sent_request(&mut self, now: Instant) {
        self.awaiting_since.get_or_insert(now);
    }

    /// Time since the connection was made, less the proxy's own stalls: the clock for
    /// deadlines that only the pool can miss (e.g. finishing the handshake).
    pub(crate) fn awake_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.born)
            .saturating_sub(self.stalled)
    }

    /// Stall time excused by checks since the last call: the caller moves its own
    /// deadlines that only the pool can miss by as much.
    pub(crate) fn take_stall(&mut self) -> Duration {
        std::mem::take(&mut self.untaken_stall)
    }

    /// Decides what to do at `now`; a [`HealthCheck::Probe`] answer is remembered, so the
    /// next probe comes `probe_after` later at the earliest. Call it every `tick`.
    pub(crate) fn check(&mut self, now: Instant) -> HealthCheck {
        self.excuse_stall(now);
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

    /// Takes a gap of more than two ticks since the previous check off every clock that
    /// counts against the pool, keeping one tick of it (what an on-time check would have
    /// seen). A clock that started inside the gap is moved no later than `now`.
    fn excuse_stall(&mut self, now: Instant) {
        let gap = now.saturating_duration_since(self.last_check);
        self.last_check = now;
        if gap <= self.tick.saturating_mul(2) {
            return;
        }
        let stall = gap - self.tick;
        self.stalled = self.stalled.saturating_add(stall);
        self.untaken_stall = self.untaken_stall.saturating_add(stall);
        self.last_heard = later_by(self.last_heard, stall, now);
        self.awaiting_since = self.awaiting_since.map(|at| later_by(at, stall, now));
        self.last_probe = self.last_probe.map(|at| later_by(at, stall, now));
    }
}

/// `at` moved `by` later, but not past `now`.
fn later_by(at: Instant, by: Duration, now: Instant) -> Instant {
    at.checked_add(by).map_or(now, |later| later.min(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S3: Duration = Duration::from_secs(3);
    const TICK: Duration = Duration::from_millis(100);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Checks on every tick from `from_ms` (exclusive) to `to_ms` (inclusive), as the
    /// connection does, and lists what was not [`HealthCheck::Fine`], in milliseconds.
    fn ticks(h: &mut Health, t0: Instant, from_ms: u64, to_ms: u64) -> Vec<(u64, HealthCheck)> {
        (from_ms / 100 + 1..=to_ms / 100)
            .map(|n| n * 100)
            .filter_map(|at| match h.check(t0 + ms(at)) {
                HealthCheck::Fine => None,
                other => Some((at, other)),
            })
            .collect()
    }

    #[test]
    fn an_idle_pool_is_probed_once_a_second() {
        let t0 = Instant::now();
        let mut h = Health::new(S3, TICK, t0);
        assert_eq!(ticks(&mut h, t0, 0, 1000), [(1000, HealthCheck::Probe)]);
        h.sent_request(t0 + ms(1000));
        assert_eq!(ticks(&mut h, t0, 1000, 1500), [], "one probe per second");
        // The answer comes: quiet again from there.
        h.answered(t0 + ms(1510));
        assert_eq!(ticks(&mut h, t0, 1500, 2500), []);
        assert_eq!(ticks(&mut h, t0, 2500, 2600), [(2600, HealthCheck::Probe)]);
    }

    #[test]
    fn silence_for_the_timeout_is_down() {
        let t0 = Instant::now();
        let mut h = Health::new(S3, TICK, t0);
        assert_eq!(
            ticks(&mut h, t0, 0, 3000),
            [
                (1000, HealthCheck::Probe),
                (2000, HealthCheck::Probe),
                (3000, HealthCheck::Silent(S3)),
            ]
        );
    }

    #[test]
    fn a_silent_pool_next_to_a_slow_proxy_is_still_down_in_three_seconds() {
        // Every check comes 90 ms late (under two ticks): that is load, not a stall, and
        // all of it counts against a pool that says nothing.
        let t0 = Instant::now();
        let mut h = Health::new(S3, TICK, t0);
        let verdict = (1..=40u64)
            .map(|n| n * 190)
            .find_map(|at| match h.check(t0 + ms(at)) {
                HealthCheck::Silent(quiet) => Some((at, quiet)),
                _ => None,
            });
        assert_eq!(verdict, Some((3040, ms(3040))));
    }

    #[test]
    fn a_stalled_proxy_does_not_blame_a_talking_pool() {
        let t0 = Instant::now();
        let mut h = Health::new(S3, TICK, t0);
        h.heard(t0 + ms(850));
        assert_eq!(ticks(&mut h, t0, 0, 900), []);
        // The proxy's task does not run from 0.9 s to 4.0 s; the pool's next line (a job
        // sent at 1.5 s) waits in the socket. The late check must not call that silence.
        assert_eq!(h.check(t0 + ms(4000)), HealthCheck::Fine);
        assert_eq!(h.awake_for(t0 + ms(4000)), ms(1000));
        assert_eq!(h.take_stall(), ms(3000));
        assert_eq!(h.take_stall(), Duration::ZERO, "taken once");
        // The reader gets its turn and finds the line.
        h.heard(t0 + ms(4000));
        assert_eq!(ticks(&mut h, t0, 4000, 5000), [(5000, HealthCheck::Probe)]);
        h.sent_request(t0 + ms(5000));
        h.answered(t0 + ms(5020));
        assert_eq!(ticks(&mut h, t0, 5000, 6000), []);
    }

    /// An idle pool probed at 1.0 s, then the proxy stalled until 4.5 s (3.4 s of the
    /// 3.5 s gap are the stall; one tick of it counts): the check that ends the stall.
    fn probed_then_stalled() -> (Health, Instant) {
        let t0 = Instant::now();
        let mut h = Health::new(S3, TICK, t0);
        assert_eq!(ticks(&mut h, t0, 0, 1000), [(1000, HealthCheck::Probe)]);
        h.sent_request(t0 + ms(1000));
        assert_eq!(h.check(t0 + ms(4500)), HealthCheck::Fine);
        (h, t0)
    }

    #[test]
    fn a_stall_after_a_probe_does_not_blame_the_pool_for_the_answer_it_could_not_read() {
        let (mut h, t0) = probed_then_stalled();
        // The probe's answer sat unread through the stall.
        h.answered(t0 + ms(4510));
        assert_eq!(ticks(&mut h, t0, 4500, 5400), []);
    }

    #[test]
    fn a_pool_really_silent_across_a_stall_is_down_after_three_seconds_awake() {
        let (mut h, t0) = probed_then_stalled();
        let events = ticks(&mut h, t0, 4500, 6400);
        // Quiet since 0: 1.0 s + 0.1 s before and in the gap, then 1.9 s more by 6.4 s.
        assert_eq!(
            events,
            [(5400, HealthCheck::Probe), (6400, HealthCheck::Silent(S3)),]
        );
        assert_eq!(h.awake_for(t0 + ms(6400)), ms(3000));
    }

    #[test]
    fn jobs_without_answers_are_still_silence() {
        let t0 = Instant::now();
        let mut h = Health::new(S3, TICK, t0);
        h.sent_request(t0 + ms(50));
        // Notifies keep coming but the request is never answered.
        let mut events = Vec::new();
        for step in 1..=31 {
            h.heard(t0 + ms(100 * step - 10));
            events.extend(ticks(&mut h, t0, 100 * (step - 1), 100 * step));
        }
        assert_eq!(events, [(3100, HealthCheck::Silent(ms(3050)))]);
    }

    #[test]
    fn a_short_silence_timeout_probes_sooner() {
        let t0 = Instant::now();
        let mut h = Health::new(ms(600), TICK, t0);
        assert_eq!(
            ticks(&mut h, t0, 0, 600),
            [
                (200, HealthCheck::Probe),
                (400, HealthCheck::Probe),
                (600, HealthCheck::Silent(ms(600))),
            ]
        );
    }
}
