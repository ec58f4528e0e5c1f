//! Is the pool still worth sending work to? Judged only from what the site earns from it,
//! never from a request the pool may ignore. Pure: every call takes `now`.
//!
//! A pool that closes or resets the connection is noticed at once by the reader; a dead
//! path (a black-holed route, a vanished host) by TCP keepalive and `TCP_USER_TIMEOUT` on
//! the socket. What remains are pools that stay connected but stop earning:
//!
//! | rule | verdict |
//! |---|---|
//! | a request (a share, the handshake) unanswered for `failover.silence_timeout_secs` (3 s) | [`HealthCheck::Unanswered`] |
//! | no new job for the larger of `failover.job_timeout_floor_secs` (120 s) and 4× the pool's own notify cadence | [`HealthCheck::NoNewJob`] |
//! | `failover.reject_streak` (20) shares in a row rejected | [`Health::verdict`] says so |
//!
//! An idle pool is not probed: the only request every pool answers on a live connection
//! is a share, and ckpool (among others) never answers a second `mining.authorize`, so a
//! probe made healthy pools look dead. Shares flow every few seconds on any real site,
//! which detects an unanswering pool within the silence timeout of the first unanswered
//! share; an idle pool that also stops sending jobs is caught by the job bound.
//!
//! # Silence is the pool's, not the proxy's
//!
//! Time only counts while the connection could have read. The connection checks on a
//! fixed tick; when a check comes more than one tick late, the proxy's own task was not
//! running (a starved CPU, a blocked hand-over) and whatever the pool sent in that gap is
//! still unread in the socket. The lateness is then excused: it is taken off the
//! unanswered time, the job clock and the setup clock, as if time had stood still.
//!
//! | since the last check | counted as |
//! |---|---|
//! | up to two ticks | the pool's time |
//! | more than two ticks | one tick of it; the rest is the proxy's stall |

use std::time::{Duration, Instant};

/// The job bound is this many times the pool's usual gap between jobs: a pool that sends
/// work every 30 s and then nothing for 2 minutes has stopped.
const JOB_CADENCE_MULTIPLE: u32 = 4;

/// What the connection should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HealthCheck {
    /// Nothing to do.
    Fine,
    /// A request has gone unanswered this long: give the pool up.
    Unanswered(Duration),
    /// No new job for this long, beyond the learned bound: give the pool up.
    NoNewJob(Duration),
}

/// The limits a connection's health is judged by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HealthRules {
    /// A request unanswered this long marks the pool down.
    pub(crate) answer_timeout: Duration,
    /// The shortest job bound, whatever the pool's cadence.
    pub(crate) job_floor: Duration,
    /// Rejects in a row that mark the pool down (0: never).
    pub(crate) reject_streak: u32,
}

/// Liveness bookkeeping of one pool connection.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    rules: HealthRules,
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
    /// When the oldest request not yet followed by any answer was sent (moved later by
    /// stalls since); pools answer in order, so any answer means every earlier line was
    /// read.
    awaiting_since: Option<Instant>,
    /// The latest new job (or birth), moved later by stalls since.
    last_job: Instant,
    /// Smoothed gap between the pool's jobs, once two have come.
    job_gap: Option<Duration>,
    /// Whether a job has come yet (the first one only starts the cadence).
    had_job: bool,
    /// Shares rejected since the last accepted one.
    rejects_in_row: u32,
}

impl Health {
    /// Starts counting at `now` (the connection was just made); the connection will call
    /// [`Health::check`] every `tick`.
    pub(crate) fn new(rules: HealthRules, tick: Duration, now: Instant) -> Health {
        Health {
            rules,
            tick,
            born: now,
            last_check: now,
            stalled: Duration::ZERO,
            untaken_stall: Duration::ZERO,
            awaiting_since: None,
            last_job: now,
            job_gap: None,
            had_job: false,
            rejects_in_row: 0,
        }
    }

    /// An answer came from the pool: every request sent before it was read.
    pub(crate) fn answered(&mut self) {
        self.awaiting_since = None;
    }

    /// A request the pool must answer went out; its answer is due within the timeout.
    pub(crate) fn sent_request(&mut self, now: Instant) {
        self.awaiting_since.get_or_insert(now);
    }

    /// The pool sent a new job: it is still working, and its cadence is learned.
    pub(crate) fn new_job(&mut self, now: Instant) {
        if self.had_job {
            let gap = now.saturating_duration_since(self.last_job);
            self.job_gap = Some(match self.job_gap {
                // Weight 1/4 on the newest gap: one early block-change job does not halve
                // the bound, a pool that slows its cadence for good is followed within a
                // few jobs.
                Some(smoothed) => (smoothed * 3 + gap) / 4,
                None => gap,
            });
        }
        self.had_job = true;
        self.last_job = now;
    }

