//! Which difficulty to ask a pool for: one at which the channel's share-proven hashrate
//! gives the configured number of forwarded shares a second.
//!
//! A pool starts a connection at a difficulty of its own choosing; for an aggregated
//! channel that is often far off (a flood of shares, or minutes between them, which
//! makes the pool's view of the site and our reject/no-answer rules coarse). Many pools
//! take `mining.suggest_difficulty` (ckpool clamps it to its bounds, answers nothing and
//! sends `set_difficulty` when the value changes). The rule has two bands so it neither
//! chatters nor fights a pool that keeps its own value:
//!
//! - nothing is sent while the pool's difficulty is within 2× of the fitting one;
//! - once something was suggested, nothing more is sent until the fitting difficulty has
//!   moved more than 4× from it (a pool that ignores the suggestion hears it once per
//!   such move, not every tick).

use crate::stats::hashrate::HASHES_PER_DIFFICULTY as HASHES_PER_DIFFICULTY_1;

/// The pool's difficulty counts as fitting within this factor either way.
pub(super) const FITS_WITHIN: f64 = 2.0;

/// A new suggestion needs the fitting difficulty to move this far from the last one.
pub(super) const RESUGGEST_AFTER: f64 = 4.0;

/// The per-connection state of the rule.
#[derive(Debug, Clone)]
pub(super) struct Suggester {
    /// Forwarded shares a second aimed at; 0 turns the rule off.
    shares_per_sec: f64,
    /// The last difficulty suggested on this connection.
    suggested: Option<f64>,
}

impl Suggester {
    /// A rule aiming at `shares_per_sec` forwarded shares a second (0: never suggest).
    pub(super) fn new(shares_per_sec: f64) -> Suggester {
        Suggester {
            shares_per_sec,
            suggested: None,
        }
    }

    /// The difficulty at which `hashrate` (hashes a second) gives the aimed share rate.
    pub(super) fn fitting(&self, hashrate: f64) -> Option<f64> {
        let d = hashrate / (HASHES_PER_DIFFICULTY_1 * self.shares_per_sec);
        (self.shares_per_sec > 0.0 && d.is_finite() && d > 0.0).then_some(d)
    }

    /// What to suggest now, if anything, for the channel's `hashrate` (`None` while not
    /// yet known) and the pool's current difficulty `pool`.
    pub(super) fn decide(&mut self, hashrate: Option<f64>, pool: f64) -> Option<f64> {
        let fit = self.fitting(hashrate?)?;
        if within(pool, fit, FITS_WITHIN) {
            return None;
        }
        if self
            .suggested
            .is_some_and(|last| within(fit, last, RESUGGEST_AFTER))
        {
            return None;
        }
        self.suggested = Some(fit);
        Some(fit)
    }
}

/// Whether `a` is within a factor `factor` of `b` (both positive).
fn within(a: f64, b: f64, factor: f64) -> bool {
    a <= b * factor && b <= a * factor
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashrate giving one share a second at difficulty `d`.
    fn rate_for(d: f64) -> f64 {
        d * HASHES_PER_DIFFICULTY_1
    }

    #[test]
    fn fitting_difficulty_gives_the_aimed_share_rate() {
        let s = Suggester::new(0.5);
        // 1,000 diff-1 shares a second of work: at 0.5 shares/s each share is 2,000.
        let fit = s.fitting(rate_for(1000.0)).expect("fit");
        assert!((fit - 2000.0).abs() < 1e-6, "{fit}");
        assert_eq!(s.fitting(0.0), None);
        assert_eq!(Suggester::new(0.0).fitting(rate_for(1000.0)), None);
    }

    #[test]
    fn nothing_is_suggested_while_the_pool_is_within_two_times() {
        let mut s = Suggester::new(1.0);
        assert_eq!(s.decide(Some(rate_for(1000.0)), 1999.0), None);
        assert_eq!(s.decide(Some(rate_for(1000.0)), 501.0), None);
        assert_eq!(s.decide(None, 1.0), None, "unknown hashrate");
        assert_eq!(s.decide(Some(rate_for(1000.0)), 2001.0), Some(1000.0));
    }

    #[test]
    fn a_pool_that_ignores_the_suggestion_hears_it_again_only_after_a_four_times_move() {
        let mut s = Suggester::new(1.0);
        assert_eq!(s.decide(Some(rate_for(1000.0)), 1.0), Some(1000.0));
        // The pool stays at 1: the fit wanders within 4× of what was said, nothing more.
        for d in [1000.0, 3000.0, 3999.0, 260.0] {
            assert_eq!(s.decide(Some(rate_for(d)), 1.0), None, "{d}");
        }
        assert_eq!(s.decide(Some(rate_for(4001.0)), 1.0), Some(4001.0));
        assert_eq!(s.suggested, Some(4001.0));
        // Down as well as up.
        assert_eq!(s.decide(Some(rate_for(900.0)), 1.0), Some(900.0));
    }

    #[test]
    fn a_pool_that_followed_is_left_alone_even_after_a_large_move_back_into_its_band() {
        let mut s = Suggester::new(1.0);
        assert_eq!(s.decide(Some(rate_for(1000.0)), 10.0), Some(1000.0));
        // The hashrate moves 5× but the pool (at 4,000 by its own vardiff) already fits.
        assert_eq!(s.decide(Some(rate_for(5000.0)), 4000.0), None);
    }

    #[test]
    fn off_means_never() {
        let mut s = Suggester::new(0.0);
        assert_eq!(s.decide(Some(rate_for(1e9)), 1.0), None);
    }
}
