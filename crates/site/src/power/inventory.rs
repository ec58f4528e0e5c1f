//! Power inventory: the containers (feed budget, cooling limit, tuning) and the miners in
//! them (management address, firmware family, nameplate power and hashrate).
//!
//! Read as TOML into [`PowerConfigRaw`] (every struct `deny_unknown_fields`, so a typo is an
//! error and not a silently ignored setting), then [`PowerConfigRaw::validate`] turns it into
//! [`PowerConfig`] with typed values. In `hashgate.toml` this is the `[power]` section; on its
//! own (as in `config/power-example.toml`) the same keys sit at the top level.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::power::api::{Credentials, Family, Timeouts};

/// Why a power inventory was refused; every variant names the container or miner and field.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The TOML text itself did not parse (syntax, wrong type, unknown key).
    #[error("power inventory: {0}")]
    Toml(#[from] toml::de::Error),
    /// A controller-wide or alarm setting is out of range.
    #[error("power.{section}: {field} {problem}")]
    Setting {
        /// `controller` or `alarms`.
        section: &'static str,
        /// The offending key.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The admin API token is unusable.
    #[error("power.admin_token {0}")]
    AdminToken(String),
    /// A container setting is out of range.
    #[error("container \"{container}\": {field} {problem}")]
    Container {
        /// Container name as written in the config.
        container: String,
        /// The offending key.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A miner setting is out of range.
    #[error("miner \"{miner}\": {field} {problem}")]
    Miner {
        /// Miner id as written in the config.
        miner: String,
        /// The offending key.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A miner names a container that is not defined.
    #[error("miner \"{miner}\": container \"{container}\" is not defined")]
    UnknownContainer {
        /// Miner id.
        miner: String,
        /// The container it names.
        container: String,
    },
    /// Two containers share a name.
    #[error("container \"{0}\" is defined more than once")]
    DuplicateContainer(String),
    /// Two miners share an id.
    #[error("miner \"{0}\" is defined more than once")]
    DuplicateMiner(String),
    /// Two miners share a management address, which is almost always a copy-paste slip
    /// that would make the controller sleep the wrong machine.
    #[error("miner \"{miner}\": address {address} is already used by miner \"{other}\"")]
    DuplicateAddress {
        /// The later miner.
        miner: String,
        /// The earlier miner with the same address.
        other: String,
        /// The shared address.
        address: String,
    },
}

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
}

/// A container's power meter as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterRaw {
    /// Where the driver reads the meter: `host:port` or `ip:port`.
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
}

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

/// A management or meter address: an IP socket address, or a host name with a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A literal IP address and port.
    Socket(SocketAddr),
    /// A host name resolved by the driver at connect time.
    Host {
        /// DNS name.
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Socket(addr) => write!(f, "{addr}"),
            Address::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl Address {
    /// Parses `ip`, `ip:port`, `[v6]:port`, `host` or `host:port`; a missing port takes
    /// `default_port` (none means the port is required).
    ///
    /// # Errors
    /// A text explaining what is wrong, for the caller to wrap with the field name.
    pub fn parse(text: &str, default_port: Option<u16>) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Address::Socket(addr));
        }
        let need_port = || format!("\"{text}\" needs a port (host:port)");
        if let Ok(ip) = text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            let port = default_port.ok_or_else(need_port)?;
            return Ok(Address::Socket(SocketAddr::new(ip, port)));
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("\"{text}\" has no valid port (1-65535)"))?;
                (host, port)
            }
            None => (text, default_port.ok_or_else(need_port)?),
        };
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !valid_host {
            return Err(format!("\"{text}\" is not an IP address or host name"));
        }
        Ok(Address::Host {
            host: host.to_owned(),
            port,
        })
    }
}

