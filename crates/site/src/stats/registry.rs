//! The live set of miners and upstream connections, read by status output, the JSON API and
//! the metrics exporter.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;

use super::miner::{MinerSnapshot, MinerStats, MinerTotals, PoolReject, Undelivered};

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
    /// Taken out of the configuration by a reload: no longer connected or retried. Its
    /// counters stay until the process restarts; `down` would keep a pool alert firing.
    Removed = 4,
}

impl UpstreamState {
    /// Stable label.
    pub const fn label(self) -> &'static str {
        match self {
            UpstreamState::Connecting => "connecting",
            UpstreamState::Active => "active",
            UpstreamState::Backup => "backup",
            UpstreamState::Down => "down",
            UpstreamState::Removed => "removed",
        }
    }

    fn from_u8(v: u8) -> UpstreamState {
        match v {
            1 => UpstreamState::Active,
            2 => UpstreamState::Backup,
            3 => UpstreamState::Down,
            4 => UpstreamState::Removed,
            _ => UpstreamState::Connecting,
        }
    }
}

/// How a pool is reached: plain TCP, or TLS with what its last handshake showed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Transport {
    /// Plain TCP (`stratum+tcp://`).
    #[default]
    Plain,
    /// TLS; the peer's leaf certificate from the last good handshake, none before one.
    Tls(Option<crate::tls::PeerCert>),
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
    /// Undelivered by reason, in [`Undelivered::ALL`] order.
    undelivered_by_reason: [AtomicU64; 4],
    failovers: AtomicU64,
    reconnects: AtomicU64,
    blocks: AtomicU64,
    /// Microseconds of the last submit round trip; `u64::MAX` = none yet.
    latency_last_us: AtomicU64,
    /// f64 bits of a moving average of submit round trips in microseconds; NaN = none yet.
    latency_ewma_us: AtomicU64,
    /// The difficulty on each channel's live connection to this pool (a few channels per
    /// site; written on the pool's rare `set_difficulty` and suggestions only).
    channels: Mutex<BTreeMap<usize, ChannelDifficulty>>,
    /// Plain or TLS, and the peer certificate (written once per connect).
    transport: Mutex<Transport>,
}

/// The difficulty of one channel's connection to a pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelDifficulty {
    /// The channel (upstream connection slot).
    pub channel: usize,
    /// The difficulty the pool set on the connection (1 until it sets one).
    pub difficulty: f64,
    /// The difficulty last suggested to the pool on it, if any.
    pub suggested: Option<f64>,
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
    /// Undelivered by reason, in [`Undelivered::ALL`] order.
    pub undelivered_by_reason: [u64; 4],
    /// The last submit round trip, if any was measured.
    pub submit_latency_last: Option<Duration>,
    /// Moving average (weight 1/8 per sample) of submit round trips.
    pub submit_latency_avg: Option<Duration>,
    /// Difficulty per channel with a live connection, by channel.
    pub channels: Vec<ChannelDifficulty>,
    /// Plain or TLS, with the peer's certificate.
    pub transport: Transport,
}

