//! Per-worker series: connections grouped by worker name, capped so a large site cannot
//! flood Prometheus.
//!
//! A worker name is given its own series the first time it is seen, while fewer than
//! `max_worker_series` names have one; it keeps it for the life of the process. Every other
//! name is summed under `worker="_other"` for good. Because membership never changes, each
//! series (the `_other` sum included) only ever adds counts, so `_total` series never step
//! back. Connections that left before authorizing are summed under `worker="_unauthorized"`.

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use crate::stats::{Departed, DepartedWorker, MinerSnapshot, MinerTotals};

use super::text::label_value;

/// Label of the series summing every worker past the cap.
pub const OTHER: &str = "_other";
/// Label of the series summing connections that left without authorizing.
pub const UNAUTHORIZED: &str = "_unauthorized";

/// Which worker names own a series. Only grows, up to its limit.
#[derive(Debug)]
pub struct SeriesSlots {
    owners: HashSet<String>,
    limit: usize,
    /// Set once a name was refused a series: reported as `hashgate_worker_series_capped`.
    capped: bool,
}

impl SeriesSlots {
    /// Room for `limit` worker names.
    pub fn new(limit: usize) -> SeriesSlots {
        SeriesSlots {
            owners: HashSet::new(),
            limit,
            capped: false,
        }
    }

    /// The series label for a worker name, giving it a series of its own if there is room.
    fn label(&mut self, worker: &str) -> String {
        let label = label_value(worker);
        if self.owners.contains(label) {
            return label.to_owned();
        }
        if self.owners.len() < self.limit {
            self.owners.insert(label.to_owned());
            return label.to_owned();
        }
        self.capped = true;
        OTHER.to_owned()
    }

    /// Names owning a series.
    pub fn used(&self) -> usize {
        self.owners.len()
    }

    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether some name was ever summed under `_other`.
    pub fn capped(&self) -> bool {
        self.capped
    }
}

/// A worker's descriptive labels for `hashgate_miner_info`, taken from its most recent
/// live connection. One per worker, not per connection: a name reconnecting from many
/// source ports must not add a series each time (#11.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Remote host (address without the port).
    pub remote: String,
    /// User agent.
    pub user_agent: String,
    /// Extranonce prefix, hex.
    pub prefix: String,
}

/// Everything written for one worker series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerRow {
    /// Live connections.
    pub live: u64,
    /// Connections ever authorized under the name (live and departed).
    pub connections_total: u64,
    /// Counters over live and departed connections.
    pub totals: MinerTotals,
    /// Σ hashrate of live connections per window; `None` while none of them reports one.
    pub hashrate: [Option<f64>; 4],
    /// Σ assigned difficulty of live connections (the mean is written).
    pub difficulty_sum: f64,
    /// Best share of live connections.
    pub best_share: f64,
    /// Latest accepted share, live or departed.
    pub last_share: Option<SystemTime>,
    /// Earliest connect among live connections.
    pub connected_since: Option<SystemTime>,
    /// Labels of the most recent live connection (`None` for the summed `_other` series
    /// and for a worker with no live connection).
    pub info: Option<ConnectionInfo>,
    /// When the connection `info` describes was accepted.
    info_since: Option<SystemTime>,
}

impl WorkerRow {
    /// Reconnects: connections authorized under the name after the first.
    pub fn reconnects(&self) -> u64 {
        self.connections_total.saturating_sub(1)
    }

    /// Mean assigned difficulty of live connections.
    pub fn difficulty(&self) -> Option<f64> {
        (self.live > 0).then(|| self.difficulty_sum / self.live as f64)
    }

