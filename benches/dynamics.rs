//! Hot-path costs of the per-share bookkeeping: hashrate, vardiff, extranonce.

// The workspace lints hold library code; a test or bench crate exports nothing and
// unwraps by design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use hashgate_protocol::extranonce::{PrefixPool, SplitLimits, choose_split};
use hashgate_protocol::vardiff::{Vardiff, VardiffConfig};
use hashgate_site::stats::{HashrateMeter, Window};

/// Time advances 5 ms per share so bucket roll-overs are part of the measured cost.
const STEP: Duration = Duration::from_millis(5);

fn hashrate(c: &mut Criterion) {
    let t0 = Instant::now();
    c.bench_function("stats/hashrate_record", |b| {
        let mut meter = HashrateMeter::new(t0);
        let mut now = t0;
        b.iter(|| {
            now += STEP;
            meter.record(black_box(now), black_box(131_072.0));
        });
    });
    c.bench_function("stats/hashrate_rate_all_windows", |b| {
        let mut meter = HashrateMeter::new(t0);
        for i in 0..720u32 {
            meter.record(t0 + Duration::from_secs(5) * i, 131_072.0);
        }
        let now = t0 + Duration::from_secs(3600);
        b.iter(|| Window::ALL.map(|w| meter.rate(black_box(now), w)));
    });
}

fn vardiff(c: &mut Criterion) {
    let t0 = Instant::now();
    c.bench_function("vardiff/on_share_and_poll", |b| {
        let mut v = Vardiff::new(VardiffConfig::default(), 131_072.0, t0).expect("valid config");
        let mut now = t0;
        b.iter(|| {
            now += STEP;
            v.on_share(black_box(now), black_box(131_072.0));
            if v.poll(now).is_some() {
                v.applied(now);
            }
        });
    });
}

fn extranonce(c: &mut Criterion) {
    let plan = choose_split(8, 10_000, SplitLimits::default()).expect("8 bytes split");
    let pool = PrefixPool::for_plan(&plan);
    let held: Vec<_> = (0..10_000).filter_map(|_| pool.lease()).collect();
    c.bench_function("extranonce/lease_and_drop", |b| {
        b.iter(|| drop(black_box(pool.lease())));
    });
    let prefix = held.first().map(|l| l.prefix()).expect("a lease");
    c.bench_function("extranonce/compose", |b| {
        b.iter(|| plan.compose(black_box(prefix), black_box(&[1, 2, 3, 4, 5, 6])));
    });
}

criterion_group!(benches, hashrate, vardiff, extranonce);
criterion_main!(benches);