/// Weight of a new sample in the latency average: about the last 8 submits.
const LATENCY_EWMA_WEIGHT: f64 = 1.0 / 8.0;

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
            undelivered_by_reason: Default::default(),
            failovers: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
            latency_last_us: AtomicU64::new(u64::MAX),
            latency_ewma_us: AtomicU64::new(f64::NAN.to_bits()),
            channels: Mutex::new(BTreeMap::new()),
            transport: Mutex::new(Transport::Plain),
        }
    }

    /// Records how the pool is reached: at configuration, and after each TLS handshake
    /// (a failed one keeps the last good certificate on show).
    pub fn set_transport(&self, transport: Transport) {
        let mut held = self
            .transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if transport == Transport::Tls(None) && matches!(*held, Transport::Tls(Some(_))) {
            return;
        }
        *held = transport;
    }

    fn channels(&self) -> MutexGuard<'_, BTreeMap<usize, ChannelDifficulty>> {
        // Plain values: a poisoned map is still a right one.
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the difficulty the pool set on `channel`'s connection.
    pub fn set_channel_difficulty(&self, channel: usize, difficulty: f64) {
        self.channels()
            .entry(channel)
            .or_insert(ChannelDifficulty {
                channel,
                difficulty,
                suggested: None,
            })
            .difficulty = difficulty;
    }

    /// Records a difficulty suggested to the pool on `channel`'s connection.
    pub fn set_channel_suggested(&self, channel: usize, suggested: f64) {
        self.channels()
            .entry(channel)
            .or_insert(ChannelDifficulty {
                channel,
                difficulty: 1.0,
                suggested: None,
            })
            .suggested = Some(suggested);
    }

    /// Forgets `channel`'s connection to this pool (it has ended).
    pub fn clear_channel(&self, channel: usize) {
        self.channels().remove(&channel);
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
        if !super::RECORDING {
            return;
        }
        self.submitted.fetch_add(1, Ordering::Relaxed);
        if is_block {
            self.blocks.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records an accepted share.
    pub fn record_accepted(&self) {
        if !super::RECORDING {
            return;
        }
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a rejected share.
    pub fn record_rejected(&self, reason: PoolReject) {
        if !super::RECORDING {
            return;
        }
        if let Some(cell) = self.rejected.get(reason as usize) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a share that got no verdict.
    pub fn record_undelivered(&self, reason: Undelivered) {
        if !super::RECORDING {
            return;
        }
        self.undelivered.fetch_add(1, Ordering::Relaxed);
        if let Some(cell) = self.undelivered_by_reason.get(reason as usize) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one submit round trip (for the JSON API; the Prometheus histogram
    /// `hashgate_upstream_submit_latency_seconds` is recorded separately with `histogram!`).
    ///
    /// Several connections of one pool may race on the average; losing a sample to the race
    /// costs nothing that matters for a display figure and keeps this lock-free.
    pub fn record_submit_latency(&self, latency: Duration) {
        if !super::RECORDING {
            return;
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX - 1);
        self.latency_last_us.store(us, Ordering::Relaxed);
        let old = f64::from_bits(self.latency_ewma_us.load(Ordering::Relaxed));
        let sample = us as f64;
        let new = if old.is_nan() {
            sample
        } else {
            old + (sample - old) * LATENCY_EWMA_WEIGHT
        };
        self.latency_ewma_us.store(new.to_bits(), Ordering::Relaxed);
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
            undelivered_by_reason: self.undelivered_by_reason.each_ref().map(load),
            submit_latency_last: match load(&self.latency_last_us) {
                u64::MAX => None,
                us => Some(Duration::from_micros(us)),
            },
            submit_latency_avg: {
                let us = f64::from_bits(load(&self.latency_ewma_us));
                us.is_finite()
                    .then(|| Duration::from_secs_f64(us.max(0.0) / 1e6))
            },
            channels: self.channels().values().copied().collect(),
            transport: self
                .transport
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// Most distinct worker names whose departed totals are kept apart (about 250 bytes each);
/// past it, departures of new names go into [`Departed::overflow`] so a miner cycling
/// through random worker names cannot grow memory without end.
pub const MAX_DEPARTED_WORKERS: usize = 100_000;

/// What is kept of one worker name's connections that have gone.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DepartedWorker {
    /// Counters of every departed connection, summed.
    pub totals: MinerTotals,
    /// Departed connections.
    pub connections: u64,
    /// Latest accepted share among them.
    pub last_share: Option<SystemTime>,
}

impl DepartedWorker {
    fn absorb(&mut self, totals: &MinerTotals, last_share: Option<SystemTime>) {
        self.totals.add(totals);
        self.connections += 1;
        self.last_share = self.last_share.max(last_share);
    }
}

/// Totals of every connection that has gone, so counters stay monotonic after a miner leaves.
#[derive(Debug, Default)]
pub struct Departed {
    /// Per worker name (authorized connections).
    pub by_worker: HashMap<String, DepartedWorker>,
    /// Connections that left before authorizing.
    pub unauthorized: DepartedWorker,
    /// Departed workers beyond [`MAX_DEPARTED_WORKERS`] names.
    pub overflow: DepartedWorker,
}

impl Departed {
    fn retire(&mut self, worker: Option<String>, totals: &MinerTotals, last: Option<SystemTime>) {
        let slot = match worker {
            None => &mut self.unauthorized,
            Some(name) => {
                if self.by_worker.len() < MAX_DEPARTED_WORKERS || self.by_worker.contains_key(&name)
                {
                    self.by_worker.entry(name).or_default()
                } else {
                    &mut self.overflow
                }
            }
        };
        slot.absorb(totals, last);
    }
}

/// A connection's final counters on their way into the departed book.
#[derive(Debug)]
struct Retiree {
    /// Its session id, to drop it from a live snapshot taken while it left.
    id: u64,
    worker: Option<String>,
    totals: MinerTotals,
    last_share: Option<SystemTime>,
}

/// Every live miner and every pool; the one place readers go.
///
/// A departing miner never waits for a reader: it leaves its final counters in the short
/// `retiring` queue (one push, under a lock held for nothing else) and readers fold that
/// queue into the `departed` book, whose lock only readers take. A render of 100,000
/// departed names therefore costs the sessions nothing.
#[derive(Debug, Default)]
pub struct Registry {
    miners: DashMap<u64, Arc<MinerStats>>,
    upstreams: DashMap<Arc<str>, Arc<UpstreamStats>>,
    next_miner: AtomicU64,
    /// Totals of departed connections; locked by readers only.
    departed: Mutex<Departed>,
    /// Departures not yet folded into `departed`. A departure pushes and removes the
    /// miner from `miners` under this lock, so a reader that drains it after a live
    /// snapshot finds every connection exactly once, live or departed, and sums never
    /// step back.
    retiring: Mutex<Vec<Retiree>>,
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

    /// The live counters of every connected miner (session id, stats), for the pool-group
    /// balancer, which reads and moves them.
    pub fn live_miners(&self) -> Vec<(u64, Arc<MinerStats>)> {
        self.miners
            .iter()
            .map(|entry| (*entry.key(), entry.value().clone()))
            .collect()
    }

    /// Snapshots of every connected miner (session id, snapshot).
    pub fn miners(&self, now: Instant) -> Vec<(u64, MinerSnapshot)> {
        self.miners
            .iter()
            .map(|entry| (*entry.key(), entry.value().snapshot(now)))
            .collect()
    }

    /// Calls `read` with snapshots of every connected miner and the departed totals, taken
    /// together so no connection is counted twice or missed. Departures wait meanwhile, so
    /// keep `read` short (no I/O, no await), and do not call back into
    /// [`Registry::departed_worker`] from it (the lock is not reentrant).
    pub fn view<R>(
        &self,
        now: Instant,
        read: impl FnOnce(&[(u64, MinerSnapshot)], &Departed) -> R,
    ) -> R {
        let mut departed = self.lock_departed();
        // Keep the queue short before the (long) live snapshot.
        self.fold_retirees(&mut departed);
        let mut miners = self.miners(now);
        // Who left while the snapshot was taken is in the queue now: count them in the
        // book with their final totals (never below the snapshot's), not twice.
        let late = std::mem::take(&mut *self.lock_retiring());
        if !late.is_empty() {
            let gone: HashSet<u64> = late.iter().map(|r| r.id).collect();
            miners.retain(|(id, _)| !gone.contains(id));
            for r in late {
                departed.retire(r.worker, &r.totals, r.last_share);
            }
        }
        read(&miners, &departed)
    }

    /// Departed totals of one worker name, if any of its connections has gone.
    pub fn departed_worker(&self, worker: &str) -> Option<DepartedWorker> {
        let mut departed = self.lock_departed();
        self.fold_retirees(&mut departed);
        departed.by_worker.get(worker).copied()
    }

    fn fold_retirees(&self, departed: &mut Departed) {
        let retirees = std::mem::take(&mut *self.lock_retiring());
        for r in retirees {
            departed.retire(r.worker, &r.totals, r.last_share);
        }
    }

    fn lock_departed(&self) -> MutexGuard<'_, Departed> {
        // The book is only ever added to, so a panic elsewhere leaves it usable.
        self.departed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_retiring(&self) -> MutexGuard<'_, Vec<Retiree>> {
        // Pushes and takes are single steps: a poisoned queue is still whole.
        self.retiring.lock().unwrap_or_else(PoisonError::into_inner)
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
        // Queue first, then unlist, both under the queue's lock: a reader draining the
        // queue after its live snapshot sees this connection in one of the two.
        let mut retiring = self.registry.lock_retiring();
        if let Some(stats) = self
            .registry
            .miners
            .get(&self.id)
            .map(|e| e.value().clone())
        {
            retiring.push(Retiree {
                id: self.id,
                worker: stats.worker(),
                totals: stats.totals(),
                last_share: stats.last_share(),
            });
        }
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

    fn identity(worker: &str) -> crate::stats::MinerIdentity {
        crate::stats::MinerIdentity {
            worker: worker.into(),
            remote: "10.0.0.1:4000".parse().unwrap(),
            user_agent: "cgminer/4.11".into(),
            prefix_hex: "0001".into(),
        }
    }

    #[test]
    fn departed_connections_keep_their_totals_under_their_worker() {
        let registry = Registry::new();
        let now = Instant::now();
        let wall = SystemTime::now();
        let total_accepted = |r: &Registry| {
            r.view(now, |live, departed| {
                let live: u64 = live.iter().map(|(_, s)| s.totals.accepted).sum();
                let gone: u64 = departed.by_worker.values().map(|w| w.totals.accepted).sum();
                live + gone + departed.unauthorized.totals.accepted
            })
        };
        let a = Arc::new(MinerStats::new(now, wall, 1.0));
        a.set_identity(identity("rig1"));
        a.record_accepted(now, wall, 1.0, 1.0);
        a.record_accepted(now, wall, 1.0, 1.0);
        let reg_a = registry.add_miner(a.clone());
        let anonymous = Arc::new(MinerStats::new(now, wall, 1.0));
        anonymous.record_rejected(hashgate_protocol::work::ShareReject::Unauthorized);
        let reg_anon = registry.add_miner(anonymous);
        assert_eq!(total_accepted(&registry), 2);
        drop(reg_a);
        drop(reg_anon);
        assert_eq!(
            total_accepted(&registry),
            2,
            "a departure must not lose counts"
        );
        let rig1 = registry.departed_worker("rig1").unwrap();
        assert_eq!((rig1.connections, rig1.totals.accepted), (1, 2));
        assert!(rig1.last_share.is_some());
        registry.view(now, |_, departed| {
            assert_eq!(departed.unauthorized.connections, 1);
            assert_eq!(departed.unauthorized.totals.rejected[3], 1);
        });
        let b = Arc::new(MinerStats::new(now, wall, 1.0));
        b.set_identity(identity("rig1"));
        b.record_accepted(now, wall, 1.0, 1.0);
        drop(registry.add_miner(b));
        let rig1 = registry.departed_worker("rig1").unwrap();
        assert_eq!((rig1.connections, rig1.totals.accepted), (2, 3));
    }

    #[test]
    fn a_departure_does_not_wait_for_a_reader() {
        let registry = Registry::new();
        let now = Instant::now();
        let wall = SystemTime::now();
        let stats = Arc::new(MinerStats::new(now, wall, 1.0));
        stats.set_identity(identity("rig1"));
        stats.record_accepted(now, wall, 1.0, 1.0);
        let leaving = registry.add_miner(stats);
        let (inside, reader_in) = std::sync::mpsc::channel();
        let (release, reader_go) = std::sync::mpsc::channel::<()>();
        let (left, departure_done) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            let registry = &registry;
            let reader = scope.spawn(move || {
                registry.view(now, |live, _| {
                    inside.send(live.len()).unwrap();
                    // A long render: holds the view until told to go on.
                    reader_go.recv().unwrap();
                })
            });
            assert_eq!(reader_in.recv().unwrap(), 1);
            scope.spawn(move || {
                drop(leaving);
                left.send(()).unwrap();
            });
            let waited = departure_done.recv_timeout(Duration::from_secs(5));
            release.send(()).unwrap();
            reader.join().unwrap();
            assert!(waited.is_ok(), "the departure waited for the reader");
        });
        // And its counts are in the book for the next reader, exactly once.
        let accepted = registry.view(now, |live, departed| {
            assert!(live.is_empty());
            departed.by_worker["rig1"].totals.accepted
        });
        assert_eq!(accepted, 1);
    }

    #[test]
    fn departed_names_past_the_cap_go_to_overflow() {
        let mut departed = Departed::default();
        let one = MinerTotals {
            accepted: 1,
            ..MinerTotals::default()
        };
        for i in 0..MAX_DEPARTED_WORKERS {
            departed.retire(Some(format!("w{i}")), &one, None);
        }
        departed.retire(Some("late".into()), &one, None);
        departed.retire(Some("w0".into()), &one, None);
        assert_eq!(departed.by_worker.len(), MAX_DEPARTED_WORKERS);
        assert_eq!(departed.overflow.totals.accepted, 1);
        assert_eq!(departed.by_worker["w0"].totals.accepted, 2);
    }

    #[test]
    fn submit_latency_keeps_last_and_a_moving_average() {
        let up = UpstreamStats::new("p".into());
        assert_eq!(up.snapshot().submit_latency_last, None);
        assert_eq!(up.snapshot().submit_latency_avg, None);
        up.record_submit_latency(Duration::from_millis(80));
        up.record_submit_latency(Duration::from_millis(0));
        let snap = up.snapshot();
        assert_eq!(snap.submit_latency_last, Some(Duration::ZERO));
        assert_eq!(snap.submit_latency_avg, Some(Duration::from_millis(70)));
        up.record_undelivered(Undelivered::QueueFull);
        assert_eq!(up.snapshot().undelivered_by_reason, [0, 1, 0, 0]);
        assert_eq!(up.snapshot().undelivered, 1);
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