    fn add_live(&mut self, snap: &MinerSnapshot, keep_info: bool) {
        self.live += 1;
        self.connections_total += 1;
        self.totals.add(&snap.totals);
        for (sum, rate) in self.hashrate.iter_mut().zip(snap.hashrate) {
            if let Some(rate) = rate {
                *sum = Some(sum.unwrap_or(0.0) + rate);
            }
        }
        self.difficulty_sum += snap.difficulty;
        self.best_share = self.best_share.max(snap.best_share);
        self.last_share = self.last_share.max(snap.last_share);
        self.connected_since = Some(match self.connected_since {
            Some(t) => t.min(snap.connected_since),
            None => snap.connected_since,
        });
        // Live connections come in id order within a worker, so `>=` keeps the latest
        // accepted one when two connected in the same instant.
        if keep_info
            && let Some(id) = &snap.identity
            && self.info_since.is_none_or(|t| snap.connected_since >= t)
        {
            self.info_since = Some(snap.connected_since);
            self.info = Some(ConnectionInfo {
                remote: id.remote.ip().to_string(),
                user_agent: id.user_agent.clone(),
                prefix: id.prefix_hex.clone(),
            });
        }
    }

    fn add_departed(&mut self, gone: &DepartedWorker) {
        self.connections_total += gone.connections;
        self.totals.add(&gone.totals);
        self.last_share = self.last_share.max(gone.last_share);
    }
}

/// Site-wide figures over live connections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteRow {
    /// Connections, authorized or not.
    pub connected: u64,
    /// Σ hashrate per window of live connections reporting one.
    pub hashrate: [f64; 4],
}

/// Groups live and departed connections into worker series (label → row, label order).
pub fn group(
    slots: &mut SeriesSlots,
    live: &[(u64, MinerSnapshot)],
    departed: &Departed,
) -> (BTreeMap<String, WorkerRow>, SiteRow) {
    let mut rows: BTreeMap<String, WorkerRow> = BTreeMap::new();
    let mut site = SiteRow::default();
    // Names new to the slots are given series in name order, so which names win a slot
    // when many arrive in one scrape does not depend on hash-map order.
    let mut live_sorted: Vec<&(u64, MinerSnapshot)> = live.iter().collect();
    live_sorted.sort_by(|a, b| worker_of(&a.1).cmp(&worker_of(&b.1)).then(a.0.cmp(&b.0)));
    for (_, snap) in live_sorted {
        site.connected += 1;
        for (sum, rate) in site.hashrate.iter_mut().zip(snap.hashrate) {
            *sum += rate.unwrap_or(0.0);
        }
        // A connection not yet authorized is left out of the worker series: its counts
        // join its worker once it authorizes, or `_unauthorized` once it leaves.
        let Some(worker) = worker_of(snap) else {
            continue;
        };
        let label = slots.label(worker);
        let keep_info = label != OTHER;
        rows.entry(label).or_default().add_live(snap, keep_info);
    }
    let mut departed_sorted: Vec<(&String, &DepartedWorker)> = departed.by_worker.iter().collect();
    departed_sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (name, gone) in departed_sorted {
        let label = slots.label(name);
        rows.entry(label).or_default().add_departed(gone);
    }
    if departed.overflow.connections > 0 {
        rows.entry(OTHER.to_owned())
            .or_default()
            .add_departed(&departed.overflow);
    }
    if departed.unauthorized.connections > 0 {
        let row = rows.entry(UNAUTHORIZED.to_owned()).or_default();
        row.add_departed(&departed.unauthorized);
    }
    (rows, site)
}

