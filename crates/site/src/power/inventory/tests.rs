use super::*;

const MINIMAL: &str = r#"
    [[containers]]
    name = "c1"
    budget_kw = 100

    [[miners]]
    id = "c1-r3-07"
    container = "c1"
    address = "10.1.3.7"
    family = "antminer"
    model = "S19j Pro"
    nominal_watts = 3068
    nominal_ths = 104
    credentials = { user = "root", password = "hunter2" }
"#;

fn with_miner_line(replace: &str, by: &str) -> String {
    assert!(MINIMAL.contains(replace), "test fixture lacks {replace}");
    MINIMAL.replace(replace, by)
}

fn error_of(text: &str) -> String {
    match PowerConfig::from_toml_str(text) {
        Ok(cfg) => panic!("expected an error, got {cfg:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn minimal_config_takes_defaults() {
    let cfg = PowerConfig::from_toml_str(MINIMAL).expect("valid");
    let c = &cfg.containers[0];
    assert_eq!(c.budget_watts, 100_000.0);
    assert_eq!(c.margin_watts, 1_000.0);
    assert_eq!(c.hysteresis_watts, 3_000.0);
    assert_eq!(c.min_dwell, Duration::from_secs(600));
    assert!(c.temperature.is_none());
    let m = &cfg.miners[0];
    assert_eq!(m.container, 0);
    assert_eq!(
        m.address,
        Address::Socket("10.1.3.7:4028".parse().expect("addr"))
    );
    assert!((m.joules_per_th() - 29.5).abs() < 1e-9);
    assert!((m.standby_watts - 92.04).abs() < 1e-9);
    assert_eq!(cfg.controller, ControllerSettings::default());
}

#[test]
fn zero_nominal_watts_names_miner_and_field() {
    let text = with_miner_line("nominal_watts = 3068", "nominal_watts = 0");
    assert_eq!(
        error_of(&text),
        "miner \"c1-r3-07\": nominal_watts must be > 0"
    );
}

#[test]
fn negative_and_nan_values_are_refused() {
    let text = with_miner_line("nominal_ths = 104", "nominal_ths = -3.5");
    assert_eq!(
        error_of(&text),
        "miner \"c1-r3-07\": nominal_ths must be > 0"
    );
    let text = with_miner_line("nominal_ths = 104", "nominal_ths = nan");
    assert_eq!(
        error_of(&text),
        "miner \"c1-r3-07\": nominal_ths must be a finite number"
    );
}

#[test]
fn implausible_nameplates_are_refused() {
    let text = with_miner_line("nominal_watts = 3068", "nominal_watts = 3068000");
    assert_eq!(
        error_of(&text),
        "miner \"c1-r3-07\": nominal_watts must be <= 100000"
    );
    let text = with_miner_line("nominal_ths = 104", "nominal_ths = 1e-12");
    assert_eq!(
        error_of(&text),
        "miner \"c1-r3-07\": nominal_ths must be >= 0.000001"
    );
}

#[test]
fn budget_must_be_positive() {
    let text = MINIMAL.replace("budget_kw = 100", "budget_kw = 0");
    assert_eq!(error_of(&text), "container \"c1\": budget_kw must be > 0");
    let text = MINIMAL.replace("budget_kw = 100", "budget_kw = -5");
    assert_eq!(error_of(&text), "container \"c1\": budget_kw must be > 0");
}

#[test]
fn unknown_container_is_named() {
    let text = with_miner_line("container = \"c1\"", "container = \"c9\"");
    assert_eq!(
        error_of(&text),
        "miner \"c1-r3-07\": container \"c9\" is not defined"
    );
}

#[test]
fn duplicate_miner_and_container_are_refused() {
    let miner_block = &MINIMAL[MINIMAL.find("[[miners]]").expect("block")..];
    let twice = format!("{MINIMAL}\n{}", miner_block.replace("10.1.3.7", "10.1.3.8"));
    assert_eq!(
        error_of(&twice),
        "miner \"c1-r3-07\" is defined more than once"
    );
    let same_addr = format!("{MINIMAL}\n{}", miner_block.replace("c1-r3-07", "c1-r3-08"));
    assert_eq!(
        error_of(&same_addr),
        "miner \"c1-r3-08\": address 10.1.3.7:4028 is already used by miner \"c1-r3-07\""
    );
    let containers = MINIMAL.replace(
        "[[miners]]",
        "[[containers]]\nname = \"c1\"\nbudget_kw = 5\n[[miners]]",
    );
    assert_eq!(
        error_of(&containers),
        "container \"c1\" is defined more than once"
    );
}

#[test]
fn unknown_key_is_a_toml_error() {
    let text = with_miner_line(
        "model = \"S19j Pro\"",
        "model = \"S19j Pro\"\nnominal_kw = 3",
    );
    let e = error_of(&text);
    assert!(e.contains("nominal_kw"), "{e}");
}

#[test]
fn temperature_settings_need_a_limit() {
    let text = MINIMAL.replace("budget_kw = 100", "budget_kw = 100\ntemp_hysteresis_c = 2");
    assert_eq!(
        error_of(&text),
        "container \"c1\": temp_hysteresis_c is set but temp_limit_c is not"
    );
}

#[test]
fn margin_must_be_below_budget() {
    let text = MINIMAL.replace("budget_kw = 100", "budget_kw = 100\nmargin_kw = 100");
    assert_eq!(
        error_of(&text),
        "container \"c1\": margin_kw must be below budget_kw"
    );
}

#[test]
fn zero_durations_are_refused() {
    let text = MINIMAL.replace("budget_kw = 100", "budget_kw = 100\nwake_stagger_secs = 0");
    assert_eq!(
        error_of(&text),
        "container \"c1\": wake_stagger_secs must be > 0"
    );
    let text = format!("[controller]\nwake_ramp_secs = 0\n{MINIMAL}");
    assert_eq!(
        error_of(&text),
        "power.controller: wake_ramp_secs must be > 0"
    );
}

#[test]
fn addresses_parse_in_every_form() {
    let p = |t: &str| Address::parse(t, Some(4028));
    assert_eq!(
        p("10.0.0.1").map(|a| a.to_string()),
        Ok("10.0.0.1:4028".into())
    );
    assert_eq!(
        p("10.0.0.1:80").map(|a| a.to_string()),
        Ok("10.0.0.1:80".into())
    );
    assert_eq!(
        p("fe80::1").map(|a| a.to_string()),
        Ok("[fe80::1]:4028".into())
    );
    assert_eq!(
        p("[fe80::1]:8080").map(|a| a.to_string()),
        Ok("[fe80::1]:8080".into())
    );
    assert_eq!(
        p("miner-7.site").map(|a| a.to_string()),
        Ok("miner-7.site:4028".into())
    );
    assert!(p("miner 7").is_err());
    assert!(p("host:99999").is_err());
    assert!(p("host:0").is_err());
    assert!(p("").is_err());
    assert!(Address::parse("meter.local", None).is_err());
}

#[test]
fn password_never_appears_in_debug_output() {
    let cfg = PowerConfig::from_toml_str(MINIMAL).expect("valid");
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("root"));
}

fn with_meters(meters: &str) -> String {
    with_miner_line("budget_kw = 100\n", &format!("budget_kw = 100\n{meters}\n"))
}

#[test]
fn modbus_meters_take_a_shipped_model_or_a_map() {
    let text = with_meters(
        r#"
    [containers.meter]
    kind = "modbus"
    address = "10.0.0.5"
    unit_id = 4
    model = "schneider_pm5000"

    [containers.it_meter]
    kind = "modbus"
    address = "gw.local:1502"
    ratio = 80
    [containers.it_meter.map]
    addressing = "zero_based"
    power = { function = "holding", address = 0x016A, data_type = "i32", unit = "w" }
"#,
    );
    let cfg = PowerConfig::from_toml_str(&text).expect("valid");
    let c = &cfg.containers[0];
    let feed = c.meter.as_ref().expect("feed meter");
    assert_eq!(
        feed.address,
        Address::Socket("10.0.0.5:502".parse().expect("addr"))
    );
    let how = feed.modbus.as_ref().expect("modbus");
    assert_eq!(how.model, Some(crate::modbus::MeterModel::SchneiderPm5000));
    assert_eq!(how.map.power.address, 3059);
    assert_eq!(how.map.power.unit_id, 4);
    let it = c.it_meter.as_ref().expect("it meter");
    let how = it.modbus.as_ref().expect("modbus");
    assert_eq!((how.model, how.ratio), (None, 80.0));
    assert_eq!(how.map.power.address, 0x016A);
    assert_eq!(how.map.power.unit_id, 1, "default unit id");
    assert_eq!(how.map.phases, None);
}

#[test]
fn modbus_meter_mistakes_name_the_key() {
    let err = error_of(&with_meters(
        "[containers.meter]\nkind = \"modbus\"\naddress = \"10.0.0.5\"",
    ));
    assert!(
        err.contains("meter.model") && err.contains("exactly one"),
        "{err}"
    );
    let err = error_of(&with_meters(
        "[containers.meter]\nkind = \"modbus\"\naddress = \"10.0.0.5\"\nmodel = \"eastron_sdm630\"\nmetric = \"x\"",
    ));
    assert!(
        err.contains("meter.kind") && err.contains("HTTP keys"),
        "{err}"
    );
    let err = error_of(&with_meters(
        "[containers.meter]\naddress = \"10.0.0.5:80\"\nmodel = \"eastron_sdm630\"",
    ));
    assert!(
        err.contains("kind = \\\"modbus\\\"") || err.contains("kind = \"modbus\""),
        "{err}"
    );
    let err = error_of(&with_meters(
        "[containers.it_meter]\nkind = \"modbus\"\naddress = \"10.0.0.5\"\nmodel = \"eastron_sdm630\"\nratio = 0",
    ));
    assert!(err.contains("it_meter.ratio"), "{err}");
    let err = error_of(&with_meters(
        "[containers.it_meter]\nkind = \"modbus\"\naddress = \"10.0.0.5\"\n[containers.it_meter.map]\naddressing = \"one_based\"\npower = { function = \"input\", address = 0, data_type = \"f32\", unit = \"w\" }",
    ));
    assert!(
        err.contains("it_meter.map.power") && err.contains("zero_based"),
        "{err}"
    );
    let err = error_of(&with_meters(
        "[containers.meter]\nkind = \"modbus\"\naddress = \"10.0.0.5\"\nmodel = \"sdm999\"",
    ));
    assert!(err.contains("sdm999"), "{err}");
}
