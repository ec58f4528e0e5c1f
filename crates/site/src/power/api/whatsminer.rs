//! Whatsminer btminer API v2 on 4028: plaintext reads, AES-256-ECB encrypted writes.
//!
//! Reads (`{"cmd":"summary"}`, `devs`, `status`) are cgminer-style, except that replies of
//! the btminer-specific commands carry `STATUS` as a string and `Msg` as an object. Writes
//! (`power_off`, `power_on`, `adjust_power_limit`) need a token from `get_token` and the
//! envelope of [`super::whatsminer_crypto`]. A miner hands one address at most 32 tokens,
//! each alive 30 minutes, so the session is kept and reused for most of that.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::cgminer::{self, Timeouts, check_status, section, section_list};
use super::whatsminer_crypto::TokenSession;
use super::{ApiError, ApiFuture, Credentials, Family, MinerApi, MinerState, Telemetry, reading};

/// How long a token is reused: under the miner's 30-minute keepalive with a margin.
const TOKEN_REUSE: Duration = Duration::from_secs(25 * 60);
/// btminer code for "check token error" (wrong password or expired token).
pub const CODE_TOKEN_ERROR: i64 = 135;
/// btminer code for "token over max times".
pub const CODE_TOKEN_LIMIT: i64 = 136;
/// btminer code for "permission denied" (write API not enabled).
pub const CODE_PERMISSION_DENIED: i64 = 45;

/// Client for one Whatsminer.
#[derive(Debug)]
pub struct WhatsminerClient {
    /// API address (TCP 4028).
    addr: SocketAddr,
    /// Admin login; only the password is used by API v2.
    credentials: Credentials,
    /// Deadlines for every call.
    timeouts: Timeouts,
    /// The last derived session and when it was made.
    session: Mutex<Option<(Instant, TokenSession)>>,
}

impl WhatsminerClient {
    /// A client for the btminer API at `addr`.
    pub fn new(addr: SocketAddr, credentials: Credentials, timeouts: Timeouts) -> WhatsminerClient {
        WhatsminerClient {
            addr,
            credentials,
            timeouts,
            session: Mutex::new(None),
        }
    }

    async fn read(&self, cmd: &str) -> Result<Value, ApiError> {
        let reply = cgminer::request_json(self.addr, &json!({ "cmd": cmd }), self.timeouts).await?;
        check_status(&reply)?;
        Ok(reply)
    }

    /// Reads `summary`, `devs` and `status` as raw replies (for `miner status`).
    ///
    /// # Errors
    /// Any transport error, or the miner refusing a read.
    pub async fn raw_status(&self) -> Result<Value, ApiError> {
        cgminer::with_deadline(self.timeouts.call, async {
            let summary = self.read("summary").await?;
            let devs = self.read("devs").await?;
            let status = self.read("status").await?;
            Ok(json!({ "summary": summary, "devs": devs, "status": status }))
        })
        .await
    }

    async fn session(&self) -> Result<TokenSession, ApiError> {
        if let Ok(guard) = self.session.lock()
            && let Some((made, session)) = guard.as_ref()
            && made.elapsed() < TOKEN_REUSE
        {
            return Ok(session.clone());
        }
        let reply =
            cgminer::request_json(self.addr, &json!({ "cmd": "get_token" }), self.timeouts).await?;
        token_error(&reply)?;
        let msg = reply
            .get("Msg")
            .ok_or_else(|| ApiError::Protocol("get_token reply has no Msg".into()))?;
        let part = |k: &str| {
            msg.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::Protocol(format!("get_token reply has no {k}")))
        };
        let session = TokenSession::derive(
            &self.credentials.password,
            part("salt")?,
            part("time")?,
            part("newsalt")?,
        );
        if let Ok(mut guard) = self.session.lock() {
            *guard = Some((Instant::now(), session.clone()));
        }
        Ok(session)
    }

    /// Sends one encrypted command; a token error drops the session and retries once.
    async fn write(&self, cmd: &str, extra: &[(&str, &str)]) -> Result<Value, ApiError> {
        cgminer::with_deadline(self.timeouts.call, async {
            let mut retried = false;
            loop {
                let session = self.session().await?;
                let mut plain = serde_json::Map::new();
                plain.insert("cmd".into(), cmd.into());
                for (k, v) in extra {
                    plain.insert((*k).into(), (*v).into());
                }
                plain.insert("token".into(), session.sign.clone().into());
                let envelope = json!({
                    "enc": 1,
                    "data": session.encrypt(&Value::Object(plain).to_string()),
                });
                let reply = cgminer::request_json(self.addr, &envelope, self.timeouts).await?;
                let reply = match reply.get("enc").and_then(Value::as_str) {
                    Some(data) => cgminer::parse_reply(session.decrypt(data)?.as_bytes())?,
                    None => reply,
                };
                match token_error(&reply) {
                    Err(ApiError::Auth(e)) if !retried => {
                        tracing::debug!(miner = %self.addr, error = %e, "Whatsminer token refused; fetching a new one");
                        retried = true;
                        if let Ok(mut guard) = self.session.lock() {
                            *guard = None;
                        }
                        continue;
                    }
                    Err(e) => return Err(e),
                    Ok(()) => {}
                }
                check_status(&reply)?;
                return Ok(reply);
            }
        })
        .await
    }
}

