//! `[[listeners]]` over TCP: each port's difficulty range and starting difficulty reach its
//! miners, each port's cap refuses on that port only, and a TLS port serves miners over
//! TLS and closes (and counts) a miner speaking plain Stratum to it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hashgate_protocol::work::Target;
use hashgate_site::config::Config;
use hashgate_site::downstream::{Listener, ListenerStatus};
use hashgate_site::hub::Hub;
use hashgate_site::stats::Registry;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::support::downstream::{Harness, Miner, WAIT};

const BASE: &str = r#"
[proxy]
account = "site"
setup_timeout_secs = 5
[[pools]]
url = "stratum+tcp://127.0.0.1:1"
"#;

/// Two ports: small home miners and the S21 fleet, far apart in difficulty.
fn two_ports(home_cap: usize) -> Config {
    Config::from_toml(&format!(
        r#"{BASE}
[[listeners]]
name = "home"
listen = "127.0.0.1:0"
min_difficulty = 1e-10
max_difficulty = 1e-6
initial_difficulty = 1e-8
max_connections = {home_cap}
[[listeners]]
name = "fleet"
listen = "127.0.0.1:0"
min_difficulty = 1e-4
max_difficulty = 1.0
initial_difficulty = 1e-3
pool_group = "s21"
[[pool_groups]]
name = "s21"
pools = ["pool0"]
"#
    ))
    .expect("valid config")
}

fn port<'a>(h: &'a Harness, name: &str) -> &'a Arc<ListenerStatus> {
    h.listeners
        .iter()
        .find(|l| &*l.name == name)
        .unwrap_or_else(|| panic!("listener {name}"))
}

/// The difficulty of a `mining.set_difficulty` line.
fn difficulty(line: &Value) -> f64 {
    assert_eq!(line["method"], json!("mining.set_difficulty"), "{line}");
    line["params"][0].as_f64().expect("a number")
}

/// Subscribes and authorizes, returning the first difficulty sent.
async fn start_at(miner: &mut Miner, worker: &str) -> f64 {
    let sub = miner
        .call("mining.subscribe", json!(["test-miner/1.0"]))
        .await;
    assert_eq!(sub["error"], Value::Null, "{sub}");
    let auth = miner.call("mining.authorize", json!([worker, "x"])).await;
    assert_eq!(auth["result"], json!(true), "{auth}");
    difficulty(&miner.recv().await)
}

/// Lines until the next notify, returning the last difficulty among them.
async fn difficulty_before_next_job(miner: &mut Miner) -> Option<f64> {
    let mut last = None;
    loop {
        let line = miner.recv().await;
        if line["method"] == json!("mining.notify") {
            return last;
        }
        if line["method"] == json!("mining.set_difficulty") {
            last = Some(difficulty(&line));
        }
    }
}

#[tokio::test]
async fn each_port_starts_its_miners_at_its_difficulty_and_clamps_to_its_range() {
    let h = Harness::start(two_ports(10)).await;
    h.publish(false, Target::MAX);
    let (home, fleet) = (port(&h, "home"), port(&h, "fleet"));
    assert_ne!(home.addr, fleet.addr);
    assert_eq!(
        home.addr, h.addr,
        "the first listener is the site's miner address"
    );

    let mut small = Miner::connect(home.addr).await;
    let mut big = Miner::connect(fleet.addr).await;
    assert_eq!(start_at(&mut small, "site.home1").await, 1e-8);
    assert_eq!(start_at(&mut big, "site.s21-1").await, 1e-3);
    for m in [&mut small, &mut big] {
        let notify = m.recv().await;
        assert_eq!(notify["method"], json!("mining.notify"), "{notify}");
    }

    // A suggestion is clamped to the port's bounds, not the site's: the home miner asks
    // for far too much, the S21 for far too little.
    // Both answered before the job that carries the new difficulty is published.
    small.call("mining.suggest_difficulty", json!([1e9])).await;
    big.call("mining.suggest_difficulty", json!([1e-12])).await;
    h.publish(false, Target::MAX);
    assert_eq!(difficulty_before_next_job(&mut small).await, Some(1e-6));
    assert_eq!(difficulty_before_next_job(&mut big).await, Some(1e-4));

    assert_eq!((home.open(), fleet.open()), (1, 1));
    assert_eq!((home.accepted(), fleet.accepted()), (1, 1));
    assert_eq!(fleet.pool_group.as_deref(), Some("s21"));
    h.shutdown.cancel();
}

