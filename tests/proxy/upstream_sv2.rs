//! A Stratum V2 pool upstream over real sockets: the site connects to the lab's simulated
//! SV2 pool (Noise responder with SRI's example authority key, one extended channel, one
//! job, batched acknowledgements), simulated ASICs mine through it, and the pool judges
//! every share from SV2's own fields. The real `pool_sv2` is in `tests/interop_sv2.rs`.

use std::sync::Arc;
use std::time::Duration;

use hashgate_lab::sim::asic::{SimAsic, SimAsicConfig};
use hashgate_lab::sim::sv2_pool::{SimSv2Pool, SimSv2PoolConfig};
use hashgate_site::config::{Config, RawConfig};
use hashgate_site::site::{Site, SiteOptions};

use crate::support::wait::wait_until;

const DIFFICULTY: f64 = 1e-6;

fn config(url: &str) -> Arc<Config> {
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"site\"\ninitial_difficulty = {DIFFICULTY}\n\
         [vardiff]\nmin_difficulty = {DIFFICULTY}\nmax_difficulty = {DIFFICULTY}\n\
         [failover]\nreconnect_min_secs = 0.2\nreconnect_max_secs = 0.5\n\
         [[pools]]\nname = \"p0\"\nurl = \"{url}\"\n"
    );
    Arc::new(RawConfig::parse(&text).unwrap().validate().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sv2_pool_gets_valid_rolled_shares_and_its_batched_acknowledgements_are_credited() {
    let pool = SimSv2Pool::start(SimSv2PoolConfig {
        difficulty: DIFFICULTY,
        batch: 3,
    })
    .await
    .unwrap();
    let site = Site::start(SiteOptions::new(config(&pool.url())).without_http())
        .await
        .unwrap();
    let upstream = site.registry.upstream(&Arc::from("p0"));
    let asics: Vec<SimAsic> = (0..2)
        .map(|i| {
            let mut cfg = SimAsicConfig::new(site.miner_addr, format!("site.m{i}"));
            cfg.hashrate = 20_000.0;
            cfg.version_rolling = (i == 0).then_some(0x1fff_e000);
            SimAsic::start(cfg)
        })
        .collect();
    wait_until(
        "12 shares accepted by the SV2 pool, some rolled",
        Duration::from_secs(60),
        || pool.stats().accepted() >= 12 && pool.stats().rolled() >= 1,
    )
    .await;
    wait_until(
        "the pool's batch acknowledgements credited",
        Duration::from_secs(10),
        || upstream.snapshot().accepted >= 9,
    )
    .await;
    for asic in &asics {
        asic.stop().await;
    }
    let snap = upstream.snapshot();
    assert_eq!(
        pool.stats().rejected(),
        0,
        "every forwarded share meets the SV2 pool's target"
    );
    assert_eq!(snap.rejected.iter().sum::<u64>(), 0);
    // One channel per connection; a loaded machine may have reconnected once (a handshake
    // past the silence timeout), so not necessarily one in all.
    assert!(pool.stats().channels() >= 1);
    assert!(pool.stats().channels() <= pool.stats().handshakes());
    assert!(
        snap.accepted <= pool.stats().accepted(),
        "credited {} of {} the pool accepted: never more",
        snap.accepted,
        pool.stats().accepted()
    );
    assert!(asics.iter().all(|a| a.stats().rejected == 0));
    site.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_whose_certificate_another_key_signed_is_refused() {
    let pool = SimSv2Pool::start(SimSv2PoolConfig::default())
        .await
        .unwrap();
    // A well-formed key (secp256k1's generator, version 1) that is not the pool's.
    let url = format!(
        "stratum2+tcp://{}/9bZBweHhn6px2Quf1hADVUTrWxX65vtRBweWHP66kfkKGFTQRHs",
        pool.addr()
    );
    let site = Site::start(SiteOptions::new(config(&url)).without_http())
        .await
        .unwrap();
    wait_until("two refused handshakes", Duration::from_secs(20), || {
        pool.stats().handshakes() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        pool.stats().channels(),
        0,
        "no channel on a pool whose key did not match"
    );
    let snap = site.registry.upstream(&Arc::from("p0")).snapshot();
    assert_eq!(snap.submitted, 0);
    site.shutdown().await.unwrap();
}

/// An SV2 pool is a pool like any other in a weighted group: with an SV1 pool in one group
/// and the SV2 pool in the other, both get work from the same miners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sv2_pool_takes_its_share_of_a_weighted_split_beside_an_sv1_pool() {
    let sv2 = SimSv2Pool::start(SimSv2PoolConfig {
        difficulty: DIFFICULTY,
        batch: 1,
    })
    .await
    .unwrap();
    let sv1 = hashgate_lab::sim::pool::SimPool::start(hashgate_lab::sim::pool::SimPoolConfig {
        name: "sv1".into(),
        difficulty: DIFFICULTY,
        job_interval: Some(Duration::from_secs(2)),
        ..Default::default()
    })
    .await
    .unwrap();
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"site\"\ninitial_difficulty = {DIFFICULTY}\n\
         upstream_shares_per_sec = 0\n\
         [vardiff]\nmin_difficulty = {DIFFICULTY}\nmax_difficulty = {DIFFICULTY}\n\
         [failover]\nreconnect_min_secs = 0.2\nreconnect_max_secs = 0.5\n\
         [[pools]]\nname = \"v1\"\nurl = \"stratum+tcp://{}\"\n\
         [[pools]]\nname = \"v2\"\nurl = \"{}\"\n\
         [[pool_groups]]\nname = \"main\"\npools = [\"v1\"]\n\
         [[pool_groups]]\nname = \"second\"\npools = [\"v2\"]\n\
         [split]\nmin_move_interval_secs = 1\nrebalance_interval_secs = 1\n",
        sv1.addr(),
        sv2.url()
    );
    let config = Arc::new(RawConfig::parse(&text).unwrap().validate().unwrap());
    let site = Site::start(SiteOptions::new(config).without_http())
        .await
        .unwrap();
    let asics: Vec<SimAsic> = (0..4)
        .map(|i| {
            let mut cfg = SimAsicConfig::new(site.miner_addr, format!("site.m{i}"));
            cfg.hashrate = 20_000.0;
            SimAsic::start(cfg)
        })
        .collect();
    let sv1_accepted = || {
        sv1.stats()
            .workers
            .values()
            .map(|w| w.accepted)
            .sum::<u64>()
    };
    wait_until(
        "both groups' pools to accept shares",
        Duration::from_secs(60),
        || sv2.stats().accepted() >= 5 && sv1_accepted() >= 5,
    )
    .await;
    let status = site.hub.split().status();
    assert!(
        status.iter().all(|g| g.state == "ready"),
        "both groups have an active pool: {status:?}"
    );
    for asic in &asics {
        asic.stop().await;
    }
    assert_eq!(sv2.stats().rejected(), 0);
    tokio::time::timeout(Duration::from_secs(15), site.shutdown())
        .await
        .unwrap()
        .unwrap();
}
