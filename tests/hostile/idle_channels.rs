//! Connections that only subscribe: each leases an extranonce prefix, so a flood of them
//! made the hub open more channels, each with its own pool connection, and those stayed
//! open after the connections left (1,000 subscribe-only connections left 3 extra pool
//! channels open, #11.7). A channel other than channel 0 now closes once it has had no
//! miner for a grace period, and its slot is reused.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use crate::support::downstream::*;
use hashgate_site::hub::CHANNEL_IDLE_GRACE;
use serde_json::json;

async fn subscribe_only(h: &Harness, count: usize) -> Vec<Miner> {
    let mut miners = Vec::new();
    for _ in 0..count {
        let mut m = Miner::connect(h.addr).await;
        let sub = m.call("mining.subscribe", json!(["flood/1.0"])).await;
        assert!(sub["error"].is_null(), "{sub}");
        miners.push(m);
    }
    miners
}

async fn wait_all_released(h: &Harness) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while h.hub.channels().iter().any(|c| c.prefix_usage().0 > 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "prefixes not released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn channels_opened_by_subscribe_only_connections_close_once_empty() {
    let mut cfg = config();
    cfg.proxy.max_unauthorized = NonZeroUsize::new(2000).expect("non-zero");
    cfg.proxy.max_unauthorized_per_source = NonZeroUsize::new(2000).expect("non-zero");
    cfg.proxy.setup_timeout = Duration::from_secs(60);
    let h = Harness::start(cfg).await;
    let per_channel = h.hub.channels()[0].prefix_usage().1 as usize;
    let flood = subscribe_only(&h, per_channel * 2 + 10).await;
    assert_eq!(
        h.hub.channels().len(),
        3,
        "the flood opened two more channels"
    );
    let opened = h.hub.channels();
    drop(flood);
    wait_all_released(&h).await;

    let now = Instant::now();
    // Empty, but not yet for the grace period: nothing closes (hysteresis).
    assert!(
        h.hub
            .close_idle_channels(now, CHANNEL_IDLE_GRACE)
            .is_empty()
    );
    let later = now + CHANNEL_IDLE_GRACE;
    assert_eq!(h.hub.close_idle_channels(later, CHANNEL_IDLE_GRACE), [1, 2]);
    assert_eq!(h.hub.channels().len(), 1, "channel 0 is never closed");
    assert!(!opened[0].is_closed());
    for closed in &opened[1..] {
        assert!(closed.is_closed());
        // What the upstream side waits on to close the pool connection.
        tokio::time::timeout(WAIT, closed.closed()).await.unwrap();
        assert!(closed.lease().is_none(), "a closed channel leases nothing");
    }

    // Miners still get in, and a new flood reuses the freed slots with fresh channels
    // (channel 0's released prefixes are held until a clean job, so it opens two again).
    let again = subscribe_only(&h, per_channel + 5).await;
    let reopened = h.hub.channels();
    let slots: Vec<usize> = reopened.iter().map(|c| c.index()).collect();
    assert_eq!(slots, [0, 1, 2]);
    assert!(reopened.iter().all(|c| !c.is_closed()));
    // A channel with a miner is kept whatever the clock says.
    let far = later + CHANNEL_IDLE_GRACE * 10;
    h.hub.close_idle_channels(far, CHANNEL_IDLE_GRACE);
    assert!(
        h.hub
            .close_idle_channels(far, CHANNEL_IDLE_GRACE)
            .is_empty()
    );
    drop(again);
}