#[tokio::test]
async fn a_full_port_refuses_the_next_miner_while_the_other_port_accepts() {
    let h = Harness::start(two_ports(2)).await;
    h.publish(false, Target::MAX);
    let (home, fleet) = (port(&h, "home"), port(&h, "fleet"));
    let mut first = Miner::connect(home.addr).await;
    let mut second = Miner::connect(home.addr).await;
    first.setup("site.h1", true).await;
    second.setup("site.h2", true).await;

    // The third is closed at accept: no answer, just the end of the stream.
    let mut third = Miner::connect(home.addr).await;
    third.send("mining.subscribe", json!([])).await;
    assert!(third.until_closed().await.is_empty());
    assert_eq!(home.refused("max_connections"), 1);
    assert_eq!(home.open(), 2);

    // The other port is untouched by the home port's cap.
    let mut s21 = Miner::connect(fleet.addr).await;
    s21.setup("site.s21", true).await;
    assert_eq!(fleet.refused("max_connections"), 0);
    assert_eq!(h.counters.refused(), 1);

    // A miner leaving frees its place on the port.
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    while home.open() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "home.open() stays {}",
            home.open()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut again = Miner::connect(home.addr).await;
    again.setup("site.h3", true).await;
    assert_eq!(home.refused("max_connections"), 1);
    h.shutdown.cancel();
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written under the test
/// target directory (the test reads nothing outside the repository's build tree).
fn certificate(name: &str) -> (PathBuf, PathBuf, rustls::pki_types::CertificateDer<'static>) {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("listeners-{name}"));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("write cert");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key");
    (cert, key, made.cert.der().clone())
}

fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> Config {
    Config::from_toml(&format!(
        r#"{BASE}
[[listeners]]
name = "plain"
listen = "127.0.0.1:0"
min_difficulty = 1e-10
initial_difficulty = 1e-10
[[listeners]]
name = "secure"
listen = "127.0.0.1:0"
min_difficulty = 1e-10
initial_difficulty = 1e-10
tls_cert = "{}"
tls_key = "{}"
"#,
        cert.display(),
        key.display()
    ))
    .expect("valid config")
}

#[tokio::test]
async fn a_tls_port_serves_miners_over_tls_and_closes_plain_ones() {
    let (cert, key, der) = certificate("serve");
    let h = Harness::start(tls_config(&cert, &key)).await;
    h.publish(false, Target::MAX);
    let secure = port(&h, "secure").clone();
    assert!(secure.tls);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(secure.addr)
        .await
        .expect("connect");
    let stream = tokio::time::timeout(
        WAIT,
        connector.connect(ServerName::try_from("localhost").expect("name"), tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    let mut miner = Miner::over(stream);
    let setup = miner.setup("site.tls1", true).await;
    let job = setup.job_id.clone().expect("a job over TLS");
    // Every share meets an EASY target: accepted, over TLS both ways.
    for nonce in 0..20u32 {
        let e2 = format!(
            "{:0width$x}",
            nonce,
            width = setup.extranonce2_size as usize * 2
        );
        let answer = miner.submit("site.tls1", &job, &e2, nonce).await;
        assert_eq!(answer["result"], json!(true), "{answer}");
    }
    assert_eq!(secure.accepted(), 1);

    // A miner speaking plain Stratum to the TLS port: closed, counted, no JSON back.
    let mut plain = tokio::net::TcpStream::connect(secure.addr)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut plain,
        b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n",
    )
    .await
    .expect("write");
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, plain.read_to_end(&mut got)).await;
    assert!(
        read.is_ok(),
        "the plain miner was not closed within {WAIT:?}"
    );
    assert!(
        !got.contains(&b'{'),
        "a Stratum answer on a TLS port: {got:?}"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while secure.refused("tls_handshake") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "TLS failure not counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.counters.ended("tls"), 1);
    // The TLS miner is still served.
    let e2 = format!(
        "{:0width$x}",
        99,
        width = setup.extranonce2_size as usize * 2
    );
    let answer = miner.submit("site.tls1", &job, &e2, 99).await;
    assert_eq!(answer["result"], json!(true), "{answer}");
    h.shutdown.cancel();
}

#[tokio::test]
async fn a_tls_port_whose_files_do_not_load_fails_at_bind_naming_the_listener() {
    let (cert, _key, _) = certificate("bad");
    // The certificate given as its own key: no private key in it.
    let config = tls_config(&cert, &cert);
    let (hub, _rx) = Hub::new(1);
    let err = Listener::bind(&config, hub, Registry::new(), CancellationToken::new())
        .expect_err("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let text = err.to_string();
    assert!(
        text.contains("listeners[1]") && text.contains("secure"),
        "{text}"
    );
    assert!(
        text.contains("key.pem") || text.contains("cert.pem"),
        "{text}"
    );
}

#[tokio::test]
async fn a_burst_larger_than_one_tls_read_is_answered_in_full() {
    // 700 submits in one write: more plaintext than one read drains from rustls (64 KiB),
    // so the connection reads it in several slices and answers every line in order.
    let (cert, key, der) = certificate("burst");
    let h = Harness::start(tls_config(&cert, &key)).await;
    h.publish(false, Target::MAX);
    let secure = port(&h, "secure").clone();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(secure.addr)
        .await
        .expect("connect");
    let stream = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake");
    let mut miner = Miner::over(stream);
    let setup = miner.setup("site.burst", true).await;
    let job = setup.job_id.expect("job");
    let width = setup.extranonce2_size as usize * 2;
    const BURST: u64 = 700;
    let mut lines = String::new();
    for n in 0..BURST {
        lines.push_str(
            &json!({
                "id": 1000 + n,
                "method": "mining.submit",
                "params": ["site.burst", job, format!("{n:0width$x}"), "65000000", format!("{n:08x}")]
            })
            .to_string(),
        );
        lines.push('\n');
    }
    assert!(lines.len() > 64 * 1024, "{} bytes", lines.len());
    assert!(miner.send_bytes(lines.as_bytes()).await);
    for n in 0..BURST {
        let answer = miner.recv().await;
        assert_eq!(answer["id"], json!(1000 + n), "{answer}");
        assert_eq!(answer["result"], json!(true), "{answer}");
    }
    h.shutdown.cancel();
}
