//! Mining economics: what a hash earns and what it costs, per miner, per model and per
//! container (docs/ECONOMICS.md has the formulas and a worked example).
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | `revenue` | network difficulty and height from a pool job, the halving schedule, revenue per hash and hashprice |
//! | `cost` | energy cost per TH/s per day, shutdown price, break-even tariff, time-of-use tariffs |
//!
//! Everything here is pure arithmetic: time comes in as unix seconds.

mod cost;
mod revenue;

pub use cost::{
    KWH_PER_JTH_DAY, Tariff, TariffNow, TariffPeriod, Weekdays, break_even_tariff, cost_per_th_day,
    cost_ratio, energy_cost, shutdown_price,
};
pub use revenue::{
    HALVING_INTERVAL, HASHES_PER_DIFFICULTY, HASHES_PER_TH_DAY, Network, NetworkError, Revenue,
    SATS_PER_BTC, block_subsidy_sats,
};
