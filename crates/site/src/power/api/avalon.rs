//! Canaan Avalon: cgminer-style reads and `ascset` soft power control on 4028.
//!
//! The interesting numbers sit inside one string, `STATS[0]["MM ID0"]`, as
//! `Key[value]` pairs (`Temp[25] MTmax[80 81 79] Fan1[3000] PS[0 1209 2260 87 3300 ..]
//! SoftOFF[0]`). Sleep and wake are `ascset 0,softoff,1:<unix time>` and
//! `ascset 0,softon,1:<unix time>`; the miner acts at that time, so "now" acts at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::cgminer::{self, Timeouts, check_status, field, section};
use super::{ApiError, ApiFuture, Family, MinerApi, MinerState, Telemetry};

/// Position of the input power (W) in the `PS[...]` list of A12/A13-series firmware.
const PS_WATTS_INDEX: usize = 4;

/// Client for one Avalon miner.
#[derive(Debug)]
pub struct AvalonClient {
    /// The miner's API address (TCP 4028).
    addr: SocketAddr,
    /// Deadlines for every call.
    timeouts: Timeouts,
}

impl AvalonClient {
    /// A client for the Avalon API at `addr`.
    pub fn new(addr: SocketAddr, timeouts: Timeouts) -> AvalonClient {
        AvalonClient { addr, timeouts }
    }

    /// Reads `summary` and `stats` as raw replies (for `miner status`).
    ///
    /// # Errors
    /// Any transport error, or the miner refusing a read.
    pub async fn raw_status(&self) -> Result<Value, ApiError> {
        cgminer::read_sections(self.addr, &["summary", "stats"], self.timeouts).await
    }

    async fn soft_power(&self, action: &str) -> Result<(), ApiError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let param = format!("0,{action},1:{now}");
        let reply = cgminer::command(self.addr, "ascset", Some(&param), self.timeouts).await?;
        check_status(&reply)?;
        let msg = cgminer::status_of(&reply)
            .map(|(_, m)| m)
            .unwrap_or_default();
        if msg.to_ascii_lowercase().contains("success") {
            Ok(())
        } else {
            Err(ApiError::Refused(msg))
        }
    }
}

/// Splits an Avalon `Key[value] Key2[v1 v2]` string into a map.
pub fn parse_mm_fields(mm: &str) -> HashMap<&str, &str> {
    let mut out = HashMap::new();
    let mut rest = mm;
    while let Some(open) = rest.find('[') {
        let key = rest.get(..open).unwrap_or_default().trim();
        let after = rest.get(open + 1..).unwrap_or_default();
        let Some(close) = after.find(']') else { break };
        let key = key.rsplit(' ').next().unwrap_or(key);
        out.insert(key, after.get(..close).unwrap_or_default());
        rest = after.get(close + 1..).unwrap_or_default();
    }
    out
}

fn numbers(list: &str) -> Vec<f64> {
    list.split_whitespace()
        .filter_map(|s| s.trim_end_matches('%').parse::<f64>().ok())
        .filter(|n| n.is_finite())
        .collect()
}

/// Builds telemetry from the `summary` and `stats` replies.
///
/// # Errors
/// [`ApiError::Protocol`] when the summary has no hashrate or stats no `MM ID0`.
pub fn parse_telemetry(summary: &Value, stats: &Value) -> Result<Telemetry, ApiError> {
    let mhs = section(summary, "SUMMARY")
        .and_then(|s| field(s, "MHS 5s").or_else(|| field(s, "MHS av")))
        .ok_or_else(|| ApiError::Protocol("summary has no MHS 5s".into()))?;
    let mm = cgminer::section_list(stats, "STATS")
        .iter()
        .find_map(|s| s.get("MM ID0")?.as_str())
        .ok_or_else(|| ApiError::Protocol("stats has no MM ID0".into()))?;
    let f = parse_mm_fields(mm);
    let one = |k: &str| f.get(k).and_then(|v| numbers(v).first().copied());
    let board_temps_c = f
        .get("MTmax")
        .map(|v| numbers(v))
        .filter(|v| !v.is_empty())
        .or_else(|| one("TMax").map(|t| vec![t]))
        .unwrap_or_default();
    let fan_rpm = (1..=4)
        .filter_map(|i| one(&format!("Fan{i}")))
        .map(|r| r.max(0.0) as u32)
        .collect();
    let power_watts = f
        .get("PS")
        .and_then(|v| numbers(v).get(PS_WATTS_INDEX).copied());
    let hashrate_ths = mhs / 1e6;
    let state = if one("SoftOFF").is_some_and(|s| s != 0.0) {
        MinerState::Sleeping
    } else if hashrate_ths > 0.0 {
        MinerState::Mining
    } else {
        MinerState::Idle
    };
    Ok(Telemetry {
        power_watts,
        inlet_temp_c: one("Temp"),
        board_temps_c,
        hashrate_ths: Some(hashrate_ths),
        fan_rpm,
        state,
    })
}

impl MinerApi for AvalonClient {
    fn family(&self) -> Family {
        Family::Avalon
    }

    fn telemetry(&self) -> ApiFuture<'_, Telemetry> {
        Box::pin(async move {
            let raw = self.raw_status().await?;
            parse_telemetry(&raw["summary"], &raw["stats"])
        })
    }

    fn sleep(&self) -> ApiFuture<'_, ()> {
        Box::pin(cgminer::with_deadline(
            self.timeouts.call,
            self.soft_power("softoff"),
        ))
    }

    fn wake(&self) -> ApiFuture<'_, ()> {
        Box::pin(cgminer::with_deadline(
            self.timeouts.call,
            self.soft_power("softon"),
        ))
    }

    fn set_power_limit(&self, _watts: u32) -> ApiFuture<'_, ()> {
        Box::pin(async {
            Err(ApiError::Unsupported {
                family: Family::Avalon,
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
    fn mm_string_parses() {
        let summary = json!({"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"MHS 5s": 90_000_000.0}]});
        let stats = json!({"STATUS":[{"STATUS":"S"}],"STATS":[{"MM ID0":"Ver[1246-83-21] Temp[27] TMax[84] MTmax[80 84 79] Fan1[3300] Fan2[3310] FanR[60%] PS[0 1209 2260 87 3270 2260 1994] SoftOFF[0]"}]});
        let t = parse_telemetry(&summary, &stats).unwrap();
        assert_eq!(t.inlet_temp_c, Some(27.0));
        assert_eq!(t.board_temps_c, vec![80.0, 84.0, 79.0]);
        assert_eq!(t.fan_rpm, vec![3300, 3310]);
        assert_eq!(t.power_watts, Some(3270.0));
        assert_eq!(t.hashrate_ths, Some(90.0));
        assert_eq!(t.state, MinerState::Mining);
    }

    #[test]
    fn soft_off_is_sleeping_and_missing_mm_is_protocol() {
        let summary = json!({"SUMMARY":[{"MHS 5s": 0.0}]});
        let stats = json!({"STATS":[{"MM ID0":"Temp[20] SoftOFF[1]"}]});
        let t = parse_telemetry(&summary, &stats).unwrap();
        assert_eq!(t.state, MinerState::Sleeping);
        assert!(t.board_temps_c.is_empty());
        assert!(matches!(
            parse_telemetry(&summary, &json!({"STATS":[{}]})),
            Err(ApiError::Protocol(_))
        ));
    }
}
