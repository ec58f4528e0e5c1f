//! The weighted split end to end: simulated ASICs of different speeds → the proxy with two
//! pool groups at 70/30 → two simulated pools, which count the work they accept. Miners
//! are moved between the groups on new work alone (no reconnect), a group whose pool dies
//! donates its share and gets it back.

use std::sync::Arc;
use std::time::Duration;

use hashgate_lab::sim::asic::{SimAsic, SimAsicConfig};
use hashgate_lab::sim::pool::{PoolFault, SimPool, SimPoolConfig};
use hashgate_site::config::{Config, RawConfig};
use hashgate_site::site::{Site, SiteOptions};

use crate::support::wait::wait_until;

/// Miner and pool difficulty: every share a miner finds is also a pool share.
const DIFFICULTY: f64 = 1e-7;

/// Speeds of the fleet, H/s: 20 miners, 4,400 H/s in all (about 10 shares a second).
const SPEEDS: [f64; 20] = [
    150.0, 200.0, 250.0, 300.0, 150.0, 200.0, 250.0, 300.0, 150.0, 200.0, 250.0, 300.0, 150.0,
    200.0, 250.0, 300.0, 150.0, 200.0, 250.0, 300.0,
];

fn config(main: &SimPool, second: &SimPool) -> Arc<Config> {
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"site\"\ninitial_difficulty = {DIFFICULTY}\n\
         upstream_shares_per_sec = 0\n\
         [vardiff]\nmin_difficulty = {DIFFICULTY}\nmax_difficulty = {DIFFICULTY}\n\
         [failover]\nsilence_timeout_secs = 3\nreconnect_min_secs = 0.2\nreconnect_max_secs = 1\n\
         failback_after_secs = 1\nsubmit_timeout_secs = 5\n\
         [[pools]]\nname = \"a\"\nurl = \"stratum+tcp://{}\"\n\
         [[pools]]\nname = \"b\"\nurl = \"stratum+tcp://{}\"\n\
         [[pool_groups]]\nname = \"main\"\nweight = 70\npools = [\"a\"]\n\
         [[pool_groups]]\nname = \"second\"\nweight = 30\npools = [\"b\"]\n\
         [split]\nmin_move_interval_secs = 5\nrebalance_interval_secs = 1\n",
        main.addr(),
        second.addr()
    );
    Arc::new(RawConfig::parse(&text).unwrap().validate().unwrap())
}

async fn pool(name: &str) -> SimPool {
    SimPool::start(SimPoolConfig {
        name: name.into(),
        difficulty: DIFFICULTY,
        job_interval: Some(Duration::from_secs(2)),
        ..SimPoolConfig::default()
    })
    .await
    .unwrap()
}

