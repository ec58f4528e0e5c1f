//! Cost of a scrape on a large site, and of the per-share counter updates the exporter
//! reads (the only part on the submit path).

// The workspace lints hold library code; a test or bench crate exports nothing and
// unwraps by design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use hashgate_site::exporter::Exporter;
use hashgate_site::stats::{MinerIdentity, MinerStats, Registry};

const MINERS: u32 = 10_000;

fn identity(i: u32) -> MinerIdentity {
    MinerIdentity {
        worker: format!(
            "site.c{:02}.r{:02}.m{:03}",
            i / 1000,
            (i / 100) % 10,
            i % 100
        ),
        remote: format!("10.{}.{}.{}:4028", i / 65536, (i / 256) % 256, i % 256)
            .parse()
            .expect("valid address"),
        user_agent: "bmminer/2.0.0".into(),
        prefix_hex: format!("{i:04x}"),
    }
}

fn scrape(c: &mut Criterion) {
    let registry = Registry::new();
    let t0 = Instant::now();
    let wall = SystemTime::now();
    let mut guards = Vec::new();
    for i in 0..MINERS {
        let stats = Arc::new(MinerStats::new(t0, wall, 65_536.0));
        stats.set_identity(identity(i));
        for s in 0..60u32 {
            stats.record_accepted(
                t0 + Duration::from_secs(u64::from(s) * 5),
                wall,
                65_536.0,
                70_000.0,
            );
        }
        guards.push(registry.add_miner(stats));
    }
    let now = t0 + Duration::from_secs(300);
    // Default cap: 2,000 workers with series, 8,000 summed under `_other`.
    let exporter = Exporter::new(registry.clone(), 2_000);
    let bytes = exporter.render(now).len();
    println!("exporter/render_10000_miners: {bytes} bytes per scrape");
    c.bench_function("exporter/render_10000_miners", |b| {
        b.iter(|| black_box(exporter.render(black_box(now))));
    });
    // The part that holds the registry's view lock (disconnects wait for it).
    c.bench_function("stats/registry_view_10000_miners", |b| {
        b.iter(|| registry.view(black_box(now), |live, _| black_box(live.len())));
    });
    drop(guards);
}

fn submit_path(c: &mut Criterion) {
    let t0 = Instant::now();
    let wall = SystemTime::now();
    let stats = MinerStats::new(t0, wall, 65_536.0);
    let mut now = t0;
    c.bench_function("stats/miner_record_accepted", |b| {
        b.iter(|| {
            now += Duration::from_millis(5);
            stats.record_accepted(black_box(now), wall, black_box(65_536.0), 70_000.0);
        });
    });
}

criterion_group!(benches, scrape, submit_path);
criterion_main!(benches);