/// Maps btminer's token and permission codes onto [`ApiError::Auth`].
fn token_error(reply: &Value) -> Result<(), ApiError> {
    let code = reply.get("Code").and_then(Value::as_i64);
    let msg = || {
        cgminer::status_of(reply)
            .map(|(_, m)| m)
            .unwrap_or_default()
    };
    match code {
        Some(CODE_TOKEN_ERROR) => Err(ApiError::Auth(format!("token refused: {}", msg()))),
        Some(CODE_TOKEN_LIMIT) => Err(ApiError::Auth(format!("token limit reached: {}", msg()))),
        Some(CODE_PERMISSION_DENIED) => Err(ApiError::Auth(format!(
            "write API not enabled on the miner: {}",
            msg()
        ))),
        _ => Ok(()),
    }
}

/// The object `msg.<name>` of a btminer API v3 reply (`{"code":0,"msg":{"summary":{..}}}`).
fn v3_msg<'a>(reply: &'a Value, name: &str) -> Option<&'a Value> {
    reading::get(reading::get(reply, &["msg"])?, &[name])
}

/// Builds telemetry from the `summary`, `devs` and `status` replies.
///
/// Reads btminer API v1/v2 (`SUMMARY` / `DEVS` sections, `HS RT` in MH/s, `Power`,
/// `Env Temp`) and the shape of API v3 (`msg.summary` / `msg.edevs`, kebab-case names,
/// hashrate in TH/s). A missing or malformed figure is unknown; a missing `status`
/// reply only means the off switch is not known to be on.
///
/// # Errors
/// [`ApiError::Protocol`] when neither `summary` nor `devs` has its section.
pub fn parse_telemetry(
    summary: &Value,
    devs: &Value,
    status: &Value,
) -> Result<Telemetry, ApiError> {
    let s = section(summary, "SUMMARY").or_else(|| v3_msg(summary, "summary"));
    let boards: &[Value] = match section_list(devs, "DEVS") {
        [] => v3_msg(devs, "edevs")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default(),
        list => list,
    };
    if s.is_none() && boards.is_empty() {
        return Err(ApiError::Protocol(
            "neither summary nor devs has a SUMMARY or DEVS section".into(),
        ));
    }
    // A partial sum over boards would under-count, so every board must tell its rate.
    let boards_rate = || -> Option<f64> {
        if boards.is_empty() {
            return None;
        }
        boards.iter().map(reading::hashrate_ths).sum()
    };
    let hashrate_ths = s.and_then(reading::hashrate_ths).or_else(boards_rate);
    let fan_rpm = s
        .map(|s| {
            ["Fan Speed In", "Fan Speed Out"]
                .iter()
                .filter_map(|k| reading::num(s, &[k]))
                .map(|r| r.max(0.0) as u32)
                .collect()
        })
        .unwrap_or_default();
    let board_temps_c = boards
        .iter()
        .filter_map(|d| {
            reading::num(d, &["Chip Temp Max"])
                .and_then(reading::plausible_temp)
                .or_else(|| reading::num(d, &["Temperature"]).and_then(reading::plausible_temp))
        })
        .collect();
    let power_watts = s
        .and_then(|s| reading::num(s, &["Power", "Power_RT", "power-realtime", "power-5min"]))
        .filter(|w| *w >= 0.0);
    let inlet_temp_c = s.and_then(|s| reading::num(s, &["Env Temp", "environment-temperature"]));
    let off = reading::get(status, &["Msg"])
        .and_then(|m| reading::get(m, &["mineroff", "btmineroff"]))
        .is_some_and(|v| match v {
            Value::String(s) => s.eq_ignore_ascii_case("true"),
            Value::Bool(b) => *b,
            _ => false,
        });
    let state = if off {
        MinerState::Sleeping
    } else if hashrate_ths.is_some_and(|h| h > 0.0) {
        MinerState::Mining
    } else {
        MinerState::Idle
    };
    Ok(Telemetry {
        power_watts,
        inlet_temp_c,
        board_temps_c,
        hashrate_ths,
        fan_rpm,
        state,
    })
}