/// The management port a family listens on when the config gives none.
pub fn default_port(family: Family) -> u16 {
    match family {
        // Braiins OS 25.07+ speaks REST over plain HTTP.
        Family::Braiins => 80,
        Family::Antminer | Family::Avalon | Family::Luxos | Family::Whatsminer => 4028,
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

/// A container's feed meter, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterSpec {
    /// Where the driver reads it.
    pub address: Address,
    /// Readings older than this are stale.
    pub max_age: Duration,
    /// HTTP path the driver GETs.
    pub path: String,
    /// How the body is read.
    pub format: MeterFormat,
    /// Factor from the reading to watts.
    pub scale: f64,
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
}

impl MinerSpec {
    /// Efficiency in J/TH (W per TH/s); higher is worse.
    pub fn joules_per_th(&self) -> f64 {
        self.nominal_watts / self.nominal_ths
    }
}

/// Default standby draw as a fraction of nameplate: control board, fans at idle and PSU
/// losses are a few percent on the machines we know.
const DEFAULT_STANDBY_FRACTION: f64 = 0.03;

impl PowerConfigRaw {
    /// Parses a TOML document whose top level is the power section.
    ///
    /// # Errors
    /// [`InventoryError::Toml`] on syntax errors, wrong types and unknown keys.
    pub fn from_toml_str(text: &str) -> Result<Self, InventoryError> {
        Ok(toml::from_str(text)?)
    }

    /// Checks every value and turns the raw model into typed settings.
    ///
    /// # Errors
    /// The first problem found, naming the container or miner and the field.
    pub fn validate(&self) -> Result<PowerConfig, InventoryError> {
        let admin_token = match &self.admin_token {
            None => None,
            Some(t) => Some(AdminToken::new(t).map_err(InventoryError::AdminToken)?),
        };
        let driver = self.driver.validate()?;
        let controller = self.controller.validate()?;
        let alarms = self.alarms.validate()?;
        let mut containers = Vec::with_capacity(self.containers.len());
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        for raw in &self.containers {
            let spec = raw.validate()?;
            if by_name
                .insert(raw.name.as_str(), containers.len())
                .is_some()
            {
                return Err(InventoryError::DuplicateContainer(raw.name.clone()));
            }
            containers.push(spec);
        }
        let mut miners = Vec::with_capacity(self.miners.len());
        let mut ids: HashMap<&str, ()> = HashMap::new();
        let mut addresses: HashMap<Address, &str> = HashMap::new();
        for raw in &self.miners {
            let container = *by_name.get(raw.container.as_str()).ok_or_else(|| {
                InventoryError::UnknownContainer {
                    miner: raw.id.clone(),
                    container: raw.container.clone(),
                }
            })?;
            let spec = raw.validate(container)?;
            if ids.insert(raw.id.as_str(), ()).is_some() {
                return Err(InventoryError::DuplicateMiner(raw.id.clone()));
            }
            if let Some(other) = addresses.insert(spec.address.clone(), raw.id.as_str()) {
                return Err(InventoryError::DuplicateAddress {
                    miner: raw.id.clone(),
                    other: other.to_owned(),
                    address: spec.address.to_string(),
                });
            }
            miners.push(spec);
        }
        Ok(PowerConfig {
            admin_token,
            driver,
            controller,
            alarms,
            containers,
            miners,
        })
    }
}

impl PowerConfig {
    /// Parses and validates a TOML document whose top level is the power section.
    ///
    /// # Errors
    /// As [`PowerConfigRaw::from_toml_str`] and [`PowerConfigRaw::validate`].
    pub fn from_toml_str(text: &str) -> Result<Self, InventoryError> {
        PowerConfigRaw::from_toml_str(text)?.validate()
    }
}

/// Upper bounds that catch unit slips (W written as kW, H/s as TH/s) and keep J/TH finite.
const MAX_NOMINAL_WATTS: f64 = 100_000.0;
const MIN_NOMINAL_THS: f64 = 1e-6;
const MAX_NOMINAL_THS: f64 = 100_000.0;
const MAX_BUDGET_KW: f64 = 1_000_000.0;

fn at_most(value: f64, max: f64) -> Result<f64, String> {
    if value > max {
        return Err(format!("must be <= {max}"));
    }
    Ok(value)
}

fn positive_secs(secs: Option<u64>, default: Duration) -> Result<Duration, String> {
    match secs {
        None => Ok(default),
        Some(0) => Err("must be > 0".into()),
        Some(s) => Ok(Duration::from_secs(s)),
    }
}

fn check_number(
    value: f64,
    min_exclusive: Option<f64>,
    min_inclusive: Option<f64>,
) -> Result<f64, String> {
    if !value.is_finite() {
        return Err("must be a finite number".into());
    }
    if let Some(min) = min_exclusive
        && value <= min
    {
        return Err(format!("must be > {min}"));
    }
    if let Some(min) = min_inclusive
        && value < min
    {
        return Err(format!("must be >= {min}"));
    }
    Ok(value)
}

impl ControllerRaw {
    fn validate(&self) -> Result<ControllerSettings, InventoryError> {
        let d = ControllerSettings::default();
        let err = |field: &'static str| {
            move |problem: String| InventoryError::Setting {
                section: "controller",
                field,
                problem,
            }
        };
        Ok(ControllerSettings {
            telemetry_max_age: positive_secs(self.telemetry_max_age_secs, d.telemetry_max_age)
                .map_err(err("telemetry_max_age_secs"))?,
            sleep_confirm_timeout: positive_secs(
                self.sleep_confirm_timeout_secs,
                d.sleep_confirm_timeout,
            )
            .map_err(err("sleep_confirm_timeout_secs"))?,
            wake_ramp: positive_secs(self.wake_ramp_secs, d.wake_ramp)
                .map_err(err("wake_ramp_secs"))?,
        })
    }
}

