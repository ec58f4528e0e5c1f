//! Per-miner variable difficulty: aim every miner at a steady share interval.
//!
//! A [`Vardiff`] watches the shares one miner submits and, when asked with [`Vardiff::poll`],
//! proposes a new difficulty. It reads no clock: every call takes `now`.
//!
//! # How the caller applies a change
//!
//! Stratum V1 has the new difficulty take effect with the next job, so a change is a
//! two-step affair:
//!
//! 1. [`Vardiff::poll`] returns `Some(d)` once; `d` is then [`Vardiff::pending`].
//! 2. When the session sends its next job it writes `mining.set_difficulty(d)` followed by
//!    `mining.notify`, and calls [`Vardiff::applied`]. Only then does `d` become
//!    [`Vardiff::current`] and a fresh measuring window start.
//!
//! While a value is pending, `poll` proposes nothing further: a step is always judged on
//! shares found at the difficulty it replaced.
//!
//! # The estimate
//!
//! Over the window since the last applied change the miner proved `W = Σ dᵢ` (each share at
//! the difficulty it was checked against, so shares of an older job still count right) in
//! `t` seconds. The difficulty that would give one share every `T` seconds is `W·T / t`.
//! The ratio `r = (W·T / t) / current` is the observed share rate over the target rate.
//!
//! # When it decides
//!
//! | situation | evidence needed | new difficulty |
//! |---|---|---|
//! | no share since the start (probing, see below) | `T` elapsed since the last change | `current / 2^min(k, 4)` at the k-th step |
//! | at least `min_shares` shares in the window | `r` outside `1 ± band` | `current · r` |
//! | `n < min_shares` shares and `min((n + 1) · quiet_intervals, min_shares) · T` elapsed | `r` below `1 − band` (a silent miner has `r = 0`) | `current · r` |
//!
//! Except for the probe, every step is clamped to a factor of `max_step`; every step is
//! rounded to a power of two and clamped to `[floor, max_difficulty]`, the floor being
//! `min_difficulty` or the miner's own minimum ([`Vardiff::set_minimum`]). While `r` stays
//! inside the band nothing changes, and the window keeps growing so the estimate gets
//! sharper; past `4 · min_shares` shares it is halved (sums and span together) so a real
//! change of hashrate still shows within minutes.
//!
//! # Probing a new miner
//!
//! Every miner starts at one site-wide difficulty whatever its speed, and a site's miners
//! span 28 octaves: at a 5 s target a 1 MH/s CPU miner wants 2⁻¹⁰, a 300 TH/s machine 2¹⁸.
//! A fast miner starting too low is found at once (its flood of shares is the evidence);
//! a slow one starting too high sends nothing, and the silent rule above, which waits
//! `quiet_intervals` and steps by `max_step`, needed 60 s per two octaves: a 1 MH/s CPU
//! miner, 20 octaves below 1,024, waited 8.5 minutes for its first share (the default idle
//! timeout is 10), a 100 kH/s one was dropped first.
//!
//! So until its first share a miner is probing: every target interval without a share
//! lowers it, by 2, then 4, 8, and 16 per step from then on, down to the floor (1,024 to
//! 0.001 in seven intervals). Silence says little more than "lower": a miner at its right
//! difficulty is silent for a whole interval once in e, so the steps grow rather than
//! wait for proof, and stop growing at 16 because one unlucky interval sends a miner one
//! step below its difficulty, from where the normal rules raise it ×4 per `min_shares`
//! shares. A working miner is never probed: its first share ends probing for good, as
//! does a suggested difficulty ([`Vardiff::suggest`]), the miner's own word on where it
//! belongs. A minimum ([`Vardiff::set_minimum`]) does not end it: it bounds the probe.
//!
//! Measured (`probe_tests`, 1,000 seeded Poisson miners per speed, site defaults, polled
//! every `T` and on jobs every 30 s as the session does), the first share after, in target
//! intervals, median / 99th percentile:
//!
//! | miner | 1 MH/s | 10 MH/s | 100 MH/s | 1 GH/s | 10 GH/s | 100 GH/s | 1 TH/s | ≥ 10 TH/s |
//! |---|---|---|---|---|---|---|---|---|
//! | probing | 7.3 / 10.5 | 6.2 / 7.1 | 5.3 / 6.1 | 4.6 / 5.2 | 3.8 / 4.3 | 2.4 / 3.5 | 0.6 / 2.1 | ≤ 0.1 / 0.4 |
//! | before | 102 / 118 | 84 / 98 | 62 / 79 | 42 / 59 | 23 / 40 | 5.9 / 19 | 0.6 / 3.8 | same |
//!
//! (1 MH/s waits for the floor, where one share takes it 0.86 intervals on average.) The
//! deepest a probe left a miner below its right difficulty was 30x (100 MH/s). The price:
//! a new miner that starts exactly at its right difficulty is lowered in the ~40 % of cases
//! with no share in its first interval, and is back within 2.5 minutes (median; 9 at worst
//! of 400 seeds).
//!
//! # Measured behaviour (defaults, 100 TH/s simulated miner, jobs every 30 s)
//!
//! From 2048x too low: within a factor 2 in 4 minutes, exact within 20 (both asserted over
//! 20 seeds). From 1024x too high, probing: within a factor 2 after a median of 2 minutes
//! (worst of 200 seeds: 9.5), exactly right after a median of 2 minutes (worst 21.5, the
//! last factor 2 being a rate of 0.44x target, barely outside the band); before probing
//! these were 5 and 9 minutes (worst 32). A miner past its first share at the right
//! difficulty: one change in 1,000 simulated hours (`min_shares` 32 gave 8, 24 gave 25).
//!
//! # Why powers of two
//!
//! A power of two keeps the set of difficulties a site shows small and readable (logs,
//! Prometheus series), makes the share target an exact shift of the difficulty-1 target, and
//! its rounding error (at most a factor √2 ≈ 1.41) lies inside the default ±50 % band, so
//! rounding alone never causes the next retarget.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shares in the window at which it is halved, as a multiple of `min_shares`.
const DECAY_AT_MIN_SHARES: u32 = 4;

