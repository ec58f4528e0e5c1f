//! `split`: the load through an in-process proxy with two pool groups at 70/30; the
//! simulated pools' own counts give the split.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use hashgate_loadgen::LoadConfig;
use hashgate_loadgen::split::run_split;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_work_reaching_two_pool_groups_follows_their_weights() {
    let load = LoadConfig {
        connections: NonZeroUsize::new(40).unwrap(),
        rate: 200.0,
        duration: Duration::from_secs(4),
        ..LoadConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)))
    };
    let report = tokio::time::timeout(
        Duration::from_secs(90),
        run_split(load, (70.0, 30.0), Duration::from_secs(5)),
    )
    .await
    .expect("within the time limit")
    .expect("split run");
    eprintln!("{report}");
    assert_eq!(report.load.connections.ready, 40);
    let main = &report.groups[0];
    let second = &report.groups[1];
    assert!(main.accepted > 0 && second.accepted > 0, "{report}");
    // 40 equal miners: 28/12 is exact; one miner is 2.5 %, the rest is the rate's jitter.
    assert!((main.achieved - 0.7).abs() < 0.08, "{report}");
    assert!((main.target - 0.7).abs() < 1e-12);
}
