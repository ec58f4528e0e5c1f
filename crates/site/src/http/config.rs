//! `[http]`: where the status server listens and how many worker series it exports.
//!
//! A raw struct of its own until the lead merges it into [`crate::config`].

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

/// Default listen address: loopback only, the API has no authentication.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9184";
/// Default worker-series cap: about 60,000 series at ~30 per worker, comfortable for one
/// Prometheus.
pub const DEFAULT_MAX_WORKER_SERIES: usize = 2_000;
/// Default silence after which a miner is listed as `silent`: 60 shares at a 5 s target.
pub const DEFAULT_SILENT_AFTER: Duration = Duration::from_secs(300);
/// Default cap on open status-server connections: a few Prometheus servers, Grafana and
/// operators' curls, far below the descriptors miners need.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Default time to send a request head (and the idle keep-alive limit): a scraper sends
/// its head at once and scrapes every 15 s or more.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default descriptors kept free for miners and pools below `RLIMIT_NOFILE`.
pub const DEFAULT_FD_RESERVE: u64 = 256;
/// Default time shutdown lets status-server connections finish.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// `[http]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfigRaw {
    /// Listen address, default [`DEFAULT_LISTEN`].
    pub listen: Option<String>,
    /// Worker names with a series of their own, default [`DEFAULT_MAX_WORKER_SERIES`].
    pub max_worker_series: Option<usize>,
    /// Seconds without an accepted share before the API calls a miner silent, default 300.
    pub silent_after_secs: Option<f64>,
    /// Open connections at most, default [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: Option<usize>,
    /// Seconds to send a request head, also the idle keep-alive limit, default 10.
    pub header_read_timeout_secs: Option<f64>,
    /// Descriptors kept free for miners and pools, default [`DEFAULT_FD_RESERVE`].
    pub fd_reserve: Option<u64>,
    /// Seconds shutdown lets connections finish, default 2.
    pub shutdown_grace_secs: Option<f64>,
    /// Serve admin writes to peers other than loopback, default false.
    pub allow_remote_admin: Option<bool>,
    /// A listener of its own for the admin routes, default none (served on `listen`).
    pub admin_listen: Option<String>,
}

/// `[http]` validated.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Where `/metrics` and `/api/v1` listen.
    pub listen: SocketAddr,
    /// Worker names with a series of their own; the rest are summed as `_other`.
    pub max_worker_series: usize,
    /// Silence after which a miner is `silent` in the API.
    pub silent_after: Duration,
    /// Open connections at most; the next is closed at accept and counted.
    pub max_connections: usize,
    /// Time to send a request head, also the idle keep-alive limit.
    pub header_read_timeout: Duration,
    /// Descriptors kept free for miners and pools below `RLIMIT_NOFILE`.
    pub fd_reserve: u64,
    /// How long shutdown lets connections finish before dropping them.
    pub shutdown_grace: Duration,
    /// Admin writes (power pins, budgets) from peers other than loopback are served; off,
    /// they answer 403 whatever the token.
    pub allow_remote_admin: bool,
    /// Where the admin routes (pins, budgets, reload) listen when they should not share
    /// the listener `/metrics` is scraped on; `None` serves them on `listen`.
    pub admin_listen: Option<SocketAddr>,
}

impl HttpConfig {
    /// The accept loop's limits.
    pub fn limits(&self) -> super::serve::ServeLimits {
        super::serve::ServeLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            fd_reserve: self.fd_reserve,
            shutdown_grace: self.shutdown_grace,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9184)),
            max_worker_series: DEFAULT_MAX_WORKER_SERIES,
            silent_after: DEFAULT_SILENT_AFTER,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            fd_reserve: DEFAULT_FD_RESERVE,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            allow_remote_admin: false,
            admin_listen: None,
        }
    }
}

