//! Answer latencies of every submit, in an HDR histogram striped to avoid contention.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Stripes: connections record into `index % STRIPES`, so two worker threads rarely
/// meet on one lock; each stripe is ~100 KB.
const STRIPES: usize = 32;

/// Highest latency tracked (larger values are clamped): the longest answer timeout.
const MAX_NANOS: u64 = 120_000_000_000;

/// Collects latencies from every connection.
#[derive(Debug)]
pub(crate) struct LatencyRecorder {
    /// One histogram per stripe, in nanoseconds with 3 significant digits.
    stripes: Box<[Mutex<Histogram<u64>>]>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

fn histogram() -> Histogram<u64> {
    // Cannot fail: the bounds are constants that satisfy low >= 1, high >= 2·low, and
    // 3 significant digits is within the allowed 0..=5.
    Histogram::new_with_bounds(1, MAX_NANOS, 3).expect("constant histogram bounds are valid")
}

impl LatencyRecorder {
    /// An empty recorder.
    pub(crate) fn new() -> Self {
        LatencyRecorder {
            stripes: (0..STRIPES).map(|_| Mutex::new(histogram())).collect(),
        }
    }

    /// Records one latency for connection `index`.
    pub(crate) fn record(&self, index: usize, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        if let Some(stripe) = self.stripes.get(index % STRIPES) {
            stripe
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .saturating_record(nanos);
        }
    }

    /// Every stripe merged.
    pub(crate) fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for stripe in &self.stripes {
            let h = stripe.lock().unwrap_or_else(PoisonError::into_inner);
            // Same bounds everywhere, so adding cannot go out of range.
            let _ = all.add(&*h);
        }
        all
    }

    /// The summary of everything recorded.
    pub(crate) fn summary(&self) -> LatencySummary {
        LatencySummary::from_histogram(&self.merged())
    }
}

/// Latency figures in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Answers timed.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Slowest answer.
    pub max_us: f64,
}

impl LatencySummary {
    /// Reads the figures off a nanosecond histogram.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let us = |nanos: u64| nanos as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_merge_and_quantiles_are_ordered() {
        let r = LatencyRecorder::new();
        for i in 0..1000u64 {
            r.record(i as usize, Duration::from_micros(i + 1));
        }
        let s = r.summary();
        assert_eq!(s.count, 1000);
        assert!(s.p50_us <= s.p99_us && s.p99_us <= s.p999_us && s.p999_us <= s.max_us);
        assert!((s.p50_us - 500.0).abs() < 2.0, "{s:?}");
        assert!((s.max_us - 1000.0).abs() < 2.0, "{s:?}");
    }

    #[test]
    fn empty_is_all_zero_and_huge_values_clamp() {
        assert_eq!(LatencyRecorder::new().summary(), LatencySummary::default());
        let r = LatencyRecorder::new();
        r.record(0, Duration::from_secs(10_000));
        assert_eq!(r.summary().count, 1);
    }
}
