//! The balancer's decision, pure: which miners to move between pool groups so that each
//! ready group's share-proven hashrate meets its weight. Time comes in as `now`.

use std::time::{Duration, Instant};

use crate::hub::target_ratios;

/// Least reduction of the total error, as a fraction of the moved miner's hashrate, for
/// a rebalancing move. Any real reduction is worth a move, even of a miner bigger than the
/// error (the interop stage's cpuminer, 77 % of the fleet, sat in a 30 % group because an
/// earlier rule asked for half the miner's hashrate); but a move that only swaps the
/// error's sign would be undone by the next measurement's noise, so it must gain a tenth
/// of the miner.
const MIN_GAIN: f64 = 0.1;

/// A miner as the balancer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerView {
    /// Its registry id.
    pub id: u64,
    /// The group it works for.
    pub group: usize,
    /// The group a route or listener pins it to (`None`: movable).
    pub home: Option<usize>,
    /// Its share-proven hashrate, H/s (0 while unproven).
    pub hashrate: f64,
    /// When the balancer last moved it.
    pub last_moved: Option<Instant>,
}

/// Why a miner is moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveReason {
    /// Its group has no ready pool: it works for another until its group is back.
    Evacuate,
    /// Its home group is ready again.
    Home,
    /// To bring the groups nearer their weights.
    Balance,
}

/// One decided move.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Move {
    /// The miner's registry id.
    pub id: u64,
    /// The group it leaves.
    pub from: usize,
    /// The group it joins.
    pub to: usize,
    /// Why.
    pub reason: MoveReason,
}

/// Each group's hashrate (H/s) with miners placed as in `miners`.
pub fn group_hashrates(miners: &[MinerView], groups: usize) -> Vec<f64> {
    let mut sums = vec![0.0; groups];
    for m in miners {
        if let Some(s) = sums.get_mut(m.group) {
            *s += m.hashrate;
        }
    }
    sums
}

/// The moves to make now, in order.
///
/// 1. A miner in a group without a ready pool moves at once, whatever its last move
///    (a failover, not a rebalance): home if its home is ready, else to the ready group
///    furthest below its target.
/// 2. A pinned miner whose home is ready again goes home at once.
/// 3. Then, greedily, the movable miner (unpinned, with a proven hashrate, not moved in
///    the last `min_move_interval`) whose move from the group furthest above its target
///    to the group furthest below most reduces the total error, as long as that reduces
///    it by more than a tenth of the miner's hashrate ([`MIN_GAIN`]). The groups then end
///    within about half such a miner's hashrate of their targets (a move that would only
///    swap the error's sign is left: the measurements' noise would swap it back).
///
/// Targets are `weight / sum of the ready groups' weights` of the total hashrate; a group
/// without a ready pool has target 0 (it donates its share to the others).
pub fn plan(
    miners: &[MinerView],
    weights: &[f64],
    ready: &[bool],
    now: Instant,
    min_move_interval: Duration,
) -> Vec<Move> {
    let groups = weights.len();
    let is_ready = |g: usize| ready.get(g).copied().unwrap_or(false);
    if !(0..groups).any(is_ready) {
        // Nowhere to go: miners keep their last work until a pool is back.
        return Vec::new();
    }
    let targets = target_ratios(weights, ready);
    let total: f64 = miners.iter().map(|m| m.hashrate).sum();
    let mut placed: Vec<MinerView> = miners.to_vec();
    let mut achieved = group_hashrates(&placed, groups);
    let error = |achieved: &[f64], g: usize| {
        achieved.get(g).copied().unwrap_or(0.0) - targets.get(g).copied().unwrap_or(0.0) * total
    };
    let mut moves = Vec::new();
    let mut moved = vec![false; placed.len()];

    // 1 and 2: failover and failback, not rate-limited.
    for (i, m) in placed.iter_mut().enumerate() {
        let home_ready = m.home.filter(|h| *h < groups && is_ready(*h));
        let to = if !is_ready(m.group) {
            home_ready.or_else(|| {
                (0..groups)
                    .filter(|g| is_ready(*g))
                    .min_by(|a, b| error(&achieved, *a).total_cmp(&error(&achieved, *b)))
            })
        } else {
            home_ready.filter(|h| *h != m.group)
        };
        let Some(to) = to else { continue };
        let reason = if is_ready(m.group) {
            MoveReason::Home
        } else {
            MoveReason::Evacuate
        };
        if let Some(a) = achieved.get_mut(m.group) {
            *a -= m.hashrate;
        }
        if let Some(a) = achieved.get_mut(to) {
            *a += m.hashrate;
        }
        moves.push(Move {
            id: m.id,
            from: m.group,
            to,
            reason,
        });
        m.group = to;
        if let Some(flag) = moved.get_mut(i) {
            *flag = true;
        }
    }

    // 3: rebalance, one miner at a time.
    let movable = |m: &MinerView, was_moved: bool| {
        !was_moved
            && m.home.is_none()
            && m.hashrate > 0.0
            && m.last_moved
                .is_none_or(|t| now.saturating_duration_since(t) >= min_move_interval)
    };
    for _ in 0..placed.len() {
        let ready_groups = (0..groups).filter(|g| is_ready(*g));
        let Some(over) = ready_groups
            .clone()
            .max_by(|a, b| error(&achieved, *a).total_cmp(&error(&achieved, *b)))
        else {
            break;
        };
        let Some(under) =
            ready_groups.min_by(|a, b| error(&achieved, *a).total_cmp(&error(&achieved, *b)))
        else {
            break;
        };
        let (e_over, e_under) = (error(&achieved, over), error(&achieved, under));
        if over == under || e_over <= 0.0 || e_under >= 0.0 {
            break;
        }
        let gain = |h: f64| e_over.abs() + e_under.abs() - (e_over - h).abs() - (e_under + h).abs();
        let best = placed
            .iter()
            .enumerate()
            .filter(|(i, m)| m.group == over && movable(m, moved.get(*i).copied().unwrap_or(true)))
            .map(|(i, m)| (i, gain(m.hashrate), m.hashrate))
            .filter(|(_, g, h)| *g > h * MIN_GAIN)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((i, _, h)) = best else { break };
        let Some(m) = placed.get_mut(i) else { break };
        if let Some(a) = achieved.get_mut(over) {
            *a -= h;
        }
        if let Some(a) = achieved.get_mut(under) {
            *a += h;
        }
        moves.push(Move {
            id: m.id,
            from: over,
            to: under,
            reason: MoveReason::Balance,
        });
        m.group = under;
        if let Some(flag) = moved.get_mut(i) {
            *flag = true;
        }
    }
    moves
}
