//! Extranonce splitting: many miners share one upstream connection without doing the same work.
//!
//! The pool gives each upstream connection an extranonce1 `E` and an extranonce2 size `N`.
//! The proxy splits the `N` bytes the pool lets it choose into a fixed, unique per-miner
//! prefix and the miner's own extranonce2. Both widths are fixed: with a variable width,
//! prefix `01` + extranonce2 `02 03` and prefix `01 02` + extranonce2 `03` would be the same
//! coinbase, i.e. two miners doing the same work.
//!
//! # Byte layout of the pool's extranonce2 (`N` bytes)
//!
//! | offset | width | content | what the miner sees |
//! |---|---|---|---|
//! | 0 | `pad = N − k − m` | zero bytes, fixed | folded into its coinb1: `coinb1 ‖ E ‖ pad` |
//! | `pad` | `k` (1–2) | prefix `p`: the lease index, big-endian | its extranonce1 |
//! | `pad + k` | `m` (2–8) | the miner's extranonce2, as it submits it | its extranonce2 (size `m`) |
//!
//! The whole coinbase is `coinb1 ‖ E ‖ pad ‖ p ‖ e2 ‖ coinb2` from either side. Because the
//! miner's extranonce1 is `p` alone and `E ‖ pad` travels inside coinb1, the miner's view
//! does not depend on which pool (or which upstream connection with which `E`) is active.
//!
//! # Why these widths
//!
//! - `m ≤ 8`: WhatsMiner firmware fails with an extranonce2 above 8 bytes; bytes the pool
//!   gives beyond what the prefix and 8 bytes need become fixed padding.
//! - `m ≥ 2`: a job then has 2^16 coinbases × 2^32 nonces × 2^16 BIP310 version-rolling
//!   values = 2^64 headers, about 5 hours at 1 PH/s, far beyond a job's life of a minute.
//!   (A miner without version rolling gets 2^48 per job, 1.4 s at 200 TH/s; such miners are
//!   old and slow, S9-class at 14 TH/s takes 20 s, and they roll ntime too.)
//! - `k ≤ 2`: at most 65,536 miners per upstream connection. More per connection buys
//!   nothing and puts more miners behind one socket; [`ExtranoncePlan::channels_for`]
//!   says how many connections a site needs.
//!
//! So the pool's extranonce2 must be at least 3 bytes (1 prefix + 2 miner); 2-byte pools get
//! a clear [`ExtranonceError::PoolExtranonce2TooSmall`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// Longest prefix: 2 bytes, 65,536 miners per upstream connection.
pub const MAX_PREFIX_LEN: usize = 2;

/// Largest pool extranonce2 accepted; real pools give 2–8 bytes, 32 leaves ample room.
pub const MAX_POOL_EXTRANONCE2: usize = 32;

/// Extranonce split or composition failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtranonceError {
    /// The pool leaves too few extranonce2 bytes for a prefix plus a rollable miner part.
    #[error(
        "pool extranonce2 size {size} is too small: need at least {minimum} bytes \
         (1 prefix byte + {min_miner} miner extranonce2 bytes); use a pool or port with a larger extranonce2"
    )]
    PoolExtranonce2TooSmall {
        /// What the pool gave.
        size: usize,
        /// The smallest size that works.
        minimum: usize,
        /// The miner extranonce2 floor in force.
        min_miner: usize,
    },
    /// The pool gives more extranonce2 than any real pool does; likely a broken subscribe reply.
    #[error(
        "pool extranonce2 size {size} is above the supported maximum of {MAX_POOL_EXTRANONCE2} bytes"
    )]
    PoolExtranonce2TooLarge {
        /// What the pool gave.
        size: usize,
    },
    /// The configured miner extranonce2 limits are inconsistent.
    #[error(
        "invalid miner extranonce2 limits: min {min} and max {max} must satisfy 1 <= min <= max"
    )]
    InvalidLimits {
        /// Configured minimum.
        min: usize,
        /// Configured maximum.
        max: usize,
    },
    /// A prefix length outside 1..=[`MAX_PREFIX_LEN`].
    #[error("prefix length {len} is out of range 1..={MAX_PREFIX_LEN}")]
    PrefixLength {
        /// The rejected length.
        len: usize,
    },
    /// A miner submitted an extranonce2 of the wrong width: reject the share.
    #[error("miner extranonce2 is {got} bytes, expected exactly {expected}")]
    MinerExtranonce2Size {
        /// The width the miner was told at subscribe.
        expected: usize,
        /// The width it submitted.
        got: usize,
    },
    /// A prefix from a pool with another prefix width (a lease mixed up between channels).
    #[error("prefix is {got} bytes but this plan uses {expected}")]
    PrefixMismatch {
        /// The plan's prefix width.
        expected: usize,
        /// The prefix's width.
        got: usize,
    },
}

