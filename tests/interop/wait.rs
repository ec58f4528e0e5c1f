//! Polling with a deadline, for conditions only a log file or an HTTP answer can tell.

use std::time::{Duration, Instant};

/// How often conditions are polled: fine enough for the second-scale timings reported.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `probe` every [`POLL`] until it returns `Some` or `within` has passed.
pub fn until<T>(within: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `probe` until it holds; returns when it first held, `None` if it never did.
pub fn until_true(within: Duration, mut probe: impl FnMut() -> bool) -> Option<Instant> {
    until(within, || probe().then(Instant::now))
}