/// Largest probe step in octaves (÷16): bounds how far below its right difficulty one
/// unlucky silent interval can send a new miner (see "Probing a new miner").
const PROBE_MAX_OCTAVES: u32 = 4;

/// Bad vardiff configuration or a bad difficulty value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VardiffError {
    /// A configuration field is out of range; the message says which and what is allowed.
    #[error("invalid vardiff config: {field} {problem}")]
    InvalidConfig {
        /// The field name as written in the config file.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A difficulty that is not a finite positive number (e.g. from `mining.suggest_difficulty`).
    #[error("invalid difficulty {value}: must be a finite number above zero")]
    InvalidDifficulty {
        /// The rejected value.
        value: f64,
    },
}

/// Tuning of the per-miner difficulty controller.
#[derive(Debug, Clone, PartialEq)]
pub struct VardiffConfig {
    /// The share interval to aim at; short enough for honest hashrate numbers, long enough
    /// not to flood the proxy (5 s ≈ 2,000 submits/s for 10,000 miners).
    pub target_interval: Duration,
    /// Lowest difficulty handed out (usually the pool's minimum).
    pub min_difficulty: f64,
    /// Highest difficulty handed out.
    pub max_difficulty: f64,
    /// Shares needed before the rate is judged too fast; with N shares the rate estimate has
    /// a relative error of about 1/√N, so this sets how noisy a decision may be.
    pub min_shares: u32,
    /// Half-width of the no-change band around the target rate (0.5 = ±50 %), wide enough
    /// that Poisson noise at `min_shares` never leaves it in practice.
    pub band: f64,
    /// Largest factor one step may change the difficulty by, so one unlucky window cannot
    /// throw a miner far off.
    pub max_step: f64,
    /// Target intervals without a single share after which the difficulty is lowered; the
    /// chance of such a silence at the right difficulty is e^−quiet_intervals.
    pub quiet_intervals: u32,
}

