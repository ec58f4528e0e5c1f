//! Braiins OS 25.07+: REST under `/api/v1` with a token from `auth/login`.
//!
//! | call | request |
//! |---|---|
//! | login | `POST /api/v1/auth/login {"username","password"}` → `{"token","timeout_s"}` |
//! | telemetry | `GET miner/stats`, `miner/hw/hashboards`, `cooling/state`, `miner/details` |
//! | sleep / wake | `PUT actions/pause` / `PUT actions/resume` |
//! | power limit | `PUT performance/power-target {"watt":N}` |
//!
//! The token goes in `Authorization` as is. It expires; a 401 logs in again once.

use std::net::SocketAddr;
use std::sync::Mutex;

use reqwest::header::AUTHORIZATION;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::cgminer::{self, Timeouts};
use super::{ApiError, ApiFuture, Credentials, Family, MinerApi, MinerState, Telemetry, http};

/// `miner/details` status meaning "paused on request".
pub const STATUS_PAUSED: i64 = 3;
/// `miner/details` status meaning "suspended" (hashboards off, e.g. curtailed).
pub const STATUS_SUSPENDED: i64 = 4;

/// Client for one Braiins OS miner.
#[derive(Debug)]
pub struct BraiinsClient {
    /// REST address (port 80).
    addr: SocketAddr,
    /// Web login.
    credentials: Credentials,
    /// Deadlines for every call.
    timeouts: Timeouts,
    /// HTTP client reused across calls.
    http: reqwest::Client,
    /// Token of the last login, reused until a 401.
    token: Mutex<Option<String>>,
}

impl BraiinsClient {
    /// A client for the Braiins OS REST API at `addr`.
    pub fn new(addr: SocketAddr, credentials: Credentials, timeouts: Timeouts) -> BraiinsClient {
        BraiinsClient {
            addr,
            credentials,
            timeouts,
            http: http::client(timeouts),
            token: Mutex::new(None),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/api/v1/{path}", self.addr)
    }

    async fn login(&self) -> Result<String, ApiError> {
        let body = serde_json::json!({
            "username": self.credentials.user,
            "password": self.credentials.password,
        });
        let resp = self
            .http
            .post(self.url("auth/login"))
            .json(&body)
            .send()
            .await
            .map_err(|e| http::error(e, self.timeouts))?;
        if matches!(
            resp.status(),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return Err(ApiError::Auth(format!(
                "login refused for user {:?}",
                self.credentials.user
            )));
        }
        if !resp.status().is_success() {
            return Err(ApiError::Refused(format!(
                "login answered HTTP {}",
                resp.status()
            )));
        }
        let reply = http::json_body(resp, self.timeouts).await?;
        let token = reply
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Protocol("login reply has no token".into()))?
            .to_string();
        if let Ok(mut guard) = self.token.lock() {
            *guard = Some(token.clone());
        }
        Ok(token)
    }

    /// One authenticated call; logs in first when needed and once more on a 401.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut retried = false;
        loop {
            let cached = self.token.lock().ok().and_then(|g| g.clone());
            let token = match cached {
                Some(t) => t,
                None => self.login().await?,
            };
            let mut req = self
                .http
                .request(method.clone(), self.url(path))
                .header(AUTHORIZATION, token);
            if let Some(body) = body {
                req = req.json(body);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| http::error(e, self.timeouts))?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !retried => {
                    tracing::debug!(miner = %self.addr, path, "Braiins token refused; logging in again");
                    retried = true;
                    if let Ok(mut guard) = self.token.lock() {
                        *guard = None;
                    }
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(ApiError::Auth(format!("{path}: token refused")));
                }
                s if s.is_success() => {
                    let bytes = resp
                        .bytes()
                        .await
                        .map_err(|e| http::error(e, self.timeouts))?;
                    if bytes.iter().all(u8::is_ascii_whitespace) {
                        return Ok(Value::Null);
                    }
                    return Ok(cgminer::parse_reply(&bytes)?);
                }
                s => {
                    let text = resp.text().await.unwrap_or_default();
                    return Err(ApiError::Refused(format!(
                        "{path} answered HTTP {s}: {text}"
                    )));
                }
            }
        }
    }

    /// Reads every document telemetry needs, as raw JSON (for `miner status`).
    ///
    /// # Errors
    /// Transport, auth or protocol errors of any of the reads.
    pub async fn raw_status(&self) -> Result<Value, ApiError> {
        cgminer::with_deadline(self.timeouts.call, async {
            let stats = self.call(Method::GET, "miner/stats", None).await?;
            let boards = self.call(Method::GET, "miner/hw/hashboards", None).await?;
            let cooling = self.call(Method::GET, "cooling/state", None).await?;
            let details = self.call(Method::GET, "miner/details", None).await?;
            Ok(serde_json::json!({
                "miner_stats": stats,
                "hashboards": boards,
                "cooling": cooling,
                "details": details,
            }))
        })
        .await
    }
}

