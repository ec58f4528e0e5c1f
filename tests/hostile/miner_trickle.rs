//! A miner that keeps a connection open by trickling bytes that never finish a line.

use std::time::Duration;

use crate::support::downstream::*;
use tokio::time::Instant;

#[tokio::test]
async fn a_byte_every_few_seconds_does_not_keep_an_authorized_connection_alive() {
    let mut cfg = config();
    cfg.proxy.idle_timeout = Duration::from_secs(2);
    let h = Harness::start(cfg).await;
    let mut m = Miner::connect(h.addr).await;
    m.setup("rig1", false).await;
    let start = Instant::now();
    // Half a line, one byte every 250 ms, for far longer than the idle timeout: only
    // complete lines count as hearing from the miner. (Real time: under a paused clock the
    // runtime may advance past a write before the proxy has read it.)
    let mut closed_after = None;
    for (i, byte) in br#"{"id":9,"method":"mining.extranonce.subscribe","params":[]"#
        .iter()
        .cycle()
        .take(40)
        .enumerate()
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let open = m.send_bytes(&[*byte]).await;
        if !open || h.counters.ended("idle_timeout") > 0 {
            closed_after = Some((i, start.elapsed()));
            break;
        }
    }
    let (_, waited) = closed_after.expect("the trickling miner was never dropped");
    let reasons: Vec<(&str, u64)> = ["idle_timeout", "setup_timeout", "malformed", "io"]
        .into_iter()
        .map(|r| (r, h.counters.ended(r)))
        .collect();
    assert_eq!(h.counters.ended("idle_timeout"), 1, "ended as {reasons:?}");
    assert!(
        waited >= Duration::from_secs(2) && waited <= Duration::from_secs(4),
        "dropped {waited:?} after its last complete line, idle timeout 2 s"
    );
}
