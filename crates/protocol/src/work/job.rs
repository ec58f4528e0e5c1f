//! A pool job (one `mining.notify`) with what can be computed once for all its shares.

use super::header::prevhash_to_header_order;
use super::sha256d::Sha256Stream;
use super::target::{CompactError, Target};

/// The decoded fields of a `mining.notify`, as the caller assembled them.
///
/// Byte strings are the hex-decoded values; integers are the big-endian hex values read
/// as numbers (`"20000000"` → `0x2000_0000`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTemplate {
    /// The pool's job id, echoed back in submits.
    pub id: String,
    /// Previous block hash exactly as Stratum's hex decodes (word-swapped).
    pub prevhash: [u8; 32],
    /// Coinbase part before the extranonces.
    pub coinb1: Vec<u8>,
    /// Coinbase part after the extranonces.
    pub coinb2: Vec<u8>,
    /// Merkle branch hashes, raw byte order, leaf level first.
    pub merkle_branch: Vec<[u8; 32]>,
    /// Block version before version rolling.
    pub version: u32,
    /// Compact network target.
    pub nbits: u32,
    /// The job's block time; submits may roll it forward within a window.
    pub ntime: u32,
    /// Whether miners must drop earlier jobs.
    pub clean_jobs: bool,
}

/// A notify that cannot become a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// nbits does not encode a network target; the pool sent a broken job.
    #[error("job has unusable nbits: {0}")]
    BadNbits(#[from] CompactError),
}

/// An immutable job ready for share validation; share it between sessions with `Arc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The notify fields this job was built from (kept to re-send and to derive jobs).
    template: JobTemplate,
    /// Previous block hash in header order.
    prev_blockhash: [u8; 32],
    /// SHA-256 state after coinb1's whole 64-byte blocks: saves those compressions on
    /// every share.
    coinb1_midstate: [u32; 8],
    /// Bytes of coinb1 already absorbed into `coinb1_midstate` (a multiple of 64).
    coinb1_compressed: usize,
    /// Network target from nbits: a hash at or below it is a block.
    network_target: Target,
}

impl Job {
    /// Builds a job and its precomputed midstate and targets.
    ///
    /// # Errors
    /// [`JobError::BadNbits`] when nbits is negative or overflows.
    pub fn new(template: JobTemplate) -> Result<Self, JobError> {
        let network_target = Target::from_compact(template.nbits)?;
        let mut stream = Sha256Stream::new();
        stream.update(&template.coinb1);
        let (midstate, tail) = stream.midstate();
        let compressed = template.coinb1.len() - tail.len();
        Ok(Job {
            prev_blockhash: prevhash_to_header_order(&template.prevhash),
            coinb1_midstate: midstate,
            coinb1_compressed: compressed,
            network_target,
            template,
        })
    }

    /// A job identical to this one but whose coinb1 ends with `suffix`.
    ///
    /// The proxy hands miners `coinb1 ‖ pool extranonce1` so that a miner's extranonce1 is
    /// only its own prefix; the job keeps the pool's id.
    pub fn with_coinb1_suffix(&self, suffix: &[u8]) -> Job {
        let mut template = self.template.clone();
        template.coinb1.extend_from_slice(suffix);
        // Resume from the existing midstate rather than rehashing coinb1 from the start.
        let mut stream = self.coinbase_hasher();
        stream.update(suffix);
        let (midstate, tail) = stream.midstate();
        let compressed = template.coinb1.len() - tail.len();
        Job {
            template,
            prev_blockhash: self.prev_blockhash,
            coinb1_midstate: midstate,
            coinb1_compressed: compressed,
            network_target: self.network_target,
        }
    }

    /// The notify fields.
    pub fn template(&self) -> &JobTemplate {
        &self.template
    }

    /// The pool's job id.
    pub fn id(&self) -> &str {
        &self.template.id
    }

    /// Whether miners must drop earlier jobs.
    pub fn clean_jobs(&self) -> bool {
        self.template.clean_jobs
    }

    /// Block version before rolling.
    pub fn version(&self) -> u32 {
        self.template.version
    }

    /// Compact network target.
    pub fn nbits(&self) -> u32 {
        self.template.nbits
    }

    /// The job's ntime.
    pub fn ntime(&self) -> u32 {
        self.template.ntime
    }

    /// Coinbase part before the extranonces.
    pub fn coinb1(&self) -> &[u8] {
        &self.template.coinb1
    }

    /// Coinbase part after the extranonces.
    pub fn coinb2(&self) -> &[u8] {
        &self.template.coinb2
    }

    /// Merkle branch, leaf level first.
    pub fn merkle_branch(&self) -> &[[u8; 32]] {
        &self.template.merkle_branch
    }

    /// Previous block hash in header order.
    pub fn prev_blockhash(&self) -> &[u8; 32] {
        &self.prev_blockhash
    }

    /// The network target (a share meeting it is a block).
    pub fn network_target(&self) -> &Target {
        &self.network_target
    }

    /// A hasher positioned after all of coinb1, ready for the extranonces.
    #[inline]
    pub(crate) fn coinbase_hasher(&self) -> Sha256Stream {
        let tail = self
            .template
            .coinb1
            .get(self.coinb1_compressed..)
            .unwrap_or(&[]);
        Sha256Stream::from_midstate(self.coinb1_midstate, self.coinb1_compressed as u64, tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(coinb1_len: usize) -> JobTemplate {
        JobTemplate {
            id: "j".into(),
            prevhash: [7; 32],
            coinb1: (0..coinb1_len).map(|i| i as u8).collect(),
            coinb2: vec![9; 40],
            merkle_branch: vec![[1; 32]],
            version: 0x2000_0000,
            nbits: 0x1d00_ffff,
            ntime: 1000,
            clean_jobs: false,
        }
    }

    #[test]
    fn derived_job_equals_one_built_from_the_joined_coinb1() {
        for (len, suffix) in [(0, 4), (60, 4), (63, 1), (64, 64), (100, 30), (127, 200)] {
            let suffix: Vec<u8> = (0..suffix).map(|i| 0xf0 ^ i as u8).collect();
            let derived = Job::new(template(len)).unwrap().with_coinb1_suffix(&suffix);
            let mut joined = template(len);
            joined.coinb1.extend_from_slice(&suffix);
            assert_eq!(derived, Job::new(joined).unwrap(), "len {len}");
        }
    }

    #[test]
    fn bad_nbits_is_a_typed_error() {
        let t = JobTemplate {
            nbits: 0x0480_0001,
            ..template(10)
        };
        assert_eq!(
            Job::new(t),
            Err(JobError::BadNbits(CompactError::Negative(0x0480_0001)))
        );
    }

    #[test]
    fn prevhash_is_stored_in_header_order() {
        let mut t = template(10);
        t.prevhash[..4].copy_from_slice(&[1, 2, 3, 4]);
        let job = Job::new(t).unwrap();
        assert_eq!(&job.prev_blockhash()[..4], &[4, 3, 2, 1]);
    }
}
