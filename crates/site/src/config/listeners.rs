//! `[[listeners]]`: several miner ports, each with its own difficulty range, starting
//! difficulty, connection cap, pool group and optional TLS.
//!
//! Without the section the site has one implicit listener, `default`, built from
//! `[proxy]` and `[vardiff]` as before (see [`Config::listeners`]). With it, `proxy.listen`
//! must not be written: two sources for the ports of one site would leave the reader to
//! guess which ones are open, so the file says it once.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::{Config, ConfigError};

/// Longest listener name: it is a metric label and a log field.
const MAX_NAME_LEN: usize = 64;

/// One `[[listeners]]` entry as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    /// Label in metrics, logs and the API (required).
    pub name: Option<String>,
    /// Address miners connect to (required; port 0 picks a free port).
    pub listen: Option<String>,
    /// Lowest vardiff difficulty on this port, default `vardiff.min_difficulty`.
    pub min_difficulty: Option<f64>,
    /// Highest vardiff difficulty on this port, default `vardiff.max_difficulty`.
    pub max_difficulty: Option<f64>,
    /// Difficulty a new miner on this port starts at, default `proxy.initial_difficulty`.
    pub initial_difficulty: Option<f64>,
    /// Connections this port holds at once, default `proxy.max_connections`.
    pub max_connections: Option<usize>,
    /// The pool group this port's miners are routed to.
    pub pool_group: Option<String>,
    /// PEM certificate chain: with `tls_key`, miners on this port speak Stratum over TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

/// The PEM files of a TLS listener, read when the listener is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// One miner-facing port and the session settings that differ between ports.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    /// Label in metrics (`listener`), logs and `/api/v1/listeners`.
    pub name: Arc<str>,
    /// Address miners connect to.
    pub listen: SocketAddr,
    /// Vardiff floor for miners on this port.
    pub min_difficulty: f64,
    /// Vardiff ceiling for miners on this port.
    pub max_difficulty: f64,
    /// The first `mining.set_difficulty` a miner on this port gets, inside the range.
    pub initial_difficulty: f64,
    /// Connections this port holds at once; `proxy.max_connections` still caps the site.
    pub max_connections: NonZeroUsize,
    /// Routes this port's miners to that pool group (`None`: the site's pools).
    pub pool_group: Option<Arc<str>>,
    /// Stratum over TLS on this port when set.
    pub tls: Option<ListenerTls>,
}

impl Config {
    /// The miner ports: the `[[listeners]]` entries, or the one implicit listener
    /// `default` on `proxy.listen` with the `[vardiff]` range and `proxy.initial_difficulty`
    /// (clamped into that range) when there are none.
    pub fn listeners(&self) -> Vec<ListenerConfig> {
        if self.listeners.is_empty() {
            vec![self.implicit_listener()]
        } else {
            self.listeners.clone()
        }
    }

    /// The listener of a file without `[[listeners]]`: `default` on `proxy.listen`.
    pub fn implicit_listener(&self) -> ListenerConfig {
        let (min, max) = (self.vardiff.min_difficulty, self.vardiff.max_difficulty);
        ListenerConfig {
            name: Arc::from("default"),
            listen: self.proxy.listen,
            min_difficulty: min,
            max_difficulty: max,
            initial_difficulty: self.proxy.initial_difficulty.clamp(min, max),
            max_connections: self.proxy.max_connections,
            pool_group: None,
            tls: None,
        }
    }
}

/// What a listener falls back to for a field it does not set.
pub(super) struct ListenerDefaults {
    /// `vardiff.min_difficulty`.
    pub min_difficulty: f64,
    /// `vardiff.max_difficulty`.
    pub max_difficulty: f64,
    /// `proxy.initial_difficulty`.
    pub initial_difficulty: f64,
    /// `proxy.max_connections`.
    pub max_connections: NonZeroUsize,
}

