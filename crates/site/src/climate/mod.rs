//! Container climate: staging exhaust fan banks and the water-curtain pump to hold the
//! miners' inlet air inside a band, a pure controller run on the power driver's tick.
//!
//! Like the power [`Controller`](crate::power::controller::Controller) it does no I/O and
//! reads no clock: the driver feeds sensor readings ([`Climate::observe_sensors`]), the
//! miners' own inlet temperatures ([`Climate::observe_miner_inlet`]) and the outcome of
//! each relay write ([`Climate::control_ok`], [`Climate::control_failed`]), calls
//! [`Climate::tick`] with `now`, and switches the relays to the states it returns.
//!
//! Per container, each tick:
//!
//! | step | rule |
//! |---|---|
//! | inlet | container inlet sensor when fresh, else the hottest fresh miner inlet, else lost |
//! | fail safe | inlet lost, or a relay write failed / read back wrong → every fan on, pump per `pump_on_failure`, alarm; manual overrides are ignored |
//! | override | a bank or the pump forced on/off by the admin API stays so (min times do not apply) |
//! | stage up | inlet > band high (or within `hysteresis_c` of it and rising by more than the gap in one tick) and `stage_interval` since the last step → start the automatic bank with the fewest run hours among those rested `fan_min_off` |
//! | curtain stop | the pump stops automatically with the inlet not under the band → start the next automatic bank in the same tick |
//! | stage down | `stage_interval` since the last step and inlet < band low, or inlet + one bank's learnt effect + `hysteresis_c` ≤ band high (the fewest fans) → stop the automatic bank with the most run hours among those run `fan_min_on` |
//! | learn | `stage_interval` after a step, the inlet change it made updates one bank's effect (halfway average; a change against the step, or a pump switch in between, is not taken) |
//! | pump | on while the air entering the curtain (outdoor, else inlet) is above `on_above_c`, humidity below its limit and a fan runs; off below `on_above_c - hysteresis_c`, above the humidity limit or with no fan; `min_on`/`min_off` hold; humidity lost → per `pump_on_failure` |
//! | report | fans running, pump, auxiliary watts, `cooling_exhausted` (every bank not forced off running) for the power controller's heat rule, alarms |
//!
//! | file | owns |
//! |---|---|
//! | `spec.rs` | the validated equipment and rules ([`ClimateSpec`]) |
//! | this file | runtime state, the tick and its report |

mod spec;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use spec::{Band, ClimateSpec, FanBankSpec, PumpSpec};

/// Air temperatures outside this range are sensor faults, not air.
const PLAUSIBLE_C: std::ops::RangeInclusive<f64> = -40.0..=90.0;

/// Relative humidity outside this range is a sensor fault.
const PLAUSIBLE_RH: std::ops::RangeInclusive<f64> = 0.0..=100.0;

/// The humidity limit's own hysteresis, %: a reading wobbling on the limit must not cycle
/// the pump.
const HUMIDITY_HYSTERESIS: f64 = 5.0;

/// A request that names something the climate controller does not know.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClimateError {
    /// No container with climate control has this name.
    #[error("no climate control for container \"{0}\"")]
    UnknownContainer(String),
    /// The container has no fan bank or pump with this name.
    #[error("container \"{container}\" has no fan bank or pump \"{device}\"")]
    UnknownDevice {
        /// Container name.
        container: String,
        /// The name asked for.
        device: String,
    },
}

/// A manual override of one fan bank or the pump (admin API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Override {
    /// Forced on.
    On,
    /// Forced off (failing safe still turns fans on).
    Off,
    /// Staged by the controller.
    Auto,
}

impl Override {
    /// Stable snake_case label.
    pub fn label(self) -> &'static str {
        match self {
            Override::On => "on",
            Override::Off => "off",
            Override::Auto => "auto",
        }
    }
}

