//! Attacks on hashgate as a hostile network, a buggy miner or pool and a misreporting ASIC
//! would make them, each a regression test for harm that was seen (issue #11). Loopback
//! only, bounded counts, simulated time where a deadline is the point.

// The workspace lints hold library code; a test crate exports nothing and unwraps by
// design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod admin_listener;
mod http_status;
mod idle_channels;
mod log_flood;
mod miner_info_series;
mod miner_trickle;
mod soak;
mod unauthorized_flood;
mod user_agent;
mod worker_names;
