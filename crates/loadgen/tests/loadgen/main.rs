//! The load generator against the simulated pool, through a `hashgate run` child, through
//! aiostratum-proxy when its venv exists, beside translator_sv2 on pool_sv2 (ignored: the
//! peers are outside the repository), and its command line. Counts, not timings.

// The workspace lints hold library code; a test or bench crate exports nothing and
// unwraps by design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

mod aiostratum;
mod compare;
mod sim_pool;
mod split;
mod support;
mod sv2;

use std::path::PathBuf;

/// The `hashgate` binary the comparisons run as the proxy. Cargo builds the workspace's
/// binaries into one directory before any test runs (`cargo test` from the root), so it
/// sits beside `hashgate-loadgen`, where the load generator's own default looks too.
fn hashgate() -> PathBuf {
    let path = loadgen_binary().with_file_name("hashgate");
    assert!(
        path.is_file(),
        "{} missing: run `cargo test` from the workspace root so the proxy is built too",
        path.display()
    );
    path
}

/// The `hashgate-loadgen` binary under test.
fn loadgen_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hashgate-loadgen"))
}
