//! Each staging rule and fail-safe in simulated time.

use std::time::{Duration, Instant};

use super::*;

const SEC: Duration = Duration::from_secs(1);

fn band() -> Band {
    Band {
        low_c: 24.0,
        high_c: 29.0,
        hysteresis_c: 0.5,
    }
}

fn pump() -> PumpSpec {
    PumpSpec {
        watts: 750.0,
        on_above_c: 27.0,
        hysteresis_c: 2.0,
        max_humidity_percent: 70.0,
        min_on: Duration::from_secs(300),
        min_off: Duration::from_secs(300),
    }
}

/// One container "c1" whose sensors the test sets; time moves only when told.
struct Rig {
    climate: Climate,
    now: Instant,
    readings: SensorReadings,
}

impl Rig {
    fn new(spec: &ClimateSpec) -> Self {
        Self {
            climate: Climate::new([(Arc::from("c1"), spec)]),
            now: Instant::now(),
            readings: SensorReadings {
                inlet_c: Some(26.0),
                outlet_c: Some(45.0),
                humidity_percent: Some(40.0),
                outdoor_c: Some(30.0),
            },
        }
    }

    fn inlet(&mut self, c: f64) -> &mut Self {
        self.readings.inlet_c = Some(c);
        self
    }

    /// Polls the sensors, ticks, then advances `dt`.
    fn step(&mut self, dt: Duration) -> ClimateReport {
        self.climate
            .observe_sensors("c1", self.now, self.readings)
            .expect("c1");
        let mut reports = self.climate.tick(self.now);
        self.now += dt;
        reports.pop().expect("one container")
    }

    /// Ticks without polling (sensors silent), then advances `dt`.
    fn silent_step(&mut self, dt: Duration) -> ClimateReport {
        let mut reports = self.climate.tick(self.now);
        self.now += dt;
        reports.pop().expect("one container")
    }

    /// Runs ticks every 10 s for `secs` and returns the last report.
    fn run(&mut self, secs: u64) -> ClimateReport {
        let mut last = self.step(10 * SEC);
        for _ in 1..secs.div_ceil(10) {
            last = self.step(10 * SEC);
        }
        last
    }
}

fn on(r: &ClimateReport) -> Vec<bool> {
    r.fans.iter().map(|f| f.on).collect()
}

/// A rig whose 4 banks have all been staged off (cool inlet for long enough).
fn all_off(spec: &ClimateSpec) -> Rig {
    let mut rig = Rig::new(spec);
    rig.inlet(20.0);
    let r = rig.run(600);
    assert_eq!(r.fans_running, 0, "{r:?}");
    rig
}

#[test]
fn starts_with_every_fan_on_and_holds_inside_the_band() {
    let spec = ClimateSpec::uniform(4, 1500.0, band());
    let mut rig = Rig::new(&spec);
    let r = rig.inlet(26.0).run(1200);
    assert_eq!(r.fans_running, 4);
    assert!(r.changes.is_empty());
    assert!(r.alarms.is_empty(), "{:?}", r.alarms);
    assert_eq!(r.inlet_source, Some(InletSource::Sensor));
}

#[test]
fn stages_up_one_bank_per_interval_above_the_band() {
    let spec = ClimateSpec::uniform(4, 1500.0, band());
    let mut rig = all_off(&spec);
    rig.inlet(30.0);
    let first = rig.step(10 * SEC);
    assert_eq!(first.fans_running, 1);
    assert_eq!(first.changes.len(), 1);
    // Still hot, but the air has not had `stage_interval` to answer the first bank.
    for _ in 0..5 {
        assert_eq!(rig.step(10 * SEC).fans_running, 1);
    }
    assert_eq!(rig.step(10 * SEC).fans_running, 2);
    let r = rig.run(600);
    assert_eq!(r.fans_running, 4);
    assert!(r.cooling_exhausted);
    assert_eq!(r.alarms, vec![ClimateAlarm::OverTemperatureAllFans]);
    assert!((r.aux_watts - 6000.0).abs() < 1e-9);
}

