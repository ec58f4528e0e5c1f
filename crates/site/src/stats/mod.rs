//! Per-miner statistics computed from the shares the proxy validates.
//!
//! Pure bookkeeping: callers pass `now`, nothing here reads a clock or does I/O.

pub mod hashrate;

pub use hashrate::{HashrateMeter, MIN_REPORT_AGE, Window};
pub mod miner;

pub use miner::{MinerIdentity, MinerStats, PoolReject, Undelivered};
pub(crate) use miner::{MinerSnapshot, MinerTotals};
pub mod registry;

pub use registry::{
    ChannelDifficulty, MinerRegistration, Registry, Transport, UpstreamSnapshot, UpstreamState,
};
pub(crate) use registry::{Departed, DepartedWorker, UpstreamStats};

/// Whether the per-share `record*` calls keep figures: `false` only in a build with the
/// `stats-off` feature, a measurement switch for the before/after cost of stats on the
/// submit hot path (`docs/BENCHES.md`). Never for a site: every miner figure stays 0.
const RECORDING: bool = !cfg!(feature = "stats-off");