/// Why a container's climate is in alarm; a closed set so metric labels stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClimateAlarm {
    /// No fresh inlet temperature (container sensor nor miners): failing safe.
    SensorsLost,
    /// No fresh humidity reading while a pump is configured: the pump runs per config.
    HumidityLost,
    /// A relay write failed or read back wrong: failing safe.
    ControlLost,
    /// Every bank the controller may run is running and the inlet is still above the band.
    OverTemperatureAllFans,
}

impl ClimateAlarm {
    /// Every alarm, for pre-registering series.
    pub const ALL: [ClimateAlarm; 4] = [
        ClimateAlarm::SensorsLost,
        ClimateAlarm::HumidityLost,
        ClimateAlarm::ControlLost,
        ClimateAlarm::OverTemperatureAllFans,
    ];

    /// Stable snake_case label for the `alarm` metric label.
    pub fn label(self) -> &'static str {
        match self {
            ClimateAlarm::SensorsLost => "sensors_lost",
            ClimateAlarm::HumidityLost => "humidity_lost",
            ClimateAlarm::ControlLost => "control_lost",
            ClimateAlarm::OverTemperatureAllFans => "over_temperature_all_fans",
        }
    }
}

/// Where the inlet figure the fans followed came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InletSource {
    /// The container's inlet sensor.
    Sensor,
    /// The hottest fresh inlet reading of the container's miners (sensor lost or absent).
    Miners,
}

impl InletSource {
    /// Stable snake_case label.
    pub fn label(self) -> &'static str {
        match self {
            InletSource::Sensor => "sensor",
            InletSource::Miners => "miners",
        }
    }
}

/// One poll of a container's climate sensors; `None` is a value that could not be read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SensorReadings {
    /// Inlet air (behind the curtain, before the miners), °C.
    pub inlet_c: Option<f64>,
    /// Exhaust air, °C.
    pub outlet_c: Option<f64>,
    /// Relative humidity of the air entering the curtain, %.
    pub humidity_percent: Option<f64>,
    /// Outdoor air, °C.
    pub outdoor_c: Option<f64>,
}

/// What a device is switched to and since when.
#[derive(Debug, Clone, Copy)]
struct Device {
    on: bool,
    /// Last switch; `None` before the first, so min times do not hold a fresh start.
    since: Option<Instant>,
    /// Running time: what the ledger recorded before this process, plus this process's.
    run: Duration,
    mode: Override,
}

impl Device {
    fn new(on: bool) -> Self {
        Self {
            on,
            since: None,
            run: Duration::ZERO,
            mode: Override::Auto,
        }
    }

    fn held(&self, now: Instant, min: Duration) -> bool {
        self.since
            .is_some_and(|t| now.saturating_duration_since(t) < min)
    }

    fn switch(&mut self, on: bool, now: Instant) -> bool {
        if self.on == on {
            return false;
        }
        self.on = on;
        self.since = Some(now);
        true
    }
}

/// The latest reading of one sensor.
type Reading = Option<(Instant, f64)>;

#[derive(Debug, Clone)]
struct Runtime {
    name: Arc<str>,
    spec: ClimateSpec,
    fans: Vec<Device>,
    pump: Device,
    inlet: Reading,
    outlet: Reading,
    humidity: Reading,
    outdoor: Reading,
    miners_inlet: Reading,
    last_stage: Option<Instant>,
    /// The inlet the previous tick staged on, °C.
    last_inlet: Option<f64>,
    /// The last step (when, up?, inlet then), until `stage_interval` later shows its effect.
    probe: Option<(Instant, bool, f64)>,
    /// What one bank changes the inlet by, °C, learnt from past steps.
    step_effect_c: Option<f64>,
    last_tick: Option<Instant>,
    control_lost: bool,
    /// Alarms of the previous tick, to log changes once.
    alarms: Vec<ClimateAlarm>,
}

