//! Bitmain stock firmware: cgminer-style reads on 4028, control over HTTP CGI.
//!
//! Reads: `summary` (GHS 5s) and `stats` (per-board temperatures, fans). Stock firmware
//! reports no wall power. Sleep / wake: `POST /cgi-bin/set_miner_conf.cgi` with
//! `"miner-mode":1` / `"miner-mode":0` behind HTTP Digest auth, written back into the
//! full configuration read from `get_miner_conf.cgi` (the page replaces the whole
//! configuration). The sleep state is read from `bitmain-work-mode` there when the miner
//! hashes nothing.

use std::net::SocketAddr;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::Value;

use super::cgminer::{self, Timeouts, field, section, section_list};
use super::digest::Challenge;
use super::{ApiError, ApiFuture, Credentials, Family, MinerApi, MinerState, Telemetry, http};

/// CGI page that switches the work mode.
pub const SET_CONF_PATH: &str = "/cgi-bin/set_miner_conf.cgi";
/// CGI page that reports the work mode.
pub const GET_CONF_PATH: &str = "/cgi-bin/get_miner_conf.cgi";

/// Client for one stock Antminer.
#[derive(Debug)]
pub struct AntminerClient {
    /// cgminer API address (TCP 4028).
    api: SocketAddr,
    /// Web interface address (port 80) where the CGI pages live.
    web: SocketAddr,
    /// Web login (`root` / `root` from the factory).
    credentials: Credentials,
    /// Deadlines for every call.
    timeouts: Timeouts,
    /// HTTP client reused across calls.
    http: reqwest::Client,
}

impl AntminerClient {
    /// A client reading from `api` (4028) and writing through the CGI pages at `web`.
    pub fn new(
        api: SocketAddr,
        web: SocketAddr,
        credentials: Credentials,
        timeouts: Timeouts,
    ) -> AntminerClient {
        AntminerClient {
            api,
            web,
            credentials,
            timeouts,
            http: http::client(timeouts),
        }
    }

    /// Reads `summary` and `stats` as raw replies (for `miner status`).
    ///
    /// # Errors
    /// Any transport error, or the miner refusing a read.
    pub async fn raw_status(&self) -> Result<Value, ApiError> {
        cgminer::read_sections(self.api, &["summary", "stats"], self.timeouts).await
    }

    /// One CGI request with Digest auth: try, answer the 401 challenge, try again.
    async fn cgi(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = format!("http://{}{}", self.web, path);
        let build = |auth: Option<String>| {
            let mut req = self.http.request(method.clone(), &url);
            if let Some(body) = body {
                req = req.json(body);
            }
            if let Some(auth) = auth {
                req = req.header(AUTHORIZATION, auth);
            }
            req
        };
        let first = build(None)
            .send()
            .await
            .map_err(|e| http::error(e, self.timeouts))?;
        let resp = if first.status() == StatusCode::UNAUTHORIZED {
            let challenge = first
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|h| h.to_str().ok())
                .and_then(Challenge::parse)
                .ok_or_else(|| ApiError::Protocol("401 without a Digest challenge".into()))?;
            let cnonce = format!("{:016x}", rand::random::<u64>());
            let auth = challenge.authorization(
                &self.credentials.user,
                &self.credentials.password,
                method.as_str(),
                path,
                &cnonce,
                1,
            );
            build(Some(auth))
                .send()
                .await
                .map_err(|e| http::error(e, self.timeouts))?
        } else {
            first
        };
        match resp.status() {
            StatusCode::UNAUTHORIZED => Err(ApiError::Auth(format!(
                "web login refused for user {:?}",
                self.credentials.user
            ))),
            s if s.is_success() => http::json_body(resp, self.timeouts).await,
            s => Err(ApiError::Refused(format!("{path} answered HTTP {s}"))),
        }
    }

    /// Switches the work mode by read-modify-write of the whole configuration: the CGI
    /// page replaces the configuration it is given, so posting the mode alone would wipe
    /// the pools.
    async fn set_mode(&self, mode: u8) -> Result<(), ApiError> {
        let conf = self.cgi(reqwest::Method::GET, GET_CONF_PATH, None).await?;
        let body = mode_change(&conf, mode)?;
        let reply = self
            .cgi(reqwest::Method::POST, SET_CONF_PATH, Some(&body))
            .await?;
        match reply.get("stat").and_then(Value::as_str) {
            Some("success") => Ok(()),
            _ => Err(ApiError::Refused(
                reply
                    .get("msg")
                    .and_then(Value::as_str)
                    .unwrap_or("set_miner_conf failed")
                    .to_string(),
            )),
        }
    }

    async fn work_mode(&self) -> Result<Option<u32>, ApiError> {
        let conf = self.cgi(reqwest::Method::GET, GET_CONF_PATH, None).await?;
        Ok(cgminer::number(conf.get("bitmain-work-mode")).map(|m| m as u32))
    }
}

