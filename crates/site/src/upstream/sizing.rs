//! Which extranonce split a pool connection uses, given the sizes miners already hold.
//!
//! The first pool to report its extranonce2 size fixes the miners' sizes (prefix `k`,
//! miner extranonce2 `m`). Every later connection keeps `k` and `m` and pads the rest of
//! its own `N`; only a pool whose `N` is too small for `k + m` forces new sizes on the
//! miners (`mining.set_extranonce` or `client.reconnect`, done by the sessions).

use crate::hub::MinerSizes;
use hashgate_protocol::extranonce::{ExtranonceError, ExtranoncePlan, SplitLimits, choose_split};

/// The split for one pool and whether miners must change sizes for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlanChoice {
    /// The miners' sizes fit this pool.
    Fits(ExtranoncePlan),
    /// The miners must take these sizes (the first pool, or one too small for the old ones).
    Resize(ExtranoncePlan),
}

impl PlanChoice {
    /// The plan either way.
    #[cfg(test)]
    pub(crate) fn plan(self) -> ExtranoncePlan {
        match self {
            PlanChoice::Fits(plan) | PlanChoice::Resize(plan) => plan,
        }
    }
}

/// Chooses the split for a pool extranonce2 of `pool_extranonce2_size` bytes.
///
/// # Errors
/// The [`ExtranonceError`] of [`choose_split`] when the pool cannot be used at all
/// (extranonce2 below 3 bytes or above 32).
pub(crate) fn plan_for(
    current: Option<MinerSizes>,
    pool_extranonce2_size: usize,
    miners_per_upstream: usize,
    limits: SplitLimits,
) -> Result<PlanChoice, ExtranonceError> {
    if let Some(sizes) = current
        && let Some(plan) = ExtranoncePlan::fit(
            sizes.prefix_len,
            sizes.extranonce2_size,
            pool_extranonce2_size,
        )
    {
        return Ok(PlanChoice::Fits(plan));
    }
    choose_split(pool_extranonce2_size, miners_per_upstream, limits).map(PlanChoice::Resize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(k: usize, m: usize) -> Option<MinerSizes> {
        Some(MinerSizes {
            prefix_len: k,
            extranonce2_size: m,
        })
    }

    #[test]
    fn first_pool_fixes_sizes_later_ones_pad_or_resize() {
        let limits = SplitLimits::default();
        let first = plan_for(None, 8, 4096, limits).unwrap();
        assert!(matches!(first, PlanChoice::Resize(_)));
        let fixed = Some(MinerSizes::of(&first.plan()));
        assert_eq!(fixed, sizes(2, 6));
        let wide = plan_for(fixed, 16, 4096, limits).unwrap();
        assert_eq!(
            wide,
            PlanChoice::Fits(ExtranoncePlan::fit(2, 6, 16).unwrap())
        );
        assert_eq!(wide.plan().pad_len(), 8);
        let narrow = plan_for(fixed, 4, 4096, limits).unwrap();
        assert!(matches!(narrow, PlanChoice::Resize(p) if p.miner_extranonce2_size() == 2));
        assert!(plan_for(fixed, 2, 4096, limits).is_err());
    }
}
