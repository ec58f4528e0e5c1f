//! Simulators for demos, tests and load.
//!
//! | module | simulates |
//! |---|---|
//! | [`mgmt`] | miners' management APIs (power, temperature, sleep/wake) |
//! | [`pool`] | a Stratum V1 pool that judges shares with its own code |
//! | [`modbus`] | a Modbus TCP device (meter, sensor, relay module) over a shared register bank |
//! | [`asic`] | a Stratum V1 miner that really hashes, at a throttled rate |
//! | [`thermal`] | a container's air: weather through a day, miners' heat, fan banks, the evaporative curtain |

pub mod asic;
pub mod mgmt;
pub mod modbus;
pub mod pool;
pub mod sv2_pool;
pub mod thermal;