/// Bounds on the miner's extranonce2 width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitLimits {
    /// Fewest bytes a miner may roll (default 2, see the module docs).
    pub min_miner_extranonce2: usize,
    /// Most bytes real firmware accepts (default 8: WhatsMiners fail above).
    pub max_miner_extranonce2: usize,
}

impl Default for SplitLimits {
    fn default() -> Self {
        Self {
            min_miner_extranonce2: 2,
            max_miner_extranonce2: 8,
        }
    }
}

/// How one pool's extranonce2 is split; see the module docs for the byte layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtranoncePlan {
    /// `N`: the pool's extranonce2 size.
    pool_extranonce2_size: usize,
    /// Fixed zero bytes in front, folded into the miner's coinb1.
    pad_len: usize,
    /// `k`: the per-miner prefix width, sent as the miner's extranonce1.
    prefix_len: usize,
    /// `m`: the miner's extranonce2 size.
    miner_extranonce2_size: usize,
}

/// Chooses the split for a pool extranonce2 of `pool_extranonce2_size` bytes and a site of
/// about `expected_miners` miners.
///
/// The prefix gets the fewest bytes that fit `expected_miners` on one upstream connection
/// (1 byte up to 256, else 2), but never so many that the miner keeps fewer than
/// `min_miner_extranonce2` (then more connections are needed, see
/// [`ExtranoncePlan::channels_for`]). The miner gets the rest up to
/// `max_miner_extranonce2`; what is left over is padding.
///
/// # Errors
///
/// [`ExtranonceError::PoolExtranonce2TooSmall`] below `1 + min_miner_extranonce2` bytes,
/// [`ExtranonceError::PoolExtranonce2TooLarge`] above [`MAX_POOL_EXTRANONCE2`],
/// [`ExtranonceError::InvalidLimits`] for inconsistent limits.
pub fn choose_split(
    pool_extranonce2_size: usize,
    expected_miners: usize,
    limits: SplitLimits,
) -> Result<ExtranoncePlan, ExtranonceError> {
    let SplitLimits {
        min_miner_extranonce2: min,
        max_miner_extranonce2: max,
    } = limits;
    if min == 0 || min > max {
        return Err(ExtranonceError::InvalidLimits { min, max });
    }
    if pool_extranonce2_size > MAX_POOL_EXTRANONCE2 {
        return Err(ExtranonceError::PoolExtranonce2TooLarge {
            size: pool_extranonce2_size,
        });
    }
    let room = pool_extranonce2_size.saturating_sub(min);
    if room < 1 {
        return Err(ExtranonceError::PoolExtranonce2TooSmall {
            size: pool_extranonce2_size,
            minimum: min + 1,
            min_miner: min,
        });
    }
    let wanted_prefix = if expected_miners <= 256 {
        1
    } else {
        MAX_PREFIX_LEN
    };
    let prefix_len = wanted_prefix.min(room);
    let miner_extranonce2_size = (pool_extranonce2_size - prefix_len).min(max);
    Ok(ExtranoncePlan {
        pool_extranonce2_size,
        pad_len: pool_extranonce2_size - prefix_len - miner_extranonce2_size,
        prefix_len,
        miner_extranonce2_size,
    })
}

