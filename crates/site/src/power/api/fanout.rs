//! Calls to thousands of miners with a cap on how many run at once.
//!
//! A site poll touches every miner each tick; unbounded, that is thousands of sockets and
//! a burst the control network and this process's file limit (20k here) do not need.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::{ApiError, MinerApi, Telemetry};

/// Runs `op` on every item with at most `limit` in flight; results come back in input order.
///
/// Each call runs as its own task, so one slow miner never holds up the others beyond its
/// own deadline (give `op` one: every [`MinerApi`] call has it built in).
///
/// # Panics
/// Re-raises a panic from `op`, since that is a bug and not a miner's fault.
pub async fn run_bounded<I, T, F, Fut>(items: Vec<I>, limit: NonZeroUsize, op: F) -> Vec<T>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let total = items.len();
    let mut results: Vec<Option<T>> = (0..total).map(|_| None).collect();
    let mut pending = items.into_iter().enumerate();
    let mut running = JoinSet::new();
    loop {
        while running.len() < limit.get() {
            let Some((index, item)) = pending.next() else {
                break;
            };
            let fut = op(item);
            running.spawn(async move { (index, fut.await) });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        match joined {
            Ok((index, value)) => {
                if let Some(slot) = results.get_mut(index) {
                    *slot = Some(value);
                }
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancellation cannot happen: the set is ours and never aborted.
            Err(_) => {}
        }
    }
    results.into_iter().flatten().collect()
}

/// Reads telemetry from every client, at most `limit` at once, in input order.
pub async fn telemetry_all(
    clients: &[Arc<dyn MinerApi>],
    limit: NonZeroUsize,
) -> Vec<Result<Telemetry, ApiError>> {
    run_bounded(
        clients.to_vec(),
        limit,
        |c| async move { c.telemetry().await },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_limit_in_flight_and_order_kept() {
        let live = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let items: Vec<u64> = (0..50).collect();
        let limit = NonZeroUsize::new(7).unwrap();
        let out = run_bounded(items, limit, |i| {
            let live = live.clone();
            let peak = peak.clone();
            async move {
                let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // Later items finish sooner, so completion order differs from input order.
                tokio::time::sleep(Duration::from_millis(100 - i)).await;
                live.fetch_sub(1, Ordering::SeqCst);
                i * 2
            }
        })
        .await;
        assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 7);
    }

    #[tokio::test]
    async fn empty_input_is_empty_output() {
        let out: Vec<u8> =
            run_bounded(Vec::<u8>::new(), NonZeroUsize::MIN, |i| async move { i }).await;
        assert!(out.is_empty());
    }
}
