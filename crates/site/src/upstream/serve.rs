//! Serving one channel: a connection per wanted pool, the [`Failover`] machine deciding
//! which one publishes, and the miner-facing jobs built from the active pool's work.
//!
//! One task owns all of it, so a switch (publish the backup's latest job with
//! `clean_jobs`) can never interleave with a late job from the pool just left.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{PoolConfig, PoolUrl};
use crate::hub::{Channel, ChannelControl, ChannelHashrate, MinerJob, MinerJobParts};
use crate::ratelog::{RateLimitedLog, Verdict};
use crate::stats::{Transport, UpstreamState, UpstreamStats};

use super::connection::{self, ConnSpec, Ended, Event, PoolWork, now};
use super::error::UpstreamError;
use super::failover::{Failover, FailoverDecision, LinkState};
use super::sizing::{PlanChoice, plan_for};
use super::{PoolSet, UpstreamContext};

/// Events from a channel's connections: a job or an ending now and then per pool, and
/// the server reads them at once, so a few dozen is ample; a full queue only makes a
/// connection wait, never loses an event.
const EVENT_BACKLOG: usize = 64;

/// One pool as seen by this channel.
#[derive(Debug)]
struct PoolSlot {
    /// Pool name, for logs.
    name: Arc<str>,
    /// Where and as whom to connect; a reload keeps the slot (and its connection) only
    /// when this is unchanged.
    config: PoolConfig,
    /// The pool's counters (shared by every channel).
    stats: Arc<UpstreamStats>,
    /// The live connection, if any.
    live: Option<Live>,
    /// Where the pool's `client.reconnect` pointed; used for the next attempt only.
    redirect: Option<PoolUrl>,
    /// A bad certificate fails every retry the same way; one warning a minute says so.
    tls_log: RateLimitedLog,
}

/// How often a pool's repeating TLS failure is logged.
const TLS_LOG_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

impl PoolSlot {
    fn new(config: &PoolConfig, shared: &UpstreamContext) -> PoolSlot {
        let name: Arc<str> = config.name.as_str().into();
        let stats = shared.registry.upstream(&name);
        stats.set_transport(if config.url.tls {
            Transport::Tls(None)
        } else {
            Transport::Plain
        });
        PoolSlot {
            stats,
            name,
            config: config.clone(),
            live: None,
            redirect: None,
            tls_log: RateLimitedLog::new(TLS_LOG_WINDOW),
        }
    }
}

/// A connection this channel opened.
#[derive(Debug)]
struct Live {
    /// Its number, to ignore events from connections already replaced.
    conn: u64,
    /// Closes it.
    cancel: CancellationToken,
    /// Its latest work, published at once if it becomes the active pool.
    work: Option<Arc<PoolWork>>,
}

/// The task serving one channel.
pub(super) struct ChannelServer {
    shared: Arc<UpstreamContext>,
    /// The channel's slot number (its `Channel` may not exist yet for slot 0).
    index: usize,
    /// The pool group this server connects and publishes for (0 on a site without groups).
    group: usize,
    /// The hub's channel, once it has been opened.
    channel: Option<Arc<Channel>>,
    /// Delivers the channel (slot 0 starts before the first pool fixes the sizes).
    channel_rx: mpsc::Receiver<Arc<Channel>>,
    failover: Failover,
    pools: Vec<PoolSlot>,
    events_tx: mpsc::Sender<Event>,
    events_rx: mpsc::Receiver<Event>,
    /// Parent of every connection's token; cancelled with the proxy's shutdown.
    cancel: CancellationToken,
    /// The connection tasks, awaited on shutdown so their shares are accounted for.
    tracker: TaskTracker,
    /// The version mask of the last job published, to tell miners when it changes.
    published_mask: Option<u32>,
    /// Wakes when any channel resized the miners: republish under the new sizes.
    resized: watch::Receiver<u64>,
    /// The channel's share-proven hashrate, shared with its connections (and, through
    /// their links, fed by its miners' sessions).
    hashrate: Arc<ChannelHashrate>,
    /// Wakes when a reload replaced the pool list.
    pool_set: watch::Receiver<Arc<PoolSet>>,
}