/// A fan bank's state in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct FanReport {
    /// Bank name.
    pub name: Arc<str>,
    /// Switched on after this tick.
    pub on: bool,
    /// Manual override in force.
    pub mode: Override,
    /// Running time, hours: this process's, plus earlier runs' when a ledger keeps them.
    pub run_hours: f64,
}

/// The pump's state in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct PumpReport {
    /// Switched on after this tick.
    pub on: bool,
    /// Manual override in force.
    pub mode: Override,
    /// Running time, hours: this process's, plus earlier runs' when a ledger keeps them.
    pub run_hours: f64,
}

/// A switch the tick made, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Fan bank `index` started.
    FanOn(usize),
    /// Fan bank `index` stopped.
    FanOff(usize),
    /// Pump started.
    PumpOn,
    /// Pump stopped.
    PumpOff,
}

/// One container's climate after a tick: the relay states to write and what led to them.
#[derive(Debug, Clone, PartialEq)]
pub struct ClimateReport {
    /// Container name.
    pub name: Arc<str>,
    /// Fan banks in config order.
    pub fans: Vec<FanReport>,
    /// The pump, when configured.
    pub pump: Option<PumpReport>,
    /// Banks running.
    pub fans_running: usize,
    /// The inlet figure the fans followed, °C.
    pub inlet_c: Option<f64>,
    /// Where it came from.
    pub inlet_source: Option<InletSource>,
    /// Fresh outlet reading, °C.
    pub outlet_c: Option<f64>,
    /// Fresh humidity reading, %.
    pub humidity_percent: Option<f64>,
    /// Fresh outdoor reading, °C.
    pub outdoor_c: Option<f64>,
    /// Fans and pump running, W: facility load that is not IT.
    pub aux_watts: f64,
    /// Every bank runs that the controller may run (all but those forced off): more air is
    /// not available, so heat is the miners' to shed.
    pub cooling_exhausted: bool,
    /// Every fan forced on because sensors or control were lost.
    pub fail_safe: bool,
    /// Alarms in force.
    pub alarms: Vec<ClimateAlarm>,
    /// The alarm set differs from the previous tick's (log once, not every tick).
    pub alarms_changed: bool,
    /// Switches made this tick.
    pub changes: Vec<Change>,
}

/// Climate control for every container that has it.
#[derive(Debug, Clone, Default)]
pub struct Climate {
    containers: Vec<Runtime>,
    index: HashMap<Arc<str>, usize>,
}

fn fresh(r: Reading, now: Instant, max_age: Duration) -> Option<f64> {
    r.filter(|(at, _)| now.saturating_duration_since(*at) <= max_age)
        .map(|(_, v)| v)
}

/// Keeps the newest of two readings (a late poll answer must not overwrite a newer one).
fn newest(slot: &mut Reading, at: Instant, value: Option<f64>) {
    if let Some(v) = value
        && slot.is_none_or(|(prev, _)| prev <= at)
    {
        *slot = Some((at, v));
    }
}

