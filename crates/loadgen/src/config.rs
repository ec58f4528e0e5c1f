//! What a load run does, checked before anything connects.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Duration;

/// The settings of one load run; [`LoadConfig::new`] gives sensible defaults.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The SV1 endpoint under test: a proxy or a pool.
    pub target: SocketAddr,
    /// More ports of the same proxy (its `[[listeners]]`): connection `i` goes to entry
    /// `i mod (1 + n)` of `target` followed by these.
    pub also_targets: Vec<SocketAddr>,
    /// Miner connections to open and hold.
    pub connections: NonZeroUsize,
    /// Total shares per second over all connections.
    pub rate: f64,
    /// Length of the submit window.
    pub duration: Duration,
    /// Spread source addresses over `127.0.0.2..=127.0.0.(1+K)` (0: let the kernel pick),
    /// so more than ~28,000 connections fit against one target port.
    pub source_ips: u8,
    /// Connections opened per second; `None` opens them all at once (a reconnect storm).
    pub connect_rate: Option<f64>,
    /// Send `mining.configure` with version rolling first, as modern firmware does.
    pub configure: bool,
    /// Send `mining.suggest_difficulty` with this value before subscribing.
    pub suggest_difficulty: Option<f64>,
    /// Worker names are `<prefix>.w<index>`.
    pub worker_prefix: String,
    /// Password sent with authorize.
    pub password: String,
    /// A submit with no answer after this long counts as timed out.
    pub answer_timeout: Duration,
    /// Each connection must be subscribed, authorized and have a job within this long of
    /// its connect attempt, or it counts as a setup failure.
    pub setup_timeout: Duration,
    /// Process whose resident memory to report (the proxy), from `/proc/<pid>/status`.
    pub target_pid: Option<u32>,
    /// Shares encoded per batch at most; batches are refilled as they run out.
    pub batch: NonZeroUsize,
    /// After the window, close every held connection and open them all again at once,
    /// timing how long until all are set up again.
    pub reconnect_storm: bool,
    /// Print a progress line on stderr every second (the binary does; tests and `compare`
    /// phases stay quiet).
    pub progress: bool,
}

impl LoadConfig {
    /// Defaults: 100 connections, 1,000 shares/s for 10 s, 2,000 connects/s, no source
    /// spreading, no configure, 5 s answer timeout, 10 s setup timeout.
    pub fn new(target: SocketAddr) -> Self {
        LoadConfig {
            target,
            also_targets: Vec::new(),
            connections: NonZeroUsize::new(100).unwrap_or(NonZeroUsize::MIN),
            rate: 1000.0,
            duration: Duration::from_secs(10),
            source_ips: 0,
            connect_rate: Some(2000.0),
            configure: false,
            suggest_difficulty: None,
            worker_prefix: "loadgen".into(),
            password: "x".into(),
            answer_timeout: Duration::from_secs(5),
            setup_timeout: Duration::from_secs(10),
            target_pid: None,
            batch: NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN),
            reconnect_storm: false,
            progress: false,
        }
    }

    /// Checks the values a run cannot go with.
    ///
    /// # Errors
    /// [`LoadError`] naming the bad setting.
    pub fn validate(&self) -> Result<(), LoadError> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(LoadError::BadRate(self.rate));
        }
        if let Some(r) = self.connect_rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err(LoadError::BadConnectRate(r));
        }
        if let Some(d) = self.suggest_difficulty
            && !(d.is_finite() && d > 0.0)
        {
            return Err(LoadError::BadSuggestedDifficulty(d));
        }
        if self.duration.is_zero() || self.answer_timeout.is_zero() || self.setup_timeout.is_zero()
        {
            return Err(LoadError::ZeroDuration);
        }
        if self.source_ips > 0 {
            for target in std::iter::once(&self.target).chain(&self.also_targets) {
                if !target.ip().is_loopback() || !target.is_ipv4() {
                    return Err(LoadError::SourceIpsNeedLoopback(*target));
                }
            }
            if self.source_ips > 254 {
                return Err(LoadError::TooManySourceIps(self.source_ips));
            }
        }
        if self.worker_prefix.is_empty() {
            return Err(LoadError::EmptyWorkerPrefix);
        }
        Ok(())
    }

    /// Where connection `index` connects: the targets in turn.
    pub fn target_for(&self, index: usize) -> SocketAddr {
        match index % (1 + self.also_targets.len()) {
            0 => self.target,
            i => self.also_targets.get(i - 1).copied().unwrap_or(self.target),
        }
    }

    /// The source address of connection `index`, when spreading.
    pub fn source_for(&self, index: usize) -> Option<SocketAddr> {
        if self.source_ips == 0 {
            return None;
        }
        let k = usize::from(self.source_ips);
        // 2 + (index % k) ≤ 2 + 253 = 255: fits in the last octet.
        let last = 2 + (index % k) as u8;
        Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
            0,
        ))
    }
}

