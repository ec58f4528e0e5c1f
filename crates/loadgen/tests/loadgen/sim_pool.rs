//! The load generator against an in-process simulated pool: every share it sends is
//! valid and counted the same on both sides, source addresses spread, a storm of
//! connections all get set up. Counts and orderings only; nothing here is timed.
//!
//! Everything binds 127.0.0.x and runs under a timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use crate::support::assert_every_share_accepted;
use hashgate_lab::sim::pool::SimPoolStats;
use hashgate_loadgen::{self as loadgen, LoadConfig, LoadError, LoadReport};

async fn bounded<T, F: Future<Output = T>>(secs: u64, body: F) -> T {
    tokio::time::timeout(Duration::from_secs(secs), body)
        .await
        .expect("test exceeded its time limit")
}

fn config(connections: usize, rate: f64, duration_ms: u64) -> LoadConfig {
    LoadConfig {
        connections: NonZeroUsize::new(connections).expect("non-zero"),
        rate,
        duration: Duration::from_millis(duration_ms),
        ..LoadConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

async fn against_pool(cfg: LoadConfig, job_interval_ms: Option<u64>) -> (LoadReport, SimPoolStats) {
    let pool = loadgen::sim_pool_config(job_interval_ms.map(Duration::from_millis));
    bounded(90, loadgen::run_against_sim_pool(cfg, pool))
        .await
        .expect("load run")
}

/// No share lost, rejected, timed out or skipped; both sides agree on the count.
fn assert_clean(report: &LoadReport, pool: &SimPoolStats, connections: usize) {
    let s = &report.shares;
    assert_every_share_accepted(report, connections, report);
    assert_eq!(report.connections.connect_failures, 0, "{report}");
    assert_eq!(pool.accepted, s.accepted, "pool and loadgen disagree");
    assert_eq!(pool.rejected, 0);
    let l = &report.latency;
    assert!(l.p50_us > 0.0, "{report}");
    assert!(
        l.p50_us <= l.p99_us && l.p99_us <= l.p999_us && l.p999_us <= l.max_us,
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_miners_submit_hundreds_of_valid_shares_all_accepted() {
    // 600 shares/s for 1.5 s: 900 shares, 18 per connection.
    let (report, pool) = against_pool(config(50, 600.0, 1500), Some(400)).await;
    assert_clean(&report, &pool, 50);
    assert_eq!(report.shares.scheduled, 900);
    // Every worker authorized under its own name and credited.
    assert_eq!(pool.workers.len(), 50);
    assert!(pool.workers.contains_key("loadgen.w0"));
    assert!(pool.workers.contains_key("loadgen.w49"));
    assert!(pool.workers.values().all(|w| w.accepted == 18));
    // Shares at 1e-10 need no hashing.
    assert_eq!(report.work.hashes, 0);
    assert_eq!(
        report.work.difficulty_max,
        Some(loadgen::LOADGEN_DIFFICULTY)
    );
    // New jobs every 400 ms reached every connection.
    assert!(report.fanout.jobs_complete >= 1, "{report}");
    assert!(report.fanout.max_spread_us.is_some());
    // The JSON form carries the same figures.
    let json = serde_json::to_value(&report).expect("serialises");
    assert_eq!(json["shares"]["accepted"], report.shares.accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_and_suggested_difficulty_make_it_search_real_shares() {
    // The pool honours the suggestion: ~4,300 hashes a share, searched and still valid.
    let cfg = LoadConfig {
        configure: true,
        suggest_difficulty: Some(1e-6),
        ..config(4, 40.0, 1000)
    };
    let (report, pool) = against_pool(cfg, None).await;
    assert_clean(&report, &pool, 4);
    assert_eq!(report.work.difficulty_max, Some(1e-6));
    assert_eq!(report.work.shares_searched, report.shares.sent);
    assert!(report.work.hashes >= report.shares.sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_addresses_spread_over_loopback() {
    if std::net::TcpListener::bind("127.0.0.3:0").is_err() {
        eprintln!("skipped: cannot bind 127.0.0.3 on this machine");
        return;
    }
    let cfg = LoadConfig {
        source_ips: 3,
        ..config(30, 300.0, 500)
    };
    let (report, pool) = against_pool(cfg, None).await;
    assert_clean(&report, &pool, 30);
    assert_eq!(report.connections.source_addresses, 3, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_of_two_hundred_connections_all_get_set_up() {
    let cfg = LoadConfig {
        connect_rate: None,
        ..config(200, 400.0, 500)
    };
    let (report, pool) = against_pool(cfg, None).await;
    assert!(report.connections.storm);
    assert_clean(&report, &pool, 200);
    assert_eq!(pool.connections_total, 200);
    let c = &report.connections;
    let (p50, max, all) = (
        c.setup_p50_ms.expect("p50"),
        c.setup_max_ms.expect("max"),
        c.all_ready_ms.expect("all"),
    );
    assert!(p50 <= max && max <= all, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_an_error_naming_the_cause() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let cfg = LoadConfig {
        target: SocketAddr::from(([127, 0, 0, 1], port)),
        ..config(5, 10.0, 100)
    };
    match bounded(30, loadgen::run(cfg)).await {
        Err(LoadError::NoConnection {
            failures,
            first_error,
        }) => {
            assert_eq!(failures, 5);
            assert!(first_error.starts_with("connect:"), "{first_error}");
        }
        other => panic!("expected NoConnection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_are_counted_by_code_as_the_pool_counts_them() {
    let pool = hashgate_lab::sim::pool::SimPool::start(loadgen::sim_pool_config(None))
        .await
        .expect("pool");
    pool.set_fault(hashgate_lab::sim::pool::PoolFault::RejectAll);
    let cfg = LoadConfig {
        target: pool.addr(),
        ..config(10, 200.0, 500)
    };
    let report = bounded(60, loadgen::run(cfg)).await.expect("load run");
    let stats = pool.stats();
    pool.shutdown().await;
    let s = &report.shares;
    assert_eq!(s.sent, s.scheduled, "{report}");
    assert_eq!(s.accepted, 0);
    assert_eq!(
        s.rejected_by_code.get(&23).copied(),
        Some(s.sent),
        "{report}"
    );
    assert_eq!(stats.rejected, s.sent);
    // Rejected answers are answers: timed like accepted ones.
    assert_eq!(report.latency.count, s.sent);
    assert!(
        report
            .errors
            .iter()
            .any(|(m, n)| m.contains("Above target") && *n == s.sent),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_drops_everyone_shows_as_lost_connections() {
    let pool = hashgate_lab::sim::pool::SimPool::start(loadgen::sim_pool_config(None))
        .await
        .expect("pool");
    let cfg = LoadConfig {
        target: pool.addr(),
        ..config(10, 200.0, 1500)
    };
    let run = tokio::spawn(loadgen::run(cfg));
    // Drop every connection once they are all submitting.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pool.stats().accepted < 20 {
        assert!(std::time::Instant::now() < deadline, "no shares arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pool.set_fault(hashgate_lab::sim::pool::PoolFault::Disconnect);
    let report = bounded(60, run).await.expect("join").expect("load run");
    pool.shutdown().await;
    assert_eq!(report.connections.ready, 10);
    assert_eq!(report.connections.held_at_end, 0, "{report}");
    let s = &report.shares;
    assert!(s.sent < s.scheduled, "{report}");
    assert!(s.accepted >= 20);
    assert!(
        report
            .errors
            .iter()
            .any(|(m, _)| m == "closed by the target"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_storm_sets_every_connection_up_again() {
    let cfg = LoadConfig {
        reconnect_storm: true,
        ..config(100, 400.0, 500)
    };
    let (report, pool) = against_pool(cfg, None).await;
    assert_clean(&report, &pool, 100);
    let r = report.reconnect.as_ref().expect("storm report");
    assert_eq!(
        (r.connections, r.ready, r.failures),
        (100, 100, 0),
        "{report}"
    );
    let (p50, max, all) = (
        r.setup_p50_ms.expect("p50"),
        r.setup_max_ms.expect("max"),
        r.all_ready_ms.expect("all"),
    );
    assert!(p50 <= max && max <= all, "{report}");
    // Each miner connected twice; no share was sent after the window.
    assert_eq!(pool.connections_total, 200);
    assert_eq!(pool.accepted, report.shares.accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_spread_over_a_proxys_listeners() {
    use std::sync::Arc;

    use hashgate_lab::sim::pool::SimPool;
    use hashgate_site::config::Config;
    use hashgate_site::site::{Site, SiteOptions};

    let pool = SimPool::start(loadgen::sim_pool_config(None))
        .await
        .expect("pool");
    let d = loadgen::LOADGEN_DIFFICULTY;
    let site = Site::start(SiteOptions::new(Arc::new(
        Config::from_toml(&format!(
            "[proxy]\naccount = \"loadgen\"\n[[pools]]\nurl = \"stratum+tcp://{}\"\n\
             [[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\n\
             min_difficulty = {d:e}\nmax_difficulty = {d:e}\n\
             [[listeners]]\nname = \"b\"\nlisten = \"127.0.0.1:0\"\n\
             min_difficulty = {d:e}\nmax_difficulty = {d:e}\n",
            pool.addr()
        ))
        .expect("config"),
    )))
    .await
    .expect("site");
    let cfg = LoadConfig {
        target: site.listeners[0].addr,
        also_targets: vec![site.listeners[1].addr],
        ..config(10, 100.0, 500)
    };
    let report = bounded(60, loadgen::run(cfg)).await.expect("load run");
    assert_every_share_accepted(&report, 10, &report);
    let accepted: Vec<u64> = site.listeners.iter().map(|l| l.accepted()).collect();
    assert_eq!(accepted, [5, 5], "{report}");
    site.begin_shutdown();
    pool.shutdown().await;
}