impl ExtranoncePlan {
    /// The plan for another pool (or a reconnect) that keeps miners' sizes: prefix width `k`
    /// and miner extranonce2 `m` stay, the rest of this pool's `N` becomes padding. `None`
    /// when `k + m` exceeds `N` (or `N` is above [`MAX_POOL_EXTRANONCE2`], or `k` is out of
    /// range): the miners must then be resized.
    pub fn fit(
        prefix_len: usize,
        miner_extranonce2_size: usize,
        pool_extranonce2_size: usize,
    ) -> Option<ExtranoncePlan> {
        if !(1..=MAX_PREFIX_LEN).contains(&prefix_len)
            || miner_extranonce2_size == 0
            || pool_extranonce2_size > MAX_POOL_EXTRANONCE2
        {
            return None;
        }
        let pad_len = pool_extranonce2_size.checked_sub(prefix_len + miner_extranonce2_size)?;
        Some(ExtranoncePlan {
            pool_extranonce2_size,
            pad_len,
            prefix_len,
            miner_extranonce2_size,
        })
    }

    /// `N`: the pool's extranonce2 size.
    pub fn pool_extranonce2_size(&self) -> usize {
        self.pool_extranonce2_size
    }

    /// Fixed zero bytes between `E` and the prefix, carried in the miner's coinb1.
    pub fn pad_len(&self) -> usize {
        self.pad_len
    }

    /// `k`: the prefix width, i.e. the miner's extranonce1 length.
    pub fn prefix_len(&self) -> usize {
        self.prefix_len
    }

    /// `m`: the extranonce2 size to give the miner in its subscribe reply.
    pub fn miner_extranonce2_size(&self) -> usize {
        self.miner_extranonce2_size
    }

    /// Miners one upstream connection can carry: 256^k.
    pub fn capacity_per_channel(&self) -> usize {
        1 << (8 * self.prefix_len)
    }

    /// Upstream connections needed for `miners` miners (at least one).
    pub fn channels_for(&self, miners: usize) -> usize {
        miners.div_ceil(self.capacity_per_channel()).max(1)
    }

    /// Appends what follows the pool's coinb1 in the coinb1 sent to miners: `E ‖ pad`.
    pub fn extend_coinb1(&self, pool_extranonce1: &[u8], coinb1: &mut Vec<u8>) {
        coinb1.extend_from_slice(pool_extranonce1);
        coinb1.resize(coinb1.len() + self.pad_len, 0);
    }

    /// The extranonce2 the pool must see for a miner's share: `pad ‖ prefix ‖ e2`.
    ///
    /// # Errors
    ///
    /// [`ExtranonceError::MinerExtranonce2Size`] when the miner's extranonce2 is not exactly
    /// [`Self::miner_extranonce2_size`] bytes (reject the share);
    /// [`ExtranonceError::PrefixMismatch`] for a prefix of another width (an internal mix-up).
    pub fn compose(
        &self,
        prefix: Prefix,
        miner_extranonce2: &[u8],
    ) -> Result<PoolExtranonce2, ExtranonceError> {
        if miner_extranonce2.len() != self.miner_extranonce2_size {
            return Err(ExtranonceError::MinerExtranonce2Size {
                expected: self.miner_extranonce2_size,
                got: miner_extranonce2.len(),
            });
        }
        if prefix.len() != self.prefix_len {
            return Err(ExtranonceError::PrefixMismatch {
                expected: self.prefix_len,
                got: prefix.len(),
            });
        }
        let mut out = PoolExtranonce2 {
            bytes: [0; MAX_POOL_EXTRANONCE2],
            len: 0,
        };
        // Pad bytes are already zero; write the prefix and the miner's part after them.
        let body = self.pad_len..self.pool_extranonce2_size;
        if let Some(dst) = out.bytes.get_mut(body) {
            let (p, e2) = dst.split_at_mut(self.prefix_len);
            p.copy_from_slice(prefix.as_bytes());
            e2.copy_from_slice(miner_extranonce2);
        }
        out.len = self.pool_extranonce2_size;
        Ok(out)
    }
}

