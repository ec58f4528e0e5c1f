//! The configuration file as written: optional fields with defaults, unknown fields refused.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::http::HttpConfigRaw;
use crate::power::inventory::PowerConfigRaw;
use crate::tls::{TlsClient, TlsRoots, TlsSettings, TlsSetupError, parse_pin};
use hashgate_protocol::vardiff::VardiffConfig;

use super::{
    Config, ConfigError, FailoverConfig, PoolConfig, PoolUrl, ProxyConfig, UpstreamWorker,
};

/// The whole file, before validation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[proxy]`
    #[serde(default)]
    pub proxy: RawProxy,
    /// `[[pools]]`, in failover order.
    #[serde(default)]
    pub pools: Vec<RawPool>,
    /// `[[listeners]]`: miner ports with settings of their own (none: one port from
    /// `[proxy]` and `[vardiff]`).
    #[serde(default)]
    pub listeners: Vec<super::listeners::RawListener>,
    /// `[vardiff]`
    #[serde(default)]
    pub vardiff: RawVardiff,
    /// `[failover]`
    #[serde(default)]
    pub failover: RawFailover,
    /// `[power]`: containers, miners and the gating policy (optional: without it no miner
    /// is ever put to sleep).
    #[serde(default)]
    pub power: Option<PowerConfigRaw>,
    /// `[http]`: the status server (`/metrics`, `/api/v1`, the power admin API).
    #[serde(default)]
    pub http: HttpConfigRaw,
    /// `[ledger]`: the hourly ledger file (optional: without it nothing is recorded).
    #[serde(default)]
    pub ledger: Option<crate::ledger::LedgerConfigRaw>,
    /// `[economics]`: coin price, fees, tariffs and the economic curtailment rule
    /// (optional: without it no miner is slept for economic reasons).
    #[serde(default)]
    pub economics: Option<crate::economics::EconomicsConfigRaw>,
    /// `[[pool_groups]]`: groups of pools sharing the hashrate by weight (optional: without
    /// them every pool is in one group).
    #[serde(default)]
    pub pool_groups: Vec<super::split::RawPoolGroup>,
    /// `[[routes]]`: worker-name patterns pinned to a pool group.
    #[serde(default)]
    pub routes: Vec<super::split::RawRoute>,
    /// `[split]`: the balancer's pace.
    #[serde(default)]
    pub split: super::split::RawSplit,
}

/// `[proxy]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    /// Listen address, default `0.0.0.0:3333`.
    pub listen: Option<String>,
    /// Connection cap, default 20,000.
    pub max_connections: Option<usize>,
    /// Seconds to subscribe and authorize, default 10.
    #[serde(default, deserialize_with = "seconds")]
    pub setup_timeout_secs: Option<f64>,
    /// Unauthorized connections per source address, default 256.
    pub max_unauthorized_per_source: Option<usize>,
    /// Unauthorized connections in total, default half of `max_connections`.
    pub max_unauthorized: Option<usize>,
    /// Setup deadline under pressure, default 2 s.
    #[serde(default, deserialize_with = "seconds")]
    pub setup_timeout_under_pressure_secs: Option<f64>,
    /// Seconds of silence before a miner is dropped, default 600.
    #[serde(default, deserialize_with = "seconds")]
    pub idle_timeout_secs: Option<f64>,
    /// Longest line in bytes, default 65,536.
    pub max_line_bytes: Option<usize>,
    /// Outbound queue per miner, default 64 messages.
    pub outbound_queue: Option<usize>,
    /// The site's pool account (required unless every pool names a user).
    pub account: Option<String>,
    /// `account` (default) or `per-miner`.
    pub upstream_worker: Option<String>,
    /// Largest miner extranonce2 in bytes, default 8.
    pub max_miner_extranonce2: Option<u8>,
    /// Miners per upstream connection, default 4,096.
    pub miners_per_upstream: Option<usize>,
    /// Seconds a share's ntime may run ahead of its job, default 7,200.
    #[serde(default, deserialize_with = "seconds")]
    pub ntime_window_secs: Option<f64>,
    /// Difficulty a new miner starts at, default 1,024 (vardiff moves it).
    pub initial_difficulty: Option<f64>,
    /// Forwarded shares a second each pool connection aims at, default 0.5 (0: never
    /// suggest a difficulty to the pool).
    pub upstream_shares_per_sec: Option<f64>,
}