/// Validates `[[listeners]]`; `proxy_listen_written` says whether the file also set
/// `proxy.listen`.
pub(super) fn validate(
    raw: &[RawListener],
    proxy_listen_written: bool,
    defaults: &ListenerDefaults,
) -> Result<Vec<ListenerConfig>, ConfigError> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    if proxy_listen_written {
        return Err(ConfigError::invalid(
            "proxy.listen",
            "is not used when [[listeners]] are given: remove it (and `run --listen`), or add \
             it as a [[listeners]] entry (name = \"default\")",
        ));
    }
    let mut out: Vec<ListenerConfig> = Vec::with_capacity(raw.len());
    for (i, l) in raw.iter().enumerate() {
        let field = |name: &str| format!("listeners[{i}].{name}");
        let name = l
            .name
            .as_deref()
            .ok_or_else(|| ConfigError::invalid(field("name"), "missing"))?;
        let name_ok = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(ConfigError::invalid(
                field("name"),
                format!(
                    "{name:?}: use 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.' (it is a metric label)"
                ),
            ));
        }
        if out.iter().any(|o| &*o.name == name) {
            return Err(ConfigError::invalid(
                field("name"),
                format!("{name:?} is used twice"),
            ));
        }
        let listen_text = l
            .listen
            .as_deref()
            .ok_or_else(|| ConfigError::invalid(field("listen"), "missing (e.g. 0.0.0.0:3333)"))?;
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError::invalid(
                field("listen"),
                format!("{listen_text:?} is not an address:port (e.g. 0.0.0.0:3333)"),
            )
        })?;
        // Port 0 asks the kernel for a free port each time, so only real ports can clash.
        if listen.port() != 0
            && let Some(other) = out
                .iter()
                .find(|o| o.listen.port() == listen.port() && overlaps(o.listen, listen))
        {
            return Err(ConfigError::invalid(
                field("listen"),
                format!(
                    "{listen} is also listener {:?}'s address ({})",
                    other.name, other.listen
                ),
            ));
        }
        let min_difficulty = l.min_difficulty.unwrap_or(defaults.min_difficulty);
        let max_difficulty = l.max_difficulty.unwrap_or(defaults.max_difficulty);
        super::raw::positive(&field("min_difficulty"), min_difficulty)?;
        super::raw::positive(&field("max_difficulty"), max_difficulty)?;
        if min_difficulty > max_difficulty {
            return Err(ConfigError::invalid(
                field("min_difficulty"),
                format!("{min_difficulty} is above max_difficulty {max_difficulty}"),
            ));
        }
        let initial_difficulty = match l.initial_difficulty {
            Some(d) => {
                super::raw::positive(&field("initial_difficulty"), d)?;
                if !(min_difficulty..=max_difficulty).contains(&d) {
                    return Err(ConfigError::invalid(
                        field("initial_difficulty"),
                        format!(
                            "{d} is outside this listener's range {min_difficulty}..={max_difficulty}"
                        ),
                    ));
                }
                d
            }
            // The site-wide start moves into the port's range, as it always did into
            // `[vardiff]`'s.
            None => defaults
                .initial_difficulty
                .clamp(min_difficulty, max_difficulty),
        };
        let max_connections = match l.max_connections {
            None => defaults.max_connections,
            Some(n) => NonZeroUsize::new(n).ok_or_else(|| {
                ConfigError::invalid(field("max_connections"), "must be at least 1")
            })?,
        };
        let pool_group = match l.pool_group.as_deref().map(str::trim) {
            None => None,
            Some("") => {
                return Err(ConfigError::invalid(
                    field("pool_group"),
                    "is empty: name a [[pool_groups]] entry or leave it out",
                ));
            }
            Some(group) => Some(Arc::from(group)),
        };
        let tls = match (&l.tls_cert, &l.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                for (name, path) in [("tls_cert", cert), ("tls_key", key)] {
                    if path.as_os_str().is_empty() {
                        return Err(ConfigError::invalid(field(name), "is empty"));
                    }
                }
                Some(ListenerTls {
                    cert: cert.clone(),
                    key: key.clone(),
                })
            }
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    field("tls_key"),
                    "missing: tls_cert needs its private key",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    field("tls_cert"),
                    "missing: tls_key needs its certificate",
                ));
            }
        };
        out.push(ListenerConfig {
            name: Arc::from(name),
            listen,
            min_difficulty,
            max_difficulty,
            initial_difficulty,
            max_connections,
            pool_group,
            tls,
        });
    }
    Ok(out)
}

/// Whether two addresses on the same port would clash: the same IP, or either one the
/// unspecified address (which takes every IP of its family).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.ip() == b.ip()
        || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified()))
}
