//! What the simulated pool counts, readable from tests at any time.

use std::collections::{BTreeMap, HashSet};

/// Everything that identifies one share; the same key twice is a duplicate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareKey {
    /// Job id the share is for.
    pub job_id: String,
    /// The connection's extranonce1 when the share was judged.
    pub extranonce1: Vec<u8>,
    /// The miner's extranonce2.
    pub extranonce2: Vec<u8>,
    /// Header time.
    pub ntime: u32,
    /// Header nonce.
    pub nonce: u32,
    /// The block version after rolling (the job's version when not rolled).
    pub version: u32,
}

/// One accepted share, with what a test needs to verify it again on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedShare {
    /// The share's identity.
    pub key: ShareKey,
    /// Worker name it was submitted under.
    pub worker: String,
    /// The difficulty it was credited at (the connection's assigned difficulty).
    pub difficulty: f64,
    /// The difficulty its hash actually reached.
    pub hash_difficulty: f64,
    /// The 80-byte header the pool hashed.
    pub header: [u8; 80],
    /// Whether it met the network target.
    pub block: bool,
}

/// Per-worker counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerStats {
    /// Shares accepted.
    pub accepted: u64,
    /// Sum of the credited difficulty of accepted shares (hashrate = Σ·2³² / time).
    pub accepted_difficulty: f64,
    /// Rejected shares by Stratum error code.
    pub rejects_by_code: BTreeMap<i64, u64>,
}

/// A snapshot of the pool's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimPoolStats {
    /// Shares accepted, all workers.
    pub accepted: u64,
    /// Shares rejected, all workers.
    pub rejected: u64,
    /// Rejected shares by Stratum error code, all workers.
    pub rejects_by_code: BTreeMap<i64, u64>,
    /// Counters per worker name as submitted.
    pub workers: BTreeMap<String, WorkerStats>,
    /// Connections open now.
    pub connections_open: u64,
    /// Connections accepted since start (including ones dropped by the `Disconnect` fault).
    pub connections_total: u64,
    /// Shares that met the network target.
    pub blocks_found: u64,
    /// Jobs created (each one broadcast as a `mining.notify`).
    pub jobs_created: u64,
    /// Lines read and ignored under the `Silence` fault.
    pub lines_ignored: u64,
    /// Lines that did not parse as Stratum (answered with error 20 when they had an id).
    pub bad_lines: u64,
    /// `mining.authorize` requests left unanswered: past the connection's limit.
    pub authorizes_ignored: u64,
    /// `mining.suggest_difficulty` requests read (never answered, as ckpool).
    pub suggestions: u64,
}

/// The live counters behind [`SimPoolStats`], plus the accepted-share records.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// The counters.
    pub stats: SimPoolStats,
    /// Keys of accepted shares on open jobs, for duplicate detection; pruned when a job
    /// closes, since a share on a closed job is stale anyway.
    pub open_keys: HashSet<ShareKey>,
    /// Accepted shares in order, capped at `log_cap` so a long demo does not grow
    /// without end.
    pub log: Vec<AcceptedShare>,
    /// Most records kept in `log`.
    pub log_cap: usize,
    /// How many records were left out of `log` once it was full.
    pub log_dropped: u64,
}

impl Ledger {
    /// Counts a reject for `worker` with `code`.
    pub(super) fn reject(&mut self, worker: &str, code: i64) {
        self.stats.rejected += 1;
        *self.stats.rejects_by_code.entry(code).or_default() += 1;
        let w = self.stats.workers.entry(worker.to_owned()).or_default();
        *w.rejects_by_code.entry(code).or_default() += 1;
    }

    /// Records an accepted share; `false` (nothing recorded) when its key was seen.
    pub(super) fn accept(&mut self, share: AcceptedShare) -> bool {
        if !self.open_keys.insert(share.key.clone()) {
            return false;
        }
        self.stats.accepted += 1;
        if share.block {
            self.stats.blocks_found += 1;
        }
        let w = self.stats.workers.entry(share.worker.clone()).or_default();
        w.accepted += 1;
        w.accepted_difficulty += share.difficulty;
        if self.log.len() < self.log_cap {
            self.log.push(share);
        } else {
            self.log_dropped += 1;
        }
        true
    }

    /// Forgets duplicate keys of jobs that closed.
    pub(super) fn close_jobs(&mut self, closed: &[String]) {
        if closed.is_empty() {
            return;
        }
        self.open_keys.retain(|k| !closed.contains(&k.job_id));
    }
}
