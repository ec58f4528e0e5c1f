//! The power driver: runs the pure [`Controller`](crate::power::controller::Controller) against real miner APIs on a tick.
//!
//! Each tick:
//!
//! | step | what |
//! |---|---|
//! | reload | an inventory a reload left waiting (`reload.rs`) is swapped in, before anything reads it |
//! | poll | every miner's telemetry, at most `max_concurrent_calls` at once, each under its deadline; every meter at the same time |
//! | observe | answers → `observe_telemetry`, failures → `observe_no_answer`, feed meters → `observe_meter`, IT meters → `observe_it_meter` (HTTP or Modbus TCP, `hashgate_container_meter_up`) |
//! | economics | with `[economics]`: each miner's cost ratio (measured J/TH from last tick's proven hashrate and this tick's power, container tariff and PUE) → `observe_economics`; a stale price or no job → `hold_economics` |
//! | decide | `Controller::tick(now)` |
//! | act | each sleep / wake through the miner's [`MinerApi`]; a failure → `command_failed` |
//! | record | `record_tick` metrics and logs, then health alarms from share-proven data, then PUE now and per clock hour (`pue`) |
//!
//! Containers with `[climate]` also have their sensors read (with the poll), the climate
//! controller ticked before the power controller (which gets its inlet and
//! `cooling_exhausted` through `observe_climate`), and their relays written with read-back
//! (with the act step); see `climate.rs`.
//!
//! The controller sits behind a `std` mutex that is never held across an await: it is
//! locked to feed readings and tick, released for the network calls, and locked again for
//! command failures. A budget or pin change from the admin API wakes the loop for an
//! immediate tick, so demand response is honoured within one tick.

mod climate;
mod join;
mod meter;
mod reload;
mod status;
mod target;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::modbus::{self, ClientSettings, ModbusClient};
use crate::power::api::{self, ApiError, MinerApi, MinerState, Telemetry};
use crate::power::controller::{
    Action, ApiView, Decision, HealthInput, IntendedState, TickReport, evaluate_health, record_tick,
};
use crate::power::controller::{ControlError, PowerState};
use crate::power::inventory::{Address, DriverSettings, MeterSpec, MinerSpec, PowerConfig};
use crate::power::pue::{self, FacilitySource, HourlyPue, ItSource, PueUnknown};
use crate::stats::Registry;

pub use climate::{
    CLIMATE_READINGS_REJECTED, ClimateStatus, FanStatus, PumpStatus, record_climate,
};
pub use join::{
    ALARM_GAUGE, ALARM_LABELS, MAX_WORKERS_PER_MINER, POWER_INFO, Proven, ShareJoin, WorkerNames,
    window_for,
};
pub use meter::{MeterError, meter_url, parse_reading, read_meter};
pub use status::{
    ContainerStatus, DecisionRecord, MinerStatus, Observed, PowerHandle, PowerStatus, PueStatus,
    RECENT_DECISIONS,
};
pub use target::miner_target;

use status::{DecisionRecord as Record, DriverState, lock};

/// 1 while the container's meter (`meter` = `feed` or `it`) gave a reading at the last
/// tick, 0 while it does not.
pub const METER_UP: &str = "hashgate_container_meter_up";

/// Why a driver could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A miner's management host name did not resolve.
    #[error("miner \"{miner}\": cannot resolve management address {address}: {problem}")]
    Resolve {
        /// Miner id.
        miner: String,
        /// The address as configured.
        address: String,
        /// What the resolver said.
        problem: String,
    },
    /// A client was given for a miner the inventory does not list.
    #[error("client for miner \"{0}\" which is not in the inventory")]
    UnknownMiner(String),
    /// No miner of this id is in the inventory.
    #[error("no miner \"{0}\" in the power inventory")]
    NoSuchMiner(String),
    /// An inventory miner has no client.
    #[error("no management API client for miner \"{0}\"")]
    MissingClient(String),
    /// A reload changes what is built only at start (a container's climate section).
    #[error(transparent)]
    NeedsRestart(#[from] ControlError),
}

/// The API view of one miner kept between ticks, for the health rules.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    NoAnswer,
    Sleeping,
    Idle,
    Mining {
        since: Instant,
        hashrate_ths: Option<f64>,
    },
}

/// One inventory miner as the driver drives it.
struct Driven {
    id: Arc<str>,
    api: Arc<dyn MinerApi>,
    seen: Seen,
    /// Whether the last poll answered (none before the first), to log only changes.
    answering: Option<bool>,
    /// Alarm labels raised at the last tick, to log only changes.
    alarms: Vec<&'static str>,
    /// Its container's name, for `hashgate_miner_power_info`.
    container: Arc<str>,
    /// Worker names `hashgate_miner_power_info` already maps it to.
    workers: join::WorkerNames,
    /// Model and nameplate, for its economics.
    model: String,
    nominal_watts: f64,
    nominal_ths: f64,
}

/// Which of a container's meters a [`Meter`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterRole {
    /// The container's feed (facility power): drives the budget and PUE's numerator.
    Feed,
    /// The rack PDUs' feed (IT power): PUE's denominator only.
    It,
}