/// The pool-side extranonce2 of one share, built without a heap allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PoolExtranonce2 {
    /// Backing storage; only the first `len` bytes are meaningful.
    bytes: [u8; MAX_POOL_EXTRANONCE2],
    /// `N`, at most [`MAX_POOL_EXTRANONCE2`].
    len: usize,
}

impl PoolExtranonce2 {
    /// The `N` bytes to send to the pool (hex-encode them for `mining.submit`).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&self.bytes)
    }
}

impl fmt::Debug for PoolExtranonce2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PoolExtranonce2({})", hex::encode(self.as_bytes()))
    }
}

/// One miner's fixed-width prefix, which is also its extranonce1.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// Position in its pool, `< 256^len`.
    index: u32,
    /// Width in bytes, 1..=[`MAX_PREFIX_LEN`].
    len: u8,
    /// The index big-endian in the last `len` bytes, kept so `as_bytes` can borrow.
    bytes: [u8; 4],
}

impl Prefix {
    fn new(index: u32, len: usize) -> Self {
        Self {
            index,
            len: len as u8,
            bytes: index.to_be_bytes(),
        }
    }

    /// The prefix bytes: the miner's extranonce1.
    pub fn as_bytes(&self) -> &[u8] {
        let start = self.bytes.len().saturating_sub(usize::from(self.len));
        self.bytes.get(start..).unwrap_or(&self.bytes)
    }

    /// Width in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a prefix has at least one byte (kept for clippy's `len` convention).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The prefix as a number, handy as a compact log field.
    pub fn index(&self) -> u32 {
        self.index
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prefix({})", hex::encode(self.as_bytes()))
    }
}

/// The prefixes of one upstream connection ("channel"), leased to miners.
///
/// Shared as `Arc<PrefixPool>`; a [`PrefixLease`] returns its prefix when dropped. The
/// lock is a plain `std` mutex held for a few instructions and never across an `.await`.
///
/// # Reuse order
///
/// Never-used prefixes go first; released ones are reused oldest-first (FIFO) only after
/// that, and only once every job they were used on is stale ([`PrefixPool::jobs_went_stale`],
/// called when a `clean_jobs` job is published). A share of a departed miner can still be
/// in flight (or the pool's answer to it), and a new miner given the same prefix on the
/// same job would start from the same extranonce2 and redo work already submitted, which
/// the pool rejects as duplicate. A channel with no reusable prefix is full: the hub opens
/// another.
#[derive(Debug)]
pub struct PrefixPool {
    /// Prefix width `k`.
    prefix_len: usize,
    /// 256^k.
    capacity: u32,
    /// Mutable part, under a lock since sessions on many tasks lease and drop.
    state: Mutex<PoolState>,
}

#[derive(Debug)]
struct PoolState {
    /// Indices below this were handed out at least once; allocation is O(1) without
    /// building a free list of all 65,536 prefixes up front.
    next_fresh: u32,
    /// Released indices with the job epoch they were released in, oldest first.
    released: VecDeque<(u32, u64)>,
    /// Counts `clean_jobs` publications: a prefix released in epoch `e` is reusable once
    /// this is past `e`.
    epoch: u64,
    /// Leases alive now.
    in_use: u32,
}

