//! Interop: hashgate's Modbus client and shipped meter maps against pymodbus, a Modbus
//! stack written by others (issue #13).
//!
//! `tools/modbus/serve.py` serves, through pymodbus' own server and datastore, the values
//! a real Eastron SDM630, Schneider PM5300 and Carlo Gavazzi EM21 would hold, placed from
//! each maker's register numbers and numbering as written below (not from hashgate's
//! maps); an integer meter in
//! the layout of an Acrel DTSD1352 (no Acrel map is shipped, so a site writes it as its own
//! map, as `config/power-example.toml` does); a word-swapped custom point and an 8-relay
//! coil module. hashgate must read the right watts from each map and switch and read back
//! the right coils.
//!
//! Ignored by `cargo test` (it needs Python with pymodbus). `.ci/run` installs pymodbus in
//! a venv and runs it:
//!
//! ```sh
//! python3 -m venv target/venvs/pymodbus && target/venvs/pymodbus/bin/pip install pymodbus
//! HASHGATE_PYMODBUS=target/venvs/pymodbus/bin/python \
//!   cargo test --test interop_modbus -- --ignored --nocapture
//! ```

#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hashgate_site::modbus::{
    ClientSettings, DataType, Function, MeterMapRaw, MeterModel, ModbusClient, ModbusError,
    read_meter,
};
use hashgate_site::power::inventory::Address;

/// The Python interpreter that has pymodbus.
const PYMODBUS_VAR: &str = "HASHGATE_PYMODBUS";

/// The pymodbus server process; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// The register values, as the makers' tables place them.
fn spec(port: u16) -> serde_json::Value {
    let p = |table: &str, register: u32, numbering: &str, kind: &str, order: &str, value: f64| {
        serde_json::json!({
            "table": table, "register": register, "numbering": numbering,
            "type": kind, "order": order, "value": value
        })
    };
    serde_json::json!({
        "port": port,
        "devices": [
            // Eastron SDM630: input registers, hex addresses from 0 (30053 = 0x0034).
            {"unit": 1, "points": [
                p("input", 0x0034, "zero_based", "f32", "big", 7250.5),
                p("input", 0x000C, "zero_based", "f32", "big", 2400.25),
                p("input", 0x000E, "zero_based", "f32", "big", 2425.0),
                p("input", 0x0010, "zero_based", "f32", "big", 2425.25),
                p("input", 0x0048, "zero_based", "f32", "big", 1234.5),
            ]},
            // Schneider PM5000: holding registers numbered from 1, kW and kWh.
            {"unit": 2, "points": [
                p("holding", 3060, "one_based", "f32", "big", 12.5),
                p("holding", 3054, "one_based", "f32", "big", 4.0),
                p("holding", 3056, "one_based", "f32", "big", 4.25),
                p("holding", 3058, "one_based", "f32", "big", 4.25),
                p("holding", 2700, "one_based", "f32", "big", 98765.5),
            ]},
            // Carlo Gavazzi EM21: input registers, hex from 0 (300041 = 0x0028), i32 low word
            // first, W × 10 and kWh × 10; an exporting phase is negative.
            {"unit": 6, "points": [
                p("input", 0x0028, "zero_based", "i32", "little", 1_234_567.0),
                p("input", 0x0012, "zero_based", "i32", "little", 415_000.0),
                p("input", 0x0014, "zero_based", "i32", "little", 821_072.0),
                p("input", 0x0016, "zero_based", "i32", "little", -1505.0),
                p("input", 0x0034, "zero_based", "i32", "little", 987_654.0),
            ]},
            // An Acrel DTSD1352's layout: holding, hex from 0, secondary-side W (i32) and
            // 0.01 kWh (u32).
            {"unit": 3, "points": [
                p("holding", 0x016A, "zero_based", "i32", "big", 4321.0),
                p("holding", 0x0164, "zero_based", "i32", "big", 1440.0),
                p("holding", 0x0166, "zero_based", "i32", "big", 1441.0),
                p("holding", 0x0168, "zero_based", "i32", "big", 1440.0),
                p("holding", 0x000A, "zero_based", "u32", "big", 123_456.0),
            ]},
            // A meter with a site's own map: word-swapped u32 watts (0x0001_0003 = 65539).
            {"unit": 4, "points": [
                p("holding", 100, "zero_based", "u32", "little", 65539.0),
            ]},
            // An 8-relay module.
            {"unit": 9, "coils": {"first": 0, "count": 8}},
            // Climate sensors as common RS-485 transmitters hold them: tenths of a degree in
            // a signed register (a frosty -5.3 °C outdoors), tenths of a percent unsigned.
            {"unit": 5, "points": [
                p("input", 1, "zero_based", "i16", "big", 283.0),
                p("input", 2, "zero_based", "u16", "big", 412.0),
                p("input", 3, "zero_based", "i16", "big", -53.0),
            ]},
        ]
    })
}

