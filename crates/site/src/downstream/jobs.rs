//! The few jobs a miner may still submit shares for, each with its duplicate set.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::hub::MinerJob;
use hashgate_protocol::work::{Hash256, ShareReject};

/// Jobs kept per miner when the pool does not say `clean_jobs`: pools send a new job every
/// ~30 s and miners finish in-flight work within seconds, so the last 8 cover minutes.
pub(crate) const KEPT_JOBS: usize = 8;

/// Accepted shares remembered per job. At the vardiff target of one share every few
/// seconds a job sees tens; past this many the job is refused as stale (the miner moves to
/// new work) rather than letting one peer's duplicate set grow without end.
pub(crate) const MAX_SHARES_PER_JOB: usize = 65_536;

/// Hashes a set key that is already a uniformly distributed hash: the low 64 bits of a
/// share's SHA-256d.
///
/// The default `RandomState` would make every job entry 16 bytes larger (8 entries per
/// miner) and run SipHash over bytes that are random already. Flooding a bucket would
/// take shares that each meet the miner's target with chosen hash bits, i.e. far more
/// work than the shares are worth, and a job's set is capped at [`MAX_SHARES_PER_JOB`].
#[derive(Debug, Default, Clone, Copy)]
struct ShareHashHasher(u64);

impl Hasher for ShareHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the key is a `u64`); fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The id a job was issued under, for an id the miner was sent it under again: a job
/// re-sent after a retarget goes out as `<id>.<n>` (proxy ids are hex, so a dot never
/// occurs in them), because a miner that rebuilds work only on a new job id would
/// otherwise never take up the new difficulty on a long-lived job. Every alias shares the
/// job's duplicate set, so one share cannot be credited twice under two names.
///
/// A new id is not always enough: cpuminer 2.5 starts the alias's work with its
/// extranonce2 back at zero, so the header is the same as the one it is hashing and it
/// carries on with the old work, old target and old id until the pool's next job (seen in
/// the interop stage: shares under the old id at the old difficulty 11 s after the
/// retarget). Such shares are judged at the difficulty the old id was sent with
/// ([`JobList::get`]), as pools do.
pub(super) fn base_id(id: &str) -> &str {
    id.split_once('.').map_or(id, |(base, _)| base)
}

/// The `mining.notify` line of `job` under the alias `<id>.<n>`, `clean_jobs` false (the
/// work is the same; nothing in flight is lost).
pub(super) fn realias(job: &MinerJob, n: u32) -> Option<bytes::Bytes> {
    renotify(job, Some(n), false)
}

/// The `mining.notify` line of `job` with `clean_jobs` set as given, under its own id or
/// the alias `<id>.<n>`.
pub(super) fn renotify(job: &MinerJob, alias: Option<u32>, clean: bool) -> Option<bytes::Bytes> {
    use hashgate_protocol::stratum::{Message, Method, Request};
    let Ok(Message::Request(Request {
        id,
        method: Method::Notify(mut notify),
    })) = Message::parse(&job.notify_line)
    else {
        return None;
    };
    notify.job_id = match alias {
        Some(n) => format!("{}.{n}", job.id),
        None => job.id.to_string(),
    };
    notify.clean_jobs = clean;
    Some(
        Message::Request(Request {
            id,
            method: Method::Notify(notify),
        })
        .to_bytes(),
    )
}

/// One job the miner was sent, and the shares already accepted for it.
#[derive(Debug)]
struct Entry {
    /// The job as sent.
    job: Arc<MinerJob>,
    /// The miner's difficulty when the job was sent under its own id.
    difficulty: f64,
    /// Low 64 bits of each accepted share's hash: equal submits hash equal, and distinct
    /// shares collide with probability ~n²/2⁶⁵, so 8 bytes per share suffice.
    seen: HashSet<u64, BuildHasherDefault<ShareHashHasher>>,
}

/// A miner's valid jobs, newest last.
#[derive(Debug, Default)]
pub(super) struct JobList {
    /// At most [`KEPT_JOBS`] entries.
    entries: VecDeque<Entry>,
}

impl JobList {
    /// Adds a job the miner has just been sent at `difficulty`; `clean_jobs` voids every
    /// earlier one.
    pub(super) fn push(&mut self, job: Arc<MinerJob>, difficulty: f64) {
        if job.clean_jobs() {
            self.entries.clear();
        }
        self.push_keeping(job, difficulty);
    }

