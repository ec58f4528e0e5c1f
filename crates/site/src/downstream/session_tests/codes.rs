//! Every refusal a miner can get for a share, with its Stratum code, in one session (the
//! sequence `tests/proxy/downstream_session.rs` once ran over TCP).

use serde_json::json;

use super::super::harness::{Harness, NTIME, config};
use hashgate_protocol::work::Target;

fn code(answer: &serde_json::Value) -> Option<i64> {
    answer["error"][0].as_i64()
}

#[test]
fn rejects_carry_stratum_codes() {
    let mut h = Harness::new(&config());
    let first = h.publish(true, Target::ZERO);

    // 25: not subscribed, for a submit and for an authorize.
    let a = h.submit("rig1", &first.id, &[1; 8], 1);
    assert_eq!((a["result"].clone(), code(&a)), (json!(false), Some(25)));
    let a = h.call("mining.authorize", json!(["rig1", "x"]));
    assert_eq!((a["result"].clone(), code(&a)), (json!(false), Some(25)));

    let configure = h.call(
        "mining.configure",
        json!([["version-rolling"], {"version-rolling.mask": "ffffffff"}]),
    );
    assert_eq!(
        configure["result"],
        json!({"version-rolling": true, "version-rolling.mask": "1fffe000"})
    );
    // 24: subscribed, nobody authorized yet.
    h.call("mining.subscribe", json!([]));
    let a = h.submit("rig1", &first.id, &[1; 8], 1);
    assert_eq!(code(&a), Some(24), "{a}");
    h.call("mining.authorize", json!(["rig1", "x"]));
    h.drain();
    let job = first.id.to_string();

    // 24: a worker never authorized on this connection.
    let a = h.submit("other", &job, &[1; 8], 1);
    assert_eq!(code(&a), Some(24), "{a}");
    // 21: unknown job.
    let a = h.submit("rig1", "nope", &[1; 8], 1);
    assert_eq!(code(&a), Some(21), "{a}");
    // 20: wrong extranonce2 size.
    let a = h.submit("rig1", &job, &[1, 2], 1);
    assert_eq!(code(&a), Some(20), "{a}");
    // 20: version bits outside the mask.
    let a = h.submit_rolled("rig1", &job, &[1; 8], 7, Some(0x0000_0001));
    assert_eq!(
        (code(&a), a["error"][1].as_str()),
        (Some(20), Some("Invalid version bits"))
    );
    // 20: ntime past the window.
    let late = format!("{:08x}", NTIME + 7200);
    let a = h.call(
        "mining.submit",
        json!(["rig1", job, "0101010101010101", late, "00000007"]),
    );
    assert_eq!(
        (code(&a), a["error"][1].as_str()),
        (Some(20), Some("Ntime out of range"))
    );
    // Inside the mask is fine.
    let (e2, nonce) = h.find_rolled_share(
        &job,
        h.miner.difficulty.unwrap_or(1.0),
        f64::MAX,
        Some(0x2000),
    );
    let a = h.submit_rolled("rig1", &job, &e2, nonce, Some(0x2000));
    assert_eq!(a["result"], json!(true), "{a}");
    // 22: the same share twice.
    let (e2, nonce) = h.find_share(&job, h.miner.difficulty.unwrap_or(1.0), f64::MAX);
    let a = h.submit("rig1", &job, &e2, nonce);
    assert_eq!(a["result"], json!(true), "{a}");
    let a = h.submit("rig1", &job, &e2, nonce);
    assert_eq!(code(&a), Some(22), "{a}");

    // 21 after clean_jobs: the old job is void.
    let newer = h.publish(true, Target::ZERO);
    assert_eq!(h.recv()["params"][0], json!(&*newer.id));
    let (e2, nonce) = h.find_share(&job, h.miner.difficulty.unwrap_or(1.0), f64::MAX);
    let a = h.submit("rig1", &job, &e2, nonce);
    assert_eq!(code(&a), Some(21), "{a}");
    let a = h.submit("rig1", &newer.id, &e2, nonce);
    assert_eq!(a["result"], json!(true), "{a}");

    let totals = h.snapshot().totals;
    assert_eq!(totals.accepted, 3);
    // 25 ×1 (the refused authorize is no share), 24 ×2, 21 ×2, 20 ×3, 22 ×1.
    assert_eq!(totals.rejected_total(), 9);
    assert_eq!(totals.rejected, [2, 1, 0, 2, 1, 1, 1, 1, 0]);
}

#[test]
fn a_low_difficulty_share_is_23() {
    let mut h = Harness::new(&config());
    h.publish(true, Target::ZERO);
    h.send_raw(r#"{"id":null,"method":"mining.suggest_difficulty","params":[1000000000]}"#);
    assert!(h.try_recv().is_none(), "a notification is not answered");
    let job = h.setup("rig1").expect("job");
    assert_eq!(h.miner.difficulty, Some(1e9), "suggestion honoured");
    let (e2, nonce) = h.find_share(&job, 0.0, 1e9);
    let a = h.submit("rig1", &job, &e2, nonce);
    assert_eq!(
        (code(&a), a["error"][1].as_str()),
        (Some(23), Some("Low difficulty share"))
    );
    assert_eq!(h.snapshot().totals.rejected[2], 1);
}

#[test]
fn several_workers_may_authorize_on_one_connection() {
    let mut h = Harness::new(&config());
    h.publish(true, Target::MAX);
    let job = h.setup("acct.a").expect("job");
    let auth = h.call("mining.authorize", json!(["acct.b", "x"]));
    assert_eq!(auth["result"], json!(true));
    assert!(h.try_recv().is_none(), "no second difficulty or job");
    let d = h.miner.difficulty.unwrap_or(1.0);
    for worker in ["acct.b", "acct.a"] {
        let (e2, nonce) = h.find_share(&job, d, f64::MAX);
        assert_eq!(h.submit(worker, &job, &e2, nonce)["result"], json!(true));
    }
    let upstream: Vec<_> = h
        .pool
        .take()
        .iter()
        .map(|s| s.worker.rig().to_owned())
        .collect();
    assert_eq!(upstream, ["b", "a"], "each as its own worker");
}
