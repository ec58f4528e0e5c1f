//! Miner sessions over real TCP, as smoke tests of the wire: setup order, a share
//! forwarded, malformed lines, captured cpuminer lines, and the connection waiting for the
//! first pool. The session's rules (reject codes, duplicates, stale jobs, difficulty,
//! resize, version rolling) are tested in simulated time through the in-memory harness in
//! `crates/site/src/downstream/session_tests/`.

use std::time::Duration;

use crate::support::downstream::*;
use hashgate_protocol::work::Target;
use serde_json::{Value, json};

const E2: &str = "0102030405060708";

#[tokio::test]
async fn subscribe_authorize_then_difficulty_then_notify() {
    let h = Harness::start(config()).await;
    let job = h.publish(true, Target::ZERO);
    let mut m = Miner::connect(h.addr).await;

    let sub = m.call("mining.subscribe", json!(["bmminer/2.0"])).await;
    let result = &sub["result"];
    let sid = result[0][0][1].as_str().expect("subscription id");
    assert_eq!(
        result[0],
        json!([["mining.set_difficulty", sid], ["mining.notify", sid]])
    );
    assert_eq!(result[1].as_str().map(str::len), Some(2), "1-byte prefix");
    assert_eq!(result[2], json!(8));
    assert_eq!(sub["error"], Value::Null);

    // Nothing is sent before authorize: the next line is the authorize answer.
    let auth = m.call("mining.authorize", json!(["acct.rig1", "x"])).await;
    assert_eq!(auth["result"], json!(true));
    let diff = m.recv().await;
    assert_eq!(diff["method"], json!("mining.set_difficulty"));
    assert_eq!(diff["params"], json!([EASY]));
    let notify = m.recv().await;
    assert_eq!(notify["method"], json!("mining.notify"));
    assert_eq!(notify["params"][0], json!(&*job.id));
    let coinb1 = notify["params"][2].as_str().expect("coinb1");
    assert!(
        coinb1.ends_with("aabbccdd00000000000000"),
        "pool extranonce1 and padding folded in: {coinb1}"
    );

    // The miner is listed under its worker name with its prefix.
    let miners = h.registry.miners(std::time::Instant::now());
    assert_eq!(miners.len(), 1);
    let identity = miners[0].1.identity.clone().expect("identity");
    assert_eq!(identity.worker, "acct.rig1");
    assert_eq!(identity.user_agent, "bmminer/2.0");
    assert_eq!(identity.prefix_hex, result[1].as_str().unwrap_or_default());
}

#[tokio::test]
async fn subscribe_waits_for_the_first_pool() {
    let h = Harness::without_pool(config()).await;
    let mut m = Miner::connect(h.addr).await;
    let id = m.send("mining.subscribe", json!([])).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.hub.set_sizes(&h.plan);
    let sub = m.recv().await;
    assert_eq!(sub["id"], json!(id));
    assert_eq!(sub["result"][2], json!(8), "{sub}");
}

#[tokio::test]
async fn a_valid_share_is_accepted_and_forwarded_with_the_pool_extranonce2() {
    let mut h = Harness::start(config()).await;
    h.publish(true, Target::MAX);
    let mut m = Miner::connect(h.addr).await;
    let s = m.setup("acct.rig1", true).await;
    let job = s.job_id.expect("job");

    let answer = m.submit("acct.rig1", &job, E2, 42).await;
    assert_eq!(answer["result"], json!(true), "{answer}");
    assert_eq!(answer["error"], Value::Null);

    let up = tokio::time::timeout(WAIT, h.submits.recv())
        .await
        .expect("forwarded in time")
        .expect("a share");
    let expected = format!("00000000000000{}{E2}", s.extranonce1);
    assert_eq!(hex::encode(up.extranonce2.as_bytes()), expected);
    // The session names the share for the upstream identity (the account by default).
    assert_eq!(&*up.worker, "site");
    assert_eq!(&*up.pool_job_id, "pool-job-7");
    assert_eq!((up.ntime, up.nonce), (NTIME, 42));
    assert_eq!(
        up.miner.snapshot(std::time::Instant::now()).totals.accepted,
        1
    );
}

#[tokio::test]
async fn malformed_lines_are_answered_counted_and_others_unaffected() {
    let h = Harness::start(config()).await;
    h.publish(true, Target::ZERO);
    let mut bad = Miner::connect(h.addr).await;
    let mut good = Miner::connect(h.addr).await;
    let s = good.setup("rig2", true).await;
    let bs = bad.setup("rig1", true).await;

    // Bad hex in a submit: answered with the id, counted as a malformed share.
    bad.send_raw(
        r#"{"id":77,"method":"mining.submit","params":["rig1","1","zz","65000000","00000000"]}"#,
    )
    .await;
    let a = bad.recv().await;
    assert_eq!(a["id"], json!(77));
    assert_eq!(error_code(&a), Some(20), "{a}");
    // Not JSON at all: no id to answer, the connection stays.
    bad.send_raw("{not json").await;
    let a = bad
        .submit("rig1", bs.job_id.as_deref().unwrap_or_default(), E2, 5)
        .await;
    assert_eq!(a["result"], json!(true), "still served: {a}");

    let snaps = h.registry.miners(std::time::Instant::now());
    let bad_snap = snaps
        .iter()
        .find(|(_, s)| s.identity.as_ref().is_some_and(|i| i.worker == "rig1"))
        .expect("bad miner listed");
    assert_eq!(bad_snap.1.totals.rejected[8], 1, "one malformed share");

    // Too many malformed lines in a row: disconnected.
    for _ in 0..hashgate_site::downstream::MAX_MALFORMED_IN_ROW {
        bad.send_raw("[1,2,3]").await;
    }
    bad.until_closed().await;
    let closed = async {
        while h.counters.ended("malformed") == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(WAIT, closed)
        .await
        .expect("closed for malformed lines");

    // The other miner did not notice.
    let a = good
        .submit("rig2", s.job_id.as_deref().unwrap_or_default(), E2, 6)
        .await;
    assert_eq!(a["result"], json!(true), "{a}");
}

#[tokio::test]
async fn cpuminer_lines_as_captured_are_served() {
    let h = Harness::start(config()).await;
    let job = h.publish(true, Target::ZERO);
    let mut m = Miner::connect(h.addr).await;
    m.send_raw(r#"{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}"#)
        .await;
    let sub = m.recv().await;
    assert_eq!(sub["id"], json!(1));
    assert_eq!(sub["result"][2], json!(8));
    m.send_raw(r#"{"id": 2, "method": "mining.authorize", "params": ["labuser.worker1", "x"]}"#)
        .await;
    assert_eq!(m.recv().await["result"], json!(true));
    assert_eq!(m.recv().await["method"], json!("mining.set_difficulty"));
    assert_eq!(m.recv().await["method"], json!("mining.notify"));
    for nonce in ["e35e4300", "0bfa1a01"] {
        m.send_raw(&format!(
            r#"{{"method": "mining.submit", "params": ["labuser.worker1", "{}", "0000000000000000", "65000000", "{nonce}"], "id":4}}"#,
            job.id
        ))
        .await;
        let a = m.recv().await;
        assert_eq!(
            (a["id"].clone(), a["result"].clone()),
            (json!(4), json!(true)),
            "{a}"
        );
    }
}
