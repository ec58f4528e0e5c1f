//! The way back from a miner's share to the pool connection that issued its job.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::stats::hashrate::HASHES_PER_DIFFICULTY;
use crate::stats::{MIN_REPORT_AGE, MinerStats, Undelivered};
use hashgate_protocol::extranonce::PoolExtranonce2;

/// A miner's worker name as data, carried from the miner's session to the pool side:
/// the pool side builds its own name from the parts (`<pool user>.<rig>` or the bare
/// user) instead of parsing a formatted name back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MinerWorker {
    /// The name as the miner authorized it (e.g. `acct.rack1`).
    name: Arc<str>,
    /// Where its worker part starts in `name`: after the first dot, or 0.
    rig_start: usize,
}

impl MinerWorker {
    /// The miner's name and its worker part: what follows the first dot, or the whole
    /// name when it has none.
    pub fn new(name: &str) -> MinerWorker {
        let rig_start = name.find('.').map_or(0, |dot| dot + 1);
        MinerWorker {
            name: name.into(),
            rig_start,
        }
    }

    /// The name as the miner authorized it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The worker part (`rack1` of `acct.rack1`); empty when the name ends in a dot.
    pub fn rig(&self) -> &str {
        self.name.get(self.rig_start..).unwrap_or("")
    }
}

impl std::fmt::Display for MinerWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// A share that met the upstream target, on its way to the pool.
#[derive(Debug)]
pub struct UpstreamSubmit {
    /// The miner's worker; the pool connection decides the name it is submitted under.
    pub worker: MinerWorker,
    /// The pool's job id (not the proxy's).
    pub pool_job_id: Arc<str>,
    /// What the pool sees as extranonce2: padding ‖ prefix ‖ miner extranonce2.
    pub extranonce2: PoolExtranonce2,
    /// Header time.
    pub ntime: u32,
    /// Header nonce.
    pub nonce: u32,
    /// Rolled version bits, when the miner rolls.
    pub version_bits: Option<u32>,
    /// Meets the network target: send before anything else and log loudly.
    pub is_block: bool,
    /// Difficulty the share was credited at, for pool-side accounting.
    pub difficulty: f64,
    /// The miner it came from, so the pool's answer is counted against it.
    pub miner: Arc<MinerStats>,
    /// When the miner's submit was validated, for the upstream round-trip latency.
    pub validated_at: Instant,
}

/// The share-proven hashrate of one channel's miners, fed by every share a miner is
/// credited (not only those forwarded, so it is right whatever difficulty the pool set),
/// and read by the channel's pool connections to choose the difficulty they suggest.
/// Shared by all of a channel's connections, so a new one knows the rate at once.
///
/// Every miner task of the channel records into it, so it takes no lock: a minute of
/// 5 s buckets, each one `AtomicU64` holding the bucket's number (high 32 bits) and its
/// Σ difficulty as an `f32` (low 32 bits), updated by compare-and-swap. A share landing
/// in a slot that still holds an older bucket replaces it; one older than the slot's
/// bucket is outside the minute already and is dropped. `f32`, as in the miners' own
/// meters: a bucket's sum stays within 0.1 % up to tens of thousands of equal shares.
#[derive(Debug)]
pub struct ChannelHashrate {
    born: Instant,
    buckets: [AtomicU64; CHANNEL_BUCKETS],
}

/// Buckets of the channel meter: 12 whole ones and the one filling make the minute.
const CHANNEL_BUCKETS: usize = 13;
/// Width of one channel bucket.
const CHANNEL_BUCKET_NS: u64 = 5_000_000_000;

fn pack(epoch: u32, sum: f32) -> u64 {
    (u64::from(epoch) << 32) | u64::from(sum.to_bits())
}

fn unpack(word: u64) -> (u32, f32) {
    // Both halves are 32 bits by construction.
    ((word >> 32) as u32, f32::from_bits(word as u32))
}

impl ChannelHashrate {
    /// A meter that starts counting at `now`.
    pub fn new(now: Instant) -> ChannelHashrate {
        ChannelHashrate {
            born: now,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.born).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records a share credited at `difficulty`; a non-finite or non-positive one is
    /// ignored, and a share stamped before the meter's birth counts at birth.
    pub fn record(&self, now: Instant, difficulty: f64) {
        if !crate::stats::RECORDING {
            return;
        }
        if !(difficulty.is_finite() && difficulty > 0.0) {
            return;
        }
        // Bucket 0 is also the empty word's: a fresh slot holds "bucket 0, sum 0".
        let epoch = u32::try_from(self.nanos(now) / CHANNEL_BUCKET_NS).unwrap_or(u32::MAX);
        let Some(slot) = self.buckets.get(epoch as usize % CHANNEL_BUCKETS) else {
            return;
        };
        let add = difficulty as f32;
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
            let (held, sum) = unpack(word);
            match held.cmp(&epoch) {
                std::cmp::Ordering::Equal => Some(pack(epoch, sum + add)),
                std::cmp::Ordering::Less => Some(pack(epoch, add)),
                std::cmp::Ordering::Greater => None,
            }
        });
    }

    /// Hashes a second over the last minute; `None` until the meter is old enough to say.
    pub fn rate(&self, now: Instant) -> Option<f64> {
        if now.saturating_duration_since(self.born) < MIN_REPORT_AGE {
            return None;
        }
        let t = self.nanos(now);
        let now_epoch = t / CHANNEL_BUCKET_NS;
        let first = (now_epoch + 1).saturating_sub(CHANNEL_BUCKETS as u64);
        let span_ns = t - first * CHANNEL_BUCKET_NS;
        let total: f64 = self
            .buckets
            .iter()
            .map(|b| unpack(b.load(Ordering::Relaxed)))
            .filter(|(e, _)| (first..=now_epoch).contains(&u64::from(*e)))
            .map(|(_, sum)| f64::from(sum))
            .sum();
        if span_ns == 0 || !total.is_finite() {
            return None;
        }
        Some(total * HASHES_PER_DIFFICULTY / (span_ns as f64 * 1e-9))
    }
}

