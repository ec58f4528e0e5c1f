//! Canaan Avalon: cgminer-style reads and `ascset` soft power control on 4028.
//!
//! The interesting numbers sit inside strings of `Key[value]` pairs in the `stats` reply
//! (`Temp[25] MTmax[80 81 79] Fan1[3000] PS[0 1209 1187 297 3526 1188 3731] SoftOFF[0]`).
//! Firmware generations put them under different keys:
//!
//! | key | seen on |
//! |---|---|
//! | `MM ID0` | cgminer 4.11 A10xx–A15xx, Nano 3, Mini 3 |
//! | `MM ID1` … `MM IDn`, one per module, in one `STATS` entry per AUC | cgminer 4.10 A7xx/A8xx/A9xx |
//! | `MM ID0:Summary`, the pairs wrapped in `'STATS':{…}` | cgminer 4.11 Avalon Q, newer A15xx |
//!
//! Sleep and wake are `ascset 0,softoff,1:<unix time>` and `ascset 0,softon,1:<unix
//! time>`; the miner acts at that time, so "now" acts at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::cgminer::{self, Timeouts, check_status, section, section_list};
use super::reading::{self, plausible_temp};
use super::{ApiError, ApiFuture, Family, MinerApi, MinerState, Telemetry};

/// Commands that carry the same module strings as `stats`, tried in turn when `stats`
/// comes back without them (Avalon Q now and then answers `stats` with an empty
/// `MM ID0:Summary`; `estats` and Canaan's `litestats` still carry it).
const MM_FALLBACKS: [&str; 2] = ["estats", "litestats"];

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

    /// Reads `summary` and `stats` as raw replies (for `miner status`), plus `estats` or
    /// `litestats` when `stats` holds no module string.
    ///
    /// # Errors
    /// Any transport error, or the miner refusing `summary` or `stats`.
    pub async fn raw_status(&self) -> Result<Value, ApiError> {
        cgminer::with_deadline(self.timeouts.call, async {
            let mut raw =
                cgminer::read_sections(self.addr, &["summary", "stats"], self.timeouts).await?;
            if mm_strings(&raw["stats"]).is_empty() {
                for name in MM_FALLBACKS {
                    // Older firmware refuses these commands; the module figures then
                    // stay unknown rather than failing the read.
                    let Ok(reply) = cgminer::read(self.addr, name, self.timeouts).await else {
                        continue;
                    };
                    let found = !mm_strings(&reply).is_empty();
                    if let Some(map) = raw.as_object_mut() {
                        map.insert(name.into(), reply);
                    }
                    if found {
                        break;
                    }
                }
            }
            Ok(raw)
        })
        .await
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

/// Builds telemetry from a [`AvalonClient::raw_status`] document: `summary`, and the
/// first of `stats`, `estats`, `litestats` that carries module strings.
///
/// # Errors
/// As [`parse_telemetry`].
pub fn parse_raw_status(raw: &Value) -> Result<Telemetry, ApiError> {
    let stats = ["stats", "estats", "litestats"]
        .iter()
        .filter_map(|k| raw.get(*k))
        .find(|v| !mm_strings(v).is_empty())
        .unwrap_or(&raw["stats"]);
    parse_telemetry(&raw["summary"], stats)
}

/// Splits an Avalon `Key[value] Key2[v1 v2]` string into a map.
///
/// A key is the run of letters, digits and `_` just before its `[`, so the `'STATS':{`
/// wrapper of `MM ID0:Summary`, missing spaces (`Elapsed[1]BOOTBY[1]`) and two-word keys
/// (`Nonce Mask[25]`, read as `Mask`) do not disturb the others.
pub fn parse_mm_fields(mm: &str) -> HashMap<&str, &str> {
    let mut out = HashMap::new();
    let mut rest = mm;
    while let Some(open) = rest.find('[') {
        let before = rest.get(..open).unwrap_or_default();
        let key_start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let key = before.get(key_start..).unwrap_or_default();
        let after = rest.get(open + 1..).unwrap_or_default();
        let Some(close) = after.find(']') else { break };
        if !key.is_empty() {
            out.insert(key, after.get(..close).unwrap_or_default());
        }
        rest = after.get(close + 1..).unwrap_or_default();
    }
    out
}

/// The non-empty module strings of a `stats`-style reply, across every `STATS` entry
/// (one per AUC on controller-driven models) and every `MM ID…` key.
pub fn mm_strings(stats: &Value) -> Vec<&str> {
    section_list(stats, "STATS")
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|entry| entry.iter())
        .filter(|(k, _)| reading::norm(k).starts_with("mmid"))
        .filter_map(|(_, v)| v.as_str())
        .filter(|s| s.contains('['))
        .collect()
}

