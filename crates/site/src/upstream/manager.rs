//! The manager: one serving task per channel the hub opens, and an orderly shutdown.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::hub::{Channel, Hub};
use crate::stats::Registry;

use super::serve::ChannelServer;
use super::{PoolSet, UpstreamContext};

/// Starts the upstream side: connects to the pools at once (the first pool to subscribe
/// fixes the miners' extranonce sizes, which opens channel 0), then serves every channel
/// `channels` yields until `shutdown` is cancelled. The handle completes once every
/// connection has delivered or counted its pending shares.
pub fn spawn(
    config: Arc<Config>,
    hub: Arc<Hub>,
    channels: mpsc::Receiver<Arc<Channel>>,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    spawn_reloadable(config, hub, channels, registry, shutdown).0
}

/// [`spawn`], with the handle a reload gives a new pool list to.
pub fn spawn_reloadable(
    config: Arc<Config>,
    hub: Arc<Hub>,
    channels: mpsc::Receiver<Arc<Channel>>,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> (JoinHandle<()>, PoolReload) {
    let pools = watch::channel(Arc::new(PoolSet::of(&config))).0;
    let reload = PoolReload(pools.clone());
    let shared = Arc::new(UpstreamContext {
        config,
        hub,
        registry,
        shutdown,
        sizing: Mutex::new(()),
        next_conn: AtomicU64::new(1),
        resized: watch::channel(0).0,
        pools,
    });
    (tokio::spawn(run(shared, channels)), reload)
}

/// Hands a reloaded pool list to every channel server (and to those opened later).
#[derive(Debug, Clone)]
pub struct PoolReload(watch::Sender<Arc<PoolSet>>);

impl PoolReload {
    /// A handle no channel server follows, for tests of what drives a reload.
    #[cfg(test)]
    pub(crate) fn detached(set: PoolSet) -> PoolReload {
        PoolReload(watch::channel(Arc::new(set)).0)
    }

    /// The pools and failover timing in force.
    pub fn current(&self) -> Arc<PoolSet> {
        self.0.borrow().clone()
    }

    /// Applies `set`: a pool kept (same name, URL, account, password and redirect hosts)
    /// keeps its connection; one removed or changed is closed, and when it was serving a
    /// channel, the channel switches to the most preferred ready pool of the new list
    /// (new work with `clean_jobs`, as on failover); new pools are connected as the
    /// failover rules want. Miners stay connected throughout. Returns what changed.
    pub fn apply(&self, set: PoolSet) -> Vec<String> {
        let change = self.0.borrow().describe_change(&set);
        if !change.is_empty() {
            self.0.send_replace(Arc::new(set));
        }
        change
    }
}

async fn run(shared: Arc<UpstreamContext>, mut channels: mpsc::Receiver<Arc<Channel>>) {
    let tracker = TaskTracker::new();
    let groups = shared.hub.split().len();
    // Slot 0 starts before its channel exists: its connections are what learn the sizes.
    let mut first_txs = Vec::with_capacity(groups);
    for group in 0..groups {
        let (first_tx, first_rx) = mpsc::channel(1);
        tracker.spawn(ChannelServer::new(shared.clone(), 0, group, first_rx).run());
        first_txs.push(first_tx);
    }
    let mut first = Some(first_txs);
    let shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            channel = channels.recv() => match channel {
                Some(channel) if channel.index() == 0 => {
                    for tx in first.take().into_iter().flatten() {
                        let _ = tx.send(channel.clone()).await;
                    }
                }
                Some(channel) => {
                    tracing::info!(channel = channel.index(), "serving a new channel");
                    let index = channel.index();
                    for group in 0..groups {
                        let (tx, rx) = mpsc::channel(1);
                        let _ = tx.send(channel.clone()).await;
                        tracker.spawn(ChannelServer::new(shared.clone(), index, group, rx).run());
                    }
                }
                // The hub is gone; the channels already served go on until shutdown.
                None => {
                    shutdown.cancelled().await;
                    break;
                }
            },
        }
    }
    tracker.close();
    tracker.wait().await;
    tracing::info!("upstream connections closed");
}