impl PrefixPool {
    /// A pool of all 256^`prefix_len` prefixes.
    ///
    /// # Errors
    ///
    /// [`ExtranonceError::PrefixLength`] unless `1 <= prefix_len <= MAX_PREFIX_LEN`.
    pub fn new(prefix_len: usize) -> Result<Arc<Self>, ExtranonceError> {
        if !(1..=MAX_PREFIX_LEN).contains(&prefix_len) {
            return Err(ExtranonceError::PrefixLength { len: prefix_len });
        }
        Ok(Self::build(prefix_len))
    }

    /// A pool for the prefixes of `plan`.
    pub fn for_plan(plan: &ExtranoncePlan) -> Arc<Self> {
        Self::build(plan.prefix_len)
    }

    fn build(prefix_len: usize) -> Arc<Self> {
        Arc::new(Self {
            prefix_len,
            capacity: 1 << (8 * prefix_len),
            state: Mutex::new(PoolState {
                next_fresh: 0,
                released: VecDeque::new(),
                epoch: 0,
                in_use: 0,
            }),
        })
    }

    /// Leases a unique prefix, or `None` when all are taken (open another upstream connection).
    pub fn lease(self: &Arc<Self>) -> Option<PrefixLease> {
        let index = {
            let mut state = self.lock();
            let index = if state.next_fresh < self.capacity {
                state.next_fresh += 1;
                state.next_fresh - 1
            } else {
                // FIFO with epochs that only grow: if the oldest is still held, all are.
                let &(index, released_in) = state.released.front()?;
                if released_in >= state.epoch {
                    return None;
                }
                state.released.pop_front();
                index
            };
            state.in_use += 1;
            index
        };
        Some(PrefixLease {
            pool: Arc::clone(self),
            prefix: Prefix::new(index, self.prefix_len),
        })
    }

    /// Prefix width `k`.
    pub fn prefix_len(&self) -> usize {
        self.prefix_len
    }

    /// Number of prefixes, leased or not.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Prefixes leased now (the "extranonce space used" metric).
    pub fn in_use(&self) -> u32 {
        self.lock().in_use
    }

    /// Every job published so far is stale (a `clean_jobs` job replaced them): prefixes
    /// released until now can no longer meet their old work and may be leased again.
    pub fn jobs_went_stale(&self) {
        self.lock().epoch += 1;
    }

