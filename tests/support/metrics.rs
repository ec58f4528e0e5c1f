//! SessionContext by the `metrics_*` and `api_*` integration tests: a registry populated with every
//! kind of miner and pool, and the external Prometheus tools.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hashgate_protocol::extranonce::{PrefixLease, SplitLimits, choose_split};
use hashgate_protocol::work::ShareReject;
use hashgate_site::exporter::{Exporter, recorder_builder};
use hashgate_site::hub::Hub;
use hashgate_site::stats::{
    MinerIdentity, MinerRegistration, MinerStats, PoolReject, Registry, Undelivered, UpstreamState,
};

/// Hashes proved by a share of difficulty 1.
pub const TWO_32: f64 = 4_294_967_296.0;

/// Power metric names the dashboard and alerts may query (recorded by the controller).
pub const POWER_METRICS: [&str; 26] = [
    "hashgate_container_fans_running",
    "hashgate_container_pump_on",
    "hashgate_container_humidity_percent",
    "hashgate_container_climate_alarm",
    "hashgate_climate_readings_rejected_total",
    "hashgate_container_power_watts",
    "hashgate_container_budget_watts",
    "hashgate_container_projected_power_watts",
    "hashgate_container_inlet_celsius",
    "hashgate_container_hot",
    "hashgate_container_stuck_over_budget",
    "hashgate_power_actions_total",
    "hashgate_power_meter_fallback_ticks_total",
    "hashgate_container_meter_up",
    "hashgate_modbus_errors_total",
    "hashgate_container_pue",
    "hashgate_container_pue_hourly",
    "hashgate_container_pue_source",
    "hashgate_container_facility_power_watts",
    "hashgate_container_it_power_watts",
    "hashgate_site_pue",
    "hashgate_site_pue_hourly",
    "hashgate_miner_power_state",
    "hashgate_miner_counted_power_watts",
    "hashgate_miner_power_info",
    "hashgate_miner_alarm",
];

/// Economics series (`[economics]`, recorded through the `metrics` recorder), which the
/// shipped alert rules and dashboard may use.
pub const ECONOMICS_METRICS: [&str; 11] = [
    "hashgate_container_miners_asleep",
    "hashgate_hashprice",
    "hashgate_coin_price",
    "hashgate_price_stale",
    "hashgate_price_age_seconds",
    "hashgate_price_fetch_failures_total",
    "hashgate_economics_bad_jobs_total",
    "hashgate_model_shutdown_price",
    "hashgate_model_break_even_tariff_per_kwh",
    "hashgate_container_tariff_per_kwh",
    "hashgate_economics_pue",
];

/// Ledger series (`[ledger]`, recorded through the `metrics` recorder), which the shipped
/// alert rules may use.
pub const LEDGER_METRICS: [&str; 3] = [
    "hashgate_ledger_flushes_total",
    "hashgate_ledger_hour_energy_joules",
    "hashgate_ledger_hour_work_hashes",
];

/// Counters the pool connections record (through the `metrics` recorder, not the scrape-time
/// render), which the shipped alert rules may use.
pub const UPSTREAM_RECORDED_METRICS: [&str; 5] = [
    "hashgate_upstream_redirects_refused_total",
    "hashgate_upstream_sv2_handshake_failures_total",
    "hashgate_upstream_worker_fallbacks_total",
    "hashgate_upstream_tls_errors_total",
    "hashgate_upstream_tls_cert_expiry_seconds",
];

/// Series the reload records (SIGHUP, `POST /api/v1/reload`), which alerts may use.
pub const RELOAD_METRICS: [&str; 2] = [
    "hashgate_config_reloads_total",
    "hashgate_config_last_reload_success_timestamp_seconds",
];

/// Finds an external tool; `None` (after a loud message) only when it is missing and `CI`
/// is not set. Under CI a missing tool fails the test.
/// Runs `promtool check metrics` on an exposition; `Err` holds its report when it fails
/// or finds anything to lint.
pub fn promtool_check(promtool: &Path, text: &str) -> Result<(), String> {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && report.trim().is_empty() {
        Ok(())
    } else {
        Err(report)
    }
}

