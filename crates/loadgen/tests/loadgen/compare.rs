//! `loadgen compare`: the same load straight to the simulated pool and through a real
//! `hashgate run` child process. Counts only: every share accepted in both phases, the
//! pool rejects nothing the proxy forwards, the proxy exits cleanly. Nothing timed.
//!
//! Everything binds 127.0.0.1 port 0 and runs under a timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use crate::support::assert_every_share_accepted;
use crate::{hashgate, loadgen_binary};
use hashgate_loadgen::{
    CompareConfig, CompareError, CompareReport, LoadConfig, LoadReport, ProxyKind, compare,
};

async fn bounded<T, F: Future<Output = T>>(secs: u64, body: F) -> T {
    tokio::time::timeout(Duration::from_secs(secs), body)
        .await
        .expect("test exceeded its time limit")
}

fn load(connections: usize, rate: f64, duration: Duration) -> LoadConfig {
    LoadConfig {
        connections: NonZeroUsize::new(connections).expect("non-zero"),
        rate,
        duration,
        ..LoadConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

/// Every scheduled share sent and accepted, nothing lost, no error.
fn assert_clean_phase(phase: &str, r: &LoadReport, connections: usize, all: &CompareReport) {
    assert_every_share_accepted(r, connections, &format!("{phase}\n{all}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_phases_accept_every_share_and_the_proxy_exits_cleanly() {
    let config = CompareConfig {
        job_interval: Some(Duration::from_secs(1)),
        ..CompareConfig::new(load(50, 500.0, Duration::from_secs(3)), hashgate())
    };
    let report = bounded(120, compare(config))
        .await
        .expect("comparison runs");

    let direct = report.direct.as_ref().expect("direct phase ran");
    assert_clean_phase("direct", direct, 50, &report);
    assert_clean_phase("through proxy", &report.proxied, 50, &report);
    assert_eq!(direct.target, report.pool);
    assert_eq!(report.proxied.target, report.proxy_addr);
    assert_ne!(report.pool, report.proxy_addr);

    // Direct: the pool judged every share itself and agrees with the generator.
    let direct_pool = report.direct_pool.as_ref().expect("direct pool counters");
    assert_eq!(direct_pool.accepted, direct.shares.accepted, "{report}");
    assert_eq!(direct_pool.rejected, 0, "{report}");
    // Through the proxy: it forwarded only what meets the pool's difficulty (about 1 in
    // 16 of 1,500), and the pool, judging with its own code, refused none of it.
    let forwarded = report.proxied_pool.accepted;
    assert_eq!(report.proxied_pool.rejected, 0, "{report}");
    assert!(forwarded > 0, "{report}");
    assert!(forwarded < report.proxied.shares.accepted / 4, "{report}");

    // The figures the comparison exists for are present.
    assert!(report.added_latency.is_some());
    let proxy = report.proxied.target_process.as_ref().expect("proxy /proc");
    assert_eq!(proxy.pid, report.proxy_pid);
    assert!(proxy.rss_before_kib > 0);
    assert!(report.proxy_cpu.is_some());

    let exit = &report.proxy_exit;
    assert!(exit.graceful, "{report}");
    assert_eq!(exit.code, Some(0), "{report}");
    // Gone: its /proc entry (or, if the pid was reused, not our proxy) no longer answers
    // as a live hashgate.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", report.proxy_pid));
    assert!(
        comm.map_or(true, |c| c.trim() != "hashgate"),
        "proxy still running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_never_names_its_address_is_a_typed_error() {
    // `true` exits at once without printing the address line.
    let config = CompareConfig::new(load(2, 10.0, Duration::from_secs(1)), "true".into());
    let err = bounded(30, compare(config))
        .await
        .expect_err("no proxy, no comparison");
    assert!(matches!(err, CompareError::ProxyStart { .. }), "{err}");

    let missing = CompareConfig::new(
        load(2, 10.0, Duration::from_secs(1)),
        "/nonexistent/hashgate".into(),
    );
    let err = bounded(30, compare(missing)).await.expect_err("no binary");
    assert!(matches!(err, CompareError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/hashgate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_prints_a_json_report() {
    let run = tokio::process::Command::new(loadgen_binary())
        .args([
            "compare",
            "-n",
            "10",
            "--rate",
            "100",
            "--duration",
            "1",
            "--job-interval",
            "1",
            "--json",
        ])
        .kill_on_drop(true)
        .output();
    let out = bounded(120, run).await.expect("hashgate-loadgen runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    for phase in ["direct", "proxied"] {
        assert_eq!(json[phase]["shares"]["accepted"], 100, "{json}");
        assert_eq!(json[phase]["shares"]["scheduled"], 100, "{json}");
    }
    assert_eq!(json["proxy_exit"]["graceful"], true, "{json}");
    assert!(json["added_latency"]["p99_us"].is_number(), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_binary_runs_as_phase_c_with_ratios_to_the_first() {
    let config = CompareConfig {
        job_interval: Some(Duration::from_secs(1)),
        skip_direct: true,
        proxy_binary_b: Some(hashgate()),
        ..CompareConfig::new(load(20, 200.0, Duration::from_secs(2)), hashgate())
    };
    let report = bounded(120, compare(config))
        .await
        .expect("comparison runs");
    assert_clean_phase("through proxy", &report.proxied, 20, &report);
    assert_eq!(report.others.len(), 1, "{report}");
    let b = &report.others[0];
    assert_eq!(b.kind, ProxyKind::Hashgate);
    assert_clean_phase("through proxy B", &b.load, 20, &report);
    // Its own process, started after the first one stopped.
    assert_ne!(b.pid, report.proxy_pid);
    assert_eq!(b.load.target, b.addr);
    assert_eq!(b.pool.rejected, 0, "{report}");
    assert!(b.pool.accepted > 0, "{report}");
    assert!(b.exit.graceful, "{report}");
    let accepted = b.versus_hashgate.accepted_per_s.expect("both accepted");
    assert_eq!(accepted.ratio, Some(1.0), "{report}");
    assert!(b.versus_hashgate.p50_us.is_some(), "{report}");
    // No direct phase, so nothing added to it.
    assert!(b.added_latency.is_none());
    let text = report.to_string();
    assert!(text.contains("hashgate B / hashgate:"), "{text}");
}

#[test]
fn a_closed_stdout_does_not_panic_the_loadgen() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(loadgen_binary())
        .args([
            "--sim-pool",
            "-n",
            "2",
            "--rate",
            "10",
            "--duration",
            "1",
            "--sim-pool-job-interval",
            "1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hashgate-loadgen starts");
    // The reader goes away before the report is written: its write gets EPIPE.
    drop(child.stdout.take());
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr).expect("stderr readable");
    }
    let status = child.wait().expect("hashgate-loadgen ends");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("stdout closed"), "{stderr}");
}

/// A plain run takes `--duration 2s` like every duration flag, and reports progress on
/// stderr once a second while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_run_takes_unit_durations_and_prints_progress_each_second() {
    let run = tokio::process::Command::new(loadgen_binary())
        .args([
            "--sim-pool",
            "-n",
            "2",
            "--rate",
            "20",
            "--duration",
            "2500ms",
            "--sim-pool-job-interval",
            "1s",
            "--json",
        ])
        .kill_on_drop(true)
        .output();
    let out = bounded(60, run).await.expect("hashgate-loadgen runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("loadgen: ") && l.contains(" ready "))
        .collect();
    assert!(progress.len() >= 2, "a line a second over ~3 s: {stderr}");
    assert!(progress.iter().any(|l| l.contains("ready 2/2")), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(json["shares"]["duration_s"], 2.5, "{json}");
}