impl MeterRole {
    /// The `meter` label of `hashgate_container_meter_up`.
    pub fn label(self) -> &'static str {
        match self {
            MeterRole::Feed => "feed",
            MeterRole::It => "it",
        }
    }
}

/// A container meter to read each tick.
struct Meter {
    container: Arc<str>,
    role: MeterRole,
    spec: MeterSpec,
    /// The Modbus connection, kept between ticks; `None` for an HTTP meter. A mutex
    /// because the poll runs as a spawned job; only this meter's job ever locks it.
    modbus: Option<Arc<tokio::sync::Mutex<ModbusClient>>>,
    /// The last reading failed, so the next success is logged once.
    failing: bool,
}

/// Runs the controller against miners' management APIs; build with [`PowerDriver::new`]
/// or [`PowerDriver::from_inventory`], then [`PowerDriver::run`] it as a task
/// ([`Site::start`](crate::site::Site::start) does both, and stops it on shutdown).
pub struct PowerDriver {
    settings: DriverSettings,
    alarms: crate::power::inventory::AlarmRules,
    miners: Vec<Driven>,
    /// Miner id → index in `miners`, to find a decision's client at once.
    index: HashMap<Arc<str>, usize>,
    meters: Vec<Meter>,
    /// Climate containers: Modbus sensors and relays.
    climate: climate::ClimateLoop,
    http: reqwest::Client,
    registry: Arc<Registry>,
    join: ShareJoin,
    shared: Arc<DriverState>,
    /// `[economics]`, when configured: feeds the controller's economic rule.
    economics: Option<Arc<crate::economics::Economics>>,
    /// Share-proven figures of the last tick, for measured J/TH.
    last_proven: Vec<Proven>,
    /// Why the economic rule held at the last tick, to log only changes.
    economics_hold: Option<crate::economics::Hold>,
    /// Energy per clock hour for each container's hourly PUE, in config order.
    pue_hours: Vec<HourlyPue>,
    /// The same for the site as a whole.
    site_pue_hours: HourlyPue,
}

impl std::fmt::Debug for PowerDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerDriver")
            .field("settings", &self.settings)
            .field("miners", &self.miners.len())
            .field("meters", &self.meters.len())
            .finish_non_exhaustive()
    }
}

impl PowerDriver {
    /// Builds a driver over `clients` (one per inventory miner, by miner id) and the
    /// share statistics in `registry`; returns it with a handle for the admin API.
    ///
    /// # Errors
    /// [`DriverError::UnknownMiner`] for a client of a miner not in the inventory,
    /// [`DriverError::MissingClient`] for an inventory miner without one.
    pub fn new(
        config: PowerConfig,
        clients: Vec<(Arc<str>, Arc<dyn MinerApi>)>,
        registry: Arc<Registry>,
    ) -> Result<(PowerDriver, PowerHandle), DriverError> {
        let mut by_id: HashMap<Arc<str>, Arc<dyn MinerApi>> = HashMap::new();
        for (id, api) in clients {
            if !config.miners.iter().any(|m| m.id == id) {
                return Err(DriverError::UnknownMiner(id.to_string()));
            }
            by_id.insert(id, api);
        }
        let factory = reload::ClientFactory::Given(by_id.clone());
        PowerDriver::build(config, by_id, factory, registry)
    }

    fn build(
        config: PowerConfig,
        mut by_id: HashMap<Arc<str>, Arc<dyn MinerApi>>,
        factory: reload::ClientFactory,
        registry: Arc<Registry>,
    ) -> Result<(PowerDriver, PowerHandle), DriverError> {
        let book = reload::ClientBook {
            config: config.clone(),
            clients: by_id.clone(),
            factory,
        };
        let miners = config
            .miners
            .iter()
            .map(|m| {
                let api = by_id
                    .remove(&m.id)
                    .ok_or_else(|| DriverError::MissingClient(m.id.to_string()))?;
                let container = config
                    .containers
                    .get(m.container)
                    .map_or_else(|| Arc::from(""), |c| c.name.clone());
                Ok(Driven::fresh(m, container, api))
            })
            .collect::<Result<Vec<_>, DriverError>>()?;
        let settings = config.driver;
        let meters = meters_of(&config, &[], settings);
        let shared = Arc::new(DriverState::new(&config, book));
        let driver = PowerDriver {
            settings,
            alarms: config.alarms,
            join: ShareJoin::new(
                &config.miners,
                window_for(config.alarms.hashrate_min_window),
            ),
            index: miners
                .iter()
                .enumerate()
                .map(|(i, m)| (m.id.clone(), i))
                .collect(),
            pue_hours: vec![HourlyPue::default(); config.containers.len()],
            site_pue_hours: HourlyPue::default(),
            miners,
            meters,
            climate: climate::ClimateLoop::new(&config),
            http: meter_client(settings),
            registry,
            shared: shared.clone(),
            economics: None,
            last_proven: Vec::new(),
            economics_hold: None,
        };
        Ok((driver, PowerHandle { shared }))
    }

