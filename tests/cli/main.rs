//! The `hashgate` binary: run, check-config, miner, demo.
//!
//! One test binary per area (each links the crates once); a module per former test file.

#[path = "../support/mod.rs"]
mod support;

mod cli_check_config;
mod cli_miner;
mod cli_run;
mod demo;
