//! Why a miner session ended: one typed reason per way out, for logs and metrics.

use std::io;

/// Why a miner connection was closed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionEnd {
    /// The miner closed the connection.
    #[error("miner closed the connection")]
    PeerClosed,
    /// The proxy is shutting down.
    #[error("proxy shutting down")]
    Shutdown,
    /// Subscribe and authorize were not both done within the setup timeout.
    #[error("no subscribe and authorize within the setup timeout")]
    SetupTimeout,
    /// The miner sent nothing for the idle timeout.
    #[error("miner silent for the idle timeout")]
    IdleTimeout,
    /// A line exceeded the maximum line length.
    #[error("line longer than {max} bytes")]
    LineTooLong {
        /// The configured maximum.
        max: usize,
    },
    /// Too many malformed lines in a row: the peer does not speak Stratum.
    #[error("{count} malformed lines in a row")]
    TooManyMalformed {
        /// How many in a row.
        count: u32,
    },
    /// The outbound queue filled up: the miner does not read what it is sent.
    #[error("outbound queue full ({lines} lines): miner too slow to read")]
    SlowConsumer {
        /// The queue bound.
        lines: usize,
    },
    /// No pool has connected, so the miner could not be given an extranonce.
    #[error("no upstream pool available for subscribe")]
    NoUpstream,
    /// Every upstream channel is full.
    #[error("no extranonce space left: {0}")]
    Full(String),
    /// The miner was told to reconnect (sizes changed and it cannot take set_extranonce).
    #[error("miner told to reconnect")]
    Reconnected,
    /// The TLS handshake of a TLS listener failed or did not finish in time (a miner
    /// speaking plain Stratum to a TLS port ends here).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// Reading or writing the socket failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
}

impl SessionEnd {
    /// Every label, in [`SessionEnd::index`] order.
    pub(crate) const LABELS: [&'static str; 12] = [
        "peer_closed",
        "shutdown",
        "setup_timeout",
        "idle_timeout",
        "line_too_long",
        "malformed",
        "slow_consumer",
        "no_upstream",
        "full",
        "reconnected",
        "io",
        "tls",
    ];

    /// Position of this reason in [`SessionEnd::LABELS`].
    pub(crate) const fn index(&self) -> usize {
        match self {
            SessionEnd::PeerClosed => 0,
            SessionEnd::Shutdown => 1,
            SessionEnd::SetupTimeout => 2,
            SessionEnd::IdleTimeout => 3,
            SessionEnd::LineTooLong { .. } => 4,
            SessionEnd::TooManyMalformed { .. } => 5,
            SessionEnd::SlowConsumer { .. } => 6,
            SessionEnd::NoUpstream => 7,
            SessionEnd::Full(_) => 8,
            SessionEnd::Reconnected => 9,
            SessionEnd::Io(_) => 10,
            SessionEnd::Tls(_) => 11,
        }
    }

    /// A stable short label for metrics (`reason="idle_timeout"`).
    pub(crate) fn label(&self) -> &'static str {
        match Self::LABELS.get(self.index()) {
            Some(label) => label,
            None => "io",
        }
    }
}
