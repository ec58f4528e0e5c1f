//! Management API clients, one module per firmware family, behind one small trait.
//!
//! The controller only ever sees [`MinerApi`]: telemetry in, sleep / wake / power limit out.
//! Each family module owns its transport quirks (cgminer JSON on TCP 4028, REST, encrypted
//! envelopes) and maps them onto these types.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// A boxed future returned by [`MinerApi`] calls, so miners of mixed families fit in one list.
pub type ApiFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 'a>>;

/// Firmware family of a miner, which decides the management protocol spoken to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Bitmain stock firmware: cgminer-style reads on 4028, control over HTTP CGI.
    Antminer,
    /// Canaan Avalon: cgminer-style reads and `ascset` control on 4028.
    Avalon,
    /// LuxOS: cgminer-style API on 4028 with a `logon` session for writes.
    Luxos,
    /// Braiins OS 25.07+: REST `/api/v1` with a bearer token.
    Braiins,
    /// Whatsminer btminer API v2: plaintext reads, AES-256-ECB encrypted writes.
    Whatsminer,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Family::Antminer => "antminer",
            Family::Avalon => "avalon",
            Family::Luxos => "luxos",
            Family::Braiins => "braiins",
            Family::Whatsminer => "whatsminer",
        };
        f.write_str(name)
    }
}

impl std::str::FromStr for Family {
    type Err = String;

    /// Parses the lower-case name (`antminer`, `avalon`, `luxos`, `braiins`, `whatsminer`),
    /// as the CLI's `--family` and the inventory spell it.
    fn from_str(s: &str) -> Result<Family, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "antminer" => Ok(Family::Antminer),
            "avalon" => Ok(Family::Avalon),
            "luxos" => Ok(Family::Luxos),
            "braiins" => Ok(Family::Braiins),
            "whatsminer" => Ok(Family::Whatsminer),
            other => Err(format!(
                "unknown firmware family {other:?} (expected antminer, avalon, luxos, braiins or whatsminer)"
            )),
        }
    }
}

/// What a miner says it is doing, as far as its API tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MinerState {
    /// Hashing (or ramping up to it).
    Mining,
    /// Asleep / paused / curtailed on request: hashboards off, control board up.
    Sleeping,
    /// Up, but the API reports neither mining nor sleeping (booting, error, no pool).
    Idle,
}

/// One reading of a miner's management API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Wall power in watts, when the firmware reports it (stock Antminer does not).
    pub power_watts: Option<f64>,
    /// Air inlet temperature in °C, when reported.
    pub inlet_temp_c: Option<f64>,
    /// Hashboard / chip temperatures in °C, one per board; empty when not reported.
    pub board_temps_c: Vec<f64>,
    /// Hashrate the firmware claims, in TH/s (compared against share-proven hashrate).
    pub hashrate_ths: Option<f64>,
    /// Fan speeds in RPM.
    pub fan_rpm: Vec<u32>,
    /// Mining / sleeping / idle.
    pub state: MinerState,
}

/// Login for a miner's management API; the password never reaches a log line.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Credentials {
    /// User name (e.g. `root` on Antminer and Braiins).
    pub user: String,
    /// Password; redacted by `Debug`.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a management API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The miner did not answer within the call's deadline.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// TCP connect or I/O failed.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The reply could not be understood (truncated, not JSON, missing fields).
    #[error("unreadable reply: {0}")]
    Protocol(String),
    /// The miner refused our credentials or session.
    #[error("authentication refused: {0}")]
    Auth(String),
    /// The miner understood the command and answered with an error status.
    #[error("miner refused the command: {0}")]
    Refused(String),
    /// This firmware family has no such control (e.g. a power limit on stock Avalon).
    #[error("{family} firmware does not support {what}")]
    Unsupported {
        /// The family asked.
        family: Family,
        /// The control it lacks.
        what: &'static str,
    },
}

impl From<hashgate_protocol::cgminer::ReplyError> for ApiError {
    fn from(e: hashgate_protocol::cgminer::ReplyError) -> Self {
        use hashgate_protocol::cgminer::ReplyError;
        match e {
            ReplyError::Unreadable(why) => ApiError::Protocol(why),
            ReplyError::Refused(why) => ApiError::Refused(why),
        }
    }
}

/// The management operations the power controller needs from any miner.
pub trait MinerApi: Send + Sync {
    /// Which firmware family this client speaks to.
    fn family(&self) -> Family;
    /// Reads power, temperatures, claimed hashrate, fans and state.
    fn telemetry(&self) -> ApiFuture<'_, Telemetry>;
    /// Puts the hashboards to sleep while the control board stays reachable.
    fn sleep(&self) -> ApiFuture<'_, ()>;
    /// Wakes a sleeping miner back to mining.
    fn wake(&self) -> ApiFuture<'_, ()>;
    /// Caps the miner's power draw in watts, where the firmware supports it.
    fn set_power_limit(&self, watts: u32) -> ApiFuture<'_, ()>;
}

pub mod antminer;
pub mod avalon;
pub mod braiins;
pub mod cgminer;
pub mod command;
pub mod digest;
pub mod fanout;
mod http;
pub mod luxos;
// Tolerant figure reading is part of the reply format (protocol crate).
pub use hashgate_protocol::cgminer::reading;
pub mod whatsminer;
pub mod whatsminer_crypto;

pub use cgminer::Timeouts;
pub use command::{MinerCommand, run_miner_command};
pub use fanout::run_bounded;

/// Builds the client for `family`, as a trait object so mixed families share one list.
///
/// `addr` is the management address: TCP 4028 for the cgminer-style families, the REST
/// address (port 80) for Braiins OS. Stock Antminer also takes its CGI writes on port 80 of
/// the same host; use [`antminer::AntminerClient::new`] to point them elsewhere.
pub fn client(
    family: Family,
    addr: std::net::SocketAddr,
    credentials: Credentials,
    timeouts: Timeouts,
) -> Box<dyn MinerApi> {
    match family {
        Family::Antminer => {
            let http = std::net::SocketAddr::new(addr.ip(), 80);
            Box::new(antminer::AntminerClient::new(
                addr,
                http,
                credentials,
                timeouts,
            ))
        }
        Family::Avalon => Box::new(avalon::AvalonClient::new(addr, timeouts)),
        Family::Luxos => Box::new(luxos::LuxosClient::new(addr, timeouts)),
        Family::Braiins => Box::new(braiins::BraiinsClient::new(addr, credentials, timeouts)),
        Family::Whatsminer => Box::new(whatsminer::WhatsminerClient::new(
            addr,
            credentials,
            timeouts,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_names_round_trip() {
        for family in [
            Family::Antminer,
            Family::Avalon,
            Family::Luxos,
            Family::Braiins,
            Family::Whatsminer,
        ] {
            assert_eq!(family.to_string().parse::<Family>(), Ok(family));
        }
        assert_eq!(" LuxOS ".parse::<Family>(), Ok(Family::Luxos));
        assert!("bitaxe".parse::<Family>().unwrap_err().contains("bitaxe"));
    }
}
