//! Raw `[power]` section → typed [`PowerConfig`], naming the container or miner and the
//! field of the first bad value.

use super::*;

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
        let it_meter = match &self.it_meter {
            None => None,
            Some(m) => Some(
                m.validate()
                    .map_err(|(field, problem)| err(it_field(field))(problem))?,
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
            climate: match &self.climate {
                None => None,
                Some(c) => Some(
                    c.validate()
                        .map_err(|(field, problem)| err(field)(problem))?,
                ),
            },
            it_meter,
        })
    }
}

/// The `it_meter.*` name of a `meter.*` field, so an IT meter's error names its own key.
fn it_field(field: &'static str) -> &'static str {
    match field {
        "meter.address" => "it_meter.address",
        "meter.max_age_secs" => "it_meter.max_age_secs",
        "meter.path" => "it_meter.path",
        "meter.metric" => "it_meter.metric",
        "meter.json_pointer" => "it_meter.json_pointer",
        "meter.kind" => "it_meter.kind",
        "meter.model" => "it_meter.model",
        "meter.ratio" => "it_meter.ratio",
        "meter.map.power" => "it_meter.map.power",
        "meter.map.phases" => "it_meter.map.phases",
        "meter.map.energy" => "it_meter.map.energy",
        _ => "it_meter",
    }
}

impl MeterRaw {
    fn validate(&self) -> Result<MeterSpec, (&'static str, String)> {
        if self.kind == Some(MeterKind::Modbus) {
            return self.validate_modbus();
        }
        if self.unit_id.is_some()
            || self.model.is_some()
            || self.map.is_some()
            || self.ratio.is_some()
        {
            return Err((
                "meter.kind",
                "unit_id, model, map and ratio are Modbus keys: set kind = \"modbus\"".into(),
            ));
        }
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
            modbus: None,
        })
    }

    fn validate_modbus(&self) -> Result<MeterSpec, (&'static str, String)> {
        if self.path.is_some()
            || self.metric.is_some()
            || self.json_pointer.is_some()
            || self.unit.is_some()
        {
            return Err((
                "meter.kind",
                "path, metric, json_pointer and unit are HTTP keys; a Modbus meter's units come from its map".into(),
            ));
        }
        let unit_id = self.unit_id.unwrap_or(1);
        let (model, map) = match (&self.model, &self.map) {
            (Some(model), None) => (Some(*model), model.map(unit_id)),
            (None, Some(raw)) => (
                None,
                raw.validate(unit_id).map_err(|(field, problem)| {
                    let field = match field {
                        "map.power" => "meter.map.power",
                        "map.phases" => "meter.map.phases",
                        _ => "meter.map.energy",
                    };
                    (field, problem)
                })?,
            ),
            _ => {
                return Err((
                    "meter.model",
                    "a Modbus meter needs exactly one of model and map".into(),
                ));
            }
        };
        let ratio = self.ratio.unwrap_or(1.0);
        if !(ratio.is_finite() && ratio > 0.0) {
            return Err(("meter.ratio", "must be a positive number".into()));
        }
        Ok(MeterSpec {
            address: Address::parse(&self.address, Some(502)).map_err(|e| ("meter.address", e))?,
            max_age: positive_secs(self.max_age_secs, Duration::from_secs(30))
                .map_err(|e| ("meter.max_age_secs", e))?,
            path: String::new(),
            format: MeterFormat::Json {
                pointer: String::new(),
            },
            scale: 1.0,
            modbus: Some(ModbusMeterSpec { model, map, ratio }),
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
            customer: match &self.customer {
                Some(c) if c.trim().is_empty() => {
                    return Err(err("customer")(
                        "must not be empty (leave it out instead)".into(),
                    ));
                }
                c => c.clone(),
            },
        })
    }
}