/// One `[[pools]]` entry as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    /// Name for logs and metrics; default `pool<N>`.
    pub name: Option<String>,
    /// `stratum+tcp://host:port`.
    pub url: Option<String>,
    /// Account on this pool; default the proxy account.
    pub user: Option<String>,
    /// Password; default `x`.
    pub password: Option<String>,
    /// Hosts besides the pool's own that its `client.reconnect` may send the proxy to.
    pub reconnect_hosts: Option<Vec<String>>,
    /// TLS trust anchors: `bundled` (default), `system` or `both`.
    pub tls_roots: Option<String>,
    /// PEM file of extra TLS trust anchors (a site CA).
    pub tls_ca_file: Option<PathBuf>,
    /// SHA-256 (hex) of the pool certificate's SubjectPublicKeyInfo.
    pub tls_pin_sha256: Option<String>,
    /// Name sent as SNI and checked against the certificate; default the URL host.
    pub tls_server_name: Option<String>,
}

/// `[vardiff]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVardiff {
    /// Seconds between shares aimed at, default 5.
    #[serde(default, deserialize_with = "seconds")]
    pub target_interval_secs: Option<f64>,
    /// Lowest difficulty, default 0.001.
    pub min_difficulty: Option<f64>,
    /// Highest difficulty, default 2^40.
    pub max_difficulty: Option<f64>,
}

/// `[failover]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailover {
    /// Seconds a request (a share, the handshake) may go unanswered before the pool
    /// counts as down, default 3.
    #[serde(default, deserialize_with = "seconds")]
    pub silence_timeout_secs: Option<f64>,
    /// Shortest wait for a pool's next job before it counts as stuck, default 120; the
    /// bound grows with the pool's own notify cadence.
    #[serde(default, deserialize_with = "seconds")]
    pub job_timeout_floor_secs: Option<f64>,
    /// Consecutive shares a pool may reject before it counts as down, default 20 (0: never).
    pub reject_streak: Option<u32>,
    /// First reconnect delay in seconds, default 0.25.
    #[serde(default, deserialize_with = "seconds")]
    pub reconnect_min_secs: Option<f64>,
    /// Longest reconnect delay in seconds, default 30.
    #[serde(default, deserialize_with = "seconds")]
    pub reconnect_max_secs: Option<f64>,
    /// Seconds the preferred pool must be healthy before failing back, default 10.
    #[serde(default, deserialize_with = "seconds")]
    pub failback_after_secs: Option<f64>,
    /// Seconds to wait for a pool's answer to a submit, default 10.
    #[serde(default, deserialize_with = "seconds")]
    pub submit_timeout_secs: Option<f64>,
}

impl RawConfig {
    /// Reads a file without validating it.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`].
    pub fn load(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        RawConfig::parse(&text)
    }

    /// Parses TOML text without validating it.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] with the line and column of the problem.
    pub fn parse(text: &str) -> Result<RawConfig, ConfigError> {
        super::error::deserialize(text)
    }

