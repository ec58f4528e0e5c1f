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

/// Waits until `check` holds, failing after [`WAIT`].
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_channel_closes_its_pool_connection() {
    use hashgate_lab::sim::pool::{SimPool, SimPoolConfig};
    use hashgate_site::config::Config;
    use hashgate_site::site::{Site, SiteOptions};

    let pool = SimPool::start(SimPoolConfig {
        name: "main".into(),
        // Room for a 1-byte prefix only, so 256 miners fill a channel.
        extranonce2_size: 3,
        ..SimPoolConfig::default()
    })
    .await
    .unwrap();
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"site\"\nmax_connections = 2000\n\
         max_unauthorized = 2000\nmax_unauthorized_per_source = 2000\nsetup_timeout_secs = 60\n\
         [[pools]]\nname = \"main\"\nurl = \"stratum+tcp://{}\"\n",
        pool.addr()
    );
    let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let site = Site::start(SiteOptions::new(config).without_http())
        .await
        .unwrap();
    eventually("channel 0 open", || site.hub.channels().len() == 1).await;
    eventually("one pool connection", || pool.stats().connections_open == 1).await;
    let per_channel = site.hub.channels()[0].prefix_usage().1 as usize;
    assert_eq!(per_channel, 256);
    let mut flood = Vec::new();
    for i in 0..per_channel * 2 + 10 {
        let mut m = Miner::connect(site.miner_addr).await;
        m.send("mining.subscribe", json!(["flood/1.0"])).await;
        let sub = m.try_recv_within(WAIT).await;
        assert!(
            sub.as_ref().is_some_and(|s| s["error"].is_null()),
            "subscribe {i}: {sub:?}, refused {}",
            site.listener.refused()
        );
        flood.push(m);
    }
    eventually("a pool connection per channel", || {
        pool.stats().connections_open == 3
    })
    .await;
    drop(flood);
    eventually("prefixes released", || {
        site.hub.channels().iter().all(|c| c.prefix_usage().0 == 0)
    })
    .await;
    let now = Instant::now();
    site.hub.close_idle_channels(now, CHANNEL_IDLE_GRACE);
    site.hub
        .close_idle_channels(now + CHANNEL_IDLE_GRACE, CHANNEL_IDLE_GRACE);
    eventually("only channel 0's pool connection left", || {
        pool.stats().connections_open == 1
    })
    .await;
    tokio::time::timeout(WAIT, site.shutdown())
        .await
        .unwrap()
        .unwrap();
}