/// Work a pool accepted: the sum of credited difficulty over every worker.
fn work(pool: &SimPool) -> f64 {
    pool.stats()
        .workers
        .values()
        .map(|w| w.accepted_difficulty)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_get_their_weights_at_the_pools_and_a_dead_group_donates() {
    let main = pool("main").await;
    let second = pool("second").await;
    let site = Site::start(SiteOptions::new(config(&main, &second)).without_http())
        .await
        .unwrap();
    let hub = site.hub.clone();
    let asics: Vec<SimAsic> = SPEEDS
        .iter()
        .enumerate()
        .map(|(i, speed)| {
            let mut cfg = SimAsicConfig::new(site.miner_addr, format!("site.m{i:02}"));
            cfg.hashrate = *speed;
            SimAsic::start(cfg)
        })
        .collect();
    let connects = || asics.iter().map(|a| a.stats().connects).sum::<u64>();

    // Hashrates are proven after 15 s; the balancer then moves miners within a few runs.
    wait_until("both groups to get work", Duration::from_secs(60), || {
        work(&main) > 0.0 && work(&second) > 0.0 && hub.split().moves(0) + hub.split().moves(1) > 0
    })
    .await;
    let connects_before = connects();
    // Let the first moves settle, then measure over a window at the pools themselves.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (a0, b0) = (work(&main), work(&second));
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (a1, b1) = (work(&main), work(&second));
    let share = (a1 - a0) / ((a1 - a0) + (b1 - b0));
    eprintln!(
        "split over 30 s at the pools: main {:.1} %, second {:.1} % (target 70/30); moves {} / {}",
        share * 100.0,
        (1.0 - share) * 100.0,
        hub.split().moves(0),
        hub.split().moves(1)
    );
    // One miner is up to 300 / 4,400 = 6.8 % of the fleet; the rest is Poisson noise of
    // ~300 shares in the window and the balancer's 5-minute rates.
    assert!(
        (share - 0.7).abs() < 0.12,
        "main got {share:.3} of the work"
    );
    let status = hub.split().status();
    assert_eq!(status[0].state, "ready");
    assert!((status[0].target_ratio - 0.7).abs() < 1e-9);

    // The second group's only pool dies: its miners work for main until it is back.
    second.set_fault(PoolFault::Disconnect);
    wait_until(
        "the second group to donate",
        Duration::from_secs(15),
        || {
            let s = hub.split().status();
            s[1].state == "donating" && s[1].miners == 0 && s[0].target_ratio == 1.0
        },
    )
    .await;
    let a2 = work(&main);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let a3 = work(&main);
    // Work comes in difficulty-1 units: the fleet's H/s over 2^32 a second in all.
    let fleet_work = SPEEDS.iter().sum::<f64>() / 2f64.powi(32);
    assert!(
        (a3 - a2) / 5.0 > 0.6 * fleet_work,
        "main got {:.2e}/s of the fleet's {fleet_work:.2e}/s while second donated",
        (a3 - a2) / 5.0
    );
    second.set_fault(PoolFault::None);
    let b2 = work(&second);
    wait_until(
        "the second group to take work again",
        Duration::from_secs(30),
        || work(&second) > b2 + 20.0 * DIFFICULTY,
    )
    .await;
    assert_eq!(
        connects(),
        connects_before,
        "no miner was reconnected by a move"
    );

    tokio::time::timeout(Duration::from_secs(15), site.shutdown())
        .await
        .unwrap()
        .unwrap();
}

/// A listener with `pool_group` pins its miners to that group, however the weights say:
/// at 99/1 the balancer alone would leave the second group with almost nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_pool_group_pins_its_miners_against_the_weights() {
    let main = pool("main").await;
    let second = pool("second").await;
    let text = format!(
        "[proxy]\naccount = \"site\"\ninitial_difficulty = {DIFFICULTY}\n\
         upstream_shares_per_sec = 0\n\
         [vardiff]\nmin_difficulty = {DIFFICULTY}\nmax_difficulty = {DIFFICULTY}\n\
         [[listeners]]\nname = \"site\"\nlisten = \"127.0.0.1:0\"\n\
         [[listeners]]\nname = \"hosted\"\nlisten = \"127.0.0.1:0\"\npool_group = \"second\"\n\
         [[pools]]\nname = \"a\"\nurl = \"stratum+tcp://{}\"\n\
         [[pools]]\nname = \"b\"\nurl = \"stratum+tcp://{}\"\n\
         [[pool_groups]]\nname = \"main\"\nweight = 99\npools = [\"a\"]\n\
         [[pool_groups]]\nname = \"second\"\nweight = 1\npools = [\"b\"]\n\
         [split]\nmin_move_interval_secs = 1\nrebalance_interval_secs = 1\n",
        main.addr(),
        second.addr()
    );
    let config = Arc::new(RawConfig::parse(&text).unwrap().validate().unwrap());
    let site = Site::start(SiteOptions::new(config).without_http())
        .await
        .unwrap();
    let addr = |name: &str| {
        site.listeners
            .iter()
            .find(|l| &*l.name == name)
            .map(|l| l.addr)
            .unwrap()
    };
    let asic = |port: &str, worker: String| {
        let mut cfg = SimAsicConfig::new(addr(port), worker);
        cfg.hashrate = 200.0;
        SimAsic::start(cfg)
    };
    let _asics: Vec<SimAsic> = (0..3)
        .map(|i| asic("hosted", format!("site.h{i}")))
        .chain(std::iter::once(asic("site", "site.s0".to_owned())))
        .collect();
    let hub = site.hub.clone();
    wait_until("both pools to get work", Duration::from_secs(60), || {
        work(&main) > 0.0 && work(&second) > 0.0
    })
    .await;
    // Several balancer runs past the move interval: the pinned miners stay put.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (a0, b0) = (work(&main), work(&second));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (a1, b1) = (work(&main), work(&second));
    let status = hub.split().status();
    assert_eq!(
        (status[1].miners, status[1].pinned),
        (3, 3),
        "the hosted port's three miners work for their group: {status:?}"
    );
    assert_eq!(status[0].miners, 1, "{status:?}");
    assert_eq!(
        hub.split().moves(1),
        0,
        "nothing was moved into the pinned group"
    );
    let share = (b1 - b0) / ((a1 - a0) + (b1 - b0));
    // Three of four equal miners: 75 % of the work, against the 1 % the weights give.
    assert!(share > 0.5, "the second group got {share:.3} of the work");

    tokio::time::timeout(Duration::from_secs(15), site.shutdown())
        .await
        .unwrap()
        .unwrap();
}
