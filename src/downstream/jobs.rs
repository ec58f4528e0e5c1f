//! The few jobs a miner may still submit shares for, each with its duplicate set.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::proxy::MinerJob;
use crate::work::Hash256;

/// Jobs kept per miner when the pool does not say `clean_jobs`: pools send a new job every
/// ~30 s and miners finish in-flight work within seconds, so the last 8 cover minutes.
pub const KEPT_JOBS: usize = 8;

/// One job the miner was sent, and the shares already accepted for it.
#[derive(Debug)]
struct Entry {
    /// The job as sent.
    job: Arc<MinerJob>,
    /// Low 64 bits of each accepted share's hash: equal submits hash equal, and distinct
    /// shares collide with probability ~n²/2⁶⁵, so 8 bytes per share suffice.
    seen: HashSet<u64>,
}

/// A miner's valid jobs, newest last.
#[derive(Debug, Default)]
pub struct JobList {
    /// At most [`KEPT_JOBS`] entries.
    entries: VecDeque<Entry>,
}

impl JobList {
    /// Adds a job the miner has just been sent; `clean_jobs` voids every earlier one.
    pub fn push(&mut self, job: Arc<MinerJob>) {
        if job.clean_jobs() {
            self.entries.clear();
        }
        if self.entries.len() >= KEPT_JOBS {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            job,
            seen: HashSet::new(),
        });
    }

    /// Forgets every job (the miner's extranonce changed, so old work is void).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The job with this id, if the miner may still submit for it.
    pub fn get(&self, id: &str) -> Option<&Arc<MinerJob>> {
        self.entries
            .iter()
            .rev()
            .find(|e| &*e.job.id == id)
            .map(|e| &e.job)
    }

    /// The newest job sent.
    pub fn latest(&self) -> Option<&Arc<MinerJob>> {
        self.entries.back().map(|e| &e.job)
    }

    /// Records an accepted share; `false` when the same share was already recorded.
    pub fn first_sighting(&mut self, id: &str, hash: &Hash256) -> bool {
        let [a, b, c, d, e, f, g, h, ..] = *hash.as_bytes();
        let low = u64::from_le_bytes([a, b, c, d, e, f, g, h]);
        match self.entries.iter_mut().rev().find(|e| &*e.job.id == id) {
            Some(entry) => entry.seen.insert(low),
            // The job vanished between lookup and record: nothing to collide with.
            None => true,
        }
    }
}
