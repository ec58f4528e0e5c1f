//! Power gating: miner management APIs (framing, captured replies, faults, simulated firmware), inventory, controller, driver, meter and the admin API.
//!
//! One test binary per area (each links the crates once); a module per former test file.

// The workspace lints hold library code; a test or bench crate exports nothing and
// unwraps by design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod mgmt_faults;
mod mgmt_fixtures;
mod mgmt_framing;
mod mgmt_replay;
mod mgmt_sim;
mod power_admin;
mod power_climate;
mod power_controller;
mod power_driver;
mod power_driver_config;
mod power_driver_meter;
mod power_driver_modbus_meter;
mod power_economics;
mod power_inventory;
mod power_ledger;
mod power_reload;
