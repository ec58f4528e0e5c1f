//! Share-proven hashrate of one miner over 1 m, 5 m, 15 m and 1 h.
//!
//! A share accepted at difficulty `d` proves `d · 2³²` hashes on average, so over a span of
//! `t` seconds the miner's hashrate is `Σ dᵢ · 2³² / t`. Summing difficulties (not counting
//! shares) keeps the figure right across vardiff changes.
//!
//! # Buckets
//!
//! Each window is a ring of fixed time buckets holding `Σ d`, aligned to the meter's birth:
//!
//! | window | bucket | buckets kept | span summed |
//! |---|---|---|---|
//! | 1 m | 5 s | 13 | 60–65 s |
//! | 5 m | 15 s | 21 | 300–315 s |
//! | 15 m | 60 s | 16 | 900–960 s |
//! | 1 h | 300 s | 13 | 3600–3900 s |
//!
//! The sum covers the bucket `now` falls in plus the window's worth of whole buckets before
//! it, and is divided by exactly the span it covers, so the estimate is unbiased; the price
//! is that it may reach up to one bucket further back than the window. That is 63 numbers
//! (about 0.5 KiB) per miner whatever its share rate, and a `record` touches one bucket per
//! ring. Bucketed sums are chosen over exponentially decayed ones because they give the
//! plain "Σ / window" figure operators expect and a share leaves a window cleanly.
//!
//! # Young miners
//!
//! The denominator is `min(span, age)`, where age counts from [`HashrateMeter::new`]
//! (when the miner got its first job, not its first share, which would inflate the figure).
//! Younger than [`MIN_REPORT_AGE`], [`HashrateMeter::rate`] gives `None`: with only a share
//! or two the number is mostly noise.
//!
//! # Statistical error
//!
//! Shares are a Poisson process, so a window expecting `N` shares estimates the hashrate
//! with a relative standard error of `1/√N` (also across vardiff changes, with `N` taken at
//! the time-averaged interval): at one share per 5 s, 28.9 % over 1 m, 12.9 % over 5 m,
//! 7.5 % over 15 m, 3.7 % over 1 h. ±5 % over 15 m as a 4σ bound needs a share every
//! 0.14 s. `docs/HASHRATE.md` has the table; `tests/proxy/hashrate_accuracy.rs` checks it against
//! a miner driven by the real vardiff.

use std::time::{Duration, Instant};

/// Hashes proved by one share of difficulty 1.
pub const HASHES_PER_DIFFICULTY: f64 = 4_294_967_296.0;

/// Age below which no hashrate is reported: fewer than ~3 shares at a 5 s target interval.
pub const MIN_REPORT_AGE: Duration = Duration::from_secs(15);

/// An averaging window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// Last minute.
    M1,
    /// Last 5 minutes.
    M5,
    /// Last 15 minutes.
    M15,
    /// Last hour.
    H1,
}

impl Window {
    /// All windows, shortest first.
    pub const ALL: [Window; 4] = [Window::M1, Window::M5, Window::M15, Window::H1];

    /// The window length.
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Window::M1 => 60,
            Window::M5 => 300,
            Window::M15 => 900,
            Window::H1 => 3600,
        })
    }

    /// Short name for metric labels and JSON keys: `1m`, `5m`, `15m`, `1h`.
    pub fn label(self) -> &'static str {
        match self {
            Window::M1 => "1m",
            Window::M5 => "5m",
            Window::M15 => "15m",
            Window::H1 => "1h",
        }
    }
}

/// A ring of `N` buckets of `WIDTH_S` seconds each, summing share difficulty.
#[derive(Debug, Clone)]
struct Ring<const N: usize, const WIDTH_S: u64> {
    /// Bucket number (time since birth / width) of the newest bucket written.
    head: u64,
    /// Σ difficulty per bucket; bucket `e` lives at `e % N`. `f32` because a site keeps
    /// one meter per miner: 252 B less per miner, and a bucket holds at most a few
    /// thousand shares, so rounding stays below 0.1 % of the sum.
    sums: [f32; N],
}