/// The IT meter's map in `config/power-example.toml`.
const ACREL_MAP: &str = r#"
addressing = "zero_based"
power = { function = "holding", address = 0x016A, data_type = "i32", unit = "w" }
phases = [
  { function = "holding", address = 0x0164, data_type = "i32", unit = "w" },
  { function = "holding", address = 0x0166, data_type = "i32", unit = "w" },
  { function = "holding", address = 0x0168, data_type = "i32", unit = "w" },
]
energy = { function = "holding", address = 0x000A, data_type = "u32", scale = 0.01, unit = "kwh" }
"#;

fn start() -> Option<Server> {
    let Ok(python) = std::env::var(PYMODBUS_VAR) else {
        eprintln!("{PYMODBUS_VAR} not set: skipping (see the module docs)");
        return None;
    };
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = std::path::Path::new(root).join("target/tmp/interop_modbus");
    std::fs::create_dir_all(&dir).unwrap();
    // A port that was free a moment ago; pymodbus cannot report the one it bound.
    let port = free_port();
    let spec_path = dir.join(format!("spec-{port}.json"));
    std::fs::write(&spec_path, spec(port).to_string()).unwrap();
    let mut child = Command::new(&python)
        .arg(std::path::Path::new(root).join("tools/modbus/serve.py"))
        .arg(&spec_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{PYMODBUS_VAR}={python}: cannot start: {e}"));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("READY") {
                let _ = tx.send(());
            }
        }
    });
    let server = Server {
        child,
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
    };
    rx.recv_timeout(Duration::from_secs(20))
        .expect("pymodbus server did not say READY within 20 s");
    Some(server)
}

