use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::channel::JOB_FEEDS;
use super::*;
use hashgate_protocol::extranonce::{SplitLimits, choose_split};
use hashgate_protocol::stratum::Notify;
use hashgate_protocol::work::{ShareInput, SubmitPolicy, Target, validate};

fn plan(pool_e2: usize, miners: usize) -> hashgate_protocol::extranonce::ExtranoncePlan {
    choose_split(pool_e2, miners, SplitLimits::default()).unwrap()
}

#[test]
fn no_prefix_before_a_pool_has_fixed_the_sizes() {
    let (hub, _rx) = Hub::new(4);
    assert_eq!(hub.join().unwrap_err(), JoinError::NoUpstream);
    assert!(hub.sizes().is_none());
}

#[test]
fn channels_open_as_prefix_space_fills_and_stop_at_the_cap() {
    let (hub, mut rx) = Hub::new(2);
    // 8-byte pool extranonce2, few miners: a 1-byte prefix, 256 miners per channel.
    let p = plan(8, 100);
    assert!(hub.set_sizes(&p));
    assert!(!hub.set_sizes(&p), "same sizes again change nothing");
    assert_eq!(
        hub.sizes(),
        Some(MinerSizes {
            prefix_len: 1,
            extranonce2_size: 7
        })
    );
    assert_eq!(rx.try_recv().unwrap().index(), 0);

    let mut leases = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..512 {
        let (channel, lease) = hub.join().unwrap();
        assert!(seen.insert((channel.index(), lease.prefix().as_bytes().to_vec())));
        leases.push(lease);
    }
    assert_eq!(
        rx.try_recv().unwrap().index(),
        1,
        "the 257th miner opened channel 1"
    );
    assert_eq!(hub.join().unwrap_err(), JoinError::Full(2));
    leases.pop();
    assert_eq!(
        hub.join().unwrap_err(),
        JoinError::Full(2),
        "a departed miner's prefix is held while its jobs are current"
    );
    for channel in hub.channels() {
        channel.publish(test_job_with("b", true));
    }
    assert!(
        hub.join().is_ok(),
        "after a clean job a departed miner's prefix is free again"
    );
}

fn sample_notify() -> Notify {
    Notify {
        job_id: "pool-job-7".into(),
        prevhash: [7; 32],
        coinb1: vec![1, 0, 0, 0, 1, 2, 3],
        coinb2: vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
        merkle_branch: vec![[9; 32], [10; 32]],
        version: 0x2000_0000,
        nbits: 0x1d00_ffff,
        ntime: 0x6500_0000,
        clean_jobs: false,
    }
}

#[test]
fn miner_job_folds_pool_extranonce1_and_padding_into_coinb1() {
    let (tx, _rx) = mpsc::channel(1);
    let link = UpstreamLink::new("p".into(), 1, tx);
    // A 16-byte pool extranonce2: 1-byte prefix, 8 miner bytes, 7 bytes of padding.
    let p = plan(16, 10);
    assert_eq!(p.pad_len(), 7);
    let notify = sample_notify();
    let e1 = [0xaa, 0xbb, 0xcc, 0xdd];
    let job = MinerJob::build(
        "1f".into(),
        MinerJobParts {
            notify: &notify,
            pool_extranonce1: &e1,
            plan: p,
            upstream_target: Target::DIFF1,
            version_mask: 0x1fffe000,
            link,
            clean_jobs: true,
        },
        Instant::now(),
    )
    .unwrap();
    let mut expected = notify.coinb1.clone();
    expected.extend_from_slice(&e1);
    expected.extend_from_slice(&[0; 7]);
    assert_eq!(job.job.coinb1(), expected.as_slice());
    assert_eq!(&*job.pool_job_id, "pool-job-7");
    assert!(job.clean_jobs());
    let line = std::str::from_utf8(&job.notify_line).unwrap();
    assert!(
        line.starts_with("{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"1f\""),
        "{line}"
    );
    assert!(line.ends_with("true]}\n"), "{line}");

    // The miner's share (prefix as extranonce1) and the pool's view (E ‖ pad ‖ prefix ‖ e2)
    // hash to the same header.
    let prefix = [0x05];
    let e2 = [1, 2, 3, 4, 5, 6, 7, 8];
    let policy = SubmitPolicy::new(8, Target::MAX);
    let miner_share = validate(
        &job.job,
        &ShareInput {
            extranonce1: &prefix,
            extranonce2: &e2,
            ntime: notify.ntime,
            nonce: 42,
            version_bits: None,
        },
        &policy,
    )
    .unwrap();
    let pool_job = hashgate_protocol::work::Job::new(hashgate_protocol::work::JobTemplate {
        id: notify.job_id.clone(),
        prevhash: notify.prevhash,
        coinb1: notify.coinb1.clone(),
        coinb2: notify.coinb2.clone(),
        merkle_branch: notify.merkle_branch.clone(),
        version: notify.version,
        nbits: notify.nbits,
        ntime: notify.ntime,
        clean_jobs: false,
    })
    .unwrap();
    let mut pool_e2 = vec![0u8; 7];
    pool_e2.extend_from_slice(&prefix);
    pool_e2.extend_from_slice(&e2);
    let pool_share = validate(
        &pool_job,
        &ShareInput {
            extranonce1: &e1,
            extranonce2: &pool_e2,
            ntime: notify.ntime,
            nonce: 42,
            version_bits: None,
        },
        &SubmitPolicy::new(16, Target::MAX),
    )
    .unwrap();
    assert_eq!(miner_share.hash(), pool_share.hash());
}