impl MinerApi for WhatsminerClient {
    fn family(&self) -> Family {
        Family::Whatsminer
    }

    fn telemetry(&self) -> ApiFuture<'_, Telemetry> {
        Box::pin(async move {
            let raw = self.raw_status().await?;
            parse_telemetry(&raw["summary"], &raw["devs"], &raw["status"])
        })
    }

    fn sleep(&self) -> ApiFuture<'_, ()> {
        // respbefore: answer first, then cut hashboard power, so the reply is not lost.
        Box::pin(async move {
            self.write("power_off", &[("respbefore", "true")])
                .await
                .map(drop)
        })
    }

    fn wake(&self) -> ApiFuture<'_, ()> {
        Box::pin(async move { self.write("power_on", &[]).await.map(drop) })
    }

    fn set_power_limit(&self, watts: u32) -> ApiFuture<'_, ()> {
        Box::pin(async move {
            let limit = watts.to_string();
            self.write("adjust_power_limit", &[("power_limit", &limit)])
                .await
                .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn m30_summary_without_power_rt_or_status_details() {
        // btminer on M30 (2022): short STATUS, `Power` only, fans at 0 rpm when immersed.
        let summary = json!({"STATUS":[{"STATUS":"S","Msg":"Summary"}],"SUMMARY":[{
            "MHS av":60420128.78,"MHS 5s":69202822.25,"HS RT":60375400.49,"Temperature":55.69,
            "Fan Speed In":0,"Fan Speed Out":0,"Power":2631,"Env Temp":54.44,
            "Chip Temp Max":101.25}]});
        let t = parse_telemetry(&summary, &Value::Null, &Value::Null).unwrap();
        assert!((t.hashrate_ths.unwrap() - 60.37540049).abs() < 1e-9);
        assert_eq!(t.power_watts, Some(2631.0));
        assert_eq!(t.inlet_temp_c, Some(54.44));
        assert_eq!(t.fan_rpm, vec![0, 0]);
        assert!(t.board_temps_c.is_empty());
        assert_eq!(t.state, MinerState::Mining);
    }

    #[test]
    fn power_rt_when_power_is_absent() {
        let summary = json!({"SUMMARY":[{"HS RT":1.0,"Power_RT":"3427"}]});
        let t = parse_telemetry(&summary, &Value::Null, &Value::Null).unwrap();
        assert_eq!(t.power_watts, Some(3427.0));
    }

    #[test]
    fn board_rates_stand_in_only_when_all_boards_tell() {
        let devs = json!({"DEVS":[{"MHS 5s":40_000_000.0,"Chip Temp Max":80},{"MHS 5s":41_000_000.0,"Temperature":66}]});
        let t = parse_telemetry(&Value::Null, &devs, &Value::Null).unwrap();
        assert!((t.hashrate_ths.unwrap() - 81.0).abs() < 1e-9);
        assert_eq!(t.board_temps_c, vec![80.0, 66.0]);
        let devs = json!({"DEVS":[{"MHS 5s":40_000_000.0},{"Status":"Dead"}]});
        let t = parse_telemetry(&Value::Null, &devs, &Value::Null).unwrap();
        assert_eq!(t.hashrate_ths, None);
        assert_eq!(t.state, MinerState::Idle);
    }

    #[test]
    fn mineroff_as_bool_or_string() {
        let summary = json!({"SUMMARY":[{"HS RT":0.0}]});
        for off in [json!("true"), json!(true)] {
            let status = json!({"STATUS":"S","Msg":{"mineroff": off}});
            let t = parse_telemetry(&summary, &Value::Null, &status).unwrap();
            assert_eq!(t.state, MinerState::Sleeping);
        }
        assert!(matches!(
            parse_telemetry(&json!({"STATUS":"S"}), &json!({}), &Value::Null),
            Err(ApiError::Protocol(_))
        ));
    }
}
