//! The pool groups as the hub knows them: names, weights, worker routes, which groups can
//! take work, and the balancer's latest figures (for new miners, `/metrics` and the API).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use crate::config::SplitConfig;

/// Where a miner works: its group now, and the group a route or its listener pins it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The group whose jobs it is sent.
    pub group: usize,
    /// The group it belongs to whatever the balance (`None`: the balancer may move it).
    /// A pinned miner works elsewhere only while its home group has no ready pool.
    pub home: Option<usize>,
}

/// A group's figures as the balancer last computed them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStatus {
    /// The group's name.
    pub name: String,
    /// Its configured weight.
    pub weight: f64,
    /// `ready` (an active pool), or `donating` (none: its share goes to the others).
    pub state: &'static str,
    /// The share of the site's hashrate it should have: its weight over the ready
    /// groups' weights (0 while donating).
    pub target_ratio: f64,
    /// The share it has, from its miners' share-proven hashrate.
    pub achieved_ratio: f64,
    /// Its miners' share-proven hashrate, H/s.
    pub hashrate: f64,
    /// Miners working for it now.
    pub miners: usize,
    /// Miners pinned to it by a route or listener.
    pub pinned: usize,
    /// Miners the balancer moved into it since start.
    pub moves: u64,
}

/// The pool groups shared by the miner sessions, the upstream side and the balancer.
#[derive(Debug)]
pub struct SplitBook {
    /// Names, weights, routes and pace from the configuration.
    config: SplitConfig,
    /// Whether each group has an active pool (as channel 0's connections see it).
    ready: Box<[AtomicBool]>,
    /// Miners moved into each group.
    moves: Box<[AtomicU64]>,
    /// The balancer's latest figures; before its first run, the configured targets.
    status: Mutex<Vec<GroupStatus>>,
}

impl SplitBook {
    /// The book of `config`'s groups, none ready yet.
    pub fn new(config: SplitConfig) -> SplitBook {
        let n = config.groups.len().max(1);
        let book = SplitBook {
            ready: (0..n).map(|_| AtomicBool::new(false)).collect(),
            moves: (0..n).map(|_| AtomicU64::new(0)).collect(),
            status: Mutex::new(Vec::new()),
            config,
        };
        let status = book.idle_status();
        *book.lock_status() = status;
        book
    }

