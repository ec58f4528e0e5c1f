//! The registry of channels: where a new miner gets its prefix and its work.

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use hashgate_protocol::extranonce::{ExtranoncePlan, PrefixLease, PrefixPool};

use super::channel::Channel;
use super::job::JobIds;
use super::split::SplitBook;

/// The extranonce sizes every miner is given: its extranonce1 is a `prefix_len`-byte prefix,
/// and it rolls `extranonce2_size` bytes of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinerSizes {
    /// k: bytes of the per-miner prefix (the miner's extranonce1).
    pub prefix_len: usize,
    /// m: the miner's extranonce2 size.
    pub extranonce2_size: usize,
}

impl MinerSizes {
    /// The sizes a plan gives miners.
    pub fn of(plan: &ExtranoncePlan) -> MinerSizes {
        MinerSizes {
            prefix_len: plan.prefix_len(),
            extranonce2_size: plan.miner_extranonce2_size(),
        }
    }
}

/// Why a miner could not be given a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// No pool has connected yet, so the extranonce sizes are unknown.
    #[error("no upstream pool is connected yet")]
    NoUpstream,
    /// Every channel is full and no more may be opened.
    #[error("all {0} upstream channels are full")]
    Full(usize),
}

/// Channels waiting to be served by the upstream side; opening one is rare (every 256^k
/// miners), so a small bound is plenty.
const NEW_CHANNEL_BACKLOG: usize = 64;

/// How long a channel (other than channel 0) may stay without miners before it is closed
/// with its pool connection. Long enough that a miner reconnecting after a blip, or a
/// burst of short connections, does not make the site close and reopen pool connections
/// in a loop; short enough that connections which only subscribed do not leave pool
/// sockets open for good (#11.7).
pub const CHANNEL_IDLE_GRACE: Duration = Duration::from_secs(120);

/// Shared by the upstream manager and every miner session.
#[derive(Debug)]
pub struct Hub {
    /// The split that fixed the miner sizes; `None` until the first pool has connected.
    plan: watch::Sender<Option<ExtranoncePlan>>,
    /// Every open channel, in slot order. Channel 0 stays; the others close once they
    /// have been empty for [`CHANNEL_IDLE_GRACE`], and their slot is reused.
    channels: RwLock<Vec<Arc<Channel>>>,
    /// Tells the upstream manager about a channel it must serve.
    new_channels: mpsc::Sender<Arc<Channel>>,
    /// Most channels (upstream connections per pool) the site may open.
    max_channels: usize,
    /// Proxy-wide job ids.
    pub job_ids: JobIds,
    /// The pool groups: every channel serves each of them.
    split: SplitBook,
}

impl Hub {
    /// A hub with no channels yet; the receiver yields each channel the upstream side must
    /// serve (the first is opened when the miner sizes are first known).
    pub fn new(max_channels: usize) -> (Arc<Hub>, mpsc::Receiver<Arc<Channel>>) {
        Hub::with_split(max_channels, SplitBook::single())
    }