    /// A share's verdict came back. Returns the run of rejects when it has reached the
    /// configured streak: a pool refusing all work is as dead as a closed socket.
    pub(crate) fn verdict(&mut self, accepted: bool) -> Option<u32> {
        if accepted {
            self.rejects_in_row = 0;
            return None;
        }
        self.rejects_in_row = self.rejects_in_row.saturating_add(1);
        let limit = self.rules.reject_streak;
        (limit > 0 && self.rejects_in_row >= limit).then_some(self.rejects_in_row)
    }

    /// How long the pool may go without a new job before it counts as stuck.
    pub(crate) fn job_bound(&self) -> Duration {
        let learned = self.job_gap.map_or(Duration::ZERO, |gap| {
            gap.saturating_mul(JOB_CADENCE_MULTIPLE)
        });
        learned.max(self.rules.job_floor)
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

    /// Decides at `now`. Call it every `tick`.
    pub(crate) fn check(&mut self, now: Instant) -> HealthCheck {
        self.excuse_stall(now);
        if let Some(since) = self.awaiting_since {
            let unanswered = now.saturating_duration_since(since);
            if unanswered >= self.rules.answer_timeout {
                return HealthCheck::Unanswered(unanswered);
            }
        }
        let no_job = now.saturating_duration_since(self.last_job);
        if no_job >= self.job_bound() {
            return HealthCheck::NoNewJob(no_job);
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
        self.last_job = later_by(self.last_job, stall, now);
        self.awaiting_since = self.awaiting_since.map(|at| later_by(at, stall, now));
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

    fn rules() -> HealthRules {
        HealthRules {
            answer_timeout: S3,
            job_floor: Duration::from_secs(120),
            reject_streak: 20,
        }
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
    fn an_idle_pool_sending_jobs_is_healthy_for_as_long_as_it_sends_them() {
        // No shares, no answers, a job every 30 s: nothing to say for ten minutes.
        let t0 = Instant::now();
        let mut h = Health::new(rules(), TICK, t0);
        let mut events = Vec::new();
        for n in 0..20u64 {
            h.new_job(t0 + Duration::from_secs(30 * n));
            events.extend(ticks(&mut h, t0, 30_000 * n, 30_000 * (n + 1)));
        }
        assert_eq!(events, []);
    }

    #[test]
    fn an_unanswered_share_is_down_within_the_timeout() {
        let t0 = Instant::now();
        let mut h = Health::new(rules(), TICK, t0);
        h.new_job(t0);
        h.sent_request(t0 + ms(1000));
        // Later shares do not move the clock of the oldest unanswered one.
        h.sent_request(t0 + ms(2000));
        assert_eq!(
            ticks(&mut h, t0, 0, 5000),
            [
                (4000, HealthCheck::Unanswered(S3)),
                (4100, HealthCheck::Unanswered(ms(3100))),
                (4200, HealthCheck::Unanswered(ms(3200))),
                (4300, HealthCheck::Unanswered(ms(3300))),
                (4400, HealthCheck::Unanswered(ms(3400))),
                (4500, HealthCheck::Unanswered(ms(3500))),
                (4600, HealthCheck::Unanswered(ms(3600))),
                (4700, HealthCheck::Unanswered(ms(3700))),
                (4800, HealthCheck::Unanswered(ms(3800))),
                (4900, HealthCheck::Unanswered(ms(3900))),
                (5000, HealthCheck::Unanswered(ms(4000))),
            ]
        );
    }

    #[test]
    fn answered_shares_keep_a_pool_healthy() {
        let t0 = Instant::now();
        let mut h = Health::new(rules(), TICK, t0);
        h.new_job(t0);
        let mut events = Vec::new();
        for step in 1..=60u64 {
            h.sent_request(t0 + ms(100 * step - 90));
            h.answered();
            events.extend(ticks(&mut h, t0, 100 * (step - 1), 100 * step));
        }
        assert_eq!(events, []);
    }

    #[test]
    fn jobs_without_answers_are_still_down() {
        // A pool that keeps sending work but never answers a share is not earning.
        let t0 = Instant::now();
        let mut h = Health::new(rules(), TICK, t0);
        h.sent_request(t0 + ms(50));
        let mut first = None;
        for step in 1..=40u64 {
            h.new_job(t0 + ms(100 * step - 10));
            if let Some(found) = ticks(&mut h, t0, 100 * (step - 1), 100 * step).first() {
                first.get_or_insert(*found);
            }
        }
        assert_eq!(first, Some((3100, HealthCheck::Unanswered(ms(3050)))));
    }

    #[test]
    fn no_new_job_is_down_after_the_floor_for_a_fast_pool() {
        let t0 = Instant::now();
        let mut h = Health::new(rules(), TICK, t0);
        for n in 0..10u64 {
            h.new_job(t0 + Duration::from_secs(5 * n));
            assert_eq!(ticks(&mut h, t0, 5_000 * n, 5_000 * (n + 1)), []);
        }
        // Learned cadence 5 s (×4 = 20 s) is under the 120 s floor.
        assert_eq!(h.job_bound(), Duration::from_secs(120));
        assert_eq!(ticks(&mut h, t0, 50_000, 164_900), []);
        assert_eq!(
            ticks(&mut h, t0, 164_900, 165_000),
            [(165_000, HealthCheck::NoNewJob(Duration::from_secs(120)))]
        );
    }

    #[test]
    fn the_job_bound_follows_a_slow_pool_cadence() {
        let t0 = Instant::now();
        let mut h = Health::new(rules(), TICK, t0);
        for n in 0..6u64 {
            h.new_job(t0 + Duration::from_secs(60 * n));
            assert_eq!(ticks(&mut h, t0, 60_000 * n, 60_000 * (n + 1)), []);
        }
        assert_eq!(h.job_bound(), Duration::from_secs(240));
        // Nothing new for 3 minutes is within 4 × 60 s; 4 minutes is not.
        assert_eq!(ticks(&mut h, t0, 360_000, 300_000 + 239_900), []);
        assert_eq!(
            ticks(&mut h, t0, 539_900, 540_000),
            [(540_000, HealthCheck::NoNewJob(Duration::from_secs(240)))]
        );
    }

    #[test]
    fn a_run_of_rejects_is_down_and_one_accept_resets_it() {
        let t0 = Instant::now();
        let mut h = Health::new(rules(), TICK, t0);
        for _ in 0..19 {
            assert_eq!(h.verdict(false), None);
        }
        assert_eq!(h.verdict(true), None);
        for _ in 0..19 {
            assert_eq!(h.verdict(false), None);
        }
        assert_eq!(h.verdict(false), Some(20));
    }

    #[test]
    fn a_zero_streak_never_gives_up_on_rejects() {
        let t0 = Instant::now();
        let mut h = Health::new(
            HealthRules {
                reject_streak: 0,
                ..rules()
            },
            TICK,
            t0,
        );
        assert!((0..1000).all(|_| h.verdict(false).is_none()));
    }

    #[test]
    fn a_stalled_proxy_does_not_blame_a_pool_for_an_answer_it_could_not_read() {
        let t0 = Instant::now();
        let mut h = Health::new(rules(), TICK, t0);
        h.new_job(t0);
        h.sent_request(t0 + ms(850));
        assert_eq!(ticks(&mut h, t0, 0, 900), []);
        // The proxy's task does not run from 0.9 s to 4.5 s; the answer waits unread.
        assert_eq!(h.check(t0 + ms(4500)), HealthCheck::Fine);
        assert_eq!(h.awake_for(t0 + ms(4500)), ms(1000));
        assert_eq!(h.take_stall(), ms(3500));
        assert_eq!(h.take_stall(), Duration::ZERO, "taken once");
        h.answered();
        assert_eq!(ticks(&mut h, t0, 4500, 6000), []);
    }

    #[test]
    fn a_pool_really_unanswering_across_a_stall_is_down_after_the_timeout_awake() {
        let t0 = Instant::now();
        let mut h = Health::new(rules(), TICK, t0);
        h.new_job(t0);
        h.sent_request(t0 + ms(1000));
        assert_eq!(ticks(&mut h, t0, 0, 1000), []);
        // Stalled 1.0 → 4.5 s: 3.4 s excused, one tick of it counts; 2.9 s more awake.
        assert_eq!(h.check(t0 + ms(4500)), HealthCheck::Fine);
        let events = ticks(&mut h, t0, 4500, 7400);
        assert_eq!(events.first(), Some(&(7400, HealthCheck::Unanswered(S3))));
        assert_eq!(h.awake_for(t0 + ms(7400)), ms(4000));
    }

    #[test]
    fn a_stall_does_not_count_against_the_job_clock() {
        let t0 = Instant::now();
        let mut h = Health::new(rules(), TICK, t0);
        h.new_job(t0);
        assert_eq!(ticks(&mut h, t0, 0, 100_000), []);
        // 50 s without the task running: a pool whose job waits unread is not stuck.
        assert_eq!(h.check(t0 + Duration::from_secs(150)), HealthCheck::Fine);
    }
}