impl Default for VardiffConfig {
    fn default() -> Self {
        Self {
            target_interval: Duration::from_secs(5),
            min_difficulty: 1.0,
            max_difficulty: (1u64 << 40) as f64,
            min_shares: 48,
            band: 0.5,
            max_step: 4.0,
            quiet_intervals: 12,
        }
    }
}

impl VardiffConfig {
    /// Checks every field is in range.
    ///
    /// # Errors
    ///
    /// [`VardiffError::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<(), VardiffError> {
        let bad = |field, problem| Err(VardiffError::InvalidConfig { field, problem });
        if self.target_interval.is_zero() {
            return bad("target_interval", "must be above zero");
        }
        if !(self.min_difficulty.is_finite() && self.min_difficulty > 0.0) {
            return bad("min_difficulty", "must be a finite number above zero");
        }
        if !(self.max_difficulty.is_finite() && self.max_difficulty >= self.min_difficulty) {
            return bad(
                "max_difficulty",
                "must be finite and at least min_difficulty",
            );
        }
        if self.min_shares == 0 {
            return bad("min_shares", "must be at least 1");
        }
        if !(self.band > 0.0 && self.band < 1.0) {
            return bad("band", "must be between 0 and 1 (exclusive)");
        }
        if !(self.max_step.is_finite() && self.max_step > 1.0) {
            return bad("max_step", "must be a finite number above 1");
        }
        if self.quiet_intervals == 0 {
            return bad("quiet_intervals", "must be at least 1");
        }
        Ok(())
    }

    fn clamp(&self, difficulty: f64) -> f64 {
        difficulty.clamp(self.min_difficulty, self.max_difficulty)
    }
}

/// Vardiff state of one miner.
#[derive(Debug, Clone)]
pub struct Vardiff {
    /// Tuning, validated at construction; shared, since every miner of a site has the same
    /// and a copy per session would cost ~60 bytes per idle miner.
    config: Arc<VardiffConfig>,
    /// Lowest difficulty handed out: `min_difficulty`, or the miner's own minimum.
    floor: f64,
    /// The difficulty the miner works at now (last value the caller applied).
    current: f64,
    /// A decided change not yet sent to the miner.
    pending: Option<f64>,
    /// Start of the measuring window: the last applied change, moved forward on decay.
    window_start: Instant,
    /// Shares seen in the window; decides whether the estimate is trustworthy yet.
    window_shares: u32,
    /// Σ difficulty of those shares: the work proved in the window.
    window_work: f64,
    /// Probe steps taken so far while the miner has sent no share; `None` once it has (or
    /// has named its difficulty), when only the normal rules apply.
    probe_steps: Option<u32>,
}

impl Vardiff {
    /// Starts a miner at `initial` difficulty (clamped to the configured bounds) at `now`.
    ///
    /// # Errors
    ///
    /// [`VardiffError::InvalidConfig`] for a bad config, [`VardiffError::InvalidDifficulty`]
    /// for a non-finite or non-positive `initial`.
    pub fn new(
        config: impl Into<Arc<VardiffConfig>>,
        initial: f64,
        now: Instant,
    ) -> Result<Self, VardiffError> {
        let config = config.into();
        config.validate()?;
        check_difficulty(initial)?;
        Ok(Self {
            floor: config.min_difficulty,
            current: config.clamp(initial),
            config,
            pending: None,
            window_start: now,
            window_shares: 0,
            window_work: 0.0,
            probe_steps: Some(0),
        })
    }

    /// The difficulty the miner currently works at.
    pub fn current(&self) -> f64 {
        self.current
    }

    /// A decided difficulty waiting to be sent with the next job.
    pub fn pending(&self) -> Option<f64> {
        self.pending
    }

