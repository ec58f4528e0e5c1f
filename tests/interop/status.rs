//! hashgate's status API: the one place it reports shares it could not deliver.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// The share counts of `GET /api/v1/summary` (see `docs/API.md`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShareSummary {
    /// Shares hashgate accepted from miners (answered `true`).
    pub accepted: u64,
    /// Shares hashgate itself rejected (answered `false`).
    pub rejected: u64,
    /// Its own rejects by reason.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Forwarded shares the pool accepted, by hashgate's count.
    pub pool_accepted: u64,
    /// Forwarded shares the pool rejected, by hashgate's count.
    pub pool_rejected: u64,
    /// The pool's rejects by hashgate's reason label.
    pub pool_rejected_by_reason: BTreeMap<String, u64>,
    /// Shares that never got a pool verdict.
    pub undelivered: u64,
    /// Undelivered shares by reason.
    pub undelivered_by_reason: BTreeMap<String, u64>,
}

impl fmt::Display for ShareSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accepted from miners {}, rejected {} {:?}, pool accepted {}, pool rejected {} {:?}, \
             undelivered {} {:?}",
            self.accepted,
            self.rejected,
            nonzero(&self.rejected_by_reason),
            self.pool_accepted,
            self.pool_rejected,
            nonzero(&self.pool_rejected_by_reason),
            self.undelivered,
            nonzero(&self.undelivered_by_reason)
        )
    }
}

fn nonzero(map: &BTreeMap<String, u64>) -> BTreeMap<&str, u64> {
    map.iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (k.as_str(), *n))
        .collect()
}

/// Why the summary could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The status server did not answer (e.g. hashgate has stopped).
    #[error("GET {path} from {addr}: {source}")]
    Io {
        /// The server.
        addr: SocketAddr,
        /// The path asked for.
        path: &'static str,
        /// What failed.
        source: std::io::Error,
    },
    /// The answer was not the documented JSON.
    #[error("GET /api/v1/summary: unexpected answer: {0}")]
    Shape(String),
}

/// Reads `/api/v1/summary`'s `shares`.
pub fn summary(addr: SocketAddr) -> Result<ShareSummary, StatusError> {
    let body = get(addr, "/api/v1/summary")?;
    let v: Value =
        serde_json::from_str(&body).map_err(|e| StatusError::Shape(format!("{e}: {body}")))?;
    let s = &v["shares"];
    let count = |key: &str| {
        s[key]
            .as_u64()
            .ok_or_else(|| StatusError::Shape(format!("no shares.{key} in {body}")))
    };
    let counts = |key: &str| -> Result<BTreeMap<String, u64>, StatusError> {
        let obj = s[key]
            .as_object()
            .ok_or_else(|| StatusError::Shape(format!("no shares.{key} in {body}")))?;
        Ok(obj
            .iter()
            .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
            .collect())
    };
    Ok(ShareSummary {
        accepted: count("accepted")?,
        rejected: count("rejected")?,
        rejected_by_reason: counts("rejected_by_reason")?,
        pool_accepted: count("pool_accepted")?,
        pool_rejected: count("pool_rejected")?,
        pool_rejected_by_reason: counts("pool_rejected_by_reason")?,
        undelivered: count("undelivered")?,
        undelivered_by_reason: counts("undelivered_by_reason")?,
    })
}

/// Reads `/metrics` (the Prometheus exposition text).
pub fn metrics(addr: SocketAddr) -> Result<String, StatusError> {
    get(addr, "/metrics")
}

/// A plain HTTP/1.0 GET (one request, the server closes), so no client library is needed.
pub fn get(addr: SocketAddr, path: &'static str) -> Result<String, StatusError> {
    let io = |source| StatusError::Io { addr, path, source };
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(io)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(io)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| StatusError::Shape(format!("no HTTP header end in {answer:?}")))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(StatusError::Shape(head.to_owned()));
    }
    Ok(body.to_owned())
}

/// Reads `/api/v1/pool_groups`: each group's name, target and achieved share and moves.
pub fn pool_groups(addr: SocketAddr) -> Result<Vec<(String, f64, f64, u64)>, StatusError> {
    let body = get(addr, "/api/v1/pool_groups")?;
    let v: Value =
        serde_json::from_str(&body).map_err(|e| StatusError::Shape(format!("{e}: {body}")))?;
    let groups = v["groups"]
        .as_array()
        .ok_or_else(|| StatusError::Shape(format!("no groups in {body}")))?;
    Ok(groups
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap_or("").to_owned(),
                g["target_ratio"].as_f64().unwrap_or(f64::NAN),
                g["achieved_ratio"].as_f64().unwrap_or(f64::NAN),
                g["moves"].as_u64().unwrap_or(0),
            )
        })
        .collect())
}

/// Reads `/api/v1/miners`: each connected miner's 5-minute share-proven hashrate, H/s
/// (0 while it has none).
pub fn miner_hashrates(addr: SocketAddr) -> Result<Vec<(String, f64)>, StatusError> {
    let body = get(addr, "/api/v1/miners?limit=1000")?;
    let v: Value =
        serde_json::from_str(&body).map_err(|e| StatusError::Shape(format!("{e}: {body}")))?;
    let miners = v["miners"]
        .as_array()
        .ok_or_else(|| StatusError::Shape(format!("no miners in {body}")))?;
    Ok(miners
        .iter()
        .map(|m| {
            (
                m["worker"].as_str().unwrap_or("").to_owned(),
                m["hashrate"]["5m"].as_f64().unwrap_or(0.0),
            )
        })
        .collect())
}