    /// One group, every pool: a site without a split.
    pub fn single() -> SplitBook {
        SplitBook::new(SplitConfig::single())
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &SplitConfig {
        &self.config
    }

    /// Number of groups (at least one).
    pub fn len(&self) -> usize {
        self.ready.len()
    }

    /// Never true: a site has at least one group.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Books whether `group` has an active pool.
    pub fn set_ready(&self, group: usize, ready: bool) {
        if let Some(r) = self.ready.get(group) {
            r.store(ready, Ordering::Relaxed);
        }
    }

    /// Whether `group` has an active pool.
    pub fn is_ready(&self, group: usize) -> bool {
        self.ready
            .get(group)
            .is_some_and(|r| r.load(Ordering::Relaxed))
    }

    /// Readiness of every group, in order.
    pub fn readiness(&self) -> Vec<bool> {
        (0..self.len()).map(|g| self.is_ready(g)).collect()
    }

    /// Counts a miner moved into `group`.
    pub fn record_move(&self, group: usize) {
        if let Some(m) = self.moves.get(group) {
            m.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Miners moved into `group` since start.
    pub fn moves(&self, group: usize) -> u64 {
        self.moves
            .get(group)
            .map_or(0, |m| m.load(Ordering::Relaxed))
    }

    /// The latest figures, one per group in configured order: hashrates and miners as
    /// of the balancer's last run; state, target and moves as of now (a group that just
    /// lost its last pool says so at once).
    pub fn status(&self) -> Vec<GroupStatus> {
        let mut status = self.lock_status().clone();
        let ready = self.readiness();
        let targets = target_ratios(&self.weights(), &ready);
        for (g, s) in status.iter_mut().enumerate() {
            s.moves = self.moves(g);
            s.state = state_label(ready.get(g).copied().unwrap_or(false));
            s.target_ratio = targets.get(g).copied().unwrap_or(0.0);
        }
        status
    }

    /// Replaces the figures (the balancer, after each run).
    pub fn set_status(&self, status: Vec<GroupStatus>) {
        *self.lock_status() = status;
    }

    /// Where a miner that has just authorized as `worker` starts; see [`initial_group`].
    ///
    /// The achieved shares it compares are the balancer's last figures plus the miners
    /// placed since: each counts as the average miner (by count while no hashrate is
    /// proven yet), so a burst of miners arriving between two balancer runs is spread
    /// over the groups instead of all joining the one that was furthest behind.
    pub fn place(&self, worker: &str, listener_group: Option<usize>) -> Placement {
        let mut status = self.lock_status();
        let total_rate: f64 = status.iter().map(|s| s.hashrate).sum();
        let total_miners: usize = status.iter().map(|s| s.miners).sum();
        let by_rate = total_rate > 0.0 && total_miners > 0;
        let amount = |s: &GroupStatus| {
            if by_rate { s.hashrate } else { s.miners as f64 }
        };
        let sum: f64 = status.iter().map(amount).sum();
        let achieved: Vec<f64> = status
            .iter()
            .map(|s| if sum > 0.0 { amount(s) / sum } else { 0.0 })
            .collect();
        let placement = initial_group(
            worker,
            listener_group,
            &self.config,
            &self.readiness(),
            &achieved,
        );
        if let Some(s) = status.get_mut(placement.group) {
            s.miners += 1;
            if by_rate {
                s.hashrate += total_rate / total_miners as f64;
            }
        }
        placement
    }

    /// Figures before the balancer has measured anything: configured targets, nothing achieved.
    fn idle_status(&self) -> Vec<GroupStatus> {
        let ready = self.readiness();
        let targets = target_ratios(&self.weights(), &ready);
        self.config
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| GroupStatus {
                name: group.name.to_string(),
                weight: group.weight,
                state: state_label(ready.get(g).copied().unwrap_or(false)),
                target_ratio: targets.get(g).copied().unwrap_or(0.0),
                achieved_ratio: 0.0,
                hashrate: 0.0,
                miners: 0,
                pinned: 0,
                moves: 0,
            })
            .collect()
    }

    /// The configured weights, in order.
    pub fn weights(&self) -> Vec<f64> {
        self.config.groups.iter().map(|g| g.weight).collect()
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, Vec<GroupStatus>> {
        // Replaced whole under the lock: a poisoned value is still a whole one.
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `ready` or `donating`, as the API and logs say it.
pub fn state_label(ready: bool) -> &'static str {
    if ready { "ready" } else { "donating" }
}

/// Each group's target share: its weight over the ready groups' weights; a group without
/// a ready pool gets 0 (it donates its share). All 0 when no group is ready.
pub fn target_ratios(weights: &[f64], ready: &[bool]) -> Vec<f64> {
    let total: f64 = weights
        .iter()
        .zip(ready)
        .filter(|(_, r)| **r)
        .map(|(w, _)| *w)
        .sum();
    weights
        .iter()
        .zip(ready)
        .map(|(w, r)| if *r && total > 0.0 { w / total } else { 0.0 })
        .collect()
}

/// Where a newly authorized miner starts: the listener's group if it has one, else the
/// group of the first route matching `worker` (both pin it there); an unpinned miner
/// starts in the ready group furthest below its target (`achieved`: the balancer's latest
/// ratios), so a new miner rarely needs moving. A pinned miner whose group has no ready
/// pool starts in that best ready group and goes home when its group is back.
pub fn initial_group(
    worker: &str,
    listener_group: Option<usize>,
    config: &SplitConfig,
    ready: &[bool],
    achieved: &[f64],
) -> Placement {
    let groups = config.groups.len().max(1);
    let home = listener_group
        .filter(|g| *g < groups)
        .or_else(|| config.route_of(worker));
    if let Some(home) = home
        && ready.get(home).copied().unwrap_or(false)
    {
        return Placement {
            group: home,
            home: Some(home),
        };
    }
    let weights: Vec<f64> = config.groups.iter().map(|g| g.weight).collect();
    let targets = target_ratios(&weights, ready);
    let best = (0..groups)
        .filter(|g| ready.get(*g).copied().unwrap_or(false))
        .max_by(|a, b| {
            let deficit = |g: usize| {
                targets.get(g).copied().unwrap_or(0.0) - achieved.get(g).copied().unwrap_or(0.0)
            };
            // Ties go to the earlier group (max_by keeps the last of equals).
            deficit(*a).total_cmp(&deficit(*b)).then(b.cmp(a))
        });
    Placement {
        group: best.or(home).unwrap_or(0),
        home,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PoolGroup, Route, WorkerPattern};

    pub(super) fn two_groups() -> SplitConfig {
        let mut c = SplitConfig::single();
        c.groups = vec![
            PoolGroup {
                name: "main".into(),
                weight: 70.0,
                pools: Some(vec!["a".into()]),
            },
            PoolGroup {
                name: "second".into(),
                weight: 30.0,
                pools: Some(vec!["b".into()]),
            },
        ];
        c.routes = vec![Route {
            worker: WorkerPattern::new("acme.*"),
            group: 1,
        }];
        c
    }

    #[test]
    fn targets_share_the_ready_weights() {
        assert_eq!(target_ratios(&[70.0, 30.0], &[true, true]), vec![0.7, 0.3]);
        assert_eq!(target_ratios(&[70.0, 30.0], &[false, true]), vec![0.0, 1.0]);
        assert_eq!(
            target_ratios(&[70.0, 30.0], &[false, false]),
            vec![0.0, 0.0]
        );
    }

    #[test]
    fn routes_and_listeners_pin_and_the_rest_go_where_the_deficit_is() {
        let c = two_groups();
        let both = [true, true];
        let p = initial_group("acme.rig1", None, &c, &both, &[0.0, 0.0]);
        assert_eq!(
            p,
            Placement {
                group: 1,
                home: Some(1)
            }
        );
        // A listener's group comes before any route.
        let p = initial_group("acme.rig1", Some(0), &c, &both, &[0.0, 0.0]);
        assert_eq!(
            p,
            Placement {
                group: 0,
                home: Some(0)
            }
        );
        // Unrouted: the group furthest below target (0.7 - 0.7 = 0 vs 0.3 - 0.1 = 0.2).
        let p = initial_group("site.rig1", None, &c, &both, &[0.7, 0.1]);
        assert_eq!(
            p,
            Placement {
                group: 1,
                home: None
            }
        );
        let p = initial_group("site.rig1", None, &c, &both, &[0.5, 0.5]);
        assert_eq!(
            p,
            Placement {
                group: 0,
                home: None
            }
        );
        // A routed miner whose group has no pool starts elsewhere, remembering its home.
        let p = initial_group("acme.rig1", None, &c, &[true, false], &[0.0, 0.0]);
        assert_eq!(
            p,
            Placement {
                group: 0,
                home: Some(1)
            }
        );
    }
}

#[cfg(test)]
mod place_tests {
    use super::*;

    #[test]
    fn a_burst_of_new_miners_is_spread_by_weight() {
        // The shared config's route (acme.*) matches none of these workers.
        let c = super::tests::two_groups();
        let book = SplitBook::new(c);
        book.set_ready(0, true);
        book.set_ready(1, true);
        let groups: Vec<usize> = (0..10)
            .map(|i| book.place(&format!("s.m{i}"), None).group)
            .collect();
        let second = groups.iter().filter(|g| **g == 1).count();
        assert_eq!(second, 3, "{groups:?}");
    }
}
