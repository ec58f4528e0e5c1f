//! The driver's climate part: each tick it reads every climate container's sensors over
//! Modbus, runs the pure [`Climate`] controller beside the power controller, writes the fan
//! and pump relays with read-back, and publishes metrics and the status block.
//!
//! A container's sensors and relays share one Modbus TCP connection (one gateway, one
//! RS-485 bus: requests go one after another anyway).

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{counter, gauge};
use serde::Serialize;

use crate::climate::{Change, Climate, ClimateAlarm, ClimateReport, SensorReadings};
use crate::modbus::{ClientSettings, ModbusClient, ModbusError, Point};
use crate::power::inventory::{ClimateSetup, Coil, PowerConfig};
use crate::ratelog::{RateLimitedLog, Verdict};

/// Sensor values dropped as implausible (a sensor fault, not air), by container.
pub const CLIMATE_READINGS_REJECTED: &str = "hashgate_climate_readings_rejected_total";

/// A fan bank's state in the status API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FanStatus {
    /// Bank name.
    pub name: String,
    /// Switched on at the last tick.
    pub on: bool,
    /// `auto`, `on` or `off` (admin override).
    pub mode: &'static str,
    /// Running hours: since hashgate started, plus earlier runs' when a ledger keeps them.
    pub run_hours: f64,
}

/// The pump's state in the status API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PumpStatus {
    /// Switched on at the last tick.
    pub on: bool,
    /// `auto`, `on` or `off` (admin override).
    pub mode: &'static str,
    /// Running hours: since hashgate started, plus earlier runs' when a ledger keeps them.
    pub run_hours: f64,
}

/// A container's climate block in `GET /api/v1/power`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClimateStatus {
    /// Inlet band low edge, °C.
    pub band_low_c: f64,
    /// Inlet band high edge, °C.
    pub band_high_c: f64,
    /// The inlet the fans followed, °C.
    pub inlet_c: Option<f64>,
    /// `sensor` or `miners` (the sensor was lost or is not configured).
    pub inlet_source: Option<&'static str>,
    /// Exhaust temperature, °C.
    pub outlet_c: Option<f64>,
    /// Relative humidity, %.
    pub humidity_percent: Option<f64>,
    /// Outdoor temperature, °C.
    pub outdoor_c: Option<f64>,
    /// Banks running.
    pub fans_running: usize,
    /// Each bank.
    pub fans: Vec<FanStatus>,
    /// The pump, when configured.
    pub pump: Option<PumpStatus>,
    /// Fans and pump running, W (facility load that is not IT).
    pub aux_watts: f64,
    /// Every bank the controller may run is running.
    pub cooling_exhausted: bool,
    /// Every fan forced on because sensors or control were lost.
    pub fail_safe: bool,
    /// Alarms in force (`sensors_lost`, `humidity_lost`, `control_lost`,
    /// `over_temperature_all_fans`).
    pub alarms: Vec<&'static str>,
}

impl ClimateStatus {
    fn from_report(r: &ClimateReport, setup: &ClimateSetup) -> Self {
        Self {
            band_low_c: setup.spec.band.low_c,
            band_high_c: setup.spec.band.high_c,
            inlet_c: r.inlet_c,
            inlet_source: r.inlet_source.map(|s| s.label()),
            outlet_c: r.outlet_c,
            humidity_percent: r.humidity_percent,
            outdoor_c: r.outdoor_c,
            fans_running: r.fans_running,
            fans: r
                .fans
                .iter()
                .map(|f| FanStatus {
                    name: f.name.to_string(),
                    on: f.on,
                    mode: f.mode.label(),
                    run_hours: f.run_hours,
                })
                .collect(),
            pump: r.pump.as_ref().map(|p| PumpStatus {
                on: p.on,
                mode: p.mode.label(),
                run_hours: p.run_hours,
            }),
            aux_watts: r.aux_watts,
            cooling_exhausted: r.cooling_exhausted,
            fail_safe: r.fail_safe,
            alarms: r.alarms.iter().map(|a| a.label()).collect(),
        }
    }
}

/// One container's Modbus device and what is wired to it.
struct Unit {
    container: Arc<str>,
    setup: ClimateSetup,
    /// The device connection; a tokio mutex because reads and writes await while holding it.
    client: tokio::sync::Mutex<ModbusClient>,
    /// A device that stays unreachable fails every tick: log it once per window.
    log: RateLimitedLog,
}

/// The climate containers of a driver.
pub(super) struct ClimateLoop {
    units: Vec<Unit>,
}

/// One container's sensor poll.
pub(super) struct Polled {
    at: Instant,
    readings: SensorReadings,
    error: Option<ModbusError>,
}