impl Climate {
    /// Builds the controller for `(container name, spec)` pairs. Every fan starts assumed
    /// on (the first tick writes that): a restart may not know the relays, and too much air
    /// is the safe mistake.
    pub fn new<'a>(containers: impl IntoIterator<Item = (Arc<str>, &'a ClimateSpec)>) -> Self {
        let containers: Vec<Runtime> = containers
            .into_iter()
            .map(|(name, spec)| Runtime {
                name,
                fans: vec![Device::new(true); spec.fans.len()],
                pump: Device::new(false),
                spec: spec.clone(),
                inlet: None,
                outlet: None,
                humidity: None,
                outdoor: None,
                miners_inlet: None,
                last_stage: None,
                last_inlet: None,
                probe: None,
                step_effect_c: None,
                last_tick: None,
                control_lost: false,
                alarms: Vec::new(),
            })
            .collect();
        let index = containers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        Self { containers, index }
    }

    /// Whether `container` has climate control.
    pub fn has(&self, container: &str) -> bool {
        self.index.contains_key(container)
    }

    /// Container names in config order.
    pub fn containers(&self) -> impl Iterator<Item = &Arc<str>> {
        self.containers.iter().map(|c| &c.name)
    }

    /// The spec of a container's climate control.
    pub fn spec(&self, container: &str) -> Option<&ClimateSpec> {
        self.index
            .get(container)
            .and_then(|&i| self.containers.get(i))
            .map(|c| &c.spec)
    }

    fn runtime(&mut self, container: &str) -> Result<&mut Runtime, ClimateError> {
        self.index
            .get(container)
            .and_then(|&i| self.containers.get_mut(i))
            .ok_or_else(|| ClimateError::UnknownContainer(container.to_owned()))
    }

    /// A container's fan bank by name, or its pump (`"pump"`, when it has one).
    fn device(&mut self, container: &str, device: &str) -> Result<&mut Device, ClimateError> {
        let c = self.runtime(container)?;
        let unknown = || ClimateError::UnknownDevice {
            container: container.to_owned(),
            device: device.to_owned(),
        };
        if device == "pump" {
            return if c.spec.pump.is_some() {
                Ok(&mut c.pump)
            } else {
                Err(unknown())
            };
        }
        let i = c
            .spec
            .fans
            .iter()
            .position(|f| &*f.name == device)
            .ok_or_else(unknown)?;
        c.fans.get_mut(i).ok_or_else(unknown)
    }

    /// Adds running time counted before this process (the ledger's record) to a fan bank
    /// (by name) or the pump (`"pump"`), so rotation by run hours goes on from where the
    /// last run left it. Call before the first tick; a negative or non-finite figure is
    /// ignored.
    ///
    /// # Errors
    /// [`ClimateError::UnknownContainer`], [`ClimateError::UnknownDevice`] (a bank renamed
    /// or removed since it was recorded).
    pub fn add_prior_run(
        &mut self,
        container: &str,
        device: &str,
        run: f64,
    ) -> Result<(), ClimateError> {
        let slot = self.device(container, device)?;
        if let Ok(prior) = Duration::try_from_secs_f64(run) {
            slot.run += prior;
        }
        Ok(())
    }

    /// Records one sensor poll taken at `at`. Implausible values are dropped (the sensor
    /// then goes stale like an unreadable one); the count of dropped values is returned so
    /// the driver can count them.
    ///
    /// # Errors
    /// [`ClimateError::UnknownContainer`].
    pub fn observe_sensors(
        &mut self,
        container: &str,
        at: Instant,
        readings: SensorReadings,
    ) -> Result<usize, ClimateError> {
        let c = self.runtime(container)?;
        let mut dropped = 0;
        let mut keep = |v: Option<f64>, range: &std::ops::RangeInclusive<f64>| {
            v.filter(|v| {
                let ok = range.contains(v);
                dropped += usize::from(!ok);
                ok
            })
        };
        let inlet = keep(readings.inlet_c, &PLAUSIBLE_C);
        let outlet = keep(readings.outlet_c, &PLAUSIBLE_C);
        let humidity = keep(readings.humidity_percent, &PLAUSIBLE_RH);
        let outdoor = keep(readings.outdoor_c, &PLAUSIBLE_C);
        newest(&mut c.inlet, at, inlet);
        newest(&mut c.outlet, at, outlet);
        newest(&mut c.humidity, at, humidity);
        newest(&mut c.outdoor, at, outdoor);
        Ok(dropped)
    }

    /// Records the hottest fresh inlet among the container's miners (the fallback inlet).
    ///
    /// # Errors
    /// [`ClimateError::UnknownContainer`].
    pub fn observe_miner_inlet(
        &mut self,
        container: &str,
        at: Instant,
        inlet_c: Option<f64>,
    ) -> Result<(), ClimateError> {
        let c = self.runtime(container)?;
        newest(
            &mut c.miners_inlet,
            at,
            inlet_c.filter(|v| PLAUSIBLE_C.contains(v)),
        );
        Ok(())
    }

    /// Every relay was written and read back as commanded: control is restored.
    ///
    /// # Errors
    /// [`ClimateError::UnknownContainer`].
    pub fn control_ok(&mut self, container: &str) -> Result<(), ClimateError> {
        self.runtime(container)?.control_lost = false;
        Ok(())
    }

    /// A relay write failed or read back other than commanded: fail safe from the next tick.
    ///
    /// # Errors
    /// [`ClimateError::UnknownContainer`].
    pub fn control_failed(&mut self, container: &str) -> Result<(), ClimateError> {
        self.runtime(container)?.control_lost = true;
        Ok(())
    }

    /// Forces a fan bank (by name) or the pump (`"pump"`) on or off, or returns it to the
    /// controller (`Auto`). The next tick applies it.
    ///
    /// # Errors
    /// [`ClimateError::UnknownContainer`], [`ClimateError::UnknownDevice`].
    pub fn set_override(
        &mut self,
        container: &str,
        device: &str,
        mode: Override,
    ) -> Result<(), ClimateError> {
        self.device(container, device)?.mode = mode;
        Ok(())
    }

    /// Runs one tick at `now` for every container and returns the relay states to write.
    pub fn tick(&mut self, now: Instant) -> Vec<ClimateReport> {
        self.containers.iter_mut().map(|c| c.tick(now)).collect()
    }
}

