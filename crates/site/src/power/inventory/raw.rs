//! The `[power]` section as written: serde structs that refuse unknown keys, validated by
//! `validate.rs`.

use serde::Deserialize;

use super::Pin;
use crate::modbus::{MeterMapRaw, MeterModel};
use crate::power::api::{Credentials, Family};

/// The `[power]` section as written: deserialise with serde, then call [`Self::validate`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerConfigRaw {
    /// Bearer token the admin API demands on its write routes; none disables them.
    pub admin_token: Option<String>,
    /// How the driver polls miners and meters (tick, concurrency, deadlines).
    #[serde(default)]
    pub driver: DriverRaw,
    /// Controller-wide timing (telemetry age, sleep confirmation, wake ramp).
    #[serde(default)]
    pub controller: ControllerRaw,
    /// Alarm thresholds for miners that are on but not proving work.
    #[serde(default)]
    pub alarms: AlarmsRaw,
    /// Power feeds with their budgets.
    #[serde(default)]
    pub containers: Vec<ContainerRaw>,
    /// The miners, each in one container.
    #[serde(default)]
    pub miners: Vec<MinerRaw>,
}

/// `[power.controller]` as written; every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerRaw {
    /// Telemetry older than this counts as no answer (miner counted at nominal).
    pub telemetry_max_age_secs: Option<u64>,
    /// How long an ordered sleep may stay unconfirmed before it is retried.
    pub sleep_confirm_timeout_secs: Option<u64>,
    /// How long a woken miner counts at least at nominal power (inrush and ramp).
    pub wake_ramp_secs: Option<u64>,
}

/// `[power.driver]` as written; every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverRaw {
    /// Time between two polls and controller ticks, seconds.
    pub tick_secs: Option<u64>,
    /// Management API calls in flight at once (polls and commands).
    pub max_concurrent_calls: Option<usize>,
    /// Deadline for a TCP connect to a miner or meter, milliseconds.
    pub connect_timeout_ms: Option<u64>,
    /// Deadline for one whole call to a miner or meter, milliseconds.
    pub call_timeout_ms: Option<u64>,
}

/// `[power.alarms]` as written; every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmsRaw {
    /// A miner awake per its API with no share for this long raises an alarm.
    pub no_shares_after_secs: Option<u64>,
    /// API hashrate above share-proven hashrate by more than this fraction raises an alarm.
    pub hashrate_margin: Option<f64>,
    /// Share-proven hashrate is only trusted once the miner has been awake this long.
    pub hashrate_min_window_secs: Option<u64>,
}

/// One `[[power.containers]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerRaw {
    /// Unique name, used in logs and metric labels.
    pub name: String,
    /// Contracted power budget of the feed, kW.
    pub budget_kw: f64,
    /// After shedding, load is brought to budget minus this margin, kW.
    pub margin_kw: Option<f64>,
    /// A wake is considered only when load is below budget by more than this, kW.
    pub hysteresis_kw: Option<f64>,
    /// Least time between two toggles of one miner, seconds.
    pub min_dwell_secs: Option<u64>,
    /// Least time between two wakes in this container, seconds.
    pub wake_stagger_secs: Option<u64>,
    /// Inlet air limit, °C; no temperature control when absent.
    pub temp_limit_c: Option<f64>,
    /// Shedding for heat continues until temperature is below limit minus this, °C.
    pub temp_hysteresis_c: Option<f64>,
    /// Load shed per step while over the temperature limit, kW.
    pub temp_shed_step_kw: Option<f64>,
    /// Time between two temperature shed steps (air needs time to respond), seconds.
    pub temp_shed_interval_secs: Option<u64>,
    /// Feed power meter; load is estimated from miners when absent.
    pub meter: Option<MeterRaw>,
    /// Fan-bank and curtain-pump staging over Modbus; none when absent.
    pub climate: Option<super::ClimateRaw>,
    /// IT power meter (the rack PDUs' feed), for PUE; Σ miners' reported power when absent.
    pub it_meter: Option<MeterRaw>,
}

/// A container's power meter as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterRaw {
    /// How the meter is read: `http` (default) or `modbus` (Modbus TCP).
    pub kind: Option<MeterKind>,
    /// Where the driver reads the meter: `host:port` or `ip:port` (Modbus: port 502 when
    /// left out).
    pub address: String,
    /// A reading older than this is stale and load falls back to telemetry, seconds.
    pub max_age_secs: Option<u64>,
    /// HTTP path the driver GETs, starting with `/`; default `/`.
    pub path: Option<String>,
    /// Prometheus text format: the metric whose first sample is the reading.
    pub metric: Option<String>,
    /// JSON format: RFC 6901 pointer to the number (default: the whole body is the number).
    pub json_pointer: Option<String>,
    /// Unit of the reading: `w` (default) or `kw`.
    pub unit: Option<MeterUnit>,
    /// Modbus: unit id (slave address) of the meter behind the gateway; default 1.
    pub unit_id: Option<u8>,
    /// Modbus: a shipped meter model (`eastron_sdm630`,
    /// `schneider_pm5000`, `gavazzi_em21`); exactly one of `model` and `map`.
    pub model: Option<MeterModel>,
    /// Modbus: the site's own register map.
    pub map: Option<MeterMapRaw>,
    /// Modbus: factor applied to every reading (PT × CT for meters that report
    /// secondary-side values); default 1.
    pub ratio: Option<f64>,
}

/// How a meter is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeterKind {
    /// HTTP GET of JSON or Prometheus text.
    Http,
    /// Modbus TCP registers.
    Modbus,
}

/// Unit a meter reports power in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeterUnit {
    /// Watts.
    W,
    /// Kilowatts.
    Kw,
}

impl MeterUnit {
    /// Factor from this unit to watts.
    pub fn to_watts(self) -> f64 {
        match self {
            MeterUnit::W => 1.0,
            MeterUnit::Kw => 1e3,
        }
    }
}

/// One `[[power.miners]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinerRaw {
    /// Unique id (often rack position, e.g. `c1-r3-07`).
    pub id: String,
    /// Name of the container whose feed powers it.
    pub container: String,
    /// Management API address: `ip`, `ip:port`, `host` or `host:port`.
    pub address: String,
    /// Firmware family, deciding the management protocol.
    pub family: Family,
    /// Model, for operators (e.g. `S19j Pro`).
    pub model: String,
    /// Nameplate wall power, W.
    pub nominal_watts: f64,
    /// Nameplate hashrate, TH/s.
    pub nominal_ths: f64,
    /// Draw while asleep when the API does not report power, W.
    pub standby_watts: Option<f64>,
    /// Manual pin from config.
    pub pin: Option<Pin>,
    /// Management API login; never logged.
    #[serde(default)]
    pub credentials: Credentials,
    /// Worker name the miner authorizes with on Stratum, to join its shares to it; when
    /// absent the join is by management IP == Stratum remote IP.
    pub worker: Option<String>,
    /// Hosting customer the machine belongs to, grouping it in the ledger.
    pub customer: Option<String>,
}
