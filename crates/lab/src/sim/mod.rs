//! Simulators for demos, tests and load.
//!
//! | module | simulates |
//! |---|---|
//! | [`mgmt`] | miners' management APIs (power, temperature, sleep/wake) |
//! | [`pool`] | a Stratum V1 pool that judges shares with its own code |
//! | [`modbus`] | a Modbus TCP device (meter, sensor, relay module) over a shared register bank |
//! | [`asic`] | a Stratum V1 miner that really hashes, at a throttled rate |

pub mod asic;
pub mod mgmt;
pub mod modbus;
pub mod pool;
