//! Polling for a condition in network tests, bounded so a test that never gets there fails
//! with what it waited for instead of hanging.

use std::time::{Duration, Instant};

/// Polls `cond` every 50 ms until it holds; panics naming `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