    /// The configuration in force.
    pub fn config(&self) -> &VardiffConfig {
        &self.config
    }

    /// The lowest difficulty this miner may be given.
    pub fn floor(&self) -> f64 {
        self.floor
    }

    /// Whether the miner is still probing: no share yet, so silence lowers it fast.
    pub fn is_probing(&self) -> bool {
        self.probe_steps.is_some()
    }

    /// Records one valid share found at `difficulty` (the difficulty it was checked against).
    ///
    /// A non-finite or non-positive difficulty is ignored: it cannot come from a share the
    /// proxy accepted, and must not poison the window. `now` does not enter the estimate
    /// (the window is timed from applied changes and measured at [`Vardiff::poll`]); it is
    /// taken so every call of this type reads the same way.
    pub fn on_share(&mut self, _now: Instant, difficulty: f64) {
        if difficulty.is_finite() && difficulty > 0.0 {
            self.window_shares = self.window_shares.saturating_add(1);
            self.window_work += difficulty;
            self.probe_steps = None;
        }
    }

    /// Decides whether a retarget is due at `now`; returns the new difficulty once.
    ///
    /// Call it on every share and on a periodic tick (a quiet miner sends no shares to
    /// trigger it). The value is also kept as [`Vardiff::pending`] until [`Vardiff::applied`].
    pub fn poll(&mut self, now: Instant) -> Option<f64> {
        if self.pending.is_some() {
            return None;
        }
        let elapsed = now.saturating_duration_since(self.window_start);
        if let Some(steps) = self.probe_steps {
            return self.probe(steps, elapsed);
        }
        let cfg = &self.config;
        let secs = elapsed.as_secs_f64();
        let target = cfg.target_interval.as_secs_f64();
        let min_shares = cfg.min_shares;
        let ratio = if self.window_shares >= min_shares {
            if secs <= 0.0 {
                return None;
            }
            self.window_work * target / secs / self.current
        } else if secs >= target * f64::from(self.slow_verdict_after()) {
            // Few shares: count one more at the current difficulty than was seen, the
            // cautious side of the estimate, so a noisy window does not overshoot downwards.
            let ratio = (self.window_work + self.current) * target / secs / self.current;
            // Too few shares to call it fast: only a slow verdict is allowed here.
            ratio.min(1.0)
        } else {
            return None;
        };
        if (1.0 - cfg.band..=1.0 + cfg.band).contains(&ratio) {
            self.decay(now, elapsed);
            return None;
        }
        let factor = ratio.clamp(1.0 / cfg.max_step, cfg.max_step);
        let next = self.clamp(round_to_power_of_two(self.current * factor));
        if next == self.current {
            // Pinned at a bound: nothing to send, but keep the window from growing forever.
            self.decay(now, elapsed);
            return None;
        }
        self.pending = Some(next);
        Some(next)
    }

    /// Commits the pending difficulty: call it when it has been sent to the miner with a job.
    ///
    /// A no-op when nothing is pending. The measuring window restarts at `now`.
    pub fn applied(&mut self, now: Instant) {
        if let Some(next) = self.pending.take() {
            self.current = next;
            self.window_start = now;
            self.window_shares = 0;
            self.window_work = 0.0;
        }
    }

    /// Honours a miner's `mining.suggest_difficulty`: the value, clamped to the configured
    /// bounds, becomes pending (sent with the next job); vardiff then corrects it from there
    /// like any starting difficulty. Returns the difficulty that will be used.
    ///
    /// # Errors
    ///
    /// [`VardiffError::InvalidDifficulty`] for a non-finite or non-positive suggestion; the
    /// state is left untouched.
    pub fn suggest(&mut self, difficulty: f64) -> Result<f64, VardiffError> {
        check_difficulty(difficulty)?;
        let next = self.clamp(difficulty);
        self.pending = Some(next);
        self.probe_steps = None;
        Ok(next)
    }

