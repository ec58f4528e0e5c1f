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

use super::cgminer::{self, Timeouts, section, section_list};
use super::digest::Challenge;
use super::{
    ApiError, ApiFuture, Credentials, Family, MinerApi, MinerState, Telemetry, http, reading,
};

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

/// Highest hashboard (chain) index bmminer numbers its per-board keys up to.
const MAX_CHAINS: usize = 16;

/// The first `STATS` entry holding `key`: the first entry only names the firmware, the
/// readings sit in a later one.
fn stat<'a>(entries: &'a [Value], key: &str) -> Option<&'a Value> {
    entries.iter().find_map(|e| e.get(key))
}

/// Hottest plausible reading among `keys` (numbers, numeric strings or `"63-59-56-61"`).
fn hottest(entries: &[Value], keys: &[String]) -> Option<f64> {
    keys.iter()
        .filter_map(|k| stat(entries, k))
        .filter_map(reading::max_of_list)
        .filter_map(reading::plausible_temp)
        .fold(None, |acc: Option<f64>, t| {
            Some(acc.map_or(t, |a| a.max(t)))
        })
}

/// One temperature per hashboard: the hottest chip reading, else the board's PCB one.
///
/// bmminer numbers boards by chain slot, not from 1: S9 fills `temp6`…`temp8` and
/// `temp2_6`…`temp2_8` and zeros elsewhere, so every slot is looked at and a zero means
/// "no board". The chip reading is `temp2_N` on S9/S19/S21, `temp3_N` on S15/S17 (where
/// `temp2_N` is a board sensor), and the dash list `temp_chipN` on S19 and later; the
/// hottest of them stands for the board. Firmware that writes a `chain` list instead
/// gives `temp_chip` / `temp_pcb` per chain.
fn board_temps(entries: &[Value]) -> Vec<f64> {
    let mut temps: Vec<f64> = (1..=MAX_CHAINS)
        .filter_map(|i| {
            hottest(
                entries,
                &[
                    format!("temp2_{i}"),
                    format!("temp3_{i}"),
                    format!("temp_chip{i}"),
                ],
            )
            .or_else(|| hottest(entries, &[format!("temp{i}"), format!("temp_pcb{i}")]))
        })
        .collect();
    if temps.is_empty() {
        let chains = entries
            .iter()
            .filter_map(|e| e.get("chain")?.as_array())
            .flatten();
        for chain in chains {
            let t = ["temp_chip", "temp_pcb"]
                .iter()
                .filter_map(|k| chain.get(*k).and_then(reading::max_of_list))
                .find_map(reading::plausible_temp);
            temps.extend(t);
        }
    }
    temps
}

/// Fan speeds: every non-zero `fanN`, then zeros up to `fan_num` for fans that stopped.
///
/// Slots are not numbered from 1 either (S9 fills `fan5`/`fan6` or `fan3`/`fan6` with
/// `fan_num` 2), so unused slots are told apart from a dead fan only by the count.
fn fans(entries: &[Value]) -> Vec<u32> {
    let mut rpm: Vec<u32> = (1..=MAX_CHAINS)
        .filter_map(|i| cgminer::number(stat(entries, &format!("fan{i}"))))
        .filter(|r| *r > 0.0)
        .map(|r| r as u32)
        .collect();
    let expected = cgminer::number(stat(entries, "fan_num"))
        .map_or(0, |n| n.clamp(0.0, MAX_CHAINS as f64) as usize);
    if rpm.len() < expected {
        rpm.resize(expected, 0);
    }
    rpm
}

