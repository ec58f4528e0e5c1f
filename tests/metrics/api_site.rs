//! The status server over a real proxy: simulated ASICs → `Site` → simulated pool. What the
//! API and `/metrics` report must equal what the miners and the pool counted themselves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hashgate_lab::sim::asic::{BadShare, SimAsic, SimAsicConfig};
use hashgate_lab::sim::mgmt::{SimMinerSpec, SimMinerState};
use hashgate_lab::sim::pool::{SimPool, SimPoolConfig};
use hashgate_site::config::{Config, RawConfig};
use hashgate_site::site::{Site, SiteOptions};
use serde_json::Value;

use crate::support::wait::wait_until;

/// One share per ~430 hashes: a 400 H/s simulated ASIC sends about one share a second.
const DIFFICULTY: f64 = 1e-7;
const MINERS: usize = 12;

fn config(pool: &SimPool) -> Arc<Config> {
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"site\"\ninitial_difficulty = {DIFFICULTY}\n\
         [vardiff]\nmin_difficulty = {DIFFICULTY}\nmax_difficulty = {DIFFICULTY}\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\
         [[pools]]\nname = \"main\"\nurl = \"stratum+tcp://{}\"\n",
        pool.addr()
    );
    Arc::new(RawConfig::parse(&text).unwrap().validate().unwrap())
}

async fn get_json(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_metrics_agree_with_miners_and_pool() {
    let pool = SimPool::start(SimPoolConfig {
        name: "main".into(),
        difficulty: DIFFICULTY,
        job_interval: Some(Duration::from_secs(2)),
        ..SimPoolConfig::default()
    })
    .await
    .unwrap();
    let site = Site::start(SiteOptions::new(config(&pool))).await.unwrap();
    let now = Instant::now();
    let mut asics = Vec::new();
    let mut power = Vec::new();
    for i in 0..MINERS {
        let state = SimMinerState::new(SimMinerSpec::default(), 25.0, now);
        let mut cfg = SimAsicConfig::new(site.miner_addr, format!("site.m{i:02}"));
        cfg.hashrate = 400.0;
        cfg.power = Some(state.clone());
        asics.push(SimAsic::start(cfg));
        power.push(state);
    }

    let base = format!("http://{}", site.http_addr.unwrap());
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    wait_until("every miner sharing", Duration::from_secs(30), || {
        asics.iter().all(|a| a.stats().accepted >= 2)
    })
    .await;
    asics[0].bad_share(BadShare::Duplicate);
    asics[1].bad_share(BadShare::WrongNonce);
    wait_until("the bad shares answered", Duration::from_secs(15), || {
        asics[0].stats().rejected >= 1 && asics[1].stats().rejected >= 1
    })
    .await;
    // Stop hashing and let answers in flight settle.
    let paused = Instant::now();
    for p in &power {
        p.set_awake(false, paused);
    }
    let accepted = |a: &[SimAsic]| a.iter().map(|a| a.stats().accepted).sum::<u64>();
    let mut last = (u64::MAX, u64::MAX);
    wait_until("counts to settle", Duration::from_secs(15), || {
        let now = (accepted(&asics), pool.stats().accepted);
        let settled = now == last && now.0 == now.1;
        last = now;
        settled
    })
    .await;
    let miner_accepted = accepted(&asics);
    let pool_accepted = pool.stats().accepted;

    let summary = get_json(&client, format!("{base}/api/v1/summary")).await;
    assert_eq!(summary["miners"]["connected"], MINERS);
    assert_eq!(summary["shares"]["accepted"], miner_accepted, "{summary}");
    assert_eq!(summary["shares"]["pool_accepted"], pool_accepted);
    assert_eq!(summary["shares"]["rejected_by_reason"]["duplicate"], 1);
    assert_eq!(summary["shares"]["rejected_by_reason"]["low_difficulty"], 1);
    assert_eq!(summary["pools"][0]["state"], "active");

    let pools = get_json(&client, format!("{base}/api/v1/pools")).await;
    assert_eq!(pools["pools"][0]["pool"], "main");
    assert_eq!(pools["pools"][0]["accepted"], pool_accepted, "{pools}");
    assert_eq!(pools["channels"][0]["prefixes_used"], MINERS);

    let m00 = get_json(&client, format!("{base}/api/v1/miners/site.m00")).await;
    assert_eq!(
        m00["connections"][0]["shares"]["rejected_by_reason"]["duplicate"],
        1
    );
    assert_eq!(
        m00["connections"][0]["shares"]["accepted"],
        asics[0].stats().accepted
    );
    assert!(
        m00["connections"][0]["user_agent"]
            .as_str()
            .is_some_and(|ua| !ua.is_empty())
    );

    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let accepted_in_metrics: f64 = text
        .lines()
        .filter(|l| l.starts_with("hashgate_shares_total{") && l.contains("result=\"accepted\""))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(accepted_in_metrics, miner_accepted as f64);
    assert!(text.contains(&format!("hashgate_miners_connected {MINERS}\n")));
    assert!(text.contains("hashgate_upstream_state{pool=\"main\",state=\"active\"} 1\n"));
    assert!(text.contains("hashgate_shares_total{worker=\"site.m01\",result=\"rejected\",reason=\"low_difficulty\"} 1\n"));

    // Errors are JSON as documented: an unknown route, and the power view without [power].
    for (path, says) in [
        ("/api/v1/nope", "no such route: /api/v1/nope"),
        ("/api/v1/power", "no [power] section"),
        ("/api/v1/containers/c01/budget", "no [power] section"),
    ] {
        let resp = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 404, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains(says)),
            "{path}: {body}"
        );
    }

    let _ = tokio::time::timeout(Duration::from_secs(15), site.shutdown()).await;
}
