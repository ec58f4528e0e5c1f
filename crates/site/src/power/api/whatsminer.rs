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

use super::cgminer::{self, Timeouts, check_status, field, section, section_list};
use super::whatsminer_crypto::TokenSession;
use super::{ApiError, ApiFuture, Credentials, Family, MinerApi, MinerState, Telemetry};

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

/// Builds telemetry from the `summary`, `devs` and `status` replies (v1 or v2).
///
/// # Errors
/// [`ApiError::Protocol`] when the summary has no hashrate.
pub fn parse_telemetry(
    summary: &Value,
    devs: &Value,
    status: &Value,
) -> Result<Telemetry, ApiError> {
    let s = section(summary, "SUMMARY")
        .ok_or_else(|| ApiError::Protocol("summary has no SUMMARY".into()))?;
    let mhs = field(s, "HS RT")
        .or_else(|| field(s, "MHS 5s"))
        .or_else(|| field(s, "MHS av"))
        .ok_or_else(|| ApiError::Protocol("summary has no hashrate".into()))?;
    let hashrate_ths = mhs / 1e6;
    let fan_rpm = ["Fan Speed In", "Fan Speed Out"]
        .iter()
        .filter_map(|k| field(s, k))
        .map(|r| r.max(0.0) as u32)
        .collect();
    let board_temps_c = section_list(devs, "DEVS")
        .iter()
        .filter_map(|d| field(d, "Chip Temp Max").or_else(|| field(d, "Temperature")))
        .collect();
    let off = status
        .get("Msg")
        .and_then(|m| m.get("mineroff").or_else(|| m.get("btmineroff")))
        .and_then(Value::as_str)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let state = if off {
        MinerState::Sleeping
    } else if hashrate_ths > 0.0 {
        MinerState::Mining
    } else {
        MinerState::Idle
    };
    Ok(Telemetry {
        power_watts: field(s, "Power"),
        inlet_temp_c: field(s, "Env Temp"),
        board_temps_c,
        hashrate_ths: Some(hashrate_ths),
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
