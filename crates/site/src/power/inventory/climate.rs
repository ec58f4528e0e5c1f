//! `[power.containers.climate]`: the container's climate sensors and fan/pump relays on a
//! Modbus TCP device (an RS-485 gateway, usually), the inlet band and the timings, as
//! written ([`ClimateRaw`]) and validated ([`ClimateSetup`]).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::Address;
use crate::climate::{Band, ClimateSpec, FanBankSpec, PumpSpec};
use crate::modbus::{DataType, Function, Point, Unit, WordOrder};

/// Modbus TCP's registered port.
const MODBUS_PORT: u16 = 502;

/// One `[power.containers.climate]` section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClimateRaw {
    /// The Modbus TCP device (or gateway) the sensors and relays sit on: `host[:port]`.
    pub device: String,
    /// Unit id (slave address) of every point that does not name its own; default 1.
    pub unit_id: Option<u8>,
    /// Below this inlet temperature a fan bank is stopped, °C.
    pub band_low_c: f64,
    /// Above this inlet temperature a fan bank is started, °C.
    pub band_high_c: f64,
    /// Margin under `band_high_c` a predicted stop must keep, °C; default 0.5.
    pub hysteresis_c: Option<f64>,
    /// Least time between two staging steps, seconds; default 300.
    pub stage_interval_secs: Option<u64>,
    /// Least time a started bank runs, seconds; default 600.
    pub fan_min_on_secs: Option<u64>,
    /// Least time a stopped bank rests, seconds; default 300.
    pub fan_min_off_secs: Option<u64>,
    /// A sensor reading older than this is lost, seconds; default 60.
    pub sensor_max_age_secs: Option<u64>,
    /// Pump state while failing safe: `on` or `off`; default `on`.
    pub pump_on_failure: Option<OnOff>,
    /// Container inlet temperature sensor; the miners' own inlet readings stand in when it
    /// is absent or lost.
    pub inlet: Option<SensorRaw>,
    /// Exhaust temperature sensor (shown, not used for control).
    pub outlet: Option<SensorRaw>,
    /// Relative humidity of the air entering the curtain; needed with a pump.
    pub humidity: Option<SensorRaw>,
    /// Outdoor temperature; the pump follows the inlet without it.
    pub outdoor: Option<SensorRaw>,
    /// Fan banks in wiring order, at least one.
    pub fans: Vec<FanRaw>,
    /// The curtain pump.
    pub pump: Option<PumpRaw>,
}

/// `on` / `off` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// A sensor's register as written: `{ register = "input", address = 1, type = "i16",
/// scale = 0.1 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorRaw {
    /// Register table: `input` (default) or `holding`.
    pub register: Option<Function>,
    /// 0-based wire address.
    pub address: u16,
    /// Encoding: `i16` (default), `u16`, `i32`, `u32`, `f32`, ...
    #[serde(rename = "type")]
    pub data_type: Option<DataType>,
    /// Word order of multi-register values: `big` (default) or `little`.
    pub word_order: Option<WordOrder>,
    /// Factor from the register to °C or % (0.1 for tenths); default 1.
    pub scale: Option<f64>,
    /// Unit id, when not the device's.
    pub unit_id: Option<u8>,
}

/// One fan bank as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanRaw {
    /// Name in logs, metrics and the admin API.
    pub name: String,
    /// Rated electrical draw, W.
    pub watts: f64,
    /// 0-based coil address of its relay.
    pub coil: u16,
    /// Unit id, when not the device's.
    pub unit_id: Option<u8>,
}

/// The curtain pump as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PumpRaw {
    /// Rated electrical draw, W.
    pub watts: f64,
    /// 0-based coil address of its relay.
    pub coil: u16,
    /// Unit id, when not the device's.
    pub unit_id: Option<u8>,
    /// Runs only while the air entering the curtain is above this, °C.
    pub on_above_c: f64,
    /// Stops below `on_above_c` minus this, °C; default 2.
    pub hysteresis_c: Option<f64>,
    /// Runs only while humidity is below this, %; default 70.
    pub max_humidity_percent: Option<f64>,
    /// Least time on once started, seconds; default 600.
    pub min_on_secs: Option<u64>,
    /// Least time off once stopped, seconds; default 600.
    pub min_off_secs: Option<u64>,
}

/// A relay output: coil address on a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coil {
    /// Unit id.
    pub unit_id: u8,
    /// 0-based coil address.
    pub address: u16,
}

/// The container's climate sensors, each a Modbus point in °C or %.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SensorPoints {
    /// Inlet temperature.
    pub inlet: Option<Point>,
    /// Outlet temperature.
    pub outlet: Option<Point>,
    /// Relative humidity.
    pub humidity: Option<Point>,
    /// Outdoor temperature.
    pub outdoor: Option<Point>,
}

