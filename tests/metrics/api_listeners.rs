//! Three listeners through a real `Site` (one of them TLS): each bound on its own port 0,
//! each miner given its port's difficulty, the simulated ASIC on the TLS port mining over
//! TLS, and `/api/v1/listeners` and `/metrics` telling the ports apart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hashgate_lab::sim::asic::{SimAsic, SimAsicConfig, SimAsicTls};
use hashgate_lab::sim::pool::{SimPool, SimPoolConfig};
use hashgate_site::config::Config;
use hashgate_site::site::{Site, SiteOptions};
use serde_json::Value;

const HOME: f64 = 1e-7;
const FLEET: f64 = 4e-7;

async fn get(client: &reqwest::Client, url: String) -> reqwest::Response {
    client.get(url).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_reports_its_own_port_settings_and_miners() {
    let pool = SimPool::start(SimPoolConfig {
        name: "main".into(),
        difficulty: HOME,
        job_interval: Some(Duration::from_secs(2)),
        ..SimPoolConfig::default()
    })
    .await
    .unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("api-listeners");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let config = Config::from_toml(&format!(
        "[proxy]\naccount = \"site\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [[pools]]\nname = \"main\"\nurl = \"stratum+tcp://{}\"\n\
         [[listeners]]\nname = \"home\"\nlisten = \"127.0.0.1:0\"\n\
         min_difficulty = {HOME}\nmax_difficulty = {HOME}\nmax_connections = 5\n\
         [[listeners]]\nname = \"fleet\"\nlisten = \"127.0.0.1:0\"\n\
         min_difficulty = {FLEET}\nmax_difficulty = {FLEET}\npool_group = \"s21\"\n\
         [[pool_groups]]\nname = \"s21\"\npools = [\"main\"]\n\
         [[listeners]]\nname = \"secure\"\nlisten = \"127.0.0.1:0\"\n\
         min_difficulty = {HOME}\nmax_difficulty = {HOME}\n\
         tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        pool.addr(),
        cert.display(),
        key.display()
    ))
    .unwrap();
    let site = Site::start(SiteOptions::new(Arc::new(config)))
        .await
        .unwrap();
    let ports: Vec<_> = site
        .listeners
        .iter()
        .map(|l| (l.name.to_string(), l.addr))
        .collect();
    assert_eq!(ports.len(), 3);
    assert_eq!(ports[0].0, "home");
    assert_eq!(ports[0].1, site.miner_addr);
    assert!(ports.iter().all(|(_, a)| a.port() != 0), "{ports:?}");
    assert_ne!(ports[0].1, ports[1].1);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let tls = SimAsicTls {
        client: Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
        ),
        server_name: rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    };

    let asics: Vec<SimAsic> = ports
        .iter()
        .map(|(name, addr)| {
            let mut cfg = SimAsicConfig::new(*addr, format!("site.{name}"));
            cfg.hashrate = 400.0;
            if name == "secure" {
                cfg.tls = Some(tls.clone());
            }
            SimAsic::start(cfg)
        })
        .collect();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let base = format!("http://{}", site.http_addr.unwrap());
    let start = Instant::now();
    while !asics.iter().all(|a| a.stats().accepted >= 1) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no shares from both ports"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let body: Value = get(&client, format!("{base}/api/v1/listeners"))
        .await
        .json()
        .await
        .unwrap();
    let listeners = body["listeners"].as_array().expect("listeners");
    assert_eq!(listeners.len(), 3, "{body}");
    let (home, fleet, secure) = (&listeners[0], &listeners[1], &listeners[2]);
    assert_eq!(home["name"], "home");
    assert_eq!(home["listen"], ports[0].1.to_string());
    assert_eq!(home["initial_difficulty"], HOME);
    assert_eq!(home["max_connections"], 5);
    assert_eq!(home["connections"], 1, "{body}");
    assert_eq!(home["tls"], false);
    assert_eq!(home["pool_group"], Value::Null);
    assert_eq!(fleet["pool_group"], "s21");
    assert_eq!(fleet["min_difficulty"], FLEET);
    assert_eq!(fleet["connections"], 1, "{body}");
    assert_eq!(fleet["refused"]["max_connections"], 0);
    assert_eq!(secure["tls"], true);
    assert_eq!(secure["connections"], 1, "{body}");
    assert_eq!(secure["refused"]["tls_handshake"], 0, "{body}");

    // Each miner works at its port's difficulty.
    for (worker, difficulty) in [
        ("site.home", HOME),
        ("site.fleet", FLEET),
        ("site.secure", HOME),
    ] {
        let miner: Value = get(&client, format!("{base}/api/v1/miners/{worker}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            miner["connections"][0]["difficulty"], difficulty,
            "{worker}: {miner}"
        );
        // One pool, one group: every miner works for s21; only the fleet port pins it.
        assert_eq!(miner["connections"][0]["pool_group"], "s21", "{miner}");
        let home = if worker == "site.fleet" {
            Value::from("s21")
        } else {
            Value::Null
        };
        assert_eq!(miner["connections"][0]["home_group"], home, "{miner}");
    }

    let metrics = get(&client, format!("{base}/metrics"))
        .await
        .text()
        .await
        .unwrap();
    for line in [
        "hashgate_listener_connections{listener=\"home\"} 1",
        "hashgate_listener_connections{listener=\"fleet\"} 1",
        "hashgate_listener_connections{listener=\"secure\"} 1",
        "hashgate_listener_max_connections{listener=\"home\"} 5",
        "hashgate_listener_accepted_total{listener=\"fleet\"} 1",
        "hashgate_listener_refused_total{listener=\"home\",reason=\"tls_handshake\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from /metrics");
    }
    drop(asics);
    site.begin_shutdown();
}
