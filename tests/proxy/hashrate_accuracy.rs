//! Issue #4: is a miner's 15-minute hashrate right to ±5 %?
//!
//! A synthetic miner of known hashrate works at the difficulty the real [`Vardiff`] gives
//! it: shares are a Poisson process at the current difficulty, retargets reach the miner
//! with the next job (every 30 s), and the [`HashrateMeter`] records every share. All of
//! it runs on simulated time from a seeded RNG, so nothing sleeps.
//!
//! Shares are Poisson, so the 15 m figure has a relative standard error of 1/√N for N
//! shares in the window (`docs/HASHRATE.md`). ±5 % is therefore a hard bound only when the
//! window holds thousands of shares (part a), and at the default 5 s interval it is a
//! matter of odds whose spread the tests check against that stated error (part b).

use std::time::{Duration, Instant};

use hashgate_protocol::vardiff::{Vardiff, VardiffConfig};
use hashgate_site::stats::{HashrateMeter, Window};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Hashes proved by one share of difficulty 1.
const TWO_32: f64 = 4_294_967_296.0;
/// The simulated miner: 100 TH/s (an S19-class machine).
const HASHRATE: f64 = 100e12;
/// Jobs come every 30 s; a retarget takes effect with the next one.
const JOB_EVERY: f64 = 30.0;
/// The 15 m window.
const WINDOW_S: f64 = 900.0;

/// One simulated miner's life, from its first job to the reading.
struct Run {
    /// Vardiff target interval in seconds.
    target_s: f64,
    /// Starting difficulty as a fraction of the difficulty vardiff should settle at.
    start_factor: f64,
    /// Age of the miner at the reading, in whole minutes so the 15 m ring's span is
    /// exactly `min(age, 900 s)`.
    age_s: u64,
}

/// What one run measured.
struct Reading {
    /// The 15 m estimate relative to the true hashrate, minus one.
    rel_err: f64,
    /// Its predicted variance: for a Poisson stream whose difficulty `d(t)` is set from
    /// past shares, `Var(Σ dᵢ) = ∫ d(t) · H/2³² dt`, so the relative variance is
    /// `2³² · ∫ d dt / (H · span²)`; at one difficulty that is 1/N.
    predicted_var: f64,
    /// Shares in the span the estimate covers.
    shares: u32,
}

impl Run {
    fn simulate(&self, seed: u64) -> Reading {
        let mut rng = SmallRng::seed_from_u64(seed);
        let config = VardiffConfig {
            target_interval: Duration::from_secs_f64(self.target_s),
            ..VardiffConfig::default()
        };
        let ideal = HASHRATE * self.target_s / TWO_32;
        let t0 = Instant::now();
        let at = |t: f64| t0 + Duration::from_secs_f64(t);
        let mut vardiff = Vardiff::new(config, ideal * self.start_factor, t0).unwrap();
        let mut meter = HashrateMeter::new(t0);
        let end = self.age_s as f64;
        let span = end.min(WINDOW_S);
        let span_start = end - span;
        let mut d = vardiff.current();
        let mut t = 0.0;
        let mut next_job = JOB_EVERY;
        let mut work_integral = 0.0;
        let mut shares = 0u32;
        // ∫ d dt over the part of [from, to] inside the estimator's span.
        let overlap = |from: f64, to: f64| (to.min(end) - from.max(span_start)).max(0.0);
        loop {
            let u: f64 = rng.random();
            let gap = -(1.0 - u).ln() * d * TWO_32 / HASHRATE;
            let stop = next_job.min(end);
            if t + gap >= stop {
                // Memoryless: stop at the job (or the reading) and redraw from there.
                work_integral += d * overlap(t, stop);
                t = stop;
                if t >= end {
                    break;
                }
                let now = at(t);
                let _ = vardiff.poll(now);
                if let Some(next) = vardiff.pending() {
                    vardiff.applied(now);
                    d = next;
                }
                next_job += JOB_EVERY;
                continue;
            }
            work_integral += d * overlap(t, t + gap);
            t += gap;
            let now = at(t);
            vardiff.on_share(now, d);
            let _ = vardiff.poll(now);
            meter.record(now, d);
            if t >= span_start {
                shares += 1;
            }
        }
        let estimate = meter
            .rate(t0 + Duration::from_secs(self.age_s), Window::M15)
            .expect("older than MIN_REPORT_AGE");
        Reading {
            rel_err: estimate / HASHRATE - 1.0,
            predicted_var: TWO_32 * work_integral / (HASHRATE * span * span),
            shares,
        }
    }
}

/// erf(x) by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), for the normal
/// approximation's odds.
fn erf(x: f64) -> f64 {
    let sign = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    sign * (1.0 - poly * (-x * x).exp())
}

/// Chance that a reading with relative standard error `sigma` lies within ±`bound`, by the
/// normal approximation. (Share counts are whole numbers, so the exact Poisson odds step
/// up and down around it by up to half a share, `σ²/2`, depending on where the bound
/// falls; no correction is right on average.)
fn normal_within(bound: f64, sigma: f64) -> f64 {
    erf(bound / (sigma * std::f64::consts::SQRT_2))
}