fn numbers(list: &str) -> Vec<f64> {
    list.split_whitespace()
        .filter_map(|s| s.trim_end_matches('%').parse::<f64>().ok())
        .filter(|n| n.is_finite())
        .collect()
}

/// One module's parsed `Key[value]` pairs.
struct Module<'a>(HashMap<&'a str, &'a str>);

impl Module<'_> {
    fn one(&self, key: &str) -> Option<f64> {
        self.0.get(key).and_then(|v| numbers(v).first().copied())
    }

    fn list(&self, key: &str) -> Vec<f64> {
        self.0.get(key).map(|v| numbers(v)).unwrap_or_default()
    }

    /// Air inlet: `Temp` on most models, `ITemp` on Avalon Q and Mini 3. Firmware prints
    /// 0 for an absent sensor.
    fn inlet(&self) -> Option<f64> {
        ["Temp", "ITemp"]
            .iter()
            .filter_map(|k| self.one(k))
            .find(|t| *t != 0.0 && *t > -40.0 && *t < 100.0)
    }

    /// Hottest chip per hashboard (`MTmax`), else the module's hottest (`TMax`).
    fn board_temps(&self) -> Vec<f64> {
        let per_board: Vec<f64> = self
            .list("MTmax")
            .into_iter()
            .filter_map(plausible_temp)
            .collect();
        if per_board.is_empty() {
            self.one("TMax")
                .and_then(plausible_temp)
                .into_iter()
                .collect()
        } else {
            per_board
        }
    }

    /// `Fan1`…`Fan8`, or the single `Fan` of A7xx/A8xx modules.
    fn fans(&self) -> Vec<u32> {
        (1..=8)
            .map(|i| format!("Fan{i}"))
            .chain(std::iter::once("Fan".to_string()))
            .filter_map(|k| self.one(&k))
            .map(|r| r.max(0.0) as u32)
            .collect()
    }

    /// Wall (AC input) power: `WALLPOWER`, else `PS[6]`.
    ///
    /// `PS` is `[error, 12 V in (10 mV), Vout (10 mV), Iout (A), Pout (W), Vset, Pin (W)]`
    /// on the models whose captures show it (A1047, A1246, A1566, Q, Mini 3): `Pout`
    /// matches `Vout × Iout` and `Pin` (= `WALLPOWER` where both are printed) exceeds
    /// `Pout` by the PSU's loss. A list where that product does not hold has another
    /// layout (Nano 3 prints `PS[0 0 0 3 2792 89 324]` at ~100 W), so it yields nothing;
    /// so does a list without `Pin`, since `Pout` alone under-counts the wall.
    fn wall_watts(&self) -> Option<f64> {
        if let Some(w) = self.one("WALLPOWER").filter(|w| *w >= 0.0) {
            return Some(w);
        }
        let ps = self.list("PS");
        let (vout, iout, pout, pin) = (*ps.get(2)?, *ps.get(3)?, *ps.get(4)?, *ps.get(6)?);
        let product = vout * iout / 100.0;
        let consistent = (product - pout).abs() <= 0.05 * product.max(pout) + 5.0;
        (consistent && pin >= pout && pin >= 0.0).then_some(pin)
    }

    /// `SoftOFF[n]`: 0 while mining; non-zero once soft-off took effect (1 on A1xxx
    /// firmware, 4 on Avalon Q).
    fn soft_off(&self) -> Option<bool> {
        self.one("SoftOFF").map(|s| s != 0.0)
    }
}

