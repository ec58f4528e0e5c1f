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

use super::UpstreamContext;
use super::serve::ChannelServer;

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
    let shared = Arc::new(UpstreamContext {
        config,
        hub,
        registry,
        shutdown,
        sizing: Mutex::new(()),
        next_conn: AtomicU64::new(1),
        resized: watch::channel(0).0,
    });
    tokio::spawn(run(shared, channels))
}

async fn run(shared: Arc<UpstreamContext>, mut channels: mpsc::Receiver<Arc<Channel>>) {
    let tracker = TaskTracker::new();
    // Slot 0 starts before its channel exists: its connections are what learn the sizes.
    let (first_tx, first_rx) = mpsc::channel(1);
    tracker.spawn(ChannelServer::new(shared.clone(), 0, first_rx).run());
    let mut first = Some(first_tx);
    let shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            channel = channels.recv() => match channel {
                Some(channel) if channel.index() == 0 => {
                    if let Some(tx) = first.take() {
                        let _ = tx.send(channel).await;
                    }
                }
                Some(channel) => {
                    tracing::info!(channel = channel.index(), "serving a new channel");
                    let (tx, rx) = mpsc::channel(1);
                    let index = channel.index();
                    let _ = tx.send(channel).await;
                    tracker.spawn(ChannelServer::new(shared.clone(), index, rx).run());
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
