//! Controller tick cost for one full container.
//!
//! `power/tick_1000_miners`: a thousand-miner container whose budget was just cut by a
//! third, so the tick estimates every miner, sorts the candidates and orders a few hundred
//! sleeps. `power/tick_1000_miners_steady`: the same container inside its budget (the
//! common tick: estimate, no decisions). Goal: well under 10 ms per tick.

// The workspace lints hold library code; a test or bench crate exports nothing and
// unwraps by design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hashgate_site::power::api::{MinerState, Telemetry};
use hashgate_site::power::controller::Controller;
use hashgate_site::power::inventory::PowerConfig;

const MINERS: usize = 1000;

fn container() -> (Controller, Instant) {
    let mut text = String::from(
        "[[containers]]\nname = \"c01\"\nbudget_kw = 3600\ntemp_limit_c = 38\n\
         meter = { address = \"10.1.0.10:502\" }\n",
    );
    for i in 0..MINERS {
        text.push_str(&format!(
            "[[miners]]\nid = \"c01-m{i:04}\"\ncontainer = \"c01\"\naddress = \"10.1.{}.{}\"\n\
             family = \"luxos\"\nmodel = \"S19\"\nnominal_watts = {}\nnominal_ths = {}\n",
            i / 250,
            i % 250 + 1,
            3000 + (i % 37) * 10,
            90 + (i % 23)
        ));
    }
    let cfg = PowerConfig::from_toml_str(&text).expect("bench config");
    let mut ctl = Controller::new(&cfg);
    let now = Instant::now();
    for (i, m) in cfg.miners.iter().enumerate() {
        let t = Telemetry {
            power_watts: Some(m.nominal_watts * (0.98 + (i % 5) as f64 * 0.01)),
            inlet_temp_c: Some(29.0 + (i % 7) as f64 * 0.3),
            board_temps_c: vec![62.0, 64.5, 63.0],
            hashrate_ths: Some(m.nominal_ths),
            fan_rpm: vec![4200, 4300],
            state: MinerState::Mining,
        };
        ctl.observe_telemetry(&m.id, now, t).expect("known");
    }
    // Meter stale on purpose: the tick falls back to summing miners, the costlier path.
    ctl.tick(now);
    (ctl, now + Duration::from_secs(10))
}

fn bench_tick(c: &mut Criterion) {
    let (ctl, now) = container();
    let mut probe = ctl.clone();
    assert!(
        probe.tick(now).decisions.is_empty(),
        "steady tick decides nothing"
    );
    probe.set_budget("c01", Some(2_100_000.0)).expect("valid");
    let sheds = probe.tick(now).decisions.len();
    assert!(
        sheds > 300,
        "the cut sheds a few hundred miners, got {sheds}"
    );
    let mut group = c.benchmark_group("power");
    group.bench_function("tick_1000_miners", |b| {
        b.iter_batched(
            || {
                let mut cut = ctl.clone();
                cut.set_budget("c01", Some(2_100_000.0)).expect("valid");
                cut
            },
            |mut cut| black_box(cut.tick(black_box(now))),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("tick_1000_miners_steady", |b| {
        b.iter_batched(
            || ctl.clone(),
            |mut steady| black_box(steady.tick(black_box(now))),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_tick);
criterion_main!(benches);
