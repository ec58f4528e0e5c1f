//! Connections that never authorize, held open to keep real miners out.

use std::net::Ipv4Addr;
use std::num::NonZeroUsize;
use std::time::Duration;

use crate::support::downstream::*;
use serde_json::json;
use tokio::net::TcpStream;

/// Opens `count` connections from 127.0.0.1 that never say a word; returns those the
/// proxy kept (the others it closed at once).
async fn hold_silent(addr: std::net::SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..count {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // A refused connection is closed by the proxy: reading it ends at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut kept = Vec::new();
    for stream in held {
        let mut byte = [0u8; 1];
        match stream.try_read(&mut byte) {
            Ok(0) => {}
            _ => kept.push(stream),
        }
    }
    kept
}

#[tokio::test]
async fn one_host_holding_unauthorized_connections_cannot_keep_miners_out() {
    let mut cfg = config();
    cfg.proxy.max_connections = NonZeroUsize::new(40).expect("non-zero");
    cfg.proxy.max_unauthorized_per_source = NonZeroUsize::new(10).expect("non-zero");
    cfg.proxy.setup_timeout = Duration::from_secs(30);
    let h = Harness::start(cfg).await;
    let kept = hold_silent(h.addr, 50).await;
    assert_eq!(kept.len(), 10, "one source holds at most its share");

    // A miner on another host still gets in and mines.
    let mut m = Miner::connect_from(h.addr, Ipv4Addr::new(127, 0, 0, 2)).await;
    let setup = m.setup("rig1", false).await;
    assert!(!setup.extranonce1.is_empty());
    let answer = m.call("mining.extranonce.subscribe", json!([])).await;
    assert_eq!(answer["result"], json!(true));
    drop(kept);
}

#[tokio::test]
async fn unauthorized_connections_have_a_total_budget_below_the_cap() {
    let mut cfg = config();
    cfg.proxy.max_connections = NonZeroUsize::new(40).expect("non-zero");
    cfg.proxy.max_unauthorized = NonZeroUsize::new(8).expect("non-zero");
    cfg.proxy.setup_timeout = Duration::from_secs(30);
    let h = Harness::start(cfg).await;
    // Authorized miners are not counted against the budget.
    let mut miners = Vec::new();
    for i in 0..12u8 {
        let mut m = Miner::connect_from(h.addr, Ipv4Addr::new(127, 0, 1, i + 1)).await;
        m.setup(&format!("rig{i}"), false).await;
        miners.push(m);
    }
    let kept = hold_silent(h.addr, 20).await;
    assert_eq!(
        kept.len(),
        8,
        "unauthorized connections stop at their budget"
    );
    assert_eq!(h.counters.open(), 12 + 8);
}