    /// Builds a driver with real management clients from each miner's family, address
    /// and credentials. Host names are resolved once, here.
    ///
    /// # Errors
    /// [`DriverError::Resolve`] when a host name does not resolve.
    pub async fn from_inventory(
        config: PowerConfig,
        registry: Arc<Registry>,
    ) -> Result<(PowerDriver, PowerHandle), DriverError> {
        let mut clients: HashMap<Arc<str>, Arc<dyn MinerApi>> =
            HashMap::with_capacity(config.miners.len());
        for m in &config.miners {
            let addr = resolve(&m.address)
                .await
                .map_err(|problem| DriverError::Resolve {
                    miner: m.id.to_string(),
                    address: m.address.to_string(),
                    problem,
                })?;
            let client = api::client(
                m.family,
                addr,
                m.credentials.clone(),
                config.driver.timeouts,
            );
            clients.insert(m.id.clone(), Arc::from(client));
        }
        PowerDriver::build(config, clients, reload::ClientFactory::Inventory, registry)
    }

    /// Adds the economic rule: each tick feeds the controller every miner's cost ratio.
    pub fn with_economics(mut self, economics: Arc<crate::economics::Economics>) -> Self {
        lock(&self.shared.controller).set_economic_rule(economics.config().rule);
        self.economics = Some(economics);
        self
    }

