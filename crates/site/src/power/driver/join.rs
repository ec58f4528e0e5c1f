//! Joins each inventory miner to its Stratum connections, so health alarms compare what the
//! management API claims with what shares prove.
//!
//! A miner's inventory `worker`, when given, matches the worker name it authorized with;
//! otherwise its management IP matches the connection's remote IP (the same machine). A
//! miner with a host-name address and no `worker` cannot be joined and proves nothing:
//! its alarms then rest on the API alone (`no_shares` fires when it mines).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::power::inventory::{Address, MinerSpec};
use crate::stats::{MinerSnapshot, Window};

/// What the shares of one inventory miner prove.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Proven {
    /// Share-proven hashrate summed over its connections, TH/s.
    pub ths: f64,
    /// Latest valid share over its connections.
    pub last_share: Option<Instant>,
    /// At least one Stratum connection joined to it.
    pub connected: bool,
}

/// How one inventory miner is recognised among Stratum connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Worker(String),
    Ip(IpAddr),
}

fn key_of(spec: &MinerSpec) -> Option<Key> {
    if let Some(w) = &spec.worker {
        return Some(Key::Worker(w.clone()));
    }
    match &spec.address {
        Address::Socket(addr) => Some(Key::Ip(addr.ip().to_canonical())),
        Address::Host { .. } => None,
    }
}

/// The stats window whose length best matches the alarm's comparison window: the longest one
/// not longer than it (so it is full by the time the rule applies), else the shortest.
pub fn window_for(min_window: std::time::Duration) -> Window {
    Window::ALL
        .iter()
        .rev()
        .copied()
        .find(|w| w.duration() <= min_window)
        .unwrap_or(Window::M1)
}

/// Index from connection identity to inventory miner, built once from the inventory.
#[derive(Debug, Clone)]
pub struct ShareJoin {
    by_key: HashMap<Key, usize>,
    window: Window,
}

const HASHES_PER_TH: f64 = 1e12;

impl ShareJoin {
    /// Builds the index over `miners` (config order), reading hashrate over `window`.
    pub fn new(miners: &[MinerSpec], window: Window) -> ShareJoin {
        let mut by_key = HashMap::new();
        let mut ambiguous = Vec::new();
        for (i, m) in miners.iter().enumerate() {
            if let Some(k) = key_of(m)
                && let Some(_) = by_key.insert(k.clone(), i)
            {
                ambiguous.push(k);
            }
        }
        // Two miners behind one IP (NAT, a port-forwarding gateway) cannot be told apart by
        // their connections' address: joining either would credit it with the other's
        // shares, so neither is joined by IP (a `worker` still joins them).
        for k in ambiguous {
            by_key.remove(&k);
        }
        ShareJoin { by_key, window }
    }

    /// The inventory miner (config order) a connection belongs to, if any.
    fn index_of(&self, snap: &MinerSnapshot) -> Option<usize> {
        let identity = snap.identity.as_ref()?;
        self.by_key
            .get(&Key::Worker(identity.worker.clone()))
            .or_else(|| {
                self.by_key
                    .get(&Key::Ip(identity.remote.ip().to_canonical()))
            })
            .copied()
    }

    /// (inventory miner index, worker name) of every connection joined to a miner.
    pub fn joined_workers<'a>(
        &'a self,
        snapshots: &'a [(u64, MinerSnapshot)],
    ) -> impl Iterator<Item = (usize, &'a str)> + 'a {
        snapshots.iter().filter_map(|(_, snap)| {
            let index = self.index_of(snap)?;
            Some((index, snap.identity.as_ref()?.worker.as_str()))
        })
    }

    /// What the shares prove for each inventory miner (config order), from a registry
    /// snapshot taken at `now` (`wall` is the same instant in wall-clock time).
    pub fn prove(
        &self,
        count: usize,
        snapshots: &[(u64, MinerSnapshot)],
        now: Instant,
        wall: SystemTime,
    ) -> Vec<Proven> {
        let mut out = vec![Proven::default(); count];
        let window = Window::ALL
            .iter()
            .position(|w| *w == self.window)
            .unwrap_or(0);
        for (_, snap) in snapshots {
            let index = self.index_of(snap);
            let Some(slot) = index.and_then(|i| out.get_mut(i)) else {
                continue;
            };
            slot.connected = true;
            slot.ths += snap.hashrate.get(window).copied().flatten().unwrap_or(0.0) / HASHES_PER_TH;
            // The stats keep wall-clock share times; bring them onto the monotonic clock.
            let share = snap.last_share.map(|t| {
                now.checked_sub(wall.duration_since(t).unwrap_or_default())
                    .unwrap_or(now)
            });
            slot.last_share = slot.last_share.max(share);
        }
        out
    }
}

/// Name of the gauge joining an inventory miner (power series, label `miner`) to the worker
/// names of its Stratum connections (share series, label `worker`).
pub const POWER_INFO: &str = "hashgate_miner_power_info";

/// Most worker names one inventory miner is mapped to; a miner re-authorizing under ever
/// new names must not grow the scrape without bound.
pub const MAX_WORKERS_PER_MINER: usize = 4;

/// The worker names an inventory miner has been mapped to, each published once as
/// `hashgate_miner_power_info{container,miner,worker} 1`.
///
/// Kept for the process's life: a miner put to sleep may drop its Stratum connection, and
/// the alerts that spare sleeping miners still need to know which worker it was.
#[derive(Debug, Default)]
pub struct WorkerNames(Vec<String>);