/// A handle on one upstream connection's submit queue.
#[derive(Debug, Clone)]
pub struct UpstreamLink {
    /// Pool name, for logs and labels.
    pub pool: Arc<str>,
    /// Process-unique number of the connection, so a job from a replaced connection is
    /// recognised as such.
    pub connection: u64,
    tx: mpsc::Sender<UpstreamSubmit>,
    /// The channel's hashrate meter, when the connection suggests difficulties.
    hashrate: Option<Arc<ChannelHashrate>>,
}

impl UpstreamLink {
    /// Wraps the sending side of a connection's submit queue.
    pub fn new(pool: Arc<str>, connection: u64, tx: mpsc::Sender<UpstreamSubmit>) -> Self {
        UpstreamLink {
            pool,
            connection,
            tx,
            hashrate: None,
        }
    }

    /// The same link, with credited shares counted into the channel's `hashrate`.
    pub fn with_hashrate(mut self, hashrate: Arc<ChannelHashrate>) -> Self {
        self.hashrate = Some(hashrate);
        self
    }

    /// The channel's hashrate meter, into which miners' credited shares are counted.
    pub fn hashrate(&self) -> Option<&Arc<ChannelHashrate>> {
        self.hashrate.as_ref()
    }

    /// Queues a share for the pool without waiting; when that is impossible the share is
    /// counted as undelivered against its miner, never dropped silently.
    pub fn submit(&self, share: UpstreamSubmit) -> Result<(), Undelivered> {
        match self.tx.try_send(share) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(share)) => {
                share.miner.record_undelivered(Undelivered::QueueFull);
                Err(Undelivered::QueueFull)
            }
            Err(mpsc::error::TrySendError::Closed(share)) => {
                share.miner.record_undelivered(Undelivered::UpstreamGone);
                Err(Undelivered::UpstreamGone)
            }
        }
    }

    /// Whether the connection behind it has gone away.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::{HashrateMeter, Window};

    /// The lock-free channel meter agrees with a miner's 1-minute meter (the mutex it
    /// replaced wrapped one) on the same shares, late and early ones included.
    #[test]
    fn channel_meter_agrees_with_the_one_minute_window() {
        let t0 = Instant::now();
        let channel = ChannelHashrate::new(t0);
        let mut reference = HashrateMeter::new(t0);
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut t = Duration::ZERO;
        for i in 0..20_000u64 {
            t += Duration::from_millis(next() % 40);
            // One share in eight is stamped up to 70 s late (outside the minute at times).
            let at = if i % 8 == 0 {
                t.saturating_sub(Duration::from_millis(next() % 70_000))
            } else {
                t
            };
            let difficulty = [1.0, 64.0, 1024.0, 0.25][(next() % 4) as usize];
            channel.record(t0 + at, difficulty);
            reference.record(t0 + at, difficulty);
            if i % 500 == 0 {
                let now = t0 + t;
                match (channel.rate(now), reference.rate(now, Window::M1)) {
                    (Some(a), Some(b)) => {
                        assert!((a - b).abs() <= b * 1e-3, "at {t:?}: {a} vs {b}")
                    }
                    (a, b) => assert_eq!(a, b, "at {t:?}"),
                }
            }
        }
        assert!(channel.rate(t0 + t).is_some_and(|r| r > 0.0));
        // Silence empties the minute.
        assert_eq!(channel.rate(t0 + t + Duration::from_secs(66)), Some(0.0));
        channel.record(t0 + t, f64::NAN);
        channel.record(t0 + t, -1.0);
        assert_eq!(channel.rate(t0 + t + Duration::from_secs(66)), Some(0.0));
    }

    /// Threads recording at once lose nothing (a compare-and-swap retries, never drops).
    #[test]
    fn concurrent_records_all_count() {
        let t0 = Instant::now();
        let channel = Arc::new(ChannelHashrate::new(t0));
        let at = t0 + Duration::from_secs(20);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = channel.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        c.record(at, 1.0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // 40,000 difficulty-1 shares over the 20 s the meter has lived.
        let rate = channel.rate(at).unwrap();
        let expected = 40_000.0 * HASHES_PER_DIFFICULTY / 20.0;
        assert!(
            (rate - expected).abs() < expected * 1e-6,
            "{rate} vs {expected}"
        );
    }
}
