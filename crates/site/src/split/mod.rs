//! The weighted split: a task that every `split.rebalance_interval` reads each miner's
//! share-proven hashrate and pool group, decides moves ([`balance::plan`], pure) and
//! applies them (the miner's stats take the new group, its channel is told `Regroup`,
//! its session sends the new group's job with `clean_jobs`), then publishes each
//! group's target and achieved share for `/metrics` and `/api/v1/pool_groups`.

pub mod balance;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::hub::{ChannelControl, GroupStatus, Hub, state_label, target_ratios};
use crate::stats::{Registry, Window};

pub use balance::{MinerView, Move, MoveReason, plan};

/// Starts the balancer; it ends when `stop` is cancelled.
pub fn spawn(hub: Arc<Hub>, registry: Arc<Registry>, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = hub.split().config().rebalance_interval;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {
                    rebalance(&hub, &registry, Instant::now());
                }
            }
        }
    })
}

/// A miner's hashrate as the balancer weighs it: the 5-minute rate, or the 1-minute one
/// while the miner is younger than that, or 0 while it has proven nothing.
fn weighed_hashrate(stats: &crate::stats::MinerStats, now: Instant) -> f64 {
    stats
        .hashrate(now, Window::M5)
        .or_else(|| stats.hashrate(now, Window::M1))
        .unwrap_or(0.0)
}

/// One balancer run at `now`: decides and applies the moves and publishes the figures
/// (measured before the moves: what the pools have been getting). Returns the moves.
pub fn rebalance(hub: &Hub, registry: &Registry, now: Instant) -> Vec<Move> {
    let book = hub.split();
    let min_move = book.config().min_move_interval;
    let live = registry.live_miners();
    let miners: Vec<MinerView> = live
        .iter()
        .map(|(id, stats)| MinerView {
            id: *id,
            group: stats.group(),
            home: stats.home(),
            hashrate: weighed_hashrate(stats, now),
            last_moved: stats.last_moved(),
        })
        .collect();
    let weights = book.weights();
    let ready = book.readiness();
    let moves = if book.len() > 1 {
        plan(&miners, &weights, &ready, now, min_move)
    } else {
        Vec::new()
    };
    book.set_status(status(&miners, &weights, &ready, book));
    if moves.is_empty() {
        return moves;
    }
    // One lookup per move, not a scan of every miner: a dead group moves all of its.
    let by_id: std::collections::HashMap<u64, &crate::stats::MinerStats> =
        live.iter().map(|(id, stats)| (*id, &**stats)).collect();
    for m in &moves {
        if let Some(stats) = by_id.get(&m.id) {
            stats.move_to(m.to, now);
            book.record_move(m.to);
            tracing::debug!(miner = m.id, from = m.from, to = m.to, reason = ?m.reason, "moving miner between pool groups");
        }
    }
    // Every miner of every channel checks its group; those moved take the new work.
    for channel in hub.channels() {
        channel.broadcast(ChannelControl::Regroup);
    }
    let evacuated = moves
        .iter()
        .filter(|m| m.reason == MoveReason::Evacuate)
        .count();
    tracing::info!(moved = moves.len(), evacuated, "pool groups rebalanced");
    moves
}

/// Each group's figures from the miners as placed now.
fn status(
    miners: &[MinerView],
    weights: &[f64],
    ready: &[bool],
    book: &crate::hub::SplitBook,
) -> Vec<GroupStatus> {
    let groups = weights.len();
    let targets = target_ratios(weights, ready);
    let hashrates = balance::group_hashrates(miners, groups);
    let total: f64 = hashrates.iter().sum();
    book.config()
        .groups
        .iter()
        .enumerate()
        .map(|(g, group)| GroupStatus {
            name: group.name.to_string(),
            weight: group.weight,
            state: state_label(ready.get(g).copied().unwrap_or(false)),
            target_ratio: targets.get(g).copied().unwrap_or(0.0),
            achieved_ratio: if total > 0.0 {
                hashrates.get(g).copied().unwrap_or(0.0) / total
            } else {
                0.0
            },
            hashrate: hashrates.get(g).copied().unwrap_or(0.0),
            miners: miners.iter().filter(|m| m.group == g).count(),
            pinned: miners.iter().filter(|m| m.home == Some(g)).count(),
            moves: book.moves(g),
        })
        .collect()
}
