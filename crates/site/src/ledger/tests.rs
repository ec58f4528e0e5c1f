use std::sync::Arc;
use std::time::Duration;

use hashgate_protocol::work::ShareReject;

use super::accumulate::{ContainerReading, MinerReading, hour_of};
use super::schema::{POOL_REJECTED, REJECTED, UNDELIVERED};
use super::*;
use crate::stats::{MinerTotals, PoolReject, Undelivered};

/// 2026-12-04T10:00:00Z in Unix ms.
const H10: i64 = 1_796_378_400_000;
const MIN: i64 = 60_000;

fn place(miner: &str, container: Option<&str>, customer: Option<&str>) -> Placement {
    Placement {
        miner: Arc::from(miner),
        container: container.map(Arc::from),
        customer: customer.map(Arc::from),
    }
}

fn shares(accepted: u64, difficulty: f64) -> MinerTotals {
    MinerTotals {
        accepted,
        accepted_difficulty: difficulty,
        ..MinerTotals::default()
    }
}

fn reading(miner: &str, watts: f64, estimated: bool, phase: MinerPhase) -> MinerReading {
    MinerReading {
        place: place(miner, Some("c1"), None),
        watts: Some(watts),
        estimated,
        phase,
    }
}

fn sample(
    at_ms: i64,
    miners: Vec<MinerReading>,
    metered: Option<f64>,
    inlet: Option<f64>,
) -> PowerSample {
    PowerSample {
        at_ms,
        miners,
        containers: vec![ContainerReading {
            name: Arc::from("c1"),
            metered_watts: metered,
            it_meter_watts: None,
            aux_watts: None,
            inlet_c: inlet,
        }],
    }
}

#[test]
fn reason_columns_follow_the_counters_order() {
    let labels = |prefix: &str, ls: Vec<&str>| -> Vec<String> {
        ls.into_iter().map(|l| format!("{prefix}{l}")).collect()
    };
    assert_eq!(
        REJECTED.to_vec(),
        labels(
            "rejected_",
            ShareReject::ALL.iter().map(|r| r.label()).collect()
        )
    );
    assert_eq!(
        POOL_REJECTED.to_vec(),
        labels(
            "pool_rejected_",
            PoolReject::ALL.iter().map(|r| r.label()).collect()
        )
    );
    assert_eq!(
        UNDELIVERED.to_vec(),
        labels(
            "undelivered_",
            Undelivered::ALL.iter().map(|r| r.label()).collect()
        )
    );
}

#[test]
fn shares_are_counted_as_growth_since_the_last_flush_in_the_hour_it_ended() {
    let mut acc = Accumulator::new(Duration::from_secs(60));
    let w = || place("w1", None, None);
    acc.add_shares(H10 + 30 * MIN, [("w1".to_owned(), w(), shares(10, 80.0))]);
    // A flush exactly at 11:00 closes the 10:00 hour.
    acc.add_shares(H10 + 60 * MIN, [("w1".to_owned(), w(), shares(15, 120.0))]);
    acc.add_shares(H10 + 61 * MIN, [("w1".to_owned(), w(), shares(16, 128.0))]);
    let batch = acc.pending();
    let by_hour: Vec<(i64, u64, f64)> = batch
        .miners
        .iter()
        .map(|(h, _, r)| (*h, r.shares.accepted, r.shares.accepted_difficulty))
        .collect();
    assert_eq!(
        by_hour,
        vec![(H10 / 1000, 15, 120.0), (H10 / 1000 + 3600, 1, 8.0)]
    );
}

#[test]
fn an_unchanged_worker_writes_nothing_and_written_rows_are_not_pending() {
    let mut acc = Accumulator::new(Duration::from_secs(60));
    let w = || place("w1", None, None);
    acc.add_shares(H10 + MIN, [("w1".to_owned(), w(), shares(3, 3.0))]);
    assert_eq!(acc.pending().miners.len(), 1);
    acc.written(H10 + MIN);
    acc.add_shares(H10 + 2 * MIN, [("w1".to_owned(), w(), shares(3, 3.0))]);
    assert!(acc.pending().is_empty());
    // Growth later in the hour rewrites the hour's absolute figure, not just the growth.
    acc.add_shares(H10 + 3 * MIN, [("w1".to_owned(), w(), shares(5, 5.0))]);
    assert_eq!(acc.pending().miners[0].2.shares.accepted, 5);
}

