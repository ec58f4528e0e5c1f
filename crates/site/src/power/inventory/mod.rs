//! Power inventory: the containers (feed budget, cooling limit, tuning) and the miners in
//! them (management address, firmware family, nameplate power and hashrate).
//!
//! Read as TOML into [`PowerConfigRaw`] (every struct `deny_unknown_fields`, so a typo is an
//! error and not a silently ignored setting), then [`PowerConfigRaw::validate`] turns it into
//! [`PowerConfig`] with typed values. In `hashgate.toml` this is the `[power]` section; on its
//! own (as in `config/power-example.toml`) the same keys sit at the top level.

//!
//! | file | owns |
//! |---|---|
//! | `raw.rs` | the serde structs as written (`*Raw`) |
//! | `validate.rs` | raw → typed, with the bounds that catch unit slips |
//! | `address.rs` | [`Address`] and each family's [`default_port`] |
//! | `climate.rs` | `[power.containers.climate]`: sensors and relays on a Modbus device, band and timings ([`ClimateSetup`]) |
//! | `error.rs` | [`InventoryError`] |
//! | this file | the typed inventory ([`PowerConfig`], [`ContainerSpec`], [`MinerSpec`], …) and [`Pin`] |

mod address;
mod climate;
mod error;
mod raw;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::modbus::{MeterMap, MeterModel};
use crate::power::api::{Credentials, Family, Timeouts};

pub use address::{Address, default_port};
pub use climate::{
    ClimateRaw, ClimateSetup, Coil, FanRaw, OnOff, PumpRaw, SensorPoints, SensorRaw,
};
pub use error::InventoryError;
pub use raw::{
    AlarmsRaw, ContainerRaw, ControllerRaw, DriverRaw, MeterKind, MeterRaw, MeterUnit, MinerRaw,
    PowerConfigRaw,
};

/// A manual override of the controller for one miner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pin {
    /// Never put to sleep; woken first when asleep and it fits the budget.
    KeepOn,
    /// Put to sleep now and never woken.
    KeepOff,
    /// Left alone entirely (a technician has it); counted but never commanded, no alarms.
    Maintenance,
}

impl Pin {
    /// Stable snake_case label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Pin::KeepOn => "keep_on",
            Pin::KeepOff => "keep_off",
            Pin::Maintenance => "maintenance",
        }
    }
}

/// Validated `[power]` section.
#[derive(Debug, Clone)]
pub struct PowerConfig {
    /// Admin API bearer token; `None` disables the admin write routes.
    pub admin_token: Option<AdminToken>,
    /// Driver polling and deadlines.
    pub driver: DriverSettings,
    /// Controller-wide timing.
    pub controller: ControllerSettings,
    /// Alarm thresholds.
    pub alarms: AlarmRules,
    /// Containers in config order.
    pub containers: Vec<ContainerSpec>,
    /// Miners in config order; `container` indexes [`Self::containers`].
    pub miners: Vec<MinerSpec>,
}

/// The admin API bearer token; `Debug` redacts it so it never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// Shortest token accepted: shorter ones are guessable.
    pub const MIN_LEN: usize = 16;

    /// Checks and wraps a token.
    ///
    /// # Errors
    /// A text saying why the token is refused (too short, or has whitespace).
    pub fn new(token: &str) -> Result<AdminToken, String> {
        if token.len() < Self::MIN_LEN {
            return Err(format!("must be at least {} characters", Self::MIN_LEN));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be printable ASCII without spaces".into());
        }
        Ok(AdminToken(token.to_owned()))
    }

    /// The token text, for comparing with a request's `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// How the driver runs, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriverSettings {
    /// Time between two polls and controller ticks.
    pub tick: Duration,
    /// Management API calls in flight at once.
    pub max_concurrent_calls: NonZeroUsize,
    /// Deadlines of each miner and meter call.
    pub timeouts: Timeouts,
}

impl Default for DriverSettings {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(10),
            // 64 sockets at once polls 1,000 healthy miners (~50 ms each) in under a second
            // without a burst on the control network.
            max_concurrent_calls: NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN),
            timeouts: Timeouts::default(),
        }
    }
}

/// Controller-wide timing, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerSettings {
    /// Telemetry older than this counts as no answer.
    pub telemetry_max_age: Duration,
    /// An ordered sleep unconfirmed for this long is retried.
    pub sleep_confirm_timeout: Duration,
    /// A woken miner counts at least at nominal for this long.
    pub wake_ramp: Duration,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        Self {
            telemetry_max_age: Duration::from_secs(60),
            sleep_confirm_timeout: Duration::from_secs(120),
            wake_ramp: Duration::from_secs(300),
        }
    }
}

/// Alarm thresholds, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlarmRules {
    /// Awake with no share for this long is an alarm.
    pub no_shares_after: Duration,
    /// API hashrate above proven × (1 + margin) is an alarm.
    pub hashrate_margin: f64,
    /// Proven hashrate is compared only after the miner has been awake this long.
    pub hashrate_min_window: Duration,
}

impl Default for AlarmRules {
    fn default() -> Self {
        Self {
            no_shares_after: Duration::from_secs(600),
            hashrate_margin: 0.25,
            hashrate_min_window: Duration::from_secs(3600),
        }
    }
}

