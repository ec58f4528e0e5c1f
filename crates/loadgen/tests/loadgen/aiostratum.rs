//! `loadgen compare --aiostratum`: the same load through aiostratum-proxy (Python) against
//! the same simulated pool. Runs only where its venv exists (`docs/LOADGEN.md` says how
//! to make it); elsewhere it prints why it skipped and passes. The pieces that need no
//! Python (its config, the launcher's contents, the ratios) are unit-tested in
//! `src/loadgen/`.
//!
//! Everything binds 127.0.0.1 port 0 and runs under a timeout.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use hashgate_loadgen::{CompareConfig, LoadConfig, ProxyKind, compare};

/// The venv's interpreter: `HASHGATE_AIOSTRATUM_PYTHON`, else the path LOADGEN.md uses.
fn aiostratum_python() -> Option<PathBuf> {
    let path = std::env::var_os("HASHGATE_AIOSTRATUM_PYTHON").map_or_else(
        || PathBuf::from("/work/venvs/aiostratum/bin/python"),
        PathBuf::from,
    );
    path.is_file().then_some(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiostratum_relays_every_share_and_the_pool_accepts_them() {
    let Some(python) = aiostratum_python() else {
        eprintln!(
            "SKIPPED: no aiostratum-proxy venv (set HASHGATE_AIOSTRATUM_PYTHON or make \
             /work/venvs/aiostratum as docs/LOADGEN.md says)"
        );
        return;
    };
    let load = LoadConfig {
        connections: NonZeroUsize::new(30).expect("non-zero"),
        rate: 300.0,
        duration: Duration::from_secs(2),
        ..LoadConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)))
    };
    let config = CompareConfig {
        job_interval: Some(Duration::from_secs(1)),
        skip_direct: true,
        aiostratum: Some(python),
        ..CompareConfig::new(load, crate::hashgate())
    };
    let report = tokio::time::timeout(Duration::from_secs(120), compare(config))
        .await
        .expect("within the time limit")
        .expect("comparison runs");
    let aio = report
        .others
        .iter()
        .find(|o| o.kind == ProxyKind::Aiostratum)
        .expect("aiostratum phase");
    let s = &aio.load.shares;
    assert_eq!(aio.load.connections.ready, 30, "{report}");
    assert_eq!(s.sent, s.scheduled, "{report}");
    assert_eq!(s.accepted, s.sent, "{report}");
    assert_eq!(s.rejected(), 0, "{report}");
    // It checks nothing and forwards everything; the pool, judging at the miners'
    // difficulty, accepts every share: the extranonce tail went back in front.
    assert_eq!(aio.pool.accepted, s.accepted, "{report}");
    assert_eq!(aio.pool.rejected, 0, "{report}");
    // One pool connection for all its miners.
    assert_eq!(aio.pool.connections, 1, "{report}");
    assert!(aio.versus_hashgate.cpu_us_per_share.is_some(), "{report}");
    assert!(aio.exit.graceful, "{report}");
}