#[test]
fn stages_down_below_the_band_and_not_inside_it() {
    let spec = ClimateSpec::uniform(4, 1500.0, band());
    let mut rig = Rig::new(&spec);
    rig.inlet(23.0);
    assert_eq!(rig.step(10 * SEC).fans_running, 3);
    for _ in 0..5 {
        assert_eq!(rig.step(10 * SEC).fans_running, 3);
    }
    assert_eq!(rig.step(10 * SEC).fans_running, 2);
    // Nothing learnt yet about what a bank does: inside the band nothing moves.
    let mut rig = Rig::new(&spec);
    assert_eq!(rig.inlet(24.5).run(900).fans_running, 4);
    assert_eq!(rig.inlet(28.9).run(900).fans_running, 4);
}

#[test]
fn learns_what_a_bank_does_and_stops_banks_the_band_does_not_need() {
    let spec = ClimateSpec::uniform(4, 1500.0, band());
    let mut rig = all_off(&spec);
    // Air that answers: 34 °C with no fan, each bank takes 2 °C off.
    let mut fans = 0;
    let mut trace = Vec::new();
    for _ in 0..120 {
        rig.inlet(34.0 - 2.0 * fans as f64);
        fans = rig.step(10 * SEC).fans_running;
        trace.push(fans);
    }
    // Three banks bring 34 to 28 (inside the band); two would leave 30 (above it).
    assert_eq!(fans, 3, "{trace:?}");
    // Cooler weather: 29.5 °C with no fan. The learnt 2 °C says one bank fewer still
    // leaves the inlet 0.5 °C under the top, so banks stop inside the band; the plain band
    // rule would have kept three running at 23.5 °C, then two at 25.5 °C.
    for _ in 0..120 {
        rig.inlet(29.5 - 2.0 * fans as f64);
        fans = rig.step(10 * SEC).fans_running;
    }
    assert_eq!(fans, 1, "29.5 - 2 = 27.5 holds the band with one bank");
}

#[test]
fn a_started_bank_runs_its_minimum_on_time() {
    let mut spec = ClimateSpec::uniform(1, 1500.0, band());
    spec.fan_min_on = Duration::from_secs(600);
    let mut rig = all_off(&spec);
    rig.inlet(30.0);
    assert_eq!(rig.step(10 * SEC).fans_running, 1);
    rig.inlet(20.0);
    // 590 s after the start it still runs although the air is cold...
    assert_eq!(rig.run(590).fans_running, 1);
    // ...and stops once 600 s have passed.
    assert_eq!(rig.run(20).fans_running, 0);
}

#[test]
fn a_stopped_bank_rests_its_minimum_off_time_and_another_starts_instead() {
    let mut spec = ClimateSpec::uniform(2, 1500.0, band());
    spec.fan_min_off = Duration::from_secs(900);
    spec.fan_min_on = Duration::ZERO;
    let mut rig = Rig::new(&spec);
    rig.inlet(20.0);
    let r = rig.step(60 * SEC);
    assert_eq!(
        r.changes,
        vec![Change::FanOff(1)],
        "ties stop the last in wiring order"
    );
    let r = rig.step(60 * SEC);
    assert_eq!(r.changes, vec![Change::FanOff(0)]);
    rig.inlet(30.0);
    // fan2 stopped 120 s ago, fan1 60 s ago: neither has rested; nothing starts.
    assert_eq!(rig.run(700).fans_running, 0);
    // fan2 rests out first and is the one started.
    let r = rig.run(120);
    assert_eq!(on(&r), vec![false, true]);
}

#[test]
fn rotation_starts_the_least_run_bank_and_stops_the_most_run() {
    let mut spec = ClimateSpec::uniform(3, 1500.0, band());
    spec.fan_min_on = Duration::ZERO;
    spec.fan_min_off = Duration::ZERO;
    let mut rig = Rig::new(&spec);
    // All three run 10 min, then cold: one is stopped (fan3, ties go to wiring order).
    rig.inlet(26.0).run(600);
    rig.inlet(20.0);
    assert_eq!(rig.step(60 * SEC).changes, vec![Change::FanOff(2)]);
    rig.inlet(26.0).run(3600);
    // fan1 and fan2 have an hour more than fan3: cold stops one of them (fan2 on the tie).
    rig.inlet(20.0);
    assert_eq!(rig.step(60 * SEC).changes, vec![Change::FanOff(1)]);
    // Hot: fan3 has the fewest hours and starts before fan2.
    rig.inlet(30.0);
    assert_eq!(rig.step(60 * SEC).changes, vec![Change::FanOn(2)]);
    assert_eq!(rig.step(60 * SEC).changes, vec![Change::FanOn(1)]);
    let r = rig.step(SEC);
    let hours: Vec<f64> = r.fans.iter().map(|f| f.run_hours).collect();
    assert!(hours[2] < hours[1] && hours[1] < hours[0], "{hours:?}");
}

