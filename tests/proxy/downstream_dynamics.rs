//! Difficulty and channel changes reaching miners: vardiff, retarget grace, resize and
//! version-mask changes.

use std::time::Duration;

use crate::support::downstream::*;
use hashgate_protocol::extranonce::{SplitLimits, choose_split};
use hashgate_protocol::work::Target;
use hashgate_site::hub::ChannelControl;
use serde_json::{Value, json};

const E2: &str = "0102030405060708";

#[tokio::test]
async fn a_suggested_difficulty_is_sent_right_before_the_next_notify() {
    let h = Harness::start(config()).await;
    h.publish(true, Target::ZERO);
    let mut m = Miner::connect(h.addr).await;
    m.setup("rig1", true).await;
    m.send_raw(r#"{"id":null,"method":"mining.suggest_difficulty","params":[64]}"#)
        .await;
    // Nothing goes out until a job does.
    let probe = m.call("mining.extranonce.subscribe", json!([])).await;
    assert_eq!(probe["result"], json!(true));
    let job = h.publish(false, Target::ZERO);
    let diff = m.recv().await;
    assert_eq!(diff["method"], json!("mining.set_difficulty"));
    assert_eq!(diff["params"], json!([64]));
    let notify = m.recv().await;
    assert_eq!(notify["params"][0], json!(&*job.id));
    let snap = &h.registry.miners(std::time::Instant::now())[0].1;
    assert_eq!(snap.difficulty, 64.0);
}

#[tokio::test]
async fn vardiff_raises_a_fast_miner_with_the_next_job() {
    let h = Harness::start(config()).await;
    h.publish(true, Target::ZERO);
    let mut m = Miner::connect(h.addr).await;
    let s = m.setup("rig1", true).await;
    let job = s.job_id.expect("job");
    // Far more shares than one per 5 s: vardiff must raise the difficulty.
    for nonce in 0..60 {
        let a = m.submit("rig1", &job, E2, nonce).await;
        assert_eq!(a["result"], json!(true), "{a}");
    }
    let next = h.publish(false, Target::ZERO);
    let diff = m.recv().await;
    assert_eq!(diff["method"], json!("mining.set_difficulty"), "{diff}");
    let raised = diff["params"][0].as_f64().expect("difficulty");
    assert!(raised > EASY * 2.0, "raised from {EASY} to {raised}");
    let notify = m.recv().await;
    assert_eq!(notify["params"][0], json!(&*next.id));
}

#[tokio::test(start_paused = true)]
async fn a_silent_new_miner_is_lowered_on_the_timer_without_a_new_job() {
    let mut cfg = config();
    cfg.proxy.initial_difficulty = 1.0;
    cfg.proxy.idle_timeout = Duration::from_secs(3600);
    let h = Harness::start(cfg).await;
    let job = h.publish(true, Target::ZERO);
    let mut m = Miner::connect(h.addr).await;
    m.setup("rig1", true).await;
    // No share for one target interval (5 s): halved, and the job is re-sent with it under
    // a new id (miners like cpuminer restart work, at the new difficulty, only then).
    let diff = m
        .try_recv_within(Duration::from_secs(120))
        .await
        .expect("a retarget");
    assert_eq!(diff["method"], json!("mining.set_difficulty"), "{diff}");
    assert_eq!(diff["params"], json!([0.5]));
    let notify = m.recv().await;
    assert_eq!(notify["params"][0], json!(format!("{}.1", job.id)));
    assert_eq!(
        notify["params"][8],
        json!(false),
        "same work: nothing to drop"
    );
}

#[tokio::test(start_paused = true)]
async fn shares_at_the_previous_difficulty_count_for_a_short_grace() {
    let h = Harness::start(config()).await;
    h.publish(true, Target::ZERO);
    let mut m = Miner::connect(h.addr).await;
    let s = m.setup("rig1", true).await;
    let old = s.job_id.expect("job");
    let a = m
        .call("mining.suggest_difficulty", json!([1_000_000_000]))
        .await;
    assert_eq!(a["result"], json!(true));
    let new = h.publish(false, Target::ZERO);
    assert_eq!(m.recv().await["params"], json!([1_000_000_000]));
    assert_eq!(m.recv().await["params"][0], json!(&*new.id));

    // In flight at the old difficulty: still counted, at the old difficulty.
    let a = m.submit("rig1", &old, E2, 1).await;
    assert_eq!(a["result"], json!(true), "{a}");
    let snap = &h.registry.miners(std::time::Instant::now())[0].1;
    assert_eq!(snap.totals.accepted_difficulty, EASY);

    tokio::time::sleep(hashgate_site::downstream::RETARGET_GRACE + Duration::from_secs(1)).await;
    // Past the grace, a job sent at the new difficulty wants the new difficulty...
    let a = m.submit("rig1", &new.id, E2, 2).await;
    assert_eq!(error_code(&a), Some(23), "grace is over: {a}");
    // ...and the job sent at the old one still takes work at it, as long as it is kept
    // (a miner may not have left its work: cpuminer keeps it until the pool's next job).
    let a = m.submit("rig1", &old, E2, 3).await;
    assert_eq!(a["result"], json!(true), "{a}");
}

#[tokio::test]
async fn resize_moves_extranonce_subscribers_and_reconnects_the_rest() {
    let mut h = Harness::start(config()).await;
    h.publish(true, Target::MAX);
    let mut a = Miner::connect(h.addr).await;
    let mut b = Miner::connect(h.addr).await;
    let yes = a.call("mining.extranonce.subscribe", json!([])).await;
    assert_eq!(yes["result"], json!(true));
    a.setup("a", true).await;
    b.setup("b", true).await;

    // A pool with room for more miners per connection: 2-byte prefixes.
    let wider = choose_split(16, 1000, SplitLimits::default()).expect("split");
    assert!(h.hub.set_sizes(&wider));

    let set = a.recv().await;
    assert_eq!(set["method"], json!("mining.set_extranonce"), "{set}");
    let prefix = set["params"][0].as_str().expect("prefix").to_owned();
    assert_eq!(prefix.len(), 4);
    assert_eq!(set["params"][1], json!(8));

    let reconnect = b.recv().await;
    assert_eq!(
        reconnect["method"],
        json!("client.reconnect"),
        "{reconnect}"
    );
    assert!(b.until_closed().await.is_empty());

    // The next job is built for the new sizes; a share on it carries the new prefix.
    let job = h.publish_job(wider, true, Target::MAX, 0x1fff_e000);
    let notify = a.recv().await;
    assert_eq!(notify["params"][0], json!(&*job.id));
    let answer = a.submit("a", &job.id, E2, 5).await;
    assert_eq!(answer["result"], json!(true), "{answer}");
    // Skip shares forwarded before the resize.
    let mut up = None;
    while let Ok(Some(s)) = tokio::time::timeout(WAIT, h.submits.recv()).await {
        if s.nonce == 5 {
            up = Some(s);
            break;
        }
    }
    let up = up.expect("forwarded");
    assert_eq!(
        hex::encode(up.extranonce2.as_bytes()),
        format!("000000000000{prefix}{E2}")
    );
    assert_eq!(h.counters.ended("reconnected"), 1);
    let snaps = h.registry.miners(std::time::Instant::now());
    let identity = snaps
        .iter()
        .find_map(|(_, s)| s.identity.clone().filter(|i| i.worker == "a"))
        .expect("miner a listed");
    assert_eq!(
        identity.prefix_hex, prefix,
        "identity follows the new prefix"
    );
}

#[tokio::test]
async fn a_new_pool_mask_is_forwarded_intersected_to_rolling_miners() {
    let h = Harness::start(config()).await;
    let job = h.publish(true, Target::ZERO);
    let mut rolling = Miner::connect(h.addr).await;
    let mut plain = Miner::connect(h.addr).await;
    rolling
        .call(
            "mining.configure",
            json!([["version-rolling"], {"version-rolling.mask": "1fffffff"}]),
        )
        .await;
    rolling.setup("r", true).await;
    plain.setup("p", true).await;

    let channel = h.hub.channels().into_iter().next().expect("channel");
    channel.broadcast(ChannelControl::VersionMask(0x00ff_e000));
    let set = rolling.recv().await;
    assert_eq!(set["method"], json!("mining.set_version_mask"));
    assert_eq!(set["params"], json!(["00ffe000"]));
    // The miner that never configured rolling hears nothing about it.
    let probe = plain.call("mining.extranonce.subscribe", json!([])).await;
    assert_eq!(probe["result"], json!(true));
    assert_eq!(probe["method"], Value::Null);
    let _ = job;
}