impl DriverRaw {
    fn validate(&self) -> Result<DriverSettings, InventoryError> {
        let d = DriverSettings::default();
        let err = |field: &'static str| {
            move |problem: String| InventoryError::Setting {
                section: "driver",
                field,
                problem,
            }
        };
        let millis = |ms: Option<u64>, default: Duration| match ms {
            None => Ok(default),
            Some(0) => Err("must be > 0".to_owned()),
            Some(ms) => Ok(Duration::from_millis(ms)),
        };
        let connect = millis(self.connect_timeout_ms, d.timeouts.connect)
            .map_err(err("connect_timeout_ms"))?;
        let call = millis(self.call_timeout_ms, d.timeouts.call).map_err(err("call_timeout_ms"))?;
        if connect > call {
            return Err(err("connect_timeout_ms")(
                "must not exceed call_timeout_ms".into(),
            ));
        }
        Ok(DriverSettings {
            tick: positive_secs(self.tick_secs, d.tick).map_err(err("tick_secs"))?,
            max_concurrent_calls: match self.max_concurrent_calls {
                None => d.max_concurrent_calls,
                Some(n) => NonZeroUsize::new(n)
                    .filter(|n| n.get() <= 4096)
                    .ok_or_else(|| "must be 1..=4096".to_owned())
                    .map_err(err("max_concurrent_calls"))?,
            },
            timeouts: Timeouts { connect, call },
        })
    }
}

impl AlarmsRaw {
    fn validate(&self) -> Result<AlarmRules, InventoryError> {
        let d = AlarmRules::default();
        let err = |field: &'static str| {
            move |problem: String| InventoryError::Setting {
                section: "alarms",
                field,
                problem,
            }
        };
        Ok(AlarmRules {
            no_shares_after: positive_secs(self.no_shares_after_secs, d.no_shares_after)
                .map_err(err("no_shares_after_secs"))?,
            hashrate_margin: match self.hashrate_margin {
                None => d.hashrate_margin,
                Some(m) => check_number(m, Some(0.0), None).map_err(err("hashrate_margin"))?,
            },
            hashrate_min_window: positive_secs(
                self.hashrate_min_window_secs,
                d.hashrate_min_window,
            )
            .map_err(err("hashrate_min_window_secs"))?,
        })
    }
}

