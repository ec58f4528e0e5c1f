//! Counters of one miner connection, shared by its session task and the upstream task that
//! hears the pool's answers for its shares.
//!
//! Everything on the submit path is a relaxed atomic add (no lock); the hashrate meter sits
//! behind a `std::sync::Mutex` held for a few nanoseconds and never across an await.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use hashgate_protocol::work::ShareReject;

use super::hashrate::{HashrateMeter, Window};

/// Why the pool refused a share, bucketed so metric labels stay a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolReject {
    /// Job unknown or stale at the pool (code 21, "stale", "job not found").
    Stale,
    /// The pool had seen it (code 22, "duplicate").
    Duplicate,
    /// Below the pool's target (code 23, "above target", "low difficulty").
    LowDifficulty,
    /// Worker not authorized at the pool (code 24, "unauthorized", "worker mismatch").
    Unauthorized,
    /// Any other reason.
    Other,
}

impl PoolReject {
    /// Every variant, in label order.
    pub const ALL: [PoolReject; 5] = [
        PoolReject::Stale,
        PoolReject::Duplicate,
        PoolReject::LowDifficulty,
        PoolReject::Unauthorized,
        PoolReject::Other,
    ];

    /// Classifies a pool's reject from its code and message (pools disagree on both).
    pub fn classify(code: Option<i64>, message: Option<&str>) -> PoolReject {
        match code {
            Some(21) => return PoolReject::Stale,
            Some(22) => return PoolReject::Duplicate,
            Some(23) => return PoolReject::LowDifficulty,
            Some(24) => return PoolReject::Unauthorized,
            _ => {}
        }
        let text = message.unwrap_or("").to_ascii_lowercase();
        if text.contains("stale") || text.contains("job") {
            PoolReject::Stale
        } else if text.contains("duplicate") {
            PoolReject::Duplicate
        } else if text.contains("target") || text.contains("difficulty") {
            PoolReject::LowDifficulty
        } else if text.contains("unauthori") || text.contains("worker") {
            PoolReject::Unauthorized
        } else {
            PoolReject::Other
        }
    }

    /// Stable metric label.
    pub const fn label(self) -> &'static str {
        match self {
            PoolReject::Stale => "stale",
            PoolReject::Duplicate => "duplicate",
            PoolReject::LowDifficulty => "low_difficulty",
            PoolReject::Unauthorized => "unauthorized",
            PoolReject::Other => "other",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Why a share that met the upstream target never got a verdict from the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Undelivered {
    /// The upstream connection that issued the job was gone (failover, pool down).
    UpstreamGone,
    /// The upstream send queue was full.
    QueueFull,
    /// Sent, but the pool did not answer within the submit timeout or dropped the line.
    NoAnswer,
    /// Still pending when the proxy shut down.
    Shutdown,
}

impl Undelivered {
    /// Every variant, in label order.
    pub const ALL: [Undelivered; 4] = [
        Undelivered::UpstreamGone,
        Undelivered::QueueFull,
        Undelivered::NoAnswer,
        Undelivered::Shutdown,
    ];

    /// Stable metric label.
    pub const fn label(self) -> &'static str {
        match self {
            Undelivered::UpstreamGone => "upstream_gone",
            Undelivered::QueueFull => "queue_full",
            Undelivered::NoAnswer => "no_answer",
            Undelivered::Shutdown => "shutdown",
        }
    }
}

/// Who a miner is: fixed once it has authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinerIdentity {
    /// Worker name as the miner authorized it.
    pub worker: String,
    /// Remote address of its connection.
    pub remote: SocketAddr,
    /// User agent from `mining.subscribe`.
    pub user_agent: String,
    /// Its extranonce prefix, hex (which slice of the pool's extranonce space it works).
    pub prefix_hex: String,
}

/// A point-in-time copy of a miner's counters, for status output and the API.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerSnapshot {
    /// Who.
    pub identity: Option<MinerIdentity>,
    /// The monotonic counters: shares accepted, rejected, at the pool, undelivered, blocks.
    pub totals: MinerTotals,
    /// Difficulty currently assigned.
    pub difficulty: f64,
    /// Highest share difficulty seen.
    pub best_share: f64,
    /// Share-proven hashrate in H/s per window (`None` while younger than the report age).
    pub hashrate: [Option<f64>; 4],
    /// Wall-clock time of the last accepted share.
    pub last_share: Option<SystemTime>,
    /// Wall-clock time the connection was accepted.
    pub connected_since: SystemTime,
    /// The pool group it works for (index into the split configuration; 0 before
    /// authorize, when it is not yet placed).
    pub group: usize,
    /// The group a listener or a route pins it to, if any.
    pub home: Option<usize>,
}

