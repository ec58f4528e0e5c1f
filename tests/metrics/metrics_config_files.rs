//! The shipped Grafana dashboard, alert rules and scrape config: they parse, pass promtool,
//! the alerts fire on the situations they are meant for, and every `hashgate_…` metric they
//! name is one hashgate exports (from a real render, plus the power controller's names).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::metrics::{
    ECONOMICS_METRICS, LEDGER_METRICS, POWER_METRICS, RELOAD_METRICS, UPSTREAM_RECORDED_METRICS,
    metric_names, names_in_expr, populated, tool,
};

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn exported_names() -> BTreeSet<String> {
    let p = populated(2_000);
    let mut names = metric_names(&p.exporter.render(p.now));
    names.extend(POWER_METRICS.iter().map(|s| s.to_string()));
    names.extend(UPSTREAM_RECORDED_METRICS.iter().map(|s| s.to_string()));
    names.extend(RELOAD_METRICS.iter().map(|s| s.to_string()));
    names.extend(ECONOMICS_METRICS.iter().map(|s| s.to_string()));
    names.extend(LEDGER_METRICS.iter().map(|s| s.to_string()));
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
        "hashgate_miner_power_state",
        "hashgate_miner_alarm",
        "hashgate_miner_power_info",
        "hashgate_pool_group_hashrate_ratio",
        "hashgate_pool_group_hashrate_target_ratio",
    ] {
        assert!(
            names.iter().any(|n| n == needed),
            "dashboard lacks {needed}"
        );
    }
    // Selectors for a multi-site Prometheus, used by every query.
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for var in ["site", "instance", "container"] {
        assert!(
            variables.contains(&var),
            "no ${var} variable: {variables:?}"
        );
    }
    for expr in &exprs {
        assert!(
            !expr.contains("hashgate_") || expr.contains("instance=~\"$instance\""),
            "query ignores the instance selector: {expr}"
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
    ignore = "needs promtool (Debian package prometheus); .ci/run installs it"
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

/// The alert names in `alerts.yml`, and those `alerts_test.yml` tests.
fn alert_names(text: &str, key: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.trim_start().trim_start_matches("- ").strip_prefix(key))
        .map(|name| name.trim().to_owned())
        .collect()
}

#[test]
fn every_alert_has_a_rule_test() {
    let rules = std::fs::read_to_string(repo_file("config/prometheus/alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(repo_file("config/prometheus/alerts_test.yml")).unwrap();
    let alerts = alert_names(&rules, "alert:");
    let tested = alert_names(&tests, "alertname:");
    assert!(alerts.len() >= 19, "{alerts:?}");
    let untested: Vec<_> = alerts.difference(&tested).collect();
    assert!(
        untested.is_empty(),
        "alerts without a case in config/prometheus/alerts_test.yml: {untested:?}"
    );
    let unknown: Vec<_> = tested.difference(&alerts).collect();
    assert!(
        unknown.is_empty(),
        "tests of alerts that do not exist: {unknown:?}"
    );
}

/// `promtool test rules config/prometheus/alerts_test.yml`: synthetic series for each
/// situation an alert is for, and the look-alikes it must stay quiet on (a miner asleep on
/// purpose, the planned return to the primary pool).
#[test]
#[cfg_attr(
    not(hashgate_has_promtool),
    ignore = "needs promtool (Debian package prometheus); .ci/run installs it"
)]
fn alerts_fire_on_the_situations_they_name() {
    let promtool = tool("promtool");
    let mut test = Command::new(promtool);
    test.args(["test", "rules"])
        .arg(repo_file("config/prometheus/alerts_test.yml"));
    run(test);
}
