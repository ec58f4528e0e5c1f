//! One slice of the proxy's extranonce space and the work published for its miners.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio::sync::{broadcast, watch};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use hashgate_protocol::extranonce::{PrefixLease, PrefixPool};

use super::channels::MinerSizes;
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
    /// The balancer moved some of the channel's miners to another pool group: each miner
    /// compares its group with the one booked in its stats and, when they differ, takes
    /// the new group's job with `clean_jobs`.
    Regroup,
}

/// Control messages buffered per miner; they are rare (a pool change), so a miner that
/// lags this far behind has missed its chance and is reconnected.
const CONTROL_BACKLOG: usize = 16;

/// Job feeds per channel: its miners are spread over these, and a new job is handed to
/// one feed after another with a yield in between.
///
/// Waking every miner of a channel at once put thousands of tasks in the runtime's queues,
/// and a miner whose submit arrived then waited behind all of them (p99 answer latency
/// 73–88 ms with 10,000 miners, 1,000 submits/s and a job every 2 s). Fed in slices, the
/// queue holds one feed's miners at a time and the I/O driver is polled between slices,
/// so a submit waits for at most one slice (~40 notify writes at 10,000 miners). Measured
/// on that load (`docs/BENCHES.md`, "Proxy end to end"): 64 feeds gave p99 12–44 ms, 256
/// gave 1.5–3.7 ms, 1,024 no better than 256 with a wider fan-out. The cost is one yield
/// (and one I/O driver poll) per feed per job, well under a millisecond.
pub(crate) const JOB_FEEDS: usize = 256;

/// A job slot: the latest job, shared by the miners that watch it.
type JobSlot = watch::Sender<Option<Arc<MinerJob>>>;

/// One pool group's work on a channel: the latest job and the miners' feeds.
#[derive(Debug)]
struct GroupWork {
    /// Latest job as published: what a newly authorized (or moved) miner starts on, and
    /// what the fan-out task hands on to the feeds.
    work: JobSlot,
    /// The miners' job feeds ([`JOB_FEEDS`]); each is a `watch`, so a slow miner skips
    /// straight to the newest job instead of queueing old ones.
    feeds: Arc<[JobSlot]>,
    /// Feed of the next miner to watch, round robin.
    next_feed: AtomicUsize,
    /// Whether a `clean_jobs` job was published since prefixes were last released.
    clean_since_release: AtomicBool,
}

impl GroupWork {
    fn new(fanout_task: bool) -> GroupWork {
        let (work, _) = watch::channel(None);
        let feeds: Arc<[JobSlot]> = (0..JOB_FEEDS).map(|_| watch::channel(None).0).collect();
        if fanout_task && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(fan_out(work.subscribe(), Arc::clone(&feeds)));
        }
        GroupWork {
            work,
            feeds,
            next_feed: AtomicUsize::new(0),
            clean_since_release: AtomicBool::new(false),
        }
    }
}

/// An upstream "slot": up to 256^k miners served by one connection per pool group to
/// that group's active pool.
#[derive(Debug)]
pub struct Channel {
    /// Position in the hub, also the upstream connection slot that serves it.
    index: usize,
    /// Prefix leases; replaced when the miner sizes change.
    prefixes: RwLock<Arc<PrefixPool>>,
    /// Work per pool group (one entry on a site without groups). Every group's jobs carry
    /// the same miner prefixes, so a miner moves between groups on new work alone.
    groups: Box<[GroupWork]>,
    /// Whether a fan-out task moves jobs from `work` to the feeds; without a runtime
    /// (plain unit tests) `publish` fills every feed itself.
    fanout_task: bool,
    /// Rare instructions to every miner.
    control: broadcast::Sender<ChannelControl>,
    /// Set while the hub decides to close the channel, and for good once it did: a lease
    /// taken meanwhile is given back (see [`Channel::try_close`]).
    closing: AtomicBool,
    /// Cancelled when the hub has closed the channel: its upstream server ends.
    closed: CancellationToken,
    /// Since when the hub has seen the channel without miners (`None`: it has some).
    empty_since: Mutex<Option<Instant>>,
}

impl Channel {
    /// A channel with a fresh prefix pool of `sizes.prefix_len` bytes. Inside a tokio
    /// runtime it starts its fan-out task, which ends when the channel is dropped.
    #[cfg(test)]
    pub(crate) fn new(index: usize, prefixes: Arc<PrefixPool>) -> Channel {
        Channel::with_groups(index, prefixes, 1)
    }

    /// A channel serving `groups` pool groups (at least one).
    pub(crate) fn with_groups(index: usize, prefixes: Arc<PrefixPool>, groups: usize) -> Channel {
        let (control, _) = broadcast::channel(CONTROL_BACKLOG);
        let fanout_task = tokio::runtime::Handle::try_current().is_ok();
        Channel {
            index,
            prefixes: RwLock::new(prefixes),
            groups: (0..groups.max(1))
                .map(|_| GroupWork::new(fanout_task))
                .collect(),
            fanout_task,
            control,
            closing: AtomicBool::new(false),
            closed: CancellationToken::new(),
            empty_since: Mutex::new(None),
        }
    }

