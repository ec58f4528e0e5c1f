//! The site's shutdown order as a miner, a pool, a miner's management API and a scraper see
//! it: once shutdown begins a new miner is refused and the power driver commands nothing,
//! while `/metrics` keeps answering until the pool connections have drained.

use std::time::{Duration, Instant};

use hashgate_lab::sim::asic::{SimAsic, SimAsicConfig};
use hashgate_lab::sim::mgmt::{self, SimMinerSpec, SimMinerState};
use hashgate_lab::sim::pool::{PoolFault, SimPool, SimPoolConfig};
use hashgate_site::config::RawConfig;
use hashgate_site::power::api::Family;
use hashgate_site::site::{Phase, Site, SiteOptions};
use hashgate_site::stats::{Registry, Undelivered, UpstreamSnapshot};

use crate::support::wait::wait_until;

/// One share per ~430 hashes: a 400 H/s simulated ASIC sends about one share a second.
const DIFFICULTY: f64 = 1e-7;
/// How long the drain holds a share the pool never answers.
const SUBMIT_TIMEOUT_SECS: u64 = 3;

fn upstream(registry: &Registry) -> UpstreamSnapshot {
    registry.upstreams().into_iter().next().expect("one pool")
}

/// Shares sent to the pool that have no verdict and were not given up on yet.
fn pending(u: &UpstreamSnapshot) -> u64 {
    let ended = u.accepted + u.rejected.iter().sum::<u64>() + u.undelivered;
    u.submitted.saturating_sub(ended)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_refuses_miners_and_stops_power_then_drains_then_stops_http() {
    let pool = SimPool::start(SimPoolConfig {
        name: "main".into(),
        difficulty: DIFFICULTY,
        job_interval: Some(Duration::from_secs(2)),
        ..SimPoolConfig::default()
    })
    .await
    .unwrap();
    let managed = mgmt::spawn(
        Family::Luxos,
        SimMinerState::new(
            SimMinerSpec {
                ramp: Duration::ZERO,
                thermal_tau: Duration::ZERO,
                ..SimMinerSpec::default()
            },
            25.0,
            Instant::now(),
        ),
    )
    .await
    .unwrap();
    // The pool is silent from the test's choosing, never for silence_timeout: only the
    // submit timeout (the drain's grace) ends a share's wait.
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"site\"\ninitial_difficulty = {DIFFICULTY}\n\
         [vardiff]\nmin_difficulty = {DIFFICULTY}\nmax_difficulty = {DIFFICULTY}\n\
         [failover]\nsilence_timeout_secs = 60\nsubmit_timeout_secs = {SUBMIT_TIMEOUT_SECS}\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\
         [[pools]]\nname = \"main\"\nurl = \"stratum+tcp://{}\"\n\
         [[power.containers]]\nname = \"c1\"\nbudget_kw = 50\n\
         [[power.miners]]\nid = \"m1\"\ncontainer = \"c1\"\naddress = \"{}\"\nfamily = \"luxos\"\n\
         model = \"S19 Pro\"\nnominal_watts = 3250\nnominal_ths = 110\n",
        pool.addr(),
        managed.addr
    );
    let mut config = RawConfig::parse(&text).unwrap().validate().unwrap();
    if let Some(power) = config.power.as_mut() {
        power.driver.tick = Duration::from_millis(100);
    }
    // Management clients from the inventory, as `hashgate run` builds them.
    let site = Site::start(SiteOptions::new(config)).await.unwrap();
    let power = site.power.clone().unwrap();
    let registry = site.registry.clone();
    let metrics_url = format!("http://{}/metrics", site.http_addr.unwrap());
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let mut asic = SimAsicConfig::new(site.miner_addr, "site.m1");
    asic.hashrate = 400.0;
    let asic = SimAsic::start(asic);
    wait_until("shares at the pool", Duration::from_secs(30), || {
        pool.stats().accepted >= 2
    })
    .await;
    wait_until("the driver ticking", Duration::from_secs(5), || {
        power.status().ticks >= 2
    })
    .await;
    // A share the pool never answers, so the drain has something to wait for.
    pool.set_fault(PoolFault::Silence);
    wait_until(
        "a share awaiting its verdict",
        Duration::from_secs(10),
        || pending(&upstream(&registry)) >= 1,
    )
    .await;

    site.begin_shutdown();
    // A cut a running driver would act on within a tick: the miner would be put to sleep.
    power.set_budget("c1", Some(1_000.0)).unwrap();
    wait_until("the upstream drain", Duration::from_secs(10), || {
        site.phase() == Phase::DrainingUpstream
    })
    .await;
    assert!(
        tokio::net::TcpStream::connect(site.miner_addr)
            .await
            .is_err(),
        "a new miner is refused once shutdown began"
    );
    let scrape = http.get(&metrics_url).send().await.unwrap();
    assert_eq!(scrape.status(), 200);
    let text = scrape.text().await.unwrap();
    assert!(
        text.contains("hashgate_upstream_state{pool=\"main\""),
        "{text}"
    );
    assert_eq!(
        site.phase(),
        Phase::DrainingUpstream,
        "the scrape was answered while the pool connections drained"
    );

    let drained = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), site.finished())
        .await
        .expect("shutdown ends within its grace periods")
        .expect("every part stops cleanly");
    assert!(
        drained.elapsed() >= Duration::from_secs(SUBMIT_TIMEOUT_SECS) / 2,
        "the drain waited for the pool's verdict ({:?})",
        drained.elapsed()
    );
    let u = upstream(&registry);
    let shutdown = Undelivered::ALL
        .iter()
        .position(|r| *r == Undelivered::Shutdown)
        .unwrap();
    assert!(
        u.undelivered_by_reason[shutdown] >= 1,
        "the unanswered share was counted as shutdown: {u:?}"
    );
    assert!(
        http.get(&metrics_url).send().await.is_err(),
        "the status server stops last, and does stop"
    );
    assert_eq!(
        managed.state.command_log(),
        Vec::<String>::new(),
        "no power command after shutdown began"
    );
    assert!(managed.state.is_hashing(Instant::now()), "left as it was");
    asic.stop().await;
}