impl ChannelServer {
    /// A server for slot `index`; its channel comes through `channel_rx`.
    pub(super) fn new(
        shared: Arc<UpstreamContext>,
        index: usize,
        group: usize,
        channel_rx: mpsc::Receiver<Arc<Channel>>,
    ) -> ChannelServer {
        let mut pool_set = shared.pools.subscribe();
        let set = pool_set.borrow_and_update().clone();
        let group_pools = set.group_pools(group);
        let failover = Failover::new(
            group_pools.len(),
            set.reconnect_min,
            set.reconnect_max,
            set.failback_after,
        );
        let pools = group_pools
            .iter()
            .map(|p| PoolSlot::new(p, &shared))
            .collect();
        let (events_tx, events_rx) = mpsc::channel(EVENT_BACKLOG);
        ChannelServer {
            resized: shared.resized.subscribe(),
            cancel: shared.shutdown.child_token(),
            shared,
            index,
            group,
            channel: None,
            channel_rx,
            failover,
            pools,
            events_tx,
            events_rx,
            tracker: TaskTracker::new(),
            published_mask: None,
            hashrate: Arc::new(ChannelHashrate::new(now())),
            pool_set,
        }
    }

    /// Serves the channel until shutdown, then waits for every connection to account for
    /// its shares.
    pub(super) async fn run(mut self) {
        let shutdown = self.shared.shutdown.clone();
        loop {
            let now = now();
            let decision = self.failover.decide(now);
            self.apply(decision, now);
            let wake = self
                .failover
                .next_deadline()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                // The hub closed the channel (no miners for its grace period): end its
                // connections the way shutdown does.
                () = closed(self.channel.as_deref()) => break,
                Some(channel) = self.channel_rx.recv(), if self.channel.is_none() => {
                    self.channel = Some(channel);
                    if let Some(active) = self.failover.active() {
                        self.publish_latest(active, true, now);
                    }
                }
                Some(event) = self.events_rx.recv() => self.on_event(event),
                Ok(()) = self.pool_set.changed() => {
                    let set = self.pool_set.borrow_and_update().clone();
                    self.reload(&set);
                }
                Ok(()) = self.resized.changed() => {
                    self.resized.borrow_and_update();
                    if let Some(active) = self.failover.active() {
                        self.publish_latest(active, true, now);
                    }
                }
                _ = sleep_until(wake) => {}
            }
        }
        // Connections see the cancelled token, deliver what they can and count the rest.
        self.cancel.cancel();
        drop(self.events_rx);
        self.tracker.close();
        self.tracker.wait().await;
        for slot in &self.pools {
            slot.stats.set_state(UpstreamState::Down);
        }
    }

    fn apply(&mut self, decision: FailoverDecision, now: Instant) {
        for pool in decision.close {
            if let Some(slot) = self.pools.get_mut(pool)
                && let Some(live) = slot.live.take()
            {
                tracing::info!(channel = self.index, pool = %slot.name, "closing connection no longer needed");
                live.cancel.cancel();
            }
        }
        for pool in decision.connect {
            self.connect(pool);
        }
        if let Some(switch) = decision.switch {
            let from = switch.from.and_then(|p| self.pools.get(p));
            match switch.to {
                Some(to) => {
                    // A plain name in the log fields, not `Some("...")`: text and JSON logs are read
                    // by people and by log pipelines that match on the pool's name.
                    let to_name = self
                        .pools
                        .get(to)
                        .map_or_else(|| Arc::from(""), |s| s.name.clone());
                    if let Some(from) = from {
                        from.stats.record_failover();
                        tracing::warn!(channel = self.index, from = %from.name, to = %to_name, "switching pool");
                    } else {
                        tracing::info!(channel = self.index, pool = %to_name, "pool active");
                    }
                    self.publish_latest(to, true, now);
                }
                None => {
                    if let Some(from) = from {
                        from.stats.record_failover();
                    }
                    tracing::error!(
                        channel = self.index,
                        "no pool is ready: miners keep their last job until one comes back"
                    );
                }
            }
        }
        self.report_states();
    }

    /// Takes a reloaded pool list: kept pools keep their slot and connection, the rest
    /// are closed; the next decision switches, connects and closes as the new list wants.
    fn reload(&mut self, set: &PoolSet) {
        let mine = PoolSet {
            pools: set.group_pools(self.group),
            ..set.clone()
        };
        let set = &mine;
        let mut old: Vec<Option<PoolSlot>> = std::mem::take(&mut self.pools)
            .into_iter()
            .map(Some)
            .collect();
        let mut kept = Vec::with_capacity(set.pools.len());
        for config in &set.pools {
            let same = old
                .iter()
                .position(|slot| slot.as_ref().is_some_and(|s| s.config == *config));
            match same.and_then(|i| Some((i, old.get_mut(i)?.take()?))) {
                Some((i, slot)) => {
                    kept.push(Some(i));
                    self.pools.push(slot);
                }
                None => {
                    kept.push(None);
                    let slot = PoolSlot::new(config, &self.shared);
                    if self.index == 0 && slot.stats.state() == UpstreamState::Removed {
                        // Listed again: not removed any more, whatever it becomes next.
                        slot.stats.set_state(UpstreamState::Connecting);
                    }
                    self.pools.push(slot);
                }
            }
        }
        let was_active = self.failover.active();
        for (i, slot) in old.into_iter().enumerate() {
            let Some(slot) = slot else { continue };
            if let Some(live) = slot.live {
                tracing::info!(channel = self.index, pool = %slot.name, active = was_active == Some(i), "reload: closing the connection to a pool removed or changed");
                live.cancel.cancel();
            }
            // Its series would otherwise keep saying active or backup (or down, firing an
            // alert for a pool nobody wants); a pool of the same name in the new list shares
            // the counters and reports its own state.
            if self.index == 0 && !set.pools.iter().any(|p| p.name == *slot.name) {
                slot.stats.set_state(UpstreamState::Removed);
            }
        }
        self.failover = self.failover.remap(
            &kept,
            set.reconnect_min,
            set.reconnect_max,
            set.failback_after,
        );
        if let Some(active) = self.failover.active() {
            tracing::info!(channel = self.index, pool = %self.pools.get(active).map_or("", |s| &*s.name), "reload: active pool kept");
        } else if was_active.is_some() {
            tracing::warn!(
                channel = self.index,
                "reload: active pool removed or changed; switching to the first ready pool of the new list"
            );
        }
    }

    fn connect(&mut self, pool: usize) {
        let Some(slot) = self.pools.get_mut(pool) else {
            return;
        };
        let config = &slot.config;
        let conn = self.shared.next_conn();
        let cancel = self.cancel.child_token();
        let spec = ConnSpec {
            pool,
            conn,
            name: slot.name.clone(),
            config: config.clone(),
            address: slot.redirect.take().unwrap_or_else(|| config.url.clone()),
            stats: slot.stats.clone(),
            channel: self.index,
            hashrate: self.hashrate.clone(),
        };
        slot.live = Some(Live {
            conn,
            cancel: cancel.clone(),
            work: None,
        });
        tracing::debug!(channel = self.index, pool = %slot.name, conn, address = %spec.address, "connecting");
        self.tracker.spawn(connection::run(
            self.shared.clone(),
            spec,
            self.events_tx.clone(),
            cancel,
        ));
    }

    fn on_event(&mut self, event: Event) {
        let now = now();
        match event {
            Event::Work { pool, conn, work } => {
                let Some(pool) = self.slot_of(pool, conn) else {
                    return;
                };
                let Some(live) = self.live_mut(pool, conn) else {
                    return;
                };
                let clean = work.clean;
                live.work = Some(work);
                if self.failover.state(pool) == Some(LinkState::Connecting) {
                    // Ready: the next decision may make it active or the backup.
                    self.failover.ready(pool, now);
                } else if self.failover.active() == Some(pool) {
                    self.publish_latest(pool, clean, now);
                }
            }
            Event::Ended { pool, conn, end } => {
                let Some(pool) = self.slot_of(pool, conn) else {
                    return;
                };
                let Some(slot) = self.pools.get_mut(pool) else {
                    return;
                };
                slot.live = None;
                slot.stats.record_reconnect();
                let delay = match end {
                    Ended::Failed(err) => {
                        let delay = self.failover.down(pool, now, rand::random(), None);
                        if let UpstreamError::Tls { source, .. } = &err {
                            if let Verdict::Log { suppressed } = slot.tls_log.check(now) {
                                tracing::warn!(channel = self.index, pool = %slot.name, kind = source.kind(), error = %err, retry_in = ?delay, suppressed, "pool refused over TLS: not used (never as plain TCP) until this is fixed; miners fail over to the next pool");
                            }
                        } else {
                            tracing::warn!(channel = self.index, pool = %slot.name, error = %err, retry_in = ?delay, "pool connection lost");
                        }
                        delay
                    }
                    Ended::Reconnect { address, wait } => {
                        slot.redirect = Some(address);
                        self.failover.down(pool, now, 0.0, Some(wait))
                    }
                    // Only after a close this server asked for, which already made the
                    // slot idle; a stray one is retried like a failure.
                    Ended::Closed => self.failover.down(pool, now, rand::random(), None),
                };
                tracing::debug!(channel = self.index, pool, ?delay, "reconnect scheduled");
            }
        }
    }

    /// The position of the pool whose live connection is `conn`: `pool`, the position it
    /// was opened at, unless a reload moved it since; none once replaced or closed (its
    /// late events are ignored).
    fn slot_of(&self, pool: usize, conn: u64) -> Option<usize> {
        let live = |s: &PoolSlot| s.live.as_ref().is_some_and(|l| l.conn == conn);
        if self.pools.get(pool).is_some_and(live) {
            return Some(pool);
        }
        self.pools.iter().position(live)
    }

    fn live_mut(&mut self, pool: usize, conn: u64) -> Option<&mut Live> {
        self.pools
            .get_mut(pool)?
            .live
            .as_mut()
            .filter(|live| live.conn == conn)
    }

    /// Builds the miner-facing job from a pool's latest work and publishes it.
    fn publish_latest(&mut self, pool: usize, clean: bool, now: Instant) {
        let Some(channel) = self.channel.clone() else {
            return; // published when the hub opens the channel
        };
        let Some(work) = self
            .pools
            .get(pool)
            .and_then(|s| s.live.as_ref())
            .and_then(|l| l.work.clone())
        else {
            return;
        };
        let Some(plan) = self.plan_for_active(pool, &work) else {
            return;
        };
        let hub = &self.shared.hub;
        let parts = MinerJobParts {
            notify: &work.notify,
            pool_extranonce1: &work.extranonce1,
            plan,
            upstream_target: work.target,
            version_mask: work.version_mask,
            link: work.link.clone(),
            clean_jobs: clean,
        };
        match MinerJob::build(hub.job_ids.next(), parts, now) {
            Ok(job) => {
                if self.published_mask.is_some_and(|m| m != work.version_mask) {
                    channel.broadcast(ChannelControl::VersionMask(work.version_mask));
                }
                self.published_mask = Some(work.version_mask);
                channel.publish_to(self.group, Arc::new(job));
            }
            Err(err) => {
                tracing::warn!(channel = self.index, pool = pool, job = %work.notify.job_id, error = %err, "pool sent a job that cannot be used");
            }
        }
    }

    /// The split for the active pool's work, resizing the miners when its extranonce2 is
    /// too small for the sizes they hold.
    fn plan_for_active(
        &mut self,
        pool: usize,
        work: &PoolWork,
    ) -> Option<hashgate_protocol::extranonce::ExtranoncePlan> {
        let _sizing = self.shared.sizing_lock();
        let hub = &self.shared.hub;
        let choice = plan_for(
            hub.sizes(),
            work.extranonce2_size,
            self.shared.config.proxy.miners_per_upstream.get(),
            self.shared.split_limits(),
        );
        match choice {
            Ok(PlanChoice::Fits(plan)) => Some(plan),
            Ok(PlanChoice::Resize(plan)) => {
                tracing::warn!(
                    channel = self.index,
                    pool,
                    pool_extranonce2_size = work.extranonce2_size,
                    prefix_len = plan.prefix_len(),
                    miner_extranonce2_size = plan.miner_extranonce2_size(),
                    "pool extranonce2 too small for the miners' sizes: resizing miners"
                );
                if hub.set_sizes(&plan) {
                    self.shared
                        .resized
                        .send_modify(|generation| *generation += 1);
                    // This channel publishes under the new sizes right now.
                    self.resized.borrow_and_update();
                }
                Some(plan)
            }
            Err(err) => {
                tracing::error!(channel = self.index, pool, error = %err, "pool work cannot be split for miners");
                None
            }
        }
    }

    /// Pool states are per pool, not per channel: channel 0 (always present) reports them,
    /// and whether its group can take miners.
    fn report_states(&self) {
        if self.index != 0 {
            return;
        }
        let ready = self.failover.active().is_some();
        self.shared.hub.split().set_ready(self.group, ready);
        let active = self.failover.active();
        for (i, slot) in self.pools.iter().enumerate() {
            let state = match self.failover.state(i) {
                Some(LinkState::Ready { .. }) if active == Some(i) => UpstreamState::Active,
                Some(LinkState::Ready { .. }) => UpstreamState::Backup,
                Some(LinkState::Connecting) => UpstreamState::Connecting,
                Some(LinkState::Down { .. }) => UpstreamState::Down,
                // Not connected because not needed: healthy as far as anyone knows.
                Some(LinkState::Idle) | None => continue,
            };
            slot.stats.set_state(state);
        }
    }
}

/// Sleeps until `at`, or forever without a deadline.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending::<()>().await,
    }
}

/// Resolves when `channel` has been closed by the hub; never without a channel.
async fn closed(channel: Option<&Channel>) {
    match channel {
        Some(channel) => channel.closed().await,
        None => std::future::pending().await,
    }
}