#[test]
fn over_many_cycles_run_hours_stay_even() {
    let mut spec = ClimateSpec::uniform(4, 1500.0, band());
    spec.fan_min_on = Duration::ZERO;
    spec.fan_min_off = Duration::ZERO;
    let mut rig = Rig::new(&spec);
    // One bank is enough on average: the inlet swings around the band every 20 minutes.
    for cycle in 0..200 {
        rig.inlet(if cycle % 2 == 0 { 20.0 } else { 30.0 });
        rig.run(600);
    }
    let r = rig.step(SEC);
    let hours: Vec<f64> = r.fans.iter().map(|f| f.run_hours).collect();
    let (lo, hi) = hours
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &h| (a.min(h), b.max(h)));
    assert!(hi - lo < 0.5, "run hours drifted apart: {hours:?}");
}

#[test]
fn pump_runs_only_when_evaporation_helps() {
    let mut spec = ClimateSpec::uniform(2, 1500.0, band());
    spec.pump = Some(pump());
    let mut rig = Rig::new(&spec);
    rig.readings.outdoor_c = Some(32.0);
    rig.readings.humidity_percent = Some(40.0);
    let r = rig.step(10 * SEC);
    assert_eq!(r.pump.as_ref().map(|p| p.on), Some(true));
    assert!((r.aux_watts - 3750.0).abs() < 1e-9);
    // Humid air: past the limit plus its hysteresis, once min on has run.
    rig.readings.humidity_percent = Some(80.0);
    assert_eq!(rig.run(280).pump.map(|p| p.on), Some(true), "min on holds");
    assert_eq!(rig.run(30).pump.map(|p| p.on), Some(false));
    // Dry again but cool outdoors: stays off.
    rig.readings.humidity_percent = Some(40.0);
    rig.readings.outdoor_c = Some(26.0);
    assert_eq!(rig.run(600).pump.map(|p| p.on), Some(false));
    // Between `on_above - hysteresis` and `on_above` it does not start...
    rig.readings.outdoor_c = Some(26.5);
    assert_eq!(rig.run(600).pump.map(|p| p.on), Some(false));
    // ...above it starts, and dipping into the hysteresis does not stop it.
    rig.readings.outdoor_c = Some(28.0);
    assert_eq!(rig.run(60).pump.map(|p| p.on), Some(true));
    rig.readings.outdoor_c = Some(25.5);
    assert_eq!(rig.run(600).pump.map(|p| p.on), Some(true));
    rig.readings.outdoor_c = Some(24.0);
    assert_eq!(rig.run(60).pump.map(|p| p.on), Some(false));
}

#[test]
fn pump_follows_inlet_without_an_outdoor_sensor_and_needs_a_fan() {
    let mut spec = ClimateSpec::uniform(1, 1500.0, band());
    spec.pump = Some(pump());
    let mut rig = Rig::new(&spec);
    rig.readings.outdoor_c = None;
    rig.inlet(28.0);
    assert_eq!(rig.step(10 * SEC).pump.map(|p| p.on), Some(true));
    // Cold inlet stops the only fan after its min on; the pump goes with it.
    rig.inlet(20.0);
    let r = rig.run(600);
    assert_eq!(r.fans_running, 0);
    assert_eq!(r.pump.map(|p| p.on), Some(false));
}

#[test]
fn lost_inlet_sensor_falls_back_to_the_miners_inlet() {
    let spec = ClimateSpec::uniform(4, 1500.0, band());
    let mut rig = all_off(&spec);
    rig.readings.inlet_c = None;
    rig.climate
        .observe_miner_inlet("c1", rig.now + 60 * SEC, Some(31.0))
        .expect("c1");
    let r = rig.run(70);
    assert_eq!(r.inlet_source, Some(InletSource::Miners));
    assert_eq!(r.inlet_c, Some(31.0));
    assert!(!r.fail_safe);
    assert_eq!(r.fans_running, 1, "staged, not failed safe: {r:?}");
}

