//! The process-wide recorder as `hashgate run` installs it: histograms come out as true
//! Prometheus histograms with hashgate's buckets and descriptions, and a second install is
//! refused with an error rather than a panic. Its own test binary, since the recorder is
//! global.

// The workspace lints hold library code; a test or bench crate exports nothing and
// unwraps by design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::time::Instant;

use hashgate_site::exporter::{Exporter, SUBMIT_LATENCY, install_recorder};
use hashgate_site::stats::Registry;

#[test]
fn installed_recorder_renders_latency_as_a_histogram() {
    let handle = install_recorder().expect("first install");
    metrics::histogram!(SUBMIT_LATENCY, "pool" => "main").record(0.03);
    metrics::histogram!(SUBMIT_LATENCY, "pool" => "main").record(3.0);
    assert!(
        install_recorder().is_err(),
        "a second global recorder is refused"
    );
    let exporter = Exporter::new(Registry::new(), 10).with_prometheus(handle);
    let text = exporter.render(Instant::now());
    for line in [
        "# TYPE hashgate_upstream_submit_latency_seconds histogram",
        "hashgate_upstream_submit_latency_seconds_bucket{pool=\"main\",le=\"0.05\"} 1",
        "hashgate_upstream_submit_latency_seconds_bucket{pool=\"main\",le=\"5\"} 2",
        "hashgate_upstream_submit_latency_seconds_count{pool=\"main\"} 2",
        "hashgate_miners_connected 0",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(text.contains("# HELP hashgate_upstream_submit_latency_seconds Round trip"));
}