    /// Checks every field and turns the file into typed values.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let p = &self.proxy;
        let listen_text = p.listen.as_deref().unwrap_or("0.0.0.0:3333");
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError::invalid(
                "proxy.listen",
                format!("{listen_text:?} is not an address:port (e.g. 0.0.0.0:3333)"),
            )
        })?;
        let account = p.account.clone().unwrap_or_default();
        if account.chars().any(char::is_whitespace) {
            return Err(ConfigError::invalid(
                "proxy.account",
                "must not contain spaces",
            ));
        }
        let upstream_worker = match p.upstream_worker.as_deref().unwrap_or("account") {
            "per-miner" => UpstreamWorker::PerMiner,
            "account" => UpstreamWorker::Account,
            other => {
                return Err(ConfigError::invalid(
                    "proxy.upstream_worker",
                    format!("{other:?}: use \"per-miner\" or \"account\""),
                ));
            }
        };
        let max_miner_extranonce2 = p.max_miner_extranonce2.unwrap_or(8);
        if !(2..=16).contains(&max_miner_extranonce2) {
            return Err(ConfigError::invalid(
                "proxy.max_miner_extranonce2",
                "must be 2 to 16 bytes (WhatsMiner firmware takes at most 8)",
            ));
        }
        let initial_difficulty = p.initial_difficulty.unwrap_or(1024.0);
        positive("proxy.initial_difficulty", initial_difficulty)?;
        let upstream_shares_per_sec = p.upstream_shares_per_sec.unwrap_or(0.5);
        if !(upstream_shares_per_sec.is_finite() && upstream_shares_per_sec >= 0.0) {
            return Err(ConfigError::invalid(
                "proxy.upstream_shares_per_sec",
                format!(
                    "{upstream_shares_per_sec} must be a number of 0 or more (0: never suggest a difficulty to the pool)"
                ),
            ));
        }
        let max_connections = nonzero("proxy.max_connections", p.max_connections, 20_000)?;
        let proxy = ProxyConfig {
            listen,
            max_connections,
            setup_timeout: secs("proxy.setup_timeout_secs", p.setup_timeout_secs, 10.0)?,
            max_unauthorized_per_source: nonzero(
                "proxy.max_unauthorized_per_source",
                p.max_unauthorized_per_source,
                256,
            )?,
            max_unauthorized: nonzero(
                "proxy.max_unauthorized",
                p.max_unauthorized,
                (max_connections.get() / 2).max(1),
            )?,
            setup_timeout_under_pressure: secs(
                "proxy.setup_timeout_under_pressure_secs",
                p.setup_timeout_under_pressure_secs,
                2.0,
            )?,
            idle_timeout: secs("proxy.idle_timeout_secs", p.idle_timeout_secs, 600.0)?,
            max_line_bytes: nonzero("proxy.max_line_bytes", p.max_line_bytes, 64 * 1024)?,
            outbound_queue: nonzero("proxy.outbound_queue", p.outbound_queue, 64)?,
            account: account.clone(),
            upstream_worker,
            max_miner_extranonce2,
            miners_per_upstream: nonzero("proxy.miners_per_upstream", p.miners_per_upstream, 4096)?,
            ntime_window: secs("proxy.ntime_window_secs", p.ntime_window_secs, 7200.0)?,
            initial_difficulty,
            upstream_shares_per_sec,
        };
        if proxy.max_line_bytes.get() < 1024 {
            return Err(ConfigError::invalid(
                "proxy.max_line_bytes",
                "must be at least 1024: a mining.notify with a deep merkle branch needs ~2 KiB",
            ));
        }

        if self.pools.is_empty() {
            return Err(ConfigError::invalid(
                "pools",
                "at least one [[pools]] entry (url = \"stratum+tcp://host:port\") is needed",
            ));
        }
        let mut pools = Vec::with_capacity(self.pools.len());
        for (i, raw) in self.pools.iter().enumerate() {
            let field = |name: &str| format!("pools[{i}].{name}");
            let url_text = raw
                .url
                .as_deref()
                .ok_or_else(|| ConfigError::invalid(field("url"), "missing"))?;
            let url: PoolUrl = url_text
                .parse()
                .map_err(|reason: String| ConfigError::invalid(field("url"), reason))?;
            let user = raw.user.clone().unwrap_or_else(|| account.clone());
            if user.is_empty() {
                return Err(ConfigError::invalid(
                    field("user"),
                    "no user for this pool and no proxy.account to default to",
                ));
            }
            let name = raw.name.clone().unwrap_or_else(|| format!("pool{i}"));
            if pools.iter().any(|p: &PoolConfig| p.name == name) {
                return Err(ConfigError::invalid(
                    field("name"),
                    format!("{name:?} is used twice"),
                ));
            }
            let tls = pool_tls(raw, &url, &field)?;
            pools.push(PoolConfig {
                tls,
                name,
                url,
                user,
                password: raw.password.clone().unwrap_or_else(|| "x".to_owned()),
                reconnect_hosts: raw
                    .reconnect_hosts
                    .iter()
                    .flatten()
                    .map(|h| h.trim().to_ascii_lowercase())
                    .collect(),
            });
        }

        let v = &self.vardiff;
        let min_difficulty = v.min_difficulty.unwrap_or(0.001);
        let max_difficulty = v.max_difficulty.unwrap_or(2f64.powi(40));
        positive("vardiff.min_difficulty", min_difficulty)?;
        positive("vardiff.max_difficulty", max_difficulty)?;
        if min_difficulty > max_difficulty {
            return Err(ConfigError::invalid(
                "vardiff.min_difficulty",
                format!("{min_difficulty} is above vardiff.max_difficulty {max_difficulty}"),
            ));
        }
        let vardiff = VardiffConfig {
            target_interval: secs("vardiff.target_interval_secs", v.target_interval_secs, 5.0)?,
            min_difficulty,
            max_difficulty,
            ..VardiffConfig::default()
        };

        let f = &self.failover;
        let failover = FailoverConfig {
            silence_timeout: secs("failover.silence_timeout_secs", f.silence_timeout_secs, 3.0)?,
            reconnect_min: secs("failover.reconnect_min_secs", f.reconnect_min_secs, 0.25)?,
            reconnect_max: secs("failover.reconnect_max_secs", f.reconnect_max_secs, 30.0)?,
            failback_after: secs("failover.failback_after_secs", f.failback_after_secs, 10.0)?,
            submit_timeout: secs("failover.submit_timeout_secs", f.submit_timeout_secs, 10.0)?,
            job_timeout_floor: secs(
                "failover.job_timeout_floor_secs",
                f.job_timeout_floor_secs,
                120.0,
            )?,
            reject_streak: f.reject_streak.unwrap_or(20),
        };
        if failover.reconnect_min > failover.reconnect_max {
            return Err(ConfigError::invalid(
                "failover.reconnect_min_secs",
                "is above failover.reconnect_max_secs",
            ));
        }

        let power = match &self.power {
            Some(raw) => Some(
                raw.validate()
                    .map_err(|e| ConfigError::Power(Box::new(e)))?,
            ),
            None => None,
        };

        let http = self.http.validate()?;
        let ledger = self
            .ledger
            .as_ref()
            .map(crate::ledger::LedgerConfigRaw::validate)
            .transpose()?;

        let economics = match &self.economics {
            Some(raw) => {
                let containers: Vec<std::sync::Arc<str>> = power
                    .iter()
                    .flat_map(|p| p.containers.iter().map(|c| c.name.clone()))
                    .collect();
                Some(raw.validate(&containers)?)
            }
            None => None,
        };

        let listeners = super::listeners::validate(
            &self.listeners,
            p.listen.is_some(),
            &super::listeners::ListenerDefaults {
                min_difficulty: vardiff.min_difficulty,
                max_difficulty: vardiff.max_difficulty,
                initial_difficulty: proxy.initial_difficulty,
                max_connections: proxy.max_connections,
            },
        )?;

        let split = super::split::validate(&self.pool_groups, &self.routes, &self.split, &pools)?;
        super::split::check_listener_groups(&listeners, &split)?;

        Ok(Config {
            proxy,
            listeners,
            split,
            pools,
            vardiff,
            failover,
            power,
            http,
            ledger,
            economics,
        })
    }
}

