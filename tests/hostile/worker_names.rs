//! Worker names built to pass for another miner in logs and on dashboards.

use crate::support::downstream::*;
use serde_json::json;

#[tokio::test]
async fn invisible_and_bidi_characters_in_a_worker_name_are_refused() {
    let h = Harness::start(config()).await;
    let mut m = Miner::connect(h.addr).await;
    m.call("mining.subscribe", json!(["test-miner/1.0"])).await;
    for spoof in ["acct.rack1\u{200B}", "acct.rack\u{202E}1kcar"] {
        let answer = m.call("mining.authorize", json!([spoof, "x"])).await;
        assert_ne!(
            answer["result"],
            json!(true),
            "{spoof:?} accepted: {answer}"
        );
        let text = answer["error"].to_string();
        assert!(text.contains("invisible"), "{spoof:?}: {answer}");
    }
    // The same miner may still authorize under an honest name.
    let answer = m.call("mining.authorize", json!(["acct.rack1", "x"])).await;
    assert_eq!(answer["result"], json!(true), "{answer}");
}