fn client(addr: SocketAddr) -> ModbusClient {
    ModbusClient::new(
        Address::Socket(addr),
        ClientSettings {
            connect_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(2),
            attempts: 3,
            retry_delay: Duration::from_millis(200),
        },
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[tokio::test]
#[ignore = "needs Python with pymodbus: set HASHGATE_PYMODBUS (run by .ci/run)"]
async fn shipped_meter_maps_read_the_right_watts_from_pymodbus() {
    let Some(server) = start() else { return };
    let mut c = client(server.addr);

    let sdm = read_meter(&mut c, &MeterModel::EastronSdm630.map(1), 1.0)
        .await
        .unwrap();
    assert_eq!(sdm.watts, 7250.5);
    assert_eq!(sdm.phase_watts, Some([2400.25, 2425.0, 2425.25]));
    assert_eq!(sdm.energy_wh, Some(1_234_500.0));

    let pm = read_meter(&mut c, &MeterModel::SchneiderPm5000.map(2), 1.0)
        .await
        .unwrap();
    assert_eq!(pm.watts, 12_500.0, "register 3060 (1-based) in kW");
    assert_eq!(pm.phase_watts, Some([4000.0, 4250.0, 4250.0]));
    assert_eq!(pm.energy_wh, Some(98_765_500.0));

    let em = read_meter(&mut c, &MeterModel::GavazziEm21.map(6), 1.0)
        .await
        .unwrap();
    assert!(close(em.watts, 123_456.7), "{em:?}");
    let phases = em.phase_watts.unwrap();
    for (got, want) in phases.iter().zip([41_500.0, 82_107.2, -150.5]) {
        assert!(close(*got, want), "{phases:?}");
    }
    assert!(close(em.energy_wh.unwrap(), 98_765_400.0), "{em:?}");

    // Secondary-side figures behind a 400/5 A CT: ratio 80, through the site's own map as
    // config/power-example.toml writes it.
    let acrel_map: MeterMapRaw = toml::from_str(ACREL_MAP).unwrap();
    let acrel = read_meter(&mut c, &acrel_map.validate(3).unwrap(), 80.0)
        .await
        .unwrap();
    assert_eq!(acrel.watts, 4321.0 * 80.0);
    assert_eq!(
        acrel.phase_watts,
        Some([1440.0 * 80.0, 1441.0 * 80.0, 1440.0 * 80.0])
    );
    let wh = acrel.energy_wh.unwrap();
    assert!(close(wh, 1234.56 * 1000.0 * 80.0), "{wh}");

    let custom: MeterMapRaw = toml::from_str(
        r#"
        addressing = "zero_based"
        power = { function = "holding", address = 100, data_type = "u32", word_order = "little", unit = "w" }
        "#,
    )
    .unwrap();
    let custom = read_meter(&mut c, &custom.validate(4).unwrap(), 1.0)
        .await
        .unwrap();
    assert_eq!(custom.watts, 65539.0);

    // Reading the printed number as a wire address (the off-by-one the addressing field
    // exists for) does not give the same figure.
    let words = c.read_words(Function::Holding, 2, 3060, 2).await;
    assert!(
        !matches!(&words, Ok(w) if hashgate_site::modbus::decode(w, DataType::F32, Default::default()) == Ok(12.5)),
        "{words:?}"
    );
    println!(
        "pymodbus interop: SDM630 {sdm:?}; PM5000 {pm:?}; EM21 {em:?}; Acrel layout {acrel:?}"
    );
}

#[tokio::test]
#[ignore = "needs Python with pymodbus: set HASHGATE_PYMODBUS (run by .ci/run)"]
async fn relay_coils_switch_and_read_back_on_pymodbus() {
    let Some(server) = start() else { return };
    let mut c = client(server.addr);
    assert_eq!(
        c.read_bits(Function::Coil, 9, 0, 8).await.unwrap(),
        vec![false; 8]
    );
    c.write_coil(9, 2, true).await.unwrap();
    c.write_coils(9, 4, &[true, false, true]).await.unwrap();
    assert_eq!(
        c.read_bits(Function::Coil, 9, 0, 8).await.unwrap(),
        vec![false, false, true, false, true, false, true, false]
    );
    c.write_coil(9, 2, false).await.unwrap();
    assert_eq!(
        c.read_bits(Function::Coil, 9, 2, 1).await.unwrap(),
        vec![false]
    );
    // A relay the module does not have: pymodbus answers "illegal data address".
    let err = c.write_coil(9, 20, true).await.unwrap_err();
    assert!(
        matches!(err, ModbusError::Exception { code: 0x02, .. }),
        "{err}"
    );
    // A unit id nobody answers to on this server.
    let err = c.read_bits(Function::Coil, 42, 0, 1).await.unwrap_err();
    println!("pymodbus interop: unknown unit id gives {err}");
}

/// A `[power.containers.climate]` section as a site writes it, validated by hashgate: its
/// sensor points read from pymodbus' registers and its relay coils switched on pymodbus'
/// coil table, at the addresses and unit ids the config names.
#[tokio::test]
#[ignore = "needs Python with pymodbus: set HASHGATE_PYMODBUS (run by .ci/run)"]
async fn climate_sensors_and_relays_from_the_config_on_pymodbus() {
    let Some(server) = start() else { return };
    let text = format!(
        "[[containers]]\nname = \"c1\"\nbudget_kw = 100\n[containers.climate]\n\
         device = \"{}\"\nunit_id = 9\nband_low_c = 24\nband_high_c = 29\n\
         inlet = {{ unit_id = 5, address = 1, type = \"i16\", scale = 0.1 }}\n\
         humidity = {{ unit_id = 5, address = 2, type = \"u16\", scale = 0.1 }}\n\
         outdoor = {{ unit_id = 5, address = 3, type = \"i16\", scale = 0.1 }}\n\
         fans = [ {{ name = \"f1\", watts = 1100, coil = 0 }}, {{ name = \"f2\", watts = 1100, coil = 1 }}, \
                  {{ name = \"f3\", watts = 1100, coil = 2 }} ]\n\
         pump = {{ watts = 750, coil = 7, on_above_c = 27 }}\n",
        server.addr
    );
    let cfg = hashgate_site::power::inventory::PowerConfig::from_toml_str(&text).unwrap();
    let setup = cfg.containers[0].climate.clone().unwrap();
    let mut c = client(server.addr);
    let read = async |c: &mut ModbusClient, p: Option<hashgate_site::modbus::Point>| {
        c.read_point(&p.unwrap()).await.unwrap()
    };
    assert!(close(read(&mut c, setup.sensors.inlet).await, 28.3));
    assert!(close(read(&mut c, setup.sensors.humidity).await, 41.2));
    assert!(close(read(&mut c, setup.sensors.outdoor).await, -5.3));
    // Fans 1 and 3 and the pump on, as the driver writes them (coils on the device's unit).
    for (coil, on) in setup
        .fan_coils
        .iter()
        .zip([true, false, true])
        .chain(setup.pump_coil.iter().zip([true]))
    {
        c.write_coil(coil.unit_id, coil.address, on).await.unwrap();
    }
    assert_eq!(
        c.read_bits(Function::Coil, 9, 0, 8).await.unwrap(),
        vec![true, false, true, false, false, false, false, true]
    );
    println!("pymodbus interop: climate sensors and relays as configured: ok");
}

/// PUE from real Modbus reads: a site whose container has its feed meter (the PM5000 on
/// unit 2, 12.5 kW) and its IT meter (the Acrel layout on unit 3 through the site's own map,
/// 4321 W secondary behind a 2:1 ratio) served by pymodbus reports facility over IT in `/api/v1/power`, with both
/// inputs named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python with pymodbus: set HASHGATE_PYMODBUS (run by .ci/run)"]
async fn a_site_reports_pue_from_feed_and_it_meters_on_pymodbus() {
    use support::power_driver::{def, start_site, wait_for};
    let Some(server) = start() else { return };
    let container = format!(
        "budget_kw = 30.0\n\
         [containers.meter]\nkind = \"modbus\"\naddress = \"{0}\"\nunit_id = 2\nmodel = \"schneider_pm5000\"\nmax_age_secs = 5\n\
         [containers.it_meter]\nkind = \"modbus\"\naddress = \"{0}\"\nunit_id = 3\nratio = 2\nmax_age_secs = 5\n\
         [containers.it_meter.map]\n{1}",
        server.addr, ACREL_MAP
    );
    let miners = vec![def(
        "m1",
        hashgate_site::power::api::Family::Luxos,
        3000.0,
        120.0,
    )];
    let site = start_site("", &container, &miners, Duration::from_millis(200), None).await;
    wait_for("a PUE figure", Duration::from_secs(20), || async {
        site.handle.status().containers[0].pue.pue.is_some()
    })
    .await;
    let view: serde_json::Value = reqwest::get(format!("http://{}/api/v1/power", site.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pue = &view["containers"][0]["pue"];
    let (facility, it) = (12_500.0, 4321.0 * 2.0);
    assert_eq!(pue["facility_watts"].as_f64(), Some(facility), "{pue}");
    assert_eq!(pue["it_watts"].as_f64(), Some(it), "{pue}");
    assert_eq!(pue["facility_source"], "meter", "{pue}");
    assert_eq!(pue["it_source"], "it_meter", "{pue}");
    let figure = pue["pue"].as_f64().unwrap();
    assert!(
        close(figure, facility / it),
        "{figure} != {}",
        facility / it
    );
    println!("pymodbus interop: PUE {figure} = {facility} W feed / {it} W IT, from /api/v1/power");
    site.stop().await;
}