/// The path of an external tool the calling test needs. Such tests carry
/// `#[cfg_attr(not(hashgate_has_<tool>), ignore = ...)]` (the build script looks on PATH), so
/// where the tool is missing they are reported as ignored; run anyway (`--ignored`), they
/// fail here rather than pass without checking anything.
pub fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("`{name}` is not on PATH: apt-get install -y prometheus (.ci/run does)")
        })
}

/// A miner identity.
pub fn identity(worker: &str, n: u16) -> MinerIdentity {
    MinerIdentity {
        worker: worker.into(),
        remote: format!("10.20.0.{}:{}", n % 250 + 1, 40000 + n)
            .parse()
            .unwrap(),
        user_agent: "bmminer/2.0.0".into(),
        prefix_hex: format!("{n:04x}"),
    }
}

/// A miner started at `born` that accepted a share of `difficulty` every `interval` for
/// `span`, so its hashrate over any window inside `span` is `difficulty · 2³² / interval`.
pub fn steady_miner(
    worker: Option<&str>,
    n: u16,
    born: Instant,
    wall: SystemTime,
    difficulty: f64,
    interval: Duration,
    span: Duration,
) -> Arc<MinerStats> {
    let stats = Arc::new(MinerStats::new(born, wall, difficulty));
    if let Some(worker) = worker {
        stats.set_identity(identity(worker, n));
    }
    let mut t = interval;
    while t <= span {
        stats.record_accepted(born + t, wall + t, difficulty, difficulty * 1.5);
        t += interval;
    }
    stats
}

/// A registry holding every kind of figure the exporter writes, the exporter over it (with
/// a local recorder holding the latency histogram and malformed counter), and the guards
/// keeping the live miners connected. Hashrates are read at the returned `now`.
pub struct Populated {
    pub exporter: Arc<Exporter>,
    pub registry: Arc<Registry>,
    pub now: Instant,
    pub guards: Vec<MinerRegistration>,
    pub lease: PrefixLease,
}