    /// Honours a miner's minimum difficulty (BIP310 `minimum-difficulty`): no difficulty
    /// below it is handed out from now on, within the configured bounds; a later call
    /// replaces it. When the miner's difficulty (pending or current) is below the new
    /// floor, the floor becomes pending. Probing goes on above the floor: a minimum says
    /// what the miner cannot take, not what suits it. Returns the floor in force.
    ///
    /// # Errors
    ///
    /// [`VardiffError::InvalidDifficulty`] for a non-finite or negative minimum (zero is
    /// allowed and means the configured minimum); the state is left untouched.
    pub fn set_minimum(&mut self, minimum: f64) -> Result<f64, VardiffError> {
        if !(minimum.is_finite() && minimum >= 0.0) {
            return Err(VardiffError::InvalidDifficulty { value: minimum });
        }
        self.floor = self.config.clamp(minimum);
        let next = self.pending.unwrap_or(self.current);
        if next < self.floor {
            self.pending = Some(self.floor);
        }
        Ok(self.floor)
    }

    /// The probe rule (see "Probing a new miner"): one step per target interval of silence.
    fn probe(&mut self, steps: u32, elapsed: Duration) -> Option<f64> {
        if elapsed < self.config.target_interval {
            return None;
        }
        let octaves = steps.saturating_add(1).min(PROBE_MAX_OCTAVES);
        let next = self.clamp(round_to_power_of_two(
            self.current / f64::from(1u32 << octaves),
        ));
        if next >= self.current {
            // At the floor: nothing lower to try, the miner's share will come or not.
            return None;
        }
        self.probe_steps = Some(steps.saturating_add(1));
        self.pending = Some(next);
        Some(next)
    }

    fn clamp(&self, difficulty: f64) -> f64 {
        difficulty.clamp(self.floor, self.config.max_difficulty)
    }

    /// Target intervals after which a window holding fewer than `min_shares` shares may be
    /// judged slow: `(n + 1) · quiet_intervals` for `n` shares, so a silent miner is lowered
    /// after `quiet_intervals` and one that found a lucky share soon after, but never later
    /// than `min_shares` intervals. At the right difficulty `(n + 1) · q` intervals hold
    /// `(n + 1) · q` shares on average; seeing only `n` is a one in e^q event or rarer.
    fn slow_verdict_after(&self) -> u32 {
        let per_share = self.config.quiet_intervals;
        (self.window_shares.saturating_add(1))
            .saturating_mul(per_share)
            .min(self.config.min_shares)
    }

    /// Halves the evidence once it is plentiful, keeping the estimate but letting newer
    /// shares weigh more, so a later change of hashrate is seen within minutes.
    fn decay(&mut self, now: Instant, elapsed: Duration) {
        if self.window_shares < self.config.min_shares.saturating_mul(DECAY_AT_MIN_SHARES) {
            return;
        }
        self.window_shares /= 2;
        self.window_work /= 2.0;
        self.window_start = now.checked_sub(elapsed / 2).unwrap_or(self.window_start);
    }
}

fn check_difficulty(value: f64) -> Result<(), VardiffError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(VardiffError::InvalidDifficulty { value })
    }
}

/// Nearest power of two in log scale, so the error is at most a factor √2 either way.
fn round_to_power_of_two(value: f64) -> f64 {
    value.log2().round().exp2()
}

