//! The soak (issue #11): good miners mining through a running site while every attack of
//! this suite runs against it at once, then the attackers leave and the site is stopped.
//!
//! Asserted: no part of the site panics; every good miner's share is answered (p99 of the
//! latency probes under 100 ms); every share the proxy told `true` reached the pool or is
//! counted undelivered; resident memory after the attackers left stays within a bound of
//! what it was before; shutdown ends within its grace. The figures are printed.
//!
//! Ignored by default (it runs for `HASHGATE_SOAK_SECS`, default 60, and wants a release
//! build): `.ci/run` runs it with `cargo test --release --test hostile soak -- --ignored
//! --nocapture`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hashgate_lab::sim::asic::{SimAsic, SimAsicConfig};
use hashgate_lab::sim::pool::{SimPool, SimPoolConfig};
use hashgate_site::config::Config;
use hashgate_site::site::{Site, SiteOptions};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::support::downstream::Miner;

/// One share per ~430 hashes: a 400 H/s simulated ASIC sends about one a second.
const DIFFICULTY: f64 = 1e-7;
const GOOD_MINERS: usize = 40;
const PROBES: usize = 4;

fn soak_secs() -> u64 {
    std::env::var("HASHGATE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A miner that submits a share every 100 ms and times each answer. The shares are not
/// good work (they are rejected), but each takes the same path as a good one: parse,
/// job lookup, SHA-256d against the target, answer.
async fn probe(addr: SocketAddr, n: usize, stop: Arc<AtomicBool>) -> (Vec<Duration>, u64) {
    let mut m = Miner::connect(addr).await;
    let worker = format!("probe{n}");
    let setup = m.setup(&worker, true).await;
    let job = setup.job_id.expect("a job");
    let mut times = Vec::new();
    let mut unanswered = 0;
    let mut nonce = 0u32;
    while !stop.load(Ordering::Relaxed) {
        nonce += 1;
        let id = m
            .send(
                "mining.submit",
                json!([worker, job, "00000000", "00000000", format!("{nonce:08x}")]),
            )
            .await;
        let sent = Instant::now();
        loop {
            match m.try_recv_within(Duration::from_secs(5)).await {
                Some(v) if v["id"] == json!(id) => {
                    times.push(sent.elapsed());
                    break;
                }
                // Jobs and difficulty changes in between.
                Some(_) => {}
                None => {
                    unanswered += 1;
                    return (times, unanswered);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (times, unanswered)
}

/// Every attack at once, for as long as `stop` is unset; returns how many connections
/// the attackers opened.
async fn attack(miners: SocketAddr, http: SocketAddr, stop: Arc<AtomicBool>) -> u64 {
    let opened = Arc::new(AtomicU64::new(0));
    let mut attackers = JoinSet::new();
    // HTTP: half-sent requests and idle keep-alive connections, reopened in rounds.
    {
        let (stop, opened) = (stop.clone(), opened.clone());
        attackers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut held = Vec::new();
                for i in 0..150 {
                    if let Ok(mut s) = TcpStream::connect(http).await {
                        if i % 2 == 0 {
                            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
                        }
                        held.push(s);
                        opened.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        });
    }
    // Stratum: silent connections, subscribe-only connections, trickled lines.
    for kind in 0..3 {
        let (stop, opened) = (stop.clone(), opened.clone());
        attackers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut held = Vec::new();
                for i in 0..200u32 {
                    let Ok(mut s) = TcpStream::connect(miners).await else {
                        continue;
                    };
                    opened.fetch_add(1, Ordering::Relaxed);
                    let bytes: Vec<u8> = match kind {
                        0 => Vec::new(),
                        1 => format!(
                            "{{\"id\":{i},\"method\":\"mining.subscribe\",\"params\":[]}}\n"
                        )
                        .into_bytes(),
                        _ => b"{\"id\":1,\"method\":\"mining.subscr".to_vec(),
                    };
                    if !bytes.is_empty() {
                        let _ = s.write_all(&bytes).await;
                    }
                    held.push(s);
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }
    while attackers.join_next().await.is_some() {}
    opened.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of HASHGATE_SOAK_SECS (default 60) s; .ci/run runs it in release"]
async fn good_miners_keep_mining_while_every_attack_runs_at_once() {
    let secs = soak_secs();
    let pool = SimPool::start(SimPoolConfig {
        name: "main".into(),
        difficulty: DIFFICULTY,
        job_interval: Some(Duration::from_secs(5)),
        ..SimPoolConfig::default()
    })
    .await
    .unwrap();
    // Miner and pool difficulty are pinned equal, so every share told `true` is also work for
    // the pool and the accounting below is one to one; the pool difficulty suggestion (which
    // would raise the pool's above the miners' and keep the shares under it local, by
    // design) is off here and tested on its own (upstream session tests, proxy e2e).
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"site\"\ninitial_difficulty = {DIFFICULTY}\n\
         upstream_shares_per_sec = 0\nmax_connections = 2000\nsetup_timeout_secs = 5\n\
         [vardiff]\nmin_difficulty = {DIFFICULTY}\nmax_difficulty = {DIFFICULTY}\n\
         [failover]\nsubmit_timeout_secs = 5\n\
         [http]\nlisten = \"127.0.0.1:0\"\nmax_connections = 32\nheader_read_timeout_secs = 2\n\
         shutdown_grace_secs = 2\n\
         [[pools]]\nname = \"main\"\nurl = \"stratum+tcp://{}\"\n",
        pool.addr()
    );
    let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let site = Site::start(SiteOptions::new(config)).await.unwrap();
    let (miner_addr, http) = (site.miner_addr, site.http_addr.unwrap());

    let asics: Vec<SimAsic> = (0..GOOD_MINERS)
        .map(|i| {
            let mut cfg = SimAsicConfig::new(miner_addr, format!("site.good{i:03}"));
            cfg.hashrate = 400.0;
            SimAsic::start(cfg)
        })
        .collect();
    let stop_probes = Arc::new(AtomicBool::new(false));
    let probes: Vec<_> = (0..PROBES)
        .map(|n| tokio::spawn(probe(miner_addr, n, stop_probes.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_before = rss_kib();
    let pool_sockets_before = pool.stats().connections_open;

    let stop_attack = Arc::new(AtomicBool::new(false));
    let attack_task = tokio::spawn(attack(miner_addr, http, stop_attack.clone()));
    let mut rss_peak = rss_before;
    let attack_end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < attack_end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_peak = rss_peak.max(rss_kib());
    }
    stop_attack.store(true, Ordering::Relaxed);
    let attack_connections = attack_task.await.unwrap();
    // Attackers' sockets are closed; let the site notice and free their sessions.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let rss_after = rss_kib();
    let open_after = site.listener.open();
    // Subscribe-only connections made the hub open extra pool channels (#11.7); printed
    // so the figure is seen, asserted by that issue's own test.
    let pool_sockets_after = pool.stats().connections_open;

    stop_probes.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut unanswered = 0;
    for p in probes {
        let (times, lost) = p.await.unwrap();
        latencies.extend(times);
        unanswered += lost;
    }
    latencies.sort();
    for a in &asics {
        a.stop().await;
    }
    let told_true: u64 = asics.iter().map(|a| a.stats().accepted).sum();
    let submitted: u64 = asics.iter().map(|a| a.stats().submitted).sum();
    let answered: u64 = asics
        .iter()
        .map(|a| a.stats().accepted + a.stats().rejected)
        .sum();

    let started = Instant::now();
    let registry = site.registry.clone();
    tokio::time::timeout(Duration::from_secs(20), site.shutdown())
        .await
        .expect("shutdown within its grace")
        .expect("no part of the site panicked or failed");
    let shutdown_took = started.elapsed();
    let upstream = registry.upstreams().into_iter().next().expect("one pool");
    let pool_stats = pool.stats();
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    println!(
        "soak {secs} s: {GOOD_MINERS} good miners, {attack_connections} attacking connections; \
         good shares submitted {submitted}, answered {answered}, told true {told_true}; \
         upstream submitted {}, pool accepted {}, rejected {}, undelivered {}; \
         probe latency p50 {p50:?} p99 {p99:?} over {} submits, {unanswered} unanswered; \
         RSS before {rss_before} KiB, peak {rss_peak} KiB, after {rss_after} KiB; \
         miner connections open after the attack {open_after}; \
         pool sockets before {pool_sockets_before}, after {pool_sockets_after}; \
         shutdown {shutdown_took:?}",
        upstream.submitted,
        pool_stats.accepted,
        upstream.rejected.iter().sum::<u64>(),
        upstream.undelivered,
        latencies.len(),
    );
    assert!(told_true > 0, "good miners mined");
    assert_eq!(unanswered, 0, "every probe share answered");
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
    // A share submitted as the miner stopped may have had no answer read; nothing else.
    assert!(
        submitted.saturating_sub(answered) <= GOOD_MINERS as u64,
        "good shares answered: {answered} of {submitted}"
    );
    let ended = upstream.accepted + upstream.rejected.iter().sum::<u64>() + upstream.undelivered;
    assert!(
        upstream.submitted >= told_true,
        "every share told true was sent upstream: {} < {told_true}",
        upstream.submitted
    );
    assert_eq!(
        ended, upstream.submitted,
        "every share sent upstream has an outcome"
    );
    assert_eq!(upstream.accepted, pool_stats.accepted);
    assert!(
        rss_after <= rss_before + rss_before / 2 + 64 * 1024,
        "RSS after the attack {rss_after} KiB, before {rss_before} KiB"
    );
    assert!(
        open_after <= (GOOD_MINERS + PROBES) as u64,
        "attackers' sessions freed: {open_after} open"
    );
    assert!(shutdown_took < Duration::from_secs(10), "{shutdown_took:?}");
}
