//! `validate_pair` gives exactly what `validate` gives for each share: on random jobs and
//! submits (same and different shapes, every reject, version rolling) and on the real
//! share vectors from `tests/fixtures/stratum/`.

use hashgate_protocol::work::{
    Job, JobTemplate, ShareInput, ShareReject, SubmitPolicy, Target, validate, validate_pair,
};
use proptest::prelude::*;
use serde_json::Value;

use crate::support::fixtures::{fixture, hex_u32, job_from_notify, unhex};

/// One share vector decoded: its job, extranonces, submit fields, mask and expected hash.
struct Vector {
    name: String,
    job: Job,
    en1: Vec<u8>,
    en2: Vec<u8>,
    ntime: u32,
    nonce: u32,
    version_bits: Option<u32>,
    mask: u32,
    hash: String,
}

impl Vector {
    fn submit(&self) -> ShareInput<'_> {
        ShareInput {
            extranonce1: &self.en1,
            extranonce2: &self.en2,
            ntime: self.ntime,
            nonce: self.nonce,
            version_bits: self.version_bits,
        }
    }

    fn policy(&self) -> SubmitPolicy {
        SubmitPolicy {
            version_mask: self.mask,
            ..SubmitPolicy::new(self.en2.len(), Target::MAX)
        }
    }
}

fn vectors() -> Vec<Vector> {
    let v: Value = serde_json::from_str(&fixture("share-vectors.json")).expect("JSON");
    let list = v["vectors"].as_array().expect("vectors array");
    assert_eq!(list.len(), 3, "the fixture has three vectors");
    list.iter()
        .map(|vec| Vector {
            name: vec["name"].as_str().unwrap().to_owned(),
            job: job_from_notify(&vec["notify"]),
            en1: unhex(vec["extranonce1"].as_str().unwrap()),
            en2: unhex(vec["extranonce2"].as_str().unwrap()),
            ntime: hex_u32(&vec["ntime"]),
            nonce: hex_u32(&vec["nonce"]),
            version_bits: vec["version_bits"]
                .as_str()
                .map(|s| u32::from_str_radix(s, 16).unwrap()),
            mask: vec["version_mask"]
                .as_str()
                .map_or(0, |s| u32::from_str_radix(s, 16).unwrap()),
            hash: vec["expected"]["hash"].as_str().unwrap().to_owned(),
        })
        .collect()
}

#[test]
fn every_share_vector_reproduces_through_the_pair_path() {
    let vs = vectors();
    // Every ordered pair, a vector with itself included (the same-shape lockstep path)
    // and vectors of different jobs (the fallback when shapes differ).
    for a in &vs {
        for b in &vs {
            let (sa, sb) = (a.submit(), b.submit());
            let (pa, pb) = (a.policy(), b.policy());
            let [ra, rb] = validate_pair([&a.job, &b.job], [&sa, &sb], [&pa, &pb]);
            for (v, r) in [(a, ra), (b, rb)] {
                let share = r.unwrap_or_else(|e| panic!("{} with {}: {e}", a.name, b.name));
                assert_eq!(share.hash().to_string(), v.hash, "{}", v.name);
                assert_eq!(Ok(share), validate(&v.job, &v.submit(), &v.policy()));
            }
        }
    }
}

#[test]
fn a_vector_paired_with_a_worthless_share_of_its_own_job() {
    let vs = vectors();
    let v = &vs[2];
    assert!(
        v.job.merkle_branch().len() > 1,
        "mainnet vector has a branch"
    );
    let good = v.submit();
    let bad = ShareInput {
        nonce: v.nonce ^ 1,
        ..good
    };
    let policy = SubmitPolicy {
        version_mask: v.mask,
        ..SubmitPolicy::new(v.en2.len(), Target::DIFF1)
    };
    let [rg, rb] = validate_pair([&v.job; 2], [&good, &bad], [&policy; 2]);
    assert!(rg.expect("the real share").is_block());
    assert_eq!(rb, Err(ShareReject::LowDifficulty));
}

/// A random job: coinb1 and coinb2 lengths cross block boundaries, branch depth 0–3.
fn arb_job() -> impl Strategy<Value = Job> {
    (
        prop::collection::vec(any::<u8>(), 0..150),
        prop::collection::vec(any::<u8>(), 0..150),
        prop::collection::vec(any::<[u8; 32]>(), 0..4),
        any::<[u8; 32]>(),
        any::<u32>(),
    )
        .prop_map(|(coinb1, coinb2, merkle_branch, prevhash, version)| {
            Job::new(JobTemplate {
                id: "p".into(),
                prevhash,
                coinb1,
                coinb2,
                merkle_branch,
                version,
                // Regtest-like: about half of all hashes meet it, so blocks happen.
                nbits: 0x207f_ffff,
                ntime: 1_000_000,
                clean_jobs: false,
            })
            .expect("valid nbits")
        })
}

/// Raw submit fields; the extranonce2 length sometimes differs from the policy's.
#[derive(Debug, Clone)]
struct RawSubmit {
    en1: Vec<u8>,
    en2: Vec<u8>,
    ntime_offset: u32,
    nonce: u32,
    version_bits: Option<u32>,
    policy: SubmitPolicy,
}

fn arb_submit() -> impl Strategy<Value = RawSubmit> {
    let target = prop_oneof![
        Just(Target::MAX),
        Just(Target::ZERO),
        // About half of all hashes meet this one.
        Just(Target::from_compact(0x207f_ffff).expect("valid compact")),
    ];
    (
        prop::collection::vec(any::<u8>(), 0..9),
        prop::collection::vec(any::<u8>(), 0..9),
        prop_oneof![0u32..8000, Just(7199), Just(7200)],
        any::<u32>(),
        prop::option::of(prop_oneof![Just(0x0000_2000u32), any::<u32>()]),
        prop_oneof![Just(0u32), Just(0x1fff_e000)],
        0usize..9,
        target,
    )
        .prop_map(
            |(en1, en2, ntime_offset, nonce, version_bits, mask, en2_len, target)| {
                // Mostly a matching extranonce2 size, so most submits reach the hash.
                let en2_len = if en2_len < 7 { en2.len() } else { en2_len };
                RawSubmit {
                    en1,
                    en2,
                    ntime_offset,
                    nonce,
                    version_bits,
                    policy: SubmitPolicy {
                        version_mask: mask,
                        ..SubmitPolicy::new(en2_len, target)
                    },
                }
            },
        )
}

impl RawSubmit {
    fn submit(&self, job: &Job) -> ShareInput<'_> {
        ShareInput {
            extranonce1: &self.en1,
            extranonce2: &self.en2,
            ntime: job.ntime() + self.ntime_offset,
            nonce: self.nonce,
            version_bits: self.version_bits,
        }
    }
}

fn check_pair(ja: &Job, a: &RawSubmit, jb: &Job, b: &RawSubmit) -> Result<(), TestCaseError> {
    let (sa, sb) = (a.submit(ja), b.submit(jb));
    let got = validate_pair([ja, jb], [&sa, &sb], [&a.policy, &b.policy]);
    let want = [validate(ja, &sa, &a.policy), validate(jb, &sb, &b.policy)];
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn pair_equals_validate_on_one_job(job in arb_job(), a in arb_submit(), b in arb_submit()) {
        check_pair(&job, &a, &job, &b)?;
    }

    #[test]
    fn pair_equals_validate_on_two_jobs(
        ja in arb_job(), jb in arb_job(), a in arb_submit(), b in arb_submit()
    ) {
        check_pair(&ja, &a, &jb, &b)?;
    }
}
