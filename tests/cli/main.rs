//! The `hashgate` binary: run, check-config, miner, demo.
//!
//! One test binary per area (each links the crates once); a module per former test file.

// The workspace lints hold library code; a test or bench crate exports nothing and
// unwraps by design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod cli_check_config;
mod cli_ledger;
mod cli_miner;
mod cli_ops;
mod cli_run;
mod demo;
