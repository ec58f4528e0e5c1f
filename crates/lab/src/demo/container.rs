//! The demo's container air: the thermal model ([`crate::sim::thermal`]) run in real time
//! behind a simulated Modbus device, so hashgate reads its sensors and switches its fan and
//! pump relays exactly as it would a real container's. The day is compressed: one real
//! second is six minutes of weather, from 08:00.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::sim::mgmt::SimMinerState;
use crate::sim::modbus::{self, RegisterBank, SimModbusDevice};
use crate::sim::thermal::{ContainerAir, ThermalSim, Weather};
use hashgate_site::modbus::{DataType, Function, Point, Unit, WordOrder};
use hashgate_site::power::inventory::ClimateRaw;

/// Hour of the simulated day when the demo starts.
const START_HOUR: f64 = 8.0;
/// Simulated hours per real second.
const HOURS_PER_SECOND: f64 = 0.1;
/// How often the air is stepped and the registers rewritten.
const STEP: Duration = Duration::from_millis(200);

/// The rack PDUs' meter on the same device: total IT watts, f32 in input registers
/// 100-101 of unit 1 (`config/demo.toml`, `[power.containers.it_meter]`).
pub const IT_METER: Point = Point {
    function: Function::Input,
    unit_id: 1,
    address: 100,
    data_type: DataType::F32,
    word_order: WordOrder::Big,
    scale: 1.0,
    unit: Unit::W,
};

/// The simulated container: its Modbus device and the model stepping behind it.
pub struct SimContainer {
    /// The device hashgate talks to.
    pub device: SimModbusDevice,
    started: Instant,
    stop: CancellationToken,
}

impl SimContainer {
    /// The simulated hour of day at `now`.
    pub fn hour(&self, now: Instant) -> f64 {
        (START_HOUR + now.saturating_duration_since(self.started).as_secs_f64() * HOURS_PER_SECOND)
            % 24.0
    }

    /// Outdoor temperature (°C) and humidity (%) at `now`.
    pub fn weather(&self, now: Instant) -> (f64, f64) {
        Weather::hot_day().at(self.hour(now))
    }
}

impl Drop for SimContainer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn point(raw: Option<&hashgate_site::power::inventory::SensorRaw>, unit: Unit) -> Option<Point> {
    let s = raw?;
    Some(Point {
        function: s.register.unwrap_or(Function::Input),
        unit_id: s.unit_id.unwrap_or(1),
        address: s.address,
        data_type: s.data_type.unwrap_or(DataType::I16),
        word_order: s.word_order.unwrap_or(WordOrder::Big),
        scale: s.scale.unwrap_or(1.0),
        unit,
    })
}

/// Starts the device for `climate` (pointing its `device` at it) and the model, whose IT
/// load is what `miners` draw (also served as an IT meter, [`IT_METER`]); the miners' own
/// inlet follows the container's.
///
/// # Errors
/// Binding the device's loopback port failed.
pub async fn start(
    climate: &mut ClimateRaw,
    miners: Vec<SimMinerState>,
) -> std::io::Result<SimContainer> {
    let bank = RegisterBank::new();
    let unit = climate.unit_id.unwrap_or(1);
    let fan_coils: Vec<(u8, u16)> = climate
        .fans
        .iter()
        .map(|f| (f.unit_id.unwrap_or(unit), f.coil))
        .collect();
    let pump_coil = climate
        .pump
        .as_ref()
        .map(|p| (p.unit_id.unwrap_or(unit), p.coil));
    for &(u, c) in fan_coils.iter().chain(pump_coil.iter()) {
        bank.add_coils(u, c, 1);
    }
    let inlet = point(climate.inlet.as_ref(), Unit::Celsius);
    let outlet = point(climate.outlet.as_ref(), Unit::Celsius);
    let humidity = point(climate.humidity.as_ref(), Unit::Percent);
    let outdoor = point(climate.outdoor.as_ref(), Unit::Celsius);
    let now = Instant::now();
    let design: f64 = miners.iter().map(|m| m.spec().nominal_watts).sum();
    let air = ContainerAir {
        time_constant: Duration::from_secs(2),
        ..ContainerAir::with_banks(design, fan_coils.len())
    };
    let (t0, rh0) = Weather::hot_day().at(START_HOUR);
    let mut sim = ThermalSim::new(air, air.balance_c(t0, rh0, design, fan_coils.len(), false));
    let write = move |bank: &RegisterBank, sim: &ThermalSim, it: f64, t: f64, rh: f64| {
        bank.set_value(&IT_METER, it);
        for (p, v) in [
            (inlet, sim.inlet_c),
            (outlet, sim.outlet_c(it)),
            (humidity, rh),
            (outdoor, t),
        ] {
            if let Some(p) = p {
                bank.set_value(&p, v);
            }
        }
    };
    write(&bank, &sim, design, t0, rh0);
    let device = modbus::spawn(bank.clone()).await?;
    climate.device = device.addr.to_string();
    let stop = CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(STEP);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            let at = Instant::now();
            let hour = (START_HOUR
                + at.saturating_duration_since(now).as_secs_f64() * HOURS_PER_SECOND)
                % 24.0;
            let (t, rh) = Weather::hot_day().at(hour);
            let it: f64 = miners.iter().map(|m| m.reading(at).power_watts).sum();
            let on = |&(u, c): &(u8, u16)| bank.bit(Function::Coil, u, c).unwrap_or(false);
            let fans = fan_coils.iter().filter(|c| on(c)).count();
            let pump = pump_coil.as_ref().is_some_and(on);
            sim.step(STEP, t, rh, it, fans, pump);
            write(&bank, &sim, it, t, rh);
            for m in &miners {
                m.set_inlet(sim.inlet_c, at);
            }
        }
    });
    Ok(SimContainer {
        device,
        started: now,
        stop,
    })
}
