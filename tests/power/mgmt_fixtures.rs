//! Telemetry parsers against real captured API replies (tests/fixtures/miner-api), and the
//! 4028 reply parser against every fixture file, clean and with device framing quirks added.

use std::path::PathBuf;

use hashgate_site::power::api::cgminer::{check_status, parse_reply};
use hashgate_site::power::api::{MinerState, antminer, avalon, braiins, luxos, whatsminer};
use serde_json::Value;

fn fixtures() -> PathBuf {
    crate::support::fixtures::fixtures_dir().join("miner-api")
}

fn load(rel: &str) -> Value {
    let path = fixtures().join(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_reply(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn all_fixture_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![fixtures()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_fixture_parses_clean_and_with_device_quirks() {
    let files = all_fixture_files();
    assert!(files.len() >= 100, "fixtures missing: {}", files.len());
    for path in files {
        let raw = std::fs::read(&path).unwrap();
        let clean = parse_reply(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let expected: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(clean, expected, "{}", path.display());

        // What a device adds: a NUL after the JSON, and trailing commas before closers.
        let text = String::from_utf8(raw.clone()).unwrap();
        let mangled = text.replace("\n  }", ",\n  }").replace("\n  ]", ",\n  ]") + "\0";
        let quirky = parse_reply(mangled.as_bytes())
            .unwrap_or_else(|e| panic!("{} mangled: {e}", path.display()));
        assert_eq!(quirky, expected, "{} mangled", path.display());
    }
}

#[test]
fn antminer_stock_fixture() {
    let summary = load("antminer/v2020/summary.json");
    let stats = load("antminer/v2020/stats.json");
    check_status(&summary).unwrap();
    check_status(&stats).unwrap();
    let t = antminer::parse_telemetry(&summary, &stats).unwrap();
    assert!((t.hashrate_ths.unwrap() - 110.56689).abs() < 1e-6);
    assert_eq!(t.board_temps_c, vec![78.0, 71.0, 69.0]);
    assert_eq!(t.fan_rpm, vec![6000, 5880, 5040, 5040]);
    assert_eq!(t.power_watts, None);
    assert_eq!(t.state, MinerState::Mining);
}

#[test]
fn antminer_bmminer_section_quirk() {
    // bmminer writes `}{` between the STATS entries and ends with a NUL.
    let raw = std::fs::read_to_string(fixtures().join("antminer/v2020/stats.json")).unwrap();
    let joined = raw.replacen("\n    },\n    {", "\n    }{", 1) + "\0";
    assert_ne!(joined, raw);
    let stats = parse_reply(joined.as_bytes()).unwrap();
    assert_eq!(stats, load("antminer/v2020/stats.json"));
}

#[test]
fn luxos_fixture() {
    let t = luxos::parse_telemetry(
        &load("luxminer/v1/summary.json"),
        &load("luxminer/v1/power.json"),
        &load("luxminer/v1/temps.json"),
        &load("luxminer/v1/fans.json"),
        &load("luxminer/v1/config.json"),
    )
    .unwrap();
    assert_eq!(t.power_watts, Some(1051.0));
    assert!((t.hashrate_ths.unwrap() - 59.75606).abs() < 1e-6);
    assert_eq!(t.board_temps_c, vec![47.0, 47.0, 47.0]);
    assert_eq!(t.inlet_temp_c, Some(33.0));
    assert_eq!(t.fan_rpm, vec![1920, 1920, 2340, 2340]);
    assert_eq!(t.state, MinerState::Mining);
}

#[test]
fn luxos_profile_choice_from_fixture() {
    let profiles = load("luxminer/v1/profiles.json");
    assert_eq!(luxos::pick_profile(&profiles, 1000).unwrap(), "240MHz");
    assert_eq!(luxos::pick_profile(&profiles, 1188).unwrap(), "290MHz");
    assert!(luxos::pick_profile(&profiles, 100).is_err());
}

#[test]
fn braiins_rest_fixtures() {
    for version in ["v25_07", "v25_11"] {
        let at = |f: &str| load(&format!("braiins/{version}/{f}"));
        let t = braiins::parse_telemetry(
            &at("miner_stats.json"),
            &at("miner_hw_hashboards.json"),
            &at("cooling_state.json"),
            &at("miner_details.json"),
        )
        .unwrap();
        assert!(t.power_watts.unwrap() > 2000.0, "{version}");
        assert!(t.hashrate_ths.unwrap() > 100.0, "{version}");
        assert_eq!(t.board_temps_c.len(), 3, "{version}");
        assert_eq!(t.fan_rpm.len(), 4, "{version}");
        assert!(t.inlet_temp_c.unwrap() >= 30.0, "{version}");
        assert_eq!(t.state, MinerState::Mining, "{version}");
    }
    let t = braiins::parse_telemetry(
        &load("braiins/v25_07/miner_stats.json"),
        &load("braiins/v25_07/miner_hw_hashboards.json"),
        &load("braiins/v25_07/cooling_state.json"),
        &load("braiins/v25_07/miner_details.json"),
    )
    .unwrap();
    assert_eq!(t.power_watts, Some(3137.0));
    assert_eq!(t.board_temps_c, vec![70.5, 67.0, 69.0]);
    assert_eq!(t.inlet_temp_c, Some(40.0));
}

#[test]
fn whatsminer_fixtures_v1_and_v2() {
    let t = whatsminer::parse_telemetry(
        &load("whatsminer/v2/summary.json"),
        &load("whatsminer/v2/devs.json"),
        &load("whatsminer/v2/status.json"),
    )
    .unwrap();
    assert_eq!(t.power_watts, Some(3200.0));
    assert_eq!(t.inlet_temp_c, Some(28.5));
    assert!((t.hashrate_ths.unwrap() - 124.5).abs() < 1e-9);
    assert_eq!(t.board_temps_c, vec![80.0, 81.0, 81.0]);
    assert_eq!(t.fan_rpm, vec![5400, 5280]);
    assert_eq!(t.state, MinerState::Mining);
    // STATUS is a string in btminer's own replies.
    check_status(&load("whatsminer/v2/status.json")).unwrap();

    let v1 = whatsminer::parse_telemetry(
        &load("whatsminer/v1/summary.json"),
        &load("whatsminer/v1/devs.json"),
        &load("whatsminer/v1/status.json"),
    )
    .unwrap();
    assert_eq!(v1.power_watts, Some(3417.0));
    assert_eq!(v1.state, MinerState::Mining);
    assert_eq!(v1.board_temps_c.len(), 3);
}

#[test]
fn whatsminer_mineroff_is_sleeping() {
    let mut status = load("whatsminer/v2/status.json");
    status["Msg"]["mineroff"] = Value::String("true".into());
    let t = whatsminer::parse_telemetry(
        &load("whatsminer/v2/summary.json"),
        &load("whatsminer/v2/devs.json"),
        &status,
    )
    .unwrap();
    assert_eq!(t.state, MinerState::Sleeping);
}

#[test]
fn avalon_q_cgminer_4_11_in_standby() {
    // The reply that used to fail as "unreadable": its module string sits under
    // `MM ID0:Summary`, wrapped in `'STATS':{..}`, not under `MM ID0`.
    let summary = load("avalon/q_25052801/summary.json");
    let stats = load("avalon/q_25052801/stats.json");
    check_status(&summary).unwrap();
    check_status(&stats).unwrap();
    let t = avalon::parse_telemetry(&summary, &stats).unwrap();
    // `MHS 5s` is 0 in standby while `MHS av` still averages the day's work.
    assert_eq!(t.hashrate_ths, Some(0.0));
    assert_eq!(t.state, MinerState::Sleeping, "SoftOFF[4]");
    assert_eq!(t.inlet_temp_c, Some(26.0), "ITemp");
    assert!(t.board_temps_c.is_empty(), "TMax[0] in standby");
    assert_eq!(t.fan_rpm, vec![0, 0, 0, 0]);
    assert_eq!(t.power_watts, Some(146.0), "PS[6] in standby");
}

#[test]
fn avalon_q_litestats_carries_the_same_string() {
    let mut raw = serde_json::json!({
        "summary": load("avalon/q_25052801/summary.json"),
        "stats": load("avalon/q_25052801/stats.json"),
        "litestats": load("avalon/q_25052801/litestats.json"),
    });
    // As Avalon Q sometimes answers `stats`: the key present, the string empty.
    raw["stats"]["STATS"][0]["MM ID0:Summary"] = Value::String(String::new());
    assert!(avalon::mm_strings(&raw["stats"]).is_empty());
    let t = avalon::parse_raw_status(&raw).unwrap();
    assert_eq!(t.state, MinerState::Sleeping);
    assert_eq!(t.inlet_temp_c, Some(26.0));
    assert_eq!(t.power_watts, Some(146.0));
}

#[test]
fn avalon_1566_cgminer_4_11_mining() {
    let stats = load("avalon/a1566_24102401/stats.json");
    check_status(&stats).unwrap();
    // No summary was captured: the modules' own speed (GHSspd) stands in.
    let t = avalon::parse_telemetry(&Value::Null, &stats).unwrap();
    assert!((t.hashrate_ths.unwrap() - 199.24107).abs() < 1e-9);
    assert_eq!(t.inlet_temp_c, Some(31.0));
    assert_eq!(t.board_temps_c, vec![77.0, 78.0, 77.0]);
    assert_eq!(t.fan_rpm, vec![4275, 4282]);
    assert_eq!(t.power_watts, Some(3731.0), "WALLPOWER");
    assert_eq!(t.state, MinerState::Mining);

    // The same firmware's rate windows are 30 s ones (`MHS 30s`, no `MHS 5s`): read from
    // the captured `devs` entry put where a summary's would be.
    let devs = load("avalon/a1566_24102401/devs.json");
    let summary = serde_json::json!({"SUMMARY": devs["DEVS"].clone()});
    let t = avalon::parse_telemetry(&summary, &stats).unwrap();
    assert!((t.hashrate_ths.unwrap() - 197.49792649).abs() < 1e-9);
}

#[test]
fn antminer_s21_xp_hydro_and_s23_hydro_stats() {
    // Captured `stats` only; the rate in it stands in for the summary's.
    let stats = load("antminer/v2023_07/s21_xp_hydro_rpc_stats_captured.json");
    let t = antminer::parse_telemetry(&Value::Null, &stats).unwrap();
    assert!((t.hashrate_ths.unwrap() - 483.97925).abs() < 1e-9);
    assert_eq!(t.board_temps_c, vec![63.0, 63.0, 63.0]);
    // Hydro: fan_num still says 4, all at 0 rpm.
    assert_eq!(t.fan_rpm, vec![0, 0, 0, 0]);
    assert_eq!(t.power_watts, None);
    assert_eq!(t.state, MinerState::Mining);

    let stats = load("antminer/v2023_07/s23_hydro_rpc_stats_captured.json");
    let t = antminer::parse_telemetry(&Value::Null, &stats).unwrap();
    assert!((t.hashrate_ths.unwrap() - 572.84556).abs() < 1e-9);
    assert_eq!(t.board_temps_c, vec![56.0, 55.0, 56.0]);
    assert!(t.fan_rpm.is_empty(), "fan_num 0");
}

#[test]
fn antminer_hiveon_s19_chain_power_is_not_wall_power() {
    let stats = load("antminer/v2023_07/hiveon_s19x88_stats_captured.json");
    let t = antminer::parse_telemetry(&Value::Null, &stats).unwrap();
    assert!((t.hashrate_ths.unwrap() - 6.751).abs() < 1e-9);
    assert_eq!(t.board_temps_c, vec![61.0, 56.0, 56.0]);
    assert_eq!(t.fan_rpm, vec![3090, 3000, 3000, 3090]);
    // chain_power1..3 and total_power are the hashboards' DC draw.
    assert_eq!(t.power_watts, None);
}

#[test]
fn antminer_multi_command_reply() {
    // `{"command":"summary+stats"}` nests one full reply per command.
    let both = serde_json::json!({
        "summary": [load("antminer/v2020/summary.json")],
        "stats": [load("antminer/v2020/stats.json")],
        "id": 1,
    });
    check_status(&both).unwrap();
    let t = antminer::parse_telemetry(&both, &both).unwrap();
    assert!((t.hashrate_ths.unwrap() - 110.56689).abs() < 1e-6);
    assert_eq!(t.board_temps_c, vec![78.0, 71.0, 69.0]);
}

#[test]
fn whatsminer_api_v3_shape() {
    let t = whatsminer::parse_telemetry(
        &load("whatsminer/v3/get_miner_status_summary.json"),
        &load("whatsminer/v3/get_miner_status_edevs.json"),
        &Value::Null,
    )
    .unwrap();
    assert!((t.hashrate_ths.unwrap() - 171.259).abs() < 1e-9, "TH/s");
    assert_eq!(t.power_watts, Some(3156.0), "power-realtime");
    assert_eq!(t.inlet_temp_c, Some(28.5));
    assert_eq!(t.fan_rpm, vec![5400, 5280]);
    assert_eq!(t.board_temps_c, vec![80.0, 82.0, 81.0]);
    assert_eq!(t.state, MinerState::Mining);
}
