//! Share validation: rebuild the header a miner hashed and check its SHA-256d.

use super::hash::Hash256;
use super::header::HeaderFields;
use super::job::Job;
use super::reject::ShareReject;
use super::sha256d::{
    compress_x2, second_pass_x2, sha256d_64, sha256d_64_x2, sha256d_80, sha256d_80_x2,
};
use super::target::Target;

/// What a session allows in a submit: fixed when the miner subscribes and configures,
/// the target changing with vardiff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitPolicy {
    /// The extranonce2 size announced to the miner in its subscribe answer.
    pub extranonce2_len: usize,
    /// The negotiated BIP310 version-rolling mask (0 when the miner did not configure it).
    pub version_mask: u32,
    /// Seconds past the job's ntime at which ntime is refused (exclusive bound).
    pub ntime_window_secs: u32,
    /// The miner's current share target.
    pub miner_target: Target,
}

impl SubmitPolicy {
    /// Default ntime window. ckpool answers "Ntime out of range" at exactly +7200 s (see
    /// `session-extras-ckpool.txt`), so the window is exclusive: +7199 s passes.
    pub const DEFAULT_NTIME_WINDOW_SECS: u32 = 7200;

    /// A policy with no version rolling and the default ntime window.
    pub fn new(extranonce2_len: usize, miner_target: Target) -> Self {
        SubmitPolicy {
            extranonce2_len,
            version_mask: 0,
            ntime_window_secs: Self::DEFAULT_NTIME_WINDOW_SECS,
            miner_target,
        }
    }
}

/// The decoded values of one `mining.submit`, borrowed from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareInput<'a> {
    /// The extranonce1 the session gave this miner.
    pub extranonce1: &'a [u8],
    /// The miner's extranonce2 bytes.
    pub extranonce2: &'a [u8],
    /// Block time the miner used (hex read as a big-endian number).
    pub ntime: u32,
    /// The nonce (hex read as a big-endian number).
    pub nonce: u32,
    /// BIP310 version bits, when the miner rolled the version.
    pub version_bits: Option<u32>,
}

/// A share whose header hashes to at or below the miner's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// SHA-256d of the header.
    hash: Hash256,
    /// The header that was hashed, for block submission and logs.
    header: [u8; 80],
    /// Whether the hash meets the job's network target.
    is_block: bool,
}

impl Share {
    /// The header hash.
    pub fn hash(&self) -> &Hash256 {
        &self.hash
    }

    /// The 80-byte header.
    pub fn header(&self) -> &[u8; 80] {
        &self.header
    }

    /// The block version the miner used after rolling.
    pub fn version(&self) -> u32 {
        u32::from_le_bytes([
            self.header[0],
            self.header[1],
            self.header[2],
            self.header[3],
        ])
    }

    /// The difficulty this share achieved (diff1 / hash).
    pub fn difficulty(&self) -> f64 {
        self.hash.difficulty()
    }

    /// Whether the share meets `target` (e.g. the upstream pool's).
    #[inline]
    pub fn meets(&self, target: &Target) -> bool {
        target.is_met_by(&self.hash)
    }

    /// Whether the share is a block (meets the job's network target).
    pub fn is_block(&self) -> bool {
        self.is_block
    }
}

/// Validates a submit against its job: rebuilds coinbase → txid → merkle root → header,
/// hashes it and checks it against the miner's target.
///
/// Allocates nothing: the coinbase is hashed from the job's coinb1 midstate through a stack
/// buffer and every other hash is a fixed-size block.
///
/// # Errors
/// [`ShareReject::BadExtranonce2Len`], [`ShareReject::BadVersionBits`],
/// [`ShareReject::NtimeOutOfRange`] before hashing; [`ShareReject::LowDifficulty`] when the
/// hash is above `policy.miner_target`.
pub fn validate(
    job: &Job,
    submit: &ShareInput<'_>,
    policy: &SubmitPolicy,
) -> Result<Share, ShareReject> {
    let version = precheck(job, submit, policy)?;
    let root = merkle_root(job, submit.extranonce1, submit.extranonce2);
    let header = header_bytes(job, submit, version, root);
    classify(job, policy, header, sha256d_80(&header))
}