impl HttpConfigRaw {
    /// Checks every field.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `http.listen` or `http.admin_listen` (not `ip:port`) or
    /// `http.silent_after_secs` (not a positive number of seconds up to a day).
    pub fn validate(&self) -> Result<HttpConfig, ConfigError> {
        let defaults = HttpConfig::default();
        let listen = match &self.listen {
            None => defaults.listen,
            Some(text) => text.parse().map_err(|_| {
                ConfigError::invalid(
                    "http.listen",
                    format!("{text:?} is not an ip:port address (e.g. {DEFAULT_LISTEN})"),
                )
            })?,
        };
        let silent_after = match self.silent_after_secs {
            None => defaults.silent_after,
            Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Duration::from_secs_f64(s),
            Some(s) => {
                return Err(ConfigError::invalid(
                    "http.silent_after_secs",
                    format!("{s} is not a number of seconds in (0, 86400]"),
                ));
            }
        };
        let max_connections = match self.max_connections {
            None => defaults.max_connections,
            Some(n) if (1..=100_000).contains(&n) => n,
            Some(n) => {
                return Err(ConfigError::invalid(
                    "http.max_connections",
                    format!("{n} is not a connection count in 1..=100000"),
                ));
            }
        };
        Ok(HttpConfig {
            listen,
            max_worker_series: self.max_worker_series.unwrap_or(defaults.max_worker_series),
            silent_after,
            max_connections,
            header_read_timeout: seconds(
                "http.header_read_timeout_secs",
                self.header_read_timeout_secs,
                defaults.header_read_timeout,
                3_600.0,
            )?,
            fd_reserve: self.fd_reserve.unwrap_or(defaults.fd_reserve),
            shutdown_grace: seconds(
                "http.shutdown_grace_secs",
                self.shutdown_grace_secs,
                defaults.shutdown_grace,
                60.0,
            )?,
            allow_remote_admin: self.allow_remote_admin.unwrap_or(false),
            admin_listen: match &self.admin_listen {
                None => None,
                Some(text) => Some(text.parse().map_err(|_| {
                    ConfigError::invalid(
                        "http.admin_listen",
                        format!("{text:?} is not an ip:port address (e.g. 127.0.0.1:9185)"),
                    )
                })?),
            },
        })
    }
}

/// A positive number of seconds up to `max`, or `default` when absent.
fn seconds(
    field: &str,
    value: Option<f64>,
    default: Duration,
    max: f64,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 && s <= max => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(ConfigError::invalid(
            field,
            format!("{s} is not a number of seconds in (0, {max}]"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bind_loopback() {
        let config = HttpConfigRaw::default().validate().unwrap();
        assert_eq!(config, HttpConfig::default());
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert!(config.listen.ip().is_loopback());
    }

    #[test]
    fn fields_parse_and_bad_ones_are_named() {
        let raw: HttpConfigRaw = toml::from_str(
            "listen = \"0.0.0.0:9000\"\nmax_worker_series = 10\nsilent_after_secs = 60",
        )
        .unwrap();
        let config = raw.validate().unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.max_worker_series, 10);
        assert_eq!(config.silent_after, Duration::from_secs(60));
        let bad = HttpConfigRaw {
            listen: Some("localhost".into()),
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .starts_with("http.listen:")
        );
        let bad = HttpConfigRaw {
            silent_after_secs: Some(-1.0),
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .starts_with("http.silent_after_secs:")
        );
        assert!(toml::from_str::<HttpConfigRaw>("lissen = \"x\"").is_err());
        let raw: HttpConfigRaw = toml::from_str(
            "max_connections = 8\nheader_read_timeout_secs = 1.5\nfd_reserve = 10\nshutdown_grace_secs = 0.5\nallow_remote_admin = true",
        )
        .unwrap();
        let config = raw.validate().unwrap();
        assert_eq!(config.max_connections, 8);
        assert_eq!(config.header_read_timeout, Duration::from_millis(1500));
        assert_eq!(config.fd_reserve, 10);
        assert_eq!(config.shutdown_grace, Duration::from_millis(500));
        assert!(config.allow_remote_admin);
        for (text, field) in [
            ("max_connections = 0", "http.max_connections:"),
            (
                "header_read_timeout_secs = 0",
                "http.header_read_timeout_secs:",
            ),
            ("shutdown_grace_secs = 600", "http.shutdown_grace_secs:"),
        ] {
            let raw: HttpConfigRaw = toml::from_str(text).unwrap();
            assert!(raw.validate().unwrap_err().to_string().starts_with(field));
        }
    }
}