/// A container's climate control, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ClimateSetup {
    /// The Modbus TCP device of the sensors and relays.
    pub device: Address,
    /// Sensor points.
    pub sensors: SensorPoints,
    /// Each fan bank's relay, in the order of `spec.fans`.
    pub fan_coils: Vec<Coil>,
    /// The pump's relay, when `spec.pump` is set.
    pub pump_coil: Option<Coil>,
    /// The rules the controller follows.
    pub spec: ClimateSpec,
}

type Problem = (&'static str, String);

fn number(v: f64, field: &'static str) -> Result<f64, Problem> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err((field, "must be a finite number".into()))
    }
}

fn secs(v: Option<u64>, default: u64, field: &'static str) -> Result<Duration, Problem> {
    match v {
        Some(0) => Err((field, "must be > 0".into())),
        v => Ok(Duration::from_secs(v.unwrap_or(default))),
    }
}

impl SensorRaw {
    fn point(&self, unit_id: u8, unit: Unit, field: &'static str) -> Result<Point, Problem> {
        let function = self.register.unwrap_or(Function::Input);
        if function.is_bits() {
            return Err((field, "register must be input or holding".into()));
        }
        let scale = number(self.scale.unwrap_or(1.0), field)?;
        if scale == 0.0 {
            return Err((field, "scale must not be 0".into()));
        }
        Ok(Point {
            function,
            unit_id: self.unit_id.unwrap_or(unit_id),
            address: self.address,
            data_type: self.data_type.unwrap_or(DataType::I16),
            word_order: self.word_order.unwrap_or_default(),
            scale,
            unit,
        })
    }
}