fn worker_of(snap: &MinerSnapshot) -> Option<&str> {
    snap.identity.as_ref().map(|id| id.worker.as_str())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::stats::{MinerIdentity, MinerStats, Registry};

    fn miner(worker: Option<&str>, born: Instant, accepted: u64) -> Arc<MinerStats> {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let stats = Arc::new(MinerStats::new(born, wall, 16.0));
        if let Some(w) = worker {
            stats.set_identity(MinerIdentity {
                worker: w.into(),
                remote: "10.1.2.3:5000".parse().unwrap(),
                user_agent: "bmminer/2.0".into(),
                prefix_hex: "00ff".into(),
            });
        }
        for _ in 0..accepted {
            stats.record_accepted(born, wall, 16.0, 20.0);
        }
        stats
    }

    fn accepted_by_label(rows: &BTreeMap<String, WorkerRow>) -> Vec<(String, u64)> {
        rows.iter()
            .map(|(k, r)| (k.clone(), r.totals.accepted))
            .collect()
    }

    #[test]
    fn workers_past_the_cap_are_summed_under_other_for_good() {
        let registry = Registry::new();
        let t0 = Instant::now();
        let mut slots = SeriesSlots::new(2);
        let _b = registry.add_miner(miner(Some("b"), t0, 2));
        let _a = registry.add_miner(miner(Some("a"), t0, 1));
        let _c = registry.add_miner(miner(Some("c"), t0, 4));
        let (rows, site) = registry.view(t0, |l, d| group(&mut slots, l, d));
        assert_eq!(
            accepted_by_label(&rows),
            [("_other".into(), 4), ("a".into(), 1), ("b".into(), 2)]
        );
        assert_eq!(site.connected, 3);
        assert!(slots.capped());
        assert_eq!((slots.used(), slots.limit()), (2, 2));
        // `a` leaves; a newcomer does not take its slot, and `a` keeps its series.
        drop(_a);
        let _d = registry.add_miner(miner(Some("d"), t0, 8));
        let (rows, _) = registry.view(t0, |l, d| group(&mut slots, l, d));
        assert_eq!(
            accepted_by_label(&rows),
            [("_other".into(), 12), ("a".into(), 1), ("b".into(), 2)]
        );
        assert_eq!(rows["a"].live, 0);
        assert!(rows["_other"].info.is_none(), "no info lines past the cap");
        assert_eq!(
            rows["b"].info.as_ref().map(|i| i.remote.as_str()),
            Some("10.1.2.3"),
            "the host, without the connection's port"
        );
    }

    #[test]
    fn reconnects_and_unauthorized_departures_are_counted() {
        let registry = Registry::new();
        let t0 = Instant::now();
        let mut slots = SeriesSlots::new(10);
        drop(registry.add_miner(miner(Some("rig"), t0, 3)));
        drop(registry.add_miner(miner(Some("rig"), t0, 1)));
        let live = registry.add_miner(miner(Some("rig"), t0, 1));
        let anonymous = registry.add_miner(miner(None, t0, 0));
        let (rows, site) = registry.view(t0, |l, d| group(&mut slots, l, d));
        assert_eq!(site.connected, 2);
        assert!(
            !rows.contains_key(UNAUTHORIZED),
            "live unauthorized are not a series yet"
        );
        let rig = &rows["rig"];
        assert_eq!(
            (rig.live, rig.connections_total, rig.reconnects()),
            (1, 3, 2)
        );
        assert_eq!(rig.totals.accepted, 5);
        assert_eq!(rig.difficulty(), Some(16.0));
        drop(anonymous);
        drop(live);
        let (rows, _) = registry.view(t0, |l, d| group(&mut slots, l, d));
        assert_eq!(rows[UNAUTHORIZED].connections_total, 1);
        assert_eq!(rows["rig"].totals.accepted, 5);
        assert_eq!(rows["rig"].difficulty(), None);
    }

    #[test]
    fn hashrates_of_one_worker_add_up() {
        let registry = Registry::new();
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let mut slots = SeriesSlots::new(10);
        let a = miner(Some("rig"), t0, 0);
        let b = miner(Some("rig"), t0, 0);
        // 12 shares of difficulty 1 in a minute each: 12 · 2³² / 60 H/s per connection.
        for i in 0..12 {
            let t = t0 + Duration::from_secs(5 * i + 1);
            a.record_accepted(t, wall, 1.0, 1.0);
            b.record_accepted(t, wall, 1.0, 1.0);
        }
        let _ra = registry.add_miner(a);
        let _rb = registry.add_miner(b);
        let now = t0 + Duration::from_secs(60);
        let (rows, site) = registry.view(now, |l, d| group(&mut slots, l, d));
        let expected = 2.0 * 12.0 * 4_294_967_296.0 / 60.0;
        let got = rows["rig"].hashrate[0].unwrap();
        assert!(
            (got - expected).abs() / expected < 1e-9,
            "{got} vs {expected}"
        );
        assert!((site.hashrate[0] - expected).abs() / expected < 1e-9);
    }
}
