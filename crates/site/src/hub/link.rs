//! The way back from a miner's share to the pool connection that issued its job.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::stats::{HashrateMeter, MinerStats, Undelivered, Window};
use hashgate_protocol::extranonce::PoolExtranonce2;

/// A miner's worker name as data, carried from the miner's session to the pool side:
/// the pool side builds its own name from the parts (`<pool user>.<rig>` or the bare
/// user) instead of parsing a formatted name back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MinerWorker {
    /// The name as the miner authorized it (e.g. `acct.rack1`).
    name: Arc<str>,
    /// Where its worker part starts in `name`: after the first dot, or 0.
    rig_start: usize,
}

impl MinerWorker {
    /// The miner's name and its worker part: what follows the first dot, or the whole
    /// name when it has none.
    pub fn new(name: &str) -> MinerWorker {
        let rig_start = name.find('.').map_or(0, |dot| dot + 1);
        MinerWorker {
            name: name.into(),
            rig_start,
        }
    }

    /// The name as the miner authorized it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The worker part (`rack1` of `acct.rack1`); empty when the name ends in a dot.
    pub fn rig(&self) -> &str {
        self.name.get(self.rig_start..).unwrap_or("")
    }
}

impl std::fmt::Display for MinerWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// A share that met the upstream target, on its way to the pool.
#[derive(Debug)]
pub struct UpstreamSubmit {
    /// The miner's worker; the pool connection decides the name it is submitted under.
    pub worker: MinerWorker,
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

/// The share-proven hashrate of one channel's miners, fed by every share a miner is
/// credited (not only those forwarded, so it is right whatever difficulty the pool set),
/// and read by the channel's pool connections to choose the difficulty they suggest.
/// Shared by all of a channel's connections, so a new one knows the rate at once.
#[derive(Debug)]
pub struct ChannelHashrate {
    /// One lock per credited share; uncontended in practice (a site's few thousand
    /// shares a second spread over its channels), and far cheaper than the validation.
    meter: Mutex<HashrateMeter>,
}

impl ChannelHashrate {
    /// A meter that starts counting at `now`.
    pub fn new(now: Instant) -> ChannelHashrate {
        ChannelHashrate {
            meter: Mutex::new(HashrateMeter::new(now)),
        }
    }

    /// Records a share credited at `difficulty`.
    pub fn record(&self, now: Instant, difficulty: f64) {
        // A poisoned meter still holds sums that are good enough to choose a difficulty.
        self.meter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(now, difficulty);
    }

    /// Hashes a second over the last minute; `None` until the meter is old enough to say.
    pub fn rate(&self, now: Instant) -> Option<f64> {
        self.meter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rate(now, Window::M1)
    }
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
    /// The channel's hashrate meter, when the connection suggests difficulties.
    hashrate: Option<Arc<ChannelHashrate>>,
}

impl UpstreamLink {
    /// Wraps the sending side of a connection's submit queue.
    pub fn new(pool: Arc<str>, connection: u64, tx: mpsc::Sender<UpstreamSubmit>) -> Self {
        UpstreamLink {
            pool,
            connection,
            tx,
            hashrate: None,
        }
    }

    /// The same link, with credited shares counted into the channel's `hashrate`.
    pub fn with_hashrate(mut self, hashrate: Arc<ChannelHashrate>) -> Self {
        self.hashrate = Some(hashrate);
        self
    }

    /// The channel's hashrate meter, into which miners' credited shares are counted.
    pub fn hashrate(&self) -> Option<&Arc<ChannelHashrate>> {
        self.hashrate.as_ref()
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