impl ClimateRaw {
    /// Checks every value; the error names the field under `climate.`.
    ///
    /// # Errors
    /// `(field, problem)` for the first bad value.
    pub(super) fn validate(&self) -> Result<ClimateSetup, Problem> {
        let device =
            Address::parse(&self.device, Some(MODBUS_PORT)).map_err(|e| ("climate.device", e))?;
        let unit_id = self.unit_id.unwrap_or(1);
        let low_c = number(self.band_low_c, "climate.band_low_c")?;
        let high_c = number(self.band_high_c, "climate.band_high_c")?;
        if high_c - low_c < 1.0 {
            return Err((
                "climate.band_high_c",
                "must be at least 1 °C above band_low_c (the band is what keeps fans from hunting)"
                    .into(),
            ));
        }
        let hysteresis_c = number(self.hysteresis_c.unwrap_or(0.5), "climate.hysteresis_c")?;
        if hysteresis_c < 0.0 {
            return Err(("climate.hysteresis_c", "must be >= 0".into()));
        }
        let sensor = |s: &Option<SensorRaw>, unit, field| {
            s.as_ref()
                .map(|s| s.point(unit_id, unit, field))
                .transpose()
        };
        let sensors = SensorPoints {
            inlet: sensor(&self.inlet, Unit::Celsius, "climate.inlet")?,
            outlet: sensor(&self.outlet, Unit::Celsius, "climate.outlet")?,
            humidity: sensor(&self.humidity, Unit::Percent, "climate.humidity")?,
            outdoor: sensor(&self.outdoor, Unit::Celsius, "climate.outdoor")?,
        };
        if self.fans.is_empty() {
            return Err(("climate.fans", "must list at least one fan bank".into()));
        }
        let mut fans = Vec::with_capacity(self.fans.len());
        let mut coils: Vec<Coil> = Vec::with_capacity(self.fans.len() + 1);
        for f in &self.fans {
            let name = f.name.trim();
            if name.is_empty() || name == "pump" || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err((
                    "climate.fans.name",
                    format!(
                        "\"{}\" must be printable, without spaces, and not \"pump\"",
                        f.name
                    ),
                ));
            }
            if fans.iter().any(|x: &FanBankSpec| &*x.name == name) {
                return Err(("climate.fans.name", format!("\"{name}\" is used twice")));
            }
            let watts = number(f.watts, "climate.fans.watts")?;
            if watts < 0.0 {
                return Err(("climate.fans.watts", "must be >= 0".into()));
            }
            fans.push(FanBankSpec {
                name: Arc::from(name),
                watts,
            });
            coils.push(Coil {
                unit_id: f.unit_id.unwrap_or(unit_id),
                address: f.coil,
            });
        }
        let (pump, pump_coil) = match &self.pump {
            None => (None, None),
            Some(p) => {
                if sensors.humidity.is_none() {
                    return Err((
                        "climate.pump",
                        "needs a climate.humidity sensor: evaporation only helps in dry air".into(),
                    ));
                }
                let watts = number(p.watts, "climate.pump.watts")?;
                let hysteresis_c =
                    number(p.hysteresis_c.unwrap_or(2.0), "climate.pump.hysteresis_c")?;
                let max_humidity_percent = number(
                    p.max_humidity_percent.unwrap_or(70.0),
                    "climate.pump.max_humidity_percent",
                )?;
                if watts < 0.0
                    || hysteresis_c < 0.0
                    || !(0.0..=100.0).contains(&max_humidity_percent)
                {
                    return Err((
                        "climate.pump",
                        "watts and hysteresis_c must be >= 0, max_humidity_percent 0..100".into(),
                    ));
                }
                let coil = Coil {
                    unit_id: p.unit_id.unwrap_or(unit_id),
                    address: p.coil,
                };
                let spec = PumpSpec {
                    watts,
                    on_above_c: number(p.on_above_c, "climate.pump.on_above_c")?,
                    hysteresis_c,
                    max_humidity_percent,
                    min_on: secs(p.min_on_secs, 600, "climate.pump.min_on_secs")?,
                    min_off: secs(p.min_off_secs, 600, "climate.pump.min_off_secs")?,
                };
                (Some(spec), Some(coil))
            }
        };
        if let Some(c) = pump_coil {
            coils.push(c);
        }
        for (i, c) in coils.iter().enumerate() {
            if coils.iter().skip(i + 1).any(|o| o == c) {
                return Err((
                    "climate.fans.coil",
                    format!(
                        "coil {} on unit {} drives two devices",
                        c.address, c.unit_id
                    ),
                ));
            }
        }
        let fan_coils = coils.iter().take(fans.len()).copied().collect();
        Ok(ClimateSetup {
            device,
            sensors,
            fan_coils,
            pump_coil,
            spec: ClimateSpec {
                fans,
                pump,
                band: Band {
                    low_c,
                    high_c,
                    hysteresis_c,
                },
                stage_interval: secs(self.stage_interval_secs, 300, "climate.stage_interval_secs")?,
                fan_min_on: secs(self.fan_min_on_secs, 600, "climate.fan_min_on_secs")?,
                fan_min_off: secs(self.fan_min_off_secs, 300, "climate.fan_min_off_secs")?,
                sensor_max_age: secs(self.sensor_max_age_secs, 60, "climate.sensor_max_age_secs")?,
                pump_on_failure: self.pump_on_failure != Some(OnOff::Off),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::power::inventory::PowerConfig;

    fn with(climate: &str) -> Result<PowerConfig, String> {
        let text = format!(
            "[[containers]]\nname = \"c1\"\nbudget_kw = 100\n[containers.climate]\n{climate}"
        );
        PowerConfig::from_toml_str(&text).map_err(|e| e.to_string())
    }

    const FANS: &str = "fans = [ { name = \"f1\", watts = 1100, coil = 0 }, \
                        { name = \"f2\", watts = 1100, coil = 1, unit_id = 3 } ]\n";

    #[test]
    fn a_minimal_section_takes_the_defaults() {
        let cfg = with(&format!(
            "device = \"10.0.0.5\"\nband_low_c = 24\nband_high_c = 29\n{FANS}\
             inlet = {{ address = 7, scale = 0.1 }}\n"
        ))
        .expect("valid");
        let c = cfg.containers[0].climate.as_ref().expect("climate");
        assert_eq!(c.device.to_string(), "10.0.0.5:502");
        assert_eq!(c.fan_coils[1].unit_id, 3);
        assert_eq!(c.fan_coils[0].unit_id, 1);
        let inlet = c.sensors.inlet.expect("inlet");
        assert_eq!((inlet.address, inlet.scale), (7, 0.1));
        assert_eq!(c.spec.stage_interval.as_secs(), 300);
        assert!(c.spec.pump.is_none() && c.spec.pump_on_failure);
    }

    #[test]
    fn bad_sections_name_the_field() {
        let base = "device = \"10.0.0.5\"\n";
        for (text, field) in [
            (
                format!("{base}band_low_c = 28\nband_high_c = 28.5\n{FANS}"),
                "climate.band_high_c",
            ),
            (
                format!("{base}band_low_c = 24\nband_high_c = 29\nfans = []\n"),
                "climate.fans",
            ),
            (
                format!(
                    "{base}band_low_c = 24\nband_high_c = 29\n{FANS}\
                     pump = {{ watts = 750, coil = 5, on_above_c = 27 }}\n"
                ),
                "climate.pump needs a climate.humidity",
            ),
            (
                format!(
                    "{base}band_low_c = 24\nband_high_c = 29\n{FANS}\
                     humidity = {{ address = 1 }}\n\
                     pump = {{ watts = 750, coil = 0, on_above_c = 27 }}\n"
                ),
                "drives two devices",
            ),
            (
                format!(
                    "{base}band_low_c = 24\nband_high_c = 29\n\
                     fans = [ {{ name = \"pump\", watts = 1, coil = 0 }} ]\n"
                ),
                "climate.fans.name",
            ),
            (
                format!("{base}band_low_c = 24\nband_high_c = 29\nstage_interval_secs = 0\n{FANS}"),
                "climate.stage_interval_secs",
            ),
            (
                format!(
                    "{base}band_low_c = 24\nband_high_c = 29\n{FANS}\
                     inlet = {{ register = \"coil\", address = 1 }}\n"
                ),
                "climate.inlet",
            ),
        ] {
            let err = with(&text).expect_err(&text);
            assert!(err.contains(field), "{err} should name {field}");
            assert!(err.contains("container \"c1\""), "{err}");
        }
    }
}
