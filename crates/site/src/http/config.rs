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
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9184)),
            max_worker_series: DEFAULT_MAX_WORKER_SERIES,
            silent_after: DEFAULT_SILENT_AFTER,
        }
    }
}

impl HttpConfigRaw {
    /// Checks every field.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `http.listen` (not `ip:port`) or
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
        Ok(HttpConfig {
            listen,
            max_worker_series: self.max_worker_series.unwrap_or(defaults.max_worker_series),
            silent_after,
        })
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
    }
}
