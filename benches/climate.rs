//! Controller tick with climate control: 1,000 miners in 10 containers, each with six fan
//! banks and a curtain pump, as the driver runs it (sensors observed, the miners' inlet
//! handed to the climate, climate tick, its inlet, `cooling_exhausted` and fan/pump watts
//! handed to the power controller, power tick).
//!
//! `climate/tick_1000_miners_10_containers`: the whole tick. `climate/climate_only_10_containers`:
//! the climate controller's share. Goal: under 10 ms.

#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hashgate_site::climate::{Climate, SensorReadings};
use hashgate_site::power::api::{MinerState, Telemetry};
use hashgate_site::power::controller::Controller;
use hashgate_site::power::inventory::PowerConfig;

const CONTAINERS: usize = 10;
const PER_CONTAINER: usize = 100;

fn site() -> (Controller, Climate, Vec<Arc<str>>, Instant) {
    let mut text = String::new();
    for c in 0..CONTAINERS {
        text.push_str(&format!(
            "[[containers]]\nname = \"c{c:02}\"\nbudget_kw = 360\ntemp_limit_c = 38\n\
             [containers.climate]\ndevice = \"10.9.{c}.1\"\nband_low_c = 24\nband_high_c = 29\n\
             inlet = {{ address = 0, scale = 0.1 }}\nhumidity = {{ address = 1, scale = 0.1 }}\n\
             outdoor = {{ address = 2, scale = 0.1 }}\n\
             fans = [ {{ name = \"f1\", watts = 1100, coil = 0 }}, {{ name = \"f2\", watts = 1100, coil = 1 }}, \
                      {{ name = \"f3\", watts = 1100, coil = 2 }}, {{ name = \"f4\", watts = 1100, coil = 3 }}, \
                      {{ name = \"f5\", watts = 1100, coil = 4 }}, {{ name = \"f6\", watts = 1100, coil = 5 }} ]\n\
             pump = {{ watts = 750, coil = 7, on_above_c = 27 }}\n"
        ));
    }
    for i in 0..CONTAINERS * PER_CONTAINER {
        text.push_str(&format!(
            "[[miners]]\nid = \"m{i:04}\"\ncontainer = \"c{:02}\"\naddress = \"10.1.{}.{}\"\n\
             family = \"luxos\"\nmodel = \"S19\"\nnominal_watts = {}\nnominal_ths = {}\n",
            i / PER_CONTAINER,
            i / 250,
            i % 250 + 1,
            3000 + (i % 37) * 10,
            90 + (i % 23)
        ));
    }
    let cfg = PowerConfig::from_toml_str(&text).expect("bench config");
    let mut ctl = Controller::new(&cfg);
    let climate = Climate::new(
        cfg.containers
            .iter()
            .filter_map(|c| Some((c.name.clone(), &c.climate.as_ref()?.spec))),
    );
    let now = Instant::now();
    for (i, m) in cfg.miners.iter().enumerate() {
        let t = Telemetry {
            power_watts: Some(m.nominal_watts * (0.98 + (i % 5) as f64 * 0.01)),
            inlet_temp_c: Some(27.0 + (i % 7) as f64 * 0.3),
            board_temps_c: vec![62.0, 64.5, 63.0],
            hashrate_ths: Some(m.nominal_ths),
            fan_rpm: vec![4200, 4300],
            state: MinerState::Mining,
        };
        ctl.observe_telemetry(&m.id, now, t).expect("known");
    }
    let names = cfg.containers.iter().map(|c| c.name.clone()).collect();
    (ctl, climate, names, now + Duration::from_secs(10))
}

/// One driver tick's controller work, as `PowerDriver::tick_once` does it.
fn tick(ctl: &mut Controller, climate: &mut Climate, names: &[Arc<str>], now: Instant) -> usize {
    for (i, name) in names.iter().enumerate() {
        let readings = SensorReadings {
            inlet_c: Some(26.0 + i as f64 * 0.4),
            outlet_c: None,
            humidity_percent: Some(35.0),
            outdoor_c: Some(33.0),
        };
        climate.observe_sensors(name, now, readings).expect("known");
        climate
            .observe_miner_inlet(name, now, ctl.miners_inlet_c(name, now))
            .expect("known");
    }
    let reports = climate.tick(now);
    for r in &reports {
        ctl.observe_climate(&r.name, now, r.inlet_c, r.cooling_exhausted)
            .expect("known");
        ctl.set_auxiliary_watts(&r.name, Some(r.aux_watts))
            .expect("valid");
    }
    ctl.tick(now).decisions.len() + reports.len()
}

fn bench_tick(c: &mut Criterion) {
    let (ctl, climate, names, now) = site();
    let mut group = c.benchmark_group("climate");
    group.bench_function("tick_1000_miners_10_containers", |b| {
        b.iter_batched(
            || (ctl.clone(), climate.clone()),
            |(mut ctl, mut climate)| {
                black_box(tick(&mut ctl, &mut climate, &names, black_box(now)))
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("climate_only_10_containers", |b| {
        b.iter_batched(
            || climate.clone(),
            |mut climate| black_box(climate.tick(black_box(now))),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_tick);
criterion_main!(benches);
