//! One worker name over many connections (each from its own source port): every connection
//! was a `hashgate_miner_info` series of its own, outside `max_worker_series`, so one rig
//! reconnecting in a loop, or 150 connections under one name, grew Prometheus without
//! bound (#11.8). The info series is now one per worker, and only for workers inside the cap.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hashgate_site::exporter::Exporter;
use hashgate_site::stats::{MinerIdentity, MinerStats, Registry};

fn connection(worker: &str, port: u16, born: Instant) -> Arc<MinerStats> {
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + u64::from(port));
    let stats = Arc::new(MinerStats::new(born, wall, 16.0));
    stats.set_identity(MinerIdentity {
        worker: worker.into(),
        remote: format!("10.0.0.7:{port}").parse().unwrap(),
        user_agent: "cgminer/4.12".into(),
        prefix_hex: format!("{:04x}", port),
    });
    stats
}

fn info_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("hashgate_miner_info{"))
        .collect()
}

#[test]
fn many_connections_under_one_name_are_one_info_series() {
    let registry = Registry::new();
    let exporter = Exporter::new(registry.clone(), 2);
    let t0 = Instant::now();
    let held: Vec<_> = (0..150u16)
        .map(|i| registry.add_miner(connection("site.rig1", 40_000 + i, t0)))
        .collect();
    let text = exporter.render(t0);
    let lines = info_lines(&text);
    assert_eq!(lines.len(), 1, "one series for one worker: {lines:?}");
    let line = lines[0];
    assert!(
        line.contains("remote=\"10.0.0.7\""),
        "no port label: {line}"
    );
    assert!(
        line.ends_with(" 150"),
        "the value counts live connections: {line}"
    );
    drop(held);
}

#[test]
fn workers_past_the_cap_have_no_info_series() {
    let registry = Registry::new();
    let exporter = Exporter::new(registry.clone(), 2);
    let t0 = Instant::now();
    let held: Vec<_> = (0..10u16)
        .map(|i| registry.add_miner(connection(&format!("rig{i}"), 40_000 + i, t0)))
        .collect();
    let text = exporter.render(t0);
    assert_eq!(info_lines(&text).len(), 2, "inside max_worker_series only");
    drop(held);
}