impl ClimateLoop {
    pub(super) fn new(config: &PowerConfig) -> Self {
        let units = config
            .containers
            .iter()
            .filter_map(|c| {
                let setup = c.climate.clone()?;
                // Two attempts, not three: sensors are read again next tick, and the
                // power tick waits for this poll.
                let settings = ClientSettings {
                    call_timeout: config.driver.timeouts.call.min(Duration::from_secs(2)),
                    connect_timeout: config.driver.timeouts.connect,
                    attempts: 2,
                    ..ClientSettings::default()
                };
                Some(Unit {
                    container: c.name.clone(),
                    client: tokio::sync::Mutex::new(ModbusClient::new(
                        setup.device.clone(),
                        settings,
                    )),
                    setup,
                    log: RateLimitedLog::new(Duration::from_secs(300)),
                })
            })
            .collect();
        Self { units }
    }

    /// The pure controller for these containers, for the shared state.
    pub(super) fn controller(config: &PowerConfig) -> Climate {
        Climate::new(config.containers.iter().filter_map(|c| {
            c.climate
                .as_ref()
                .map(|setup| (c.name.clone(), &setup.spec))
        }))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Reads every container's sensors, containers at once.
    pub(super) async fn poll(&self) -> Vec<Polled> {
        let polls = self.units.iter().map(|u| async move {
            let mut client = u.client.lock().await;
            let mut error: Option<ModbusError> = None;
            let mut read = async |point: &Option<Point>| {
                let point = point.as_ref()?;
                // A device that did not answer one read will not answer the next: skip
                // the rest rather than hold the whole power tick for each timeout.
                if error.as_ref().is_some_and(unreachable) {
                    return None;
                }
                match client.read_point(point).await {
                    Ok(v) => Some(v),
                    Err(e) => {
                        error.get_or_insert(e);
                        None
                    }
                }
            };
            let s = &u.setup.sensors;
            let readings = SensorReadings {
                inlet_c: read(&s.inlet).await,
                outlet_c: read(&s.outlet).await,
                humidity_percent: read(&s.humidity).await,
                outdoor_c: read(&s.outdoor).await,
            };
            Polled {
                at: Instant::now(),
                readings,
                error,
            }
        });
        in_turn(polls).await
    }

    /// Feeds the polls to the climate controller (logging failures, counting rejected
    /// values).
    pub(super) fn observe(&self, climate: &mut Climate, polls: &[Polled]) {
        for (u, p) in self.units.iter().zip(polls) {
            if let Some(e) = &p.error
                && let Verdict::Log { suppressed } = u.log.check(p.at)
            {
                tracing::warn!(container = %u.container, error = %e, suppressed, "climate sensor read failed");
            }
            if let Ok(dropped) = climate.observe_sensors(&u.container, p.at, p.readings)
                && dropped > 0
            {
                counter!(CLIMATE_READINGS_REJECTED, "container" => u.container.clone())
                    .increment(dropped as u64);
            }
        }
    }

    /// Switches every relay to the tick's states and reads each back; the outcome goes to
    /// the controller (`control_ok` / `control_failed`). Every relay is written each tick,
    /// so a relay switched by hand or a module that restarted is put right within a tick.
    pub(super) async fn write(
        &self,
        reports: &[ClimateReport],
    ) -> Vec<(Arc<str>, Result<(), ModbusError>)> {
        let writes = self.units.iter().filter_map(|u| {
            let r = reports.iter().find(|r| r.name == u.container)?;
            let mut wanted: Vec<(Coil, bool)> = u
                .setup
                .fan_coils
                .iter()
                .zip(&r.fans)
                .map(|(c, f)| (*c, f.on))
                .collect();
            if let (Some(c), Some(p)) = (u.setup.pump_coil, &r.pump) {
                wanted.push((c, p.on));
            }
            Some(async move {
                let mut client = u.client.lock().await;
                let mut result = Ok(());
                for (unit_id, address, states) in runs(&wanted) {
                    if let Err(e) = client.write_coils(unit_id, address, &states).await {
                        result = Err(e);
                        break;
                    }
                }
                (u.container.clone(), result)
            })
        });
        in_turn(writes).await
    }

    /// Logs a failed write (rate limited) and tells the controller.
    pub(super) fn absorb_writes(
        &self,
        climate: &mut Climate,
        results: &[(Arc<str>, Result<(), ModbusError>)],
    ) {
        let now = Instant::now();
        for (name, result) in results {
            let _ = match result {
                Ok(()) => climate.control_ok(name),
                Err(e) => {
                    if let Some(u) = self.units.iter().find(|u| &u.container == name)
                        && let Verdict::Log { suppressed } = u.log.check(now)
                    {
                        tracing::warn!(container = %name, error = %e, suppressed, "climate relay write failed; failing safe (all fans on)");
                    }
                    climate.control_failed(name)
                }
            };
        }
    }

    /// The status blocks of the tick, by container name.
    pub(super) fn status(&self, reports: &[ClimateReport]) -> Vec<(Arc<str>, ClimateStatus)> {
        self.units
            .iter()
            .filter_map(|u| {
                let r = reports.iter().find(|r| r.name == u.container)?;
                Some((u.container.clone(), ClimateStatus::from_report(r, &u.setup)))
            })
            .collect()
    }
}

/// The device (or the path to it) is down, as opposed to one bad register.
fn unreachable(e: &ModbusError) -> bool {
    matches!(
        e,
        ModbusError::Connect { .. } | ModbusError::Timeout { .. } | ModbusError::Transport { .. }
    )
}

/// Consecutive coils on one unit, so a relay module's outputs go in one request.
fn runs(wanted: &[(Coil, bool)]) -> Vec<(u8, u16, Vec<bool>)> {
    let mut sorted = wanted.to_vec();
    sorted.sort_by_key(|(c, _)| (c.unit_id, c.address));
    let mut out: Vec<(u8, u16, Vec<bool>)> = Vec::new();
    for (c, on) in sorted {
        match out.last_mut() {
            Some((unit, start, states))
                if *unit == c.unit_id
                    && u16::try_from(states.len())
                        .ok()
                        .and_then(|n| start.checked_add(n))
                        == Some(c.address) =>
            {
                states.push(on);
            }
            _ => out.push((c.unit_id, c.address, vec![on])),
        }
    }
    out
}

/// Awaits each future in turn. A site has a handful of climate containers, each one
/// RS-485 bus behind its gateway; the whole poll overlaps the miners' poll, which is the
/// long part of a tick.
async fn in_turn<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for f in futures {
        out.push(f.await);
    }
    out
}

