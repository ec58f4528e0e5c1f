//! Pool groups: a miner starts in the group its placement chooses, and a move by the
//! balancer sends it the new group's job with `clean_jobs` on the same connection, while a
//! share it was already hashing for the old group's job still goes to the old pool.

use std::time::Duration;

use serde_json::json;

use super::super::harness::{FakePool, Harness, START, config};
use crate::config::{PoolGroup, Route, SplitConfig, WorkerPattern};
use crate::hub::{ChannelControl, SplitBook};

fn two_groups() -> SplitBook {
    let mut c = SplitConfig::single();
    c.groups = vec![
        PoolGroup {
            name: "main".into(),
            weight: 70.0,
            pools: Some(vec!["pool".into()]),
        },
        PoolGroup {
            name: "second".into(),
            weight: 30.0,
            pools: Some(vec!["other".into()]),
        },
    ];
    c.routes = vec![Route {
        worker: WorkerPattern::new("acme.*"),
        group: 1,
    }];
    let book = SplitBook::new(c);
    book.set_ready(0, true);
    book.set_ready(1, true);
    book
}

#[test]
fn a_moved_miner_gets_the_new_groups_job_and_old_shares_reach_the_old_pool() {
    let mut h = Harness::with_split(&config(), two_groups());
    let other = FakePool::named("other", 2, 64);
    let main_job = h
        .publish(true, hashgate_protocol::work::Target::MAX)
        .id
        .to_string();
    let second_job = h.publish_for_group(1, &other, true).id.to_string();
    h.setup("site.rig1");
    let stats = h.registry.live_miners().pop().expect("listed").1;
    assert_eq!(stats.group(), 0, "the group furthest below its target");
    assert_eq!(stats.home(), None);
    assert_eq!(h.miner.job.as_deref(), Some(main_job.as_str()));
    let (old_e2, old_nonce) = h.find_share(&main_job, START, f64::MAX);

    // The balancer moves it; its session follows on the channel's Regroup.
    stats.move_to(1, h.now());
    h.broadcast(ChannelControl::Regroup);
    let notify = h.recv();
    assert_eq!(notify["method"], json!("mining.notify"), "{notify}");
    assert_eq!(notify["params"][0], json!(second_job));
    assert_eq!(
        notify["params"][8],
        json!(true),
        "a move is new work with clean_jobs"
    );
    assert!(h.try_recv().is_none());

    // The share found on the old group's job is still good and goes to its pool.
    assert_eq!(
        h.submit("site.rig1", &main_job, &old_e2, old_nonce)["result"],
        json!(true)
    );
    assert_eq!(h.pool.take().len(), 1, "to the pool that issued the job");
    // New work goes to the new group's pool.
    let (e2, nonce) = h.find_share(&second_job, START, f64::MAX);
    assert_eq!(
        h.submit("site.rig1", &second_job, &e2, nonce)["result"],
        json!(true)
    );
    let mut other = other;
    assert_eq!(other.take().len(), 1);
    assert!(h.pool.take().is_empty());

    // The new group's next job reaches it; the old group's does not.
    h.advance(Duration::from_secs(1));
    h.publish(true, hashgate_protocol::work::Target::MAX);
    assert!(
        h.try_recv().is_none(),
        "main's jobs no longer reach a miner of second"
    );
    let next = h.publish_for_group(1, &other, false).id.to_string();
    assert_eq!(h.recv()["params"][0], json!(next));
}

#[test]
fn a_routed_miner_starts_pinned_in_its_group() {
    let mut h = Harness::with_split(&config(), two_groups());
    let other = FakePool::named("other", 2, 64);
    h.publish(true, hashgate_protocol::work::Target::MAX);
    let second_job = h.publish_for_group(1, &other, true).id.to_string();
    h.setup("acme.rig9");
    let stats = h.registry.live_miners().pop().expect("listed").1;
    assert_eq!((stats.group(), stats.home()), (1, Some(1)));
    assert_eq!(h.miner.job.as_deref(), Some(second_job.as_str()));
}
