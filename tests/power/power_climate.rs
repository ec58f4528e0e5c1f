//! Climate control through the real driver: sensors read and relays switched over Modbus
//! TCP against the lab's simulated device, fail-safes, overrides, and the power
//! controller's heat rule waiting for the fans.

use std::time::Duration;

use crate::support::power_driver::{GatedSite, def, start_site, wait_for};
use hashgate_lab::sim::modbus::{self, DeviceFault, RegisterBank, SimModbusDevice};
use hashgate_site::climate::Override;
use hashgate_site::modbus::{DataType, Function, Point, Unit, WordOrder};
use hashgate_site::power::api::Family;

const TICK: Duration = Duration::from_millis(100);
const LIMIT: Duration = Duration::from_secs(10);

fn point(address: u16, data_type: DataType, unit: Unit) -> Point {
    Point {
        function: Function::Input,
        unit_id: 1,
        address,
        data_type,
        word_order: WordOrder::Big,
        scale: 0.1,
        unit,
    }
}

fn inlet() -> Point {
    point(0, DataType::I16, Unit::Celsius)
}

fn humidity() -> Point {
    point(1, DataType::U16, Unit::Percent)
}

/// A device with three fan relays (coils 0-2), the pump's (coil 3), an inlet sensor and a
/// humidity sensor; a container whose miners report 27 °C themselves.
async fn climate_site(inlet_c: f64, temp_limit: &str) -> (GatedSite, SimModbusDevice) {
    climate_site_with(inlet_c, temp_limit, None).await
}

async fn climate_site_with(
    inlet_c: f64,
    temp_limit: &str,
    token: Option<&str>,
) -> (GatedSite, SimModbusDevice) {
    let bank = RegisterBank::new();
    bank.add_coils(1, 0, 4);
    bank.set_value(&inlet(), inlet_c);
    bank.set_value(&humidity(), 40.0);
    let device = modbus::spawn(bank).await.expect("bind device");
    let site = climate_site_on(&device, temp_limit, token, None).await;
    (site, device)
}

/// A site on an existing device (so a second boot finds the relays as the first left
/// them), with a ledger file when given.
async fn climate_site_on(
    device: &SimModbusDevice,
    temp_limit: &str,
    token: Option<&str>,
    ledger: Option<&std::path::Path>,
) -> GatedSite {
    let container = format!(
        "budget_kw = 20\nmin_dwell_secs = 1\nwake_stagger_secs = 1\n{temp_limit}\n\
         [containers.climate]\ndevice = \"{}\"\nband_low_c = 24\nband_high_c = 29\n\
         stage_interval_secs = 1\nfan_min_on_secs = 1\nfan_min_off_secs = 1\n\
         sensor_max_age_secs = 2\n\
         inlet = {{ address = 0, type = \"i16\", scale = 0.1 }}\n\
         humidity = {{ address = 1, type = \"u16\", scale = 0.1 }}\n\
         fans = [ {{ name = \"fan1\", watts = 1100, coil = 0 }}, \
                  {{ name = \"fan2\", watts = 1100, coil = 1 }}, \
                  {{ name = \"fan3\", watts = 1100, coil = 2 }} ]\n\
         pump = {{ watts = 750, coil = 3, on_above_c = 27, min_on_secs = 1, min_off_secs = 1 }}\n",
        device.addr
    );
    let miners = [
        def("a", Family::Luxos, 3000.0, 100.0),
        def("b", Family::Luxos, 3200.0, 100.0),
    ];
    let head = "[controller]\nsleep_confirm_timeout_secs = 5\nwake_ramp_secs = 1\n";
    match ledger {
        None => start_site(head, &container, &miners, TICK, token).await,
        Some(path) => {
            crate::support::power_driver::start_site_full(
                head,
                &container,
                &miners,
                TICK,
                token,
                None,
                None,
                Some(path),
            )
            .await
        }
    }
}

