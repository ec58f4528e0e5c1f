//! A container's climate equipment and rules, validated: fan banks, the curtain pump, the
//! inlet band and the timings that protect motors and pumps.

use std::sync::Arc;
use std::time::Duration;

/// One exhaust fan bank: switched as a unit through one relay.
#[derive(Debug, Clone, PartialEq)]
pub struct FanBankSpec {
    /// Name in logs, metrics labels and the admin API (`fan1`, `east`, ...).
    pub name: Arc<str>,
    /// Electrical draw while running, W; counted as auxiliary (non-IT) load.
    pub watts: f64,
}

/// The water-curtain pump and when evaporation is worth running it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PumpSpec {
    /// Electrical draw while running, W.
    pub watts: f64,
    /// Runs only while the air entering the curtain (outdoor, else inlet) is above this, °C.
    pub on_above_c: f64,
    /// Stops once that air is below `on_above_c - hysteresis_c`.
    pub hysteresis_c: f64,
    /// Runs only while relative humidity is below this, %: wet air cannot take more water.
    pub max_humidity_percent: f64,
    /// Least time on once started (a wet pad that dries at once scales up).
    pub min_on: Duration,
    /// Least time off once stopped.
    pub min_off: Duration,
}

/// Inlet air band the fans hold: above `high_c` a bank is added; below `low_c` one is
/// removed, and so it is inside the band once the controller has learnt what one bank
/// does and removing one would still leave the inlet `hysteresis_c` under `high_c` (the
/// fewest fans that hold the band).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// Below this a bank is stopped whatever was learnt, °C.
    pub low_c: f64,
    /// Above this a bank is started, °C.
    pub high_c: f64,
    /// Margin under `high_c` a predicted stop must keep, °C: the hysteresis between
    /// stopping a bank and needing it again.
    pub hysteresis_c: f64,
}

/// A container's climate control, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ClimateSpec {
    /// Fan banks in wiring order; the order breaks ties in rotation.
    pub fans: Vec<FanBankSpec>,
    /// The curtain pump, when the container has one.
    pub pump: Option<PumpSpec>,
    /// Inlet band.
    pub band: Band,
    /// Least time between two staging steps: the air needs this long to show a step.
    pub stage_interval: Duration,
    /// Least time a bank runs once started (motor starts are what wear fans out).
    pub fan_min_on: Duration,
    /// Least time a bank rests once stopped.
    pub fan_min_off: Duration,
    /// A sensor reading older than this is lost.
    pub sensor_max_age: Duration,
    /// Pump state while failing safe (sensors or control lost): on keeps cooling at its
    /// best, off keeps water off a pad no one can watch.
    pub pump_on_failure: bool,
}

impl ClimateSpec {
    /// A spec with `fans` banks of `watts` each, for tests and the lab; timings are short.
    pub fn uniform(fans: usize, watts: f64, band: Band) -> Self {
        Self {
            fans: (1..=fans)
                .map(|i| FanBankSpec {
                    name: Arc::from(format!("fan{i}")),
                    watts,
                })
                .collect(),
            pump: None,
            band,
            stage_interval: Duration::from_secs(60),
            fan_min_on: Duration::from_secs(120),
            fan_min_off: Duration::from_secs(60),
            sensor_max_age: Duration::from_secs(60),
            pump_on_failure: true,
        }
    }
}