#[cfg(test)]
mod probe_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const TWO_32: f64 = 4_294_967_296.0;
    /// A 100 TH/s miner: the right difficulty for 5 s is 116,415, i.e. 2^17 after rounding.
    const HASHRATE: f64 = 100e12;

    /// A simulated miner hashing at `hashrate`; shares are a Poisson process with rate
    /// H / (d · 2^32). New difficulties reach it with the next job, every `job_every`.
    struct Sim {
        rng: StdRng,
        t0: Instant,
        t: f64,
        miner_difficulty: f64,
        next_share: f64,
        changes: Vec<(f64, f64)>,
    }

    impl Sim {
        fn new(seed: u64, vardiff: &Vardiff, t0: Instant) -> Self {
            let mut sim = Self {
                rng: StdRng::seed_from_u64(seed),
                t0,
                t: 0.0,
                miner_difficulty: vardiff.current(),
                next_share: 0.0,
                changes: Vec::new(),
            };
            sim.next_share = sim.draw_gap();
            sim
        }

        fn draw_gap(&mut self) -> f64 {
            let rate = HASHRATE / (self.miner_difficulty * TWO_32);
            let u: f64 = self.rng.random();
            -(1.0 - u).ln() / rate
        }

        fn at(&self, t: f64) -> Instant {
            self.t0 + Duration::from_secs_f64(t)
        }

        /// Runs until `until` seconds; polls each second and on each share.
        fn run(&mut self, vardiff: &mut Vardiff, until: f64) {
            let job_every = 30.0;
            let mut next_tick = self.t.floor() + 1.0;
            while self.t < until {
                if self.next_share <= next_tick {
                    self.t = self.next_share;
                    vardiff.on_share(self.at(self.t), self.miner_difficulty);
                    self.next_share = self.t + self.draw_gap();
                } else {
                    self.t = next_tick;
                    next_tick += 1.0;
                }
                let _ = vardiff.poll(self.at(self.t));
                let job_due = (self.t % job_every) == 0.0;
                if job_due && let Some(next) = vardiff.pending() {
                    vardiff.applied(self.at(self.t));
                    self.miner_difficulty = next;
                    self.changes.push((self.t, next));
                    // Memoryless: redraw the wait at the new difficulty.
                    self.next_share = self.t + self.draw_gap();
                }
            }
        }
    }

    fn right_difficulty() -> f64 {
        round_to_power_of_two(HASHRATE * 5.0 / TWO_32)
    }

    #[test]
    fn converges_from_too_low_and_settles() {
        for seed in 0..20 {
            let t0 = Instant::now();
            let right = right_difficulty();
            let mut v = Vardiff::new(VardiffConfig::default(), right / 2048.0, t0).unwrap();
            let mut sim = Sim::new(seed, &v, t0);
            // A share flood gives the evidence at once: one 4x step per job.
            sim.run(&mut v, 240.0);
            let ratio = v.current() / right;
            assert!(
                (0.5..=2.0).contains(&ratio),
                "seed {seed}: {:?}",
                sim.changes
            );
            // The last factor 2 (rate 1.78x target, just outside the band) may take longer.
            sim.run(&mut v, 1200.0);
            assert_eq!(v.current(), right, "seed {seed}: {:?}", sim.changes);
            assert!(sim.changes.len() <= 10, "seed {seed}: {:?}", sim.changes);
        }
    }

    #[test]
    fn converges_from_too_high_and_settles() {
        for seed in 0..20 {
            let t0 = Instant::now();
            let right = right_difficulty();
            let mut v = Vardiff::new(VardiffConfig::default(), right * 1024.0, t0).unwrap();
            let mut sim = Sim::new(seed, &v, t0);
            // Silence-driven steps of 4x get it within a factor 2 in minutes ...
            sim.run(&mut v, 900.0);
            let ratio = v.current() / right;
            assert!(
                (0.5..=2.0).contains(&ratio),
                "seed {seed}: {:?}",
                sim.changes
            );
            // ... the last factor 2 (rate 0.44x target, just outside the band) takes longer.
            sim.run(&mut v, 2400.0);
            assert_eq!(v.current(), right, "seed {seed}: {:?}", sim.changes);
            assert!(sim.changes.len() <= 10, "seed {seed}: {:?}", sim.changes);
        }
    }

    #[test]
    fn stays_put_for_an_hour_at_the_right_difficulty() {
        for seed in 0..100 {
            let t0 = Instant::now();
            let mut v = Vardiff::new(VardiffConfig::default(), right_difficulty(), t0).unwrap();
            // A miner that has shown it works here: past probing, where one silent interval
            // would lower it (`probe_tests` measures that case).
            v.on_share(t0, right_difficulty());
            let mut sim = Sim::new(seed, &v, t0);
            sim.run(&mut v, 3600.0);
            assert!(sim.changes.is_empty(), "seed {seed}: {:?}", sim.changes);
        }
    }

    #[test]
    fn clamps_hold_both_ways() {
        let t0 = Instant::now();
        let cfg = VardiffConfig {
            min_difficulty: 1024.0,
            max_difficulty: 8192.0,
            ..VardiffConfig::default()
        };
        // 100 TH/s wants ~2^17, above the 8192 cap: it climbs and stops at the cap.
        let mut v = Vardiff::new(cfg.clone(), 1024.0, t0).unwrap();
        let mut sim = Sim::new(1, &v, t0);
        sim.run(&mut v, 600.0);
        assert_eq!(v.current(), 8192.0);
        assert!(
            sim.changes
                .iter()
                .all(|&(_, d)| (1024.0..=8192.0).contains(&d))
        );
        // A silent miner is lowered to the floor and no further.
        let mut v = Vardiff::new(cfg, 8192.0, t0).unwrap();
        for s in 1..=3600u64 {
            let now = t0 + Duration::from_secs(s);
            if v.poll(now).is_some() {
                v.applied(now);
            }
        }
        assert_eq!(v.current(), 1024.0);
        assert_eq!(v.pending(), None);
    }

    #[test]
    fn a_quiet_working_miner_is_lowered_step_by_step() {
        let t0 = Instant::now();
        let cfg = VardiffConfig::default();
        let mut v = Vardiff::new(cfg.clone(), 65536.0, t0).unwrap();
        v.on_share(t0, 65536.0);
        // One share in the window: the quiet rule waits (1 + 1) · quiet_intervals.
        let quiet = cfg.target_interval * cfg.quiet_intervals * 2;
        assert_eq!(v.poll(t0 + quiet - Duration::from_millis(1)), None);
        assert_eq!(v.poll(t0 + quiet), Some(16384.0));
        // Nothing more is proposed until the change is applied.
        assert_eq!(v.poll(t0 + quiet * 3), None);
        v.applied(t0 + quiet * 3);
        assert_eq!(v.current(), 16384.0);
        let silent = cfg.target_interval * cfg.quiet_intervals;
        assert_eq!(v.poll(t0 + quiet * 3 + silent), Some(4096.0));
    }

    #[test]
    fn miner_that_stops_after_working_is_lowered() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(VardiffConfig::default(), 1024.0, t0).unwrap();
        // 100 shares at exactly the target interval, then silence.
        for i in 1..=100u64 {
            v.on_share(t0 + Duration::from_secs(5 * i), 1024.0);
            assert_eq!(v.poll(t0 + Duration::from_secs(5 * i)), None);
        }
        let lowered = (501..2000u64).find_map(|s| v.poll(t0 + Duration::from_secs(s)));
        assert_eq!(lowered, Some(512.0));
    }

    #[test]
    fn mixed_difficulty_shares_are_weighed_by_their_difficulty() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(VardiffConfig::default(), 1000.0, t0).unwrap();
        // 48 shares in 240 s looks right by count, but half were found at 4x difficulty:
        // the work proved is 2.5x the target, so the difficulty must rise.
        for i in 1..=48u64 {
            let d = if i % 2 == 0 { 4000.0 } else { 1000.0 };
            v.on_share(t0 + Duration::from_secs(5 * i), d);
        }
        assert_eq!(v.poll(t0 + Duration::from_secs(240)), Some(2048.0));
    }

    #[test]
    fn suggest_is_honoured_within_bounds() {
        let t0 = Instant::now();
        let cfg = VardiffConfig {
            min_difficulty: 16.0,
            max_difficulty: 65536.0,
            ..VardiffConfig::default()
        };
        let mut v = Vardiff::new(cfg, 1024.0, t0).unwrap();
        assert_eq!(v.suggest(500.0), Ok(500.0));
        assert_eq!(v.pending(), Some(500.0));
        v.applied(t0);
        assert_eq!(v.current(), 500.0);
        assert_eq!(v.suggest(1e12), Ok(65536.0));
        assert_eq!(v.suggest(0.001), Ok(16.0));
        assert_eq!(
            v.suggest(f64::NAN).unwrap_err().to_string(),
            "invalid difficulty NaN: must be a finite number above zero"
        );
        assert_eq!(
            v.suggest(-1.0),
            Err(VardiffError::InvalidDifficulty { value: -1.0 })
        );
        assert_eq!(v.pending(), Some(16.0));
    }

    #[test]
    fn fractional_difficulties_work() {
        let t0 = Instant::now();
        let cfg = VardiffConfig {
            min_difficulty: 0.001,
            ..VardiffConfig::default()
        };
        let mut v = Vardiff::new(cfg, 0.5, t0).unwrap();
        let mut changes = Vec::new();
        for minute in 1..=10u32 {
            let now = t0 + Duration::from_secs(60) * minute;
            if let Some(next) = v.poll(now) {
                changes.push(next);
                v.applied(now);
            }
        }
        // Probe steps on powers of two, then the fractional floor exactly.
        assert_eq!(changes, [0.25, 0.0625, 0.0078125, 0.001]);
    }

    #[test]
    fn a_hashrate_change_after_a_long_steady_spell_is_seen_within_minutes() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(VardiffConfig::default(), 1024.0, t0).unwrap();
        // Two hours exactly on target: the window is halved rather than growing forever ...
        for i in 1..=1440u64 {
            let now = t0 + Duration::from_secs(5 * i);
            v.on_share(now, 1024.0);
            assert_eq!(v.poll(now), None);
        }
        // ... so when the miner speeds up 2.5x, the change shows within ten minutes.
        let start = t0 + Duration::from_secs(7200);
        let seen = (1..=300u64).find_map(|i| {
            let now = start + Duration::from_secs(2 * i);
            v.on_share(now, 1024.0);
            v.poll(now).map(|d| (i * 2, d))
        });
        let (after, next) = seen.expect("speed-up not detected within 10 minutes");
        assert_eq!(next, 2048.0, "after {after} s");
    }

    #[test]
    fn bad_config_is_named() {
        let t0 = Instant::now();
        let cases = [
            (
                VardiffConfig {
                    band: 1.0,
                    ..Default::default()
                },
                "band",
            ),
            (
                VardiffConfig {
                    max_step: 1.0,
                    ..Default::default()
                },
                "max_step",
            ),
            (
                VardiffConfig {
                    min_shares: 0,
                    ..Default::default()
                },
                "min_shares",
            ),
            (
                VardiffConfig {
                    quiet_intervals: 0,
                    ..Default::default()
                },
                "quiet_intervals",
            ),
            (
                VardiffConfig {
                    target_interval: Duration::ZERO,
                    ..Default::default()
                },
                "target_interval",
            ),
            (
                VardiffConfig {
                    min_difficulty: 0.0,
                    ..Default::default()
                },
                "min_difficulty",
            ),
            (
                VardiffConfig {
                    max_difficulty: 0.5,
                    ..Default::default()
                },
                "max_difficulty",
            ),
        ];
        for (cfg, field) in cases {
            match Vardiff::new(cfg, 1.0, t0) {
                Err(VardiffError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(Vardiff::new(VardiffConfig::default(), f64::INFINITY, t0).is_err());
    }

    #[test]
    fn rounding_is_to_the_nearest_power_of_two_in_log_scale() {
        assert_eq!(round_to_power_of_two(116_415.3), 131_072.0);
        assert_eq!(round_to_power_of_two(1.4), 1.0);
        assert_eq!(round_to_power_of_two(1.5), 2.0);
        assert_eq!(round_to_power_of_two(0.0013), 0.0009765625);
    }
}