/// Sum of one figure over all modules; unknown when any module lacks it, since a partial
/// sum would under-count.
fn sum_all<'a>(modules: &[Module<'a>], figure: impl Fn(&Module<'a>) -> Option<f64>) -> Option<f64> {
    if modules.is_empty() {
        return None;
    }
    modules.iter().map(figure).sum()
}

/// Builds telemetry from the `summary` and `stats` replies.
///
/// Each figure is read where the firmware put it, and one that is missing or malformed is
/// `None` (or an empty list): hashrate from the summary's shortest-window rate, else the
/// modules' `GHSspd`; power, temperatures, fans and soft-off from the module strings.
///
/// # Errors
/// [`ApiError::Protocol`] when neither reply has its section (`SUMMARY`, `STATS`).
pub fn parse_telemetry(summary: &Value, stats: &Value) -> Result<Telemetry, ApiError> {
    let sum = section(summary, "SUMMARY");
    if sum.is_none() && section_list(stats, "STATS").is_empty() {
        return Err(ApiError::Protocol(
            "neither summary nor stats has a SUMMARY or STATS section".into(),
        ));
    }
    let modules: Vec<Module<'_>> = mm_strings(stats)
        .into_iter()
        .map(|mm| Module(parse_mm_fields(mm)))
        .collect();
    let hashrate_ths = sum
        .and_then(reading::hashrate_ths)
        .or_else(|| sum_all(&modules, |m| m.one("GHSspd")).map(|ghs| ghs / 1000.0));
    let inlet_temp_c = modules
        .iter()
        .filter_map(Module::inlet)
        .fold(None, |acc: Option<f64>, t| {
            Some(acc.map_or(t, |a| a.min(t)))
        });
    let board_temps_c = modules.iter().flat_map(Module::board_temps).collect();
    let fan_rpm = modules.iter().flat_map(Module::fans).collect();
    let power_watts = sum_all(&modules, Module::wall_watts);
    let asleep = !modules.is_empty() && modules.iter().all(|m| m.soft_off() == Some(true));
    let state = if asleep {
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

impl MinerApi for AvalonClient {
    fn family(&self) -> Family {
        Family::Avalon
    }

    fn telemetry(&self) -> ApiFuture<'_, Telemetry> {
        Box::pin(async move {
            let raw = self.raw_status().await?;
            parse_raw_status(&raw)
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

    fn summary(mhs_5s: f64) -> Value {
        json!({"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"MHS 5s": mhs_5s, "MHS av": 1.0}]})
    }

    #[test]
    fn mm_id0_string_parses() {
        let stats = json!({"STATUS":[{"STATUS":"S"}],"STATS":[{"MM ID0":"Ver[1246-83-21] Temp[27] TMax[84] MTmax[80 84 79] Fan1[3300] Fan2[3310] FanR[60%] PS[0 1214 1316 242 3189 1320 3504] SoftOFF[0]"}]});
        let t = parse_telemetry(&summary(90_000_000.0), &stats).unwrap();
        assert_eq!(t.inlet_temp_c, Some(27.0));
        assert_eq!(t.board_temps_c, vec![80.0, 84.0, 79.0]);
        assert_eq!(t.fan_rpm, vec![3300, 3310]);
        assert_eq!(t.power_watts, Some(3504.0));
        assert_eq!(t.hashrate_ths, Some(90.0));
        assert_eq!(t.state, MinerState::Mining);
    }

    #[test]
    fn wallpower_wins_over_ps() {
        let stats =
            json!({"STATS":[{"MM ID0":"PS[0 1209 1187 297 3526 1188 3700] WALLPOWER[3731]"}]});
        let t = parse_telemetry(&summary(1.0), &stats).unwrap();
        assert_eq!(t.power_watts, Some(3731.0));
    }

    #[test]
    fn ps_of_another_layout_or_without_pin_is_unknown() {
        // Nano 3: Vout × Iout does not give PS[4]; its figures are not watts.
        let nano = json!({"STATS":[{"ID":"AVANANO0","MM ID0":"Temp[38] TMax[87] Fan1[3030] PS[0 0 0 3 2792 89 324] SoftOFF[0]"}]});
        let t = parse_telemetry(&summary(2_759_123.01), &nano).unwrap();
        assert_eq!(t.power_watts, None);
        assert_eq!(t.board_temps_c, vec![87.0]);
        // A1047: six entries, the PSU's output only.
        let a1047 = json!({"STATS":[{"MM ID0":"Temp[28] PS[0 1212 1315 174 2288 1320]"}]});
        assert_eq!(
            parse_telemetry(&summary(1.0), &a1047).unwrap().power_watts,
            None
        );
    }

    #[test]
    fn mini3_inlet_and_wall_power() {
        // Mini 3: inlet under `ITemp`, a 20 V PSU; PS[4] ≈ Vout × Iout, PS[6] the wall.
        let stats = json!({"STATS":[{"ID":"AVALON0","MM ID0":"HashStatus[0] Ver[Mini3-25011701_3f53b19] ITemp[39] OTemp[63] HBTemp[75] TMax[86] TAvg[82] Fan1[3000] FanR[100%] PS[0 1210 2083 37 760 2085 824] SoftOFF[0]"}]});
        let t = parse_telemetry(&summary(37_000_000.0), &stats).unwrap();
        assert_eq!(t.inlet_temp_c, Some(39.0));
        assert_eq!(t.board_temps_c, vec![86.0]);
        assert_eq!(t.fan_rpm, vec![3000]);
        assert_eq!(t.power_watts, Some(824.0));
    }

    #[test]
    fn soft_off_is_sleeping() {
        let stats = json!({"STATS":[{"MM ID0":"Temp[20] SoftOFF[1]"}]});
        let t = parse_telemetry(&summary(0.0), &stats).unwrap();
        assert_eq!(t.state, MinerState::Sleeping);
        assert!(t.board_temps_c.is_empty());
        // Avalon Q writes 4 once in standby.
        let q =
            json!({"STATS":[{"MM ID0:Summary":"'STATS':{Ver[Q-1] ITemp[26] TMax[0] SoftOFF[4]}"}]});
        assert_eq!(
            parse_telemetry(&summary(0.0), &q).unwrap().state,
            MinerState::Sleeping
        );
    }

    #[test]
    fn summary_key_of_avalon_q_and_its_wrapper() {
        let stats = json!({"STATS":[{"ID":"AVALON0","MM ID0:Summary":"'STATS':{Ver[Q-25052801_14a19a2] ITemp[26] HBITemp[27] TMax[71] Fan1[1200] Fan2[1210] PS[0 1216 2411 53 1298 2412 1391] GHSspd[55000.00] SoftOFF[0] WORKMODE[0] Nonce Mask[25]}"}]});
        let t = parse_telemetry(&summary(55_000_000.0), &stats).unwrap();
        assert_eq!(t.inlet_temp_c, Some(26.0));
        assert_eq!(t.board_temps_c, vec![71.0]);
        assert_eq!(t.fan_rpm, vec![1200, 1210]);
        assert_eq!(t.power_watts, Some(1391.0));
        assert_eq!(t.state, MinerState::Mining);
        let f = parse_mm_fields("'STATS':{Ver[Q-1] Nonce Mask[25]}");
        assert_eq!(f.get("Ver"), Some(&"Q-1"));
        assert_eq!(f.get("Mask"), Some(&"25"));
    }

    #[test]
    fn modules_of_an_auc_chain_add_up() {
        // cgminer 4.10 A7xx/A8xx: modules numbered from 1, one `Fan`, one STATS entry per
        // AUC, no PS and no SoftOFF.
        let stats = json!({"STATS":[
            {"ID":"AV70","MM ID1":"Ver[7411706-3162860] Temp[38] TMax[89] Fan[2550] GHSmm[6836.48]","MM ID2":"Ver[7411706-3162860] Temp[36] TMax[80] Fan[1440]","MM Count":2},
            {"ID":"AV71","MM ID1":"Ver[7411706-3162860] Temp[40] TMax[87] Fan[4440]","MM Count":1},
            {"ID":"POOL0","Pool Calls":0}
        ]});
        let t = parse_telemetry(&summary(20_000_000.0), &stats).unwrap();
        assert_eq!(t.inlet_temp_c, Some(36.0));
        let mut temps = t.board_temps_c.clone();
        temps.sort_by(f64::total_cmp);
        assert_eq!(temps, vec![80.0, 87.0, 89.0]);
        assert_eq!(t.fan_rpm.len(), 3);
        assert_eq!(t.power_watts, None);
        assert_eq!(t.state, MinerState::Mining);
    }

    #[test]
    fn power_of_modules_adds_up_only_when_all_report_it() {
        let both = json!({"STATS":[{"MM ID1":"WALLPOWER[1000]","MM ID2":"WALLPOWER[1100]"}]});
        assert_eq!(
            parse_telemetry(&summary(1.0), &both).unwrap().power_watts,
            Some(2100.0)
        );
        let one = json!({"STATS":[{"MM ID1":"WALLPOWER[1000]","MM ID2":"Temp[30]"}]});
        assert_eq!(
            parse_telemetry(&summary(1.0), &one).unwrap().power_watts,
            None
        );
    }

    #[test]
    fn missing_pieces_are_unknown_not_errors() {
        // Stats without module strings: the summary still counts.
        let t = parse_telemetry(&summary(90_000_000.0), &json!({"STATS":[{}]})).unwrap();
        assert_eq!(t.hashrate_ths, Some(90.0));
        assert_eq!(t.power_watts, None);
        assert!(t.fan_rpm.is_empty());
        // No summary: the modules' own speed stands in.
        let stats = json!({"STATS":[{"MM ID0":"GHSspd[199241.07] Temp[31]"}]});
        let t = parse_telemetry(&Value::Null, &stats).unwrap();
        assert!((t.hashrate_ths.unwrap() - 199.24107).abs() < 1e-9);
        // Summary without any rate and modules without speed: hashrate unknown, Idle.
        let t = parse_telemetry(
            &json!({"SUMMARY":[{"Elapsed":5}]}),
            &json!({"STATS":[{"MM ID0":"Temp[30] Fan1[x]"}]}),
        )
        .unwrap();
        assert_eq!(t.hashrate_ths, None);
        assert_eq!(t.state, MinerState::Idle);
        assert!(t.fan_rpm.is_empty());
        // Nothing of either: not a reply to read.
        assert!(matches!(
            parse_telemetry(&json!({"STATUS":[{"STATUS":"S"}]}), &json!({"id":1})),
            Err(ApiError::Protocol(_))
        ));
    }

    #[test]
    fn keys_run_together_or_hold_units() {
        let f =
            parse_mm_fields("Elapsed[103840]BOOTBY[1] MEMFREE[2601024 B] FACOPTS0[] DH[1.063%]");
        assert_eq!(f.get("BOOTBY"), Some(&"1"));
        assert_eq!(f.get("MEMFREE"), Some(&"2601024 B"));
        assert_eq!(f.get("FACOPTS0"), Some(&""));
        assert_eq!(numbers(f.get("DH").unwrap()), vec![1.063]);
    }
}