    /// Each miner's cost ratio, or why the rule must hold; `None` without `[economics]`.
    fn evaluate_economics(
        &self,
        readings: &[(Instant, Result<Telemetry, ApiError>)],
        meters: &[(Arc<str>, Instant, f64)],
        now: Instant,
    ) -> Option<crate::economics::Evaluation> {
        use crate::economics::{ContainerInput, MinerInput};
        let economics = self.economics.as_ref()?;
        let inputs: Vec<MinerInput<'_>> = self
            .miners
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let telemetry = readings.get(i).and_then(|(_, r)| r.as_ref().ok());
                MinerInput {
                    id: &m.id,
                    container: &m.container,
                    model: &m.model,
                    nominal_watts: m.nominal_watts,
                    nominal_ths: m.nominal_ths,
                    proven_ths: self
                        .last_proven
                        .get(i)
                        .filter(|p| p.connected)
                        .map(|p| p.ths),
                    mining_watts: telemetry
                        .filter(|t| t.state == MinerState::Mining)
                        .and_then(|t| t.power_watts),
                }
            })
            .collect();
        let mut names: Vec<&Arc<str>> = self.miners.iter().map(|m| &m.container).collect();
        names.dedup();
        let mut containers: Vec<ContainerInput<'_>> = Vec::new();
        for name in names {
            if containers.iter().any(|c| c.name == &**name) {
                continue;
            }
            // IT power is known only when every miner of the container reported it.
            let it: Option<f64> = self
                .miners
                .iter()
                .zip(readings)
                .filter(|(m, _)| m.container == *name)
                .map(|(_, (_, r))| r.as_ref().ok().and_then(|t| t.power_watts))
                .sum();
            let metered = meters
                .iter()
                .find(|(c, _, _)| c == name)
                .map(|(_, _, w)| *w);
            containers.push(ContainerInput {
                name,
                metered_watts: metered.filter(|_| it.is_some()),
                it_watts: it.unwrap_or(0.0),
            });
        }
        Some(economics.evaluate(now, SystemTime::now(), &inputs, &containers))
    }

    /// Ticks until `shutdown` is cancelled. A tick in progress is dropped at once: the
    /// controller's state dies with the process, and a command already sent stands.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(self.settings.tick);
        // A slow poll (many dead miners) stretches one tick; the next one starts a full
        // period later instead of bursting to catch up.
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shared = self.shared.clone();
        tracing::info!(
            miners = self.miners.len(),
            meters = self.meters.len(),
            tick_ms = u64::try_from(self.settings.tick.as_millis()).unwrap_or(u64::MAX),
            "power driver started"
        );
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = interval.tick() => {}
                () = shared.poke.notified() => interval.reset(),
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = self.tick_once() => {}
            }
            if interval.period() != self.settings.tick {
                // A reload changed the tick: the next one comes a new period from now.
                interval = tokio::time::interval_at(
                    tokio::time::Instant::now() + self.settings.tick,
                    self.settings.tick,
                );
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
        }
        tracing::info!("power driver stopped");
    }

    /// Runs one whole tick now: poll, decide, act, record. Exposed for tests and `demo`.
    pub async fn tick_once(&mut self) {
        self.apply_reload();
        let (readings, meter_results, climate_polls) =
            tokio::join!(self.poll_miners(), self.poll_meters(), self.climate.poll());
        let meter_readings = self.absorb_meters(meter_results);
        let now = Instant::now();
        // Economics prices energy at the feed: facility power over the miners' own.
        let feed_readings: Vec<(Arc<str>, Instant, f64)> = meter_readings
            .iter()
            .filter(|(_, role, _, _)| *role == MeterRole::Feed)
            .map(|(container, _, at, watts)| (container.clone(), *at, *watts))
            .collect();
        let economics = self.evaluate_economics(&readings, &feed_readings, now);
        if let Some(e) = &economics {
            use crate::economics::Hold;
            // Logged on the change only: a dead price source would otherwise fill the log.
            match (self.economics_hold, e.hold) {
                // At start there is no job or price yet for a tick or two: not a fault.
                (old, Some(hold @ (Hold::NoJob | Hold::NoPrice))) if old != Some(hold) => {
                    tracing::info!(
                        ?hold,
                        "economic rule holds its decisions until its inputs are usable"
                    );
                }
                (old, Some(hold)) if old != Some(hold) => {
                    tracing::warn!(
                        ?hold,
                        "economic rule holds its decisions until its inputs are usable"
                    );
                }
                (Some(_), None) => tracing::info!("economic rule acts again"),
                _ => {}
            }
            self.economics_hold = e.hold;
        }
        let (report, climate_reports) = {
            let mut c = lock(&self.shared.controller);
            if let Some(e) = &economics {
                c.hold_economics(e.hold.is_some());
                for m in &e.miners {
                    let _ = c.observe_economics(&m.id, m.cost_ratio);
                }
            }
            for (driven, (at, result)) in self.miners.iter().zip(&readings) {
                // The ids come from the inventory, so the controller knows every one.
                let _ = match result {
                    Ok(t) => c.observe_telemetry(&driven.id, *at, t.clone()),
                    Err(_) => c.observe_no_answer(&driven.id, *at),
                };
            }
            for (container, role, at, watts) in &meter_readings {
                let _ = match role {
                    MeterRole::Feed => c.observe_meter(container, *at, *watts),
                    MeterRole::It => c.observe_it_meter(container, *at, *watts),
                };
            }
            let climate_reports = if self.climate.is_empty() {
                Vec::new()
            } else {
                let mut climate = lock(&self.shared.climate);
                self.climate.observe(&mut climate, &climate_polls);
                let names: Vec<Arc<str>> = climate.containers().cloned().collect();
                for name in &names {
                    let _ = climate.observe_miner_inlet(name, now, c.miners_inlet_c(name, now));
                }
                let reports = climate.tick(now);
                for r in &reports {
                    let _ = c.observe_climate(&r.name, now, r.inlet_c, r.cooling_exhausted);
                    // Fans and pump are facility load that is not IT (PUE).
                    let _ = c.set_auxiliary_watts(&r.name, Some(r.aux_watts));
                }
                reports
            };
            (c.tick(now), climate_reports)
        };
        for (driven, (at, result)) in self.miners.iter_mut().zip(&readings) {
            // Logged on the change only: a dead miner would otherwise fill the log each tick.
            match (result, driven.answering) {
                (Err(e), Some(true) | None) => {
                    tracing::warn!(miner = %driven.id, error = %e, "miner management API does not answer; counted at nameplate");
                }
                (Ok(_), Some(false)) => {
                    tracing::info!(miner = %driven.id, "miner management API answers again");
                }
                _ => {}
            }
            driven.answering = Some(result.is_ok());
            driven.seen = next_seen(driven.seen, *at, result);
        }
        let (outcomes, writes) = tokio::join!(
            self.execute(&report.decisions),
            self.climate.write(&climate_reports)
        );
        self.climate
            .absorb_writes(&mut lock(&self.shared.climate), &writes);
        record_tick(&report);
        record_climate(&climate_reports);
        let proven = self.health(now);
        let (pue, site_pue) = self.pue(&report);
        self.publish(&readings, &report, &outcomes, &proven);
        if !climate_reports.is_empty() {
            let blocks = self.climate.status(&climate_reports);
            let mut book = lock(&self.shared.status);
            for (name, block) in blocks {
                if let Some(s) = book.status.containers.iter_mut().find(|s| *s.name == *name) {
                    s.climate = Some(block);
                }
            }
        }
        let mut book = lock(&self.shared.status);
        for (s, p) in book.status.containers.iter_mut().zip(pue) {
            s.pue = p;
        }
        book.status.site_pue = site_pue;
        self.last_proven = proven;
    }

    /// Swaps in an inventory a reload left waiting (see `reload.rs`): controller, clients,
    /// meters and status rows change together, between ticks. What stays keeps its
    /// state; what left is forgotten and its metric series are set to 0.
    fn apply_reload(&mut self) {
        let Some(swap) = lock(&self.shared.pending).take() else {
            return;
        };
        let reload::Swap {
            config,
            mut clients,
        } = swap;
        let change = lock(&self.shared.controller).reconfigure(&config);
        let mut old: HashMap<Arc<str>, Driven> =
            self.miners.drain(..).map(|d| (d.id.clone(), d)).collect();
        for id in change.miners_removed.iter().chain(&change.miners_changed) {
            if let Some(gone) = old.remove(id) {
                gone.retire();
            }
        }
        for name in &change.containers_removed {
            crate::power::controller::retire_container(name);
        }
        self.miners = config
            .miners
            .iter()
            .filter_map(|m| {
                let container = config
                    .containers
                    .get(m.container)
                    .map_or_else(|| Arc::from(""), |c| c.name.clone());
                // Built for every miner by `ClientBook::prepare`; a miner without one is
                // left out rather than given a stranger's.
                let api = clients.remove(&m.id)?;
                Some(match old.remove(&m.id) {
                    Some(kept) => Driven {
                        api,
                        model: m.model.clone(),
                        nominal_watts: m.nominal_watts,
                        nominal_ths: m.nominal_ths,
                        ..kept
                    },
                    None => Driven::fresh(m, container, api),
                })
            })
            .collect();
        self.index = self
            .miners
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.clone(), i))
            .collect();
        self.meters = meters_of(&config, &self.meters, config.driver);
        // Hourly PUE follows the containers by name: a kept one keeps its hour so far.
        let old_names: Vec<Arc<str>> = lock(&self.shared.status)
            .status
            .containers
            .iter()
            .map(|c| Arc::from(c.name.as_str()))
            .collect();
        let mut old_hours: HashMap<Arc<str>, HourlyPue> = old_names
            .into_iter()
            .zip(self.pue_hours.drain(..))
            .collect();
        self.pue_hours = config
            .containers
            .iter()
            .map(|c| old_hours.remove(&c.name).unwrap_or_default())
            .collect();
        self.join = ShareJoin::new(
            &config.miners,
            window_for(config.alarms.hashrate_min_window),
        );
        self.settings = config.driver;
        self.alarms = config.alarms;
        {
            let c = lock(&self.shared.controller);
            let mut book = lock(&self.shared.status);
            let (containers, miners) = status::status_rows(&config);
            let keep_c: HashMap<String, ContainerStatus> = book
                .status
                .containers
                .drain(..)
                .map(|row| (row.name.clone(), row))
                .collect();
            book.status.containers = containers
                .into_iter()
                .map(|fresh| match keep_c.get(&fresh.name) {
                    Some(kept) => ContainerStatus {
                        configured_budget_watts: fresh.configured_budget_watts,
                        ..kept.clone()
                    },
                    None => fresh,
                })
                .collect();
            let unchanged = |id: &str| !change.miners_changed.iter().any(|c| &**c == id);
            let keep_m: HashMap<String, MinerStatus> = book
                .status
                .miners
                .drain(..)
                .filter(|row| unchanged(&row.id))
                .map(|row| (row.id.clone(), row))
                .collect();
            book.status.miners = miners
                .into_iter()
                .map(|fresh| keep_m.get(&fresh.id).cloned().unwrap_or(fresh))
                .collect();
            book.pins = config
                .miners
                .iter()
                .filter_map(|m| c.pin(&m.id).map(|p| (m.id.clone(), p)))
                .collect();
        }
        if change.is_empty() {
            tracing::info!("power budgets and policy reloaded");
        } else {
            tracing::info!(
                change = %change.describe().join("; "),
                miners = self.miners.len(),
                "power inventory reloaded"
            );
        }
    }

    /// PUE now and over the last complete hour, per container and for the site; records
    /// the gauges.
    fn pue(&mut self, report: &TickReport) -> (Vec<PueStatus>, PueStatus) {
        let unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut out = Vec::with_capacity(report.containers.len());
        for (c, hours) in report.containers.iter().zip(self.pue_hours.iter_mut()) {
            hours.sample(unix, c.pue.watts());
            let status = PueStatus::new(
                c.pue.ratio(),
                hours.last_hour(),
                c.pue.facility.map(|(w, s)| (w, Some(s))),
                c.pue.it.map(|(w, s)| (w, Some(s))),
            );
            record_pue(Some(&c.name), &status);
            out.push(status);
        }
        let inputs: Vec<_> = report.containers.iter().map(|c| c.pue).collect();
        let site = pue::site_inputs(&inputs);
        self.site_pue_hours.sample(unix, site.ok());
        let now = site.and_then(|(f, i)| {
            if i > 0.0 {
                Ok(f / i)
            } else {
                Err(PueUnknown::NoItLoad)
            }
        });
        let site_status = PueStatus::new(
            now,
            self.site_pue_hours.last_hour(),
            site.map(|(f, _)| (f, None)),
            site.map(|(_, i)| (i, None)),
        );
        record_pue(None, &site_status);
        (out, site_status)
    }

    async fn poll_miners(&self) -> Vec<(Instant, Result<Telemetry, ApiError>)> {
        let items: Vec<Arc<dyn MinerApi>> = self.miners.iter().map(|m| m.api.clone()).collect();
        let limit = outer_deadline(self.settings);
        api::run_bounded(
            items,
            self.settings.max_concurrent_calls,
            move |api| async move {
                let result = match tokio::time::timeout(limit, api.telemetry()).await {
                    Ok(r) => r,
                    Err(_) => Err(ApiError::Timeout(limit)),
                };
                (Instant::now(), result)
            },
        )
        .await
    }

    async fn poll_meters(&self) -> Vec<(Instant, Result<f64, MeterError>)> {
        type Job = (
            reqwest::Client,
            MeterSpec,
            Option<Arc<tokio::sync::Mutex<ModbusClient>>>,
        );
        let jobs: Vec<Job> = self
            .meters
            .iter()
            .map(|m| (self.http.clone(), m.spec.clone(), m.modbus.clone()))
            .collect();
        let limit = outer_deadline(self.settings);
        api::run_bounded(
            jobs,
            self.settings.max_concurrent_calls,
            move |(http, spec, modbus)| async move {
                let result = match (&spec.modbus, modbus) {
                    (Some(how), Some(client)) => {
                        // The client's own deadlines bound each request; this bounds the
                        // whole reading (power, phases, energy, their retries).
                        let read = async {
                            let mut client = client.lock().await;
                            modbus::read_meter(&mut client, &how.map, how.ratio).await
                        };
                        match tokio::time::timeout(limit * 2, read).await {
                            Ok(Ok(reading)) => Ok(reading.watts),
                            Ok(Err(e)) => Err(MeterError::Transport {
                                address: spec.address.to_string(),
                                problem: e.to_string(),
                            }),
                            Err(_) => Err(MeterError::Transport {
                                address: spec.address.to_string(),
                                problem: format!("no reading within {:?}", limit * 2),
                            }),
                        }
                    }
                    _ => read_meter(&http, &spec).await,
                };
                (Instant::now(), result)
            },
        )
        .await
    }

    /// Keeps the good meter readings, sets `hashgate_container_meter_up`, and logs each
    /// outage once (the controller's `meter_fallback` reports the rest).
    fn absorb_meters(
        &mut self,
        results: Vec<(Instant, Result<f64, MeterError>)>,
    ) -> Vec<(Arc<str>, MeterRole, Instant, f64)> {
        let mut out = Vec::new();
        for (m, (at, result)) in self.meters.iter_mut().zip(results) {
            metrics::gauge!(
                METER_UP,
                "container" => m.container.clone(),
                "meter" => m.role.label()
            )
            .set(f64::from(u8::from(result.is_ok())));
            match result {
                Ok(watts) => {
                    if m.failing {
                        tracing::info!(container = %m.container, meter = m.role.label(), "power meter answers again");
                    }
                    m.failing = false;
                    out.push((m.container.clone(), m.role, at, watts));
                }
                Err(e) => {
                    if !m.failing {
                        tracing::warn!(container = %m.container, meter = m.role.label(), error = %e, "power meter reading failed");
                    }
                    m.failing = true;
                }
            }
        }
        out
    }

    /// Sends every sleep and wake of the tick; reports failures to the controller.
    async fn execute(&self, decisions: &[Decision]) -> Vec<String> {
        let jobs: Vec<(Option<Arc<dyn MinerApi>>, Action)> = decisions
            .iter()
            .map(|d| {
                let api = d
                    .miner
                    .as_ref()
                    .and_then(|id| self.index.get(id))
                    .and_then(|&i| self.miners.get(i))
                    .map(|m| m.api.clone());
                (api, d.action)
            })
            .collect();
        let limit = outer_deadline(self.settings);
        let results = api::run_bounded(
            jobs,
            self.settings.max_concurrent_calls,
            move |(api, action)| async move {
                let api = api?;
                let call = async {
                    match action {
                        Action::Sleep => api.sleep().await,
                        Action::Wake => api.wake().await,
                        Action::Blocked => Ok(()),
                    }
                };
                Some(match tokio::time::timeout(limit, call).await {
                    Ok(r) => r,
                    Err(_) => Err(ApiError::Timeout(limit)),
                })
            },
        )
        .await;
        let now = Instant::now();
        let mut outcomes = Vec::with_capacity(decisions.len());
        for (d, result) in decisions.iter().zip(results) {
            let outcome = match (d.action, result) {
                (Action::Blocked, _) | (_, None) => "not_sent".to_owned(),
                (_, Some(Ok(()))) => "ok".to_owned(),
                (action, Some(Err(e))) => {
                    let miner = d.miner.as_deref().unwrap_or("");
                    tracing::warn!(
                        container = %d.container,
                        miner,
                        action = action.label(),
                        error = %e,
                        "power command failed"
                    );
                    let _ = lock(&self.shared.controller).command_failed(miner, action, now);
                    format!("failed: {e}")
                }
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Evaluates alarms with share-proven data; logs changes and sets the alarm gauges.
    fn health(&mut self, now: Instant) -> Vec<Proven> {
        let wall = SystemTime::now();
        let snapshots = self.registry.miners(now);
        let proven = self.join.prove(self.miners.len(), &snapshots, now, wall);
        for (i, worker) in self.join.joined_workers(&snapshots) {
            if let Some(m) = self.miners.get_mut(i) {
                m.workers.publish(&m.id, &m.container, worker);
            }
        }
        let intents: Vec<Option<(IntendedState, Option<f64>)>> = {
            let c = lock(&self.shared.controller);
            self.miners
                .iter()
                .map(|m| Some((c.intended_state(&m.id)?, c.implausible_watts(&m.id, now))))
                .collect()
        };
        for ((driven, intended), p) in self.miners.iter_mut().zip(intents).zip(&proven) {
            let Some((intended, implausible_watts)) = intended else {
                continue;
            };
            let input = HealthInput {
                intended,
                api: match driven.seen {
                    Seen::NoAnswer => ApiView::NoAnswer,
                    Seen::Sleeping => ApiView::Sleeping,
                    Seen::Idle => ApiView::Idle,
                    Seen::Mining {
                        since,
                        hashrate_ths,
                    } => ApiView::Mining {
                        since,
                        hashrate_ths,
                    },
                },
                proven_ths: p.ths,
                last_share: p.last_share,
                implausible_watts,
            };
            let alarms = evaluate_health(&input, &self.alarms, now);
            let labels: Vec<&'static str> = alarms.iter().map(|a| a.label()).collect();
            for alarm in &alarms {
                if !driven.alarms.contains(&alarm.label()) {
                    tracing::warn!(miner = %driven.id, alarm = alarm.label(), detail = ?alarm, "miner alarm raised");
                }
            }
            for old in &driven.alarms {
                if !labels.contains(old) {
                    tracing::info!(miner = %driven.id, alarm = *old, "miner alarm cleared");
                }
            }
            join::publish_alarms(&driven.id, &labels);
            driven.alarms = labels;
        }
        proven
    }

    /// Writes the tick's figures into the shared status.
    fn publish(
        &self,
        readings: &[(Instant, Result<Telemetry, ApiError>)],
        report: &TickReport,
        outcomes: &[String],
        proven: &[Proven],
    ) {
        let wall = SystemTime::now();
        let mut book = lock(&self.shared.status);
        book.status.ticks += 1;
        book.status.last_tick_unix_ms = Some(status::unix_ms(wall));
        for (s, r) in book.status.containers.iter_mut().zip(&report.containers) {
            s.budget_watts = r.budget_watts;
            s.load_watts = Some(r.load_watts);
            s.projected_watts = Some(r.projected_watts);
            s.load_source = Some(status::source_label(r.source));
            s.meter_fallback = r.meter_fallback.map(|f| f.label());
            s.inlet_c = r.temperature_c;
            s.hot = r.hot;
            s.stuck_over_budget = r.stuck_over_budget;
        }
        let rows = book
            .status
            .miners
            .iter_mut()
            .zip(&report.miners)
            .zip(readings)
            .zip(self.miners.iter().zip(proven));
        for (((s, r), (_, reading)), (driven, p)) in rows {
            s.intended = Some(status::power_state_label(r.state));
            s.counted_watts = Some(r.counted_watts);
            s.counted = Some(status::counted_label(r.counted));
            match reading {
                Ok(t) => {
                    s.observed = t.state.into();
                    s.reported_watts = t.power_watts;
                }
                Err(_) => {
                    s.observed = Observed::NoAnswer;
                    s.reported_watts = None;
                }
            }
            s.proven_ths = p.connected.then_some(p.ths);
            s.alarms.clone_from(&driven.alarms);
            s.asleep_reason = r.asleep_reason.map(|k| k.label());
        }
        book.asleep_workers = report
            .miners
            .iter()
            .zip(&self.miners)
            .filter(|(r, driven)| {
                r.id == driven.id
                    && matches!(
                        r.state,
                        PowerState::Asleep | PowerState::FallingAsleep | PowerState::Maintenance
                    )
            })
            .flat_map(|(_, driven)| driven.workers.names().iter().cloned())
            .collect();
        for (d, outcome) in report.decisions.iter().zip(outcomes) {
            book.push_decision(Record::new(
                wall,
                d.container.clone(),
                d.miner.clone(),
                d.action,
                d.reason,
                outcome.clone(),
            ));
        }
    }
}

/// The meters of `config`'s containers. A meter configured as before (same container,
/// role and settings) keeps its Modbus connection and what was known of it; a new or
/// changed one gets a fresh client.
fn meters_of(config: &PowerConfig, old: &[Meter], settings: DriverSettings) -> Vec<Meter> {
    config
        .containers
        .iter()
        .flat_map(|c| {
            [(MeterRole::Feed, &c.meter), (MeterRole::It, &c.it_meter)]
                .into_iter()
                .filter_map(|(role, spec)| {
                    let spec = spec.clone()?;
                    let kept = old
                        .iter()
                        .find(|m| m.container == c.name && m.role == role && m.spec == spec);
                    let modbus = match kept {
                        Some(k) => k.modbus.clone(),
                        None => spec.modbus.as_ref().map(|_| {
                            Arc::new(tokio::sync::Mutex::new(ModbusClient::new(
                                spec.address.clone(),
                                modbus_settings(settings),
                            )))
                        }),
                    };
                    Some(Meter {
                        container: c.name.clone(),
                        role,
                        spec,
                        modbus,
                        failing: kept.is_some_and(|k| k.failing),
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

impl Driven {
    /// A miner the driver has not driven before: nothing seen yet, its worker name (if
    /// any) published for the power/share join.
    fn fresh(m: &MinerSpec, container: Arc<str>, api: Arc<dyn MinerApi>) -> Driven {
        let mut workers = join::WorkerNames::default();
        if let Some(worker) = &m.worker {
            workers.publish(&m.id, &container, worker);
        }
        Driven {
            id: m.id.clone(),
            api,
            seen: Seen::NoAnswer,
            answering: None,
            alarms: Vec::new(),
            container,
            workers,
            model: m.model.clone(),
            nominal_watts: m.nominal_watts,
            nominal_ths: m.nominal_ths,
        }
    }

    /// Sets the miner's series to 0 when a reload removes or changes it: the recorder
    /// cannot delete a series, and a stale 1 (asleep, an alarm) would mislead alerts.
    fn retire(&self) {
        crate::power::controller::retire_miner(&self.id, &self.container);
        join::publish_alarms(&self.id, &[]);
        self.workers.retire(&self.id, &self.container);
    }
}

/// The next API view: a mining stretch keeps its start while answers keep saying mining.
fn next_seen(prev: Seen, at: Instant, result: &Result<Telemetry, ApiError>) -> Seen {
    match result {
        Err(_) => Seen::NoAnswer,
        Ok(t) => match t.state {
            MinerState::Sleeping => Seen::Sleeping,
            MinerState::Idle => Seen::Idle,
            MinerState::Mining => Seen::Mining {
                since: match prev {
                    Seen::Mining { since, .. } => since,
                    _ => at,
                },
                hashrate_ths: t.hashrate_ths,
            },
        },
    }
}

/// A deadline around every call, for clients whose own deadline is missing or broken: the
/// client's whole-call deadline plus its connect deadline.
fn outer_deadline(settings: DriverSettings) -> Duration {
    settings.timeouts.call + settings.timeouts.connect
}

/// Sets the PUE gauges of a container (`Some(name)`) or of the site: NaN while unknown, so
/// a stale figure never stands in for a lost input.
fn record_pue(container: Option<&Arc<str>>, status: &PueStatus) {
    let value = status.pue.unwrap_or(f64::NAN);
    let hourly = status.hourly.unwrap_or(f64::NAN);
    let Some(name) = container else {
        metrics::gauge!("hashgate_site_pue").set(value);
        metrics::gauge!("hashgate_site_pue_hourly").set(hourly);
        return;
    };
    metrics::gauge!("hashgate_container_pue", "container" => name.clone()).set(value);
    metrics::gauge!("hashgate_container_pue_hourly", "container" => name.clone()).set(hourly);
    metrics::gauge!("hashgate_container_facility_power_watts", "container" => name.clone())
        .set(status.facility_watts.unwrap_or(f64::NAN));
    metrics::gauge!("hashgate_container_it_power_watts", "container" => name.clone())
        .set(status.it_watts.unwrap_or(f64::NAN));
    // A state set per input, so `== 1` picks the source in force and a change of source
    // leaves no stale series behind.
    let facility = status.facility_source.map(|s| match s {
        FacilitySource::Meter => "meter",
        FacilitySource::ItPlusAuxiliary => "it_plus_auxiliary",
    });
    for source in ["meter", "it_plus_auxiliary", "unknown"] {
        let on = facility.unwrap_or("unknown") == source;
        metrics::gauge!(
            "hashgate_container_pue_source",
            "container" => name.clone(),
            "input" => "facility",
            "source" => source
        )
        .set(f64::from(u8::from(on)));
    }
    let it = status.it_source.map(|s| match s {
        ItSource::ItMeter => "it_meter",
        ItSource::Miners => "miners",
    });
    for source in ["it_meter", "miners", "unknown"] {
        let on = it.unwrap_or("unknown") == source;
        metrics::gauge!(
            "hashgate_container_pue_source",
            "container" => name.clone(),
            "input" => "it",
            "source" => source
        )
        .set(f64::from(u8::from(on)));
    }
}

/// Modbus deadlines from the driver's: a meter gateway answers within the miners' connect
/// deadline or not at all, and two attempts fit in one tick.
fn modbus_settings(settings: DriverSettings) -> ClientSettings {
    ClientSettings {
        connect_timeout: settings.timeouts.connect,
        call_timeout: settings.timeouts.connect,
        attempts: 2,
        retry_delay: Duration::from_millis(100),
    }
}

fn meter_client(settings: DriverSettings) -> reqwest::Client {
    reqwest::Client::builder()
        // The meter sits on the site LAN; an internet proxy must not see or break it.
        .no_proxy()
        .connect_timeout(settings.timeouts.connect)
        .timeout(settings.timeouts.call)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

pub(super) async fn resolve(address: &Address) -> Result<SocketAddr, String> {
    match address {
        Address::Socket(addr) => Ok(*addr),
        Address::Host { host, port } => tokio::net::lookup_host((host.as_str(), *port))
            .await
            .map_err(|e| e.to_string())?
            .next()
            .ok_or_else(|| "no address".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn telemetry(state: MinerState) -> Result<Telemetry, ApiError> {
        Ok(Telemetry {
            power_watts: None,
            inlet_temp_c: None,
            board_temps_c: Vec::new(),
            hashrate_ths: Some(100.0),
            fan_rpm: Vec::new(),
            state,
        })
    }

    #[test]
    fn mining_stretch_keeps_its_start_until_broken() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(10);
        let t2 = t0 + Duration::from_secs(20);
        let s = next_seen(Seen::NoAnswer, t0, &telemetry(MinerState::Mining));
        let s = next_seen(s, t1, &telemetry(MinerState::Mining));
        assert_eq!(
            s,
            Seen::Mining {
                since: t0,
                hashrate_ths: Some(100.0)
            }
        );
        let s = next_seen(s, t1, &Err(ApiError::Timeout(Duration::from_secs(1))));
        assert_eq!(s, Seen::NoAnswer);
        let s = next_seen(s, t2, &telemetry(MinerState::Mining));
        assert!(matches!(s, Seen::Mining { since, .. } if since == t2));
    }
}