pub fn populated(max_worker_series: usize) -> Populated {
    let registry = Registry::new();
    // Born two minutes ago, so a server reading the clock sees the same hashrates.
    let t0 = Instant::now()
        .checked_sub(Duration::from_secs(120))
        .expect("monotonic clock past two minutes");
    let wall = SystemTime::now() - Duration::from_secs(120);
    let mut guards = Vec::new();
    let live = steady_miner(
        Some("site.rack1-01"),
        1,
        t0,
        wall,
        1024.0,
        Duration::from_secs(5),
        Duration::from_secs(115),
    );
    live.record_rejected(ShareReject::Stale);
    live.record_rejected(ShareReject::LowDifficulty);
    live.record_pool_accepted();
    live.record_pool_rejected(PoolReject::LowDifficulty);
    live.record_undelivered(Undelivered::UpstreamGone);
    live.record_block();
    guards.push(registry.add_miner(live));
    for n in 2..6 {
        let worker = format!("site.rack1-{n:02}");
        let m = steady_miner(
            Some(&worker),
            n,
            t0,
            wall,
            512.0,
            Duration::from_secs(5),
            Duration::from_secs(115),
        );
        guards.push(registry.add_miner(m));
    }
    // A worker that reconnected: one departed connection, one live.
    let first = steady_miner(
        Some("site.rack2-01"),
        7,
        t0,
        wall,
        256.0,
        Duration::from_secs(10),
        Duration::from_secs(60),
    );
    drop(registry.add_miner(first));
    let again = steady_miner(
        Some("site.rack2-01"),
        8,
        t0,
        wall,
        256.0,
        Duration::from_secs(10),
        Duration::from_secs(115),
    );
    guards.push(registry.add_miner(again));
    // A connection that left without authorizing, and one still unauthorized.
    let anonymous = Arc::new(MinerStats::new(t0, wall, 1.0));
    anonymous.record_rejected(ShareReject::NotSubscribed);
    drop(registry.add_miner(anonymous));
    guards.push(registry.add_miner(Arc::new(MinerStats::new(t0, wall, 1.0))));

    let primary: Arc<str> = "primary".into();
    let backup: Arc<str> = "backup".into();
    let up = registry.upstream(&primary);
    up.set_state(UpstreamState::Active);
    up.set_difficulty(65536.0);
    up.set_channel_difficulty(0, 65536.0);
    up.set_channel_suggested(0, 65536.0);
    up.record_submitted(false);
    up.record_submitted(true);
    up.record_accepted();
    up.record_rejected(PoolReject::Stale);
    up.record_undelivered(Undelivered::NoAnswer);
    up.record_failover();
    up.record_reconnect();
    up.record_submit_latency(Duration::from_millis(42));
    registry.upstream(&backup).set_state(UpstreamState::Backup);

    let (hub, _new_channels) = Hub::new(4);
    let plan = choose_split(8, 100, SplitLimits::default()).unwrap();
    hub.set_sizes(&plan);
    let (_channel, lease) = hub.join().unwrap();

    let recorder = recorder_builder().unwrap().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        hashgate_site::exporter::describe();
        metrics::histogram!(hashgate_site::exporter::SUBMIT_LATENCY, "pool" => "primary")
            .record(0.042);
        metrics::counter!("hashgate_downstream_malformed_total").increment(1);
        metrics::counter!(
            hashgate_site::exporter::UPSTREAM_SV2_HANDSHAKE_FAILURES,
            "pool" => "primary"
        )
        .increment(1);
        metrics::counter!(
            hashgate_site::exporter::UPSTREAM_WORKER_FALLBACKS,
            "pool" => "primary",
            "reason" => "unanswered"
        )
        .increment(1);
        metrics::counter!(
            hashgate_site::exporter::UPSTREAM_TLS_ERRORS,
            "pool" => "backup",
            "kind" => "expired"
        )
        .increment(1);
        metrics::gauge!(
            hashgate_site::exporter::UPSTREAM_TLS_CERT_EXPIRY_SECONDS,
            "pool" => "primary"
        )
        .set(61.5 * 86_400.0);
    });
    // The recorder must outlive the handle's renders: leak it, it is one per test process.
    Box::leak(Box::new(recorder));

    // One miner listener, so its families have samples (counters at zero).
    let config = hashgate_site::config::Config::from_toml(
        "[proxy]\naccount = \"a\"\n[[pools]]\nurl = \"h:1\"\n\
         [[listeners]]\nname = \"home\"\nlisten = \"127.0.0.1:3333\"\nmax_connections = 100\n",
    )
    .expect("listener config");
    let listener = hashgate_site::downstream::ListenerStatus::new(
        &config.listeners()[0],
        "127.0.0.1:3333".parse().expect("addr"),
    );
    let exporter = Exporter::new(registry.clone(), max_worker_series)
        .with_hub(hub)
        .with_listeners(vec![Arc::new(listener)])
        .with_prometheus(handle);
    Populated {
        exporter: Arc::new(exporter),
        registry,
        now: t0 + Duration::from_secs(120),
        guards,
        lease,
    }
}

/// `name{label,label}` for every sample line of an exposition text (label values dropped).
pub fn series_shapes(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..name_end];
            let mut keys = Vec::new();
            if line[name_end..].starts_with('{') {
                let body = &line[name_end + 1..line.rfind('}').unwrap()];
                let mut rest = body;
                while let Some(eq) = rest.find("=\"") {
                    keys.push(rest[..eq].trim_start_matches(',').to_string());
                    // Skip the quoted value, honouring escapes.
                    let bytes = rest.as_bytes();
                    let mut i = eq + 2;
                    while i < bytes.len() && bytes[i] != b'"' {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    rest = &rest[(i + 1).min(rest.len())..];
                }
            }
            keys.retain(|k| k != "le" && k != "quantile");
            format!("{name}{{{}}}", keys.join(","))
        })
        .collect()
}

/// Metric names (without labels) of an exposition text.
pub fn metric_names(text: &str) -> BTreeSet<String> {
    series_shapes(text)
        .into_iter()
        .map(|s| s[..s.find('{').unwrap()].to_string())
        .collect()
}

/// Every `hashgate_…` token in a PromQL expression.
pub fn names_in_expr(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("hashgate_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}
