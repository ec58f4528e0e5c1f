//! Version rolling (BIP310): the grant is what the miner asked ∩ the proxy's bits ∩ the
//! pool's, follows the pool, and bounds the bits a share may roll.

use serde_json::json;

use super::super::harness::{Harness, POOL_MASK, START, config};
use crate::hub::ChannelControl;
use hashgate_protocol::work::Target;

fn code(answer: &serde_json::Value) -> Option<i64> {
    answer["error"][0].as_i64()
}

#[test]
fn the_grant_is_the_intersection_and_bits_outside_it_are_20() {
    let mut h = Harness::new(&config());
    let job = h
        .publish_job(h.plan, true, Target::MAX, 0x00ff_e000)
        .id
        .to_string();
    let a = h.call(
        "mining.configure",
        json!([["version-rolling"], {"version-rolling.mask": "ffffffff"}]),
    );
    assert_eq!(
        a["result"]["version-rolling.mask"],
        json!("00ffe000"),
        "{a}"
    );
    h.setup("rig1");
    // Inside the proxy's bits, outside the pool's.
    let (e2, nonce) = h.find_rolled_share(&job, START, f64::MAX, Some(0x1000_0000));
    let a = h.submit_rolled("rig1", &job, &e2, nonce, Some(0x1000_0000));
    assert_eq!(
        (code(&a), a["error"][1].as_str()),
        (Some(20), Some("Invalid version bits"))
    );
    let (e2, nonce) = h.find_rolled_share(&job, START, f64::MAX, Some(0x0000_2000));
    let a = h.submit_rolled("rig1", &job, &e2, nonce, Some(0x0000_2000));
    assert_eq!(a["result"], json!(true), "{a}");
    let up = h.pool.take().pop().expect("forwarded");
    assert_eq!(up.version_bits, Some(0x2000));
}

#[test]
fn a_pool_mask_change_narrows_the_grant_of_rolling_miners_only() {
    let mut rolling = Harness::new(&config());
    let job = rolling.publish(true, Target::ZERO).id.to_string();
    rolling.call(
        "mining.configure",
        json!([["version-rolling"], {"version-rolling.mask": "1fffffff"}]),
    );
    rolling.setup("r");
    assert_eq!(rolling.miner.version_mask, Some(POOL_MASK));
    let (e2, nonce) = rolling.find_rolled_share(&job, START, f64::MAX, Some(0x1000_0000));
    let a = rolling.submit_rolled("r", &job, &e2, nonce, Some(0x1000_0000));
    assert_eq!(a["result"], json!(true), "granted at first: {a}");

    rolling.broadcast(ChannelControl::VersionMask(0x00ff_e000));
    let set = rolling.recv();
    assert_eq!(set["method"], json!("mining.set_version_mask"));
    assert_eq!(set["params"], json!(["00ffe000"]));
    let (e2, nonce) = rolling.find_rolled_share(&job, START, f64::MAX, Some(0x1000_0000));
    let a = rolling.submit_rolled("r", &job, &e2, nonce, Some(0x1000_0000));
    assert_eq!(code(&a), Some(20), "no longer granted: {a}");
    // The same mask again is no news.
    rolling.broadcast(ChannelControl::VersionMask(0x00ff_e000));
    assert!(rolling.try_recv().is_none());

    // A miner that never configured rolling hears nothing, and may roll nothing.
    let mut plain = Harness::new(&config());
    let job = plain.publish(true, Target::ZERO).id.to_string();
    plain.setup("p");
    plain.broadcast(ChannelControl::VersionMask(0x00ff_e000));
    assert!(plain.try_recv().is_none());
    let (e2, nonce) = plain.find_rolled_share(&job, START, f64::MAX, Some(0x2000));
    assert_eq!(
        code(&plain.submit_rolled("p", &job, &e2, nonce, Some(0x2000))),
        Some(20)
    );
}