impl ContainerRaw {
    fn validate(&self) -> Result<ContainerSpec, InventoryError> {
        let err = |field: &'static str| {
            let container = self.name.clone();
            move |problem: String| InventoryError::Container {
                container,
                field,
                problem,
            }
        };
        if self.name.trim().is_empty() {
            return Err(err("name")("must not be empty".into()));
        }
        let budget = check_number(self.budget_kw, Some(0.0), None)
            .and_then(|kw| at_most(kw, MAX_BUDGET_KW))
            .map_err(err("budget_kw"))?
            * 1e3;
        let margin = match self.margin_kw {
            None => budget * 0.01,
            Some(kw) => check_number(kw, None, Some(0.0)).map_err(err("margin_kw"))? * 1e3,
        };
        if margin >= budget {
            return Err(err("margin_kw")("must be below budget_kw".into()));
        }
        let hysteresis = match self.hysteresis_kw {
            None => budget * 0.03,
            Some(kw) => check_number(kw, None, Some(0.0)).map_err(err("hysteresis_kw"))? * 1e3,
        };
        if hysteresis >= budget {
            return Err(err("hysteresis_kw")("must be below budget_kw".into()));
        }
        let min_dwell = positive_secs(self.min_dwell_secs, Duration::from_secs(600))
            .map_err(err("min_dwell_secs"))?;
        let wake_stagger = positive_secs(self.wake_stagger_secs, Duration::from_secs(30))
            .map_err(err("wake_stagger_secs"))?;
        let temperature = match self.temp_limit_c {
            None => {
                let stray = [
                    ("temp_hysteresis_c", self.temp_hysteresis_c.is_some()),
                    ("temp_shed_step_kw", self.temp_shed_step_kw.is_some()),
                    (
                        "temp_shed_interval_secs",
                        self.temp_shed_interval_secs.is_some(),
                    ),
                ];
                if let Some((field, _)) = stray.iter().find(|(_, set)| *set) {
                    return Err(err(field)("is set but temp_limit_c is not".into()));
                }
                None
            }
            Some(limit) => {
                let limit_c =
                    check_number(limit, Some(-40.0), None).map_err(err("temp_limit_c"))?;
                let hysteresis_c =
                    check_number(self.temp_hysteresis_c.unwrap_or(2.0), Some(0.0), None)
                        .map_err(err("temp_hysteresis_c"))?;
                let shed_step_watts = match self.temp_shed_step_kw {
                    None => budget * 0.05,
                    Some(kw) => {
                        check_number(kw, Some(0.0), None).map_err(err("temp_shed_step_kw"))? * 1e3
                    }
                };
                let shed_interval =
                    positive_secs(self.temp_shed_interval_secs, Duration::from_secs(120))
                        .map_err(err("temp_shed_interval_secs"))?;
                Some(TempLimit {
                    limit_c,
                    hysteresis_c,
                    shed_step_watts,
                    shed_interval,
                })
            }
        };
        let meter = match &self.meter {
            None => None,
            Some(m) => Some(
                m.validate()
                    .map_err(|(field, problem)| err(field)(problem))?,
            ),
        };
        Ok(ContainerSpec {
            name: Arc::from(self.name.as_str()),
            budget_watts: budget,
            margin_watts: margin,
            hysteresis_watts: hysteresis,
            min_dwell,
            wake_stagger,
            temperature,
            meter,
        })
    }
}

impl MeterRaw {
    fn validate(&self) -> Result<MeterSpec, (&'static str, String)> {
        let path = self.path.clone().unwrap_or_else(|| "/".into());
        if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(("meter.path", "must start with / and hold no spaces".into()));
        }
        let format = match (&self.metric, &self.json_pointer) {
            (Some(_), Some(_)) => {
                return Err((
                    "meter.metric",
                    "and meter.json_pointer exclude each other".into(),
                ));
            }
            (Some(metric), None) => {
                let ok = !metric.is_empty()
                    && metric
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
                if !ok {
                    return Err(("meter.metric", format!("\"{metric}\" is not a metric name")));
                }
                MeterFormat::Prometheus {
                    metric: metric.clone(),
                }
            }
            (None, pointer) => {
                let pointer = pointer.clone().unwrap_or_default();
                if !(pointer.is_empty() || pointer.starts_with('/')) {
                    return Err(("meter.json_pointer", "must be empty or start with /".into()));
                }
                MeterFormat::Json { pointer }
            }
        };
        Ok(MeterSpec {
            address: Address::parse(&self.address, None).map_err(|e| ("meter.address", e))?,
            max_age: positive_secs(self.max_age_secs, Duration::from_secs(30))
                .map_err(|e| ("meter.max_age_secs", e))?,
            path,
            format,
            scale: self.unit.unwrap_or(MeterUnit::W).to_watts(),
        })
    }
}

