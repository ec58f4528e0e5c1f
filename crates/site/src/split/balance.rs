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
/// 4. When no single move helps but the groups are still off, a swap: one big miner
///    crosses to the group below its target and smaller ones come back the other way
///    (step 3 from there). Single moves cannot leave that state: a big miner sitting in
///    the small group, with the small miners all in the big one, is too big to move alone
///    and every small miner moved out of the big group makes it worse (the interop stage's
///    fleet stuck at 43/57 for a 70/30 target so). The swap is made when it cuts the total
///    error by more than [`MIN_GAIN`] of all the hashrate it moves.
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
    let total: f64 = miners.iter().map(|m| m.hashrate).sum();
    let mut book = Book {
        targets: target_ratios(weights, ready)
            .into_iter()
            .map(|t| t * total)
            .collect(),
        ready: (0..groups).map(is_ready).collect(),
        achieved: group_hashrates(miners, groups),
        placed: miners.to_vec(),
        moved: vec![false; miners.len()],
        moves: Vec::new(),
        now,
        min_move_interval,
    };
    book.fail_over_and_home();
    book.greedy();
    book.swap();
    book.moves
}

/// The balancer's working state: where every miner is as moves are decided.
#[derive(Debug, Clone)]
struct Book {
    /// Each group's target hashrate, H/s.
    targets: Vec<f64>,
    ready: Vec<bool>,
    /// Each group's hashrate with the moves so far, H/s.
    achieved: Vec<f64>,
    placed: Vec<MinerView>,
    /// Miners already moved by this plan (never twice in one).
    moved: Vec<bool>,
    moves: Vec<Move>,
    now: Instant,
    min_move_interval: Duration,
}

impl Book {
    fn is_ready(&self, g: usize) -> bool {
        self.ready.get(g).copied().unwrap_or(false)
    }

    /// How far group `g` is above (positive) or below its target, H/s.
    fn error(&self, g: usize) -> f64 {
        self.achieved.get(g).copied().unwrap_or(0.0) - self.targets.get(g).copied().unwrap_or(0.0)
    }

    /// The sum of every group's distance from its target, H/s.
    fn total_error(&self) -> f64 {
        (0..self.achieved.len()).map(|g| self.error(g).abs()).sum()
    }

    /// Hashrate moved by this plan so far, H/s.
    fn moved_hashrate(&self) -> f64 {
        self.placed
            .iter()
            .zip(&self.moved)
            .filter(|(_, moved)| **moved)
            .map(|(m, _)| m.hashrate)
            .sum()
    }

    /// The ready groups furthest above and furthest below their targets.
    fn over_and_under(&self) -> Option<(usize, usize)> {
        let ready = (0..self.achieved.len()).filter(|g| self.is_ready(*g));
        let over = ready
            .clone()
            .max_by(|a, b| self.error(*a).total_cmp(&self.error(*b)))?;
        let under = ready.min_by(|a, b| self.error(*a).total_cmp(&self.error(*b)))?;
        (over != under && self.error(over) > 0.0 && self.error(under) < 0.0)
            .then_some((over, under))
    }

    /// Whether miner `i` may be moved by a rebalance now.
    fn movable(&self, i: usize) -> bool {
        let Some(m) = self.placed.get(i) else {
            return false;
        };
        !self.moved.get(i).copied().unwrap_or(true)
            && m.home.is_none()
            && m.hashrate > 0.0
            && m.last_moved
                .is_none_or(|t| self.now.saturating_duration_since(t) >= self.min_move_interval)
    }

    /// Records miner `i`'s move to group `to`.
    fn shift(&mut self, i: usize, to: usize, reason: MoveReason) {
        let Some(m) = self.placed.get_mut(i) else {
            return;
        };
        let (from, h) = (m.group, m.hashrate);
        m.group = to;
        if let Some(a) = self.achieved.get_mut(from) {
            *a -= h;
        }
        if let Some(a) = self.achieved.get_mut(to) {
            *a += h;
        }
        if let Some(flag) = self.moved.get_mut(i) {
            *flag = true;
        }
        self.moves.push(Move {
            id: m.id,
            from,
            to,
            reason,
        });
    }

    /// Steps 1 and 2: failover and failback, not rate-limited.
    fn fail_over_and_home(&mut self) {
        let groups = self.achieved.len();
        for i in 0..self.placed.len() {
            let Some(m) = self.placed.get(i) else { break };
            let home_ready = m.home.filter(|h| *h < groups && self.is_ready(*h));
            let to = if !self.is_ready(m.group) {
                home_ready.or_else(|| {
                    (0..groups)
                        .filter(|g| self.is_ready(*g))
                        .min_by(|a, b| self.error(*a).total_cmp(&self.error(*b)))
                })
            } else {
                home_ready.filter(|h| *h != m.group)
            };
            let Some(to) = to else { continue };
            let reason = if self.is_ready(m.group) {
                MoveReason::Home
            } else {
                MoveReason::Evacuate
            };
            self.shift(i, to, reason);
        }
    }

    /// Step 3: single moves from the group furthest over to the one furthest under.
    fn greedy(&mut self) {
        for _ in 0..self.placed.len() {
            let Some((over, under)) = self.over_and_under() else {
                break;
            };
            let (e_over, e_under) = (self.error(over), self.error(under));
            let gain =
                |h: f64| e_over.abs() + e_under.abs() - (e_over - h).abs() - (e_under + h).abs();
            let best = self
                .placed
                .iter()
                .enumerate()
                .filter(|(i, m)| m.group == over && self.movable(*i))
                .map(|(i, m)| (i, gain(m.hashrate), m.hashrate))
                .filter(|(_, g, h)| *g > h * MIN_GAIN)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let Some((i, _, _)) = best else { break };
            self.shift(i, under, MoveReason::Balance);
        }
    }

    /// Step 4: one swap, when single moves are stuck; the best of a few candidates.
    fn swap(&mut self) {
        /// Candidates tried: the smallest miners too big to move alone, each costing a
        /// run of step 3, so the balancer stays linear in the fleet.
        const CANDIDATES: usize = 4;
        let Some((over, under)) = self.over_and_under() else {
            return;
        };
        let gap = self.error(over).min(-self.error(under));
        let mut candidates: Vec<(usize, f64)> = self
            .placed
            .iter()
            .enumerate()
            .filter(|(i, m)| m.group == over && m.hashrate > gap && self.movable(*i))
            .map(|(i, m)| (i, m.hashrate))
            .collect();
        candidates.sort_by(|a, b| a.1.total_cmp(&b.1));
        let before_error = self.total_error();
        let before_moved = self.moved_hashrate();
        let best = candidates
            .into_iter()
            .take(CANDIDATES)
            .map(|(i, _)| {
                let mut trial = self.clone();
                trial.shift(i, under, MoveReason::Balance);
                trial.greedy();
                trial
            })
            .filter(|trial| {
                let gain = before_error - trial.total_error();
                gain > (trial.moved_hashrate() - before_moved) * MIN_GAIN
            })
            .min_by(|a, b| a.total_error().total_cmp(&b.total_error()));
        if let Some(best) = best {
            *self = best;
        }
    }
}
