//! The ledger against `/metrics` over the same windows: simulated ASICs → `Site` (with a
//! `[ledger]`) → simulated pool. Between two flushes taken while the miners are quiet, the
//! growth of every worker's accepted shares, rejects and accepted difficulty in
//! `/metrics` equals the growth of its rows in `/api/v1/ledger`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashgate_lab::sim::asic::{BadShare, SimAsic, SimAsicConfig};
use hashgate_lab::sim::mgmt::{SimMinerSpec, SimMinerState};
use hashgate_lab::sim::pool::{SimPool, SimPoolConfig};
use hashgate_site::config::{Config, RawConfig};
use hashgate_site::site::{Site, SiteOptions};
use serde_json::Value;

const DIFFICULTY: f64 = 1e-7;
const MINERS: usize = 3;

fn config(pool: &SimPool, ledger: &std::path::Path) -> Arc<Config> {
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"site\"\ninitial_difficulty = {DIFFICULTY}\n\
         [vardiff]\nmin_difficulty = {DIFFICULTY}\nmax_difficulty = {DIFFICULTY}\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\
         [ledger]\npath = \"{}\"\n\
         [[pools]]\nname = \"main\"\nurl = \"stratum+tcp://{}\"\n",
        ledger.display(),
        pool.addr()
    );
    Arc::new(RawConfig::parse(&text).unwrap().validate().unwrap())
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Per worker: (accepted, duplicate rejects, accepted difficulty).
type Figures = BTreeMap<String, (f64, f64, f64)>;

fn label<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("{key}=\""))? + key.len() + 2;
    let end = start + line[start..].find('"')?;
    Some(&line[start..end])
}

fn from_metrics(text: &str) -> Figures {
    let mut out = Figures::new();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let Some(worker) = label(series, "worker") else {
            continue;
        };
        let row = out.entry(worker.to_owned()).or_default();
        if series.starts_with("hashgate_shares_total{") {
            match (label(series, "result"), label(series, "reason")) {
                (Some("accepted"), _) => row.0 = value,
                (Some("rejected"), Some("duplicate")) => row.1 = value,
                _ => {}
            }
        } else if series.starts_with("hashgate_accepted_difficulty_total{") {
            row.2 = value;
        }
    }
    out.retain(|_, r| *r != (0.0, 0.0, 0.0));
    out
}

fn from_ledger(json: &Value) -> Figures {
    let mut out = Figures::new();
    for row in json["rows"].as_array().unwrap() {
        let e = out
            .entry(row["miner"].as_str().unwrap().to_owned())
            .or_default();
        e.0 += row["accepted"].as_f64().unwrap();
        e.1 += row["rejected_duplicate"].as_f64().unwrap();
        e.2 += row["accepted_difficulty"].as_f64().unwrap();
    }
    out
}

fn growth(before: &Figures, after: &Figures) -> Figures {
    after
        .iter()
        .map(|(w, a)| {
            let b = before.get(w).copied().unwrap_or_default();
            (w.clone(), (a.0 - b.0, a.1 - b.1, a.2 - b.2))
        })
        .collect()
}

fn assert_same(metrics: &Figures, ledger: &Figures) {
    assert_eq!(
        metrics.keys().collect::<Vec<_>>(),
        ledger.keys().collect::<Vec<_>>()
    );
    for (w, m) in metrics {
        let l = ledger[w];
        assert_eq!((m.0, m.1), (l.0, l.1), "{w}: metrics {m:?}, ledger {l:?}");
        assert!(
            (m.2 - l.2).abs() <= 1e-9 * m.2.abs().max(1e-12),
            "{w}: difficulty {} vs {}",
            m.2,
            l.2
        );
    }
}

fn accepted(asics: &[SimAsic]) -> u64 {
    asics.iter().map(|a| a.stats().accepted).sum()
}

/// Quiets the miners, lets answers settle, flushes the ledger, and reads both sides.
async fn snapshot(
    asics: &[SimAsic],
    power: &[SimMinerState],
    client: &reqwest::Client,
    base: &str,
    ledger: &hashgate_site::ledger::LedgerHandle,
    from: i64,
) -> (Figures, Figures) {
    let paused = Instant::now();
    for p in power {
        p.set_awake(false, paused);
    }
    let mut last = u64::MAX;
    wait_until("counts to settle", || {
        let now = accepted(asics);
        let same = now == last;
        last = now;
        same
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    ledger.flush().await.unwrap();
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let json: Value = client
        .get(format!("{base}/api/v1/ledger?by=miner&from={from}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (from_metrics(&text), from_ledger(&json))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_reconciles_with_metrics_over_the_same_window() {
    let pool = SimPool::start(SimPoolConfig {
        name: "main".into(),
        difficulty: DIFFICULTY,
        ..SimPoolConfig::default()
    })
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!("hashgate-ledger-recon-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let site = Site::start(SiteOptions::new(config(&pool, &dir.join("l.sqlite"))))
        .await
        .unwrap();
    let ledger = site.ledger.clone().unwrap();
    let now = Instant::now();
    let mut asics = Vec::new();
    let mut power = Vec::new();
    for i in 0..MINERS {
        let state = SimMinerState::new(SimMinerSpec::default(), 25.0, now);
        let mut cfg = SimAsicConfig::new(site.miner_addr, format!("site.m{i}"));
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
    let from = hashgate_site::ledger::parse_time("now").unwrap() - 3600;
    wait_until("every miner sharing", || {
        asics.iter().all(|a| a.stats().accepted >= 2)
    })
    .await;
    let (m1, l1) = snapshot(&asics, &power, &client, &base, &ledger, from).await;
    assert_same(&m1, &l1);
    assert_eq!(
        m1.values().map(|m| m.0).sum::<f64>(),
        accepted(&asics) as f64
    );

    let wake = Instant::now();
    for p in &power {
        p.set_awake(true, wake);
    }
    let before = accepted(&asics);
    asics[0].bad_share(BadShare::Duplicate);
    wait_until("more shares and the duplicate", || {
        accepted(&asics) >= before + 6 && asics[0].stats().rejected >= 1
    })
    .await;
    let (m2, l2) = snapshot(&asics, &power, &client, &base, &ledger, from).await;
    let (gm, gl) = (growth(&m1, &m2), growth(&l1, &l2));
    assert_same(&gm, &gl);
    assert!(gm.values().map(|m| m.0).sum::<f64>() >= 6.0, "{gm:?}");
    assert_eq!(gl["site.m0"].1, 1.0, "the duplicate in the window: {gl:?}");

    // The same rows by container (none: no inventory) and by customer (untagged).
    let by_customer: Value = client
        .get(format!("{base}/api/v1/ledger?by=customer&from={from}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let customers: f64 = by_customer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["accepted"].as_f64().unwrap())
        .sum();
    assert_eq!(customers, l2.values().map(|l| l.0).sum::<f64>());
    let csv = client
        .get(format!(
            "{base}/api/v1/ledger?by=container&format=csv&from={from}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("hour,container,miners,accepted,"), "{csv}");
    assert_eq!(
        csv.lines().count(),
        1,
        "no container without an inventory: {csv}"
    );
    let bad = client
        .get(format!("{base}/api/v1/ledger?by=rack"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    site.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
