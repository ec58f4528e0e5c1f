//! Share validation throughput against the SHA-256 compression floor, in one run.
//!
//! Run: `cargo bench --bench share -- --warm-up-time 1 --measurement-time 5`.
//! Figures and their reading are in `docs/BENCHES.md`.

// The workspace lints hold library code; a test or bench crate exports nothing and
// unwraps by design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hashgate_protocol::work::sha256d::{compress_x2, interleaved_sha_ni, sha256d_80};
use hashgate_protocol::work::{
    Job, JobTemplate, ShareInput, SubmitPolicy, Target, validate, validate_pair,
};
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

/// Bytes of the benchmark coinbase: coinb1 (pool coinb1 ‖ pool extranonce1, as the proxy
/// hands it to miners) 90, extranonce1 4, extranonce2 8, coinb2 148 = 250.
const COINB1_LEN: usize = 90;
const COINB2_LEN: usize = 148;
const BRANCH_DEPTH: usize = 12;

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn bench_job() -> Job {
    Job::new(JobTemplate {
        id: "bench".into(),
        prevhash: [0x5a; 32],
        coinb1: bytes(COINB1_LEN, 1),
        coinb2: bytes(COINB2_LEN, 2),
        merkle_branch: (0..BRANCH_DEPTH as u8).map(|i| [i; 32]).collect(),
        version: 0x2000_0000,
        nbits: 0x1702_9a8a,
        ntime: 0x679a_c169,
        clean_jobs: true,
    })
    .expect("valid bench job")
}

/// The same share computed the plain way: whole coinbase through `Sha256`, every merkle
/// step and the header through the generic `Digest` API, no per-job precomputation.
fn validate_naive(job: &Job, submit: &ShareInput<'_>) -> [u8; 32] {
    let txid = Sha256::digest(
        Sha256::new()
            .chain_update(job.coinb1())
            .chain_update(submit.extranonce1)
            .chain_update(submit.extranonce2)
            .chain_update(job.coinb2())
            .finalize(),
    );
    let mut root: [u8; 32] = txid.into();
    for step in job.merkle_branch() {
        let first = Sha256::new()
            .chain_update(root)
            .chain_update(step)
            .finalize();
        root = Sha256::digest(first).into();
    }
    let mut header = [0u8; 80];
    header[..4].copy_from_slice(&job.version().to_le_bytes());
    header[4..36].copy_from_slice(job.prev_blockhash());
    header[36..68].copy_from_slice(&root);
    header[68..72].copy_from_slice(&submit.ntime.to_le_bytes());
    header[72..76].copy_from_slice(&job.nbits().to_le_bytes());
    header[76..].copy_from_slice(&submit.nonce.to_le_bytes());
    Sha256::digest(Sha256::digest(header)).into()
}

fn share(c: &mut Criterion) {
    let job = bench_job();
    let en1 = [0xe0, 0x2e, 0x05, 0x6b];
    let en2 = [0u8; 8];
    let policy = SubmitPolicy::new(en2.len(), Target::MAX);
    let mut g = c.benchmark_group("share");
    g.throughput(Throughput::Elements(1));
    let mut nonce = 0u32;
    g.bench_function("validate", |b| {
        b.iter(|| {
            nonce = nonce.wrapping_add(1);
            let submit = ShareInput {
                extranonce1: &en1,
                extranonce2: &en2,
                ntime: 0x679a_c169,
                nonce,
                version_bits: None,
            };
            validate(black_box(&job), black_box(&submit), &policy)
        })
    });
    g.bench_function("validate_naive", |b| {
        b.iter(|| {
            nonce = nonce.wrapping_add(1);
            let submit = ShareInput {
                extranonce1: &en1,
                extranonce2: &en2,
                ntime: 0x679a_c169,
                nonce,
                version_bits: None,
            };
            validate_naive(black_box(&job), black_box(&submit))
        })
    });
    g.finish();

    // Two shares of the same job per iteration, hashed in lockstep: thrpt is shares/s.
    let mut g = c.benchmark_group("share");
    g.throughput(Throughput::Elements(2));
    g.bench_function("validate_pair", |b| {
        b.iter(|| {
            nonce = nonce.wrapping_add(2);
            let submit = |nonce| ShareInput {
                extranonce1: &en1,
                extranonce2: &en2,
                ntime: 0x679a_c169,
                nonce,
                version_bits: None,
            };
            let (sa, sb) = (submit(nonce), submit(nonce ^ 1));
            validate_pair(
                black_box([&job, &job]),
                black_box([&sa, &sb]),
                [&policy, &policy],
            )
        })
    });
    g.finish();
}

fn sha256(c: &mut Criterion) {
    let mut g = c.benchmark_group("sha256");
    g.throughput(Throughput::Elements(1));
    let block = GenericArray::from([0x42u8; 64]);
    let mut state = [0x6a09_e667u32; 8];
    // Each compression feeds the next: the dependent-chain latency a single share sees.
    g.bench_function("compress", |b| {
        b.iter(|| {
            sha2::compress256(&mut state, core::slice::from_ref(black_box(&block)));
        })
    });
    g.finish();
    black_box(state);

    // Two chains, each compression feeding the next in its own chain: thrpt counts both,
    // so it reads as compressions/s next to `compress`.
    let mut g = c.benchmark_group("sha256");
    g.throughput(Throughput::Elements(2));
    let block_a = [0x42u8; 64];
    let block_b = [0x24u8; 64];
    let (mut a, mut b) = ([0x6a09_e667u32; 8], [0xbb67_ae85u32; 8]);
    g.bench_function("compress_x2", |bench| {
        bench.iter(|| compress_x2(&mut a, black_box(&block_a), &mut b, black_box(&block_b)))
    });
    g.finish();
    black_box((a, b));

    let mut g = c.benchmark_group("sha256d");
    g.throughput(Throughput::Elements(1));
    let mut header = [0x17u8; 80];
    let mut n = 0u32;
    g.bench_function("header_hashgate", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            header[76..].copy_from_slice(&n.to_le_bytes());
            sha256d_80(black_box(&header))
        })
    });
    g.bench_function("header_sha2", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            header[76..].copy_from_slice(&n.to_le_bytes());
            let out: [u8; 32] = Sha256::digest(Sha256::digest(black_box(&header))).into();
            out
        })
    });
    g.bench_function("header_bitcoin_hashes", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            header[76..].copy_from_slice(&n.to_le_bytes());
            bitcoin_hashes::sha256d::Hash::hash(black_box(&header))
        })
    });
    g.finish();
}

/// The bench's share really is the shape the figures claim: count compressions.
fn compressions_per_share() -> usize {
    let coinbase = COINB1_LEN + 4 + 8 + COINB2_LEN;
    let coinbase_blocks = (coinbase + 9).div_ceil(64) - COINB1_LEN / 64;
    coinbase_blocks + 1 + 3 * BRANCH_DEPTH + 3
}

fn report(_: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    eprintln!(
        "CPU SHA extensions (SHA-NI) detected: {}",
        std::is_x86_feature_detected!("sha")
            && std::is_x86_feature_detected!("sse4.1")
            && std::is_x86_feature_detected!("ssse3")
    );
    eprintln!(
        "interleaved SHA-NI kernel for compress_x2 / validate_pair: {}",
        interleaved_sha_ni()
    );
    eprintln!(
        "share shape: {}-byte coinbase, {BRANCH_DEPTH}-deep branch, {} compressions per share",
        COINB1_LEN + 12 + COINB2_LEN,
        compressions_per_share()
    );
}

criterion_group!(benches, report, share, sha256);
criterion_main!(benches);