    fn release(&self, index: u32) {
        let mut state = self.lock();
        let epoch = state.epoch;
        state.released.push_back((index, epoch));
        state.in_use = state.in_use.saturating_sub(1);
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic elsewhere while holding the lock leaves the counters consistent (every
        // update is a single step), so a poisoned lock is still safe to use.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A leased prefix; dropping it returns the prefix to its pool.
pub struct PrefixLease {
    /// Keeps the pool alive for the release on drop.
    pool: Arc<PrefixPool>,
    /// The leased prefix.
    prefix: Prefix,
}

impl PrefixLease {
    /// The leased prefix (the miner's extranonce1).
    pub fn prefix(&self) -> Prefix {
        self.prefix
    }
}

impl Drop for PrefixLease {
    fn drop(&mut self) {
        self.pool.release(self.prefix.index);
    }
}

impl fmt::Debug for PrefixLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PrefixLease").field(&self.prefix).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn split(n: usize, miners: usize) -> Result<ExtranoncePlan, ExtranonceError> {
        choose_split(n, miners, SplitLimits::default())
    }

    fn widths(plan: ExtranoncePlan) -> (usize, usize, usize) {
        (
            plan.pad_len(),
            plan.prefix_len(),
            plan.miner_extranonce2_size(),
        )
    }

    #[test]
    fn split_on_realistic_pool_sizes() {
        // ckpool and most large pools: 8 bytes.
        assert_eq!(widths(split(8, 10_000).unwrap()), (0, 2, 6));
        assert_eq!(widths(split(8, 200).unwrap()), (0, 1, 7));
        // 4-byte pools.
        assert_eq!(widths(split(4, 10_000).unwrap()), (0, 2, 2));
        assert_eq!(widths(split(4, 100).unwrap()), (0, 1, 3));
        // NiceHash-style 3 bytes: one prefix byte, 256 miners per connection.
        let tight = split(3, 10_000).unwrap();
        assert_eq!(widths(tight), (0, 1, 2));
        assert_eq!(tight.channels_for(10_000), 40);
        // Generous pools: the miner is capped at 8, the rest is padding.
        assert_eq!(widths(split(16, 10_000).unwrap()), (6, 2, 8));
        assert_eq!(widths(split(10, 50).unwrap()), (1, 1, 8));
        for plan in [split(8, 10_000).unwrap(), split(16, 3).unwrap(), tight] {
            let sum = plan.pad_len() + plan.prefix_len() + plan.miner_extranonce2_size();
            assert_eq!(sum, plan.pool_extranonce2_size());
        }
    }

    #[test]
    fn too_small_and_too_large_pools_are_clear_errors() {
        let err = split(2, 10).unwrap_err();
        assert_eq!(
            err,
            ExtranonceError::PoolExtranonce2TooSmall {
                size: 2,
                minimum: 3,
                min_miner: 2
            }
        );
        assert!(err.to_string().contains("need at least 3 bytes"), "{err}");
        assert!(split(0, 10).is_err());
        assert_eq!(
            split(33, 10).unwrap_err(),
            ExtranonceError::PoolExtranonce2TooLarge { size: 33 }
        );
        let limits = SplitLimits {
            min_miner_extranonce2: 4,
            max_miner_extranonce2: 8,
        };
        assert!(matches!(
            choose_split(4, 10, limits),
            Err(ExtranonceError::PoolExtranonce2TooSmall { minimum: 5, .. })
        ));
        let bad = SplitLimits {
            min_miner_extranonce2: 9,
            max_miner_extranonce2: 8,
        };
        assert_eq!(
            choose_split(8, 10, bad).unwrap_err(),
            ExtranonceError::InvalidLimits { min: 9, max: 8 }
        );
    }

    #[test]
    fn fit_keeps_miner_sizes_and_pads_the_rest() {
        let first = split(8, 10_000).unwrap();
        assert_eq!(widths(first), (0, 2, 6));
        let wider = ExtranoncePlan::fit(2, 6, 12).unwrap();
        assert_eq!(widths(wider), (4, 2, 6));
        assert_eq!(wider.pool_extranonce2_size(), 12);
        assert_eq!(ExtranoncePlan::fit(2, 6, 8), Some(first));
        assert_eq!(ExtranoncePlan::fit(2, 6, 7), None, "too small: resize");
        assert_eq!(ExtranoncePlan::fit(2, 6, 33), None);
        assert_eq!(ExtranoncePlan::fit(3, 6, 16), None);
        assert_eq!(ExtranoncePlan::fit(0, 6, 16), None);
    }

    #[test]
    fn capacity_and_channels() {
        let plan = split(8, 100_000).unwrap();
        assert_eq!(plan.capacity_per_channel(), 65_536);
        assert_eq!(plan.channels_for(100_000), 2);
        assert_eq!(plan.channels_for(0), 1);
        assert_eq!(split(8, 1).unwrap().capacity_per_channel(), 256);
    }

    #[test]
    fn compose_lays_out_pad_prefix_extranonce2() {
        let plan = split(12, 1000).unwrap();
        assert_eq!(widths(plan), (2, 2, 8));
        let pool = PrefixPool::for_plan(&plan);
        let leases: Vec<_> = (0..0x0102).map(|_| pool.lease().unwrap()).collect();
        let prefix = leases.last().unwrap().prefix();
        assert_eq!(prefix.as_bytes(), [0x01, 0x01]);
        let e2 = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11, 0x22];
        let composed = plan.compose(prefix, &e2).unwrap();
        assert_eq!(
            composed.as_bytes(),
            [
                0, 0, 0x01, 0x01, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11, 0x22
            ]
        );
        assert_eq!(
            format!("{composed:?}"),
            "PoolExtranonce2(00000101aabbccddeeff1122)"
        );

        let mut coinb1 = vec![0x01, 0x02];
        plan.extend_coinb1(&[0xe1, 0xe2, 0xe3, 0xe4], &mut coinb1);
        assert_eq!(coinb1, [0x01, 0x02, 0xe1, 0xe2, 0xe3, 0xe4, 0, 0]);
        // The miner's coinbase and the pool's are the same bytes.
        let miner_side = [coinb1.clone(), prefix.as_bytes().to_vec(), e2.to_vec()].concat();
        let pool_side = [
            vec![0x01, 0x02, 0xe1, 0xe2, 0xe3, 0xe4],
            composed.as_bytes().to_vec(),
        ]
        .concat();
        assert_eq!(miner_side, pool_side);
    }

