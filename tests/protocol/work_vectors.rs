//! Share validation against real mining data from `tests/fixtures/stratum/`.

use hashgate_protocol::work::{
    Difficulty, Hash256, Job, JobTemplate, ShareInput, ShareReject, SubmitPolicy, Target, validate,
};
use serde_json::Value;

use crate::support::fixtures::{fixture, hex_u32, job_from_notify, unhex, unhex32};

fn read_vectors() -> Value {
    let text = fixture("share-vectors.json");
    serde_json::from_str(&text).expect("share-vectors.json is JSON")
}

#[test]
fn genesis_header_hash() {
    let v = read_vectors();
    let header: [u8; 80] = unhex(v["genesis"]["header"].as_str().unwrap())
        .try_into()
        .unwrap();
    let hash = Hash256::from_bytes(hashgate_protocol::work::sha256d::sha256d_80(&header));
    assert_eq!(hash.to_string(), v["genesis"]["hash"].as_str().unwrap());
    assert!(Target::from_compact(0x1d00ffff).unwrap().is_met_by(&hash));
}

#[test]
fn every_share_vector_reproduces() {
    let v = read_vectors();
    let vectors = v["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 3, "the fixture has three vectors");
    for vec in vectors {
        let name = vec["name"].as_str().unwrap();
        let job = job_from_notify(&vec["notify"]);
        let en1 = unhex(vec["extranonce1"].as_str().unwrap());
        let en2 = unhex(vec["extranonce2"].as_str().unwrap());
        let version_bits = vec["version_bits"]
            .as_str()
            .map(|s| u32::from_str_radix(s, 16).unwrap());
        let mask = vec["version_mask"]
            .as_str()
            .map_or(0, |s| u32::from_str_radix(s, 16).unwrap());
        let submit = ShareInput {
            extranonce1: &en1,
            extranonce2: &en2,
            ntime: hex_u32(&vec["ntime"]),
            nonce: hex_u32(&vec["nonce"]),
            version_bits,
        };
        let policy = SubmitPolicy {
            version_mask: mask,
            ..SubmitPolicy::new(en2.len(), Target::MAX)
        };
        let share = validate(&job, &submit, &policy).unwrap_or_else(|e| panic!("{name}: {e}"));
        let exp = &vec["expected"];
        assert_eq!(
            hex::encode(share.header()),
            exp["header"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            share.hash().to_string(),
            exp["hash"].as_str().unwrap(),
            "{name}"
        );
        let mut root = [0u8; 32];
        root.copy_from_slice(&share.header()[36..68]);
        root.reverse();
        assert_eq!(
            hex::encode(root),
            exp["merkle_root_display"].as_str().unwrap(),
            "{name}"
        );
        let want = exp["difficulty"].as_f64().unwrap();
        let rel = (share.difficulty() - want).abs() / want;
        assert!(
            rel < 1e-12,
            "{name}: difficulty {} vs {want}",
            share.difficulty()
        );
    }
}

#[test]
fn version_rolled_testnet_share_passes_its_pool_difficulty() {
    let v = read_vectors();
    let vec = &v["vectors"][0];
    let job = job_from_notify(&vec["notify"]);
    let en1 = unhex("57a6f098");
    let en2 = unhex("c7080000");
    let submit = ShareInput {
        extranonce1: &en1,
        extranonce2: &en2,
        ntime: 0x64b3f3ec,
        nonce: 0xed460d91,
        version_bits: Some(0x0000_2000),
    };
    let policy = SubmitPolicy {
        version_mask: 0x1fff_e000,
        ..SubmitPolicy::new(4, Difficulty::new(512.0).unwrap().to_target())
    };
    let share = validate(&job, &submit, &policy).expect("pool accepted it at difficulty 512");
    assert!(!share.is_block());
    assert_eq!(share.version(), 0x2000_2000);
    // Without its version bits the same submit is worthless.
    let plain = ShareInput {
        version_bits: None,
        ..submit
    };
    assert_eq!(
        validate(&job, &plain, &policy),
        Err(ShareReject::LowDifficulty)
    );
    // Bits outside the negotiated mask are refused before hashing.
    let outside = ShareInput {
        version_bits: Some(0x0000_1000),
        ..submit
    };
    assert_eq!(
        validate(&job, &outside, &policy),
        Err(ShareReject::BadVersionBits)
    );
    let no_mask = SubmitPolicy {
        version_mask: 0,
        ..policy
    };
    assert_eq!(
        validate(&job, &submit, &no_mask),
        Err(ShareReject::BadVersionBits)
    );
}

#[test]
fn mainnet_block_881423_is_a_block() {
    let v = read_vectors();
    let vec = &v["vectors"][2];
    let job = job_from_notify(&vec["notify"]);
    assert_eq!(job.merkle_branch().len(), 11);
    let en1 = unhex("04830cee");
    let en2 = unhex("220cf1ad");
    let submit = ShareInput {
        extranonce1: &en1,
        extranonce2: &en2,
        ntime: 0x679ac169,
        nonce: 0xff05fb02,
        version_bits: Some(0x0e59_6000),
    };
    let policy = SubmitPolicy {
        version_mask: 0x1fff_e000,
        ..SubmitPolicy::new(4, Target::DIFF1)
    };
    let share = validate(&job, &submit, &policy).unwrap();
    assert!(share.is_block());
    assert!(share.meets(job.network_target()));
    assert_eq!(share.version(), 0x2e59_6000);
    // One nonce off is not a block (and not even a difficulty-1 share).
    let off = ShareInput {
        nonce: 0xff05fb03,
        ..submit
    };
    assert_eq!(
        validate(&job, &off, &policy),
        Err(ShareReject::LowDifficulty)
    );
}

/// Walks a captured session: notify → job; every accepted submit must meet `difficulty`.
/// Returns how many accepted submits it checked.
fn check_session(text: &str, extranonce1: &[u8], difficulty: f64) -> usize {
    let target = Difficulty::new(difficulty).unwrap().to_target();
    let mut jobs: Vec<Job> = Vec::new();
    let mut pending: Option<Value> = None;
    let mut checked = 0;
    for line in text.lines() {
        let Some(start) = line.find('{') else {
            continue;
        };
        let Ok(msg) = serde_json::from_str::<Value>(&line[start..]) else {
            continue;
        };
        match msg["method"].as_str() {
            Some("mining.notify") => jobs.push(job_from_notify(&msg["params"])),
            Some("mining.submit") => pending = Some(msg["params"].clone()),
            _ if msg["result"] == Value::Bool(true) => {
                let Some(params) = pending.take() else {
                    continue;
                };
                let job_id = params[1].as_str().unwrap();
                // A submit whose notify precedes the capture cannot be checked; callers
                // assert how many were.
                let Some(job) = jobs.iter().rev().find(|j| j.id() == job_id) else {
                    continue;
                };
                let en2 = unhex(params[2].as_str().unwrap());
                let submit = ShareInput {
                    extranonce1,
                    extranonce2: &en2,
                    ntime: hex_u32(&params[3]),
                    nonce: hex_u32(&params[4]),
                    version_bits: None,
                };
                let share = validate(job, &submit, &SubmitPolicy::new(8, target))
                    .unwrap_or_else(|e| panic!("accepted submit {params} rejected: {e}"));
                assert!(share.difficulty() >= difficulty);
                checked += 1;
            }
            _ => pending = None,
        }
    }
    checked
}

#[test]
fn every_accepted_cpuminer_share_meets_its_difficulty() {
    let text = fixture("session-cpuminer-ckpool.txt");
    let checked = check_session(&text, &unhex("e02e056b"), 0.001);
    assert_eq!(
        checked, 11,
        "accepted submits with an answer in the capture"
    );
}

#[test]
fn ckpool_probe_answers_are_reproduced() {
    let text = fixture("session-extras-ckpool.txt");
    // Section A's job, probed in section C with extranonce1 e12e056b at difficulty 0.001.
    let notify = text
        .lines()
        .find(|l| l.contains("6b052edf00000002") && l.contains("mining.notify"))
        .expect("job 6b052edf00000002 in fixture");
    let msg: Value = serde_json::from_str(&notify[notify.find('{').unwrap()..]).unwrap();
    let job = job_from_notify(&msg["params"]);
    let en1 = unhex("e12e056b");
    let en2 = [0u8; 8];
    let policy = SubmitPolicy::new(8, Difficulty::new(0.001).unwrap().to_target());
    let good = ShareInput {
        extranonce1: &en1,
        extranonce2: &en2,
        ntime: 0x6b052efd,
        nonce: 0x003764cc,
        version_bits: None,
    };
    let share = validate(&job, &good, &policy).expect("pool accepted it");
    assert!(
        (share.difficulty() - 0.001260).abs() < 1e-6,
        "{}",
        share.difficulty()
    );
    // nonce + 1: "Above target" (23).
    let low = ShareInput {
        nonce: 0x003764cd,
        ..good
    };
    assert_eq!(validate(&job, &low, &policy).map_err(|e| e.code()), Err(23));
    // ntime + 7200 s: "Ntime out of range" (20), exactly where ckpool draws the line.
    let late = ShareInput {
        ntime: 0x6b054b1d,
        ..good
    };
    assert_eq!(
        validate(&job, &late, &policy),
        Err(ShareReject::NtimeOutOfRange)
    );
    let just_in = ShareInput {
        ntime: 0x6b054b1c,
        ..good
    };
    assert_ne!(
        validate(&job, &just_in, &policy),
        Err(ShareReject::NtimeOutOfRange)
    );
    let early = ShareInput {
        ntime: 0x6b052efc,
        ..good
    };
    assert_eq!(
        validate(&job, &early, &policy),
        Err(ShareReject::NtimeOutOfRange)
    );
    // A short extranonce2.
    let short = ShareInput {
        extranonce2: &[0u8],
        ..good
    };
    assert_eq!(
        validate(&job, &short, &policy),
        Err(ShareReject::BadExtranonce2Len)
    );
}

/// One `## X.` section of the extras fixture.
fn section(text: &str, letter: char) -> &str {
    let head = format!("## {letter}.");
    let start = text.find(&head).expect("section present");
    let rest = &text[start + head.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

#[test]
fn accepted_shares_in_the_extras_sessions_meet_their_difficulty() {
    let text = fixture("session-extras-ckpool.txt");
    // Section B (after a block): ckpool derives extranonce1 from the session id that
    // follows the job-id prefix (6b052f13 → session 6b052f14 → bytes 142f056b); the share
    // meeting 0.001 confirms it (a wrong extranonce1 would do so with odds ~1e-13).
    let b = check_session(section(&text, 'B'), &unhex("142f056b"), 0.001);
    assert_eq!(b, 1, "the submit on the post-block job 6b052f1300000002");
    // Section E: unmodified ckpool at difficulty 1, extranonce1 from its subscribe answer.
    let e = check_session(section(&text, 'E'), &unhex("5f2e056b"), 1.0);
    assert_eq!(e, 1, "the one difficulty-1 share");
}

/// A display-order (explorer) hex hash as raw bytes.
fn raw_from_display(s: &str) -> [u8; 32] {
    let mut b = unhex32(s);
    b.reverse();
    b
}

/// Mainnet block 100000: four transactions, so the coinbase's branch has two levels (its
/// sibling txid, then the hash of the other pair). Public block data: header fields,
/// the four txids and the raw coinbase (scriptSig `04 4c86041b 02 0602`: nbits, then a
/// 2-byte extranonce, split here as 1 byte extranonce1 + 1 byte extranonce2).
#[test]
fn mainnet_block_100000_with_a_two_level_branch() {
    let txids = [
        "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87",
        "fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4",
        "6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4",
        "e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d",
    ]
    .map(raw_from_display);
    let mut pair = [0u8; 64];
    pair[..32].copy_from_slice(&txids[2]);
    pair[32..].copy_from_slice(&txids[3]);
    let right = hashgate_protocol::work::sha256d::sha256d_64(&pair);
    let prev_header_order =
        raw_from_display("000000000002d01c1fccc21636b607dfd930d31d01c3a62104612a1719011250");
    let job = Job::new(JobTemplate {
        id: "100000".into(),
        // Stratum's word-swapped form; the swap is its own inverse.
        prevhash: hashgate_protocol::work::prevhash_to_header_order(&prev_header_order),
        coinb1: unhex(
            "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff08044c86041b02",
        ),
        coinb2: unhex(
            "ffffffff0100f2052a010000004341041b0e8c2567c12536aa13357b79a073dc4444acb83c4ec7a0e2f99dd7457516c5817242da796924ca4e99947d087fedf9ce467cb9f7c6287078f801df276fdf84ac00000000",
        ),
        merkle_branch: vec![txids[1], right],
        version: 1,
        nbits: 0x1b04_864c,
        ntime: 1_293_623_863,
        clean_jobs: true,
    })
    .unwrap();
    let submit = ShareInput {
        extranonce1: &[0x06],
        extranonce2: &[0x02],
        ntime: 1_293_623_863,
        nonce: 274_148_111,
        version_bits: None,
    };
    let root = hashgate_protocol::work::merkle_root(&job, submit.extranonce1, submit.extranonce2);
    assert_eq!(
        root,
        raw_from_display("f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766")
    );
    let share = validate(&job, &submit, &SubmitPolicy::new(1, Target::DIFF1)).unwrap();
    assert_eq!(
        share.hash().to_string(),
        "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506"
    );
    assert!(share.is_block());
    // A wrong extranonce2 changes the coinbase, so the same nonce no longer works.
    let other = ShareInput {
        extranonce2: &[0x03],
        ..submit
    };
    assert_eq!(
        validate(&job, &other, &SubmitPolicy::new(1, Target::DIFF1)),
        Err(ShareReject::LowDifficulty)
    );
}
