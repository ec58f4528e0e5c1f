//! The simulated ASIC's hashing: pure, no I/O, no clock; the caller gives it a hash budget.
//!
//! Work is cut into units of [`UNIT_NONCES`] nonces, each with its own extranonce2 and
//! (when negotiated) rolled version bits, so no header is ever hashed twice within a job.
//!
//! | per unit | per hash |
//! |---|---|
//! | coinbase, merkle root, version bits | nonce + 1, SHA-256d of the 80-byte header |

use std::sync::Arc;

use hashgate_protocol::work::sha256d::sha256d_80;
use hashgate_protocol::work::{Hash256, HeaderFields, Job, Target, merkle_root};

/// Nonces per work unit: about one share at difficulty 1e-6, so version bits and
/// extranonce2 change often enough to show up in tests.
pub const UNIT_NONCES: u32 = 4096;

/// A share found (or forged) by the miner, ready to submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundShare {
    /// Job id.
    pub job_id: String,
    /// Extranonce2 bytes.
    pub extranonce2: Vec<u8>,
    /// Header time.
    pub ntime: u32,
    /// Header nonce.
    pub nonce: u32,
    /// Rolled version bits, when version rolling is negotiated.
    pub version_bits: Option<u32>,
}

/// The miner's current work: a job, its extranonces and where in the search it is.
#[derive(Debug, Clone)]
pub struct Work {
    /// The job being hashed.
    job: Arc<Job>,
    /// Extranonce1 from the pool.
    extranonce1: Vec<u8>,
    /// Extranonce2 size from the pool.
    extranonce2_size: usize,
    /// Granted version-rolling mask (0: no rolling).
    version_mask: u32,
    /// Units started on this job; numbers extranonce2 and version bits.
    unit: u64,
    /// The unit's first nonce.
    unit_start: u32,
    /// Nonces hashed in this unit.
    done_in_unit: u32,
    /// The unit's extranonce2.
    extranonce2: Vec<u8>,
    /// The unit's version bits (0 without rolling).
    version_bits: u32,
    /// The unit's header with nonce 0; only the nonce changes per hash.
    header: HeaderFields,
}

/// Spreads the low bits of `n` into the set bits of `mask`, lowest first.
pub fn deposit(mut n: u64, mask: u32) -> u32 {
    let mut out = 0u32;
    for bit in 0..32 {
        if mask & (1 << bit) != 0 {
            if n & 1 == 1 {
                out |= 1 << bit;
            }
            n >>= 1;
        }
    }
    out
}

impl Work {
    /// Work on `job` starting at unit 0; `seed` picks where the nonces start.
    pub fn new(
        job: Arc<Job>,
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
        version_mask: u32,
        seed: u32,
    ) -> Work {
        let mut work = Work {
            header: HeaderFields {
                version: job.version(),
                prev_blockhash: *job.prev_blockhash(),
                merkle_root: [0; 32],
                time: job.ntime(),
                nbits: job.nbits(),
                nonce: 0,
            },
            job,
            extranonce1,
            extranonce2_size,
            version_mask,
            unit: 0,
            unit_start: seed,
            done_in_unit: 0,
            extranonce2: Vec::new(),
            version_bits: 0,
        };
        work.start_unit();
        work
    }

    /// The job id.
    pub fn job_id(&self) -> &str {
        self.job.id()
    }

    /// The job.
    pub fn job(&self) -> &Arc<Job> {
        &self.job
    }

    /// Sets up the current unit's extranonce2, version and merkle root.
    fn start_unit(&mut self) {
        let rolls = self.version_mask.count_ones();
        // With rolling, the version bits change every unit (starting non-zero, so shares
        // prove rolling); extranonce2 moves on once the version space is used up.
        let (en2_counter, bits) = if rolls > 0 {
            let space = 1u64 << rolls.min(32);
            let v = self.unit % (space - 1) + 1;
            (self.unit / (space - 1), deposit(v, self.version_mask))
        } else {
            (self.unit, 0)
        };
        let counter = en2_counter.to_be_bytes();
        let mut en2 = vec![0u8; self.extranonce2_size];
        for (d, s) in en2.iter_mut().rev().zip(counter.iter().rev()) {
            *d = *s;
        }
        self.extranonce2 = en2;
        self.version_bits = bits;
        self.header.version = (self.job.version() & !self.version_mask) | bits;
        self.header.merkle_root = merkle_root(&self.job, &self.extranonce1, &self.extranonce2);
        self.done_in_unit = 0;
    }