/// Validates two submits at once, with results identical to [`validate`] on each.
///
/// When both pass the pre-hash checks and their jobs have the same shape (as many
/// coinbase blocks after the coinb1 midstate, the same merkle branch depth — always true
/// for two shares of one job with one extranonce2 size), every SHA-256 compression of the
/// two shares runs in lockstep through [`compress_x2`], which overlaps their dependency
/// chains on SHA-NI. Otherwise each share is validated on its own. Allocates nothing.
///
/// # Errors
/// Each result carries the [`ShareReject`] that [`validate`] would give for that share.
pub fn validate_pair(
    jobs: [&Job; 2],
    submits: [&ShareInput<'_>; 2],
    policies: [&SubmitPolicy; 2],
) -> [Result<Share, ShareReject>; 2] {
    let [job_a, job_b] = jobs;
    let [sub_a, sub_b] = submits;
    let [pol_a, pol_b] = policies;
    let (version_a, version_b) =
        match (precheck(job_a, sub_a, pol_a), precheck(job_b, sub_b, pol_b)) {
            (Ok(va), Ok(vb)) => (va, vb),
            // A share refused before hashing leaves nothing to pair with.
            _ => {
                return [validate(job_a, sub_a, pol_a), validate(job_b, sub_b, pol_b)];
            }
        };
    let coinbase_a = job_a.coinbase_hasher();
    let coinbase_b = job_b.coinbase_hasher();
    let tail_a = coinbase_a.padded_tail([sub_a.extranonce1, sub_a.extranonce2, job_a.coinb2()]);
    let tail_b = coinbase_b.padded_tail([sub_b.extranonce1, sub_b.extranonce2, job_b.coinb2()]);
    let branch_a = job_a.merkle_branch();
    let branch_b = job_b.merkle_branch();
    if tail_a.blocks() != tail_b.blocks() || branch_a.len() != branch_b.len() {
        return [validate(job_a, sub_a, pol_a), validate(job_b, sub_b, pol_b)];
    }

    let (mut state_a, mut state_b) = (tail_a.state(), tail_b.state());
    for i in 0..tail_a.blocks() {
        compress_x2(
            &mut state_a,
            &tail_a.block(i),
            &mut state_b,
            &tail_b.block(i),
        );
    }
    let [txid_a, txid_b] = second_pass_x2(&state_a, &state_b);
    let (mut pair_a, mut pair_b) = ([0u8; 64], [0u8; 64]);
    pair_a[..32].copy_from_slice(&txid_a);
    pair_b[..32].copy_from_slice(&txid_b);
    for (step_a, step_b) in branch_a.iter().zip(branch_b) {
        pair_a[32..].copy_from_slice(step_a);
        pair_b[32..].copy_from_slice(step_b);
        let [parent_a, parent_b] = sha256d_64_x2(&pair_a, &pair_b);
        pair_a[..32].copy_from_slice(&parent_a);
        pair_b[..32].copy_from_slice(&parent_b);
    }
    let (mut root_a, mut root_b) = ([0u8; 32], [0u8; 32]);
    root_a.copy_from_slice(&pair_a[..32]);
    root_b.copy_from_slice(&pair_b[..32]);
    let header_a = header_bytes(job_a, sub_a, version_a, root_a);
    let header_b = header_bytes(job_b, sub_b, version_b, root_b);
    let [hash_a, hash_b] = sha256d_80_x2(&header_a, &header_b);
    [
        classify(job_a, pol_a, header_a, hash_a),
        classify(job_b, pol_b, header_b, hash_b),
    ]
}

/// The checks that need no hashing, in their fixed order; the rolled version on success.
#[inline]
fn precheck(job: &Job, submit: &ShareInput<'_>, policy: &SubmitPolicy) -> Result<u32, ShareReject> {
    if submit.extranonce2.len() != policy.extranonce2_len {
        return Err(ShareReject::BadExtranonce2Len);
    }
    let version = match submit.version_bits {
        None => job.version(),
        Some(bits) if bits & !policy.version_mask != 0 => {
            return Err(ShareReject::BadVersionBits);
        }
        Some(bits) => (job.version() & !policy.version_mask) | bits,
    };
    let earliest = u64::from(job.ntime());
    let ntime = u64::from(submit.ntime);
    if ntime < earliest || ntime >= earliest + u64::from(policy.ntime_window_secs) {
        return Err(ShareReject::NtimeOutOfRange);
    }
    Ok(version)
}

/// The 80-byte header the miner hashed.
#[inline]
fn header_bytes(
    job: &Job,
    submit: &ShareInput<'_>,
    version: u32,
    merkle_root: [u8; 32],
) -> [u8; 80] {
    HeaderFields {
        version,
        prev_blockhash: *job.prev_blockhash(),
        merkle_root,
        time: submit.ntime,
        nbits: job.nbits(),
        nonce: submit.nonce,
    }
    .to_bytes()
}

/// Checks a header's hash against the miner's target and marks blocks.
#[inline]
fn classify(
    job: &Job,
    policy: &SubmitPolicy,
    header: [u8; 80],
    hash: [u8; 32],
) -> Result<Share, ShareReject> {
    let hash = Hash256::from_bytes(hash);
    if !policy.miner_target.is_met_by(&hash) {
        return Err(ShareReject::LowDifficulty);
    }
    Ok(Share {
        hash,
        header,
        is_block: job.network_target().is_met_by(&hash),
    })
}

/// The merkle root for a coinbase with these extranonces: txid folded up the branch.
#[inline]
pub fn merkle_root(job: &Job, extranonce1: &[u8], extranonce2: &[u8]) -> [u8; 32] {
    let mut coinbase = job.coinbase_hasher();
    coinbase.update(extranonce1);
    coinbase.update(extranonce2);
    coinbase.update(job.coinb2());
    let mut pair = [0u8; 64];
    pair[..32].copy_from_slice(&coinbase.finish_double());
    for step in job.merkle_branch() {
        pair[32..].copy_from_slice(step);
        let parent = sha256d_64(&pair);
        pair[..32].copy_from_slice(&parent);
    }
    let mut root = [0u8; 32];
    root.copy_from_slice(&pair[..32]);
    root
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::work::JobTemplate;

    fn job(ntime: u32) -> Job {
        Job::new(JobTemplate {
            id: "t".into(),
            prevhash: [0; 32],
            coinb1: vec![1; 70],
            coinb2: vec![2; 30],
            merkle_branch: vec![],
            version: 0x2000_0000,
            nbits: 0x1d00_ffff,
            ntime,
            clean_jobs: false,
        })
        .unwrap()
    }

    fn submit(ntime: u32) -> ShareInput<'static> {
        ShareInput {
            extranonce1: &[0xaa; 4],
            extranonce2: &[0; 4],
            ntime,
            nonce: 0,
            version_bits: None,
        }
    }

    #[test]
    fn ntime_window_does_not_wrap_at_u32_max() {
        let j = job(u32::MAX - 10);
        let p = SubmitPolicy::new(4, Target::MAX);
        assert!(validate(&j, &submit(u32::MAX), &p).is_ok());
        assert_eq!(
            validate(&j, &submit(5), &p),
            Err(ShareReject::NtimeOutOfRange)
        );
        let zero_window = SubmitPolicy {
            ntime_window_secs: 0,
            ..p
        };
        assert_eq!(
            validate(&j, &submit(u32::MAX - 10), &zero_window),
            Err(ShareReject::NtimeOutOfRange)
        );
    }

    #[test]
    fn checks_run_before_hashing_in_a_fixed_order() {
        let j = job(100);
        let p = SubmitPolicy::new(8, Target::ZERO);
        // Wrong extranonce2 size wins over everything else.
        let s = ShareInput {
            version_bits: Some(1),
            ..submit(1)
        };
        assert_eq!(validate(&j, &s, &p), Err(ShareReject::BadExtranonce2Len));
        let p = SubmitPolicy::new(4, Target::ZERO);
        assert_eq!(validate(&j, &s, &p), Err(ShareReject::BadVersionBits));
        assert_eq!(
            validate(&j, &submit(1), &p),
            Err(ShareReject::NtimeOutOfRange)
        );
        assert_eq!(
            validate(&j, &submit(100), &p),
            Err(ShareReject::LowDifficulty)
        );
    }
}