#[tokio::test]
async fn a_closed_link_counts_the_share_as_undelivered() {
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let link = UpstreamLink::new("p".into(), 1, tx);
    let now = Instant::now();
    let miner = Arc::new(crate::stats::MinerStats::new(
        now,
        std::time::SystemTime::now(),
        1.0,
    ));
    let p = plan(8, 10);
    let lease = hashgate_protocol::extranonce::PrefixPool::for_plan(&p)
        .lease()
        .unwrap();
    let share = UpstreamSubmit {
        worker: crate::hub::MinerWorker::new("a.w"),
        pool_job_id: "j".into(),
        extranonce2: p.compose(lease.prefix(), &[0; 7]).unwrap(),
        ntime: 1,
        nonce: 2,
        version_bits: None,
        is_block: false,
        difficulty: 1.0,
        miner: miner.clone(),
        validated_at: now,
    };
    assert_eq!(
        link.submit(share),
        Err(crate::stats::Undelivered::UpstreamGone)
    );
    assert_eq!(miner.snapshot(now).totals.undelivered_total(), 1);
}

fn test_job(id: &str) -> Arc<MinerJob> {
    test_job_with(id, false)
}

fn test_job_with(id: &str, clean_jobs: bool) -> Arc<MinerJob> {
    let (tx, _rx) = mpsc::channel(1);
    let notify = sample_notify();
    Arc::new(
        MinerJob::build(
            id.into(),
            MinerJobParts {
                notify: &notify,
                pool_extranonce1: &[1, 2, 3, 4],
                plan: plan(8, 10),
                upstream_target: Target::DIFF1,
                version_mask: 0,
                link: UpstreamLink::new("p".into(), 1, tx),
                clean_jobs,
            },
            Instant::now(),
        )
        .unwrap(),
    )
}

fn test_channel() -> Channel {
    let pool = hashgate_protocol::extranonce::PrefixPool::for_plan(&plan(8, 10));
    Channel::new(0, pool)
}

#[test]
fn without_a_runtime_publish_reaches_every_feed_at_once() {
    let channel = test_channel();
    let mut miners: Vec<_> = (0..JOB_FEEDS + 3).map(|_| channel.watch()).collect();
    let job = test_job("a");
    channel.publish(job.clone());
    assert!(Arc::ptr_eq(&channel.current().unwrap(), &job));
    for rx in &mut miners {
        assert!(rx.has_changed().unwrap());
        assert!(Arc::ptr_eq(rx.borrow_and_update().as_ref().unwrap(), &job));
    }
}

#[tokio::test]
async fn the_fan_out_task_brings_every_feed_the_newest_job() {
    let channel = test_channel();
    // More miners than feeds: every feed is watched, some by two miners.
    let mut miners: Vec<_> = (0..2 * JOB_FEEDS + 1).map(|_| channel.watch()).collect();
    channel.publish(test_job("a"));
    let newest = test_job("b");
    // Published while the first round may still be under way.
    channel.publish(newest.clone());
    assert!(Arc::ptr_eq(&channel.current().unwrap(), &newest));
    for rx in &mut miners {
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                if let Some(job) = rx.borrow_and_update().clone()
                    && Arc::ptr_eq(&job, &newest)
                {
                    return job;
                }
                rx.changed().await.expect("feed open");
            }
        })
        .await;
        assert!(got.is_ok(), "a miner never got the newest job");
    }
}

#[tokio::test]
async fn a_fan_out_round_lets_other_tasks_run_between_feeds() {
    let channel = test_channel();
    let mut first = channel.watch();
    let mut last = (1..JOB_FEEDS).map(|_| channel.watch()).last().unwrap();
    channel.publish(test_job("a"));
    // On this single-threaded runtime the fan-out task runs only when this one waits:
    // after the first feed it yields, so this task sees the first feed filled while the
    // last one is not yet.
    first.changed().await.unwrap();
    assert!(
        !last.has_changed().unwrap(),
        "the whole round ran in one go"
    );
    last.changed().await.unwrap();
}
