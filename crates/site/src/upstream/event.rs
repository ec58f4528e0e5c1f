//! What a pool connection hands its channel server: work, and how it ended.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{PoolConfig, PoolUrl};
use crate::hub::{ChannelHashrate, UpstreamLink};
use crate::stats::UpstreamStats;
use hashgate_protocol::stratum::{CodecError, Notify};
use hashgate_protocol::work::Target;

use super::error::UpstreamError;

/// Everything a pool connection knows when it hands a job to the channel server.
#[derive(Debug)]
pub(super) struct PoolWork {
    /// The pool's notify as received.
    pub notify: Notify,
    /// This connection's pool extranonce1 (`E`).
    pub extranonce1: Vec<u8>,
    /// This connection's pool extranonce2 size (`N`).
    pub extranonce2_size: usize,
    /// Target of the pool difficulty in force when the notify arrived.
    pub target: Target,
    /// The version-rolling mask the pool granted (0 when none).
    pub version_mask: u32,
    /// Where shares for this work go.
    pub link: UpstreamLink,
    /// Miners must drop older work: the pool said so, or its extranonce changed.
    pub clean: bool,
}

/// What a connection tells its channel server.
#[derive(Debug)]
pub(super) enum Event {
    /// New work (and, the first time, "subscribed and ready").
    Work {
        /// Pool index in failover order.
        pool: usize,
        /// Connection number.
        conn: u64,
        /// The work.
        work: Arc<PoolWork>,
    },
    /// The connection is over.
    Ended {
        /// Pool index in failover order.
        pool: usize,
        /// Connection number.
        conn: u64,
        /// Why.
        end: Ended,
    },
}

/// Why a connection ended.
#[derive(Debug)]
pub(super) enum Ended {
    /// It failed; reconnect with back-off.
    Failed(UpstreamError),
    /// The pool sent `client.reconnect`: go to `address` after `wait`.
    Reconnect {
        /// Where to connect next.
        address: PoolUrl,
        /// How long to wait first.
        wait: Duration,
    },
    /// Closed by the proxy (not needed any more, or shutting down).
    Closed,
}

impl From<UpstreamError> for Ended {
    fn from(err: UpstreamError) -> Ended {
        Ended::Failed(err)
    }
}

impl From<CodecError> for Ended {
    fn from(err: CodecError) -> Ended {
        Ended::Failed(err.into())
    }
}

/// Which connection to open.
#[derive(Debug, Clone)]
pub(super) struct ConnSpec {
    /// Pool index in failover order.
    pub pool: usize,
    /// Process-unique connection number.
    pub conn: u64,
    /// Pool name, for logs and labels.
    pub name: Arc<str>,
    /// The pool's user and password.
    pub config: PoolConfig,
    /// Where to connect (the configured URL, or where `client.reconnect` pointed).
    pub address: PoolUrl,
    /// The pool's counters.
    pub stats: Arc<UpstreamStats>,
    /// The channel this connection serves.
    pub channel: usize,
    /// The channel's share-proven hashrate, from which the difficulty to suggest follows.
    pub hashrate: Arc<ChannelHashrate>,
}