#[test]
fn erf_matches_known_values() {
    assert!((erf(0.0)).abs() < 1e-7);
    assert!((erf(1.0) - 0.842_700_79).abs() < 2e-7);
    assert!((erf(-1.959_964 / std::f64::consts::SQRT_2) + 0.95).abs() < 2e-7);
}

/// Part (a): ±5 % as a 4σ bound needs 6,400 shares in the window, one per 0.14 s over
/// 15 minutes. Vardiff holds a miner anywhere its rate is within ±50 % of the target, and
/// on powers of two, so the share interval can drift to twice the target: a 0.07 s target
/// is what guarantees it. This miner settles on 2¹¹ (one share per 88 ms, the only power of
/// two inside the band), about 10,000 shares in 15 minutes: σ ≈ 1 %, a 5σ bound, and still
/// a 4σ bound for a miner only 12 minutes old.
#[test]
fn fifteen_minutes_within_five_percent_at_a_target_of_seventy_milliseconds() {
    let cases = [
        // Settled: started at 1/8 of its difficulty 16 minutes before the reading.
        Run {
            target_s: 0.07,
            start_factor: 1.0 / 8.0,
            age_s: 960,
        },
        // Younger than the window: its first job came 12 minutes before the reading.
        Run {
            target_s: 0.07,
            start_factor: 1.0 / 8.0,
            age_s: 720,
        },
    ];
    for run in &cases {
        for seed in 0..6 {
            let r = run.simulate(seed);
            let sigma = r.predicted_var.sqrt();
            assert!(
                4.0 * sigma <= 0.05,
                "age {} s seed {seed}: ±5 % is only {:.1}σ ({} shares)",
                run.age_s,
                0.05 / sigma,
                r.shares
            );
            assert!(
                r.rel_err.abs() < 0.05,
                "age {} s seed {seed}: off by {:+.2} % (σ {:.2} %)",
                run.age_s,
                r.rel_err * 100.0,
                sigma * 100.0
            );
        }
    }
}

/// Part (b): at the default 5 s target the 15 m figure cannot be held to ±5 %, but it must
/// be unbiased and spread exactly as the stated 1/√N error says. Over many seeds this
/// fails if the denominator is off (bias), if shares are weighed by the current rather
/// than their own difficulty (the young miner climbs through five difficulties inside
/// its window), or if a young miner is divided by the window instead of its age.
fn check_spread(run: &Run, runs: u64, seed_base: u64) {
    let readings: Vec<Reading> = (0..runs).map(|i| run.simulate(seed_base + i)).collect();
    let m = runs as f64;
    let mean_err = readings.iter().map(|r| r.rel_err).sum::<f64>() / m;
    let mean_sq = readings.iter().map(|r| r.rel_err * r.rel_err).sum::<f64>() / m;
    let predicted_var = readings.iter().map(|r| r.predicted_var).sum::<f64>() / m;
    let sigma = predicted_var.sqrt();
    let within = readings.iter().filter(|r| r.rel_err.abs() <= 0.05).count() as f64 / m;
    let expected_within = readings
        .iter()
        .map(|r| normal_within(0.05, r.predicted_var.sqrt()))
        .sum::<f64>()
        / m;
    let what = format!(
        "age {} s: mean {:+.2} %, rms {:.2} % vs σ {:.2} %, within ±5 % {:.3} vs {:.3}",
        run.age_s,
        mean_err * 100.0,
        mean_sq.sqrt() * 100.0,
        sigma * 100.0,
        within,
        expected_within
    );
    // Unbiased: the mean of `runs` readings has a standard error of σ/√runs.
    assert!(mean_err.abs() < 4.0 * sigma / m.sqrt(), "biased: {what}");
    // The spread is the stated one: the RMS error estimates σ to about 1/√(2·runs).
    let ratio = mean_sq.sqrt() / sigma;
    let slack = 4.0 / (2.0 * m).sqrt();
    assert!(
        (1.0 - slack..=1.0 + slack).contains(&ratio),
        "spread: {what}"
    );
    // And so are the odds of a reading within ±5 % (binomial standard error ≤ 0.5/√runs).
    assert!(
        (within - expected_within).abs() < 4.0 * 0.5 / m.sqrt(),
        "odds: {what}"
    );
}

#[test]
fn at_the_default_interval_the_spread_is_the_stated_error() {
    // Settled at 2¹⁷ (one share per 5.63 s) within its first minute: ~160 shares per 15
    // minutes, σ ≈ 7.9 %, and a reading lands within ±5 % about half the time.
    let settled = Run {
        target_s: 5.0,
        start_factor: 1.0 / 16.0,
        age_s: 960,
    };
    check_spread(&settled, 600, 10_000);
}

#[test]
fn a_young_miner_at_the_default_interval_is_unbiased() {
    // Eight minutes old, starting at 1/64 of its difficulty: a flood of cheap shares while
    // vardiff climbs 4x per job, then ~65 shares at 2¹⁷; σ ≈ 9 %.
    let young = Run {
        target_s: 5.0,
        start_factor: 1.0 / 64.0,
        age_s: 480,
    };
    check_spread(&young, 600, 20_000);
}
