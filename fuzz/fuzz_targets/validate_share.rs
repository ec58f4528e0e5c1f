#![no_main]
//! Share validation on arbitrary jobs and submits: never panics, and every hash it
//! returns equals a plain whole-message SHA-256d computation done here.

use arbitrary::Arbitrary;
use hashgate_protocol::work::{
    Job, JobTemplate, ShareReject, ShareInput, SubmitPolicy, Target, validate, validate_pair,
};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

#[derive(Arbitrary, Debug)]
struct Case {
    prevhash: [u8; 32],
    coinb1: Vec<u8>,
    coinb2: Vec<u8>,
    branch: Vec<[u8; 32]>,
    version: u32,
    nbits: u32,
    job_ntime: u32,
    clean_jobs: bool,
    /// When present, validate against the derived job with coinb1 ‖ suffix.
    coinb1_suffix: Option<Vec<u8>>,
    extranonce1: Vec<u8>,
    extranonce2: Vec<u8>,
    /// The session's extranonce2 size; `None` = the submit's own length, so most inputs
    /// get past the size check to the hashing.
    extranonce2_len: Option<u8>,
    ntime: Ntime,
    nonce: u32,
    version_bits: Option<u32>,
    /// Clear version bits outside the mask, so most rolled inputs reach the hashing.
    bits_within_mask: bool,
    version_mask: u32,
    ntime_window_secs: u32,
    /// Miner target, little-endian.
    target: [u8; 32],
}

/// A submit's ntime: mostly near the job's, sometimes anything.
#[derive(Arbitrary, Debug)]
enum Ntime {
    After(u16),
    Raw(u32),
}

fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

/// hash ≤ target, both little-endian 256-bit integers, compared from the top byte.
fn le_le(hash: &[u8; 32], target: &[u8; 32]) -> bool {
    hash.iter().rev().cmp(target.iter().rev()) != std::cmp::Ordering::Greater
}

fuzz_target!(|case: Case| {
    let job = match Job::new(JobTemplate {
        id: "fuzz".into(),
        prevhash: case.prevhash,
        coinb1: case.coinb1.clone(),
        coinb2: case.coinb2.clone(),
        merkle_branch: case.branch.clone(),
        version: case.version,
        nbits: case.nbits,
        ntime: case.job_ntime,
        clean_jobs: case.clean_jobs,
    }) {
        Ok(job) => job,
        Err(_) => {
            assert!(Target::from_compact(case.nbits).is_err());
            return;
        }
    };
    let job = match &case.coinb1_suffix {
        Some(s) => job.with_coinb1_suffix(s),
        None => job,
    };
    let ntime = match case.ntime {
        Ntime::After(secs) => case.job_ntime.wrapping_add(u32::from(secs)),
        Ntime::Raw(t) => t,
    };
    let version_bits = case.version_bits.map(|b| {
        if case.bits_within_mask {
            b & case.version_mask
        } else {
            b
        }
    });
    let extranonce2_len = case
        .extranonce2_len
        .map_or(case.extranonce2.len(), usize::from);
    let submit = ShareInput {
        extranonce1: &case.extranonce1,
        extranonce2: &case.extranonce2,
        ntime,
        nonce: case.nonce,
        version_bits,
    };
    let policy = SubmitPolicy {
        extranonce2_len,
        version_mask: case.version_mask,
        ntime_window_secs: case.ntime_window_secs,
        miner_target: Target::from_le_bytes(case.target),
    };
    let result = validate(&job, &submit, &policy);

    // The interleaved pair path must agree with `validate` share by share.
    let other = ShareInput {
        nonce: case.nonce.wrapping_add(1),
        ..submit
    };
    let pair = validate_pair([&job, &job], [&submit, &other], [&policy, &policy]);
    assert_eq!(pair[0], result);
    assert_eq!(pair[1], validate(&job, &other, &policy));

    // Reference: the checks in their documented order, then the plain computation.
    let len_ok = case.extranonce2.len() == extranonce2_len;
    let bits_ok = version_bits.is_none_or(|b| b & !case.version_mask == 0);
    let ntime_ok = ntime >= case.job_ntime
        && u64::from(ntime) < u64::from(case.job_ntime) + u64::from(case.ntime_window_secs);
    if !len_ok {
        assert_eq!(result, Err(ShareReject::BadExtranonce2Len));
        return;
    }
    if !bits_ok {
        assert_eq!(result, Err(ShareReject::BadVersionBits));
        return;
    }
    if !ntime_ok {
        assert_eq!(result, Err(ShareReject::NtimeOutOfRange));
        return;
    }

    let mut coinbase = case.coinb1.clone();
    coinbase.extend_from_slice(case.coinb1_suffix.as_deref().unwrap_or(&[]));
    coinbase.extend_from_slice(&case.extranonce1);
    coinbase.extend_from_slice(&case.extranonce2);
    coinbase.extend_from_slice(&case.coinb2);
    let mut root = sha256d(&coinbase);
    for b in &case.branch {
        let mut pair = root.to_vec();
        pair.extend_from_slice(b);
        root = sha256d(&pair);
    }
    let version = match version_bits {
        Some(bits) => (case.version & !case.version_mask) | bits,
        None => case.version,
    };
    let mut header = Vec::with_capacity(80);
    header.extend_from_slice(&version.to_le_bytes());
    for word in case.prevhash.chunks(4) {
        header.extend(word.iter().rev());
    }
    header.extend_from_slice(&root);
    header.extend_from_slice(&ntime.to_le_bytes());
    header.extend_from_slice(&case.nbits.to_le_bytes());
    header.extend_from_slice(&case.nonce.to_le_bytes());
    let hash = sha256d(&header);

    if le_le(&hash, &case.target) {
        let share = result.expect("a hash within the miner target is a share");
        assert_eq!(&share.header()[..], &header[..]);
        assert_eq!(share.hash().as_bytes(), &hash);
        let network = job.network_target().to_le_bytes();
        assert_eq!(share.is_block(), le_le(&hash, &network));
        assert!(share.difficulty() >= Target::from_le_bytes(case.target).difficulty());
    } else {
        assert_eq!(result, Err(ShareReject::LowDifficulty));
    }
});
