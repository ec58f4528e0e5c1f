//! Refused connections by the hundred: each was one WARN line, so an attacker could fill
//! the disk and drown the line an operator needs (#11.12). The refusal warning is now
//! rate-limited: the first of a window is logged with a count of the ones held back.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::downstream::*;
use tokio::net::TcpStream;
use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Counts events at WARN or above.
struct CountWarnings(Arc<AtomicUsize>);

impl<S: Subscriber> Layer<S> for CountWarnings {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() <= Level::WARN {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// A current-thread runtime: the listener's tasks run on the test's thread, where the
// counting subscriber is the default.
#[tokio::test(flavor = "current_thread")]
async fn a_refusal_flood_logs_a_bounded_number_of_lines() {
    let warnings = Arc::new(AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry().with(CountWarnings(warnings.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut cfg = config();
    cfg.proxy.max_connections = NonZeroUsize::new(4).expect("non-zero");
    cfg.proxy.setup_timeout = Duration::from_secs(30);
    let h = Harness::start(cfg).await;
    let mut held = Vec::new();
    for _ in 0..200 {
        held.push(TcpStream::connect(h.addr).await.expect("connect"));
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while h.counters.refused() < 196 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        h.counters.refused(),
        196,
        "every connection over the cap refused"
    );
    let lines = warnings.load(Ordering::Relaxed);
    assert!(
        (1..=3).contains(&lines),
        "196 refusals logged {lines} warnings; one per window expected"
    );
    drop(held);
}