    #[test]
    fn compose_rejects_wrong_widths() {
        let plan = split(8, 1000).unwrap();
        let pool = PrefixPool::for_plan(&plan);
        let lease = pool.lease().unwrap();
        assert_eq!(
            plan.compose(lease.prefix(), &[0; 7]).unwrap_err(),
            ExtranonceError::MinerExtranonce2Size {
                expected: 6,
                got: 7
            }
        );
        assert!(plan.compose(lease.prefix(), &[0; 5]).is_err());
        let other = PrefixPool::new(1).unwrap().lease().unwrap();
        assert_eq!(
            plan.compose(other.prefix(), &[0; 6]).unwrap_err(),
            ExtranonceError::PrefixMismatch {
                expected: 2,
                got: 1
            }
        );
    }

    #[test]
    fn leases_are_unique_until_the_pool_is_full() {
        let pool = PrefixPool::new(2).unwrap();
        let leases: Vec<_> = (0..65_536).map(|_| pool.lease().unwrap()).collect();
        let distinct: HashSet<Vec<u8>> = leases
            .iter()
            .map(|l| l.prefix().as_bytes().to_vec())
            .collect();
        assert_eq!(distinct.len(), 65_536);
        assert_eq!(pool.in_use(), 65_536);
        assert!(pool.lease().is_none(), "a full pool must refuse");
    }

    #[test]
    fn drop_frees_and_reuse_is_fifo_after_fresh_prefixes() {
        let pool = PrefixPool::new(1).unwrap();
        assert_eq!(pool.capacity(), 256);
        let mut leases: Vec<_> = (0..10).map(|_| pool.lease().unwrap()).collect();
        let third = leases.remove(3);
        assert_eq!(third.prefix().index(), 3);
        drop(third);
        pool.jobs_went_stale();
        assert_eq!(pool.in_use(), 9);
        // A fresh prefix comes before the one just released.
        assert_eq!(pool.lease().unwrap().prefix().index(), 10);
        // (That lease dropped at once: 10 is now released after 3.)
        leases.extend((11..256).map(|_| pool.lease().unwrap()));
        assert_eq!(pool.in_use(), 254);
        let second = leases.remove(2);
        drop(second);
        pool.jobs_went_stale();
        // Released order was 3, 10, 2: reuse follows it.
        let order: Vec<u32> = (0..3)
            .map(|_| pool.lease().unwrap().prefix().index())
            .collect();
        assert_eq!(order, [3, 10, 2]);
    }

    #[test]
    fn a_released_prefix_waits_until_its_jobs_are_stale() {
        let pool = PrefixPool::new(1).unwrap();
        let mut leases: Vec<_> = (0..256).map(|_| pool.lease().unwrap()).collect();
        let index_of = |l: &PrefixLease| l.prefix().index();
        drop(leases.remove(7));
        // Same jobs still current: handing 7 out now could repeat the departed miner's
        // work, so the full channel refuses instead.
        assert!(pool.lease().is_none());
        assert_eq!(pool.in_use(), 255);
        let eight = leases.remove(7);
        assert_eq!(index_of(&eight), 8);
        drop(eight);
        pool.jobs_went_stale();
        let seven = pool.lease().unwrap();
        assert_eq!(index_of(&seven), 7);
        // Released after the clean job: held until the next one, while 8 is free now.
        drop(leases.remove(0));
        let eight = pool.lease().unwrap();
        assert_eq!(index_of(&eight), 8);
        assert!(
            pool.lease().is_none(),
            "prefix 0 was released in the current epoch"
        );
        pool.jobs_went_stale();
        assert_eq!(pool.lease().map(|l| l.prefix().index()), Some(0));
        drop((seven, eight));
    }

