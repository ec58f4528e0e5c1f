//! A miner that makes hashgate store more than a miner's worth of memory.

use std::time::Instant;

use crate::support::downstream::*;
use serde_json::json;

#[tokio::test]
async fn a_huge_user_agent_is_kept_short() {
    let h = Harness::start(config()).await;
    let mut m = Miner::connect(h.addr).await;
    let agent = format!("bmminer/{}", "x".repeat(60_000));
    let sub = m.call("mining.subscribe", json!([agent])).await;
    assert_eq!(sub["error"], json!(null), "{sub}");
    let auth = m.call("mining.authorize", json!(["acct.rig1", "x"])).await;
    assert_eq!(auth["result"], json!(true), "{auth}");
    let kept = h
        .registry
        .miners(Instant::now())
        .into_iter()
        .find_map(|(_, s)| s.identity)
        .expect("the miner's identity is published")
        .user_agent;
    assert!(kept.starts_with("bmminer/xxx"), "{kept}");
    assert!(kept.len() <= 128, "{} bytes kept", kept.len());
}
