//! `hashgate demo` on a compressed script: gating holds the budget, demand response is
//! honoured, a pool outage costs no miner, a tariff peak sleeps the models that stop
//! paying their power and they wake after it, and every share is counted.

use std::time::Duration;

use hashgate_lab::demo::{self, DemoOptions, Event, EventKind};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_gates_power_and_mines_through_a_pool_outage() {
    let at = Duration::from_secs;
    let options = DemoOptions {
        duration: Some(at(22)),
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
            Event {
                at: at(12),
                kind: EventKind::TariffPeak { per_kwh: 0.10 },
            },
            Event {
                at: at(14),
                kind: EventKind::TariffPeakOver,
            },
        ],
        prometheus: None,
        ledger: Some(demo::temp_ledger_path()),
    };
    let ledger = options.ledger.clone().unwrap();
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
        output.contains("backup ok"),
        "miners were moved to the backup pool:\n{output}"
    );
    // Events fire at their time, not on the next status tick (1 s apart here); each names
    // the pool as the status lines do.
    let scheduled = [4.0, 6.0, 9.0, 10.0, 12.0, 14.0];
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
    // Two pool groups at 70/30: the split is printed as the run goes (the balancer's
    // share-proven figures) and, at the end, from the work each simulated pool accepted
    // since the balancer's first figures. Ten equal miners, some asleep at times, in a
    // short run: the balancer's last figures within 1.5 miners of the target; the pools'
    // count over a few seconds is Poisson-noisy, so it only has to show both groups
    // working.
    assert!(output.contains("split: main "), "{output}");
    assert!(
        output.contains("hashgate demo: split of the work the pools accepted from "),
        "{output}"
    );
    assert_eq!(summary.split.len(), 2, "{output}");
    assert_eq!(summary.split[0].name, "main");
    assert!(
        summary.split.iter().all(|g| g.achieved > 0.0),
        "both groups' pools accepted work: {:?}\n{output}",
        summary.split
    );
    assert_eq!(summary.balancer_split.len(), 2, "{output}");
    assert!(
        (summary.balancer_split[0].achieved - 0.7).abs() < 0.15,
        "the balancer left main at {:.3}:\n{output}",
        summary.balancer_split[0].achieved
    );
    // The ledger's file is named at the start, and what it holds for the container at the
    // end: every share the proxy accepted (the demo ran one boot; the summary counts the
    // connections still open, the ledger also those that left).
    assert!(
        output.contains(&format!("hashgate demo: ledger in {}", ledger.display())),
        "{output}"
    );
    let c01 = lines
        .iter()
        .find(|l| l.starts_with("hashgate demo: ledger c01:"))
        .unwrap_or_else(|| panic!("no ledger line for c01:\n{output}"));
    assert!(!c01.contains("miners 0.000 kWh"), "{c01}");
    // The demo prices its work and energy ([economics] in config/demo.toml).
    let priced = lines
        .iter()
        .find(|l| l.starts_with("hashgate demo: ledger c01: revenue "))
        .unwrap_or_else(|| panic!("no revenue line for c01:\n{output}"));
    assert!(
        !priced.contains("revenue -") && !priced.contains("cost -"),
        "{priced}"
    );
    let shares: f64 = lines
        .iter()
        .filter(|l| l.starts_with("hashgate demo: ledger ") && l.contains(" shares"))
        .filter_map(|l| {
            l.rsplit(", ")
                .next()?
                .strip_suffix(" shares")?
                .parse::<f64>()
                .ok()
        })
        .sum();
    assert!(
        shares >= summary.accepted as f64,
        "{shares} < {}\n{output}",
        summary.accepted
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", ledger.display()));
    }
    // The peak: the M50S (26.0 J/TH) and A1366 (26.3) lose money at 0.10 USD/kWh while the
    // S19 XP (21.3) and S21 (17.5) still pay; after it, the economic sleepers wake.
    assert!(
        output.contains("losing money now: A1366, M50S, S19j Pro"),
        "{output}"
    );
    let economic_sleeps = lines
        .iter()
        .filter(|l| l.contains("power: sleep") && l.contains("(uneconomic)"))
        .count();
    assert!(economic_sleeps >= 1, "{output}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("(uneconomic)") && (l.contains("r03-") || l.contains("r04-"))),
        "the efficient models never sleep for economics:\n{output}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("power: wake") && l.contains("(economic)")),
        "economic sleepers wake after the peak:\n{output}"
    );
    // Status, event, ledger and final lines fit 120 columns; the final line counts
    // undelivered.
    for line in lines.iter().filter(|l| {
        l.starts_with('[')
            || l.starts_with("  >>>")
            || l.starts_with("  climate")
            || l.starts_with("hashgate demo: done")
            || l.starts_with("hashgate demo: ledger")
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
        lines
            .iter()
            .rfind(|l| l.starts_with("hashgate demo: done"))
            .is_some_and(|l| l.contains("undelivered")),
        "{output}"
    );
}