/// Why a load run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The share rate is not a positive number.
    #[error("rate must be a positive number of shares per second, got {0}")]
    BadRate(f64),
    /// The connect rate is not a positive number.
    #[error("connect rate must be a positive number of connections per second, got {0}")]
    BadConnectRate(f64),
    /// The suggested difficulty is not a positive number.
    #[error("suggested difficulty must be a positive number, got {0}")]
    BadSuggestedDifficulty(f64),
    /// A duration or timeout is zero.
    #[error("duration, answer timeout and setup timeout must be above zero")]
    ZeroDuration,
    /// Source spreading over 127.0.0.x only reaches a loopback IPv4 target.
    #[error("--source-ips needs a 127.x.x.x target (127.0.0.x sources cannot reach {0})")]
    SourceIpsNeedLoopback(SocketAddr),
    /// More source addresses than 127.0.0.2..=127.0.0.255 holds.
    #[error("--source-ips {0} is above 254 (127.0.0.2..=127.0.0.255)")]
    TooManySourceIps(u8),
    /// Worker names need a prefix.
    #[error("worker prefix must not be empty")]
    EmptyWorkerPrefix,
    /// The process may not open enough files for the connections asked for.
    #[error(
        "{need} open files needed for {connections} connections but the limit is {limit}; \
         lower --connections (the hard limit cannot be raised from inside the process)"
    )]
    FileLimit {
        /// Connections asked for.
        connections: usize,
        /// Files needed, with a margin.
        need: u64,
        /// The soft limit after raising it to the hard one.
        limit: u64,
    },
    /// No connection got as far as a job.
    #[error("no connection was set up ({failures} failed); first error: {first_error}")]
    NoConnection {
        /// Connections that failed.
        failures: usize,
        /// The most common error seen.
        first_error: String,
    },
    /// The in-process simulated pool could not start.
    #[error("simulated pool: {0}")]
    SimPool(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LoadConfig {
        LoadConfig::new(SocketAddr::from(([127, 0, 0, 1], 3333)))
    }

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(cfg().validate().is_ok());
        let bad = LoadConfig { rate: 0.0, ..cfg() };
        assert!(matches!(bad.validate(), Err(LoadError::BadRate(_))));
        let bad = LoadConfig {
            connect_rate: Some(f64::NAN),
            ..cfg()
        };
        assert!(matches!(bad.validate(), Err(LoadError::BadConnectRate(_))));
        let bad = LoadConfig {
            duration: Duration::ZERO,
            ..cfg()
        };
        assert!(matches!(bad.validate(), Err(LoadError::ZeroDuration)));
        let remote = LoadConfig {
            source_ips: 3,
            ..LoadConfig::new(SocketAddr::from(([10, 0, 0, 1], 3333)))
        };
        assert!(matches!(
            remote.validate(),
            Err(LoadError::SourceIpsNeedLoopback(_))
        ));
        let many = LoadConfig {
            source_ips: 255,
            ..cfg()
        };
        assert!(matches!(
            many.validate(),
            Err(LoadError::TooManySourceIps(255))
        ));
    }

    #[test]
    fn connections_take_the_targets_in_turn() {
        let other = SocketAddr::from(([127, 0, 0, 1], 3334));
        let c = LoadConfig {
            also_targets: vec![other],
            ..cfg()
        };
        let ports: Vec<u16> = (0..4).map(|i| c.target_for(i).port()).collect();
        assert_eq!(ports, [3333, 3334, 3333, 3334]);
        assert_eq!(cfg().target_for(7).port(), 3333);
        let remote = LoadConfig {
            source_ips: 2,
            also_targets: vec![SocketAddr::from(([10, 0, 0, 1], 3334))],
            ..cfg()
        };
        assert!(matches!(
            remote.validate(),
            Err(LoadError::SourceIpsNeedLoopback(_))
        ));
    }

    #[test]
    fn sources_cycle_from_127_0_0_2() {
        let c = LoadConfig {
            source_ips: 3,
            ..cfg()
        };
        let ips: Vec<String> = (0..4)
            .map(|i| {
                c.source_for(i)
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(ips, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.2"]);
        let c = LoadConfig {
            source_ips: 254,
            ..cfg()
        };
        assert_eq!(
            c.source_for(253).map(|a| a.ip().to_string()),
            Some("127.0.0.255".into())
        );
        assert_eq!(cfg().source_for(0), None);
    }
}
