//! `hashgate miner status|sleep|wake|power-limit`: one call to one miner, answered as JSON.
//!
//! The operator's first debugging tool, so `status` shows what the miner itself said (the
//! raw replies, after the framing repairs) next to the telemetry hashgate reads from it.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::antminer::AntminerClient;
use super::avalon::AvalonClient;
use super::braiins::BraiinsClient;
use super::luxos::LuxosClient;
use super::whatsminer::WhatsminerClient;
use super::{ApiError, Credentials, Family, MinerApi, Timeouts};

/// What to do to the miner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinerCommand {
    /// Read telemetry and the raw replies behind it.
    Status,
    /// Put the hashboards to sleep.
    Sleep,
    /// Wake the miner.
    Wake,
    /// Cap the power draw in watts.
    PowerLimit(u32),
}

/// Where and how to reach the miner for [`run_miner_command`].
#[derive(Debug, Clone)]
pub struct Target {
    /// Firmware family.
    pub family: Family,
    /// Management address (4028, or the REST port for Braiins).
    pub addr: SocketAddr,
    /// Stock Antminer web (CGI) address; defaults to port 80 of `addr`'s host.
    pub web: Option<SocketAddr>,
    /// Login, where the family needs one.
    pub credentials: Credentials,
    /// Deadlines.
    pub timeouts: Timeouts,
}

enum AnyClient {
    Antminer(AntminerClient),
    Avalon(AvalonClient),
    Luxos(LuxosClient),
    Braiins(BraiinsClient),
    Whatsminer(WhatsminerClient),
}

impl AnyClient {
    fn new(t: &Target) -> AnyClient {
        match t.family {
            Family::Antminer => AnyClient::Antminer(AntminerClient::new(
                t.addr,
                t.web.unwrap_or(SocketAddr::new(t.addr.ip(), 80)),
                t.credentials.clone(),
                t.timeouts,
            )),
            Family::Avalon => AnyClient::Avalon(AvalonClient::new(t.addr, t.timeouts)),
            Family::Luxos => AnyClient::Luxos(LuxosClient::new(t.addr, t.timeouts)),
            Family::Braiins => AnyClient::Braiins(BraiinsClient::new(
                t.addr,
                t.credentials.clone(),
                t.timeouts,
            )),
            Family::Whatsminer => AnyClient::Whatsminer(WhatsminerClient::new(
                t.addr,
                t.credentials.clone(),
                t.timeouts,
            )),
        }
    }

    fn api(&self) -> &dyn MinerApi {
        match self {
            AnyClient::Antminer(c) => c,
            AnyClient::Avalon(c) => c,
            AnyClient::Luxos(c) => c,
            AnyClient::Braiins(c) => c,
            AnyClient::Whatsminer(c) => c,
        }
    }

    async fn raw(&self) -> Result<Value, ApiError> {
        match self {
            AnyClient::Antminer(c) => c.raw_status().await,
            AnyClient::Avalon(c) => c.raw_status().await,
            AnyClient::Luxos(c) => c.raw_status().await,
            AnyClient::Braiins(c) => c.raw_status().await,
            AnyClient::Whatsminer(c) => c.raw_status().await,
        }
    }
}

/// Runs one command against one miner and returns what to print.
///
/// `status` → `{"family","address","telemetry":{..},"raw":{..}}`; the writes →
/// `{"family","address","command","ok":true}`.
///
/// # Errors
/// Whatever the miner call fails with: timeout, I/O, protocol, auth, refusal, unsupported.
pub async fn run_miner_command(target: &Target, command: MinerCommand) -> Result<Value, ApiError> {
    let client = AnyClient::new(target);
    let api = client.api();
    let base = |extra: Value| {
        let mut out = json!({
            "family": target.family,
            "address": target.addr.to_string(),
        });
        if let (Some(out), Value::Object(extra)) = (out.as_object_mut(), extra) {
            out.extend(extra);
        }
        out
    };
    match command {
        MinerCommand::Status => {
            let telemetry = api.telemetry().await?;
            let raw = client.raw().await?;
            let telemetry =
                serde_json::to_value(telemetry).map_err(|e| ApiError::Protocol(e.to_string()))?;
            Ok(base(json!({ "telemetry": telemetry, "raw": raw })))
        }
        MinerCommand::Sleep => {
            api.sleep().await?;
            Ok(base(json!({ "command": "sleep", "ok": true })))
        }
        MinerCommand::Wake => {
            api.wake().await?;
            Ok(base(json!({ "command": "wake", "ok": true })))
        }
        MinerCommand::PowerLimit(watts) => {
            api.set_power_limit(watts).await?;
            Ok(base(
                json!({ "command": "power_limit", "watts": watts, "ok": true }),
            ))
        }
    }
}
