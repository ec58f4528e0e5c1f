//! Limits of the accept loop and sessions: deadlines, line cap, connection cap, slow
//! readers and shutdown.

use std::num::NonZeroUsize;
use std::time::Duration;

use crate::support::downstream::*;
use hashgate_protocol::work::Target;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_miner_that_never_completes_setup_is_dropped_at_the_deadline() {
    let mut cfg = config();
    cfg.proxy.setup_timeout = Duration::from_secs(3);
    let h = Harness::start(cfg).await;
    let start = Instant::now();
    let mut silent = Miner::connect(h.addr).await;
    let mut half = Miner::connect(h.addr).await;
    half.call("mining.subscribe", json!([])).await;
    assert!(silent.until_closed().await.is_empty());
    assert!(half.until_closed().await.is_empty());
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    ended(&h, "setup_timeout", 2).await;
}

/// Waits until `count` sessions have ended for `reason` (the counter is bumped right after
/// the socket closes).
async fn ended(h: &Harness, reason: &str, count: u64) {
    let wait = async {
        while h.counters.ended(reason) < count {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("{count} sessions ended for {reason}"));
}

#[tokio::test(start_paused = true)]
async fn an_authorized_miner_silent_for_the_idle_timeout_is_dropped() {
    let mut cfg = config();
    cfg.proxy.setup_timeout = Duration::from_secs(3);
    cfg.proxy.idle_timeout = Duration::from_secs(60);
    let h = Harness::start(cfg).await;
    let mut m = Miner::connect(h.addr).await;
    m.setup("rig1", false).await;
    let start = Instant::now();
    // Past the setup deadline it is still there while it keeps talking.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let a = m.call("mining.extranonce.subscribe", json!([])).await;
    assert_eq!(a["result"], json!(true));
    let line = m.try_recv_within(Duration::from_secs(600)).await;
    assert!(line.is_none(), "closed without a word: {line:?}");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(90) && waited < Duration::from_secs(92),
        "idle since the last line at 30 s: {waited:?}"
    );
    ended(&h, "idle_timeout", 1).await;
    assert_eq!(h.registry.miner_count(), 0);
}

#[tokio::test]
async fn a_line_over_the_cap_disconnects() {
    let h = Harness::start(config()).await;
    let mut m = Miner::connect(h.addr).await;
    m.call("mining.subscribe", json!([])).await;
    let long = format!(
        r#"{{"id":1,"method":"mining.authorize","params":["{}"]}}"#,
        "w".repeat(70 * 1024)
    );
    m.send_raw(&long).await;
    assert!(m.until_closed().await.is_empty());
    ended(&h, "line_too_long", 1).await;
}

#[tokio::test]
async fn past_the_connection_cap_new_miners_are_refused_and_others_keep_working() {
    let mut cfg = config();
    cfg.proxy.max_connections = NonZeroUsize::new(2).expect("nonzero");
    let h = Harness::start(cfg).await;
    h.publish(true, Target::ZERO);
    let mut a = Miner::connect(h.addr).await;
    let mut b = Miner::connect(h.addr).await;
    let sa = a.setup("a", true).await;
    b.setup("b", true).await;

    let mut refused = Miner::connect(h.addr).await;
    assert!(refused.until_closed().await.is_empty());
    assert_eq!(h.counters.refused(), 1);
    assert_eq!(h.counters.accepted(), 2);
    assert_eq!(h.counters.open(), 2);

    let answer = a
        .submit(
            "a",
            sa.job_id.as_deref().unwrap_or_default(),
            "0000000000000001",
            1,
        )
        .await;
    assert_eq!(answer["result"], json!(true));

    // A departed miner frees its slot.
    drop(b);
    let mut c = None;
    for _ in 0..100 {
        let mut m = Miner::connect(h.addr).await;
        m.send("mining.subscribe", json!([])).await;
        if m.try_recv().await.is_some() {
            c = Some(m);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(c.is_some(), "a slot came free");
}

#[tokio::test]
async fn a_miner_that_never_reads_is_disconnected_when_its_queue_fills() {
    let mut cfg = config();
    cfg.proxy.outbound_queue = NonZeroUsize::new(8).expect("nonzero");
    let h = Harness::start(cfg).await;
    let socket = TcpSocket::new_v4().expect("socket");
    // A small receive window so the kernel buffers fill quickly.
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stream = socket.connect(h.addr).await.expect("connect");
    stream
        .write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
        .await
        .expect("subscribe");
    stream
        .write_all(b"{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"rig1\"]}\n")
        .await
        .expect("authorize");
    let registered = async {
        while h.registry.miner_count() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(WAIT, registered)
        .await
        .expect("authorized");

    // Keep asking, never read the answers.
    let chunk = "{\"id\":3,\"method\":\"mining.subscribe\",\"params\":[]}\n".repeat(1000);
    let spam = async {
        loop {
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), spam)
        .await
        .expect("the proxy hung up on the slow reader");
    ended(&h, "slow_consumer", 1).await;
    assert_eq!(h.registry.miner_count(), 0, "the session is gone");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_ends_every_session() {
    let h = Harness::start(config()).await;
    let mut a = Miner::connect(h.addr).await;
    let mut b = Miner::connect(h.addr).await;
    a.setup("a", false).await;
    b.call("mining.subscribe", json!([])).await;
    h.shutdown.cancel();
    assert!(a.until_closed().await.is_empty());
    assert!(b.until_closed().await.is_empty());
    let result = tokio::time::timeout(WAIT, h.task)
        .await
        .expect("run returns after shutdown")
        .expect("no panic");
    assert!(result.is_ok());
    assert_eq!(h.counters.ended("shutdown"), 2);
    assert_eq!(h.counters.open(), 0);
    assert!(tokio::net::TcpStream::connect(h.addr).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_subscribe_with_no_pool_by_the_deadline_is_answered_and_closed() {
    let mut cfg = config();
    cfg.proxy.setup_timeout = Duration::from_secs(3);
    let h = Harness::without_pool(cfg).await;
    let mut m = Miner::connect(h.addr).await;
    let start = Instant::now();
    let answer = m.call("mining.subscribe", json!([])).await;
    assert!(
        start.elapsed() >= Duration::from_secs(3),
        "waited for a pool"
    );
    assert_eq!(error_code(&answer), Some(20), "{answer}");
    assert!(m.until_closed().await.is_empty());
    ended(&h, "no_upstream", 1).await;
}
