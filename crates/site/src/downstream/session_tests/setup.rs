//! Setup order: what a miner is sent before and after subscribe and authorize, and a
//! session's ways out during setup.

use serde_json::{Value, json};

use super::super::end::SessionEnd;
use super::super::harness::{Harness, START, config};
use super::super::session::MAX_MALFORMED_IN_ROW;
use hashgate_protocol::work::Target;

#[test]
fn nothing_flows_before_authorize_then_the_difficulty_comes_right_before_the_job() {
    let mut h = Harness::new(&config());
    let job = h.publish(true, Target::ZERO);
    let sub = h.call("mining.subscribe", json!(["bmminer/2.0"]));
    let sid = sub["result"][0][0][1].as_str().expect("subscription id");
    assert_eq!(
        sub["result"][0],
        json!([["mining.set_difficulty", sid], ["mining.notify", sid]])
    );
    assert_eq!(
        sub["result"][1].as_str().map(str::len),
        Some(2),
        "1-byte prefix"
    );
    assert_eq!(sub["result"][2], json!(8));
    assert!(h.try_recv().is_none(), "no work before authorize");
    assert_eq!(h.registry.miner_count(), 0, "listed only once authorized");

    let auth = h.call("mining.authorize", json!(["acct.rig1", "x"]));
    assert_eq!(auth["result"], json!(true));
    let diff = h.recv();
    assert_eq!(diff["method"], json!("mining.set_difficulty"));
    assert_eq!(h.miner.difficulty, Some(START));
    let notify = h.recv();
    assert_eq!(notify["params"][0], json!(&*job.id));
    assert!(h.try_recv().is_none());

    let identity = h.snapshot().identity.expect("identity");
    assert_eq!(identity.worker, "acct.rig1");
    assert_eq!(identity.user_agent, "bmminer/2.0");
    assert_eq!(identity.prefix_hex, hex::encode(&h.miner.extranonce1));

    // A second subscribe is answered with the same prefix and changes nothing.
    let again = h.call("mining.subscribe", json!([]));
    assert_eq!(again["result"], sub["result"]);
}

#[test]
fn authorized_without_a_job_the_miner_gets_its_difficulty_and_then_the_first_job() {
    let mut h = Harness::new(&config());
    assert_eq!(h.setup("rig1"), None, "no job yet");
    assert_eq!(h.miner.difficulty, Some(START));
    let job = h.publish(false, Target::ZERO);
    assert_eq!(h.drain_methods(), ["mining.notify"]);
    assert_eq!(h.miner.job.as_deref(), Some(&*job.id));
}

#[test]
fn a_subscribe_before_any_pool_is_refused_and_closes() {
    let mut h = Harness::without_pool(&config());
    let sub = h.call("mining.subscribe", json!([]));
    assert_eq!(sub["result"], Value::Null);
    assert_eq!(sub["error"][0], json!(20), "{sub}");
    assert!(matches!(h.closed(), Some(SessionEnd::NoUpstream)));
}

#[test]
fn malformed_lines_are_answered_and_sixteen_in_a_row_close_the_session() {
    let mut h = Harness::new(&config());
    h.publish(true, Target::ZERO);
    h.setup("rig1");
    // Bad hex in a submit: answered with its id, counted as a malformed share.
    h.send_raw(
        r#"{"id":77,"method":"mining.submit","params":["rig1","1","zz","65000000","00000000"]}"#,
    );
    let a = h.recv();
    assert_eq!(
        (a["id"].clone(), a["error"][0].clone()),
        (json!(77), json!(20))
    );
    assert_eq!(h.snapshot().totals.rejected[8], 1, "one malformed share");
    // A good line resets the count ...
    let probe = h.call("mining.extranonce.subscribe", json!([]));
    assert_eq!(probe["result"], json!(true));
    for _ in 0..MAX_MALFORMED_IN_ROW - 1 {
        h.send_raw("{not json");
    }
    assert!(h.closed().is_none());
    let probe = h.call("mining.extranonce.subscribe", json!([]));
    assert_eq!(probe["result"], json!(true));
    // ... and only sixteen in a row end it.
    for _ in 0..MAX_MALFORMED_IN_ROW - 1 {
        h.send_raw("[1,2,3]");
    }
    assert!(h.closed().is_none());
    h.send_raw("[1,2,3]");
    assert!(matches!(
        h.closed(),
        Some(SessionEnd::TooManyMalformed { count: 16 })
    ));
}

#[test]
fn unknown_and_pool_side_methods_are_answered_not_disconnected() {
    let mut h = Harness::new(&config());
    let a = h.call("mining.frobnicate", json!([1]));
    assert_eq!(a["result"], Value::Null);
    assert_eq!(a["error"], json!([20, "Method not found", null]));
    let a = h.call("mining.notify", json!([]));
    assert_eq!(a["error"][0], json!(20), "{a}");
    assert!(h.closed().is_none());
}
