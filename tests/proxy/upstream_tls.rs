//! Pools over TLS (`stratum+ssl://`): simulated ASICs → the proxy → an in-process TLS
//! terminator → the simulated pool. Good certificates carry shares; expired ones, ones for
//! another name, from an unknown issuer or with another key than the pinned one are refused
//! with their kind counted, and the miners fail over to the next (plain) pool: a bad
//! certificate never becomes a plain TCP connection.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hashgate_lab::sim::asic::{SimAsic, SimAsicConfig};
use hashgate_lab::sim::pool::{SimPool, SimPoolConfig};
use hashgate_site::config::{Config, RawConfig};
use hashgate_site::site::{Site, SiteOptions};
use hashgate_site::stats::{Transport, UpstreamState};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::support::tls::{Leaf, Terminator, TestCa, self_signed};

use crate::support::wait::wait_until;

const DIFFICULTY: f64 = 1e-7;

/// The process-wide recorder (one per test binary), so the TLS series can be read.
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| hashgate_site::exporter::install_recorder().expect("first recorder"))
}

/// The value of `name` for `pool` (and `kind`, if given) in the recorder's output.
fn sample(name: &str, pool: &str, kind: Option<&str>) -> Option<f64> {
    let text = recorder().render();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| l.contains(&format!("pool=\"{pool}\"")))
        .find(|l| kind.is_none_or(|k| l.contains(&format!("kind=\"{k}\""))))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn sim_pool(name: &str) -> SimPool {
    SimPool::start(SimPoolConfig {
        name: name.into(),
        difficulty: DIFFICULTY,
        job_interval: Some(Duration::from_secs(2)),
        ..SimPoolConfig::default()
    })
    .await
    .unwrap()
}

/// A site with the TLS pool `name` first (its `[[pools]]` lines given) and, if any, a
/// plain backup.
fn config(name: &str, tls_pool: &str, backup: Option<&SimPool>) -> Arc<Config> {
    let mut text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"site\"\ninitial_difficulty = {DIFFICULTY}\n\
         [vardiff]\nmin_difficulty = {DIFFICULTY}\nmax_difficulty = {DIFFICULTY}\n\
         [failover]\nsilence_timeout_secs = 3\nreconnect_min_secs = 0.2\nreconnect_max_secs = 1\n\
         failback_after_secs = 1\nsubmit_timeout_secs = 5\n\
         [[pools]]\nname = \"{name}\"\n{tls_pool}\n"
    );
    if let Some(backup) = backup {
        text.push_str(&format!(
            "[[pools]]\nname = \"{name}-plain\"\nurl = \"stratum+tcp://{}\"\n",
            backup.addr()
        ));
    }
    Arc::new(RawConfig::parse(&text).unwrap().validate().unwrap())
}