impl MinerRaw {
    fn validate(&self, container: usize) -> Result<MinerSpec, InventoryError> {
        let err = |field: &'static str| {
            let miner = self.id.clone();
            move |problem: String| InventoryError::Miner {
                miner,
                field,
                problem,
            }
        };
        if self.id.trim().is_empty() {
            return Err(err("id")("must not be empty".into()));
        }
        let address = Address::parse(&self.address, Some(default_port(self.family)))
            .map_err(err("address"))?;
        let nominal_watts = check_number(self.nominal_watts, Some(0.0), None)
            .and_then(|w| at_most(w, MAX_NOMINAL_WATTS))
            .map_err(err("nominal_watts"))?;
        let nominal_ths = check_number(self.nominal_ths, Some(0.0), None)
            .and_then(|ths| at_most(ths, MAX_NOMINAL_THS))
            .and_then(|ths| {
                if ths < MIN_NOMINAL_THS {
                    Err(format!("must be >= {MIN_NOMINAL_THS}"))
                } else {
                    Ok(ths)
                }
            })
            .map_err(err("nominal_ths"))?;
        let standby_watts = match self.standby_watts {
            None => nominal_watts * DEFAULT_STANDBY_FRACTION,
            Some(w) => check_number(w, None, Some(0.0)).map_err(err("standby_watts"))?,
        };
        if standby_watts >= nominal_watts {
            return Err(err("standby_watts")("must be below nominal_watts".into()));
        }
        Ok(MinerSpec {
            id: Arc::from(self.id.as_str()),
            container,
            address,
            family: self.family,
            model: self.model.clone(),
            nominal_watts,
            nominal_ths,
            standby_watts,
            pin: self.pin,
            credentials: self.credentials.clone(),
            worker: match &self.worker {
                Some(w) if w.trim().is_empty() => {
                    return Err(err("worker")("must not be empty".into()));
                }
                w => w.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [[containers]]
        name = "c1"
        budget_kw = 100

        [[miners]]
        id = "c1-r3-07"
        container = "c1"
        address = "10.1.3.7"
        family = "antminer"
        model = "S19j Pro"
        nominal_watts = 3068
        nominal_ths = 104
        credentials = { user = "root", password = "hunter2" }
    "#;

    fn with_miner_line(replace: &str, by: &str) -> String {
        assert!(MINIMAL.contains(replace), "test fixture lacks {replace}");
        MINIMAL.replace(replace, by)
    }

    fn error_of(text: &str) -> String {
        match PowerConfig::from_toml_str(text) {
            Ok(cfg) => panic!("expected an error, got {cfg:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_config_takes_defaults() {
        let cfg = PowerConfig::from_toml_str(MINIMAL).expect("valid");
        let c = &cfg.containers[0];
        assert_eq!(c.budget_watts, 100_000.0);
        assert_eq!(c.margin_watts, 1_000.0);
        assert_eq!(c.hysteresis_watts, 3_000.0);
        assert_eq!(c.min_dwell, Duration::from_secs(600));
        assert!(c.temperature.is_none());
        let m = &cfg.miners[0];
        assert_eq!(m.container, 0);
        assert_eq!(
            m.address,
            Address::Socket("10.1.3.7:4028".parse().expect("addr"))
        );
        assert!((m.joules_per_th() - 29.5).abs() < 1e-9);
        assert!((m.standby_watts - 92.04).abs() < 1e-9);
        assert_eq!(cfg.controller, ControllerSettings::default());
    }

    #[test]
    fn zero_nominal_watts_names_miner_and_field() {
        let text = with_miner_line("nominal_watts = 3068", "nominal_watts = 0");
        assert_eq!(
            error_of(&text),
            "miner \"c1-r3-07\": nominal_watts must be > 0"
        );
    }

    #[test]
    fn negative_and_nan_values_are_refused() {
        let text = with_miner_line("nominal_ths = 104", "nominal_ths = -3.5");
        assert_eq!(
            error_of(&text),
            "miner \"c1-r3-07\": nominal_ths must be > 0"
        );
        let text = with_miner_line("nominal_ths = 104", "nominal_ths = nan");
        assert_eq!(
            error_of(&text),
            "miner \"c1-r3-07\": nominal_ths must be a finite number"
        );
    }

    #[test]
    fn implausible_nameplates_are_refused() {
        let text = with_miner_line("nominal_watts = 3068", "nominal_watts = 3068000");
        assert_eq!(
            error_of(&text),
            "miner \"c1-r3-07\": nominal_watts must be <= 100000"
        );
        let text = with_miner_line("nominal_ths = 104", "nominal_ths = 1e-12");
        assert_eq!(
            error_of(&text),
            "miner \"c1-r3-07\": nominal_ths must be >= 0.000001"
        );
    }

    #[test]
    fn budget_must_be_positive() {
        let text = MINIMAL.replace("budget_kw = 100", "budget_kw = 0");
        assert_eq!(error_of(&text), "container \"c1\": budget_kw must be > 0");
        let text = MINIMAL.replace("budget_kw = 100", "budget_kw = -5");
        assert_eq!(error_of(&text), "container \"c1\": budget_kw must be > 0");
    }

    #[test]
    fn unknown_container_is_named() {
        let text = with_miner_line("container = \"c1\"", "container = \"c9\"");
        assert_eq!(
            error_of(&text),
            "miner \"c1-r3-07\": container \"c9\" is not defined"
        );
    }

    #[test]
    fn duplicate_miner_and_container_are_refused() {
        let miner_block = &MINIMAL[MINIMAL.find("[[miners]]").expect("block")..];
        let twice = format!("{MINIMAL}\n{}", miner_block.replace("10.1.3.7", "10.1.3.8"));
        assert_eq!(
            error_of(&twice),
            "miner \"c1-r3-07\" is defined more than once"
        );
        let same_addr = format!("{MINIMAL}\n{}", miner_block.replace("c1-r3-07", "c1-r3-08"));
        assert_eq!(
            error_of(&same_addr),
            "miner \"c1-r3-08\": address 10.1.3.7:4028 is already used by miner \"c1-r3-07\""
        );
        let containers = MINIMAL.replace(
            "[[miners]]",
            "[[containers]]\nname = \"c1\"\nbudget_kw = 5\n[[miners]]",
        );
        assert_eq!(
            error_of(&containers),
            "container \"c1\" is defined more than once"
        );
    }

    #[test]
    fn unknown_key_is_a_toml_error() {
        let text = with_miner_line(
            "model = \"S19j Pro\"",
            "model = \"S19j Pro\"\nnominal_kw = 3",
        );
        let e = error_of(&text);
        assert!(e.contains("nominal_kw"), "{e}");
    }

    #[test]
    fn temperature_settings_need_a_limit() {
        let text = MINIMAL.replace("budget_kw = 100", "budget_kw = 100\ntemp_hysteresis_c = 2");
        assert_eq!(
            error_of(&text),
            "container \"c1\": temp_hysteresis_c is set but temp_limit_c is not"
        );
    }

    #[test]
    fn margin_must_be_below_budget() {
        let text = MINIMAL.replace("budget_kw = 100", "budget_kw = 100\nmargin_kw = 100");
        assert_eq!(
            error_of(&text),
            "container \"c1\": margin_kw must be below budget_kw"
        );
    }

    #[test]
    fn zero_durations_are_refused() {
        let text = MINIMAL.replace("budget_kw = 100", "budget_kw = 100\nwake_stagger_secs = 0");
        assert_eq!(
            error_of(&text),
            "container \"c1\": wake_stagger_secs must be > 0"
        );
        let text = format!("[controller]\nwake_ramp_secs = 0\n{MINIMAL}");
        assert_eq!(
            error_of(&text),
            "power.controller: wake_ramp_secs must be > 0"
        );
    }

    #[test]
    fn addresses_parse_in_every_form() {
        let p = |t: &str| Address::parse(t, Some(4028));
        assert_eq!(
            p("10.0.0.1").map(|a| a.to_string()),
            Ok("10.0.0.1:4028".into())
        );
        assert_eq!(
            p("10.0.0.1:80").map(|a| a.to_string()),
            Ok("10.0.0.1:80".into())
        );
        assert_eq!(
            p("fe80::1").map(|a| a.to_string()),
            Ok("[fe80::1]:4028".into())
        );
        assert_eq!(
            p("[fe80::1]:8080").map(|a| a.to_string()),
            Ok("[fe80::1]:8080".into())
        );
        assert_eq!(
            p("miner-7.site").map(|a| a.to_string()),
            Ok("miner-7.site:4028".into())
        );
        assert!(p("miner 7").is_err());
        assert!(p("host:99999").is_err());
        assert!(p("host:0").is_err());
        assert!(p("").is_err());
        assert!(Address::parse("meter.local", None).is_err());
    }

    #[test]
    fn password_never_appears_in_debug_output() {
        let cfg = PowerConfig::from_toml_str(MINIMAL).expect("valid");
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("root"));
    }
}