    /// Adds a job without voiding earlier ones whatever its `clean_jobs`: after a move
    /// to another pool group, shares still in flight for the old group's jobs are valid
    /// and go to the pool that issued them.
    pub(super) fn push_keeping(&mut self, job: Arc<MinerJob>, difficulty: f64) {
        if self.entries.len() >= KEPT_JOBS {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            job,
            difficulty,
            seen: HashSet::default(),
        });
    }

    /// Forgets every job (the miner's extranonce changed, so old work is void).
    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The job with this id, if the miner may still submit for it, with the difficulty
    /// the miner was at when it was sent the job under that very id: shares submitted
    /// under it are work on that notify, whatever retarget came since. The difficulty is
    /// `None` for an alias `<id>.<n>` (sent after a retarget, at the difficulty then
    /// announced).
    pub(super) fn get(&self, id: &str) -> Option<(&Arc<MinerJob>, Option<f64>)> {
        let base = base_id(id);
        let entry = self.entries.iter().rev().find(|e| &*e.job.id == base)?;
        Some((
            &entry.job,
            (base.len() == id.len()).then_some(entry.difficulty),
        ))
    }

    /// The newest job sent.
    pub(super) fn latest(&self) -> Option<&Arc<MinerJob>> {
        self.entries.back().map(|e| &e.job)
    }

    /// Records an accepted share for job `id`.
    ///
    /// # Errors
    /// [`ShareReject::Duplicate`] when the same share was already recorded,
    /// [`ShareReject::Stale`] when the job is unknown or has seen [`MAX_SHARES_PER_JOB`].
    pub(super) fn record(&mut self, id: &str, hash: &Hash256) -> Result<(), ShareReject> {
        let id = base_id(id);
        let [a, b, c, d, e, f, g, h, ..] = *hash.as_bytes();
        let low = u64::from_le_bytes([a, b, c, d, e, f, g, h]);
        let entry = self
            .entries
            .iter_mut()
            .rev()
            .find(|e| &*e.job.id == id)
            .ok_or(ShareReject::Stale)?;
        if entry.seen.contains(&low) {
            return Err(ShareReject::Duplicate);
        }
        if entry.seen.len() >= MAX_SHARES_PER_JOB {
            return Err(ShareReject::Stale);
        }
        entry.seen.insert(low);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::sync::mpsc;

    use super::*;
    use crate::hub::{MinerJobParts, UpstreamLink};
    use hashgate_protocol::extranonce::{SplitLimits, choose_split};
    use hashgate_protocol::stratum::Notify;
    use hashgate_protocol::work::Target;

    fn job(id: &str, clean_jobs: bool) -> Arc<MinerJob> {
        let (tx, _rx) = mpsc::channel(1);
        let notify = Notify {
            job_id: "p".into(),
            prevhash: [0; 32],
            coinb1: vec![1; 10],
            coinb2: vec![2; 10],
            merkle_branch: vec![],
            version: 0x2000_0000,
            nbits: 0x1d00_ffff,
            ntime: 1,
            clean_jobs,
        };
        let parts = MinerJobParts {
            notify: &notify,
            pool_extranonce1: &[0; 4],
            plan: choose_split(8, 10, SplitLimits::default()).expect("split"),
            upstream_target: Target::MAX,
            version_mask: 0,
            link: UpstreamLink::new("p".into(), 1, tx),
            clean_jobs,
        };
        Arc::new(MinerJob::build(id.into(), parts, Instant::now()).expect("job"))
    }

    fn hash(n: u8) -> Hash256 {
        Hash256::from_bytes([n; 32])
    }

    #[test]
    fn clean_jobs_voids_earlier_jobs_and_the_list_is_bounded() {
        let mut jobs = JobList::default();
        jobs.push(job("a", true), 1.0);
        jobs.push(job("b", false), 1.0);
        assert!(jobs.get("a").is_some() && jobs.get("b").is_some());
        jobs.push(job("c", true), 1.0);
        assert!(jobs.get("a").is_none() && jobs.get("b").is_none());
        for i in 0..KEPT_JOBS {
            jobs.push(job(&format!("n{i}"), false), 1.0);
        }
        assert!(jobs.get("c").is_none(), "pushed out by newer jobs");
        assert!(jobs.get("n0").is_some());
        assert_eq!(jobs.latest().map(|j| &*j.id), Some("n7"));
        jobs.clear();
        assert!(jobs.latest().is_none());
    }

    #[test]
    fn a_job_entry_holds_no_hasher_state() {
        // Eight entries per miner: a 16-byte `RandomState` in each is 128 bytes a miner.
        assert_eq!(
            std::mem::size_of::<Entry>(),
            std::mem::size_of::<Arc<MinerJob>>()
                + std::mem::size_of::<f64>()
                + std::mem::size_of::<HashSet<u64, ()>>()
        );
        let mut h = ShareHashHasher::default();
        h.write_u64(0x0123_4567_89ab_cdef);
        assert_eq!(h.finish(), 0x0123_4567_89ab_cdef);
    }

    #[test]
    fn duplicates_are_per_job() {
        let mut jobs = JobList::default();
        jobs.push(job("a", true), 1.0);
        jobs.push(job("b", false), 1.0);
        assert_eq!(jobs.record("a", &hash(1)), Ok(()));
        assert_eq!(jobs.record("a", &hash(1)), Err(ShareReject::Duplicate));
        assert_eq!(jobs.record("b", &hash(1)), Ok(()), "same hash, other job");
        assert_eq!(jobs.record("zz", &hash(2)), Err(ShareReject::Stale));
    }

    #[test]
    fn a_job_keeps_the_difficulty_it_was_sent_at_under_its_own_id_only() {
        let mut jobs = JobList::default();
        jobs.push(job("a", true), 0.001);
        jobs.push(job("b", false), 0.004);
        let sent = |jobs: &JobList, id: &str| jobs.get(id).and_then(|(_, d)| d);
        assert_eq!(sent(&jobs, "a"), Some(0.001));
        assert_eq!(sent(&jobs, "b"), Some(0.004));
        assert!(jobs.get("a.1").is_some());
        assert_eq!(
            sent(&jobs, "a.1"),
            None,
            "an alias is at the newer difficulty"
        );
        assert_eq!(sent(&jobs, "zz"), None);
        jobs.push(job("c", true), 0.002);
        assert_eq!(sent(&jobs, "a"), None, "voided by clean_jobs");
    }
}