#[test]
fn lost_sensors_fail_safe_all_fans_on_pump_per_config_and_alarm() {
    for pump_on_failure in [true, false] {
        let mut spec = ClimateSpec::uniform(4, 1500.0, band());
        spec.pump = Some(pump());
        spec.pump_on_failure = pump_on_failure;
        let mut rig = all_off(&spec);
        // The last poll was 10 s ago, then nothing: within max age (60 s) it holds.
        assert!(!rig.silent_step(45 * SEC).fail_safe);
        assert!(!rig.silent_step(10 * SEC).fail_safe, "55 s old");
        let r = rig.silent_step(10 * SEC);
        assert!(r.fail_safe, "{r:?}");
        assert_eq!(r.fans_running, 4, "every bank at once, min off ignored");
        assert_eq!(r.pump.as_ref().map(|p| p.on), Some(pump_on_failure));
        assert!(r.alarms.contains(&ClimateAlarm::SensorsLost));
        assert!(r.alarms.contains(&ClimateAlarm::HumidityLost));
        assert!(r.alarms_changed);
        assert!(!rig.silent_step(10 * SEC).alarms_changed, "logged once");
        // Readings back: staging resumes from all on.
        rig.inlet(26.0);
        let r = rig.step(10 * SEC);
        assert!(!r.fail_safe && r.alarms.is_empty(), "{r:?}");
        assert_eq!(r.fans_running, 4);
    }
}

#[test]
fn lost_humidity_alone_runs_the_pump_per_config_and_keeps_staging() {
    let mut spec = ClimateSpec::uniform(2, 1500.0, band());
    spec.pump = Some(pump());
    spec.pump_on_failure = false;
    let mut rig = Rig::new(&spec);
    rig.readings.outdoor_c = Some(35.0);
    assert_eq!(rig.step(10 * SEC).pump.map(|p| p.on), Some(true));
    rig.readings.humidity_percent = None;
    let r = rig.run(600);
    assert_eq!(r.alarms, vec![ClimateAlarm::HumidityLost]);
    assert!(!r.fail_safe);
    assert_eq!(r.pump.map(|p| p.on), Some(false));
}

#[test]
fn lost_control_fails_safe_until_a_read_back_matches() {
    let mut spec = ClimateSpec::uniform(4, 1500.0, band());
    spec.pump = Some(pump());
    spec.pump_on_failure = true;
    let mut rig = all_off(&spec);
    rig.climate.control_failed("c1").expect("c1");
    let r = rig.step(10 * SEC);
    assert!(r.fail_safe);
    assert_eq!(r.fans_running, 4);
    assert_eq!(r.pump.map(|p| p.on), Some(true));
    assert_eq!(r.alarms, vec![ClimateAlarm::ControlLost]);
    assert_eq!(
        rig.run(600).fans_running,
        4,
        "stays safe while control is lost"
    );
    rig.climate.control_ok("c1").expect("c1");
    rig.inlet(20.0);
    let r = rig.run(600);
    assert!(!r.fail_safe && r.alarms.is_empty());
    assert!(r.fans_running < 4);
}

#[test]
fn overrides_hold_a_bank_and_failing_safe_beats_a_forced_off() {
    let mut spec = ClimateSpec::uniform(3, 1500.0, band());
    spec.pump = Some(pump());
    let mut rig = Rig::new(&spec);
    rig.climate
        .set_override("c1", "fan2", Override::On)
        .expect("fan2");
    rig.climate
        .set_override("c1", "fan1", Override::Off)
        .expect("fan1");
    rig.climate
        .set_override("c1", "pump", Override::Off)
        .expect("pump");
    rig.readings.outdoor_c = Some(35.0);
    rig.inlet(20.0);
    let r = rig.run(1200);
    assert_eq!(on(&r), vec![false, true, false], "{r:?}");
    assert_eq!(r.fans[1].mode, Override::On);
    assert_eq!(r.pump.map(|p| p.on), Some(false));
    rig.inlet(35.0);
    let r = rig.run(1200);
    assert_eq!(
        on(&r),
        vec![false, true, true],
        "auto bank staged around them"
    );
    assert!(
        r.cooling_exhausted,
        "no bank left the controller may start: heat is the miners' to shed"
    );
    assert!(r.alarms.contains(&ClimateAlarm::OverTemperatureAllFans));
    rig.climate.control_failed("c1").expect("c1");
    assert_eq!(rig.step(10 * SEC).fans_running, 3);
    rig.climate.control_ok("c1").expect("c1");
    rig.climate
        .set_override("c1", "fan1", Override::Auto)
        .expect("fan1");
    assert_eq!(rig.step(10 * SEC).fans_running, 3);
}

