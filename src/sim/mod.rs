//! Simulators for demos, tests and load: miners' management APIs (and, later, the
//! Stratum-side miner and pool).

pub mod mgmt;
