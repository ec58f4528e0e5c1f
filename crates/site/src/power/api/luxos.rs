//! LuxOS: the cgminer-style API on 4028, plus a `logon` session for writes.
//!
//! Reads: `summary` (hashrate), `power` (watts), `temps`, `fans`, `config` (curtail mode).
//! Writes carry the session id as the first parameter: `curtail <sid>,sleep|wakeup`,
//! `profileset <sid>,<profile>`. LuxOS keeps one session and expires it when idle, so a
//! write refused for its session logs on again once and retries.

use std::net::SocketAddr;
use std::sync::Mutex;

use serde_json::Value;

use super::cgminer::{self, Timeouts, check_status, field, section, section_list};
use super::{ApiError, ApiFuture, Family, MinerApi, MinerState, Telemetry, reading};

/// Client for one LuxOS miner.
#[derive(Debug)]
pub struct LuxosClient {
    /// The miner's API address (TCP 4028).
    addr: SocketAddr,
    /// Deadlines for every call.
    timeouts: Timeouts,
    /// The session id from the last `logon`, reused until the miner refuses it.
    session: Mutex<Option<String>>,
}

impl LuxosClient {
    /// A client for the LuxOS API at `addr`.
    pub fn new(addr: SocketAddr, timeouts: Timeouts) -> LuxosClient {
        LuxosClient {
            addr,
            timeouts,
            session: Mutex::new(None),
        }
    }

    /// Reads every section telemetry needs, as raw replies (for `miner status`).
    ///
    /// # Errors
    /// Any transport error, or the miner refusing a read.
    pub async fn raw_status(&self) -> Result<Value, ApiError> {
        let sections = ["summary", "power", "temps", "fans", "config"];
        cgminer::read_sections(self.addr, &sections, self.timeouts).await
    }

    async fn logon(&self) -> Result<String, ApiError> {
        let reply = cgminer::command(self.addr, "logon", None, self.timeouts).await?;
        let reply = match check_status(&reply).map_err(ApiError::from) {
            Ok(()) => reply,
            // Only one session exists at a time; when another is open, `session` names it.
            Err(ApiError::Refused(_)) => {
                let reply = cgminer::command(self.addr, "session", None, self.timeouts).await?;
                check_status(&reply).map_err(|e| ApiError::Auth(e.to_string()))?;
                reply
            }
            Err(e) => return Err(e),
        };
        let sid = section(&reply, "SESSION")
            .and_then(|s| s.get("SessionID"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::Auth("logon gave no session id".into()))?
            .to_string();
        if let Ok(mut guard) = self.session.lock() {
            *guard = Some(sid.clone());
        }
        Ok(sid)
    }

    fn cached_session(&self) -> Option<String> {
        self.session.lock().ok().and_then(|g| g.clone())
    }

    fn forget_session(&self) {
        if let Ok(mut guard) = self.session.lock() {
            *guard = None;
        }
    }

    /// Runs a session-bound write: `<command> <sid>,<args>`, logging on again once when the
    /// miner says the session is gone.
    async fn write(&self, command: &str, args: &str) -> Result<Value, ApiError> {
        cgminer::with_deadline(self.timeouts.call, async {
            let mut retried = false;
            loop {
                let sid = match self.cached_session() {
                    Some(sid) => sid,
                    None => self.logon().await?,
                };
                let param = format!("{sid},{args}");
                let reply =
                    cgminer::command(self.addr, command, Some(&param), self.timeouts).await?;
                match check_status(&reply).map_err(ApiError::from) {
                    Ok(()) => return Ok(reply),
                    Err(ApiError::Refused(msg)) if is_session_error(&msg) => {
                        tracing::debug!(miner = %self.addr, %msg, "LuxOS session refused; logging on again");
                        self.forget_session();
                        if retried {
                            return Err(ApiError::Auth(msg));
                        }
                        retried = true;
                    }
                    Err(e) => return Err(e),
                }
            }
        })
        .await
    }
}

fn is_session_error(msg: &str) -> bool {
    let msg = msg.to_ascii_lowercase();
    msg.contains("session") || msg.contains("logon")
}

/// Temperature sensors facing the air intake: those whose `METADATA` label says so, or,
/// for firmware without `METADATA`, whose own name does.
fn intake_keys(temps: &Value) -> Vec<String> {
    let labelled: Vec<String> = section(temps, "METADATA")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, v)| {
                    reading::get(v, &["Label"])
                        .and_then(Value::as_str)
                        .is_some_and(is_intake)
                })
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    if !labelled.is_empty() {
        return labelled;
    }
    section_list(temps, "TEMPS")
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|board| board.keys())
        .filter(|k| is_intake(k))
        .cloned()
        .collect()
}

fn is_intake(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("intake") || name.contains("inlet")
}

