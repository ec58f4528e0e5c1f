//! The ledger of a gated site: the power driver's readings become energy and minutes per
//! miner (awake, asleep by reason), container rows and customer groups.

use std::time::{Duration, Instant};

use hashgate_site::ledger::{GroupBy, Reader, parse_time};
use hashgate_site::power::api::Family;

use crate::support::power_driver::{MinerDef, start_site_full, wait_for};

const TICK: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_become_energy_and_minutes_by_reason_per_miner_container_and_customer() {
    let dir = std::env::temp_dir().join(format!("hashgate-ledger-power-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ledger.sqlite");
    let miners = [
        MinerDef {
            id: "on",
            family: Family::Braiins,
            watts: 3000.0,
            ths: 150.0,
            extra: "customer = \"acme\"",
        },
        MinerDef {
            id: "parked",
            family: Family::Luxos,
            watts: 3000.0,
            ths: 100.0,
            extra: "pin = \"keep_off\"\ncustomer = \"acme\"",
        },
        MinerDef {
            id: "shed",
            family: Family::Avalon,
            watts: 3000.0,
            ths: 60.0,
            extra: "",
        },
    ];
    // Room for one miner: "shed" (the least efficient automatic one) sleeps for power.
    let head = "[controller]\nsleep_confirm_timeout_secs = 5\nwake_ramp_secs = 1\n";
    let container = "budget_kw = 4.0\nmin_dwell_secs = 1\nwake_stagger_secs = 1";
    let site = start_site_full(
        head,
        container,
        &miners,
        TICK,
        None,
        None,
        // A tariff and a price, no curtailment: the ledger's cost comes from them.
        Some("price = 100000\ncurtail = false\noverhead = 0.2\n[[tariffs]]\nname = \"grid\"\nper_kwh = 0.1\n"),
        Some(&path),
    )
    .await;
    let from = parse_time("now").unwrap() - 3600;
    wait_for(
        "shed and parked asleep",
        Duration::from_secs(10),
        || async { !site.hashing("shed") && !site.hashing("parked") && site.hashing("on") },
    )
    .await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    site.site.ledger.as_ref().unwrap().flush().await.unwrap();
    let elapsed_min = started.elapsed().as_secs_f64() / 60.0;

    let reader = Reader::open(&path).unwrap();
    let by_miner = reader
        .export(from, from + 3 * 3600, GroupBy::Miner)
        .unwrap();
    let col = |row: &str, column: &str| -> f64 {
        let i = by_miner.columns.iter().position(|c| c == column).unwrap();
        by_miner
            .rows
            .iter()
            .filter(|r| r[1] == hashgate_site::ledger::Cell::Text(row.into()))
            .map(|r| match &r[i] {
                hashgate_site::ledger::Cell::Real(v) => *v,
                hashgate_site::ledger::Cell::Int(v) => *v as f64,
                _ => 0.0,
            })
            .sum()
    };
    // Energy over the minutes counted is an average draw near the sim's 3 kW.
    let on_min = col("on", "awake_min");
    assert!(
        on_min >= elapsed_min * 0.8,
        "on awake {on_min} of {elapsed_min} min"
    );
    let avg_w = col("on", "energy_kwh") * 1000.0 * 60.0 / on_min.max(1e-9);
    assert!(
        (2000.0..=3600.0).contains(&avg_w),
        "on drew {avg_w} W on average"
    );
    assert!(
        col("shed", "asleep_power_min") >= elapsed_min * 0.8,
        "{by_miner:?}"
    );
    assert!(
        col("parked", "asleep_manual_min") >= elapsed_min * 0.8,
        "{by_miner:?}"
    );
    // Awake only until the first ticks put them to sleep.
    assert!(col("shed", "awake_min") < col("shed", "asleep_power_min") / 2.0);
    assert!(col("parked", "awake_min") < col("parked", "asleep_manual_min") / 2.0);

    let by_container = reader
        .export(from, from + 3 * 3600, GroupBy::Container)
        .unwrap();
    let it = by_container.total("it_kwh").unwrap();
    let sum: f64 = ["on", "parked", "shed"]
        .iter()
        .map(|m| col(m, "energy_kwh"))
        .sum();
    assert!((it - sum).abs() < 1e-9, "container {it} vs miners {sum}");
    // Cost: the miners' energy at 0.1 per kWh with PUE 1 + overhead (no meter), priced
    // at each flush; revenue stays empty, for no share was proven.
    let cost = by_container.total("cost").unwrap();
    assert!(
        (cost - it * 0.1 * 1.2).abs() < 1e-9,
        "cost {cost} for {it} kWh"
    );
    let i = by_container
        .columns
        .iter()
        .position(|c| c == "revenue")
        .unwrap();
    assert!(
        by_container
            .rows
            .iter()
            .all(|r| r[i] == hashgate_site::ledger::Cell::Null)
    );
    let by_customer = reader
        .export(from, from + 3 * 3600, GroupBy::Customer)
        .unwrap();
    let acme = by_customer
        .rows
        .iter()
        .find(|r| r[1] == hashgate_site::ledger::Cell::Text("acme".into()))
        .expect("an acme row");
    assert_eq!(
        acme[2],
        hashgate_site::ledger::Cell::Int(2),
        "two acme miners"
    );
    site.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}
