//! Stratum parsing against captures and malformed input, encode/parse round trips, share validation vectors and properties.
//!
//! One test binary per area (each links the crates once); a module per former test file.

// The workspace lints hold library code; a test or bench crate exports nothing and
// unwraps by design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod stratum_fixtures;
mod stratum_malformed;
mod stratum_roundtrip;
mod work_batch;
mod work_props;
mod work_vectors;