/// A container's feed and cooling, validated; all power in watts.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// Unique name.
    pub name: Arc<str>,
    /// Configured budget, W (demand response may override it at run time).
    pub budget_watts: f64,
    /// Shedding brings load to budget minus this, W.
    pub margin_watts: f64,
    /// Wakes only when load is under budget by more than this, W.
    pub hysteresis_watts: f64,
    /// Least time between two toggles of one miner.
    pub min_dwell: Duration,
    /// Least time between two wakes in this container.
    pub wake_stagger: Duration,
    /// Temperature control, when configured.
    pub temperature: Option<TempLimit>,
    /// Feed meter, when configured.
    pub meter: Option<MeterSpec>,
    /// Fan and pump staging, when configured.
    pub climate: Option<ClimateSetup>,
    /// IT meter (rack PDUs), when configured; used for PUE only, never for the budget.
    pub it_meter: Option<MeterSpec>,
}

/// Temperature control of one container, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TempLimit {
    /// Inlet air limit, °C.
    pub limit_c: f64,
    /// Shedding continues until below `limit_c - hysteresis_c`.
    pub hysteresis_c: f64,
    /// Load shed per step while hot, W.
    pub shed_step_watts: f64,
    /// Time between shed steps.
    pub shed_interval: Duration,
}

/// A container's feed or IT meter, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterSpec {
    /// Where the driver reads it.
    pub address: Address,
    /// Readings older than this are stale.
    pub max_age: Duration,
    /// HTTP path the driver GETs (HTTP meters only).
    pub path: String,
    /// How the body is read (HTTP meters only).
    pub format: MeterFormat,
    /// Factor from the reading to watts (HTTP meters only).
    pub scale: f64,
    /// Modbus register map and ratio; `None` for an HTTP meter.
    pub modbus: Option<ModbusMeterSpec>,
}

/// How a Modbus meter is read, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusMeterSpec {
    /// The shipped model, if the map is one (for logs and the API).
    pub model: Option<MeterModel>,
    /// Where the figures are, with the unit id set on every point.
    pub map: MeterMap,
    /// Factor applied to every reading (PT × CT).
    pub ratio: f64,
}

/// How a meter's HTTP body carries the power reading.
#[derive(Debug, Clone, PartialEq)]
pub enum MeterFormat {
    /// JSON; the number sits at this RFC 6901 pointer (`""` is the whole body).
    Json {
        /// Pointer to the number.
        pointer: String,
    },
    /// Prometheus text exposition; the first sample of this metric.
    Prometheus {
        /// Metric name.
        metric: String,
    },
}

/// One miner, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerSpec {
    /// Unique id.
    pub id: Arc<str>,
    /// Index into [`PowerConfig::containers`].
    pub container: usize,
    /// Management API address.
    pub address: Address,
    /// Firmware family.
    pub family: Family,
    /// Model, for operators.
    pub model: String,
    /// Nameplate wall power, W.
    pub nominal_watts: f64,
    /// Nameplate hashrate, TH/s.
    pub nominal_ths: f64,
    /// Draw while asleep when the API does not report power, W.
    pub standby_watts: f64,
    /// Pin from config (the admin API may change it at run time).
    pub pin: Option<Pin>,
    /// Management API login; `Debug` redacts the password.
    pub credentials: Credentials,
    /// Stratum worker name, joining shares to this miner; else joined by IP.
    pub worker: Option<String>,
    /// Hosting customer tag (`customer = "..."`), grouping machines in the ledger.
    pub customer: Option<String>,
}

/// Highest power a miner may report, as a multiple of its nameplate: overclocked firmware
/// runs 20–30 % over nameplate, while a unit slip (milliwatts read as watts) is 1000× and a
/// firmware bug can report anything. Above it the reading is not believed.
pub const PLAUSIBLE_OVER_NAMEPLATE: f64 = 1.5;

/// Lowest power a miner that says it is mining may report, as a fraction of nameplate: the
/// deepest underclock profiles run near 30 %, while kilowatts read as watts is 1/1000.
pub const PLAUSIBLE_MINING_FLOOR: f64 = 0.05;

impl MinerSpec {
    /// Whether a reported power figure is believable for this model: finite, not negative,
    /// at most [`PLAUSIBLE_OVER_NAMEPLATE`] × nameplate, and while mining at least
    /// [`PLAUSIBLE_MINING_FLOOR`] × nameplate. An unbelievable figure is counted at
    /// nameplate and alarmed, so one broken reading cannot put a container to sleep or
    /// hide real load.
    pub fn plausible_watts(&self, watts: f64, mining: bool) -> bool {
        let floor = if mining {
            self.nominal_watts * PLAUSIBLE_MINING_FLOOR
        } else {
            0.0
        };
        watts.is_finite()
            && watts >= floor
            && watts <= self.nominal_watts * PLAUSIBLE_OVER_NAMEPLATE
    }

    /// Efficiency in J/TH (W per TH/s); higher is worse.
    pub fn joules_per_th(&self) -> f64 {
        self.nominal_watts / self.nominal_ths
    }
}