    /// Hashes up to `budget` headers; returns the shares meeting `target` and how many
    /// hashes were done.
    pub fn hash(&mut self, budget: u64, target: &Target) -> (Vec<FoundShare>, u64) {
        let mut found = Vec::new();
        for _ in 0..budget {
            let nonce = self.unit_start.wrapping_add(self.done_in_unit);
            self.header.nonce = nonce;
            let hash = Hash256::from_bytes(sha256d_80(&self.header.to_bytes()));
            if target.is_met_by(&hash) {
                found.push(self.share(nonce));
            }
            self.done_in_unit += 1;
            if self.done_in_unit >= UNIT_NONCES {
                self.unit += 1;
                self.unit_start = self.unit_start.wrapping_add(UNIT_NONCES.wrapping_mul(7919));
                self.start_unit();
            }
        }
        (found, budget)
    }

    /// A share for `nonce` in the current unit.
    pub fn share(&self, nonce: u32) -> FoundShare {
        FoundShare {
            job_id: self.job.id().to_owned(),
            extranonce2: self.extranonce2.clone(),
            ntime: self.job.ntime(),
            nonce,
            version_bits: (self.version_mask != 0).then_some(self.version_bits),
        }
    }

    /// A share in the current unit whose hash does NOT meet `target` (for a tampered
    /// submit); `None` if every nonce tried meets it (an absurdly easy target).
    pub fn failing_share(&mut self, target: &Target) -> Option<FoundShare> {
        (0..1024u32).find_map(|i| {
            let nonce = self
                .unit_start
                .wrapping_add(self.done_in_unit)
                .wrapping_add(i);
            let mut header = self.header;
            header.nonce = nonce;
            let hash = Hash256::from_bytes(sha256d_80(&header.to_bytes()));
            (!target.is_met_by(&hash)).then(|| self.share(nonce))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashgate_protocol::work::{Difficulty, JobTemplate, ShareInput, SubmitPolicy, validate};

    fn job() -> Arc<Job> {
        Arc::new(
            Job::new(JobTemplate {
                id: "j1".into(),
                prevhash: [7; 32],
                coinb1: vec![1; 50],
                coinb2: vec![2; 40],
                merkle_branch: vec![[3; 32], [4; 32]],
                version: 0x2000_0000,
                nbits: 0x1702_9a8a,
                ntime: 1_700_000_000,
                clean_jobs: true,
            })
            .expect("valid nbits"),
        )
    }

    #[test]
    fn deposit_fills_mask_bits_in_order() {
        assert_eq!(deposit(1, 0x1fff_e000), 0x0000_2000);
        assert_eq!(deposit(3, 0x1fff_e000), 0x0000_6000);
        assert_eq!(deposit(u64::MAX, 0x1fff_e000), 0x1fff_e000);
        assert_eq!(deposit(5, 0), 0);
    }

    #[test]
    fn found_shares_validate_and_roll_within_the_mask() {
        let mask = 0x1fff_e000;
        let target = Difficulty::new(1e-8).expect("positive").to_target();
        let mut work = Work::new(job(), vec![0xaa; 4], 8, mask, 12345);
        let (found, hashes) = work.hash(3 * u64::from(UNIT_NONCES), &target);
        assert_eq!(hashes, 3 * u64::from(UNIT_NONCES));
        let policy = SubmitPolicy {
            version_mask: mask,
            ..SubmitPolicy::new(8, target)
        };
        // At 1e-8, ~43 hashes a share: 12,288 hashes give some hundreds.
        assert!(found.len() > 100, "found {}", found.len());
        let mut versions = std::collections::HashSet::new();
        for share in &found {
            let bits = share.version_bits.expect("rolling negotiated");
            assert_eq!(bits & !mask, 0);
            assert_ne!(bits, 0);
            versions.insert(bits);
            let submit = ShareInput {
                extranonce1: &[0xaa; 4],
                extranonce2: &share.extranonce2,
                ntime: share.ntime,
                nonce: share.nonce,
                version_bits: share.version_bits,
            };
            validate(&work.job, &submit, &policy).expect("a found share is valid");
        }
        assert_eq!(versions.len(), 3, "one version per unit");
        let bad = work.failing_share(&target).expect("most nonces fail");
        let submit = ShareInput {
            extranonce1: &[0xaa; 4],
            extranonce2: &bad.extranonce2,
            ntime: bad.ntime,
            nonce: bad.nonce,
            version_bits: bad.version_bits,
        };
        assert!(validate(&work.job, &submit, &policy).is_err());
    }
}
