//! Metrics and the status API: names, monotonic counters, the shipped Prometheus files, a real Prometheus scraping, the JSON API.
//!
//! One test binary per area (each links the crates once); a module per former test file.

// The workspace lints hold library code; a test or bench crate exports nothing and
// unwraps by design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod api_listeners;
mod api_site;
mod api_status;
mod ledger_reconcile;
mod metrics_config_files;
mod metrics_live;
mod metrics_monotonic;
mod metrics_names;
mod metrics_prometheus;
