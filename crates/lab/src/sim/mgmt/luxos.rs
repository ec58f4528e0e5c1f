//! Simulated LuxOS API (4028): reads, `logon` sessions that expire when idle, `curtail`,
//! `profileset`. Shapes follow `fixtures/miner-api/luxminer/v1`.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::state::SimMinerState;
use super::tcp::{self, Handler, command_of, error, reply};

const DESCRIPTION: &str = "LUXminer 2025.4.8.220305-sim";

/// Profile steps as fractions of nominal power, as LuxOS lists them (low to high).
const PROFILE_STEPS: [(u32, f64); 5] = [(190, 0.6), (240, 0.7), (265, 0.8), (290, 0.9), (315, 1.0)];

pub(crate) fn handler(state: SimMinerState) -> Handler {
    Arc::new(move |req: &Value, now: Instant| handle(&state, req, now))
}

fn profiles(state: &SimMinerState) -> Vec<(String, f64, f64)> {
    let spec = state.spec();
    PROFILE_STEPS
        .iter()
        .map(|(mhz, f)| {
            (
                format!("{mhz}MHz"),
                (spec.nominal_watts * f).round(),
                spec.nominal_ths * f,
            )
        })
        .collect()
}

fn handle(state: &SimMinerState, req: &Value, now: Instant) -> String {
    let (cmd, param) = command_of(req);
    let r = state.reading(now);
    let spec = state.spec();
    match cmd {
        "summary" => reply(
            "SUMMARY",
            json!([{
                "GHS 5s": r.hashrate_ths * 1000.0,
                "GHS av": r.hashrate_ths * 1000.0,
                "Accepted": 0,
                "Elapsed": 1,
            }]),
            "Summary",
            11,
            DESCRIPTION,
        )
        .to_string(),
        "power" => reply(
            "POWER",
            json!([{ "PSU": false, "Watts": r.power_watts.round() }]),
            "Power usage",
            311,
            DESCRIPTION,
        )
        .to_string(),
        "temps" => {
            let boards: Vec<Value> = r
                .board_temps_c
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let intake = r.inlet_c + (t - r.inlet_c) * 0.2;
                    json!({
                        "ID": i, "TEMP": i,
                        "TopLeft": t, "BottomLeft": t,
                        "TopRight": intake, "BottomRight": intake,
                    })
                })
                .collect();
            json!({
                "METADATA": [{
                    "TopLeft": {"Label": "Board Exhaust (top)", "Position": [0, 0]},
                    "BottomLeft": {"Label": "Board Exhaust (bottom)", "Position": [1, 0]},
                    "TopRight": {"Label": "Board Intake (top)", "Position": [0, 1]},
                    "BottomRight": {"Label": "Board Intake (bottom)", "Position": [1, 1]},
                }],
                "TEMPS": boards,
                "STATUS": tcp::status("S", 201, &format!("{} Temp(s)", r.board_temps_c.len()), DESCRIPTION),
                "id": 1,
            })
            .to_string()
        }
        "fans" => {
            let fans: Vec<Value> = r
                .fan_rpm
                .iter()
                .enumerate()
                .map(|(i, rpm)| json!({"FAN": format!("FAN{}", i + 1), "ID": i, "RPM": rpm, "Speed": 50}))
                .collect();
            reply("FANS", Value::Array(fans), "Fan(s)", 202, DESCRIPTION).to_string()
        }
        "config" => reply(
            "CONFIG",
            json!([{
                "CurtailMode": if r.awake { "None" } else { "Sleep" },
                "Model": "Antminer S19 (sim)",
                "NameplateTHS": spec.nominal_ths,
                "OS": "LuxOS",
            }]),
            "LUXminer config",
            33,
            DESCRIPTION,
        )
        .to_string(),
        "profiles" => {
            let list: Vec<Value> = profiles(state)
                .into_iter()
                .map(|(name, watts, ths)| json!({"Profile Name": name, "Watts": watts, "Hashrate": ths}))
                .collect();
            reply("PROFILES", Value::Array(list), "Profiles", 0, DESCRIPTION).to_string()
        }
        "logon" => {
            if state.fault() == super::state::Fault::WrongCredentials {
                return error(45, "Access denied to 'logon' command", DESCRIPTION);
            }
            match state.open_session(now) {
                Ok(id) => reply(
                    "SESSION",
                    json!([{ "SessionID": id }]),
                    "Session created",
                    0,
                    DESCRIPTION,
                )
                .to_string(),
                Err(_) => error(401, "Another session is active", DESCRIPTION),
            }
        }
        "session" => {
            let id = state.current_session(now).unwrap_or_default();
            reply(
                "SESSION",
                json!([{ "SessionID": id }]),
                "Session",
                0,
                DESCRIPTION,
            )
            .to_string()
        }
        "curtail" | "profileset" => {
            let (sid, arg) = param.split_once(',').unwrap_or((param, ""));
            if !state.use_session(sid, now) {
                return error(402, "Invalid session id", DESCRIPTION);
            }
            match (cmd, arg) {
                ("curtail", "sleep") => {
                    state.set_awake(false, now);
                    reply(
                        "CURTAIL",
                        json!([{"Mode": "sleep"}]),
                        "Curtail",
                        0,
                        DESCRIPTION,
                    )
                    .to_string()
                }
                ("curtail", "wakeup") => {
                    state.set_awake(true, now);
                    reply(
                        "CURTAIL",
                        json!([{"Mode": "wakeup"}]),
                        "Curtail",
                        0,
                        DESCRIPTION,
                    )
                    .to_string()
                }
                ("profileset", name) => match profiles(state).into_iter().find(|p| p.0 == name) {
                    Some((_, watts, _)) => {
                        state.set_power_limit(watts as u32, now);
                        reply(
                            "PROFILE",
                            json!([{"Profile": name}]),
                            "Profile set",
                            0,
                            DESCRIPTION,
                        )
                        .to_string()
                    }
                    None => error(14, &format!("Unknown profile {name}"), DESCRIPTION),
                },
                _ => error(14, &format!("Invalid curtail mode {arg}"), DESCRIPTION),
            }
        }
        other => error(14, &format!("Invalid command '{other}'"), DESCRIPTION),
    }
}
