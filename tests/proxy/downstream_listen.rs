//! The listener's several `SO_REUSEPORT` sockets: every one accepts, the connection cap
//! holds across them, and a second proxy cannot bind beside a running one.

use std::num::NonZeroUsize;
use std::sync::Arc;

use crate::support::downstream::*;
use hashgate_site::config::Config;
use hashgate_site::downstream::{Listener, ListenerCounters};
use hashgate_site::hub::Hub;
use hashgate_site::stats::Registry;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// A running listener with `sockets` sockets and the extranonce sizes known.
struct Running {
    addr: std::net::SocketAddr,
    counters: Arc<ListenerCounters>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn start(config: &Config, sockets: usize) -> Running {
    let (hub, _channels) = Hub::new(4);
    hub.set_sizes(&plan());
    let shutdown = CancellationToken::new();
    let listener = Listener::bind_sockets(config, hub, Registry::new(), shutdown.clone(), sockets)
        .expect("bind 127.0.0.1:0");
    assert_eq!(listener.sockets(), sockets);
    Running {
        addr: listener.local_addr().expect("addr"),
        counters: listener.counters(),
        shutdown: shutdown.clone(),
        task: tokio::spawn(listener.run()),
    }
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the listener stops")
            .expect("no panic")
            .expect("no error");
    }
}

/// Subscribes; `true` when answered, `false` when the proxy closed the connection.
async fn subscribed(m: &mut Miner) -> bool {
    m.send("mining.subscribe", json!([])).await;
    m.try_recv().await.is_some()
}

#[tokio::test]
async fn every_socket_accepts() {
    let running = start(&config(), 4);
    // The kernel spreads connections over the 4 sockets by address hash: with 64 from
    // distinct ports, a socket nobody accepted on would leave ~16 unanswered (the
    // chance that it gets none of them is (3/4)^64 ≈ 1e-8).
    let mut miners = Vec::new();
    for _ in 0..64 {
        let mut m = Miner::connect(running.addr).await;
        assert!(subscribed(&mut m).await, "answered");
        miners.push(m);
    }
    assert_eq!(running.counters.accepted(), 64);
    assert_eq!(running.counters.open(), 64);
    running.stop().await;
}

#[tokio::test]
async fn the_connection_cap_holds_across_sockets() {
    let mut cfg = config();
    cfg.proxy.max_connections = NonZeroUsize::new(6).expect("non-zero");
    let running = start(&cfg, 4);
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..24 {
        let mut m = Miner::connect(running.addr).await;
        if subscribed(&mut m).await {
            held.push(m);
        } else {
            refused += 1;
        }
    }
    assert_eq!(held.len(), 6);
    assert_eq!(refused, 18);
    assert_eq!(running.counters.refused(), 18);
    // A place freed on any socket is taken again on any socket.
    drop(held.pop());
    let wait = async {
        while running.counters.open() > 5 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("session ended");
    let mut again = Miner::connect(running.addr).await;
    assert!(subscribed(&mut again).await);
    running.stop().await;
}

#[tokio::test]
async fn a_second_proxy_on_the_same_address_is_refused() {
    let first = start(&config(), 2);
    let mut cfg = config();
    cfg.proxy.listen = first.addr;
    let (hub, _channels) = Hub::new(1);
    let err = Listener::bind(&cfg, hub, Registry::new(), CancellationToken::new())
        .expect_err("the address is taken");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    assert!(err.to_string().contains("another process"), "{err}");
    first.stop().await;
}

#[tokio::test]
async fn the_address_is_free_again_after_shutdown() {
    let first = start(&config(), 3);
    let addr = first.addr;
    first.stop().await;
    let mut cfg = config();
    cfg.proxy.listen = addr;
    let (hub, _channels) = Hub::new(1);
    let again = Listener::bind(&cfg, hub, Registry::new(), CancellationToken::new())
        .expect("rebinds at once");
    assert_eq!(again.local_addr().expect("addr"), addr);
}