#[test]
fn energy_is_the_trapezoid_split_at_the_hour_by_interpolation() {
    let mut acc = Accumulator::new(Duration::from_secs(300));
    let t0 = H10 + 59 * MIN;
    acc.add_power(sample(
        t0,
        vec![reading("m1", 1000.0, false, MinerPhase::Awake)],
        Some(1100.0),
        Some(30.0),
    ));
    acc.add_power(sample(
        t0 + 2 * MIN,
        vec![reading("m1", 3000.0, false, MinerPhase::Awake)],
        Some(3300.0),
        Some(32.0),
    ));
    let batch = acc.pending();
    let m: Vec<(i64, f64, f64)> = batch
        .miners
        .iter()
        .map(|(h, _, r)| (*h, r.energy_kwh.unwrap(), r.awake_min))
        .collect();
    // 10:59–11:00 goes 1000 → 2000 W: 1500 W for a minute = 0.025 kWh; 11:00–11:01 goes
    // 2000 → 3000 W: 2500 W for a minute.
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].0, H10 / 1000);
    assert!((m[0].1 - 0.025).abs() < 1e-12, "{m:?}");
    assert!((m[1].1 - 2500.0 / 60.0 / 1000.0).abs() < 1e-12, "{m:?}");
    assert!((m[0].2 - 1.0).abs() < 1e-9 && (m[1].2 - 1.0).abs() < 1e-9);
    let c: Vec<(i64, f64, f64, u64)> = batch
        .containers
        .iter()
        .map(|(h, _, r)| (*h, r.metered_kwh.unwrap(), r.inlet_c_sum, r.inlet_samples))
        .collect();
    assert!((c[0].1 - 1650.0 / 60.0 / 1000.0).abs() < 1e-12, "{c:?}");
    assert_eq!((c[0].2, c[0].3), (30.0, 1));
    assert_eq!((c[1].2, c[1].3), (32.0, 1));
}

/// One container reading with every power series given.
fn meters(at_ms: i64, feed: f64, it: Option<f64>, aux: Option<f64>) -> PowerSample {
    PowerSample {
        at_ms,
        miners: Vec::new(),
        containers: vec![ContainerReading {
            name: Arc::from("c1"),
            metered_watts: Some(feed),
            it_meter_watts: it,
            aux_watts: aux,
            inlet_c: None,
        }],
    }
}

#[test]
fn it_meter_and_fan_pump_energy_are_integrated_like_the_feed() {
    let mut acc = Accumulator::new(Duration::from_secs(300));
    let t0 = H10 + 59 * MIN;
    acc.add_power(meters(t0, 12_000.0, Some(10_000.0), Some(600.0)));
    acc.add_power(meters(
        t0 + 2 * MIN,
        14_000.0,
        Some(12_000.0),
        Some(1_400.0),
    ));
    let c: Vec<(i64, Option<f64>, Option<f64>)> = acc
        .pending()
        .containers
        .iter()
        .map(|(h, _, r)| (*h, r.it_meter_kwh, r.fan_pump_kwh))
        .collect();
    // IT 10 → 11 kW in the first minute, 11 → 12 kW in the second; fans and pump 600 →
    // 1000 W, then 1000 → 1400 W: split at 11:00 like the feed.
    let kwh = |w: f64| w / 60.0 / 1000.0;
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!((c[0].0, c[1].0), (H10 / 1000, H10 / 1000 + 3600));
    assert!((c[0].1.unwrap() - kwh(10_500.0)).abs() < 1e-12, "{c:?}");
    assert!((c[1].1.unwrap() - kwh(11_500.0)).abs() < 1e-12, "{c:?}");
    assert!((c[0].2.unwrap() - kwh(800.0)).abs() < 1e-12, "{c:?}");
    assert!((c[1].2.unwrap() - kwh(1_200.0)).abs() < 1e-12, "{c:?}");

    // A container without climate control or an IT meter keeps both empty, not zero.
    let mut bare = Accumulator::new(Duration::from_secs(300));
    bare.add_power(meters(H10, 1_000.0, None, None));
    bare.add_power(meters(H10 + MIN, 1_000.0, None, None));
    let rows = bare.pending().containers;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].2.metered_kwh.is_some());
    assert_eq!(
        (rows[0].2.it_meter_kwh, rows[0].2.fan_pump_kwh),
        (None, None)
    );
}

