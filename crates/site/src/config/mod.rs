//! Site configuration: TOML into raw `deny_unknown_fields` structs, then [`RawConfig::validate`]
//! into typed values, before any port is bound.
//!
//! Every validation error names the field it is about (`pools[1].url: ...`) so an operator
//! can fix the file without reading code. `hashgate check-config FILE` runs exactly this.

mod duration;
mod error;
mod listeners;
mod pool_url;
mod raw;
mod reload;
mod split;
mod sv2_key;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use crate::http::HttpConfig;
use crate::power::inventory::PowerConfig;
// The file sets the interval and bounds; the rest of the tuning keeps its defaults.
pub use hashgate_protocol::vardiff::VardiffConfig;

pub use duration::{DurationError, parse_duration};
pub use error::ConfigError;
pub use listeners::{ListenerConfig, ListenerTls, RawListener};
pub(crate) use pool_url::PoolUrl;
pub use raw::{RawConfig, RawPool};
pub use reload::{ReloadReport, restart_needed};
pub use split::{
    MAX_POOL_GROUPS, PoolGroup, RawPoolGroup, RawRoute, RawSplit, Route, SplitConfig, WorkerPattern,
};
pub(crate) use sv2_key::AuthorityKey;

/// A validated hashgate configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Miner-facing listener and session limits.
    pub proxy: ProxyConfig,
    /// `[[listeners]]` as written; empty when the file has none (see
    /// [`Config::listeners`] for the ports actually opened).
    pub listeners: Vec<ListenerConfig>,
    /// Upstream pools in failover order (the first is preferred).
    pub pools: Vec<PoolConfig>,
    /// Pool groups, their weights, worker routes and the balancer's pace.
    pub split: SplitConfig,
    /// Per-miner difficulty targeting.
    pub vardiff: VardiffConfig,
    /// How fast a dead or silent pool is left and retried.
    pub failover: FailoverConfig,
    /// Power gating inventory and policy, when the site uses it.
    pub power: Option<PowerConfig>,
    /// The status server.
    pub http: HttpConfig,
    /// `[ledger]`: the hourly ledger, when configured.
    pub ledger: Option<crate::ledger::LedgerConfig>,
    /// Mining economics and the economic curtailment rule, when configured.
    pub economics: Option<crate::economics::EconomicsConfig>,
}

/// How miners' worker names are presented to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamWorker {
    /// Each miner submits as `<account>.<worker>` where the pool accepts that name.
    PerMiner,
    /// Every share is submitted as the bare account: fewer pool-side authorizations.
    Account,
}

/// Miner-facing listener and session limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// Address miners connect to.
    pub listen: SocketAddr,
    /// Connection cap; past it new connections are refused (each costs a file descriptor).
    pub max_connections: NonZeroUsize,
    /// A miner must subscribe and authorize within this time or is dropped.
    pub setup_timeout: Duration,
    /// Connections not yet authorized that one source address may hold.
    pub max_unauthorized_per_source: NonZeroUsize,
    /// Connections not yet authorized over all sources (the rest of the cap stays for
    /// miners that authorize).
    pub max_unauthorized: NonZeroUsize,
    /// The setup deadline for a new connection while over half of `max_unauthorized` is
    /// in use, so slots held by connections that never authorize turn over fast.
    pub setup_timeout_under_pressure: Duration,
    /// A miner that sends nothing for this long is dropped.
    pub idle_timeout: Duration,
    /// Hard cap on one Stratum line; a longer one disconnects its sender.
    pub max_line_bytes: NonZeroUsize,
    /// Messages queued towards one miner before it is judged too slow and disconnected.
    pub outbound_queue: NonZeroUsize,
    /// The site's pool account: the pool user when a pool sets none.
    pub account: String,
    /// Per-miner or account-wide submission upstream.
    pub upstream_worker: UpstreamWorker,
    /// Largest extranonce2 handed to miners (WhatsMiner firmware fails above 8 bytes).
    pub max_miner_extranonce2: u8,
    /// Miners expected per upstream connection; sizes the extranonce prefix.
    pub miners_per_upstream: NonZeroUsize,
    /// How far past the job's ntime a share's ntime may be.
    pub ntime_window: Duration,
    /// Bounds for `mining.suggest_difficulty` and the initial difficulty.
    pub initial_difficulty: f64,
    /// Shares a second each pool connection aims to forward: the difficulty it suggests
    /// to the pool (`mining.suggest_difficulty`) follows from the channel's hashrate; 0
    /// never suggests.
    pub upstream_shares_per_sec: f64,
}