fn coils(device: &SimModbusDevice) -> Vec<bool> {
    (0..4)
        .map(|a| device.bank.bit(Function::Coil, 1, a).unwrap_or(false))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fans_and_pump_follow_the_inlet_over_modbus() {
    let (site, device) = climate_site(30.0, "").await;
    // Hot and dry: every fan (the safe start, and the inlet is above the band) and the pump.
    wait_for("all relays on", LIMIT, || async {
        coils(&device) == [true, true, true, true]
    })
    .await;
    let status = site.handle.status();
    let climate = status.containers[0].climate.clone().expect("climate block");
    assert_eq!(climate.inlet_c, Some(30.0));
    assert_eq!(climate.inlet_source, Some("sensor"));
    assert_eq!(climate.humidity_percent, Some(40.0));
    assert!(climate.cooling_exhausted);
    assert!((climate.aux_watts - 4050.0).abs() < 1e-9);
    assert_eq!(climate.alarms, vec!["over_temperature_all_fans"]);

    // Cold: banks stop one per stage interval, the pump with the last.
    device.bank.set_value(&inlet(), 20.0);
    wait_for("every relay off", LIMIT, || async {
        coils(&device) == [false, false, false, false]
    })
    .await;
    let climate = site.handle.status().containers[0]
        .climate
        .clone()
        .expect("block");
    assert_eq!(climate.fans_running, 0);
    assert!(climate.alarms.is_empty(), "{:?}", climate.alarms);

    // An operator forces fan2 on through the admin handle.
    site.handle
        .set_climate_override("c1", "fan2", Override::On)
        .expect("known bank");
    wait_for("fan2 forced on", LIMIT, || async {
        coils(&device) == [false, true, false, false]
    })
    .await;
    assert!(
        site.handle
            .set_climate_override("c1", "fan9", Override::On)
            .is_err()
    );
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_does_not_take_its_state_fails_safe() {
    let (site, device) = climate_site(20.0, "").await;
    wait_for("staged down to nothing", LIMIT, || async {
        coils(&device) == [false, false, false, false]
    })
    .await;
    // The relay module accepts writes and changes nothing (welded contacts): the next
    // switch reads back wrong.
    device.bank.set_fault(DeviceFault::IgnoreWrites);
    device.bank.set_value(&inlet(), 30.0);
    wait_for("control_lost and failing safe", LIMIT, || async {
        site.handle.status().containers[0]
            .climate
            .as_ref()
            .is_some_and(|c| c.fail_safe && c.alarms.contains(&"control_lost"))
    })
    .await;
    let climate = site.handle.status().containers[0]
        .climate
        .clone()
        .expect("block");
    assert_eq!(climate.fans_running, 3, "every fan commanded on");
    // The module works again: the fans it now really runs read back as commanded.
    device.bank.set_fault(DeviceFault::None);
    wait_for("control back", LIMIT, || async {
        site.handle.status().containers[0]
            .climate
            .as_ref()
            .is_some_and(|c| !c.alarms.contains(&"control_lost"))
    })
    .await;
    assert_eq!(coils(&device)[..3], [true, true, true]);
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_falls_back_to_the_miners_inlet_and_fails_safe() {
    // The simulated miners report a hot inlet of their own (35 °C and more at full load);
    // the container's sensor says 25 °C. temp_limit_c 26: the power controller acts on the
    // climate's inlet, so nothing is shed while the sensor answers.
    let (site, device) = climate_site(25.0, "temp_limit_c = 26\ntemp_shed_step_kw = 3").await;
    wait_for("climate ticks", LIMIT, || async {
        site.handle.status().containers[0]
            .climate
            .as_ref()
            .is_some_and(|c| c.inlet_c == Some(25.0))
    })
    .await;
    tokio::time::sleep(10 * TICK).await;
    let status = site.handle.status();
    assert_eq!(
        status.containers[0].inlet_c,
        Some(25.0),
        "the climate's inlet"
    );
    assert!(
        status.recent_decisions.is_empty(),
        "{:?}",
        status.recent_decisions
    );

    // The bus goes silent: after sensor_max_age (2 s) the miners' inlets stand in, and the
    // relays no longer answer (control lost: every fan commanded on, pump per config).
    device.bank.set_fault(DeviceFault::Silent);
    wait_for("inlet from the miners, failing safe", LIMIT, || async {
        site.handle.status().containers[0]
            .climate
            .as_ref()
            .is_some_and(|c| c.inlet_source == Some("miners") && c.fail_safe)
    })
    .await;
    let climate = site.handle.status().containers[0]
        .climate
        .clone()
        .expect("block");
    assert!(climate.inlet_c.is_some_and(|t| t > 26.0), "{climate:?}");
    assert!(climate.alarms.contains(&"control_lost"), "{climate:?}");
    assert!(climate.alarms.contains(&"humidity_lost"), "{climate:?}");
    assert_eq!(
        (climate.fans_running, climate.pump.map(|p| p.on)),
        (3, Some(true))
    );
    // Every fan on and still over the limit: now the heat rule sheds miners.
    wait_for("a miner shed for heat", LIMIT, || async {
        site.handle
            .recent_decisions()
            .iter()
            .any(|d| d.reason == "over_temperature")
    })
    .await;
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_overrides_a_fan_bank_with_the_token() {
    const TOKEN: &str = "test-token-0123456789";
    let (site, device) = climate_site_with(26.0, "", Some(TOKEN)).await;
    wait_for("the safe start: every fan on", LIMIT, || async {
        coils(&device)[..3] == [true, true, true]
    })
    .await;
    let base = format!("http://{}", site.http);
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let put = |path: &str, token: Option<&str>, body: serde_json::Value| {
        let mut req = http.put(format!("{base}{path}")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.expect("answers").status().as_u16() }
    };
    let off = serde_json::json!({"mode": "off"});
    assert_eq!(
        put("/api/v1/containers/c1/climate/fan3", None, off.clone()).await,
        401
    );
    assert_eq!(
        put(
            "/api/v1/containers/c1/climate/fan9",
            Some(TOKEN),
            off.clone()
        )
        .await,
        404
    );
    assert_eq!(
        put(
            "/api/v1/containers/c9/climate/fan1",
            Some(TOKEN),
            off.clone()
        )
        .await,
        404
    );
    let bad = serde_json::json!({"mode": "sideways"});
    assert_eq!(
        put("/api/v1/containers/c1/climate/fan1", Some(TOKEN), bad).await,
        400
    );
    assert_eq!(
        put("/api/v1/containers/c1/climate/fan3", Some(TOKEN), off).await,
        200
    );
    wait_for("fan3 forced off", LIMIT, || async { !coils(&device)[2] }).await;
    // The relay is switched inside the tick and the view is published at its end, so a
    // read right after the coil moved may still show the tick before.
    let fan3 = || async {
        let view: serde_json::Value = http
            .get(format!("{base}/api/v1/power"))
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("json");
        view["containers"][0]["climate"]["fans"][2].clone()
    };
    wait_for("the view to show fan3 forced off", LIMIT, || async {
        fan3().await["mode"] == "off"
    })
    .await;
    let fan3 = fan3().await;
    assert_eq!(
        (
            fan3["name"].as_str(),
            fan3["mode"].as_str(),
            fan3["on"].as_bool()
        ),
        (Some("fan3"), Some("off"), Some(false)),
        "{fan3}"
    );
    site.stop().await;
}

/// Fan run hours survive a restart through the ledger: the second boot's controller is
/// seeded with the first boot's hours, so its first cold tick stops the bank that ran
/// longest (from zero every bank would tie, and the tie stops the last bank in wiring
/// order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_run_hours_survive_a_restart_through_the_ledger() {
    let dir = std::env::temp_dir().join(format!("hashgate-climate-ledger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("ledger.sqlite");
    let bank = RegisterBank::new();
    bank.add_coils(1, 0, 4);
    bank.set_value(&inlet(), 26.0);
    bank.set_value(&humidity(), 40.0);
    let device = modbus::spawn(bank).await.expect("bind device");

    // Boot 1: only fan1 runs (the others forced off) for about two seconds.
    let site = climate_site_on(&device, "", None, Some(&path)).await;
    for fan in ["fan2", "fan3"] {
        site.handle
            .set_climate_override("c1", fan, Override::Off)
            .expect("override");
    }
    wait_for("fan1 alone", LIMIT, || async {
        coils(&device)[..3] == [true, false, false]
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    site.stop().await;
    let runs = hashgate_site::ledger::Reader::open(&path)
        .expect("open ledger")
        .device_runs()
        .expect("device runs");
    let recorded = |device: &str| -> f64 {
        runs.iter()
            .find(|r| &*r.container == "c1" && &*r.device == device)
            .unwrap_or_else(|| panic!("{device} not recorded: {runs:?}"))
            .run_secs
    };
    let (fan1, fan2) = (recorded("fan1"), recorded("fan2"));
    assert!(
        fan1 >= 1.5 && fan2 < fan1 - 1.0,
        "fan1 {fan1} s, fan2 {fan2} s"
    );

    // Boot 2, same ledger, cold: every bank starts on, and the first step down stops fan1.
    device.bank.set_value(&inlet(), 20.0);
    let site = climate_site_on(&device, "", None, Some(&path)).await;
    wait_for("one bank stopped", LIMIT, || async {
        site.handle.status().containers[0]
            .climate
            .as_ref()
            .is_some_and(|k| k.fans_running == 2)
    })
    .await;
    let status = site.handle.status();
    let k = status.containers[0].climate.as_ref().expect("climate");
    let on: Vec<bool> = k.fans.iter().map(|f| f.on).collect();
    assert_eq!(on, [false, true, true], "{:?}", k.fans);
    assert!(
        k.fans[0].run_hours * 3600.0 >= fan1,
        "fan1 restarted from zero: {:?}",
        k.fans
    );
    site.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
