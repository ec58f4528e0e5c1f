//! Every metric name and label set `/metrics` writes, compared with the checked-in list
//! `tests/metrics/metrics_names.txt`, so a rename is a deliberate change to that file (and to the
//! dashboard, the alerts and `docs/METRICS.md`). Also checks the text with
//! `promtool check metrics`.

use crate::support::metrics::{populated, promtool_check, series_shapes, tool};

const EXPECTED: &str = include_str!("metrics_names.txt");

#[test]
fn names_and_label_sets_match_the_checked_in_list() {
    let p = populated(2_000);
    let text = p.exporter.render(p.now);
    let actual: Vec<String> = series_shapes(&text).into_iter().collect();
    let expected: Vec<&str> = EXPECTED
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        actual,
        expected,
        "metric names or labels changed; if deliberate, update tests/metrics/metrics_names.txt to:\n{}",
        actual.join("\n")
    );
}

#[test]
fn every_family_has_help_and_type_and_samples_are_grouped() {
    let p = populated(2_000);
    let text = p.exporter.render(p.now);
    let mut seen_families = std::collections::HashSet::new();
    let mut current: Option<String> = None;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap().to_string();
            assert!(
                seen_families.insert(name.clone()),
                "family {name} written twice"
            );
            current = Some(name);
        } else if !line.starts_with('#') {
            let name = &line[..line.find(['{', ' ']).unwrap()];
            let family = current
                .as_deref()
                .unwrap_or_else(|| panic!("{line} before any TYPE"));
            assert!(
                name == family
                    || [
                        format!("{family}_bucket"),
                        format!("{family}_sum"),
                        format!("{family}_count")
                    ]
                    .iter()
                    .any(|n| n == name),
                "{name} outside its family ({family})"
            );
        }
    }
    assert!(text.contains(
        "hashgate_upstream_submit_latency_seconds_bucket{pool=\"primary\",le=\"0.05\"} 1"
    ));
}

#[test]
#[cfg_attr(
    not(hashgate_has_promtool),
    ignore = "promtool not on PATH at build time: apt-get install prometheus (.ci/run does)"
)]
fn promtool_accepts_the_exposition() {
    let promtool = tool("promtool");
    let p = populated(2_000);
    let text = p.exporter.render(p.now);
    if let Err(report) = promtool_check(&promtool, &text) {
        panic!("promtool check metrics:\n{report}\n{text}");
    }
    // The check is live: a series without HELP is a finding.
    let bad = promtool_check(&promtool, "counter_without_help 1\n");
    assert!(bad.is_err_and(|report| report.contains("no help text")));
}
