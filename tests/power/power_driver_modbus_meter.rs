//! The driver reads a container's feed meter over Modbus TCP (a simulated Eastron SDM630 on
//! `tokio-modbus`'s server): its figure drives shedding, and a silent meter falls back to
//! the miners' telemetry once stale.

use std::time::{Duration, Instant};

use crate::support::power_driver::{def, start_site, wait_for};
use hashgate_lab::sim::modbus::{DeviceFault, RegisterBank, spawn};
use hashgate_site::modbus::MeterModel;
use hashgate_site::power::api::Family;

/// Fans, pumps and PDU losses the miners' own telemetry never shows, W.
const AUX_WATTS: f64 = 1500.0;

/// The IT meter's map as a site writes it for a meter hashgate ships no map for: total
/// power as a secondary-side i32 in holding register 0x016A (an Acrel DTSD1352's layout).
const IT_MAP: &str = "[containers.it_meter.map]\naddressing = \"zero_based\"\n\
     power = { function = \"holding\", address = 0x016A, data_type = \"i32\", unit = \"w\" }\n";

/// The point `IT_MAP`'s power is read from, for the simulated meter at unit 5.
fn it_power() -> hashgate_site::modbus::Point {
    use hashgate_site::modbus::{DataType, Function, Point, Unit, WordOrder};
    Point {
        function: Function::Holding,
        unit_id: 5,
        address: 0x016A,
        data_type: DataType::I32,
        word_order: WordOrder::Big,
        scale: 1.0,
        unit: Unit::W,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_meter_drives_the_load_and_a_silent_one_falls_back_to_miners() {
    let device = spawn(RegisterBank::new()).await.expect("modbus device");
    let map = MeterModel::EastronSdm630.map(3);
    let head = "[controller]\nsleep_confirm_timeout_secs = 5\nwake_ramp_secs = 1\n";
    let container = format!(
        "budget_kw = 7.0\nmin_dwell_secs = 60\nwake_stagger_secs = 1\n\
         [containers.meter]\nkind = \"modbus\"\naddress = \"{}\"\nunit_id = 3\n\
         model = \"eastron_sdm630\"\nmax_age_secs = 1",
        device.addr
    );
    let miners = vec![
        def("eff", Family::Luxos, 3000.0, 120.0),
        def("ineff", Family::Braiins, 3000.0, 90.0),
    ];
    let site = start_site(head, &container, &miners, Duration::from_millis(100), None).await;
    // The meter follows the simulated miners plus the auxiliary load, as a feed meter does.
    let states: Vec<_> = site.sims.iter().map(|(_, s)| s.state.clone()).collect();
    let bank = device.bank.clone();
    let follower = tokio::spawn(async move {
        loop {
            let now = Instant::now();
            let miners: f64 = states.iter().map(|m| m.reading(now).power_watts).sum();
            bank.set_value(&map.power, AUX_WATTS + miners);
            for (i, phase) in map.phases.iter().flatten().enumerate() {
                bank.set_value(phase, (AUX_WATTS + miners) / 3.0 + i as f64);
            }
            if let Some(energy) = &map.energy {
                bank.set_value(energy, 1234.5);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    // 6 kW of miners fit 7 kW; the meter's 7.5 kW does not.
    wait_for(
        "the metered overload shed",
        Duration::from_secs(5),
        || async { !site.hashing("ineff") },
    )
    .await;
    assert!(site.hashing("eff"));
    // A read that misses its deadline on a loaded machine leaves one tick on the miners'
    // figure ("missing"); the meter is in use again on the next good read.
    let seen = std::sync::Mutex::new(None);
    wait_for("the meter in use", Duration::from_secs(5), || async {
        let c = site.handle.status().containers[0].clone();
        let metered = c.load_source == Some("meter");
        *seen.lock().unwrap() = Some(c);
        metered
    })
    .await;
    let c = seen.into_inner().unwrap().expect("polled");
    assert_eq!(c.meter_fallback, None, "{c:?}");
    let load = c.load_watts.expect("ticked");
    assert!(
        load > 4000.0,
        "the meter's figure with the aux load, got {load}"
    );

    // The meter goes silent behind its gateway: the read times out, the reading ages out.
    device.bank.set_fault(DeviceFault::Silent);
    wait_for(
        "the stale-meter fallback",
        Duration::from_secs(10),
        || async { site.handle.status().containers[0].meter_fallback == Some("stale") },
    )
    .await;
    let c = site.handle.status().containers[0].clone();
    assert_eq!(c.load_source, Some("miners"), "{c:?}");

    // It answers again: the meter is back in use.
    device.bank.set_fault(DeviceFault::None);
    wait_for(
        "the meter in use again",
        Duration::from_secs(10),
        || async { site.handle.status().containers[0].load_source == Some("meter") },
    )
    .await;
    follower.abort();
    site.stop().await;
}

/// PUE from real Modbus reads: the feed meter (an SDM630) over the IT meter (a site's own
/// map, secondary-side watts behind a 2:1 ratio), each on its own simulated
/// gateway; a silent IT meter makes PUE unknown with the reason, never a stale number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pue_comes_from_the_feed_and_it_meters_and_is_unknown_without_one() {
    let feed = spawn(RegisterBank::new()).await.expect("feed gateway");
    let it = spawn(RegisterBank::new()).await.expect("it gateway");
    let feed_map = MeterModel::EastronSdm630.map(3);
    feed.bank.set_value(&feed_map.power, 6600.0);
    // 3000 W on the secondary side, × ratio 2 = 6000 W of IT load.
    it.bank.set_value(&it_power(), 3000.0);
    let head = "";
    let container = format!(
        "budget_kw = 20.0\n\
         [containers.meter]\nkind = \"modbus\"\naddress = \"{}\"\nunit_id = 3\nmodel = \"eastron_sdm630\"\nmax_age_secs = 1\n\
         [containers.it_meter]\nkind = \"modbus\"\naddress = \"{}\"\nunit_id = 5\nratio = 2\nmax_age_secs = 1\n{IT_MAP}",
        feed.addr, it.addr
    );
    let miners = vec![def("m1", Family::Luxos, 3000.0, 120.0)];
    let site = start_site(head, &container, &miners, Duration::from_millis(100), None).await;
    wait_for("a PUE figure", Duration::from_secs(5), || async {
        site.handle.status().containers[0].pue.pue.is_some()
    })
    .await;
    let status = site.handle.status();
    let pue = status.containers[0].pue.clone();
    let value = pue.pue.expect("known");
    assert!((value - 1.1).abs() < 1e-6, "{pue:?}");
    assert_eq!(pue.unknown_reason, None);
    assert_eq!(pue.facility_watts, Some(6600.0));
    assert_eq!(pue.it_watts, Some(6000.0));
    let json = serde_json::to_value(&pue).expect("json");
    assert_eq!(json["facility_source"], "meter");
    assert_eq!(json["it_source"], "it_meter");
    assert_eq!(json["hourly_unknown_reason"], "no_complete_hour");
    let site_pue = status.site_pue.pue.expect("site known");
    assert!((site_pue - 1.1).abs() < 1e-6, "{:?}", status.site_pue);

    it.bank.set_fault(DeviceFault::Silent);
    wait_for("PUE unknown", Duration::from_secs(10), || async {
        site.handle.status().containers[0].pue.unknown_reason == Some("it_meter_stale")
    })
    .await;
    let status = site.handle.status();
    assert_eq!(status.containers[0].pue.pue, None);
    assert_eq!(status.site_pue.unknown_reason, Some("container_unknown"));
    // The budget never used the IT meter: the feed meter still drives it.
    assert_eq!(status.containers[0].load_source, Some("meter"));
    site.stop().await;
}

/// Without meters, IT power is the miners' reported power, and facility power needs the
/// auxiliary (fans, pump) load the climate control sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pue_without_meters_is_it_plus_auxiliary() {
    let miners = vec![
        def("m1", Family::Luxos, 3000.0, 120.0),
        def("m2", Family::Braiins, 3000.0, 100.0),
    ];
    let site = start_site(
        "",
        "budget_kw = 20.0",
        &miners,
        Duration::from_millis(100),
        None,
    )
    .await;
    wait_for(
        "IT power from the miners",
        Duration::from_secs(5),
        || async { site.handle.status().containers[0].pue.it_watts.is_some() },
    )
    .await;
    let pue = site.handle.status().containers[0].pue.clone();
    assert_eq!(pue.unknown_reason, Some("no_facility_power"), "{pue:?}");
    let it_watts = pue.it_watts.expect("it");
    assert!(it_watts > 1000.0, "{pue:?}");
    site.handle
        .set_auxiliary_watts("c1", Some(600.0))
        .expect("known container");
    assert!(
        site.handle
            .set_auxiliary_watts("c1", Some(f64::NAN))
            .is_err()
    );
    assert!(site.handle.set_auxiliary_watts("nope", Some(1.0)).is_err());
    wait_for(
        "PUE with the auxiliary load",
        Duration::from_secs(5),
        || async { site.handle.status().containers[0].pue.pue.is_some() },
    )
    .await;
    let pue = site.handle.status().containers[0].pue.clone();
    let json = serde_json::to_value(&pue).expect("json");
    assert_eq!(json["facility_source"], "it_plus_auxiliary");
    assert_eq!(json["it_source"], "miners");
    let (facility, it) = (pue.facility_watts.expect("f"), pue.it_watts.expect("it"));
    assert!((facility - it - 600.0).abs() < 1e-6, "{pue:?}");
    assert!((pue.pue.expect("pue") - facility / it).abs() < 1e-9);
    site.stop().await;
}

/// The ledger takes a container's energy from its Modbus meters and its climate control:
/// feed energy from the SDM630's own reading, IT energy from the meter on the PDUs, and
/// fan and pump energy from the banks the climate control runs (never NULL beside it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_integrates_modbus_feed_and_it_meters_and_fan_energy() {
    use hashgate_site::ledger::{Cell, GroupBy, Reader};
    use hashgate_site::modbus::{DataType, Function, Point, Unit, WordOrder};
    let feed = spawn(RegisterBank::new()).await.expect("feed gateway");
    let it = spawn(RegisterBank::new()).await.expect("it gateway");
    feed.bank
        .set_value(&MeterModel::EastronSdm630.map(3).power, 6600.0);
    it.bank.set_value(&it_power(), 3000.0);
    let climate = RegisterBank::new();
    climate.add_coils(1, 0, 2);
    let inlet = Point {
        function: Function::Input,
        unit_id: 1,
        address: 0,
        data_type: DataType::I16,
        word_order: WordOrder::Big,
        scale: 0.1,
        unit: Unit::Celsius,
    };
    climate.set_value(&inlet, 26.0);
    let climate = spawn(climate).await.expect("climate device");
    let container = format!(
        "budget_kw = 20.0\n\
         [containers.meter]\nkind = \"modbus\"\naddress = \"{}\"\nunit_id = 3\nmodel = \"eastron_sdm630\"\nmax_age_secs = 5\n\
         [containers.it_meter]\nkind = \"modbus\"\naddress = \"{}\"\nunit_id = 5\nratio = 2\nmax_age_secs = 5\n{IT_MAP}\
         [containers.climate]\ndevice = \"{}\"\nband_low_c = 24\nband_high_c = 29\n\
         inlet = {{ address = 0, type = \"i16\", scale = 0.1 }}\n\
         fans = [ {{ name = \"fan1\", watts = 1100, coil = 0 }}, {{ name = \"fan2\", watts = 1100, coil = 1 }} ]\n",
        feed.addr, it.addr, climate.addr
    );
    let dir = std::env::temp_dir().join(format!("hashgate-ledger-modbus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("ledger.sqlite");
    let miners = vec![def("m1", Family::Luxos, 3000.0, 120.0)];
    let site = crate::support::power_driver::start_site_full(
        "",
        &container,
        &miners,
        Duration::from_millis(100),
        None,
        None,
        None,
        Some(&path),
    )
    .await;
    wait_for("PUE and fans", Duration::from_secs(5), || async {
        let c = &site.handle.status().containers[0];
        c.pue.pue.is_some() && c.climate.as_ref().is_some_and(|k| k.aux_watts > 0.0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    site.site
        .ledger
        .as_ref()
        .expect("ledger")
        .flush()
        .await
        .expect("flush");
    let now = hashgate_site::ledger::parse_time("now").expect("now");
    let table = Reader::open(&path)
        .expect("open")
        .export(now - 7200, now + 3600, GroupBy::Container)
        .expect("export");
    let total = |col: &str| {
        let i = table.columns.iter().position(|c| c == col).expect(col);
        assert!(
            table.rows.iter().any(|r| matches!(r[i], Cell::Real(_))),
            "{col} is NULL: {:?}",
            table.rows
        );
        table.total(col).unwrap_or(0.0)
    };
    let (metered, it_meter, fans) = (
        total("metered_kwh"),
        total("it_meter_kwh"),
        total("fan_pump_kwh"),
    );
    assert!(metered > 0.0 && it_meter > 0.0 && fans > 0.0, "{table:?}");
    // Both meters read steady figures (6.6 kW feed, 6 kW IT) over nearly the same ticks.
    let ratio = metered / it_meter;
    assert!((ratio - 1.1).abs() < 0.1, "{metered} / {it_meter}");
    site.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
