//! Pool reload end to end: simulated ASICs mining through the real proxy (`Site`) while the
//! pool list is reloaded under them; the pools judge every share with their own code.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashgate_lab::sim::asic::{SimAsic, SimAsicConfig};
use hashgate_lab::sim::pool::{SimPool, SimPoolConfig};
use hashgate_site::config::{Config, RawConfig};
use hashgate_site::site::{Site, SiteOptions};

/// One share per ~430 hashes: a 400 H/s simulated ASIC sends about one a second.
const DIFFICULTY: f64 = 1e-7;
const TOKEN: &str = "pool-reload-token-0123456789";
const LIMIT: Duration = Duration::from_secs(30);

fn config_text(pools: &[(&str, &SimPool)], listen: &str) -> String {
    let mut text = format!(
        "[proxy]\nlisten = \"{listen}\"\naccount = \"site\"\ninitial_difficulty = {DIFFICULTY}\n\
         [vardiff]\nmin_difficulty = {DIFFICULTY}\nmax_difficulty = {DIFFICULTY}\n\
         [failover]\nsilence_timeout_secs = 3\nreconnect_min_secs = 0.2\nreconnect_max_secs = 1\n\
         failback_after_secs = 1\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\
         [power]\nadmin_token = \"{TOKEN}\"\n[[power.containers]]\nname = \"c1\"\nbudget_kw = 10\n"
    );
    for (name, pool) in pools {
        text.push_str(&format!(
            "[[pools]]\nname = \"{name}\"\nurl = \"stratum+tcp://{}\"\n",
            pool.addr()
        ));
    }
    text
}

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
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

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloaded_pools_take_the_shares_and_no_miner_reconnects() {
    let (a, b, c) = (pool("a").await, pool("b").await, pool("c").await);
    let file = Arc::new(Mutex::new(config_text(&[("a", &a)], "127.0.0.1:0")));
    let read = {
        let file = file.clone();
        move || -> Result<Config, String> {
            let text = file.lock().unwrap().clone();
            RawConfig::parse(&text)
                .and_then(|raw| raw.validate())
                .map_err(|e| e.to_string())
        }
    };
    let site = Site::start(SiteOptions::new(read().unwrap()).reload_from(Arc::new(read)))
        .await
        .unwrap();
    let asics: Vec<SimAsic> = (0..4)
        .map(|i| {
            let mut cfg = SimAsicConfig::new(site.miner_addr, format!("site.m{i}"));
            cfg.hashrate = 400.0;
            SimAsic::start(cfg)
        })
        .collect();
    wait_until("shares at a", || a.stats().accepted >= 4).await;

    // A backup is added and the miners' listen address changed: the backup is applied,
    // the address is named as needing a restart, and pool a keeps its connection.
    let a_connections = a.stats().connections_total;
    *file.lock().unwrap() = config_text(&[("a", &a), ("b", &b)], "127.0.0.1:1");
    // The reload runs (and logs) on the calling thread: a thread-local subscriber sees it.
    let log = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .finish();
    let report =
        tracing::subscriber::with_default(subscriber, || site.reload()).expect("valid file");
    assert_eq!(report.applied, ["pool \"b\" added"], "{report:?}");
    let logged = log.text();
    assert!(
        logged.contains("configuration reloaded: pool \"b\" added; needs a restart: proxy.listen"),
        "{logged}"
    );
    assert_eq!(report.needs_restart, ["proxy.listen"], "{report:?}");
    wait_until("b kept warm", || b.stats().connections_open >= 1).await;
    let before = a.stats().accepted;
    wait_until("more shares at a", || a.stats().accepted >= before + 4).await;
    assert_eq!(
        a.stats().connections_total,
        a_connections,
        "the active pool's connection was kept"
    );

    // Through the admin API: a removed, c first. The miners go to c (through b, the warm
    // backup, while c connects), with new work and no reconnect.
    *file.lock().unwrap() = config_text(&[("c", &c), ("b", &b)], "127.0.0.1:1");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{}/api/v1/reload", site.http_addr.unwrap());
    let resp = http.post(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["reloaded"], true, "{body}");
    let applied: Vec<&str> = body["applied"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        applied,
        ["pool \"c\" added", "pool \"a\" removed"],
        "{body}"
    );
    assert_eq!(body["needs_restart"][0], "proxy.listen", "{body}");
    wait_until("a's connection closed", || a.stats().connections_open == 0).await;
    wait_until("shares at c", || c.stats().accepted >= 4).await;
    let state = |name: &str| {
        site.registry
            .upstreams()
            .into_iter()
            .find(|u| &*u.pool == name)
            .map(|u| u.state)
    };
    assert_eq!(
        state("a"),
        Some(hashgate_site::stats::UpstreamState::Removed),
        "a removed pool is marked, not down"
    );
    let settled_a = a.stats().accepted;

    // An invalid file changes nothing.
    *file.lock().unwrap() = "[[pools]]\nurl = \"nowhere\"\n".to_owned();
    assert!(site.reload().is_err());
    let before = c.stats().accepted;
    wait_until("still mining at c", || c.stats().accepted >= before + 4).await;
    assert_eq!(a.stats().accepted, settled_a, "nothing went back to a");

    for asic in &asics {
        let stats = asic.stats();
        assert_eq!(stats.connects, 1, "a miner reconnected: {stats:?}");
    }
    assert_eq!(site.listener.accepted(), 4);
    assert_eq!(site.listener.open(), 4);
    for asic in asics {
        asic.stop().await;
    }
    tokio::time::timeout(LIMIT, site.shutdown())
        .await
        .expect("stops")
        .expect("clean");
}