impl Runtime {
    fn tick(&mut self, now: Instant) -> ClimateReport {
        if let Some(prev) = self.last_tick {
            let dt = now.saturating_duration_since(prev);
            for d in self.fans.iter_mut().chain(std::iter::once(&mut self.pump)) {
                if d.on {
                    d.run += dt;
                }
            }
        }
        self.last_tick = Some(now);
        let age = self.spec.sensor_max_age;
        let (inlet, source) = match (
            fresh(self.inlet, now, age),
            fresh(self.miners_inlet, now, age),
        ) {
            (Some(t), _) => (Some(t), Some(InletSource::Sensor)),
            (None, Some(t)) => (Some(t), Some(InletSource::Miners)),
            (None, None) => (None, None),
        };
        let humidity = fresh(self.humidity, now, age);
        let outdoor = fresh(self.outdoor, now, age);
        let mut alarms = Vec::new();
        if inlet.is_none() {
            alarms.push(ClimateAlarm::SensorsLost);
        }
        if self.spec.pump.is_some() && humidity.is_none() {
            alarms.push(ClimateAlarm::HumidityLost);
        }
        if self.control_lost {
            alarms.push(ClimateAlarm::ControlLost);
        }
        let mut changes = Vec::new();
        let fail_safe = match inlet {
            Some(t) if !self.control_lost => {
                self.stage(t, now, &mut changes);
                false
            }
            _ => {
                // Whatever the air does now says nothing about one bank's effect.
                self.probe = None;
                self.last_inlet = None;
                for (i, f) in self.fans.iter_mut().enumerate() {
                    if f.switch(true, now) {
                        changes.push(Change::FanOn(i));
                    }
                }
                true
            }
        };
        self.pump(inlet, outdoor, humidity, fail_safe, now, &mut changes);
        if let Some(t) = inlet
            && !fail_safe
            && self.pump.mode == Override::Auto
            && changes.contains(&Change::PumpOff)
        {
            self.cover_pump_stop(t, now, &mut changes);
        }

        let fans_running = self.fans.iter().filter(|f| f.on).count();
        // A bank forced off is the operator's call: the controller has no more air to give,
        // so heat must become the miners' to shed rather than wait for a fan that won't come.
        let cooling_exhausted = self.fans.iter().all(|f| f.on || f.mode == Override::Off);
        if cooling_exhausted && inlet.is_some_and(|t| t > self.spec.band.high_c) {
            alarms.push(ClimateAlarm::OverTemperatureAllFans);
        }
        let alarms_changed = alarms != self.alarms;
        self.alarms.clone_from(&alarms);
        let hours = |d: &Device| d.run.as_secs_f64() / 3600.0;
        let mut aux_watts: f64 = self
            .fans
            .iter()
            .zip(&self.spec.fans)
            .filter(|(d, _)| d.on)
            .map(|(_, s)| s.watts)
            .fold(0.0, |a, w| a + w);
        let pump = self.spec.pump.map(|p| {
            if self.pump.on {
                aux_watts += p.watts;
            }
            PumpReport {
                on: self.pump.on,
                mode: self.pump.mode,
                run_hours: hours(&self.pump),
            }
        });
        ClimateReport {
            name: self.name.clone(),
            fans: self
                .fans
                .iter()
                .zip(&self.spec.fans)
                .map(|(d, s)| FanReport {
                    name: s.name.clone(),
                    on: d.on,
                    mode: d.mode,
                    run_hours: hours(d),
                })
                .collect(),
            pump,
            fans_running,
            inlet_c: inlet,
            inlet_source: source,
            outlet_c: fresh(self.outlet, now, age),
            humidity_percent: humidity,
            outdoor_c: outdoor,
            aux_watts,
            cooling_exhausted,
            fail_safe,
            alarms,
            alarms_changed,
            changes,
        }
    }

