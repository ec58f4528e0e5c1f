//! `loadgen compare --sv2-peers`: hashgate and SRI's translator_sv2 under the same load
//! on one real pool_sv2. Ignored: the peers live outside this repository
//! (`HASHGATE_SV2_PEERS` names the SV2 peers' `build.sh` output, as for
//! `tests/interop_sv2.rs`); run with
//! `HASHGATE_SV2_PEERS=target/peers/sv2 cargo test -p hashgate-loadgen --test loadgen sv2 -- --ignored`.
//! The pieces that need no peer (the translator's config, the pool's counts) are
//! unit-tested in `src/sv2peers.rs`.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use hashgate_loadgen::{CompareConfig, LoadConfig, ProxyKind, compare};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SRI's pool_sv2, sv2-minitp and translator_sv2 (HASHGATE_SV2_PEERS)"]
async fn both_proxies_answer_every_share_and_the_pool_counts_both() {
    let dir = std::env::var_os("HASHGATE_SV2_PEERS")
        .map(PathBuf::from)
        .expect("HASHGATE_SV2_PEERS names the SV2 peers' build directory");
    let load = LoadConfig {
        connections: NonZeroUsize::new(50).expect("non-zero"),
        rate: 500.0,
        duration: Duration::from_secs(3),
        ..LoadConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)))
    };
    let config = CompareConfig {
        sv2_peers: Some(dir),
        ..CompareConfig::new(load, crate::hashgate())
    };
    let report = tokio::time::timeout(Duration::from_secs(180), compare(config))
        .await
        .expect("within the time limit")
        .expect("comparison runs");
    assert_eq!(report.pool_name, "pool_sv2");
    assert!(report.direct.is_none(), "no direct phase on pool_sv2");
    let translator = report
        .others
        .iter()
        .find(|o| o.kind == ProxyKind::TranslatorSv2)
        .expect("translator phase");
    for (name, load, pool) in [
        ("hashgate", &report.proxied, &report.proxied_pool),
        ("translator_sv2", &translator.load, &translator.pool),
    ] {
        let s = &load.shares;
        assert_eq!(load.connections.ready, 50, "{name}\n{report}");
        assert_eq!(s.sent, s.scheduled, "{name}\n{report}");
        assert_eq!(s.timeouts + s.lost_in_flight, 0, "{name}\n{report}");
        // No new block in the window: nothing goes stale.
        assert_eq!(s.accepted, s.sent, "{name}\n{report}");
        assert!(pool.accepted > 0, "{name}: the pool counted none\n{report}");
        assert_eq!(pool.rejected, 0, "{name}\n{report}");
    }
    assert!(report.proxy_exit.graceful, "{report}");
    assert!(
        translator.exit.graceful,
        "SIGINT stops it cleanly\n{report}"
    );
}
