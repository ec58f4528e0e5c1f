//! The shipped Grafana dashboard, alert rules and scrape config: they parse, pass promtool,
//! the alerts fire on the situations they are meant for, and every `hashgate_…` metric they
//! name is one hashgate exports (from a real render, plus the power controller's names).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::metrics::{
    POWER_METRICS, UPSTREAM_RECORDED_METRICS, metric_names, names_in_expr, populated, tool,
};

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn exported_names() -> BTreeSet<String> {
    let p = populated(2_000);
    let mut names = metric_names(&p.exporter.render(p.now));
    names.extend(POWER_METRICS.iter().map(|s| s.to_string()));
    names.extend(UPSTREAM_RECORDED_METRICS.iter().map(|s| s.to_string()));
    names
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                if key == "expr"
                    && let Some(s) = v.as_str()
                {
                    out.push(s.to_owned());
                }
                collect_exprs(v, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

fn assert_all_known(source: &str, names: Vec<String>, known: &BTreeSet<String>) {
    assert!(!names.is_empty(), "{source} queries no hashgate metric");
    let unknown: Vec<&String> = names.iter().filter(|n| !known.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "{source} queries metrics hashgate does not export: {unknown:?}\nknown: {known:?}"
    );
}

#[test]
fn dashboard_parses_and_queries_only_exported_metrics() {
    let text = std::fs::read_to_string(repo_file("config/grafana/hashgate.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    assert_eq!(dashboard["uid"], "hashgate");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    let names: Vec<String> = exprs.iter().flat_map(|e| names_in_expr(e)).collect();
    for needed in [
        "hashgate_site_hashrate_hashes_per_second",
        "hashgate_shares_total",
        "hashgate_upstream_submit_latency_seconds_bucket",
        "hashgate_upstream_state",
        "hashgate_container_power_watts",
        "hashgate_container_budget_watts",
    ] {
        assert!(
            names.iter().any(|n| n == needed),
            "dashboard lacks {needed}"
        );
    }
    assert_all_known("config/grafana/hashgate.json", names, &exported_names());
    // Panel ids must be unique or Grafana drops panels on import.
    let ids: Vec<u64> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    let unique: BTreeSet<&u64> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
}

#[test]
fn alert_rules_name_only_exported_metrics() {
    let text = std::fs::read_to_string(repo_file("config/prometheus/alerts.yml")).unwrap();
    let names = names_in_expr(&text)
        .into_iter()
        // Alert names are CamelCase and never match; label values like `_other` are not names.
        .collect();
    assert_all_known("config/prometheus/alerts.yml", names, &exported_names());
}

fn run(mut command: Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[cfg_attr(
    not(hashgate_has_promtool),
    ignore = "promtool not on PATH at build time: apt-get install prometheus (.ci/run does)"
)]
fn promtool_checks_rules_and_config() {
    let promtool = tool("promtool");
    let mut rules = Command::new(&promtool);
    rules
        .args(["check", "rules"])
        .arg(repo_file("config/prometheus/alerts.yml"));
    run(rules);
    let mut config = Command::new(&promtool);
    config
        .args(["check", "config"])
        .arg(repo_file("config/prometheus/prometheus.yml"));
    run(config);
}

/// `promtool test rules` input: synthetic series and the alerts they must (and must not)
/// raise.
const RULE_TESTS: &str = r#"
rule_files:
  - RULES
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'hashgate_upstream_state{pool="primary",state="active"}'
        values: '1 1 0 0 0 0'
      - series: 'hashgate_upstream_state{pool="primary",state="down"}'
        values: '0 0 1 1 1 1'
      - series: 'hashgate_upstream_state{pool="backup",state="active"}'
        values: '0 0 0 0 0 0'
      - series: 'hashgate_upstream_failovers_total{pool="primary"}'
        values: '0 0 1 1 1 1'
    alert_rule_test:
      - eval_time: 1m
        alertname: HashgateNoActivePool
        exp_alerts: []
      - eval_time: 5m
        alertname: HashgateNoActivePool
        exp_alerts:
          - exp_labels: { severity: critical }
            exp_annotations:
              summary: "No pool is active: miners' work is not reaching any pool"
              description: "Every configured pool is down, connecting or idle. Check the site's uplink and the pools' status pages."
      - eval_time: 5m
        alertname: HashgatePoolDown
        exp_alerts:
          - exp_labels: { severity: warning, pool: primary, state: down }
            exp_annotations:
              summary: "Pool primary is down"
              description: "hashgate keeps reconnecting with back-off; miners run on the next pool in the list."
      - eval_time: 3m
        alertname: HashgatePoolFailover
        exp_alerts:
          - exp_labels: { severity: warning, pool: primary }
            exp_annotations:
              summary: "Miners were moved off pool primary"
              description: "1 failovers in 10 minutes."
  - interval: 1m
    input_series:
      # Last share at t=0 (unix 0), then silence: 600 s later it is silent, 5 m later it fires.
      - series: 'hashgate_miner_last_share_timestamp_seconds{worker="rack1-01"}'
        values: '0x20'
      - series: 'hashgate_miner_last_share_timestamp_seconds{worker="_other"}'
        values: '0x20'
      - series: 'hashgate_blocks_found_total{worker="rack1-02"}'
        values: '0 0 1 1'
    alert_rule_test:
      - eval_time: 9m
        alertname: HashgateMinerSilent
        exp_alerts: []
      - eval_time: 16m
        alertname: HashgateMinerSilent
        exp_alerts:
          - exp_labels: { severity: warning, worker: rack1-01 }
            exp_annotations:
              summary: "Miner rack1-01 has sent no accepted share for 10 minutes"
              description: "Last accepted share 16m 0s ago. Check the miner, its network link, or whether the power controller put it to sleep (hashgate_miner_power_state)."
      - eval_time: 3m
        alertname: HashgateBlockFound
        exp_alerts:
          - exp_labels: { severity: info, worker: rack1-02 }
            exp_annotations:
              summary: "Block found by rack1-02"
              description: "A share met the network target. Check the pool's block list."
"#;

#[test]
#[cfg_attr(
    not(hashgate_has_promtool),
    ignore = "promtool not on PATH at build time: apt-get install prometheus (.ci/run does)"
)]
fn alerts_fire_on_the_situations_they_name() {
    let promtool = tool("promtool");
    let dir = std::env::temp_dir().join(format!("hashgate-rule-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("alerts_test.yml");
    let rules = repo_file("config/prometheus/alerts.yml");
    std::fs::write(
        &file,
        RULE_TESTS.replace("RULES", &rules.display().to_string()),
    )
    .unwrap();
    let mut test = Command::new(promtool);
    test.args(["test", "rules"]).arg(&file);
    let out = test.output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
