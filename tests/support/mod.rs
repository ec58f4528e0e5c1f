//! Helpers shared by the integration-test binaries; each binary uses a subset.
#![allow(dead_code)]

pub mod downstream;
pub mod fixtures;
pub mod metrics;
pub mod power_driver;
pub mod tls;
pub mod wait;
