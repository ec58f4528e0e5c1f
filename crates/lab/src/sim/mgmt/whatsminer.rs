//! Simulated Whatsminer btminer API v2 (4028): plaintext reads, `get_token`, and the
//! AES-256-ECB envelope for `power_off`, `power_on`, `adjust_power_limit`.
//!
//! The simulator derives its keys from the password it holds, independently of what the
//! client did; only the primitives (md5-crypt, AES) are shared.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

use super::state::SimMinerState;
use super::tcp::{Handler, command_of, reply};
use hashgate_site::power::api::whatsminer_crypto::TokenSession;

const DESCRIPTION: &str = "cgminer 4.9.2";
/// Per-miner salt of the admin password, fixed like the real one.
const SALT: &str = "BQ5hoXV9";
/// Tokens kept per miner; the real one allows 32 per client address.
const MAX_TOKENS: usize = 32;
/// A token's life on the real firmware.
const TOKEN_LIFE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// One token handed out: its `time`, its `newsalt`, and when.
type Issued = (String, String, Instant);

pub(crate) fn handler(state: SimMinerState) -> Handler {
    let tokens: Arc<Mutex<Vec<Issued>>> = Arc::new(Mutex::new(Vec::new()));
    Arc::new(move |req: &Value, now: Instant| handle(&state, &tokens, req, now))
}

fn btminer(code: &str, num: u32, msg: Value) -> String {
    let when = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json!({ "STATUS": code, "When": when, "Code": num, "Msg": msg, "Description": "" }).to_string()
}

fn random_salt() -> String {
    const ALPHABET: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..8)
        .map(|_| {
            let i = rand::random_range(0..ALPHABET.len());
            char::from(ALPHABET.get(i).copied().unwrap_or(b'a'))
        })
        .collect()
}

fn handle(state: &SimMinerState, tokens: &Mutex<Vec<Issued>>, req: &Value, now: Instant) -> String {
    if req.get("enc").is_some() {
        return encrypted(state, tokens, req, now);
    }
    let (cmd, _) = command_of(req);
    let r = state.reading(now);
    match cmd {
        "summary" => reply(
            "SUMMARY",
            json!([{
                "HS RT": r.hashrate_ths * 1e6,
                "MHS av": r.hashrate_ths * 1e6,
                "Power": r.power_watts.round(),
                "Power Limit": r.power_limit.unwrap_or(state.spec().nominal_watts as u32),
                "Env Temp": r.inlet_c,
                "Fan Speed In": r.fan_rpm.first().copied().unwrap_or(0),
                "Fan Speed Out": r.fan_rpm.get(1).copied().unwrap_or(0),
                "Elapsed": 1,
            }]),
            "Summary",
            11,
            DESCRIPTION,
        )
        .to_string(),
        "devs" => {
            let devs: Vec<Value> = r
                .board_temps_c
                .iter()
                .enumerate()
                .map(|(i, t)| json!({"ASC": i, "Slot": i, "Temperature": t - 8.0, "Chip Temp Max": t}))
                .collect();
            reply("DEVS", Value::Array(devs), "ASC(s)", 9, DESCRIPTION).to_string()
        }
        "status" => btminer(
            "S",
            131,
            json!({
                "mineroff": if r.awake { "false" } else { "true" },
                "power_limit_set": r.power_limit.map(|w| w.to_string()).unwrap_or_default(),
                "FirmwareVersion": "20240624.18.REL",
            }),
        ),
        "get_token" => {
            let time = format!("{:04}", rand::random_range(0..10_000u32));
            let newsalt = random_salt();
            if let Ok(mut t) = tokens.lock() {
                t.retain(|(_, _, at)| now.saturating_duration_since(*at) < TOKEN_LIFE);
                if t.len() >= MAX_TOKENS {
                    return btminer("E", 136, json!("token over max times"));
                }
                t.push((time.clone(), newsalt.clone(), now));
            }
            btminer(
                "S",
                134,
                json!({ "time": time, "salt": SALT, "newsalt": newsalt }),
            )
        }
        _ => btminer("E", 14, json!("invalid API command or data")),
    }
}

fn encrypted(
    state: &SimMinerState,
    tokens: &Mutex<Vec<Issued>>,
    req: &Value,
    now: Instant,
) -> String {
    let Some(data) = req.get("data").and_then(Value::as_str) else {
        return btminer("E", 23, json!("invalid JSON message"));
    };
    let password = state.password();
    let issued: Vec<Issued> = tokens
        .lock()
        .map(|t| {
            t.iter()
                .filter(|(_, _, at)| now.saturating_duration_since(*at) < TOKEN_LIFE)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    // Any token this miner issued may be in use; find the one whose key opens the envelope.
    let opened = issued.iter().rev().find_map(|(time, newsalt, _)| {
        let session = TokenSession::derive(&password, SALT, time, newsalt);
        let plain = session.decrypt(data).ok()?;
        let cmd: Value = serde_json::from_str(&plain).ok()?;
        (cmd.get("token").and_then(Value::as_str) == Some(session.sign.as_str()))
            .then_some((session, cmd))
    });
    let Some((session, cmd)) = opened else {
        return btminer("E", 135, json!("check token error"));
    };
    let (name, _) = command_of(&cmd);
    let answer = match name {
        "power_off" => {
            state.set_awake(false, now);
            btminer("S", 131, json!("OK"))
        }
        "power_on" => {
            state.set_awake(true, now);
            btminer("S", 131, json!("OK"))
        }
        "adjust_power_limit" => {
            match cmd
                .get("power_limit")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<u32>().ok())
            {
                Some(watts) => {
                    state.set_power_limit(watts, now);
                    btminer("S", 131, json!("OK"))
                }
                None => btminer("E", 132, json!("command error")),
            }
        }
        _ => btminer("E", 14, json!("invalid API command or data")),
    };
    json!({ "enc": session.encrypt(&answer) }).to_string()
}
