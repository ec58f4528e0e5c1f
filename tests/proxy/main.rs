//! The proxy over TCP and TLS: miner sessions and limits, the listener, pool connections and failover, end to end against the simulated pool and ASICs, hashrate accuracy.
//!
//! One test binary per area (each links the crates once); a module per former test file.

// The workspace lints hold library code; a test or bench crate exports nothing and
// unwraps by design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod downstream_dynamics;
mod downstream_limits;
mod downstream_listen;
mod downstream_session;
mod hashrate_accuracy;
mod listeners;
mod pool_reload;
mod pool_split;
mod proxy_e2e;
mod sim_pool_asic;
mod site_shutdown;
mod upstream_pool;
mod upstream_sv2;
mod upstream_tls;
