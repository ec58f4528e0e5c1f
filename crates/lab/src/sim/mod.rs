//! Simulators for demos, tests and load.
//!
//! | module | simulates |
//! |---|---|
//! | [`mgmt`] | miners' management APIs (power, temperature, sleep/wake) |
//! | [`pool`] | a Stratum V1 pool that judges shares with its own code |
//! | [`asic`] | a Stratum V1 miner that really hashes, at a throttled rate |

pub mod asic;
pub mod mgmt;
pub mod pool;