/// One upstream pool.
#[derive(Clone, PartialEq)]
pub struct PoolConfig {
    /// Name used in logs and metric labels.
    pub name: String,
    /// Where it listens.
    pub url: PoolUrl,
    /// Account to authorize as (defaults to the proxy account).
    pub user: String,
    /// Password sent with `mining.authorize` (most pools ignore it).
    pub password: String,
    /// Hosts besides its own (lower case) that the pool's `client.reconnect` may name; a
    /// redirect anywhere else is refused, since it would carry the account and the site's
    /// shares to a host the operator never chose.
    pub reconnect_hosts: Vec<String>,
    /// The TLS client for a `stratum+ssl://` pool; none for plain TCP.
    pub tls: Option<crate::tls::TlsClient>,
}

impl PoolConfig {
    /// Whether a `client.reconnect` to `host` may be followed: the pool's own host, or one
    /// the operator listed.
    pub fn may_redirect_to(&self, host: &str) -> bool {
        host.eq_ignore_ascii_case(&self.url.host)
            || self
                .reconnect_hosts
                .iter()
                .any(|allowed| host.eq_ignore_ascii_case(allowed))
    }
}

/// The password never reaches a log line or a panic message: some pools use it as a
/// real credential (payout settings, per-account secrets).
impl std::fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("reconnect_hosts", &self.reconnect_hosts)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Failover timing.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverConfig {
    /// A request (share, handshake) the pool leaves unanswered this long marks it down.
    pub silence_timeout: Duration,
    /// First reconnect delay; doubles per failure with jitter.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// A recovered preferred pool must stay healthy this long before miners go back to it.
    pub failback_after: Duration,
    /// An upstream submit with no answer after this long is counted as undelivered.
    pub submit_timeout: Duration,
    /// Shortest wait for a pool's next job before it counts as stuck; the bound used is
    /// the larger of this and a multiple of the pool's own notify cadence.
    pub job_timeout_floor: Duration,
    /// Consecutive rejected shares after which a pool counts as down (0: never).
    pub reject_streak: u32,
}

/// The configuration `hashgate run` uses when no file is given.
pub const DEFAULT_TOML: &str = include_str!("../../../../config/hashgate.toml");

impl Config {
    /// Reads and validates a TOML file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the file cannot be read, [`ConfigError::Parse`] for TOML
    /// syntax or unknown fields, [`ConfigError::Invalid`] naming the bad field.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        RawConfig::load(path)?.validate()
    }

    /// Parses and validates TOML text.
    ///
    /// # Errors
    /// As [`Config::load`], without the read error.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        RawConfig::parse(text)?.validate()
    }
}

/// What `hashgate check-config` found a file to be.
#[derive(Debug)]
pub enum CheckedFile {
    /// A whole site configuration.
    Site(Box<Config>),
    /// A power inventory on its own (the `[power]` keys at the top level, as in
    /// `config/power-example.toml`), to be pasted under `[power]` of a site file.
    PowerInventory(Box<PowerConfig>),
}

/// Reads a file and validates it as a site configuration or, when it has a top-level
/// `[[containers]]` or `[[miners]]` and no `[[pools]]`/`[proxy]`, as a standalone power
/// inventory.
///
/// # Errors
/// As [`Config::load`]; a power inventory's error is [`ConfigError::Power`].
pub fn check_file(path: &Path) -> Result<CheckedFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = error::deserialize(&text)?;
    let site_keys = ["proxy", "pools"].iter().any(|k| table.contains_key(*k));
    let power_keys = ["containers", "miners"]
        .iter()
        .any(|k| table.contains_key(*k));
    if power_keys && !site_keys {
        let raw: crate::power::inventory::PowerConfigRaw = error::deserialize(&text)?;
        let power = raw
            .validate()
            .map_err(|e| ConfigError::Power(Box::new(e)))?;
        return Ok(CheckedFile::PowerInventory(Box::new(power)));
    }
    Ok(CheckedFile::Site(Box::new(
        RawConfig::parse(&text)?.validate()?,
    )))
}

#[cfg(test)]
mod tests;
