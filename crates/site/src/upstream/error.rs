//! Why a pool connection ended; each is followed by failover and a reconnect with back-off.

use std::time::Duration;

use hashgate_protocol::extranonce::ExtranonceError;
use hashgate_protocol::stratum::CodecError;

/// A pool connection failure. Every one is handled the same way (the channel fails over to
/// its backup and the pool is retried with back-off); the message says what to check.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// TCP connect failed: host down, port closed, DNS failure.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// `host:port` tried.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// TCP connect did not finish in time (firewall dropping packets?).
    #[error("connecting to {address} timed out after {after:?}")]
    ConnectTimeout {
        /// `host:port` tried.
        address: String,
        /// How long it waited.
        after: Duration,
    },
    /// The TLS handshake failed: a bad certificate (expired, wrong name, unknown issuer,
    /// not the pinned key) or no TLS on the port. Never retried as plain TCP.
    #[error("TLS to {address}: {source}")]
    Tls {
        /// `host:port` tried.
        address: String,
        /// What was wrong, and what to do.
        source: crate::tls::TlsError,
    },
    /// The pool closed the connection.
    #[error("pool closed the connection")]
    Closed,
    /// Reading or writing failed, or the pool sent a line above the length cap.
    #[error("connection failed: {0}")]
    Codec(#[from] CodecError),
    /// Writing to the pool blocked for longer than the silence timeout.
    #[error("writing to the pool stalled for {0:?}")]
    WriteStalled(Duration),
    /// A share (or the handshake) went unanswered for the silence timeout.
    #[error("pool left a request unanswered for {0:?}")]
    Unanswered(Duration),
    /// No new job for longer than the bound learned from the pool's cadence.
    #[error("pool sent no new job for {0:?}")]
    NoNewJob(Duration),
    /// The pool rejected every share of a run as long as `failover.reject_streak`.
    #[error("pool rejected {0} shares in a row")]
    RejectingAll(u32),
    /// Subscribe and the first job did not arrive in time.
    #[error("no subscribe answer and job within {0:?} of connecting")]
    SetupTimeout(Duration),
    /// The pool refused `mining.subscribe`.
    #[error("pool refused mining.subscribe: {0}")]
    SubscribeRefused(String),
    /// The pool refused the configured user: check `pools[].user` / `proxy.account`.
    #[error("pool refused user {user:?}: {reason}; check the pool's user and password")]
    Unauthorized {
        /// The user sent.
        user: String,
        /// The pool's message, if any.
        reason: String,
    },
    /// The pool's extranonce sizes cannot be split for miners.
    #[error("pool extranonce cannot be used: {0}")]
    Extranonce(#[from] ExtranonceError),
    /// The SV2 pool's Noise handshake failed: most often its certificate is not signed by
    /// the authority key in the pool URL (a wrong key, or not that pool).
    #[error(
        "SV2 handshake with {address} failed: {reason} (check the authority key in the pool URL)"
    )]
    Sv2Handshake {
        /// `host:port` tried.
        address: String,
        /// What the Noise layer said.
        reason: String,
    },
    /// The SV2 pool refused the connection setup, the channel, or closed the channel.
    #[error("SV2 pool refused {what}: {code}")]
    Sv2Refused {
        /// Which step.
        what: &'static str,
        /// The pool's error code.
        code: String,
    },
    /// An SV2 frame could not be decrypted or read; the Noise session cannot go on.
    #[error("SV2 connection failed: {0}")]
    Sv2Frame(String),
}
