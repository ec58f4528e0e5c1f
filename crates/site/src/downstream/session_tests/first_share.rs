//! Issue #10 through the whole session: a new miner's first share comes within a few
//! target intervals whatever its speed, 1 MH/s to 300 TH/s.
//!
//! Each miner is a Poisson process at the difficulty it was last sent (redrawn at every
//! change, as hashing is memoryless), submitting a real share found by grinding; the
//! session runs on its own ticks and a job every 30 s. Difficulties and hashrates are
//! scaled together by 2⁻³⁶ (the site's bounds and starting difficulty too): share odds
//! depend only on hashrate over difficulty, and a power of two leaves vardiff's
//! power-of-two rounding unchanged, so each run is the unscaled one with shares a test can
//! afford to grind (at most 2⁶ hashes at the scaled 1,024).

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::super::harness::Harness;
use crate::config::Config;
use hashgate_protocol::work::Target;

const SCALE: f64 = 1.0 / 68_719_476_736.0;
const TWO_32: f64 = 4_294_967_296.0;
const JOB_EVERY: Duration = Duration::from_secs(30);

/// The shipped defaults, scaled: start at 1,024, floor 0.001, ceiling 2⁴⁰, 5 s target.
fn site() -> Config {
    let mut cfg = super::super::harness::config();
    cfg.proxy.initial_difficulty = 1024.0 * SCALE;
    cfg.vardiff.min_difficulty = 0.001 * SCALE;
    cfg.vardiff.max_difficulty = 2f64.powi(40) * SCALE;
    cfg
}

/// Seconds to the next share of a miner of `hashrate` (unscaled) at scaled difficulty `d`.
fn gap(rng: &mut StdRng, hashrate: f64, d: f64) -> Duration {
    let u: f64 = rng.random();
    Duration::from_secs_f64(-(1.0 - u).ln() * d * TWO_32 / (hashrate * SCALE))
}

/// When (in target intervals) a new miner's first share was accepted, and at what
/// difficulty (unscaled).
fn first_share(hashrate: f64, seed: u64) -> (f64, f64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut h = Harness::new(&site());
    h.publish(true, Target::ZERO);
    h.setup("rig");
    let mut d = h.miner.difficulty.expect("a difficulty");
    let mut next_share: Instant = h.now() + gap(&mut rng, hashrate, d);
    let mut next_job = h.now() + JOB_EVERY.mul_f64(rng.random());
    loop {
        assert!(
            h.elapsed() < Duration::from_secs(3600),
            "no share in an hour"
        );
        let tick = h.next_tick().expect("an authorized session ticks");
        if next_share < tick.min(next_job) {
            h.advance_to(next_share);
            let job = h.miner.job.clone().expect("a job");
            let (e2, nonce) = h.find_share(&job, d, f64::MAX);
            let answer = h.submit("rig", &job, &e2, nonce);
            assert_eq!(answer["result"], json!(true), "{answer}");
            let intervals = h.elapsed().as_secs_f64() / h.target_interval().as_secs_f64();
            return (intervals, d / SCALE);
        }
        if next_job <= tick {
            h.advance_to(next_job);
            h.publish(false, Target::ZERO);
            next_job += JOB_EVERY;
        } else {
            h.advance_to(tick);
        }
        h.drain();
        let sent = h.miner.difficulty.expect("a difficulty");
        if sent != d {
            d = sent;
            next_share = h.now() + gap(&mut rng, hashrate, d);
        }
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

#[test]
fn a_new_miner_of_any_speed_gets_its_first_share_in_within_a_few_intervals() {
    const SEEDS: u64 = 100;
    let speeds = [1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 3e14];
    let mut report = String::new();
    for (i, &hashrate) in speeds.iter().enumerate() {
        let mut firsts: Vec<f64> = (0..SEEDS)
            .map(|seed| first_share(hashrate, seed + 1000 * i as u64).0)
            .collect();
        firsts.sort_by(f64::total_cmp);
        let (p50, p99) = (quantile(&firsts, 0.5), quantile(&firsts, 0.99));
        let max = quantile(&firsts, 1.0);
        report.push_str(&format!(
            "{hashrate:>8.0e} H/s: first share after {p50:.1} / {p99:.1} / {max:.1} intervals (median / p99 / max)\n"
        ));
        // 1 MH/s needs the floor (seven steps down), where its own wait is 0.86
        // intervals on average.
        let p99_bound = if hashrate < 1e7 { 12.0 } else { 8.0 };
        assert!(
            p50 <= 8.0 && p99 <= p99_bound,
            "{hashrate:e} H/s:\n{report}"
        );
    }
    eprint!("{report}");
}