    /// Overrides, then at most one automatic step.
    fn stage(&mut self, inlet: f64, now: Instant, changes: &mut Vec<Change>) {
        for (i, f) in self.fans.iter_mut().enumerate() {
            let want = match f.mode {
                Override::On => true,
                Override::Off => false,
                Override::Auto => continue,
            };
            if f.switch(want, now) {
                self.probe = None;
                changes.push(if want {
                    Change::FanOn(i)
                } else {
                    Change::FanOff(i)
                });
            }
        }
        // Within `hysteresis_c` of the top and rising so fast that the next reading is over
        // it: a bank started now keeps the inlet at or under the top instead of reacting one
        // tick after it left the band. Farther down a jump is a glitch, not a trend.
        let rise = self
            .last_inlet
            .filter(|_| inlet > self.spec.band.high_c - self.spec.band.hysteresis_c)
            .map_or(0.0, |p| (inlet - p).max(0.0));
        self.last_inlet = Some(inlet);
        let due = self
            .last_stage
            .is_none_or(|t| now.saturating_duration_since(t) >= self.spec.stage_interval);
        if !due {
            return;
        }
        self.learn(inlet, now);
        let band = self.spec.band;
        // Stop a bank inside the band only when what one bank does is known and the inlet
        // would still stay `hysteresis_c` under the top: the fewest fans, without hunting.
        let spare = self
            .step_effect_c
            .is_some_and(|e| inlet + e + band.hysteresis_c <= band.high_c);
        let (min_on, min_off) = (self.spec.fan_min_on, self.spec.fan_min_off);
        let auto = self
            .fans
            .iter()
            .enumerate()
            .filter(|(_, f)| f.mode == Override::Auto);
        let step = if inlet + rise > band.high_c {
            // Fewest hours first; wiring order breaks ties so the choice is stable.
            auto.filter(|(_, f)| !f.on && !f.held(now, min_off))
                .min_by(|a, b| a.1.run.cmp(&b.1.run).then(a.0.cmp(&b.0)))
                .map(|(i, _)| (i, true))
        } else if inlet < band.low_c || spare {
            auto.filter(|(_, f)| f.on && !f.held(now, min_on))
                .max_by(|a, b| a.1.run.cmp(&b.1.run).then(a.0.cmp(&b.0)))
                .map(|(i, _)| (i, false))
        } else {
            None
        };
        if let Some((i, on)) = step
            && let Some(f) = self.fans.get_mut(i)
            && f.switch(on, now)
        {
            self.last_stage = Some(now);
            self.probe = Some((now, on, inlet));
            changes.push(if on {
                Change::FanOn(i)
            } else {
                Change::FanOff(i)
            });
        }
    }

