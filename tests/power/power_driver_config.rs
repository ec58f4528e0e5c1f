//! The inventory keys the driver and admin API add: `admin_token`, `[driver]`, the meter's
//! HTTP format, and a miner's Stratum `worker`.

use std::time::Duration;

use hashgate_site::power::inventory::{DriverSettings, MeterFormat, PowerConfig};

const BASE: &str = r#"
[[containers]]
name = "c1"
budget_kw = 100

[[miners]]
id = "m1"
container = "c1"
address = "10.0.0.1"
family = "luxos"
model = "S19k Pro"
nominal_watts = 2760
nominal_ths = 120
"#;

fn error_of(text: &str) -> String {
    match PowerConfig::from_toml_str(text) {
        Ok(cfg) => panic!("expected an error, got {cfg:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_without_the_new_keys() {
    let cfg = PowerConfig::from_toml_str(BASE).expect("valid");
    assert!(cfg.admin_token.is_none());
    assert_eq!(cfg.driver, DriverSettings::default());
    assert_eq!(cfg.driver.tick, Duration::from_secs(10));
    assert_eq!(cfg.miners[0].worker, None);
}

#[test]
fn admin_token_is_checked_and_never_shown() {
    let text = format!("admin_token = \"s3cret-s3cret-s3cret\"\n{BASE}");
    let cfg = PowerConfig::from_toml_str(&text).expect("valid");
    assert_eq!(
        cfg.admin_token.as_ref().map(|t| t.expose()),
        Some("s3cret-s3cret-s3cret")
    );
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert_eq!(
        error_of(&format!("admin_token = \"short\"\n{BASE}")),
        "power.admin_token must be at least 16 characters"
    );
    assert_eq!(
        error_of(&format!("admin_token = \"has a space in it!!\"\n{BASE}")),
        "power.admin_token must be printable ASCII without spaces"
    );
}

#[test]
fn driver_section_is_validated() {
    let text = format!(
        "[driver]\ntick_secs = 5\nmax_concurrent_calls = 128\nconnect_timeout_ms = 500\ncall_timeout_ms = 2000\n{BASE}"
    );
    let d = PowerConfig::from_toml_str(&text).expect("valid").driver;
    assert_eq!(d.tick, Duration::from_secs(5));
    assert_eq!(d.max_concurrent_calls.get(), 128);
    assert_eq!(d.timeouts.connect, Duration::from_millis(500));
    assert_eq!(d.timeouts.call, Duration::from_secs(2));
    for (line, message) in [
        ("tick_secs = 0", "power.driver: tick_secs must be > 0"),
        (
            "max_concurrent_calls = 0",
            "power.driver: max_concurrent_calls must be 1..=4096",
        ),
        (
            "connect_timeout_ms = 3000\ncall_timeout_ms = 1000",
            "power.driver: connect_timeout_ms must not exceed call_timeout_ms",
        ),
    ] {
        assert_eq!(error_of(&format!("[driver]\n{line}\n{BASE}")), message);
    }
    assert!(error_of(&format!("[driver]\ntick = 3\n{BASE}")).contains("tick"));
}

#[test]
fn meter_formats() {
    let with_meter = |lines: &str| {
        BASE.replace(
            "budget_kw = 100\n",
            &format!("budget_kw = 100\n[containers.meter]\naddress = \"10.0.0.9:8080\"\n{lines}\n"),
        )
    };
    let cfg = PowerConfig::from_toml_str(&with_meter("")).expect("valid");
    let m = cfg.containers[0].meter.clone().expect("meter");
    assert_eq!(m.path, "/");
    assert_eq!(
        m.format,
        MeterFormat::Json {
            pointer: String::new()
        }
    );
    assert_eq!(m.scale, 1.0);

    let cfg = PowerConfig::from_toml_str(&with_meter(
        "path = \"/metrics\"\nmetric = \"feed_active_power_kw\"\nunit = \"kw\"",
    ))
    .expect("valid");
    let m = cfg.containers[0].meter.clone().expect("meter");
    assert_eq!(m.path, "/metrics");
    assert_eq!(
        m.format,
        MeterFormat::Prometheus {
            metric: "feed_active_power_kw".into()
        }
    );
    assert_eq!(m.scale, 1000.0);

    for (lines, message) in [
        (
            "metric = \"a\"\njson_pointer = \"/b\"",
            "container \"c1\": meter.metric and meter.json_pointer exclude each other",
        ),
        (
            "json_pointer = \"power\"",
            "container \"c1\": meter.json_pointer must be empty or start with /",
        ),
        (
            "path = \"metrics\"",
            "container \"c1\": meter.path must start with / and hold no spaces",
        ),
        (
            "metric = \"feed power\"",
            "container \"c1\": meter.metric \"feed power\" is not a metric name",
        ),
    ] {
        assert_eq!(error_of(&with_meter(lines)), message);
    }
    assert!(error_of(&with_meter("unit = \"mw\"")).contains("unit"));
}

#[test]
fn miner_worker_is_kept_and_must_not_be_blank() {
    let text = BASE.replace(
        "nominal_ths = 120",
        "nominal_ths = 120\nworker = \"acct.c1r1\"",
    );
    let cfg = PowerConfig::from_toml_str(&text).expect("valid");
    assert_eq!(cfg.miners[0].worker.as_deref(), Some("acct.c1r1"));
    let text = BASE.replace("nominal_ths = 120", "nominal_ths = 120\nworker = \" \"");
    assert_eq!(error_of(&text), "miner \"m1\": worker must not be empty");
}
