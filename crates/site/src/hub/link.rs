//! The way back from a miner's share to the pool connection that issued its job.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::stats::{MinerStats, Undelivered};
use hashgate_protocol::extranonce::PoolExtranonce2;

/// A share that met the upstream target, on its way to the pool.
#[derive(Debug)]
pub struct UpstreamSubmit {
    /// Worker name to submit as (already mapped onto the site account).
    pub worker: Arc<str>,
    /// The pool's job id (not the proxy's).
    pub pool_job_id: Arc<str>,
    /// What the pool sees as extranonce2: padding ‖ prefix ‖ miner extranonce2.
    pub extranonce2: PoolExtranonce2,
    /// Header time.
    pub ntime: u32,
    /// Header nonce.
    pub nonce: u32,
    /// Rolled version bits, when the miner rolls.
    pub version_bits: Option<u32>,
    /// Meets the network target: send before anything else and log loudly.
    pub is_block: bool,
    /// Difficulty the share was credited at, for pool-side accounting.
    pub difficulty: f64,
    /// The miner it came from, so the pool's answer is counted against it.
    pub miner: Arc<MinerStats>,
    /// When the miner's submit was validated, for the upstream round-trip latency.
    pub validated_at: Instant,
}

/// A handle on one upstream connection's submit queue.
#[derive(Debug, Clone)]
pub struct UpstreamLink {
    /// Pool name, for logs and labels.
    pub pool: Arc<str>,
    /// Process-unique number of the connection, so a job from a replaced connection is
    /// recognised as such.
    pub connection: u64,
    tx: mpsc::Sender<UpstreamSubmit>,
}

impl UpstreamLink {
    /// Wraps the sending side of a connection's submit queue.
    pub fn new(pool: Arc<str>, connection: u64, tx: mpsc::Sender<UpstreamSubmit>) -> Self {
        UpstreamLink {
            pool,
            connection,
            tx,
        }
    }

    /// Queues a share for the pool without waiting; when that is impossible the share is
    /// counted as undelivered against its miner, never dropped silently.
    pub fn submit(&self, share: UpstreamSubmit) -> Result<(), Undelivered> {
        match self.tx.try_send(share) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(share)) => {
                share.miner.record_undelivered(Undelivered::QueueFull);
                Err(Undelivered::QueueFull)
            }
            Err(mpsc::error::TrySendError::Closed(share)) => {
                share.miner.record_undelivered(Undelivered::UpstreamGone);
                Err(Undelivered::UpstreamGone)
            }
        }
    }

    /// Whether the connection behind it has gone away.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}