/// Builds telemetry from the `summary`, `power`, `temps`, `fans` and `config` replies.
///
/// A reply that is missing or lacks a figure leaves that figure unknown; the summary's
/// shortest-window rate gives the hashrate in whichever unit it is written.
///
/// # Errors
/// [`ApiError::Protocol`] when none of the replies has its section.
pub fn parse_telemetry(
    summary: &Value,
    power: &Value,
    temps: &Value,
    fans: &Value,
    config: &Value,
) -> Result<Telemetry, ApiError> {
    let sum = section(summary, "SUMMARY");
    let boards = section_list(temps, "TEMPS");
    let power_section = section(power, "POWER");
    let fan_list = section_list(fans, "FANS");
    if sum.is_none() && boards.is_empty() && power_section.is_none() && fan_list.is_empty() {
        return Err(ApiError::Protocol(
            "no SUMMARY, POWER, TEMPS or FANS section in the replies".into(),
        ));
    }
    let hashrate_ths = sum.and_then(reading::hashrate_ths);
    let power_watts = power_section
        .and_then(|p| reading::num(p, &["Watts", "Power"]))
        .filter(|w| *w >= 0.0);

    let intake = intake_keys(temps);
    let mut board_temps_c = Vec::new();
    let mut inlet: Option<f64> = None;
    for board in boards {
        let Some(obj) = board.as_object() else {
            continue;
        };
        let hottest = obj
            .iter()
            .filter(|(k, _)| !matches!(reading::norm(k).as_str(), "id" | "temp" | "board"))
            .filter_map(|(_, v)| cgminer::number(Some(v)))
            .filter_map(reading::plausible_temp)
            .fold(None, |acc: Option<f64>, t| {
                Some(acc.map_or(t, |a| a.max(t)))
            });
        if let Some(t) = hottest {
            board_temps_c.push(t);
        }
        for key in &intake {
            if let Some(t) = reading::num(board, &[key]).and_then(reading::plausible_temp) {
                inlet = Some(inlet.map_or(t, |i| i.min(t)));
            }
        }
    }
    let fan_rpm = fan_list
        .iter()
        .filter_map(|f| reading::num(f, &["RPM"]))
        .map(|r| r.max(0.0) as u32)
        .collect();
    let curtail = section(config, "CONFIG")
        .and_then(|c| reading::get(c, &["CurtailMode"]))
        .and_then(Value::as_str)
        .unwrap_or("None");
    let state = if !curtail.eq_ignore_ascii_case("none") && !curtail.is_empty() {
        MinerState::Sleeping
    } else if hashrate_ths.is_some_and(|h| h > 0.0) {
        MinerState::Mining
    } else {
        MinerState::Idle
    };
    Ok(Telemetry {
        power_watts,
        inlet_temp_c: inlet,
        board_temps_c,
        hashrate_ths,
        fan_rpm,
        state,
    })
}

/// Picks the highest-power profile at or under `watts` from a `profiles` reply.
///
/// # Errors
/// [`ApiError::Refused`] when every profile draws more than `watts`.
pub fn pick_profile(profiles: &Value, watts: u32) -> Result<String, ApiError> {
    section_list(profiles, "PROFILES")
        .iter()
        .filter_map(|p| {
            let name = p.get("Profile Name")?.as_str()?;
            let w = field(p, "Watts")?;
            (w <= f64::from(watts)).then_some((w, name))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| name.to_string())
        .ok_or_else(|| ApiError::Refused(format!("no LuxOS profile at or under {watts} W")))
}

impl MinerApi for LuxosClient {
    fn family(&self) -> Family {
        Family::Luxos
    }

    fn telemetry(&self) -> ApiFuture<'_, Telemetry> {
        Box::pin(async move {
            let raw = self.raw_status().await?;
            let get = |k: &str| raw.get(k).cloned().unwrap_or(Value::Null);
            parse_telemetry(
                &get("summary"),
                &get("power"),
                &get("temps"),
                &get("fans"),
                &get("config"),
            )
        })
    }

    fn sleep(&self) -> ApiFuture<'_, ()> {
        Box::pin(async move { self.write("curtail", "sleep").await.map(drop) })
    }

    fn wake(&self) -> ApiFuture<'_, ()> {
        Box::pin(async move { self.write("curtail", "wakeup").await.map(drop) })
    }

    fn set_power_limit(&self, watts: u32) -> ApiFuture<'_, ()> {
        Box::pin(async move {
            let profiles = cgminer::read(self.addr, "profiles", self.timeouts).await?;
            let name = pick_profile(&profiles, watts)?;
            self.write("profileset", &name).await.map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn intake_by_sensor_name_when_there_is_no_metadata() {
        let temps = json!({"TEMPS":[{"ID":0,"TEMP":0,"Board":1,"ChipMax":71.0,"Inlet":31.5},
            {"ID":1,"TEMP":1,"Board":2,"ChipMax":74.0,"Inlet":30.0}]});
        let t = parse_telemetry(
            &json!({"SUMMARY":[{"GHS 5s":60000.0}]}),
            &Value::Null,
            &temps,
            &Value::Null,
            &Value::Null,
        )
        .unwrap();
        assert_eq!(t.board_temps_c, vec![71.0, 74.0]);
        assert_eq!(t.inlet_temp_c, Some(30.0));
        assert_eq!(t.power_watts, None);
        assert!(t.fan_rpm.is_empty());
        assert_eq!(t.state, MinerState::Mining);
    }

    #[test]
    fn missing_summary_leaves_hashrate_unknown() {
        let t = parse_telemetry(
            &Value::Null,
            &json!({"POWER":[{"Watts":"1051","PSU":false}]}),
            &Value::Null,
            &json!({"Fans":[{"RPM":1920}]}),
            &json!({"CONFIG":[{"CurtailMode":"None"}]}),
        )
        .unwrap();
        assert_eq!(t.hashrate_ths, None);
        assert_eq!(t.power_watts, Some(1051.0));
        assert_eq!(t.fan_rpm, vec![1920]);
        assert_eq!(t.state, MinerState::Idle);
        let none = Value::Null;
        assert!(matches!(
            parse_telemetry(&none, &none, &none, &none, &none),
            Err(ApiError::Protocol(_))
        ));
    }

    #[test]
    fn curtailed_is_sleeping_whatever_the_hashrate_says() {
        let t = parse_telemetry(
            &json!({"SUMMARY":[{"GHS 5s":0.0}]}),
            &Value::Null,
            &Value::Null,
            &Value::Null,
            &json!({"CONFIG":[{"CurtailMode":"Sleep"}]}),
        )
        .unwrap();
        assert_eq!(t.state, MinerState::Sleeping);
    }
}
