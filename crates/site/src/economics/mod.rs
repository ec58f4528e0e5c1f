//! Mining economics: what a hash earns and what it costs, per miner, per model and per
//! container (docs/ECONOMICS.md has the formulas and a worked example).
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | `revenue` | network difficulty and height from a pool job, the halving schedule, revenue per hash and hashprice |
//! | `config` | `[economics]`: price source, fees, overhead, tariffs, the curtailment rule |
//! | `engine` | [`Economics`]: per-miner cost ratio for the controller, per-model and per-container figures, `/api/v1/economics` |
//! | `price` | the coin price: fixed, or polled over HTTP with a staleness limit |
//! | `cost` | energy cost per TH/s per day, shutdown price, break-even tariff, time-of-use tariffs |
//!
//! `revenue` and `cost` are pure arithmetic (time comes in as unix seconds); `price` polls.

mod config;
mod cost;
mod engine;
mod price;
mod revenue;

pub use config::{
    EconomicRule, EconomicsConfig, EconomicsConfigRaw, PriceSource, TariffPeriodRaw, TariffRaw,
};
pub use cost::{
    KWH_PER_JTH_DAY, LocalTime, Tariff, TariffNow, TariffPeriod, Weekdays, break_even_tariff,
    cost_per_th_day, cost_ratio, energy_cost, shutdown_price,
};
pub use engine::{
    ContainerEconomics, ContainerInput, Economics, EconomicsJson, Evaluation, Hold, MinerEconomics,
    MinerInput, ModelEconomics, router,
};
pub use price::{PriceBook, PriceError, PriceReading, fetch_price, parse_price, run_price_poller};
pub use revenue::{
    HALVING_INTERVAL, HASHES_PER_DIFFICULTY, HASHES_PER_TH_DAY, Network, NetworkError, Revenue,
    SATS_PER_BTC, block_subsidy_sats,
};