    /// [`Hub::new`] for a site with pool groups: each channel serves every group of `split`.
    pub fn with_split(
        max_channels: usize,
        split: SplitBook,
    ) -> (Arc<Hub>, mpsc::Receiver<Arc<Channel>>) {
        let (plan, _) = watch::channel(None);
        let (new_channels, rx) = mpsc::channel(NEW_CHANNEL_BACKLOG);
        let hub = Hub {
            plan,
            channels: RwLock::new(Vec::new()),
            new_channels,
            max_channels: max_channels.max(1),
            job_ids: JobIds::default(),
            split,
        };
        let hub = Arc::new(hub);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(close_idle(Arc::downgrade(&hub)));
        }
        (hub, rx)
    }

    /// Closes every channel but channel 0 that has had no miner for `grace` as seen by
    /// successive calls (the first call that sees a channel empty starts its clock);
    /// returns the slots closed. The hub calls it every [`CHANNEL_IDLE_GRACE`] / 4.
    pub fn close_idle_channels(&self, now: Instant, grace: Duration) -> Vec<usize> {
        let Ok(mut channels) = self.channels.write() else {
            return Vec::new();
        };
        let mut closed = Vec::new();
        channels.retain(|channel| {
            // Channel 0 is never closed: its server learns the sizes from the pools, and
            // a site always keeps one pool connection ready for the next miner.
            if channel.index() == 0 || !channel.idle_for(now, grace) || !channel.try_close() {
                return true;
            }
            closed.push(channel.index());
            false
        });
        for index in &closed {
            tracing::info!(
                channel = index,
                "channel without miners for {grace:?}: closing it and its pool connection"
            );
            metrics::counter!("hashgate_channels_closed_total").increment(1);
        }
        closed
    }

    /// The pool groups, their readiness and the balancer's figures.
    pub fn split(&self) -> &SplitBook {
        &self.split
    }

    /// The sizes miners get now, if known.
    pub fn sizes(&self) -> Option<MinerSizes> {
        self.plan.borrow().as_ref().map(MinerSizes::of)
    }

    /// Waits until the first pool has fixed the miner sizes (callers bound it with a timeout).
    pub async fn wait_sizes(&self) -> MinerSizes {
        let mut rx = self.plan.subscribe();
        loop {
            if let Some(plan) = rx.borrow_and_update().as_ref() {
                return MinerSizes::of(plan);
            }
            if rx.changed().await.is_err() {
                // The hub itself is alive while we hold &self, so the sender cannot be gone.
                continue;
            }
        }
    }

    /// Sets the miner sizes from a pool's plan. The first call opens channel 0; a change
    /// afterwards gives every channel a new prefix pool and tells its miners to resize.
    /// Returns whether anything changed.
    pub fn set_sizes(&self, plan: &ExtranoncePlan) -> bool {
        let sizes = MinerSizes::of(plan);
        let previous = self.sizes();
        if previous == Some(sizes) {
            return false;
        }
        self.plan.send_replace(Some(*plan));
        match previous {
            None => {
                self.open_channel(plan);
            }
            Some(_) => {
                let channels = self.channels();
                for channel in channels {
                    channel.replace_prefixes(PrefixPool::for_plan(plan), sizes);
                }
            }
        }
        true
    }

    fn open_channel(&self, plan: &ExtranoncePlan) -> Option<Arc<Channel>> {
        let mut channels = self.channels.write().ok()?;
        if channels.len() >= self.max_channels {
            return None;
        }
        // The lowest free slot: slots of closed channels are reused.
        let index = (0..)
            .zip(channels.iter())
            .find(|(slot, c)| c.index() != *slot)
            .map_or(channels.len(), |(slot, _)| slot);
        let channel = Arc::new(Channel::with_groups(
            index,
            PrefixPool::for_plan(plan),
            self.split.len(),
        ));
        channels.insert(index, channel.clone());
        if self.new_channels.try_send(channel.clone()).is_err() {
            tracing::error!(
                channel = channel.index(),
                "upstream manager is not taking new channels"
            );
        }
        Some(channel)
    }

    /// Every channel, in slot order.
    pub fn channels(&self) -> Vec<Arc<Channel>> {
        self.channels.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Gives a new miner a channel and a unique prefix on it, opening a new channel when
    /// every existing one is full.
    ///
    /// # Errors
    /// [`JoinError::NoUpstream`] before any pool has connected; [`JoinError::Full`] when
    /// the site has as many miners as `max_channels` connections can carry.
    pub fn join(&self) -> Result<(Arc<Channel>, PrefixLease), JoinError> {
        let plan = (*self.plan.borrow()).ok_or(JoinError::NoUpstream)?;
        for channel in self.channels() {
            if let Some(lease) = channel.lease() {
                return Ok((channel, lease));
            }
        }
        let channel = self
            .open_channel(&plan)
            .ok_or(JoinError::Full(self.max_channels))?;
        let lease = channel.lease().ok_or(JoinError::Full(self.max_channels))?;
        Ok((channel, lease))
    }
}

/// Closes idle channels every quarter of the grace period until the hub is dropped.
async fn close_idle(hub: Weak<Hub>) {
    let mut tick = tokio::time::interval(CHANNEL_IDLE_GRACE / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else { break };
        hub.close_idle_channels(Instant::now(), CHANNEL_IDLE_GRACE);
    }
}