/// Builds telemetry from the `summary` and `stats` replies (state is Mining or Idle; the
/// client refines Idle into Sleeping from the CGI work mode).
///
/// Hashrate is the summary's shortest-window rate (`GHS 5s`, else `GHS av`; `MHS`/`THS`
/// and `rate_5s` + `rate_unit` are converted), else the same read from `stats`. Power stays
/// unknown: stock firmware reports none, and the `chain_power` / `total_power` of some
/// builds measure the hashboards' DC side, which under-counts the wall by the PSU's loss.
///
/// # Errors
/// [`ApiError::Protocol`] when neither reply has its section (`SUMMARY`, `STATS`).
pub fn parse_telemetry(summary: &Value, stats: &Value) -> Result<Telemetry, ApiError> {
    let sum = section(summary, "SUMMARY");
    let entries = section_list(stats, "STATS");
    if sum.is_none() && entries.is_empty() {
        return Err(ApiError::Protocol(
            "neither summary nor stats has a SUMMARY or STATS section".into(),
        ));
    }
    let hashrate_ths = sum
        .and_then(reading::hashrate_ths)
        .or_else(|| entries.iter().find_map(reading::hashrate_ths));
    Ok(Telemetry {
        power_watts: None,
        inlet_temp_c: None,
        board_temps_c: board_temps(entries),
        hashrate_ths,
        fan_rpm: fans(entries),
        state: if hashrate_ths.is_some_and(|h| h > 0.0) {
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
    fn s9_boards_and_fans_sit_in_later_slots() {
        // bmminer on S9 (stock and Braiins OS 2019 alike): chains 6-8, fans 5-6, `GHS 5s`
        // as a string, zeros everywhere else.
        let summary = json!({"SUMMARY":[{"GHS 5s":"13815.68","GHS av":13838.41}]});
        let stats = json!({"STATS":[
            {"BMMiner":"bOS_am1-s9-20190221-0_572dd48c","Type":"braiins-am1-s9"},
            {"STATS":1,"ID":"BC50","GHS 5s":"13815.68","fan_num":2,"fan1":0,"fan2":0,"fan3":0,
             "fan4":0,"fan5":3360,"fan6":4440,"fan7":0,"fan8":0,"temp_num":3,"temp1":0,
             "temp6":55,"temp7":54,"temp8":52,"temp2_1":0,"temp2_6":74,"temp2_7":75,"temp2_8":73}
        ]});
        let t = parse_telemetry(&summary, &stats).unwrap();
        assert!((t.hashrate_ths.unwrap() - 13.81568).abs() < 1e-9);
        assert_eq!(t.board_temps_c, vec![74.0, 75.0, 73.0]);
        assert_eq!(t.fan_rpm, vec![3360, 4440]);
        assert_eq!(t.state, MinerState::Mining);
    }

    #[test]
    fn a_stopped_fan_still_counts_as_a_fan() {
        let stats = json!({"STATS":[{"fan_num":2,"fan3":0,"fan6":6000}]});
        let t = parse_telemetry(&json!({"SUMMARY":[{"GHS 5s":1.0}]}), &stats).unwrap();
        assert_eq!(t.fan_rpm, vec![6000, 0]);
    }

    #[test]
    fn chip_reading_is_the_hottest_of_temp2_temp3_and_temp_chip() {
        // S17 Pro: temp2_N is a board sensor, temp3_N the chips.
        let stats = json!({"STATS":[{"temp1":63,"temp2_1":63,"temp3_1":78,
            "temp2":63,"temp2_2":63,"temp3_2":80}]});
        let t = parse_telemetry(&json!({"SUMMARY":[{"GHS 5s":50000.0}]}), &stats).unwrap();
        assert_eq!(t.board_temps_c, vec![78.0, 80.0]);
        // Only the PCB sensor: it stands in for the board.
        let stats = json!({"STATS":[{"temp1":60,"temp2_1":0,"temp_pcb2":"44-44-52-52"}]});
        let t = parse_telemetry(&json!({"SUMMARY":[{"GHS 5s":1.0}]}), &stats).unwrap();
        assert_eq!(t.board_temps_c, vec![60.0, 52.0]);
    }

    #[test]
    fn chain_list_and_rate_unit_form() {
        let stats = json!({"STATS":[{"Type":"Antminer S21 XP Hyd"},{"rate_5s":0,"rate_avg":600000,
            "rate_unit":"GH","fan_num":0,"chain":[{"index":0,"temp_chip":[30,41,0,0]}]}]});
        let t = parse_telemetry(&Value::Null, &stats).unwrap();
        assert_eq!(t.hashrate_ths, Some(0.0));
        assert_eq!(t.board_temps_c, vec![41.0]);
        assert!(t.fan_rpm.is_empty());
        assert_eq!(t.state, MinerState::Idle);
    }

    #[test]
    fn missing_pieces_are_unknown_not_errors() {
        // Summary without a rate, stats without readings.
        let t =
            parse_telemetry(&json!({"SUMMARY":[{"Elapsed":3}]}), &json!({"STATS":[{}]})).unwrap();
        assert_eq!(t.hashrate_ths, None);
        assert!(t.board_temps_c.is_empty() && t.fan_rpm.is_empty());
        assert_eq!(t.state, MinerState::Idle);
        // No summary at all: the rate in stats stands in.
        let stats = json!({"STATS":[{"GHS 5s":110566.89,"GHS av":111834.63}]});
        let t = parse_telemetry(&Value::Null, &stats).unwrap();
        assert!((t.hashrate_ths.unwrap() - 110.56689).abs() < 1e-9);
        // Section names in another case.
        let t = parse_telemetry(&json!({"Summary":[{"GHS 5s":1000.0}]}), &Value::Null).unwrap();
        assert_eq!(t.hashrate_ths, Some(1.0));
        assert!(matches!(
            parse_telemetry(&json!({"STATUS":[{"STATUS":"S"}]}), &Value::Null),
            Err(ApiError::Protocol(_))
        ));
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