/// The `set_miner_conf.cgi` body that changes only the work mode of configuration `conf`
/// (as read from `get_miner_conf.cgi`): every field kept, `bitmain-work-mode` (the read
/// name) replaced by `miner-mode` (the write name).
///
/// # Errors
/// [`ApiError::Protocol`] when `conf` is not an object or has no pools (a configuration
/// that cannot be written back safely).
pub fn mode_change(conf: &Value, mode: u8) -> Result<Value, ApiError> {
    let mut body = conf
        .as_object()
        .cloned()
        .ok_or_else(|| ApiError::Protocol("get_miner_conf is not an object".into()))?;
    if !body.get("pools").is_some_and(Value::is_array) {
        return Err(ApiError::Protocol(
            "get_miner_conf has no pools; refusing to write a configuration without them".into(),
        ));
    }
    body.remove("bitmain-work-mode");
    body.insert("miner-mode".into(), Value::from(mode));
    Ok(Value::Object(body))
}

/// Builds telemetry from the `summary` and `stats` replies (state is Mining or Idle; the
/// client refines Idle into Sleeping from the CGI work mode).
///
/// # Errors
/// [`ApiError::Protocol`] when the summary has no hashrate.
pub fn parse_telemetry(summary: &Value, stats: &Value) -> Result<Telemetry, ApiError> {
    let ghs = section(summary, "SUMMARY")
        .and_then(|s| field(s, "GHS 5s").or_else(|| field(s, "GHS av")))
        .ok_or_else(|| ApiError::Protocol("summary has no GHS 5s".into()))?;
    let hashrate_ths = ghs / 1000.0;
    // The first STATS entry names the firmware; the second carries the readings.
    let readings = section_list(stats, "STATS")
        .iter()
        .find(|s| s.get("temp_num").is_some() || s.get("fan_num").is_some());
    let mut board_temps_c = Vec::new();
    let mut fan_rpm = Vec::new();
    if let Some(r) = readings {
        let boards = field(r, "temp_num").map_or(4, |n| n.clamp(0.0, 16.0) as usize);
        for i in 1..=boards {
            let chip = field(r, &format!("temp2_{i}")).filter(|t| *t > 0.0);
            if let Some(t) = chip.or_else(|| field(r, &format!("temp{i}")).filter(|t| *t > 0.0)) {
                board_temps_c.push(t);
            }
        }
        let fans = field(r, "fan_num").map_or(4, |n| n.clamp(0.0, 16.0) as usize);
        for i in 1..=fans {
            if let Some(rpm) = field(r, &format!("fan{i}")) {
                fan_rpm.push(rpm.max(0.0) as u32);
            }
        }
    }
    Ok(Telemetry {
        power_watts: None,
        inlet_temp_c: None,
        board_temps_c,
        hashrate_ths: Some(hashrate_ths),
        fan_rpm,
        state: if hashrate_ths > 0.0 {
            MinerState::Mining
        } else {
            MinerState::Idle
        },
    })
}

impl MinerApi for AntminerClient {
    fn family(&self) -> Family {
        Family::Antminer
    }

    fn telemetry(&self) -> ApiFuture<'_, Telemetry> {
        Box::pin(cgminer::with_deadline(self.timeouts.call, async move {
            let raw = self.raw_status().await?;
            let mut t = parse_telemetry(&raw["summary"], &raw["stats"])?;
            if t.state == MinerState::Idle && self.work_mode().await.ok().flatten() == Some(1) {
                t.state = MinerState::Sleeping;
            }
            Ok(t)
        }))
    }

    fn sleep(&self) -> ApiFuture<'_, ()> {
        Box::pin(cgminer::with_deadline(self.timeouts.call, self.set_mode(1)))
    }

    fn wake(&self) -> ApiFuture<'_, ()> {
        Box::pin(cgminer::with_deadline(self.timeouts.call, self.set_mode(0)))
    }

    fn set_power_limit(&self, _watts: u32) -> ApiFuture<'_, ()> {
        Box::pin(async {
            Err(ApiError::Unsupported {
                family: Family::Antminer,
                what: "a power limit",
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mode_change_keeps_everything_but_the_mode() {
        let conf = json!({"pools":[{"url":"u"}],"bitmain-fan-pwm":"80","bitmain-work-mode":"0"});
        let body = mode_change(&conf, 1).unwrap();
        assert_eq!(
            body,
            json!({"pools":[{"url":"u"}],"bitmain-fan-pwm":"80","miner-mode":1})
        );
    }

    #[test]
    fn mode_change_refuses_a_configuration_without_pools() {
        assert!(matches!(
            mode_change(&json!({"bitmain-work-mode":"0"}), 1),
            Err(ApiError::Protocol(_))
        ));
        assert!(mode_change(&json!([]), 1).is_err());
    }
}