impl WorkerNames {
    /// The names mapped so far.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Maps `miner` to `worker`, unless already mapped or at [`MAX_WORKERS_PER_MINER`].
    pub fn publish(&mut self, miner: &Arc<str>, container: &Arc<str>, worker: &str) {
        if self.0.len() >= MAX_WORKERS_PER_MINER || self.0.iter().any(|w| w == worker) {
            return;
        }
        self.0.push(worker.to_owned());
        metrics::gauge!(
            POWER_INFO,
            "container" => container.clone(),
            "miner" => miner.clone(),
            "worker" => worker.to_owned()
        )
        .set(1.0);
    }

    /// Sets every published mapping of `miner` to 0, when a reload removes or moves it.
    pub fn retire(&self, miner: &Arc<str>, container: &Arc<str>) {
        for worker in &self.0 {
            metrics::gauge!(
                POWER_INFO,
                "container" => container.clone(),
                "miner" => miner.clone(),
                "worker" => worker.clone()
            )
            .set(0.0);
        }
    }
}

/// Keeps the label set of `hashgate_miner_alarm` fixed: every miner gets both series.
pub const ALARM_LABELS: [&str; 2] = ["no_shares", "hashrate_exceeds_shares"];

/// DriverState name of the alarm gauge.
pub const ALARM_GAUGE: &str = "hashgate_miner_alarm";

/// Sets `hashgate_miner_alarm{miner,alarm}` to 1 for raised alarms and 0 for the rest.
pub(super) fn publish_alarms(miner: &Arc<str>, raised: &[&'static str]) {
    for label in ALARM_LABELS {
        metrics::gauge!(ALARM_GAUGE, "miner" => miner.clone(), "alarm" => label)
            .set(f64::from(u8::from(raised.contains(&label))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::inventory::PowerConfig;
    use crate::stats::{MinerIdentity, MinerStats};
    use std::time::Duration;

    const INVENTORY: &str = r#"
        [[containers]]
        name = "c1"
        budget_kw = 100
        [[miners]]
        id = "by-ip"
        container = "c1"
        address = "10.0.0.7"
        family = "luxos"
        model = "S19"
        nominal_watts = 3000
        nominal_ths = 100
        [[miners]]
        id = "by-worker"
        container = "c1"
        address = "10.0.0.8"
        family = "luxos"
        model = "S19"
        nominal_watts = 3000
        nominal_ths = 100
        worker = "site.rack1"
        [[miners]]
        id = "by-host"
        container = "c1"
        address = "miner-9.site"
        family = "luxos"
        model = "S19"
        nominal_watts = 3000
        nominal_ths = 100
    "#;

    fn connection(worker: &str, remote: &str, t0: Instant, wall: SystemTime) -> MinerSnapshot {
        let stats = MinerStats::new(t0, wall, 1.0);
        stats.set_identity(MinerIdentity {
            worker: worker.into(),
            remote: remote.parse().expect("addr"),
            user_agent: "sim".into(),
            prefix_hex: "00".into(),
        });
        // 1,000 shares of difficulty 1,000 in 60 s, the last 10 s before `now`.
        for _ in 0..1000 {
            stats.record_accepted(t0 + Duration::from_secs(50), wall, 1000.0, 1000.0);
        }
        stats.snapshot(t0 + Duration::from_secs(60))
    }

    #[test]
    fn joins_by_worker_then_by_ip_and_sums_connections() {
        let cfg = PowerConfig::from_toml_str(INVENTORY).expect("valid");
        let join = ShareJoin::new(&cfg.miners, Window::M1);
        let t0 = Instant::now();
        let wall0 = SystemTime::now();
        let now = t0 + Duration::from_secs(60);
        let wall = wall0 + Duration::from_secs(60);
        let snaps = vec![
            (
                1,
                connection(
                    "acct.a",
                    "10.0.0.7:40001",
                    t0,
                    wall - Duration::from_secs(10),
                ),
            ),
            (
                2,
                connection(
                    "acct.b",
                    "[::ffff:10.0.0.7]:40002",
                    t0,
                    wall - Duration::from_secs(20),
                ),
            ),
            // Its IP is by-ip's, but its worker names by-worker: the worker wins.
            (3, connection("site.rack1", "10.0.0.7:40003", t0, wall)),
            (4, connection("stranger", "10.9.9.9:1", t0, wall)),
        ];
        let proven = join.prove(cfg.miners.len(), &snaps, now, wall);
        let one = 1000.0 * 1000.0 * 4_294_967_296.0 / 60.0 / 1e12;
        assert!((proven[0].ths - 2.0 * one).abs() < 1e-9, "{proven:?}");
        assert!((proven[1].ths - one).abs() < 1e-9, "{proven:?}");
        assert!(!proven[2].connected);
        let last = proven[0].last_share.expect("share");
        let ago = now.duration_since(last);
        assert!(
            ago >= Duration::from_secs(9) && ago <= Duration::from_secs(11),
            "{ago:?}"
        );
    }

    #[test]
    fn two_miners_behind_one_ip_are_not_joined_by_ip() {
        let text = INVENTORY.replace("10.0.0.8", "10.0.0.7:4029");
        let text = text.replace("worker = \"site.rack1\"", "");
        let cfg = PowerConfig::from_toml_str(&text).expect("valid");
        let join = ShareJoin::new(&cfg.miners, Window::M1);
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let snaps = vec![(1, connection("acct.a", "10.0.0.7:40001", t0, wall))];
        let proven = join.prove(cfg.miners.len(), &snaps, t0 + Duration::from_secs(60), wall);
        assert!(proven.iter().all(|p| !p.connected), "{proven:?}");
    }

    #[test]
    fn window_matches_the_alarm_window() {
        assert_eq!(window_for(Duration::from_secs(3600)), Window::H1);
        assert_eq!(window_for(Duration::from_secs(1000)), Window::M15);
        assert_eq!(window_for(Duration::from_secs(10)), Window::M1);
    }
}