/// The monotonic counters of a miner connection, without the gauges: what is kept of a
/// connection once it has gone, so `_total` series never go down.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MinerTotals {
    /// Shares that met the miner's target.
    pub accepted: u64,
    /// Σ difficulty of accepted shares.
    pub accepted_difficulty: f64,
    /// Rejects by reason, in [`ShareReject::ALL`] order.
    pub rejected: [u64; 9],
    /// Pool-accepted shares.
    pub pool_accepted: u64,
    /// Pool rejects by reason, in [`PoolReject::ALL`] order.
    pub pool_rejected: [u64; 5],
    /// Undelivered shares by reason, in [`Undelivered::ALL`] order.
    pub undelivered: [u64; 4],
    /// Blocks found.
    pub blocks: u64,
}

impl MinerTotals {
    /// Adds another connection's totals to these.
    pub fn add(&mut self, other: &MinerTotals) {
        fn add_all<const N: usize>(into: &mut [u64; N], from: &[u64; N]) {
            for (a, b) in into.iter_mut().zip(from) {
                *a += b;
            }
        }
        self.accepted += other.accepted;
        self.accepted_difficulty += other.accepted_difficulty;
        add_all(&mut self.rejected, &other.rejected);
        self.pool_accepted += other.pool_accepted;
        add_all(&mut self.pool_rejected, &other.pool_rejected);
        add_all(&mut self.undelivered, &other.undelivered);
        self.blocks += other.blocks;
    }
}

impl MinerTotals {
    /// Total rejects over all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// Total pool rejects.
    pub fn pool_rejected_total(&self) -> u64 {
        self.pool_rejected.iter().sum()
    }

    /// Total undelivered.
    pub fn undelivered_total(&self) -> u64 {
        self.undelivered.iter().sum()
    }
}

/// Live counters of one miner connection.
#[derive(Debug)]
pub struct MinerStats {
    /// Set once at authorize.
    identity: Mutex<Option<MinerIdentity>>,
    accepted: AtomicU64,
    /// f64 bits; only the session task adds, so load+store is race-free.
    accepted_difficulty: AtomicU64,
    rejected: [AtomicU64; 9],
    pool_accepted: AtomicU64,
    pool_rejected: [AtomicU64; 5],
    undelivered: [AtomicU64; 4],
    blocks: AtomicU64,
    /// f64 bits of the current difficulty.
    difficulty: AtomicU64,
    /// f64 bits of the best share difficulty.
    best_share: AtomicU64,
    /// Unix time in milliseconds of the last accepted share; 0 = none yet.
    last_share_ms: AtomicU64,
    connected_since: SystemTime,
    hashrate: Mutex<HashrateMeter>,
    /// The miner's pool group, packed in one word (it is read by the balancer and the
    /// exporter, written at authorize and by the balancer): bits 0–7 the group it works
    /// for, bits 8–15 its home group (`0xff`: none, the balancer may move it), bits 16–63
    /// when the balancer last moved it, milliseconds after [`placement_epoch`] plus one
    /// (0: never).
    placement: AtomicU64,
}

/// The instant move times are counted from: the first time anyone asked.
fn placement_epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

const NO_HOME: u64 = 0xff;

