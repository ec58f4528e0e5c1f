//! Metrics and the status API: names, monotonic counters, the shipped Prometheus files, a real Prometheus scraping, the JSON API.
//!
//! One test binary per area (each links the crates once); a module per former test file.

#[path = "../support/mod.rs"]
mod support;

mod api_site;
mod api_status;
mod metrics_config_files;
mod metrics_monotonic;
mod metrics_names;
mod metrics_prometheus;
