//! `/metrics` of a running site with power gating, as `hashgate run` serves it (the global
//! recorder installed, a miner connected, the controller ticking): every family has HELP
//! and TYPE, and `promtool check metrics` accepts the text. Skipped (loudly) without
//! `promtool` unless `CI` is set; the HELP check runs regardless.
//!
//! The only test in this binary that installs the process-wide recorder.

use std::collections::BTreeSet;
use std::time::Duration;

use hashgate_site::power::api::Family;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::AsyncWriteExt;

use crate::support::metrics::{promtool_check, tool};
use crate::support::power_driver::{def, start_site_full};

const LIMIT: Duration = Duration::from_secs(10);

fn recorder() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| hashgate_site::exporter::install_recorder().expect("first recorder"))
        .clone()
}

/// Family names on `# TYPE` lines, and those on `# HELP` lines.
fn typed_and_helped(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let names = |prefix: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_owned)
            .collect::<BTreeSet<_>>()
    };
    (names("# TYPE "), names("# HELP "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_of_a_gated_site_pass_promtool() {
    let miners = [
        def("c01-r01-01", Family::Luxos, 3000.0, 100.0),
        def("c01-r01-02", Family::Braiins, 3000.0, 100.0),
    ];
    // Room for one miner: the controller puts the other to sleep.
    let head = "[controller]\nsleep_confirm_timeout_secs = 5\nwake_ramp_secs = 1\n\
                [alarms]\nno_shares_after_secs = 1\n";
    let container = "budget_kw = 4.0\nmin_dwell_secs = 1\nwake_stagger_secs = 1";
    // With a ledger, so its gauges and counter are checked too.
    let dir = std::env::temp_dir().join(format!("hashgate-metrics-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let site = start_site_full(
        head,
        container,
        &miners,
        Duration::from_millis(100),
        None,
        Some(recorder()),
        None,
        Some(&dir.join("ledger.sqlite")),
    )
    .await;
    // A miner connection that sends garbage: accepted, malformed, then disconnected.
    let mut miner = tokio::net::TcpStream::connect(site.site.miner_addr)
        .await
        .unwrap();
    miner.write_all(b"not json\n").await.unwrap();

    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let url = format!("http://{}/metrics", site.http);
    let wanted = [
        "hashgate_miner_power_state{",
        "hashgate_miner_counted_power_watts{",
        "hashgate_container_power_watts{",
        "hashgate_power_actions_total{",
        "hashgate_miner_alarm{",
        "hashgate_downstream_accepted_total",
        "hashgate_downstream_malformed_total",
        "process_open_fds",
        "hashgate_build_info{",
        "hashgate_ledger_flushes_total{",
        "hashgate_ledger_hour_energy_joules{",
        "hashgate_ledger_hour_work_hashes{",
    ];
    let deadline = std::time::Instant::now() + LIMIT;
    let ledger = site.site.ledger.clone().unwrap();
    let text = loop {
        ledger.flush().await.unwrap();
        let text = client.get(&url).send().await.unwrap().text().await.unwrap();
        if wanted.iter().all(|w| text.contains(w)) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {wanted:?} in\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(miner);
    site.stop().await;
    std::fs::remove_dir_all(&dir).ok();

    let (typed, helped) = typed_and_helped(&text);
    let missing: Vec<_> = typed.difference(&helped).collect();
    assert!(
        missing.is_empty(),
        "families without HELP: {missing:?}\n{text}"
    );
    assert!(
        !text.contains("hashgate_downstream_connections"),
        "duplicate of hashgate_miners_connected"
    );
    let asleep = text
        .lines()
        .filter(|l| l.starts_with("hashgate_miner_power_state{") && l.ends_with(" 1"))
        .count();
    assert_eq!(asleep, 2, "one state per miner is 1:\n{text}");
    // promtool is checked when the build found it; the HELP check above runs anyway.
    if cfg!(hashgate_has_promtool)
        && let Err(report) = promtool_check(&tool("promtool"), &text)
    {
        panic!("promtool check metrics:\n{report}\n{text}");
    }
}