fn miners(proxy: std::net::SocketAddr, n: usize) -> Vec<SimAsic> {
    (0..n)
        .map(|i| {
            let mut cfg = SimAsicConfig::new(proxy, format!("site.m{i:02}"));
            cfg.hashrate = 400.0;
            SimAsic::start(cfg)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_go_through_tls_and_the_certificate_is_on_show() {
    recorder();
    let ca = TestCa::new("good");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"], -1, 30);
    let pool = sim_pool("behind-tls").await;
    let tls = Terminator::start(&leaf, pool.addr()).await;
    let name = "tls-good";
    let cfg = config(
        name,
        &format!(
            "url = \"stratum+ssl://127.0.0.1:{}\"\ntls_ca_file = \"{}\"",
            tls.addr.port(),
            ca.file.display()
        ),
        None,
    );
    let site = Site::start(SiteOptions::new(cfg).without_http())
        .await
        .unwrap();
    let _miners = miners(site.miner_addr, 4);
    wait_until(
        "shares accepted through TLS",
        Duration::from_secs(30),
        || pool.stats().accepted >= 8,
    )
    .await;
    assert!(tls.handshakes.load(Ordering::Relaxed) >= 1);

    let up = site
        .registry
        .upstreams()
        .into_iter()
        .find(|u| &*u.pool == name)
        .unwrap();
    assert_eq!(up.state, UpstreamState::Active);
    let Transport::Tls(Some(peer)) = &up.transport else {
        panic!("no peer certificate recorded: {:?}", up.transport);
    };
    assert_eq!(peer.subject, "CN=localhost");
    assert_eq!(hex::encode(peer.spki_sha256), leaf.pin);
    let days = peer.expiry_days(std::time::SystemTime::now());
    assert!((days - 30.0).abs() < 0.1, "{days}");
    let json = serde_json::to_value(hashgate_site::http::json::PoolJson::of(&up)).unwrap();
    assert_eq!(json["tls"], true);
    assert_eq!(json["tls_peer"]["subject"], "CN=localhost");
    assert_eq!(json["tls_peer"]["pin_sha256"], leaf.pin.as_str());

    let seconds = sample("hashgate_upstream_tls_cert_expiry_seconds", name, None).unwrap();
    assert!(
        (seconds - 30.0 * 86_400.0).abs() < 3_600.0,
        "expiry gauge {seconds}"
    );
    assert_eq!(
        sample("hashgate_upstream_tls_errors_total", name, Some("expired")),
        Some(0.0),
        "the series exist from the first connect, at 0"
    );

    tokio::time::timeout(Duration::from_secs(15), site.shutdown())
        .await
        .unwrap()
        .unwrap();
}

/// Runs a site with a TLS pool presenting `leaf` (configured by `tls_lines`, the URL added
/// here) before a good plain pool; expects the TLS pool refused with `kind`, the miners'
/// shares at the plain pool, and nothing at all reaching the pool behind the terminator.
async fn refused(name: &str, leaf: &Leaf, tls_lines: &str, kind: &str) -> Terminator {
    recorder();
    let behind = sim_pool("behind-bad-tls").await;
    let tls = Terminator::start(leaf, behind.addr()).await;
    let plain = sim_pool("plain").await;
    let cfg = config(
        name,
        &format!(
            "url = \"stratum+ssl://127.0.0.1:{}\"\n{tls_lines}",
            tls.addr.port()
        ),
        Some(&plain),
    );
    let site = Site::start(SiteOptions::new(cfg).without_http())
        .await
        .unwrap();
    let _miners = miners(site.miner_addr, 4);
    wait_until(
        "shares at the plain pool after the TLS pool failed",
        Duration::from_secs(30),
        || plain.stats().accepted >= 8,
    )
    .await;
    wait_until(
        &format!("a TLS error of kind {kind}"),
        Duration::from_secs(10),
        || sample("hashgate_upstream_tls_errors_total", name, Some(kind)).unwrap_or(0.0) >= 1.0,
    )
    .await;
    for other in hashgate_site::tls::TlsError::KINDS {
        if other != kind {
            assert_eq!(
                sample("hashgate_upstream_tls_errors_total", name, Some(other)),
                Some(0.0),
                "{name}: kind {other}"
            );
        }
    }
    let up = site
        .registry
        .upstreams()
        .into_iter()
        .find(|u| &*u.pool == name)
        .unwrap();
    assert_ne!(up.state, UpstreamState::Active);
    assert_eq!(up.transport, Transport::Tls(None));
    let behind_stats = behind.stats();
    assert_eq!(
        (behind_stats.connections_total, behind_stats.accepted),
        (0, 0),
        "nothing reached the pool behind a refused certificate"
    );
    assert_eq!(tls.handshakes.load(Ordering::Relaxed), 0);
    assert!(tls.failed.load(Ordering::Relaxed) >= 1);
    tokio::time::timeout(Duration::from_secs(15), site.shutdown())
        .await
        .unwrap()
        .unwrap();
    tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused_and_miners_fail_over() {
    let ca = TestCa::new("expired");
    let leaf = ca.leaf(&["127.0.0.1"], -30, -2);
    let lines = format!("tls_ca_file = \"{}\"", ca.file.display());
    refused("tls-expired", &leaf, &lines, "expired").await;
    let seconds = sample(
        "hashgate_upstream_tls_cert_expiry_seconds",
        "tls-expired",
        None,
    )
    .unwrap();
    assert!(
        (seconds + 2.0 * 86_400.0).abs() < 3_600.0,
        "an expired certificate shows as negative: {seconds}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_refused() {
    let ca = TestCa::new("wrong-name");
    let leaf = ca.leaf(&["pool.other.example"], -1, 30);
    let lines = format!("tls_ca_file = \"{}\"", ca.file.display());
    refused("tls-wrong-name", &leaf, &lines, "name_mismatch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_name_override_is_what_is_checked() {
    recorder();
    let ca = TestCa::new("sni");
    let leaf = ca.leaf(&["pool.other.example"], -1, 30);
    let pool = sim_pool("behind-sni").await;
    let tls = Terminator::start(&leaf, pool.addr()).await;
    let cfg = config(
        "tls-sni",
        &format!(
            "url = \"stratum+ssl://127.0.0.1:{}\"\ntls_ca_file = \"{}\"\n\
             tls_server_name = \"pool.other.example\"",
            tls.addr.port(),
            ca.file.display()
        ),
        None,
    );
    let site = Site::start(SiteOptions::new(cfg).without_http())
        .await
        .unwrap();
    let _miners = miners(site.miner_addr, 2);
    wait_until(
        "shares through TLS by SNI name",
        Duration::from_secs(30),
        || pool.stats().accepted >= 4,
    )
    .await;
    tokio::time::timeout(Duration::from_secs(15), site.shutdown())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_is_refused_without_a_pin() {
    let leaf = self_signed(&["127.0.0.1"]);
    refused("tls-unknown", &leaf, "", "unknown_issuer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_key_is_trusted_and_another_key_is_refused() {
    recorder();
    // The pin alone trusts a self-signed certificate in no root store.
    let leaf = self_signed(&["127.0.0.1"]);
    let pool = sim_pool("behind-pin").await;
    let tls = Terminator::start(&leaf, pool.addr()).await;
    let cfg = config(
        "tls-pinned",
        &format!(
            "url = \"stratum+ssl://127.0.0.1:{}\"\ntls_pin_sha256 = \"{}\"",
            tls.addr.port(),
            leaf.pin
        ),
        None,
    );
    let site = Site::start(SiteOptions::new(cfg).without_http())
        .await
        .unwrap();
    let _miners = miners(site.miner_addr, 2);
    wait_until(
        "shares through the pinned pool",
        Duration::from_secs(30),
        || pool.stats().accepted >= 4,
    )
    .await;
    tokio::time::timeout(Duration::from_secs(15), site.shutdown())
        .await
        .unwrap()
        .unwrap();

    // Another key, even one a trusted CA issued, does not match the pin.
    let ca = TestCa::new("pin-other");
    let other = ca.leaf(&["127.0.0.1"], -1, 30);
    let lines = format!(
        "tls_ca_file = \"{}\"\ntls_pin_sha256 = \"{}\"",
        ca.file.display(),
        leaf.pin
    );
    refused("tls-pin-mismatch", &other, &lines, "pin_mismatch").await;
}
