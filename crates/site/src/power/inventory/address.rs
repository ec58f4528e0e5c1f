//! Where a miner's management API or a meter answers, and each family's default port.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::power::api::Family;

/// A management or meter address: an IP socket address, or a host name with a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A literal IP address and port.
    Socket(SocketAddr),
    /// A host name resolved by the driver at connect time.
    Host {
        /// DNS name.
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Socket(addr) => write!(f, "{addr}"),
            Address::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl Address {
    /// Parses `ip`, `ip:port`, `[v6]:port`, `host` or `host:port`; a missing port takes
    /// `default_port` (none means the port is required).
    ///
    /// # Errors
    /// A text explaining what is wrong, for the caller to wrap with the field name.
    pub fn parse(text: &str, default_port: Option<u16>) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Address::Socket(addr));
        }
        let need_port = || format!("\"{text}\" needs a port (host:port)");
        if let Ok(ip) = text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            let port = default_port.ok_or_else(need_port)?;
            return Ok(Address::Socket(SocketAddr::new(ip, port)));
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("\"{text}\" has no valid port (1-65535)"))?;
                (host, port)
            }
            None => (text, default_port.ok_or_else(need_port)?),
        };
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !valid_host {
            return Err(format!("\"{text}\" is not an IP address or host name"));
        }
        Ok(Address::Host {
            host: host.to_owned(),
            port,
        })
    }
}

/// The management port a family listens on when the config gives none.
pub fn default_port(family: Family) -> u16 {
    match family {
        // Braiins OS 25.07+ speaks REST over plain HTTP.
        Family::Braiins => 80,
        Family::Antminer | Family::Avalon | Family::Luxos | Family::Whatsminer => 4028,
    }
}
