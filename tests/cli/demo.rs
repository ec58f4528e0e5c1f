//! `hashgate demo` on a compressed script: gating holds the budget, demand response is
//! honoured, a pool outage costs no miner, and every share is counted.

use std::time::Duration;

use hashgate_lab::demo::{self, DemoOptions, Event, EventKind};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_gates_power_and_mines_through_a_pool_outage() {
    let at = Duration::from_secs;
    let options = DemoOptions {
        duration: Some(at(16)),
        status_interval: Duration::from_secs(1),
        asic_hashrate: 2_000.0,
        events: vec![
            Event {
                at: at(4),
                kind: EventKind::CutBudget {
                    container: "c01".into(),
                    budget_kw: 18.0,
                },
            },
            Event {
                at: at(6),
                kind: EventKind::PoolDown(0),
            },
            Event {
                at: at(9),
                kind: EventKind::RestoreBudget {
                    container: "c01".into(),
                },
            },
            Event {
                at: at(10),
                kind: EventKind::PoolUp(0),
            },
        ],
        prometheus: None,
    };
    let mut lines = Vec::new();
    let summary = tokio::time::timeout(
        at(60),
        demo::run(options, CancellationToken::new(), |l| lines.push(l)),
    )
    .await
    .expect("the demo ends on its own")
    .expect("the demo runs");
    let output = lines.join("\n");

    assert_eq!(summary.miners, 10, "{output}");
    assert!(summary.accepted > 20, "shares flow: {summary:?}\n{output}");
    // At the pool switch a share or two for the old pool's last job can arrive after the
    // clean job: those are stale (21), and nothing else may be rejected.
    assert_eq!(summary.rejected_not_stale, 0, "{output}");
    assert!(summary.rejected <= 3, "{output}");
    // 32.2 kW of miners on 26 kW: the three S19j Pro sleep; the cut to 18 kW sends two more.
    assert!(
        summary.sleeps >= 5,
        "gating happened: {summary:?}\n{output}"
    );
    assert!(
        summary.wakes >= 1,
        "the restored budget wakes miners again: {summary:?}\n{output}"
    );
    assert!(
        summary.worst_overshoot_watts <= 0.0,
        "the budget was held: {summary:?}\n{output}"
    );
    assert!(
        output.contains("power: sleep c01-r01-01 (over_budget)"),
        "{output}"
    );
    assert!(
        output.contains("pool backup"),
        "miners were moved to the backup pool:\n{output}"
    );
    // Events fire at their time, not on the next status tick (1 s apart here); each names
    // the pool as the status lines do.
    let scheduled = [4.0, 6.0, 9.0, 10.0];
    let fired: Vec<f64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("  >>> ["))
        .filter_map(|l| l.split_once("s]"))
        .map(|(t, _)| t.trim().parse::<f64>().unwrap())
        .collect();
    assert_eq!(fired.len(), scheduled.len(), "{output}");
    for (at, want) in fired.iter().zip(scheduled) {
        assert!(
            (want..want + 0.5).contains(at),
            "event due at {want} s fired at {at} s:\n{output}"
        );
    }
    assert!(output.contains("pool primary goes down"), "{output}");
    // Status, event and final lines fit 120 columns; the final line counts undelivered.
    for line in lines.iter().filter(|l| {
        l.starts_with('[')
            || l.starts_with("  >>>")
            || l.starts_with("  climate")
            || l.starts_with("hashgate demo: done")
    }) {
        assert!(
            line.chars().count() <= 120,
            "{} chars: {line}",
            line.chars().count()
        );
    }
    // The container's air through its simulated Modbus device: fans switched by hashgate,
    // PUE from the IT meter on the same device.
    let climate: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("  climate c01"))
        .collect();
    assert!(climate.len() >= 3, "{output}");
    assert!(summary.max_fans >= 1, "{summary:?}\n{output}");
    assert!(
        climate.iter().any(|l| l.contains("| PUE 1.")),
        "PUE from the Modbus IT meter: {output}"
    );
    assert!(
        lines.last().is_some_and(|l| l.contains("undelivered")),
        "{output}"
    );
}
