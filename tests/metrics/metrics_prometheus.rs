//! A real Prometheus server scrapes hashgate's `/metrics` and is queried for the site
//! hashrate, which must match the synthetic miners' known hashrate within the statistical
//! bound of a 1-minute window. Skipped (loudly) without the `prometheus` binary unless `CI`
//! is set. Bounded: gives up after 45 s.

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hashgate_site::exporter::Exporter;
use hashgate_site::http::{HttpConfig, HttpState, serve};
use hashgate_site::stats::{MinerStats, Registry};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::support::metrics::{TWO_32, identity, promtool_check, tool};

const MINERS: usize = 40;
/// Mean shares per second per miner.
const SHARE_RATE: f64 = 0.5;
/// How far back the synthetic history starts.
const HISTORY: Duration = Duration::from_secs(90);
/// Longest the test waits for Prometheus to have a sample.
const DEADLINE: Duration = Duration::from_secs(45);

/// Kills and reaps Prometheus and removes its data directory, whatever happens.
struct PrometheusProcess {
    child: Child,
    dir: PathBuf,
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn start_prometheus(binary: PathBuf, target: &str) -> (PrometheusProcess, String) {
    let dir = std::env::temp_dir().join(format!(
        "hashgate-prometheus-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: hashgate\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", free_port());
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    (PrometheusProcess { child, dir }, format!("http://{web}"))
}

/// One synthetic miner: a Poisson share schedule (seconds after birth) at `difficulty`.
struct Synthetic {
    stats: Arc<MinerStats>,
    difficulty: f64,
    schedule: Vec<f64>,
    next: usize,
}

impl Synthetic {
    /// Records every scheduled share up to `elapsed` seconds after birth.
    fn catch_up(&mut self, born: Instant, wall: SystemTime, elapsed: f64) {
        while let Some(&at) = self.schedule.get(self.next) {
            if at > elapsed {
                break;
            }
            let offset = Duration::from_secs_f64(at);
            self.stats.record_accepted(
                born + offset,
                wall + offset,
                self.difficulty,
                self.difficulty,
            );
            self.next += 1;
        }
    }
}

async fn query(client: &reqwest::Client, base: &str, promql: &str) -> Option<f64> {
    let response = client
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = response.json().await.ok()?;
    body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(hashgate_has_prometheus, hashgate_has_promtool)),
    ignore = "prometheus or promtool not on PATH at build time: apt-get install prometheus (.ci/run does)"
)]
async fn prometheus_scrapes_the_site_hashrate_within_its_statistical_bound() {
    let prometheus = tool("prometheus");
    let started = Instant::now();
    let born = Instant::now()
        .checked_sub(HISTORY)
        .expect("clock past the history");
    let wall = SystemTime::now() - HISTORY;
    let registry = Registry::new();
    let mut rng = StdRng::seed_from_u64(0x4a5);
    let mut miners = Vec::new();
    let mut guards = Vec::new();
    let mut true_rate = 0.0;
    let mut variance_per_s = 0.0;
    for i in 0..MINERS {
        let difficulty = 256.0 * (1 + i % 4) as f64;
        // Exponential gaps: a Poisson stream of SHARE_RATE shares per second.
        let mut schedule = Vec::new();
        let mut t = 0.0;
        while t < HISTORY.as_secs_f64() + 120.0 {
            t += -(1.0 - rng.random::<f64>()).ln() / SHARE_RATE;
            schedule.push(t);
        }
        let stats = Arc::new(MinerStats::new(born, wall, difficulty));
        stats.set_identity(identity(&format!("synthetic-{i:02}"), i as u16));
        guards.push(registry.add_miner(stats.clone()));
        true_rate += difficulty * TWO_32 * SHARE_RATE;
        // Hashes per share squared × shares per second.
        variance_per_s += (difficulty * TWO_32).powi(2) * SHARE_RATE;
        miners.push(Synthetic {
            stats,
            difficulty,
            schedule,
            next: 0,
        });
    }
    let elapsed = || born.elapsed().as_secs_f64();
    for m in &mut miners {
        m.catch_up(born, wall, elapsed());
    }
    // Keep mining in real time so every scrape sees a full window.
    let stop_feeding = CancellationToken::new();
    let feeder = {
        let stop = stop_feeding.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            while !stop.is_cancelled() {
                tick.tick().await;
                for m in &mut miners {
                    m.catch_up(born, wall, born.elapsed().as_secs_f64());
                }
            }
        })
    };

    let exporter = Arc::new(Exporter::new(registry.clone(), 2_000));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        HttpState::new(exporter, &HttpConfig::default()),
        shutdown.clone(),
    ));

    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();

    // promtool on the real HTTP output.
    let text = client
        .get(format!("http://{target}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    if let Err(report) = promtool_check(&tool("promtool"), &text) {
        panic!("promtool check metrics: {report}");
    }

    let (process, base) = start_prometheus(prometheus, &target);
    let promql = "hashgate_site_hashrate_hashes_per_second{window=\"1m\"}";
    let mut measured = None;
    while started.elapsed() < DEADLINE {
        if let Some(v) = query(&client, &base, promql).await
            && query(&client, &base, "up{job=\"hashgate\"}").await == Some(1.0)
        {
            measured = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let miners_seen = query(&client, &base, "hashgate_miners_connected").await;
    drop(process);
    stop_feeding.cancel();
    shutdown.cancel();
    let _ = feeder.await;
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;

    let measured = measured.expect("Prometheus never had a sample of the site hashrate");
    // The 1 m estimate covers 60–65 s: at least 60 s of Poisson shares.
    let sigma = (variance_per_s * 60.0).sqrt() / 60.0;
    let error = (measured - true_rate).abs();
    eprintln!(
        "site hashrate from Prometheus {measured:.4e} H/s, true {true_rate:.4e} H/s, {:.2} σ",
        error / sigma
    );
    assert!(
        error <= 4.0 * sigma,
        "site hashrate {measured:.4e} H/s vs true {true_rate:.4e} H/s: off by {:.1} σ (σ = {:.2} %)",
        error / sigma,
        100.0 * sigma / true_rate
    );
    assert_eq!(miners_seen, Some(MINERS as f64));
    assert!(started.elapsed() < Duration::from_secs(60));
    drop(guards);
}
