//! The live set of miners and upstream connections, read by status output, the JSON API and
//! the metrics exporter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use dashmap::DashMap;

use super::miner::{MinerSnapshot, MinerStats, PoolReject, Undelivered};

/// Where an upstream connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum UpstreamState {
    /// Connecting, subscribing or authorizing.
    Connecting = 0,
    /// Serving miners' work.
    Active = 1,
    /// Subscribed and ready, kept warm for failover.
    Backup = 2,
    /// Disconnected or silent; reconnecting with back-off.
    Down = 3,
}

impl UpstreamState {
    /// Stable label.
    pub const fn label(self) -> &'static str {
        match self {
            UpstreamState::Connecting => "connecting",
            UpstreamState::Active => "active",
            UpstreamState::Backup => "backup",
            UpstreamState::Down => "down",
        }
    }

    fn from_u8(v: u8) -> UpstreamState {
        match v {
            1 => UpstreamState::Active,
            2 => UpstreamState::Backup,
            3 => UpstreamState::Down,
            _ => UpstreamState::Connecting,
        }
    }
}

/// Counters of one pool (over all its connections and reconnects).
#[derive(Debug)]
pub struct UpstreamStats {
    /// Pool name from the config.
    pub pool: Arc<str>,
    state: AtomicU8,
    /// f64 bits of the pool's current difficulty.
    difficulty: AtomicU64,
    submitted: AtomicU64,
    accepted: AtomicU64,
    rejected: [AtomicU64; 5],
    undelivered: AtomicU64,
    failovers: AtomicU64,
    reconnects: AtomicU64,
    blocks: AtomicU64,
}

/// A copy of an upstream's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSnapshot {
    /// Pool name.
    pub pool: Arc<str>,
    /// Current state.
    pub state: UpstreamState,
    /// Pool difficulty.
    pub difficulty: f64,
    /// Shares sent.
    pub submitted: u64,
    /// Shares the pool accepted.
    pub accepted: u64,
    /// Shares the pool rejected, by [`PoolReject::ALL`] order.
    pub rejected: [u64; 5],
    /// Shares sent but never answered, or not sendable.
    pub undelivered: u64,
    /// Times miners were moved away from this pool.
    pub failovers: u64,
    /// Reconnects after a drop.
    pub reconnects: u64,
    /// Blocks submitted through this pool.
    pub blocks: u64,
}

impl UpstreamStats {
    /// Fresh counters for a pool.
    pub fn new(pool: Arc<str>) -> UpstreamStats {
        UpstreamStats {
            pool,
            state: AtomicU8::new(UpstreamState::Connecting as u8),
            difficulty: AtomicU64::new(0f64.to_bits()),
            submitted: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            rejected: Default::default(),
            undelivered: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
        }
    }

    /// Sets the state.
    pub fn set_state(&self, state: UpstreamState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// The state.
    pub fn state(&self) -> UpstreamState {
        UpstreamState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Records the pool's difficulty.
    pub fn set_difficulty(&self, difficulty: f64) {
        self.difficulty
            .store(difficulty.to_bits(), Ordering::Relaxed);
    }

    /// Records a share sent.
    pub fn record_submitted(&self, is_block: bool) {
        self.submitted.fetch_add(1, Ordering::Relaxed);
        if is_block {
            self.blocks.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records an accepted share.
    pub fn record_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a rejected share.
    pub fn record_rejected(&self, reason: PoolReject) {
        if let Some(cell) = self.rejected.get(reason as usize) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a share that got no verdict.
    pub fn record_undelivered(&self, _reason: Undelivered) {
        self.undelivered.fetch_add(1, Ordering::Relaxed);
    }

    /// Records miners being moved off this pool.
    pub fn record_failover(&self) {
        self.failovers.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a reconnect.
    pub fn record_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies every counter.
    pub fn snapshot(&self) -> UpstreamSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        UpstreamSnapshot {
            pool: self.pool.clone(),
            state: self.state(),
            difficulty: f64::from_bits(load(&self.difficulty)),
            submitted: load(&self.submitted),
            accepted: load(&self.accepted),
            rejected: self.rejected.each_ref().map(load),
            undelivered: load(&self.undelivered),
            failovers: load(&self.failovers),
            reconnects: load(&self.reconnects),
            blocks: load(&self.blocks),
        }
    }
}

/// Every live miner and every pool; the one place readers go.
#[derive(Debug, Default)]
pub struct Registry {
    miners: DashMap<u64, Arc<MinerStats>>,
    upstreams: DashMap<Arc<str>, Arc<UpstreamStats>>,
    next_miner: AtomicU64,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    /// Registers a miner connection; it stays listed until the returned guard drops.
    pub fn add_miner(self: &Arc<Self>, stats: Arc<MinerStats>) -> MinerRegistration {
        let id = self.next_miner.fetch_add(1, Ordering::Relaxed);
        self.miners.insert(id, stats);
        MinerRegistration {
            registry: self.clone(),
            id,
        }
    }

    /// The stats of a pool, created on first use.
    pub fn upstream(&self, pool: &Arc<str>) -> Arc<UpstreamStats> {
        self.upstreams
            .entry(pool.clone())
            .or_insert_with(|| Arc::new(UpstreamStats::new(pool.clone())))
            .clone()
    }

    /// Miners connected now.
    pub fn miner_count(&self) -> usize {
        self.miners.len()
    }

    /// Snapshots of every connected miner (session id, snapshot).
    pub fn miners(&self, now: Instant) -> Vec<(u64, MinerSnapshot)> {
        self.miners
            .iter()
            .map(|entry| (*entry.key(), entry.value().snapshot(now)))
            .collect()
    }

    /// Snapshots of every pool, in name order.
    pub fn upstreams(&self) -> Vec<UpstreamSnapshot> {
        let mut all: Vec<_> = self
            .upstreams
            .iter()
            .map(|e| e.value().snapshot())
            .collect();
        all.sort_by(|a, b| a.pool.cmp(&b.pool));
        all
    }
}

/// Keeps a miner listed in the registry while it is connected.
#[derive(Debug)]
pub struct MinerRegistration {
    registry: Arc<Registry>,
    id: u64,
}

impl MinerRegistration {
    /// The miner's session id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for MinerRegistration {
    fn drop(&mut self) {
        self.registry.miners.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn miners_are_listed_while_registered() {
        let registry = Registry::new();
        let now = Instant::now();
        let a = registry.add_miner(Arc::new(MinerStats::new(now, SystemTime::now(), 1.0)));
        let b = registry.add_miner(Arc::new(MinerStats::new(now, SystemTime::now(), 1.0)));
        assert_ne!(a.id(), b.id());
        assert_eq!(registry.miner_count(), 2);
        drop(a);
        assert_eq!(registry.miner_count(), 1);
        assert_eq!(registry.miners(now)[0].0, b.id());
    }

    #[test]
    fn upstream_stats_are_shared_per_pool() {
        let registry = Registry::new();
        let name: Arc<str> = "primary".into();
        registry.upstream(&name).record_accepted();
        registry.upstream(&name).record_rejected(PoolReject::Stale);
        registry.upstream(&name).set_state(UpstreamState::Active);
        let snap = &registry.upstreams()[0];
        assert_eq!((snap.accepted, snap.rejected[0]), (1, 1));
        assert_eq!(snap.state, UpstreamState::Active);
    }
}
