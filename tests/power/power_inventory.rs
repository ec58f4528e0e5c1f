//! The shipped example inventory parses and validates, and embeds as `[power]`.

use std::time::Duration;

use hashgate_site::modbus::MeterModel;
use hashgate_site::power::api::Family;
use hashgate_site::power::inventory::{Address, Pin, PowerConfig, PowerConfigRaw};
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../../config/power-example.toml");

#[test]
fn example_inventory_validates_with_the_documented_figures() {
    let cfg = match PowerConfig::from_toml_str(EXAMPLE) {
        Ok(cfg) => cfg,
        Err(e) => panic!("config/power-example.toml: {e}"),
    };
    assert_eq!(cfg.containers.len(), 2);
    let c = &cfg.containers[0];
    assert_eq!(&*c.name, "c01");
    assert_eq!(c.budget_watts, 1_500_000.0);
    assert_eq!(c.margin_watts, 15_000.0);
    assert_eq!(c.hysteresis_watts, 45_000.0);
    assert_eq!(c.min_dwell, Duration::from_secs(900));
    let t = c.temperature.expect("temperature limit");
    assert_eq!((t.limit_c, t.hysteresis_c), (38.0, 2.5));
    let meter = c.meter.as_ref().expect("meter");
    assert_eq!(meter.address.to_string(), "10.1.0.10:9100");
    let climate = c.climate.as_ref().expect("climate");
    assert_eq!(climate.device.to_string(), "10.1.0.20:502");
    assert_eq!(climate.spec.fans.len(), 4);
    assert_eq!(
        (climate.spec.band.low_c, climate.spec.band.high_c),
        (24.0, 29.0)
    );
    assert_eq!(climate.pump_coil.map(|c| c.address), Some(7));
    assert!(meter.modbus.is_none(), "c01's feed meter is the HTTP one");
    let it = c.it_meter.as_ref().and_then(|m| m.modbus.as_ref());
    assert_eq!(
        it.map(|m| (m.model, m.map.power.unit_id)),
        Some((Some(MeterModel::EastronSdm630), 2))
    );
    // c02: a Schneider feed meter and an Acrel IT meter behind 400/5 A CTs (the site's own
    // map: no Acrel map is shipped), over Modbus.
    let c2 = &cfg.containers[1];
    let feed = c2.meter.as_ref().expect("c02 meter");
    assert_eq!(feed.address.to_string(), "10.2.0.10:502");
    let feed = feed.modbus.as_ref().expect("modbus");
    assert_eq!(feed.model, Some(MeterModel::SchneiderPm5000));
    assert_eq!(
        feed.map.power.address, 3059,
        "register 3060, numbered from 1"
    );
    let it = c2
        .it_meter
        .as_ref()
        .and_then(|m| m.modbus.as_ref())
        .expect("c02 it meter");
    assert_eq!((it.model, it.ratio), (None, 80.0));
    assert_eq!(
        (it.map.power.address, it.map.power.data_type),
        (0x016A, hashgate_site::modbus::DataType::I32)
    );
    assert_eq!(
        it.map.energy.map(|e| (e.address, e.scale)),
        Some((0x000A, 0.01))
    );

    let families: Vec<Family> = cfg.miners.iter().map(|m| m.family).collect();
    for f in [
        Family::Antminer,
        Family::Luxos,
        Family::Braiins,
        Family::Whatsminer,
        Family::Avalon,
    ] {
        assert!(families.contains(&f), "example lacks a {f} miner");
    }
    let braiins = cfg
        .miners
        .iter()
        .find(|m| m.family == Family::Braiins)
        .expect("braiins");
    assert_eq!(
        braiins.address,
        Address::Socket("10.1.3.11:80".parse().expect("addr"))
    );
    let pins: Vec<Option<Pin>> = cfg.miners.iter().map(|m| m.pin).collect();
    assert!(pins.contains(&Some(Pin::KeepOn)));
    assert!(pins.contains(&Some(Pin::Maintenance)));
    assert!(
        !format!("{cfg:?}").contains("change-me"),
        "passwords leak into Debug"
    );
}

#[test]
fn example_embeds_as_the_power_section_of_hashgate_toml() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Main {
        power: PowerConfigRaw,
    }
    // Prefix every table header with `power.`, as an operator pasting it would.
    let embedded: String = EXAMPLE
        .lines()
        .map(|l| {
            if let Some(rest) = l.strip_prefix("[[") {
                format!("[[power.{rest}")
            } else if let Some(rest) = l.strip_prefix('[') {
                format!("[power.{rest}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let main: Main = toml::from_str(&embedded).expect("embedded parses");
    let cfg = main.power.validate().expect("embedded validates");
    assert_eq!(cfg.miners.len(), 8);
}

proptest! {
    #[test]
    fn any_numbers_give_a_typed_answer_never_a_panic(
        budget in prop::num::f64::ANY,
        watts in prop::num::f64::ANY,
        ths in prop::num::f64::ANY,
        standby in prop::option::of(prop::num::f64::ANY),
        dwell in 0u64..10,
    ) {
        let standby = standby.map_or(String::new(), |s| format!("standby_watts = {s:?}\n"));
        let text = format!(
            "[[containers]]\nname = \"c\"\nbudget_kw = {budget:?}\nmin_dwell_secs = {dwell}\n\
             [[miners]]\nid = \"m\"\ncontainer = \"c\"\naddress = \"10.0.0.1\"\n\
             family = \"avalon\"\nmodel = \"x\"\nnominal_watts = {watts:?}\n\
             nominal_ths = {ths:?}\n{standby}"
        );
        // `{:?}` of f64 prints NaN/inf, which TOML spells nan/inf.
        let text = text.replace("NaN", "nan");
        match PowerConfig::from_toml_str(&text) {
            Ok(cfg) => {
                let m = &cfg.miners[0];
                prop_assert!(m.nominal_watts > 0.0 && m.nominal_watts.is_finite());
                prop_assert!(m.nominal_ths > 0.0 && m.joules_per_th().is_finite());
                prop_assert!(m.standby_watts >= 0.0 && m.standby_watts < m.nominal_watts);
                prop_assert!(cfg.containers[0].budget_watts > 0.0);
                prop_assert!(dwell > 0);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
