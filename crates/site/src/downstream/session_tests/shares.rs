//! Shares: what is forwarded to the pool and how, the pool's verdicts, duplicates, stale
//! jobs, and a pool link that cannot take a share.

use serde_json::json;

use super::super::harness::{FakePool, Harness, START, Verdict, config};
use super::super::jobs::KEPT_JOBS;
use crate::stats::PoolReject;
use hashgate_protocol::work::{Difficulty, Target};

fn code(answer: &serde_json::Value) -> Option<i64> {
    answer["error"][0].as_i64()
}

fn target(difficulty: f64) -> Target {
    Difficulty::new(difficulty)
        .expect("a difficulty")
        .to_target()
}

#[test]
fn only_shares_meeting_the_upstream_target_go_to_the_pool_with_the_pool_extranonce2() {
    let mut h = Harness::new(&config());
    let upstream = START * 16.0;
    let job = h.publish(true, target(upstream)).id.to_string();
    h.setup("acct.rig1");

    // Good enough for the miner, not for the pool: accepted, kept local.
    let (e2, nonce) = h.find_share(&job, START, upstream);
    assert_eq!(
        h.submit("acct.rig1", &job, &e2, nonce)["result"],
        json!(true)
    );
    assert!(h.pool.take().is_empty(), "nothing forwarded");

    let (e2, nonce) = h.find_share(&job, upstream, f64::MAX);
    assert_eq!(
        h.submit("acct.rig1", &job, &e2, nonce)["result"],
        json!(true)
    );
    let [up] = <[_; 1]>::try_from(h.pool.take()).expect("one share forwarded");
    // What the pool sees as extranonce2: padding ‖ the miner's prefix ‖ its extranonce2.
    let mut expected = vec![0; 7];
    expected.extend_from_slice(&h.miner.extranonce1);
    expected.extend_from_slice(&e2);
    assert_eq!(up.extranonce2.as_bytes(), expected.as_slice());
    assert_eq!((up.worker.name(), up.worker.rig()), ("acct.rig1", "rig1"));
    assert_eq!(&*up.pool_job_id, "pool-job-7");
    assert_eq!(
        (up.ntime, up.nonce, up.version_bits),
        (super::super::harness::NTIME, nonce, None)
    );
    assert_eq!(up.difficulty, START, "credited at the miner's difficulty");
    assert!(!up.is_block);
    assert_eq!(up.validated_at, h.now());

    let totals = h.snapshot().totals;
    assert_eq!(
        (totals.accepted, totals.accepted_difficulty),
        (2, 2.0 * START)
    );
}

#[test]
fn the_pools_verdicts_are_counted_against_the_miner() {
    let mut h = Harness::new(&config());
    let job = h.publish(true, Target::MAX).id.to_string();
    h.setup("rig1");
    for _ in 0..3 {
        let (e2, nonce) = h.find_share(&job, START, f64::MAX);
        assert_eq!(h.submit("rig1", &job, &e2, nonce)["result"], json!(true));
    }
    let shares = h.pool.take();
    assert_eq!(shares.len(), 3);
    h.pool.answer(&shares[0], Verdict::Accepted);
    h.pool
        .answer(&shares[1], Verdict::Rejected(PoolReject::Stale));
    h.pool
        .answer(&shares[2], Verdict::Rejected(PoolReject::LowDifficulty));
    let totals = h.snapshot().totals;
    assert_eq!(totals.pool_accepted, 1);
    assert_eq!(totals.pool_rejected, [1, 0, 1, 0, 0]);
    assert_eq!(totals.accepted, 3, "the miner's own answers stand");
}

#[test]
fn a_share_the_pool_link_cannot_take_is_still_accepted_and_counted_undelivered() {
    let mut h = Harness::new(&config());
    h.pool = FakePool::new(1);
    let job = h.publish(true, Target::MAX).id.to_string();
    h.setup("rig1");
    for _ in 0..2 {
        let (e2, nonce) = h.find_share(&job, START, f64::MAX);
        assert_eq!(h.submit("rig1", &job, &e2, nonce)["result"], json!(true));
    }
    // The second found the queue full; then the pool connection goes away.
    assert_eq!(h.pool.take().len(), 1);
    h.pool.disconnect();
    let (e2, nonce) = h.find_share(&job, START, f64::MAX);
    assert_eq!(h.submit("rig1", &job, &e2, nonce)["result"], json!(true));
    let totals = h.snapshot().totals;
    assert_eq!(totals.accepted, 3);
    // upstream_gone, queue_full.
    assert_eq!(totals.undelivered[..2], [1, 1]);
}

#[test]
fn the_same_share_twice_is_22_and_forwarded_once() {
    let mut h = Harness::new(&config());
    let job = h.publish(true, Target::MAX).id.to_string();
    h.setup("rig1");
    let (e2, nonce) = h.find_share(&job, START, f64::MAX);
    assert_eq!(h.submit("rig1", &job, &e2, nonce)["result"], json!(true));
    let a = h.submit("rig1", &job, &e2, nonce);
    assert_eq!((a["result"].clone(), code(&a)), (json!(false), Some(22)));
    assert_eq!(h.pool.take().len(), 1);
    let totals = h.snapshot().totals;
    assert_eq!((totals.accepted, totals.rejected[1]), (1, 1));
}

#[test]
fn clean_jobs_voids_earlier_jobs_a_plain_job_keeps_them_for_eight_jobs() {
    let mut h = Harness::new(&config());
    let a = h.publish(true, Target::ZERO).id.to_string();
    h.setup("rig1");
    let b = h.publish(false, Target::ZERO).id.to_string();
    h.drain();
    // Work in flight on an older job still counts while it is kept.
    for job in [&a, &b] {
        let (e2, nonce) = h.find_share(job, START, f64::MAX);
        assert_eq!(
            h.submit("rig1", job, &e2, nonce)["result"],
            json!(true),
            "{job}"
        );
    }
    let c = h.publish(true, Target::ZERO).id.to_string();
    h.drain();
    for job in [&a, &b] {
        let (e2, nonce) = h.find_share(job, START, f64::MAX);
        assert_eq!(code(&h.submit("rig1", job, &e2, nonce)), Some(21), "{job}");
    }
    // Without clean_jobs the list still ends somewhere: the oldest of nine is gone.
    for _ in 0..KEPT_JOBS - 1 {
        h.publish(false, Target::ZERO);
    }
    h.drain();
    let (e2, nonce) = h.find_share(&c, START, f64::MAX);
    assert_eq!(
        h.submit("rig1", &c, &e2, nonce)["result"],
        json!(true),
        "8th newest"
    );
    h.publish(false, Target::ZERO);
    h.drain();
    let (e2, nonce) = h.find_share(&c, START, f64::MAX);
    assert_eq!(
        code(&h.submit("rig1", &c, &e2, nonce)),
        Some(21),
        "9th newest"
    );
}
