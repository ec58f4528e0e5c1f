//! One slice of the proxy's extranonce space and the work published for its miners.

use std::sync::{Arc, RwLock};

use tokio::sync::{broadcast, watch};

use crate::extranonce::{PrefixLease, PrefixPool};

use super::hub::MinerSizes;
use super::job::MinerJob;

/// Rare instructions from the upstream side to every miner of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelControl {
    /// The active pool cannot carry the miners' current extranonce sizes: miners that
    /// accept `mining.set_extranonce` get a new prefix of these sizes, the others are sent
    /// `client.reconnect`.
    Resize(MinerSizes),
    /// The pool's version-rolling mask changed: forward `mining.set_version_mask`.
    VersionMask(u32),
}

/// Control messages buffered per miner; they are rare (a pool change), so a miner that
/// lags this far behind has missed its chance and is reconnected.
const CONTROL_BACKLOG: usize = 16;

/// An upstream "slot": up to 256^k miners served by one connection to the active pool.
#[derive(Debug)]
pub struct Channel {
    /// Position in the hub, also the upstream connection slot that serves it.
    index: usize,
    /// Prefix leases; replaced when the miner sizes change.
    prefixes: RwLock<Arc<PrefixPool>>,
    /// Latest job; a slow miner skips straight to the newest instead of queueing old ones.
    work: watch::Sender<Option<Arc<MinerJob>>>,
    /// Rare instructions to every miner.
    control: broadcast::Sender<ChannelControl>,
}

impl Channel {
    /// A channel with a fresh prefix pool of `sizes.prefix_len` bytes.
    pub(crate) fn new(index: usize, prefixes: Arc<PrefixPool>) -> Channel {
        let (work, _) = watch::channel(None);
        let (control, _) = broadcast::channel(CONTROL_BACKLOG);
        Channel {
            index,
            prefixes: RwLock::new(prefixes),
            work,
            control,
        }
    }

    /// The channel's slot number.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Leases a prefix, or `None` when this channel is full.
    pub fn lease(&self) -> Option<PrefixLease> {
        let pool = self.prefixes.read().ok()?.clone();
        pool.lease()
    }

    /// Prefixes in use and the capacity, for "extranonce space used".
    pub fn prefix_usage(&self) -> (u32, u32) {
        match self.prefixes.read() {
            Ok(pool) => (pool.in_use(), pool.capacity()),
            Err(_) => (0, 0),
        }
    }

    /// Publishes a new job to every miner of the channel.
    pub fn publish(&self, job: Arc<MinerJob>) {
        self.work.send_replace(Some(job));
    }

    /// The latest job, if any.
    pub fn current(&self) -> Option<Arc<MinerJob>> {
        self.work.borrow().clone()
    }

    /// A receiver that wakes on every new job.
    pub fn watch(&self) -> watch::Receiver<Option<Arc<MinerJob>>> {
        self.work.subscribe()
    }

    /// A receiver of control messages.
    pub fn control(&self) -> broadcast::Receiver<ChannelControl> {
        self.control.subscribe()
    }

    /// Sends a control message to every miner of the channel.
    pub fn broadcast(&self, message: ChannelControl) {
        // No receivers simply means no miners: nothing to tell.
        let _ = self.control.send(message);
    }

    /// Swaps in a prefix pool of new sizes (old leases stay valid until their miners drop).
    pub(crate) fn replace_prefixes(&self, pool: Arc<PrefixPool>, sizes: MinerSizes) {
        if let Ok(mut slot) = self.prefixes.write() {
            *slot = pool;
        }
        self.broadcast(ChannelControl::Resize(sizes));
    }
}