/// Records a climate tick: gauges per container, one log line per switch and alarm change.
pub fn record_climate(reports: &[ClimateReport]) {
    for r in reports {
        let name = r.name.clone();
        gauge!("hashgate_container_fans_running", "container" => name.clone())
            .set(r.fans_running as f64);
        if let Some(p) = &r.pump {
            gauge!("hashgate_container_pump_on", "container" => name.clone())
                .set(f64::from(u8::from(p.on)));
        }
        if let Some(h) = r.humidity_percent {
            gauge!("hashgate_container_humidity_percent", "container" => name.clone()).set(h);
        }
        for alarm in ClimateAlarm::ALL {
            gauge!(
                "hashgate_container_climate_alarm",
                "container" => name.clone(),
                "alarm" => alarm.label()
            )
            .set(f64::from(u8::from(r.alarms.contains(&alarm))));
        }
        for change in &r.changes {
            let (device, on) = match change {
                Change::FanOn(i) => (fan_name(r, *i), true),
                Change::FanOff(i) => (fan_name(r, *i), false),
                Change::PumpOn => ("pump", true),
                Change::PumpOff => ("pump", false),
            };
            tracing::info!(container = %r.name, device, on, inlet_c = r.inlet_c, fans_running = r.fans_running, "climate switch");
        }
        if r.alarms_changed {
            let alarms: Vec<&str> = r.alarms.iter().map(|a| a.label()).collect();
            if alarms.is_empty() {
                tracing::info!(container = %r.name, "climate alarms cleared");
            } else {
                tracing::warn!(container = %r.name, alarms = ?alarms, fail_safe = r.fail_safe, "climate alarm");
            }
        }
    }
}

fn fan_name(r: &ClimateReport, i: usize) -> &str {
    r.fans.get(i).map_or("?", |f| &*f.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coil(unit_id: u8, address: u16) -> Coil {
        Coil { unit_id, address }
    }

    #[test]
    fn a_climate_tick_is_rendered_with_stable_names_and_labels() {
        use crate::climate::{Band, ClimateSpec, PumpSpec};
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let mut spec = ClimateSpec::uniform(
            3,
            1100.0,
            Band {
                low_c: 24.0,
                high_c: 29.0,
                hysteresis_c: 0.5,
            },
        );
        spec.pump = Some(PumpSpec {
            watts: 750.0,
            on_above_c: 27.0,
            hysteresis_c: 2.0,
            max_humidity_percent: 70.0,
            min_on: Duration::from_secs(60),
            min_off: Duration::from_secs(60),
        });
        let mut climate = Climate::new([(Arc::from("c1"), &spec)]);
        let now = Instant::now();
        let readings = SensorReadings {
            inlet_c: Some(31.0),
            outlet_c: Some(50.0),
            humidity_percent: Some(35.5),
            outdoor_c: Some(33.0),
        };
        climate.observe_sensors("c1", now, readings).expect("c1");
        let reports = climate.tick(now);
        metrics::with_local_recorder(&recorder, || record_climate(&reports));
        let text = handle.render();
        for line in [
            "hashgate_container_fans_running{container=\"c1\"} 3",
            "hashgate_container_pump_on{container=\"c1\"} 1",
            "hashgate_container_humidity_percent{container=\"c1\"} 35.5",
            "hashgate_container_climate_alarm{container=\"c1\",alarm=\"over_temperature_all_fans\"} 1",
            "hashgate_container_climate_alarm{container=\"c1\",alarm=\"sensors_lost\"} 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn consecutive_coils_go_in_one_request() {
        let wanted = [
            (coil(1, 2), true),
            (coil(1, 0), true),
            (coil(1, 1), false),
            (coil(1, 8), true),
            (coil(2, 3), false),
        ];
        assert_eq!(
            runs(&wanted),
            vec![
                (1, 0, vec![true, false, true]),
                (1, 8, vec![true]),
                (2, 3, vec![false]),
            ]
        );
    }
}