impl<const N: usize, const WIDTH_S: u64> Ring<N, WIDTH_S> {
    const WIDTH_NS: u64 = WIDTH_S * 1_000_000_000;
    const LEN: u64 = N as u64;

    fn new() -> Self {
        Self {
            head: 0,
            sums: [0.0; N],
        }
    }

    fn slot(epoch: u64) -> usize {
        // `epoch % N < N`, so the cast back is lossless.
        (epoch % Self::LEN) as usize
    }

    fn record(&mut self, t_ns: u64, difficulty: f64) {
        let epoch = t_ns / Self::WIDTH_NS;
        if epoch > self.head {
            let stale = (epoch - self.head).min(Self::LEN);
            for e in epoch + 1 - stale..=epoch {
                if let Some(sum) = self.sums.get_mut(Self::slot(e)) {
                    *sum = 0.0;
                }
            }
            self.head = epoch;
        } else if self.head - epoch >= Self::LEN {
            // Older than anything the ring still holds: outside every window already.
            return;
        }
        if let Some(sum) = self.sums.get_mut(Self::slot(epoch)) {
            // Difficulties beyond f32's range saturate to infinity, and `rate` reports no
            // figure rather than a wrong one; no real share difficulty comes near 3e38.
            *sum += difficulty as f32;
        }
    }

    /// Σ difficulty over the `N` buckets ending with the one `t_ns` falls in, and the span
    /// in nanoseconds those buckets cover up to `t_ns` (cut at birth).
    fn sum(&self, t_ns: u64) -> (f64, u64) {
        let now_epoch = t_ns / Self::WIDTH_NS;
        let first = (now_epoch + 1).saturating_sub(Self::LEN);
        let span = t_ns - first * Self::WIDTH_NS;
        // Buckets the ring still holds: head − N + 1 ..= head.
        let lo = first.max((self.head + 1).saturating_sub(Self::LEN));
        let hi = now_epoch.min(self.head);
        let mut total = 0.0;
        if lo <= hi {
            for e in lo..=hi {
                total += f64::from(self.sums.get(Self::slot(e)).copied().unwrap_or(0.0));
            }
        }
        (total, span)
    }
}

/// Share-proven hashrate of one miner over the four [`Window`]s; O(1) memory and time.
#[derive(Debug, Clone)]
pub struct HashrateMeter {
    /// When the miner started working (its first job): time zero of every bucket.
    born: Instant,
    /// 1 m window: 5 s buckets.
    m1: Ring<13, 5>,
    /// 5 m window: 15 s buckets.
    m5: Ring<21, 15>,
    /// 15 m window: 60 s buckets.
    m15: Ring<16, 60>,
    /// 1 h window: 300 s buckets.
    h1: Ring<13, 300>,
}

impl HashrateMeter {
    /// A meter for a miner that started working at `now` (give it its first job then).
    pub fn new(now: Instant) -> Self {
        Self {
            born: now,
            m1: Ring::new(),
            m5: Ring::new(),
            m15: Ring::new(),
            h1: Ring::new(),
        }
    }

    /// Records an accepted share of `difficulty` (the difficulty it was checked against).
    ///
    /// A share stamped before the meter's birth counts at birth; a non-finite or
    /// non-positive difficulty is ignored (it cannot come from an accepted share).
    pub fn record(&mut self, now: Instant, difficulty: f64) {
        if !super::RECORDING {
            return;
        }
        if !(difficulty.is_finite() && difficulty > 0.0) {
            return;
        }
        let t = self.nanos_since_birth(now);
        self.m1.record(t, difficulty);
        self.m5.record(t, difficulty);
        self.m15.record(t, difficulty);
        self.h1.record(t, difficulty);
    }