fn path_f64(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cgminer::number(Some(cur))
}

/// Builds telemetry from `miner/stats`, `miner/hw/hashboards`, `cooling/state` and
/// `miner/details`; a figure missing from its document is unknown.
///
/// # Errors
/// [`ApiError::Protocol`] when none of the four documents is a JSON object.
pub fn parse_telemetry(
    stats: &Value,
    hashboards: &Value,
    cooling: &Value,
    details: &Value,
) -> Result<Telemetry, ApiError> {
    if ![stats, hashboards, cooling, details]
        .iter()
        .any(|d| d.is_object())
    {
        return Err(ApiError::Protocol(
            "none of miner/stats, hashboards, cooling, details is a JSON object".into(),
        ));
    }
    let ghs = path_f64(
        stats,
        &[
            "miner_stats",
            "real_hashrate",
            "last_5s",
            "gigahash_per_second",
        ],
    )
    .or_else(|| {
        path_f64(
            stats,
            &[
                "miner_stats",
                "real_hashrate",
                "last_1m",
                "gigahash_per_second",
            ],
        )
    });
    let hashrate_ths = ghs.map(|ghs| ghs / 1000.0);
    let power_watts = path_f64(stats, &["power_stats", "approximated_consumption", "watt"]);
    let boards = hashboards
        .get("hashboards")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let board_temps_c = boards
        .iter()
        .filter(|b| b.get("enabled").and_then(Value::as_bool).unwrap_or(true))
        .filter_map(|b| {
            path_f64(b, &["highest_chip_temp", "temperature", "degree_c"])
                .or_else(|| path_f64(b, &["board_temp", "degree_c"]))
        })
        .collect();
    let inlet_temp_c = boards
        .iter()
        .filter_map(|b| path_f64(b, &["lowest_inlet_temp", "degree_c"]))
        .fold(None, |acc: Option<f64>, t| {
            Some(acc.map_or(t, |a| a.min(t)))
        });
    let fan_rpm = cooling
        .get("fans")
        .and_then(Value::as_array)
        .map(|fans| {
            fans.iter()
                .filter_map(|f| path_f64(f, &["rpm"]))
                .map(|r| r.max(0.0) as u32)
                .collect()
        })
        .unwrap_or_default();
    let status = details.get("status").and_then(Value::as_i64);
    let state = match status {
        Some(STATUS_PAUSED) | Some(STATUS_SUSPENDED) => MinerState::Sleeping,
        _ if hashrate_ths.is_some_and(|h| h > 0.0) => MinerState::Mining,
        _ => MinerState::Idle,
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

impl MinerApi for BraiinsClient {
    fn family(&self) -> Family {
        Family::Braiins
    }

    fn telemetry(&self) -> ApiFuture<'_, Telemetry> {
        Box::pin(async move {
            let raw = self.raw_status().await?;
            parse_telemetry(
                &raw["miner_stats"],
                &raw["hashboards"],
                &raw["cooling"],
                &raw["details"],
            )
        })
    }

    fn sleep(&self) -> ApiFuture<'_, ()> {
        Box::pin(cgminer::with_deadline(self.timeouts.call, async move {
            self.call(Method::PUT, "actions/pause", None)
                .await
                .map(drop)
        }))
    }

    fn wake(&self) -> ApiFuture<'_, ()> {
        Box::pin(cgminer::with_deadline(self.timeouts.call, async move {
            self.call(Method::PUT, "actions/resume", None)
                .await
                .map(drop)
        }))
    }

    fn set_power_limit(&self, watts: u32) -> ApiFuture<'_, ()> {
        Box::pin(cgminer::with_deadline(self.timeouts.call, async move {
            let body = serde_json::json!({ "watt": watts });
            self.call(Method::PUT, "performance/power-target", Some(&body))
                .await
                .map(drop)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_missing_figure_is_unknown_but_no_document_is_an_error() {
        let stats = json!({"power_stats":{"approximated_consumption":{"watt":3137}}});
        let details = json!({"status": STATUS_PAUSED});
        let t = parse_telemetry(&stats, &json!({}), &json!({}), &details).unwrap();
        assert_eq!(t.hashrate_ths, None);
        assert_eq!(t.power_watts, Some(3137.0));
        assert_eq!(t.state, MinerState::Sleeping);
        let t = parse_telemetry(&json!({}), &json!({}), &json!({}), &json!({})).unwrap();
        assert_eq!(t.state, MinerState::Idle);
        assert!(matches!(
            parse_telemetry(&Value::Null, &Value::Null, &Value::Null, &Value::Null),
            Err(ApiError::Protocol(_))
        ));
    }
}
