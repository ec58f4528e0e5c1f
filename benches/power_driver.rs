//! The driver's own cost per tick, with the network taken out: 1,000 in-process miner
//! clients that answer at once, so what is measured is the fan-out (one task per call, 64
//! in flight), feeding the controller, the tick, the health join against 1,000 Stratum
//! connections, metrics and the status update.
//!
//! `power/driver_tick_1000_miners_steady`: inside the budget, no commands. Goal: a small
//! fraction of a 10 s tick on one core.

// The workspace lints hold library code; a test or bench crate exports nothing and
// unwraps by design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use hashgate_site::power::api::{ApiFuture, Family, MinerApi, MinerState, Telemetry};
use hashgate_site::power::inventory::PowerConfig;
use hashgate_site::power::{PowerDriver, PowerHandle};
use hashgate_site::stats::{MinerIdentity, MinerRegistration, MinerStats, Registry};

const MINERS: usize = 1000;

/// A miner whose API answers at once, from memory.
struct Instant1 {
    telemetry: Telemetry,
}

impl MinerApi for Instant1 {
    fn family(&self) -> Family {
        Family::Luxos
    }
    fn telemetry(&self) -> ApiFuture<'_, Telemetry> {
        Box::pin(async move { Ok(self.telemetry.clone()) })
    }
    fn sleep(&self) -> ApiFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    fn wake(&self) -> ApiFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    fn set_power_limit(&self, _watts: u32) -> ApiFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

fn site() -> (PowerDriver, PowerHandle, Vec<MinerRegistration>) {
    let mut text = String::from("[[containers]]\nname = \"c01\"\nbudget_kw = 3600\n");
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
    let clients: Vec<(Arc<str>, Arc<dyn MinerApi>)> = cfg
        .miners
        .iter()
        .map(|m| {
            let api: Arc<dyn MinerApi> = Arc::new(Instant1 {
                telemetry: Telemetry {
                    power_watts: Some(m.nominal_watts),
                    inlet_temp_c: Some(29.0),
                    board_temps_c: vec![62.0, 64.5, 63.0],
                    hashrate_ths: Some(m.nominal_ths),
                    fan_rpm: vec![4200, 4300],
                    state: MinerState::Mining,
                },
            });
            (m.id.clone(), api)
        })
        .collect();
    let registry = Registry::new();
    let now = Instant::now();
    let wall = SystemTime::now();
    let registrations = cfg
        .miners
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let stats = Arc::new(MinerStats::new(now, wall, 1024.0));
            stats.set_identity(MinerIdentity {
                worker: format!("site.w{i}"),
                remote: format!("10.1.{}.{}:40000", i / 250, i % 250 + 1)
                    .parse()
                    .expect("addr"),
                user_agent: "bench".into(),
                prefix_hex: format!("{i:04x}"),
            });
            stats.record_accepted(now, wall, 1024.0, 2048.0);
            registry.add_miner(stats)
        })
        .collect();
    let (driver, handle) = PowerDriver::new(cfg, clients, registry).expect("driver");
    (driver, handle, registrations)
}

fn bench_driver(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut driver, handle, _connections) = site();
    rt.block_on(driver.tick_once());
    let status = handle.status();
    assert!(status.recent_decisions.is_empty(), "steady: no decisions");
    assert!(
        status.miners.iter().all(|m| m.proven_ths.is_some()),
        "every miner joined"
    );
    c.bench_function("power/driver_tick_1000_miners_steady", |b| {
        b.iter(|| rt.block_on(driver.tick_once()));
    });
}

criterion_group!(benches, bench_driver);
criterion_main!(benches);