fn add_f64(cell: &AtomicU64, value: f64) {
    // Single writer (the session task); relaxed load + store keeps the hot path lock-free.
    let old = f64::from_bits(cell.load(Ordering::Relaxed));
    cell.store((old + value).to_bits(), Ordering::Relaxed);
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl MinerStats {
    /// Fresh counters for a connection accepted at `now` (`wall` is the same instant in
    /// wall-clock time, for display).
    pub fn new(now: Instant, wall: SystemTime, difficulty: f64) -> MinerStats {
        MinerStats {
            identity: Mutex::new(None),
            accepted: AtomicU64::new(0),
            accepted_difficulty: AtomicU64::new(0f64.to_bits()),
            rejected: Default::default(),
            pool_accepted: AtomicU64::new(0),
            pool_rejected: Default::default(),
            undelivered: Default::default(),
            blocks: AtomicU64::new(0),
            difficulty: AtomicU64::new(difficulty.to_bits()),
            best_share: AtomicU64::new(0f64.to_bits()),
            last_share_ms: AtomicU64::new(0),
            connected_since: wall,
            hashrate: Mutex::new(HashrateMeter::new(now)),
            placement: AtomicU64::new(NO_HOME << 8),
        }
    }

    /// Sets the miner's group and home group at authorize (not counted as a move).
    pub fn place(&self, group: usize, home: Option<usize>) {
        let home = home.map_or(NO_HOME, |h| (h as u64) & 0xff);
        self.placement
            .store(((group as u64) & 0xff) | (home << 8), Ordering::Relaxed);
    }

    /// Moves the miner to `group` at `now` (the balancer); its session follows on the
    /// channel's `Regroup`.
    pub fn move_to(&self, group: usize, now: Instant) {
        let old = self.placement.load(Ordering::Relaxed);
        let ms = now.saturating_duration_since(placement_epoch()).as_millis() as u64 + 1;
        let word = ((group as u64) & 0xff) | (old & 0xff00) | (ms << 16);
        self.placement.store(word, Ordering::Relaxed);
    }

    /// The pool group the miner works for.
    pub fn group(&self) -> usize {
        (self.placement.load(Ordering::Relaxed) & 0xff) as usize
    }

    /// The group a route or listener pins it to, if any.
    pub fn home(&self) -> Option<usize> {
        let home = (self.placement.load(Ordering::Relaxed) >> 8) & 0xff;
        (home != NO_HOME).then_some(home as usize)
    }

    /// When the balancer last moved it.
    pub fn last_moved(&self) -> Option<Instant> {
        let ms = self.placement.load(Ordering::Relaxed) >> 16;
        (ms > 0).then(|| placement_epoch() + std::time::Duration::from_millis(ms - 1))
    }

    /// Records who the miner is (at authorize).
    pub fn set_identity(&self, identity: MinerIdentity) {
        if let Ok(mut slot) = self.identity.lock() {
            *slot = Some(identity);
        }
    }

    /// The worker name, once authorized.
    pub fn worker(&self) -> Option<String> {
        self.identity
            .lock()
            .ok()
            .and_then(|id| id.as_ref().map(|i| i.worker.clone()))
    }

    /// Records the difficulty now assigned.
    pub fn set_difficulty(&self, difficulty: f64) {
        self.difficulty
            .store(difficulty.to_bits(), Ordering::Relaxed);
    }

    /// Records a share that met the miner's target, credited at `difficulty` (the assigned
    /// one: share-proven hashrate is Σ assigned difficulty × 2³² / time), with `achieved`
    /// the difficulty the hash really reached.
    pub fn record_accepted(&self, now: Instant, wall: SystemTime, difficulty: f64, achieved: f64) {
        if !super::RECORDING {
            return;
        }
        self.accepted.fetch_add(1, Ordering::Relaxed);
        add_f64(&self.accepted_difficulty, difficulty);
        let best = f64::from_bits(self.best_share.load(Ordering::Relaxed));
        if achieved > best {
            self.best_share.store(achieved.to_bits(), Ordering::Relaxed);
        }
        self.last_share_ms.store(unix_ms(wall), Ordering::Relaxed);
        if let Ok(mut meter) = self.hashrate.lock() {
            meter.record(now, difficulty);
        }
    }

    /// Records a rejected share.
    pub fn record_rejected(&self, reason: ShareReject) {
        if !super::RECORDING {
            return;
        }
        let index = ShareReject::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(ShareReject::ALL.len() - 1);
        if let Some(cell) = self.rejected.get(index) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a block found.
    pub fn record_block(&self) {
        if !super::RECORDING {
            return;
        }
        self.blocks.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the pool's acceptance of a forwarded share.
    pub fn record_pool_accepted(&self) {
        if !super::RECORDING {
            return;
        }
        self.pool_accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the pool's rejection of a forwarded share.
    pub fn record_pool_rejected(&self, reason: PoolReject) {
        if !super::RECORDING {
            return;
        }
        if let Some(cell) = self.pool_rejected.get(reason.index()) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a share that met the upstream target but got no verdict from the pool.
    pub fn record_undelivered(&self, reason: Undelivered) {
        if !super::RECORDING {
            return;
        }
        if let Some(cell) = self.undelivered.get(reason as usize) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Share-proven hashrate over `window`, H/s.
    pub fn hashrate(&self, now: Instant, window: Window) -> Option<f64> {
        self.hashrate.lock().ok().and_then(|m| m.rate(now, window))
    }

    /// Copies the monotonic counters (no hashrate, so no clock needed).
    pub fn totals(&self) -> MinerTotals {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MinerTotals {
            accepted: load(&self.accepted),
            accepted_difficulty: f64::from_bits(load(&self.accepted_difficulty)),
            rejected: self.rejected.each_ref().map(load),
            pool_accepted: load(&self.pool_accepted),
            pool_rejected: self.pool_rejected.each_ref().map(load),
            undelivered: self.undelivered.each_ref().map(load),
            blocks: load(&self.blocks),
        }
    }

    /// Wall-clock time of the last accepted share.
    pub fn last_share(&self) -> Option<SystemTime> {
        let ms = self.last_share_ms.load(Ordering::Relaxed);
        (ms > 0).then(|| SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms))
    }

    /// Copies every counter.
    pub fn snapshot(&self, now: Instant) -> MinerSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let last_ms = load(&self.last_share_ms);
        let hashrate = match self.hashrate.lock() {
            Ok(meter) => Window::ALL.map(|w| meter.rate(now, w)),
            Err(_) => [None; 4],
        };
        MinerSnapshot {
            identity: self.identity.lock().ok().and_then(|i| i.clone()),
            totals: self.totals(),
            difficulty: f64::from_bits(load(&self.difficulty)),
            best_share: f64::from_bits(load(&self.best_share)),
            hashrate,
            last_share: (last_ms > 0)
                .then(|| SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(last_ms)),
            connected_since: self.connected_since,
            group: self.group(),
            home: self.home(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_rejects_classify_every_shape_pools_send() {
        assert_eq!(PoolReject::classify(Some(21), None), PoolReject::Stale);
        assert_eq!(
            PoolReject::classify(Some(23), Some("Above target")),
            PoolReject::LowDifficulty
        );
        assert_eq!(
            PoolReject::classify(None, Some("Above target")),
            PoolReject::LowDifficulty
        );
        assert_eq!(
            PoolReject::classify(None, Some("Invalid JobID")),
            PoolReject::Stale
        );
        assert_eq!(
            PoolReject::classify(None, Some("Worker mismatch")),
            PoolReject::Unauthorized
        );
        assert_eq!(
            PoolReject::classify(None, Some("Duplicate")),
            PoolReject::Duplicate
        );
        assert_eq!(
            PoolReject::classify(Some(20), Some("Ntime out of range")),
            PoolReject::Other
        );
        assert_eq!(PoolReject::classify(None, None), PoolReject::Other);
        for (i, r) in PoolReject::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn counters_add_up_in_the_snapshot() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let stats = MinerStats::new(now, wall, 8.0);
        stats.record_accepted(now, wall, 8.0, 20.0);
        stats.record_accepted(now, wall, 8.0, 9.0);
        stats.record_rejected(ShareReject::Duplicate);
        stats.record_rejected(ShareReject::Malformed);
        stats.record_pool_accepted();
        stats.record_pool_rejected(PoolReject::Stale);
        stats.record_undelivered(Undelivered::NoAnswer);
        let snap = stats.snapshot(now);
        assert_eq!(snap.totals.accepted, 2);
        assert_eq!(snap.totals.accepted_difficulty, 16.0);
        assert_eq!(snap.best_share, 20.0);
        assert_eq!(snap.totals.rejected_total(), 2);
        assert_eq!(snap.totals.rejected[1], 1, "duplicate is the second reason");
        assert_eq!(snap.totals.rejected[8], 1, "malformed is the last reason");
        assert_eq!(snap.totals.pool_accepted, 1);
        assert_eq!(snap.totals.pool_rejected_total(), 1);
        assert_eq!(snap.totals.undelivered[2], 1);
        assert!(snap.last_share.is_some());
        assert_eq!(snap.difficulty, 8.0);
        assert_eq!(stats.totals(), snap.totals);
        assert_eq!(stats.last_share(), snap.last_share);
        let mut twice = snap.totals;
        twice.add(&snap.totals);
        assert_eq!(twice.accepted, 4);
        assert_eq!(twice.accepted_difficulty, 32.0);
        assert_eq!(twice.rejected[1], 2);
        assert_eq!(twice.undelivered[2], 2);
    }
}