#[test]
fn unknown_names_are_refused() {
    let spec = ClimateSpec::uniform(2, 1500.0, band());
    let mut rig = Rig::new(&spec);
    assert_eq!(
        rig.climate.set_override("c9", "fan1", Override::On),
        Err(ClimateError::UnknownContainer("c9".into()))
    );
    assert!(matches!(
        rig.climate.set_override("c1", "fan7", Override::On),
        Err(ClimateError::UnknownDevice { .. })
    ));
    assert!(matches!(
        rig.climate.set_override("c1", "pump", Override::On),
        Err(ClimateError::UnknownDevice { .. }),
    ));
}

#[test]
fn implausible_readings_are_dropped_and_counted_and_late_ones_ignored() {
    let spec = ClimateSpec::uniform(2, 1500.0, band());
    let mut rig = Rig::new(&spec);
    let t0 = rig.now;
    let bad = SensorReadings {
        inlet_c: Some(-300.0),
        outlet_c: Some(f64::NAN),
        humidity_percent: Some(140.0),
        outdoor_c: Some(25.0),
    };
    assert_eq!(rig.climate.observe_sensors("c1", t0, bad), Ok(3));
    let r = rig.silent_step(SEC);
    assert_eq!(r.inlet_c, None);
    assert!(r.fail_safe);
    let good = SensorReadings {
        inlet_c: Some(26.0),
        ..SensorReadings::default()
    };
    let late = SensorReadings {
        inlet_c: Some(40.0),
        ..SensorReadings::default()
    };
    rig.climate.observe_sensors("c1", t0 + 5 * SEC, good).ok();
    rig.climate.observe_sensors("c1", t0 + 2 * SEC, late).ok();
    assert_eq!(rig.silent_step(SEC).inlet_c, Some(26.0));
}

/// A rig with `banks` banks, no minimum on/off times, every bank stopped by a cold inlet.
fn all_stopped(banks: usize, with_pump: bool) -> (Rig, ClimateSpec) {
    let mut spec = ClimateSpec::uniform(banks, 1500.0, band());
    spec.fan_min_on = Duration::ZERO;
    spec.fan_min_off = Duration::ZERO;
    spec.pump = with_pump.then(pump);
    let mut rig = Rig::new(&spec);
    rig.inlet(20.0);
    assert_eq!(rig.run(3600).fans_running, 0);
    (rig, spec)
}

#[test]
fn a_rising_inlet_starts_a_bank_the_tick_before_it_crosses_the_top() {
    let (mut rig, _) = all_stopped(3, false);
    rig.inlet(28.4).run(600);
    // 28.4 → 28.6 would be 28.8 next: nothing. 28.6 → 28.9 in one tick: the next reading would be 29.2, over the top.
    assert!(rig.inlet(28.6).step(10 * SEC).changes.is_empty());
    let r = rig.inlet(28.9).step(10 * SEC);
    assert!(
        matches!(r.changes[..], [Change::FanOn(_)]),
        "{:?}",
        r.changes
    );
    // Far under the top a jump is not a trend: nothing starts.
    let (mut rig, _) = all_stopped(3, false);
    rig.inlet(25.0).run(600);
    assert!(rig.inlet(28.0).step(10 * SEC).changes.is_empty());
}

#[test]
fn the_curtain_stopping_starts_one_more_bank_with_it() {
    let (mut rig, spec) = all_stopped(3, true);
    rig.readings.outdoor_c = Some(32.0);
    rig.inlet(29.5).step(10 * SEC);
    let r = rig.inlet(27.0).run(900);
    assert_eq!(r.fans_running, 1);
    assert_eq!(r.pump.map(|p| p.on), Some(true));
    // Cool outdoors: the pump stops and the next bank starts in the same tick.
    rig.readings.outdoor_c = Some(24.0);
    let r = rig.step(10 * SEC);
    assert!(
        matches!(r.changes[..], [Change::PumpOff, Change::FanOn(_)]),
        "{:?}",
        r.changes
    );
    assert_eq!(r.fans_running, 2);
    assert!((r.aux_watts - 2.0 * spec.fans[0].watts).abs() < 1e-9);
}