/// A `*_secs` field: a number of seconds (`10`, `0.25`) or a duration string in the syntax
/// of the command-line flags (`"10s"`, `"250ms"`, `"2m"`).
pub(super) fn seconds<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(f64),
        Text(String),
    }
    match Seconds::deserialize(deserializer) {
        Ok(Seconds::Number(secs)) => Ok(Some(secs)),
        Ok(Seconds::Text(text)) => super::parse_duration(&text)
            .map(|d| Some(d.as_secs_f64()))
            .map_err(serde::de::Error::custom),
        Err(_) => Err(serde::de::Error::custom(
            "expected a number of seconds or a duration like \"30s\"",
        )),
    }
}

pub(super) fn positive(field: &str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            format!("{value} must be a positive number"),
        ))
    }
}

pub(super) fn secs(field: &str, value: Option<f64>, default: f64) -> Result<Duration, ConfigError> {
    let value = value.unwrap_or(default);
    positive(field, value)?;
    Duration::try_from_secs_f64(value)
        .map_err(|_| ConfigError::invalid(field, format!("{value} seconds is out of range")))
}

fn nonzero(field: &str, value: Option<usize>, default: usize) -> Result<NonZeroUsize, ConfigError> {
    NonZeroUsize::new(value.unwrap_or(default))
        .ok_or_else(|| ConfigError::invalid(field, "must be at least 1"))
}

/// A pool's TLS client, built now so a bad CA file or pin fails the configuration check;
/// TLS options on a plain `stratum+tcp://` pool are refused rather than ignored.
fn pool_tls(
    raw: &RawPool,
    url: &PoolUrl,
    field: &dyn Fn(&str) -> String,
) -> Result<Option<TlsClient>, ConfigError> {
    let given = [
        ("tls_roots", raw.tls_roots.is_some()),
        ("tls_ca_file", raw.tls_ca_file.is_some()),
        ("tls_pin_sha256", raw.tls_pin_sha256.is_some()),
        ("tls_server_name", raw.tls_server_name.is_some()),
    ];
    if !url.tls {
        return match given.iter().find(|(_, set)| *set) {
            Some((name, _)) => Err(ConfigError::invalid(
                field(name),
                "only for a TLS pool (url = \"stratum+ssl://host:port\")",
            )),
            None => Ok(None),
        };
    }
    let roots = match raw.tls_roots.as_deref() {
        Some(text) => TlsRoots::parse(text)
            .map_err(|reason| ConfigError::invalid(field("tls_roots"), reason))?,
        None => TlsRoots::default(),
    };
    let pin_sha256 = raw
        .tls_pin_sha256
        .as_deref()
        .map(parse_pin)
        .transpose()
        .map_err(|reason| ConfigError::invalid(field("tls_pin_sha256"), reason))?;
    let settings = TlsSettings {
        roots,
        ca_file: raw.tls_ca_file.clone(),
        pin_sha256,
        server_name: raw.tls_server_name.clone(),
    };
    let client = TlsClient::new(settings).map_err(|err| {
        let at = if matches!(err, TlsSetupError::CaFile { .. }) {
            "tls_ca_file"
        } else {
            "tls_roots"
        };
        ConfigError::invalid(field(at), err.to_string())
    })?;
    client
        .server_name(&url.host)
        .map_err(|err| ConfigError::invalid(field("tls_server_name"), err.to_string()))?;
    Ok(Some(client))
}