#[test]
fn nameplate_energy_is_flagged_and_states_fill_their_minutes() {
    let mut acc = Accumulator::new(Duration::from_secs(300));
    let asleep = MinerPhase::Asleep(SleepReason::Temperature);
    acc.add_power(sample(
        H10,
        vec![reading("m1", 50.0, true, asleep)],
        None,
        None,
    ));
    acc.add_power(sample(
        H10 + MIN,
        vec![reading("m1", 50.0, false, MinerPhase::Unreachable)],
        None,
        None,
    ));
    acc.add_power(sample(
        H10 + 3 * MIN,
        vec![reading("m1", 50.0, false, MinerPhase::Awake)],
        None,
        None,
    ));
    let batch = acc.pending();
    let r = &batch.miners[0].2;
    assert!((r.energy_kwh.unwrap() - 50.0 * 3.0 / 60.0 / 1000.0).abs() < 1e-12);
    // Only the first minute rests on an estimated end.
    assert!((r.energy_estimated_kwh.unwrap() - 50.0 / 60.0 / 1000.0).abs() < 1e-12);
    assert!((r.asleep_min[SleepReason::Temperature as usize] - 1.0).abs() < 1e-9);
    assert!((r.unreachable_min - 2.0).abs() < 1e-9);
    assert_eq!(r.awake_min, 0.0);
    assert!(
        batch.containers.is_empty(),
        "no meter, no inlet: no container row"
    );
}

#[test]
fn readings_too_far_apart_are_not_joined() {
    let mut acc = Accumulator::new(Duration::from_secs(60));
    acc.add_power(sample(
        H10,
        vec![reading("m1", 1000.0, false, MinerPhase::Awake)],
        None,
        None,
    ));
    acc.add_power(sample(
        H10 + 5 * MIN,
        vec![reading("m1", 1000.0, false, MinerPhase::Awake)],
        None,
        None,
    ));
    assert!(acc.pending().miners.is_empty());
    acc.add_power(sample(
        H10 + 6 * MIN,
        vec![reading("m1", 1000.0, false, MinerPhase::Awake)],
        None,
        None,
    ));
    let r = &acc.pending().miners[0].2;
    assert!((r.awake_min - 1.0).abs() < 1e-9);
}

#[test]
fn a_clock_step_back_restarts_from_the_new_reading() {
    let mut acc = Accumulator::new(Duration::from_secs(60));
    let on = |at| {
        sample(
            at,
            vec![reading("m1", 1000.0, false, MinerPhase::Awake)],
            None,
            None,
        )
    };
    acc.add_power(on(H10 + 10 * MIN));
    acc.add_power(on(H10 + 2 * MIN));
    acc.add_power(on(H10 + 3 * MIN));
    let r = &acc.pending().miners[0].2;
    assert!((r.awake_min - 1.0).abs() < 1e-9, "{r:?}");
}

#[test]
fn sleep_reasons_bucket_the_controller_labels() {
    let of = SleepReason::from_decision;
    assert_eq!(of("over_budget"), Some(SleepReason::Power));
    assert_eq!(of("over_temperature"), Some(SleepReason::Temperature));
    assert_eq!(of("pinned_off"), Some(SleepReason::Manual));
    assert_eq!(of("uneconomic"), Some(SleepReason::Economic));
    assert_eq!(of("headroom"), Some(SleepReason::Other));
    assert_eq!(of("sleep_not_confirmed"), None);
}

