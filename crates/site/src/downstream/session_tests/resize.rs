//! A pool whose extranonce2 cannot carry the miners' sizes: miners that take
//! `mining.set_extranonce` move to a new prefix, the rest are sent away to reconnect.

use serde_json::json;

use super::super::end::SessionEnd;
use super::super::harness::{Harness, POOL_MASK, START, config, split};
use crate::hub::ChannelControl;
use hashgate_protocol::work::Target;

fn code(answer: &serde_json::Value) -> Option<i64> {
    answer["error"][0].as_i64()
}

#[test]
fn a_pool_with_a_smaller_extranonce2_moves_subscribers_with_set_extranonce() {
    let mut h = Harness::new(&config());
    let old = h.publish(true, Target::MAX).id.to_string();
    let yes = h.call("mining.extranonce.subscribe", json!([]));
    assert_eq!(yes["result"], json!(true));
    h.setup("rig1");
    assert_eq!(h.miner.extranonce2_size, 8);
    let (old_e2, old_nonce) = h.find_share(&old, START, f64::MAX);

    // A pool with a 4-byte extranonce2: a 1-byte prefix leaves the miners 3.
    let smaller = split(4, 100);
    assert!(h.hub.set_sizes(&smaller));
    h.pump();
    let set = h.recv();
    assert_eq!(set["method"], json!("mining.set_extranonce"), "{set}");
    assert_eq!(set["params"][1], json!(3));
    assert_eq!(h.miner.extranonce1.len(), 1);
    assert!(
        h.try_recv().is_none(),
        "the current job was built for the old sizes"
    );
    assert_eq!(
        h.snapshot().identity.map(|i| i.prefix_hex),
        Some(hex::encode(&h.miner.extranonce1)),
        "the listed prefix follows"
    );

    // Work on the old extranonce is void.
    assert_eq!(code(&h.submit("rig1", &old, &old_e2, old_nonce)), Some(21));

    let new = h
        .publish_job(smaller, true, Target::MAX, POOL_MASK)
        .id
        .to_string();
    assert_eq!(h.drain_methods(), ["mining.notify"]);
    assert_eq!(
        code(&h.submit("rig1", &new, &old_e2, old_nonce)),
        Some(20),
        "8 bytes"
    );
    let (e2, nonce) = h.find_share(&new, START, f64::MAX);
    assert_eq!(e2.len(), 3);
    assert_eq!(h.submit("rig1", &new, &e2, nonce)["result"], json!(true));
    let up = h.pool.take().pop().expect("forwarded");
    // No padding left: prefix ‖ extranonce2 fill the pool's 4 bytes.
    let mut expected = h.miner.extranonce1.clone();
    expected.extend_from_slice(&e2);
    assert_eq!(up.extranonce2.as_bytes(), expected.as_slice());
}

#[test]
fn subscribe_extranonce_through_configure_counts_too() {
    let mut h = Harness::new(&config());
    h.publish(true, Target::ZERO);
    let a = h.call("mining.configure", json!([["subscribe-extranonce"], {}]));
    assert_eq!(a["result"], json!({"subscribe-extranonce": true}));
    h.setup("rig1");
    h.hub.set_sizes(&split(4, 100));
    h.pump();
    assert_eq!(h.recv()["method"], json!("mining.set_extranonce"));
    assert!(h.closed().is_none());
}

#[test]
fn a_miner_that_cannot_take_set_extranonce_is_told_to_reconnect() {
    let mut h = Harness::new(&config());
    h.publish(true, Target::ZERO);
    h.setup("rig1");
    h.hub.set_sizes(&split(4, 100));
    h.pump();
    assert_eq!(h.drain_methods(), ["client.reconnect"]);
    assert!(matches!(h.closed(), Some(SessionEnd::Reconnected)));
}

#[test]
fn a_miner_that_missed_control_messages_is_told_to_reconnect() {
    let mut h = Harness::new(&config());
    h.publish(true, Target::ZERO);
    h.call("mining.extranonce.subscribe", json!([]));
    h.setup("rig1");
    // More than the channel keeps for a miner that does not read them in time.
    let channel = h.hub.channels().into_iter().next().expect("channel 0");
    for _ in 0..17 {
        channel.broadcast(ChannelControl::VersionMask(POOL_MASK));
    }
    h.pump();
    assert_eq!(h.drain_methods(), ["client.reconnect"]);
    assert!(matches!(h.closed(), Some(SessionEnd::Reconnected)));
}