    /// The channel's slot number.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Leases a prefix, or `None` when this channel is full or closed.
    pub fn lease(&self) -> Option<PrefixLease> {
        let pool = self.prefixes.read().ok()?.clone();
        let lease = pool.lease()?;
        // Checked after the lease is counted: either the closer sees this lease in use and
        // keeps the channel, or this sees the closer's flag and gives the lease back.
        if self.closing.load(Ordering::SeqCst) {
            return None;
        }
        Some(lease)
    }

    /// Resolves once the hub has closed the channel (it had no miners for the grace
    /// period): the upstream side then closes its pool connection.
    pub fn closed(&self) -> WaitForCancellationFuture<'_> {
        self.closed.cancelled()
    }

    /// Whether the hub has closed the channel.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Books whether the channel has miners at `now`; returns whether it has had none for
    /// at least `grace`.
    pub(crate) fn idle_for(&self, now: Instant, grace: std::time::Duration) -> bool {
        let Ok(mut since) = self.empty_since.lock() else {
            return false;
        };
        if self.prefix_usage().0 > 0 {
            *since = None;
            return false;
        }
        let start = *since.get_or_insert(now);
        now.saturating_duration_since(start) >= grace
    }

    /// Closes the channel if it still has no miner; a miner leasing at the same instant
    /// either keeps it open or is sent to another channel.
    pub(crate) fn try_close(&self) -> bool {
        self.closing.store(true, Ordering::SeqCst);
        if self.prefix_usage().0 > 0 {
            self.closing.store(false, Ordering::SeqCst);
            return false;
        }
        self.closed.cancel();
        true
    }

    /// Prefixes in use and the capacity, for "extranonce space used".
    pub fn prefix_usage(&self) -> (u32, u32) {
        match self.prefixes.read() {
            Ok(pool) => (pool.in_use(), pool.capacity()),
            Err(_) => (0, 0),
        }
    }

    /// Publishes a new job to every miner of group 0 (the only group of a site without
    /// pool groups).
    pub fn publish(&self, job: Arc<MinerJob>) {
        self.publish_to(0, job);
    }

    /// Publishes a new job to the miners of `group`: [`Channel::current_of`] at once, the
    /// miners' feeds one slice after another (see [`JOB_FEEDS`]).
    pub fn publish_to(&self, group: usize, job: Arc<MinerJob>) {
        let Some(slot) = self.groups.get(group) else {
            return;
        };
        if job.clean_jobs() {
            slot.clean_since_release.store(true, Ordering::SeqCst);
            self.release_if_all_clean();
        }
        if self.fanout_task {
            slot.work.send_replace(Some(job));
        } else {
            for feed in slot.feeds.iter() {
                feed.send_replace(Some(job.clone()));
            }
            slot.work.send_replace(Some(job));
        }
    }

    /// Departed miners' prefixes may be reused once every job they could have worked on
    /// is stale: every group that has work has published `clean_jobs` since the last
    /// release (a miner may have worked any group's jobs).
    fn release_if_all_clean(&self) {
        let all_clean = self
            .groups
            .iter()
            .all(|g| g.clean_since_release.load(Ordering::SeqCst) || g.work.borrow().is_none());
        if !all_clean {
            return;
        }
        for g in self.groups.iter() {
            g.clean_since_release.store(false, Ordering::SeqCst);
        }
        if let Ok(pool) = self.prefixes.read() {
            pool.jobs_went_stale();
        }
    }

    /// The latest job of group 0, if any.
    pub fn current(&self) -> Option<Arc<MinerJob>> {
        self.current_of(0)
    }

    /// The latest job of `group`, if any.
    pub fn current_of(&self, group: usize) -> Option<Arc<MinerJob>> {
        self.groups.get(group)?.work.borrow().clone()
    }

    /// How many pool groups the channel serves.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// A receiver of group 0's jobs.
    pub fn watch(&self) -> watch::Receiver<Option<Arc<MinerJob>>> {
        self.watch_group(0)
    }

    /// A receiver that wakes on every new job of `group` (one of its feeds). Its first
    /// value may trail [`Channel::current_of`] for the few milliseconds a fan-out takes.
    pub fn watch_group(&self, group: usize) -> watch::Receiver<Option<Arc<MinerJob>>> {
        // A channel has at least one group and every group JOB_FEEDS feeds.
        let slot = &self.groups[group.min(self.groups.len() - 1)];
        let n = slot.next_feed.fetch_add(1, Ordering::Relaxed) % slot.feeds.len();
        slot.feeds[n].subscribe()
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

/// Hands each job published on `latest` to every feed in turn, yielding after each so the
/// runtime serves the miners woken so far (and any submits that arrived) before waking
/// the next slice. A job published during a round waits for the round to end; the next
/// round then carries the newest job, so no feed is starved by a fast pool.
async fn fan_out(mut latest: watch::Receiver<Option<Arc<MinerJob>>>, feeds: Arc<[JobSlot]>) {
    while latest.changed().await.is_ok() {
        let job = latest.borrow_and_update().clone();
        for feed in feeds.iter() {
            feed.send_replace(job.clone());
            tokio::task::yield_now().await;
        }
    }
}
