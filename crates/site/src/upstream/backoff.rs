//! Reconnect back-off: exponential from `min` to `max`, with jitter so that many proxies
//! (or many channels of one proxy) do not hit a recovering pool in the same instant.

use std::time::Duration;

/// The delay before the next reconnect attempt of one pool; pure (the caller supplies the
/// random jitter), so the schedule is testable without sleeping.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    /// First delay, after the first failure.
    min: Duration,
    /// Ceiling of the delay.
    max: Duration,
    /// Failures since the last healthy connection; the exponent.
    failures: u32,
}

impl Backoff {
    /// A schedule from `min` doubling up to `max` (`max` below `min` is read as `min`).
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// `(min, max)`, to tell whether a reload changed them.
    pub(crate) fn bounds(&self) -> (Duration, Duration) {
        (self.min, self.max)
    }

    /// The delay after one more failure. `jitter` in `0.0..=1.0` (out-of-range values are
    /// clamped) picks a point between half the nominal delay and the full delay ("equal
    /// jitter"), never below `min`: attempts spread out but still grow.
    pub(crate) fn next_delay(&mut self, jitter: f64) -> Duration {
        let nominal = self.nominal();
        self.failures = self.failures.saturating_add(1);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        // `mul_f64` panics when rounding lands past `Duration::MAX`; keep the nominal then.
        Duration::try_from_secs_f64(nominal.as_secs_f64() * (0.5 + 0.5 * jitter))
            .unwrap_or(nominal)
            .min(nominal)
            .max(self.min)
    }

    /// The un-jittered delay the next failure would get.
    pub(crate) fn nominal(&self) -> Duration {
        // 2^20 × any sane minimum is far past any sane maximum: stop doubling there.
        let factor = 1u32 << self.failures.min(20);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// Failures counted since the last reset.
    #[cfg(test)]
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Starts over after a connection that stayed healthy.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn doubles_from_min_to_max() {
        let mut b = Backoff::new(MS(250), Duration::from_secs(30));
        let full: Vec<Duration> = (0..10).map(|_| b.next_delay(1.0)).collect();
        assert_eq!(
            full,
            [
                MS(250),
                MS(500),
                MS(1000),
                MS(2000),
                MS(4000),
                MS(8000),
                MS(16000),
                MS(30000),
                MS(30000),
                MS(30000)
            ]
        );
        assert_eq!(b.failures(), 10);
    }

    #[test]
    fn jitter_stays_between_half_and_full_but_not_below_min() {
        let mut b = Backoff::new(MS(250), Duration::from_secs(30));
        assert_eq!(b.next_delay(0.0), MS(250), "half of min is raised to min");
        assert_eq!(b.next_delay(0.0), MS(250));
        assert_eq!(b.next_delay(0.5), MS(750));
        assert_eq!(b.next_delay(f64::NAN), MS(1000));
        assert_eq!(b.next_delay(7.0), MS(4000), "clamped to 1");
    }

    #[test]
    fn reset_starts_over_and_huge_counts_do_not_overflow() {
        let mut b = Backoff::new(MS(100), Duration::from_secs(5));
        for _ in 0..1000 {
            b.next_delay(1.0);
        }
        assert_eq!(b.nominal(), Duration::from_secs(5));
        b.reset();
        assert_eq!(b.next_delay(1.0), MS(100));
        let mut odd = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(odd.next_delay(1.0), Duration::from_secs(2));
    }
}
