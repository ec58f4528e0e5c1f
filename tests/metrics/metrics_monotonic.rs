//! Counters stay counters: whatever miners connect, share, get rejected, authorize late and
//! leave, no `_total` series written by the exporter ever goes down between scrapes, and the
//! sums over all series equal what was recorded (nothing lost, nothing counted twice),
//! with the worker-series cap in force.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hashgate_protocol::work::ShareReject;
use hashgate_site::exporter::Exporter;
use hashgate_site::stats::{MinerRegistration, MinerStats, PoolReject, Registry};
use proptest::prelude::*;

use crate::support::metrics::identity;

#[derive(Debug, Clone)]
enum Op {
    /// Connects a miner; `Some(w)` authorizes at once as worker `w`.
    Connect(Option<u8>),
    /// The n-th live connection (mod count) authorizes as worker `w`, if it has not yet.
    Authorize(usize, u8),
    Accept(usize),
    Reject(usize, usize),
    PoolReject(usize),
    Disconnect(usize),
    Scrape,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => proptest::option::of(0u8..6).prop_map(Op::Connect),
        1 => (any::<usize>(), 0u8..6).prop_map(|(i, w)| Op::Authorize(i, w)),
        4 => any::<usize>().prop_map(Op::Accept),
        2 => (any::<usize>(), 0usize..9).prop_map(|(i, r)| Op::Reject(i, r)),
        1 => any::<usize>().prop_map(Op::PoolReject),
        2 => any::<usize>().prop_map(Op::Disconnect),
        2 => Just(Op::Scrape),
    ]
}

/// `_total` samples of a render: series line (name and labels) → value.
fn counters(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            series
                .split('{')
                .next()
                .is_some_and(|n| n.ends_with("_total"))
        })
        .map(|(series, v)| (series.to_owned(), v.parse().unwrap()))
        .collect()
}

fn sum_of(counters: &HashMap<String, f64>, prefix: &str) -> f64 {
    counters
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

struct Live {
    stats: Arc<MinerStats>,
    guard: MinerRegistration,
    authorized: bool,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn totals_never_go_down_and_add_up(ops in proptest::collection::vec(op(), 1..120)) {
        let registry = Registry::new();
        let exporter = Exporter::new(registry.clone(), 3);
        let t0 = Instant::now();
        let wall = SystemTime::now();
        let mut live: Vec<Live> = Vec::new();
        let mut previous: HashMap<String, f64> = HashMap::new();
        let (mut accepted, mut rejected, mut pool_rejected) = (0.0, 0.0, 0.0);
        let mut next_id = 0u16;
        let check = |previous: &mut HashMap<String, f64>, accepted: f64, rejected: f64, pool_rejected: f64| {
            let now = counters(&exporter.render(t0 + Duration::from_secs(30)));
            for (series, old) in previous.iter() {
                let new = now.get(series).copied();
                prop_assert!(new.is_some_and(|n| n >= *old), "{series} went from {old} to {new:?}");
            }
            prop_assert_eq!(sum_of(&now, "hashgate_shares_total{"), accepted + rejected);
            prop_assert_eq!(
                sum_of(&now, "hashgate_pool_shares_total"),
                pool_rejected
            );
            *previous = now;
            Ok(())
        };
        for op in ops {
            match op {
                Op::Connect(worker) => {
                    let stats = Arc::new(MinerStats::new(t0, wall, 8.0));
                    next_id += 1;
                    if let Some(w) = worker {
                        stats.set_identity(identity(&format!("w{w}"), next_id));
                    }
                    let guard = registry.add_miner(stats.clone());
                    live.push(Live { stats, guard, authorized: worker.is_some() });
                }
                Op::Authorize(i, w) if !live.is_empty() => {
                    let n = live.len();
                    let m = &mut live[i % n];
                    if !m.authorized {
                        next_id += 1;
                        m.stats.set_identity(identity(&format!("w{w}"), next_id));
                        m.authorized = true;
                    }
                }
                Op::Accept(i) if !live.is_empty() => {
                    let n = live.len();
                    let m = &live[i % n];
                    // Shares are only accepted from authorized miners.
                    if m.authorized {
                        m.stats.record_accepted(t0 + Duration::from_secs(1), wall, 8.0, 9.0);
                        accepted += 1.0;
                    }
                }
                Op::Reject(i, r) if !live.is_empty() => {
                    let n = live.len();
                    live[i % n].stats.record_rejected(ShareReject::ALL[r]);
                    rejected += 1.0;
                }
                Op::PoolReject(i) if !live.is_empty() => {
                    let n = live.len();
                    live[i % n].stats.record_pool_rejected(PoolReject::Stale);
                    pool_rejected += 1.0;
                }
                Op::Disconnect(i) if !live.is_empty() => {
                    let n = live.len();
                    let gone = live.swap_remove(i % n);
                    drop(gone.guard);
                }
                Op::Scrape => {
                    // Counts of connections still unauthorized are not in any worker series
                    // yet; leave them out of the expected sums.
                    let pending: f64 = live
                        .iter()
                        .filter(|m| !m.authorized)
                        .map(|m| m.stats.totals().rejected.iter().sum::<u64>() as f64)
                        .sum();
                    let pending_pool: f64 = live
                        .iter()
                        .filter(|m| !m.authorized)
                        .map(|m| m.stats.totals().pool_rejected.iter().sum::<u64>() as f64)
                        .sum();
                    check(&mut previous, accepted, rejected - pending, pool_rejected - pending_pool)?;
                }
                _ => {}
            }
        }
        drop(live);
        check(&mut previous, accepted, rejected, pool_rejected)?;
    }
}