fn tmp(name: &str) -> (tempdir::Dir, std::path::PathBuf) {
    let dir = tempdir::Dir::new(name);
    let path = dir.0.join("ledger.sqlite");
    (dir, path)
}

/// A directory removed when dropped (no crate for so little).
mod tempdir {
    pub(super) struct Dir(pub(super) std::path::PathBuf);
    impl Dir {
        pub(super) fn new(name: &str) -> Dir {
            let dir = std::env::temp_dir().join(format!(
                "hashgate-ledger-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn one_batch(accepted: u64, kwh: f64, customer: Option<&str>) -> Batch {
    let mut acc = Accumulator::new(Duration::from_secs(300));
    let p = place("m1", Some("c1"), customer);
    acc.add_shares(
        H10 + MIN,
        [("w".to_owned(), p.clone(), shares(accepted, accepted as f64))],
    );
    let mut batch = acc.pending();
    batch.miners[0].2.energy_kwh = Some(kwh);
    batch
}

#[test]
fn the_container_export_carries_fan_pump_and_it_meter_energy_and_prefers_the_it_meter_for_pue() {
    let (_dir, path) = tmp("meters");
    let mut store = Store::open(&path, H10 / 1000).unwrap();
    let mut batch = one_batch(1, 9.0, None);
    let mut acc = Accumulator::new(Duration::from_secs(600));
    acc.add_power(meters(H10, 12_000.0, Some(10_000.0), Some(900.0)));
    acc.add_power(meters(H10 + 6 * MIN, 12_000.0, Some(10_000.0), Some(900.0)));
    batch.containers = acc.pending().containers;
    store.write(&batch).unwrap();
    let t = Reader::open(&path)
        .unwrap()
        .export(H10 / 1000, H10 / 1000 + 3600, GroupBy::Container)
        .unwrap();
    let close = |col: &str, want: f64| {
        let got = t.total(col).unwrap_or(f64::NAN);
        assert!((got - want).abs() < 1e-9, "{col}: {got} != {want}");
    };
    // Six minutes: a tenth of an hour at 12 kW feed, 10 kW IT meter, 900 W fans + pump.
    close("metered_kwh", 1.2);
    close("it_meter_kwh", 1.0);
    close("fan_pump_kwh", 0.09);
    // The miners' own 9 kWh is not what the IT meter saw; PUE uses the meter.
    close("it_kwh", 9.0);
    close("pue", 1.2);
}

#[test]
fn a_replayed_flush_changes_nothing_and_a_second_boot_adds_to_the_hour() {
    let (_dir, path) = tmp("replay");
    let mut first = Store::open(&path, H10 / 1000).unwrap();
    first.write(&one_batch(10, 1.0, Some("acme"))).unwrap();
    first.write(&one_batch(10, 1.0, Some("acme"))).unwrap();
    drop(first);
    let mut second = Store::open(&path, H10 / 1000 + 120).unwrap();
    assert_eq!(second.boot(), 2);
    second.write(&one_batch(4, 0.5, Some("acme"))).unwrap();
    let reader = Reader::open(&path).unwrap();
    let t = reader
        .export(H10 / 1000, H10 / 1000 + 3600, GroupBy::Miner)
        .unwrap();
    assert_eq!(t.rows.len(), 1);
    assert_eq!(t.total("accepted"), Some(14.0));
    assert_eq!(t.total("energy_kwh"), Some(1.5));
    assert_eq!(t.total("hashes"), Some(14.0 * 4_294_967_296.0));
    let by_customer = reader
        .export(H10 / 1000, H10 / 1000 + 3600, GroupBy::Customer)
        .unwrap();
    assert_eq!(by_customer.rows[0][1], Cell::Text("acme".into()));
    let by_container = reader
        .export(H10 / 1000, H10 / 1000 + 3600, GroupBy::Container)
        .unwrap();
    assert_eq!(by_container.total("it_kwh"), Some(1.5));
    assert_eq!(by_container.total("accepted"), Some(14.0));
    assert!(
        t.to_csv()
            .starts_with("hour,miner,container,customer,accepted,")
    );
    assert_eq!(t.to_json()[0]["hour"], "2026-12-04T10:00:00Z");
    // Outside the window: nothing.
    assert!(
        reader
            .export(H10 / 1000 + 3600, H10 / 1000 + 7200, GroupBy::Miner)
            .unwrap()
            .rows
            .is_empty()
    );
}

#[test]
fn prune_drops_old_hours_and_a_newer_schema_is_refused() {
    let (_dir, path) = tmp("prune");
    let mut store = Store::open(&path, H10 / 1000).unwrap();
    store.write(&one_batch(1, 1.0, None)).unwrap();
    assert_eq!(store.prune(H10 / 1000).unwrap(), 0);
    assert_eq!(store.prune(H10 / 1000 + 1).unwrap(), 1);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    conn.execute(
        "INSERT INTO schema_migrations VALUES (99, 0, 'from the future')",
        [],
    )
    .unwrap();
    drop(conn);
    assert!(matches!(
        Store::open(&path, H10 / 1000),
        Err(LedgerError::NewerSchema { found: 99, .. })
    ));
    assert!(matches!(
        Reader::open(&path),
        Err(LedgerError::NewerSchema { .. })
    ));
}

#[test]
fn times_read_as_unix_seconds_or_utc_dates() {
    assert_eq!(parse_time("1796378400").unwrap(), H10 / 1000);
    assert_eq!(parse_time("2026-12-04T10:00:00Z").unwrap(), H10 / 1000);
    assert_eq!(parse_time("2026-12-04").unwrap(), H10 / 1000 - 10 * 3600);
    assert!(matches!(
        parse_time("yesterday"),
        Err(LedgerError::BadTime(_))
    ));
    assert_eq!(hour_of(H10 + 59 * MIN), H10 / 1000);
}

#[test]
fn the_config_names_its_bad_fields() {
    let raw = |text: &str| -> LedgerConfigRaw { toml::from_str(text).unwrap() };
    assert!(
        raw("")
            .validate()
            .unwrap_err()
            .to_string()
            .contains("ledger.path")
    );
    let ok = raw("path = \"x.sqlite\"").validate().unwrap();
    assert_eq!(
        (ok.retention_days, ok.flush),
        (400, Duration::from_secs(60))
    );
    assert!(
        raw("path = \"x\"\nretention_days = 0")
            .validate()
            .unwrap_err()
            .to_string()
            .contains("ledger.retention_days")
    );
    assert!(
        raw("path = \"x\"\nflush_secs = 0.1")
            .validate()
            .unwrap_err()
            .to_string()
            .contains("ledger.flush_secs")
    );
}

/// Revenue 1 per 10¹² hashes once `open`; cost 0.1 per kWh in `c1` only.
struct FakePricer {
    open: bool,
}

impl Pricer for FakePricer {
    fn revenue(&self, hashes: f64) -> Option<f64> {
        self.open.then_some(hashes / 1e12)
    }
    fn cost(&self, container: &str, it_kwh: f64) -> Option<f64> {
        (container == "c1").then_some(it_kwh * 0.1)
    }
}

#[test]
fn each_flush_prices_what_the_hour_gained_and_holds_what_cannot_be_priced_yet() {
    let mut acc = Accumulator::new(Duration::from_secs(300));
    let c1 = || place("m1", Some("c1"), None);
    let d = 1e12 / 4_294_967_296.0; // one difficulty-sum worth 10¹² hashes
    acc.add_power(sample(
        H10,
        vec![reading("m1", 6000.0, false, MinerPhase::Awake)],
        None,
        None,
    ));
    acc.add_power(sample(
        H10 + MIN,
        vec![reading("m1", 6000.0, false, MinerPhase::Awake)],
        None,
        None,
    ));
    acc.add_shares(H10 + MIN, [("w".to_owned(), c1(), shares(1, d))]);
    // No price yet: the cost is priced, the revenue waits.
    acc.price(&FakePricer { open: false });
    acc.add_shares(H10 + 2 * MIN, [("w".to_owned(), c1(), shares(3, 3.0 * d))]);
    acc.price(&FakePricer { open: true });
    acc.price(&FakePricer { open: true });
    let batch = acc.pending();
    let c = &batch.containers[0].2;
    assert!((c.revenue.unwrap() - 3.0).abs() < 1e-9, "{c:?}");
    // 6 kW for a minute is 0.1 kWh: 0.01 at 0.1 per kWh, priced once.
    assert!((c.cost.unwrap() - 0.01).abs() < 1e-12, "{c:?}");
}

#[test]
fn climate_run_hours_survive_a_restart_and_seed_the_rotation() {
    use crate::climate::{Band, Change, Climate, ClimateSpec, SensorReadings};
    let (_dir, path) = tmp("climate-run");
    let run = |device: &str, hours: f64| DeviceRun {
        container: Arc::from("c1"),
        device: Arc::from(device),
        run_secs: hours * 3600.0,
    };
    // Boot 1 ran fan1 longest and fan2 least; a later flush of a smaller figure (a seed
    // that failed) never takes the row back.
    let mut store = Store::open(&path, H10 / 1000).unwrap();
    let batch = Batch {
        device_runs: vec![run("fan1", 10.0), run("fan2", 2.0), run("fan3", 5.0)],
        ..Batch::default()
    };
    assert!(!batch.is_empty());
    store.write(&batch).unwrap();
    store
        .write(&Batch {
            device_runs: vec![run("fan1", 1.0)],
            ..Batch::default()
        })
        .unwrap();
    drop(store);

    // Boot 2 reopens the file (the migrations are already applied) and seeds its
    // controller before the first tick.
    let store = Store::open(&path, H10 / 1000 + 3600).unwrap();
    let runs = store.device_runs().unwrap();
    assert_eq!(
        runs,
        vec![run("fan1", 10.0), run("fan2", 2.0), run("fan3", 5.0)]
    );
    let mut spec = ClimateSpec::uniform(
        3,
        1500.0,
        Band {
            low_c: 24.0,
            high_c: 29.0,
            hysteresis_c: 0.5,
        },
    );
    spec.fan_min_on = Duration::ZERO;
    spec.fan_min_off = Duration::ZERO;
    let mut climate = Climate::new([(Arc::from("c1"), &spec)]);
    for r in &runs {
        climate
            .add_prior_run(&r.container, &r.device, r.run_secs)
            .unwrap();
    }
    assert!(climate.add_prior_run("c1", "fan9", 1.0).is_err());
    let mut now = std::time::Instant::now();
    let mut tick = |inlet: f64, now: &mut std::time::Instant| {
        let readings = SensorReadings {
            inlet_c: Some(inlet),
            ..SensorReadings::default()
        };
        climate.observe_sensors("c1", *now, readings).unwrap();
        let report = climate.tick(*now).remove(0);
        *now += Duration::from_secs(60);
        report
    };
    // Every bank starts on; the first tick reports the restored hours.
    let first = tick(26.0, &mut now);
    let hours: Vec<f64> = first.fans.iter().map(|f| f.run_hours).collect();
    assert!(
        (hours[0] - 10.0).abs() < 0.01 && (hours[1] - 2.0).abs() < 0.01,
        "{hours:?}"
    );
    // Cold: the most-run banks stop first (fan1, then fan3); from zero hours the tie
    // would have stopped fan3 first, by wiring order.
    assert_eq!(tick(20.0, &mut now).changes, vec![Change::FanOff(0)]);
    assert_eq!(tick(20.0, &mut now).changes, vec![Change::FanOff(2)]);
    // Hot: the least-run stopped bank starts first (fan3 at 5 h before fan1 at 10 h).
    assert_eq!(tick(30.0, &mut now).changes, vec![Change::FanOn(2)]);
}