    /// The curtain stopping warms the supply air by its whole wet-bulb depression within a
    /// tick or two, faster than one step per `stage_interval` can follow: the banks that
    /// held the inlet with the curtain may not hold it without (the hot-day trace left the
    /// band by 0.12 °C that way). So one more automatic bank starts with the stop, unless
    /// the inlet is already under the band; if it turns out spare, the stage-down rule
    /// takes it off one interval later.
    fn cover_pump_stop(&mut self, inlet: f64, now: Instant, changes: &mut Vec<Change>) {
        if inlet < self.spec.band.low_c {
            return;
        }
        let min_off = self.spec.fan_min_off;
        let next = self
            .fans
            .iter()
            .enumerate()
            .filter(|(_, f)| f.mode == Override::Auto && !f.on && !f.held(now, min_off))
            .min_by(|a, b| a.1.run.cmp(&b.1.run).then(a.0.cmp(&b.0)))
            .map(|(i, _)| i);
        if let Some(i) = next
            && let Some(f) = self.fans.get_mut(i)
            && f.switch(true, now)
        {
            self.last_stage = Some(now);
            // The pump switch spoils what this step would teach about one bank.
            self.probe = None;
            changes.push(Change::FanOn(i));
        }
    }

    /// Once the last step has had `stage_interval` to show, takes what it changed into the
    /// running estimate of one bank's effect. A change the wrong way (weather outran the
    /// step) teaches nothing; a pump switch in between spoils the reading (see `pump`).
    fn learn(&mut self, inlet: f64, now: Instant) {
        let Some((at, up, before)) = self.probe else {
            return;
        };
        if now.saturating_duration_since(at) < self.spec.stage_interval {
            return;
        }
        self.probe = None;
        let effect = if up { before - inlet } else { inlet - before };
        if effect > 0.0 {
            // Halfway to the new figure: one odd reading cannot swing it far.
            self.step_effect_c = Some(self.step_effect_c.map_or(effect, |e| (e + effect) / 2.0));
        }
    }

    fn pump(
        &mut self,
        inlet: Option<f64>,
        outdoor: Option<f64>,
        humidity: Option<f64>,
        fail_safe: bool,
        now: Instant,
        changes: &mut Vec<Change>,
    ) {
        let Some(p) = self.spec.pump else {
            return;
        };
        let any_fan = self.fans.iter().any(|f| f.on);
        let want = if fail_safe {
            self.spec.pump_on_failure
        } else {
            match self.pump.mode {
                Override::On => true,
                Override::Off => false,
                Override::Auto => match (outdoor.or(inlet), humidity) {
                    (_, None) => self.spec.pump_on_failure,
                    (None, Some(_)) => self.spec.pump_on_failure,
                    (Some(t), Some(rh)) => {
                        let helps = t > p.on_above_c && rh < p.max_humidity_percent;
                        let useless = t < p.on_above_c - p.hysteresis_c
                            || rh > p.max_humidity_percent + HUMIDITY_HYSTERESIS;
                        let wanted = if self.pump.on { !useless } else { helps };
                        // Min times hold automatic switching only.
                        if wanted != self.pump.on
                            && self
                                .pump
                                .held(now, if self.pump.on { p.min_on } else { p.min_off })
                        {
                            self.pump.on
                        } else {
                            wanted
                        }
                    }
                },
            }
        };
        // Water on a pad with no air through it only wets the floor.
        let want = want && (any_fan || self.pump.mode == Override::On);
        if self.pump.switch(want, now) {
            self.probe = None;
            changes.push(if want {
                Change::PumpOn
            } else {
                Change::PumpOff
            });
        }
    }
}