    #[test]
    fn dropping_every_lease_empties_the_pool() {
        let pool = PrefixPool::new(1).unwrap();
        let leases: Vec<_> = (0..256).map(|_| pool.lease().unwrap()).collect();
        assert!(pool.lease().is_none());
        drop(leases);
        assert_eq!(pool.in_use(), 0);
        pool.jobs_went_stale();
        let again: Vec<_> = (0..256).map(|_| pool.lease().unwrap()).collect();
        let distinct: HashSet<u32> = again.iter().map(|l| l.prefix().index()).collect();
        assert_eq!(distinct.len(), 256);
        assert!(pool.lease().is_none());
    }

    #[test]
    fn leasing_from_many_threads_stays_unique() {
        let pool = PrefixPool::new(2).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let pool = Arc::clone(&pool);
                std::thread::spawn(move || {
                    let mut kept = Vec::new();
                    for i in 0..5_000 {
                        let lease = pool.lease().unwrap();
                        // Churn: keep every other lease, drop the rest at once.
                        if i % 2 == 0 {
                            kept.push(lease);
                        }
                    }
                    kept
                })
            })
            .collect();
        let kept: Vec<PrefixLease> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let distinct: HashSet<u32> = kept.iter().map(|l| l.prefix().index()).collect();
        assert_eq!(distinct.len(), 10_000);
        assert_eq!(pool.in_use(), 10_000);
    }

    proptest::proptest! {
        /// Distinct prefixes never yield the same pool extranonce2, whatever the miners roll,
        /// and the miner's coinbase bytes are the pool's.
        #[test]
        fn compose_is_injective_and_consistent(
            n in 3usize..=16,
            miners in 1usize..100_000,
            a in 0u32..65_536,
            b in 0u32..65_536,
            e2a in proptest::collection::vec(proptest::num::u8::ANY, 8),
            e2b in proptest::collection::vec(proptest::num::u8::ANY, 8),
        ) {
            let plan = split(n, miners).unwrap();
            let cap = plan.capacity_per_channel() as u32;
            let (a, b) = (a % cap, b % cap);
            proptest::prop_assume!(a != b);
            let m = plan.miner_extranonce2_size();
            let pa = Prefix::new(a, plan.prefix_len());
            let pb = Prefix::new(b, plan.prefix_len());
            let ca = plan.compose(pa, &e2a[..m]).unwrap();
            let cb = plan.compose(pb, &e2b[..m]).unwrap();
            proptest::prop_assert_ne!(ca.as_bytes(), cb.as_bytes());
            proptest::prop_assert_eq!(ca.as_bytes().len(), n);
            let e1 = [0xe1, 0xe2, 0xe3, 0xe4];
            let mut miner_side = Vec::new();
            plan.extend_coinb1(&e1, &mut miner_side);
            miner_side.extend_from_slice(pa.as_bytes());
            miner_side.extend_from_slice(&e2a[..m]);
            let pool_side = [&e1[..], ca.as_bytes()].concat();
            proptest::prop_assert_eq!(miner_side, pool_side);
        }
    }

    #[test]
    fn bad_prefix_len_is_an_error() {
        assert_eq!(
            PrefixPool::new(0).unwrap_err(),
            ExtranonceError::PrefixLength { len: 0 }
        );
        assert!(PrefixPool::new(3).is_err());
    }
}
