//! `stratum+tcp://host:port`, `stratum+ssl://host:port` (or `stratum+tls://`) and
//! `stratum2+tcp://host:port/<authority key>` pool addresses.

use std::fmt;
use std::str::FromStr;

use super::sv2_key::AuthorityKey;

/// A pool's host and port; the host is resolved at connect time, so DNS changes are followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUrl {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether the connection is TLS (`stratum+ssl://`, `stratum+tls://`); a
    /// `client.reconnect` keeps it, so a redirect never downgrades to plain TCP.
    pub tls: bool,
    /// A Stratum V2 pool and the authority key its Noise certificate must be signed with;
    /// none for Stratum V1.
    pub sv2: Option<AuthorityKey>,
}

impl PoolUrl {
    /// `host:port`, as `tokio::net::TcpStream::connect` takes it.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for PoolUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls {
            "stratum+ssl"
        } else {
            "stratum+tcp"
        };
        match &self.sv2 {
            None => write!(f, "{scheme}://{}", self.authority()),
            Some(key) => write!(f, "stratum2+tcp://{}/{key}", self.authority()),
        }
    }
}

impl FromStr for PoolUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<PoolUrl, String> {
        let mut sv2 = None;
        let (tls, rest) = match s.split_once("://") {
            Some(("stratum+tcp" | "tcp", rest)) => (false, rest),
            Some(("stratum+ssl" | "stratum+tls", rest)) => (true, rest),
            Some(("stratum2+tcp", rest)) => {
                let (rest, key) = rest.split_once('/').ok_or_else(|| {
                    format!(
                        "{s:?}: a Stratum V2 pool needs its authority public key after the port \
                         (stratum2+tcp://host:port/<base58check key>)"
                    )
                })?;
                sv2 = Some(
                    key.trim_end_matches('/')
                        .parse::<AuthorityKey>()
                        .map_err(|err| format!("{s:?}: authority key: {err}"))?,
                );
                (false, rest)
            }
            Some((scheme, _)) => {
                return Err(format!(
                    "scheme {scheme:?} is not supported; use stratum+tcp://host:port, \
                     stratum+ssl://host:port for TLS, or stratum2+tcp://host:port/<authority key> \
                     for Stratum V2"
                ));
            }
            None => (false, s),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{s:?}: unclosed '[' in IPv6 address"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| format!("{s:?}: missing :port"))?;
            (host, port)
        } else {
            rest.rsplit_once(':').ok_or_else(|| {
                format!("{s:?}: missing :port (e.g. stratum+tcp://pool.example:3333)")
            })?
        };
        if host.is_empty() {
            return Err(format!("{s:?}: empty host"));
        }
        // A typo like `stratum+tcp//pool:3333` (no colon) leaves the scheme in the host;
        // refuse anything that is neither a host name nor an IP rather than dial it.
        let v6 = rest.starts_with('[');
        if !(v6 && host.parse::<std::net::Ipv6Addr>().is_ok() || !v6 && valid_host_name(host)) {
            return Err(format!(
                "{s:?}: {host:?} is not a host name or IP address \
                 (expected stratum+tcp://host:port, e.g. stratum+tcp://pool.example:3333)"
            ));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{s:?}: port {port:?} is not a number from 1 to 65535"))?;
        if port == 0 {
            return Err(format!("{s:?}: port 0 is not a pool port"));
        }
        Ok(PoolUrl {
            host: host.to_owned(),
            port,
            tls,
            sv2,
        })
    }
}

/// Letters, digits, `-`, `_` and dots between non-empty labels: what DNS names and IPv4
/// addresses are made of.
fn valid_host_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