    /// Hashes per second over `window` at `now`; `None` while the miner is younger than
    /// [`MIN_REPORT_AGE`].
    pub fn rate(&self, now: Instant, window: Window) -> Option<f64> {
        if self.age(now) < MIN_REPORT_AGE {
            return None;
        }
        let t = self.nanos_since_birth(now);
        let (sum, span_ns) = match window {
            Window::M1 => self.m1.sum(t),
            Window::M5 => self.m5.sum(t),
            Window::M15 => self.m15.sum(t),
            Window::H1 => self.h1.sum(t),
        };
        if span_ns == 0 || !sum.is_finite() {
            return None;
        }
        Some(sum * HASHES_PER_DIFFICULTY / (span_ns as f64 * 1e-9))
    }

    /// Time since the meter was created.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.born)
    }

    fn nanos_since_birth(&self, now: Instant) -> u64 {
        u64::try_from(self.age(now).as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const H: f64 = 100e12;

    /// Difficulty giving one share every `interval` seconds at hashrate `H`.
    fn difficulty_for(interval: f64) -> f64 {
        H * interval / HASHES_PER_DIFFICULTY
    }

    /// Feeds a Poisson share stream of a miner of hashrate `H` at `difficulty` from
    /// `from` to `until` seconds after `t0`.
    fn poisson(
        meter: &mut HashrateMeter,
        rng: &mut StdRng,
        t0: Instant,
        from: f64,
        until: f64,
        difficulty: f64,
    ) {
        let rate = H / (difficulty * HASHES_PER_DIFFICULTY);
        let mut t = from;
        loop {
            let u: f64 = rng.random();
            t += -(1.0 - u).ln() / rate;
            if t >= until {
                return;
            }
            meter.record(t0 + Duration::from_secs_f64(t), difficulty);
        }
    }

    fn rel_err(estimate: f64) -> f64 {
        (estimate - H) / H
    }

    #[test]
    fn steady_stream_is_exact_to_one_share() {
        let t0 = Instant::now();
        let mut m = HashrateMeter::new(t0);
        let d = difficulty_for(5.0);
        for i in 1..=1440u64 {
            m.record(t0 + Duration::from_secs(5 * i), d);
        }
        let now = t0 + Duration::from_secs(7200);
        for w in Window::ALL {
            let expected_shares = w.duration().as_secs_f64() / 5.0;
            let err = rel_err(m.rate(now, w).unwrap()).abs();
            assert!(err <= 1.0 / expected_shares + 1e-6, "{w:?}: {err}");
        }
        // Between bucket edges too.
        let now = t0 + Duration::from_millis(7_202_500);
        for w in Window::ALL {
            let expected_shares = w.duration().as_secs_f64() / 5.0;
            let err = rel_err(m.rate(now, w).unwrap()).abs();
            assert!(err <= 1.0 / expected_shares + 1e-6, "{w:?}: {err}");
        }
    }

    #[test]
    fn poisson_estimates_are_within_four_standard_errors() {
        let t0 = Instant::now();
        for seed in 0..10 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut m = HashrateMeter::new(t0);
            poisson(&mut m, &mut rng, t0, 0.0, 7200.0, difficulty_for(5.0));
            let now = t0 + Duration::from_secs(7200);
            for w in Window::ALL {
                let sigma = 1.0 / (w.duration().as_secs_f64() / 5.0).sqrt();
                let err = rel_err(m.rate(now, w).unwrap());
                assert!(err.abs() < 4.0 * sigma, "seed {seed} {w:?}: {err}");
            }
        }
    }

    #[test]
    fn fifteen_minutes_within_five_percent_at_four_shares_per_second() {
        // ±5 % over 15 m needs ~3,600 shares for 3σ (1/√3600 = 1.7 %); at one share per
        // 5 s the 15 m window holds 180 and σ is 7.5 %, see docs/HASHRATE.md.
        let t0 = Instant::now();
        for seed in 0..10 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut m = HashrateMeter::new(t0);
            poisson(&mut m, &mut rng, t0, 0.0, 900.0, difficulty_for(0.25));
            let err = rel_err(m.rate(t0 + Duration::from_secs(900), Window::M15).unwrap());
            assert!(err.abs() < 0.05, "seed {seed}: {err}");
        }
    }

    #[test]
    fn fifteen_minute_estimate_is_unbiased_at_one_share_per_five_seconds() {
        let t0 = Instant::now();
        let runs = 400;
        let mut total = 0.0;
        for seed in 0..runs {
            let mut rng = StdRng::seed_from_u64(1000 + seed);
            let mut m = HashrateMeter::new(t0);
            poisson(&mut m, &mut rng, t0, 0.0, 1000.0, difficulty_for(5.0));
            total += m.rate(t0 + Duration::from_secs(1000), Window::M15).unwrap();
        }
        // σ of the mean: 7.5 % / √400 = 0.37 %; 1.5 % is four of them.
        let err = rel_err(total / runs as f64);
        assert!(err.abs() < 0.015, "{err}");
    }

    #[test]
    fn difficulty_changes_are_summed_not_multiplied() {
        let t0 = Instant::now();
        let mut m = HashrateMeter::new(t0);
        let d = difficulty_for(5.0);
        // Half an hour at d every 5 s, then the same hashrate at 4d every 20 s.
        for i in 1..=360u64 {
            m.record(t0 + Duration::from_secs(5 * i), d);
        }
        for i in 1..=90u64 {
            m.record(t0 + Duration::from_secs(1800 + 20 * i), 4.0 * d);
        }
        let err = rel_err(m.rate(t0 + Duration::from_secs(3600), Window::H1).unwrap());
        // 450 shares x current difficulty would read 2.5x; the sum reads right.
        assert!(err.abs() < 0.01, "{err}");
    }

    #[test]
    fn young_miner_uses_its_age_as_denominator() {
        let t0 = Instant::now();
        let mut m = HashrateMeter::new(t0);
        let d = difficulty_for(5.0);
        m.record(t0 + Duration::from_secs(5), d);
        assert_eq!(m.rate(t0 + Duration::from_secs(5), Window::M1), None);
        assert_eq!(m.rate(t0 + Duration::from_secs(14), Window::H1), None);
        for i in 2..=6u64 {
            m.record(t0 + Duration::from_secs(5 * i), d);
        }
        let now = t0 + Duration::from_secs(30);
        for w in Window::ALL {
            let r = m.rate(now, w).unwrap();
            // Exact but for the f32 bucket rounding (~6e-8 relative).
            assert!((r / H - 1.0).abs() < 1e-6, "{w:?}: {r}");
        }
    }

    #[test]
    fn silent_miner_decays_to_zero_window_by_window() {
        let t0 = Instant::now();
        let mut m = HashrateMeter::new(t0);
        let d = difficulty_for(5.0);
        for i in 1..=720u64 {
            m.record(t0 + Duration::from_secs(5 * i), d);
        }
        let at = |s: u64| t0 + Duration::from_secs(3600 + s);
        // 70 s after the last share the 1 m window is empty, the others are not.
        assert_eq!(m.rate(at(70), Window::M1), Some(0.0));
        assert!(m.rate(at(70), Window::M5).unwrap() > 0.0);
        assert_eq!(m.rate(at(320), Window::M5), Some(0.0));
        assert_eq!(m.rate(at(961), Window::M15), Some(0.0));
        assert!(m.rate(at(961), Window::H1).unwrap() > 0.0);
        assert_eq!(m.rate(at(3901), Window::H1), Some(0.0));
        // A share after a long silence clears the stale buckets instead of adding to them.
        m.record(at(20_000), d);
        let r = m.rate(at(20_000), Window::H1).unwrap();
        assert!(r > 0.0 && r < H / 100.0, "{r}");
    }

    #[test]
    fn buckets_in_f32_keep_a_busy_miner_exact_to_a_tenth_of_a_percent() {
        // 4 shares/s of a high difficulty for an hour: ~1,200 shares per 5 min bucket.
        let t0 = Instant::now();
        let mut m = HashrateMeter::new(t0);
        let d = 65_536.0 * 3.0 + 0.123;
        let n = 4 * 3600u64;
        for i in 1..=n {
            m.record(t0 + Duration::from_millis(250 * i), d);
        }
        let now = t0 + Duration::from_secs(3600);
        let exact = n as f64 * d * 4_294_967_296.0 / 3600.0;
        let got = m.rate(now, Window::H1).unwrap();
        assert!((got / exact - 1.0).abs() < 1e-3, "{got} vs {exact}");
        // A difficulty past f32's range gives no figure, never a wrong one.
        m.record(now, 1e300);
        assert_eq!(m.rate(now, Window::M1), None);
    }

    #[test]
    fn late_and_bad_records() {
        let t0 = Instant::now();
        let mut m = HashrateMeter::new(t0);
        let d = difficulty_for(5.0);
        for i in 1..=12u64 {
            m.record(t0 + Duration::from_secs(100 + 5 * i), d);
        }
        let before = m.rate(t0 + Duration::from_secs(160), Window::M1).unwrap();
        // Invalid difficulties and shares older than every ring leave it unchanged.
        m.record(t0 + Duration::from_secs(150), f64::NAN);
        m.record(t0 + Duration::from_secs(150), -1.0);
        m.record(t0 + Duration::from_secs(150), 0.0);
        assert_eq!(
            m.rate(t0 + Duration::from_secs(160), Window::M1),
            Some(before)
        );
        // A slightly late share (stamped earlier than the newest) still lands in its bucket.
        m.record(t0 + Duration::from_secs(157), d);
        let after = m.rate(t0 + Duration::from_secs(160), Window::M1).unwrap();
        assert!(after > before);
        // One stamped before birth counts at birth.
        let mut young = HashrateMeter::new(t0 + Duration::from_secs(10));
        young.record(t0, d);
        assert!(
            young
                .rate(t0 + Duration::from_secs(30), Window::M1)
                .unwrap()
                > 0.0
        );
    }

    #[test]
    fn miner_under_vardiff_is_measured_right() {
        use hashgate_protocol::vardiff::{Vardiff, VardiffConfig};
        let t0 = Instant::now();
        for seed in 0..10 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut m = HashrateMeter::new(t0);
            // Starts far too low; vardiff raises it with the next job every 30 s.
            let mut v = Vardiff::new(VardiffConfig::default(), 64.0, t0).unwrap();
            let mut d = v.current();
            let mut t: f64 = 0.0;
            let mut shares_last_15m = 0u32;
            while t < 7200.0 {
                let u: f64 = rng.random();
                let gap = -(1.0 - u).ln() * d * HASHES_PER_DIFFICULTY / H;
                let next_job = (t / 30.0).floor() * 30.0 + 30.0;
                if t + gap >= next_job {
                    // Memoryless: jump to the job and redraw at the difficulty it carries.
                    t = next_job;
                    let now = t0 + Duration::from_secs_f64(t);
                    let _ = v.poll(now);
                    if let Some(next) = v.pending() {
                        v.applied(now);
                        d = next;
                    }
                    continue;
                }
                t += gap;
                let now = t0 + Duration::from_secs_f64(t);
                v.on_share(now, d);
                let _ = v.poll(now);
                m.record(now, d);
                if t >= 7200.0 - 900.0 {
                    shares_last_15m += 1;
                }
            }
            let sigma = 1.0 / f64::from(shares_last_15m).sqrt();
            let err = rel_err(m.rate(t0 + Duration::from_secs(7200), Window::M15).unwrap());
            assert!(
                err.abs() < 4.0 * sigma,
                "seed {seed}: {err} (sigma {sigma})"
            );
        }
    }

    #[test]
    fn window_labels_and_lengths() {
        let labels: Vec<_> = Window::ALL.iter().map(|w| w.label()).collect();
        assert_eq!(labels, ["1m", "5m", "15m", "1h"]);
        assert_eq!(Window::H1.duration(), Duration::from_secs(3600));
    }
}
