//! What the driver shares with the admin API and status output: the controller behind a
//! lock held only between awaits, the last tick's figures, and a ring of recent decisions.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::Notify;

use crate::climate::{Climate, ClimateError, Override};
use crate::power::api::MinerState;
use crate::power::controller::{
    Action, ControlError, Controller, Counted, InventoryChange, LoadSource, PowerState, Reason,
};
use crate::power::inventory::{Pin, PowerConfig};
use crate::power::pue::{FacilitySource, ItSource, PueUnknown};

/// Recent decisions kept for the demo and the status API: enough to show the last few
/// minutes of a busy container, small enough to copy on every status read.
pub const RECENT_DECISIONS: usize = 64;

/// One decision as it was carried out, for status output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRecord {
    /// Wall-clock time of the tick, Unix milliseconds; the JSON says `at_unix_seconds`
    /// (seconds with millisecond precision, the API's one time unit).
    #[serde(rename = "at_unix_seconds", serialize_with = "ms_as_seconds")]
    pub at_unix_ms: u64,
    /// Container.
    pub container: String,
    /// Miner commanded; none for a blocked action.
    pub miner: Option<String>,
    /// `sleep`, `wake` or `blocked`.
    pub action: &'static str,
    /// Why (`over_budget`, `headroom`, ...).
    pub reason: &'static str,
    /// What came of the command: `ok`, `failed: ...`, or `not_sent` for blocked actions.
    pub outcome: String,
}

impl DecisionRecord {
    pub(super) fn new(
        at: SystemTime,
        container: Arc<str>,
        miner: Option<Arc<str>>,
        action: Action,
        reason: Reason,
        outcome: String,
    ) -> Self {
        Self {
            at_unix_ms: unix_ms(at),
            container: container.to_string(),
            miner: miner.map(|m| m.to_string()),
            action: action.label(),
            reason: reason.label(),
            outcome,
        }
    }
}

/// Milliseconds as the API writes times: Unix seconds with millisecond precision.
fn ms_as_seconds<S: serde::Serializer>(ms: &u64, s: S) -> Result<S::Ok, S::Error> {
    // Exact: milliseconds below 2⁵³ and one division.
    s.serialize_f64(*ms as f64 / 1000.0)
}

fn opt_ms_as_seconds<S: serde::Serializer>(ms: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => ms_as_seconds(ms, s),
        None => s.serialize_none(),
    }
}

pub(super) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One container's power view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerStatus {
    /// Name.
    pub name: String,
    /// Budget in force now (config or demand response), W.
    pub budget_watts: f64,
    /// Configured budget, W.
    pub configured_budget_watts: f64,
    /// Fail-safe load estimate at the last tick, W; none before the first tick.
    pub load_watts: Option<f64>,
    /// Load once pending orders take effect, W.
    pub projected_watts: Option<f64>,
    /// `meter` or `miners`.
    pub load_source: Option<&'static str>,
    /// Why a configured meter was not used (`missing`, `stale`, `invalid`).
    pub meter_fallback: Option<&'static str>,
    /// Hottest inlet reading, °C.
    pub inlet_c: Option<f64>,
    /// Shedding for heat.
    pub hot: bool,
    /// Over budget with nothing left to sleep.
    pub stuck_over_budget: bool,
    /// Fans, pump and climate sensors, when the container has `[climate]`; none before
    /// the first tick.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub climate: Option<super::ClimateStatus>,
    /// PUE and its inputs at the last tick.
    pub pue: PueStatus,
}

/// A PUE figure with its inputs, as the API shows it: every figure `null` when unknown,
/// with the reason beside it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PueStatus {
    /// Facility over IT power at the last tick.
    pub pue: Option<f64>,
    /// Why `pue` is null (`no_facility_power`, `it_meter_stale`, `miner_power_unreported`,
    /// `no_it_load`, `container_unknown`, `no_tick_yet`).
    pub unknown_reason: Option<&'static str>,
    /// Facility over IT energy over the last complete UTC hour.
    pub hourly: Option<f64>,
    /// Why `hourly` is null (`no_complete_hour`, `hour_incomplete`, `no_it_load`).
    pub hourly_unknown_reason: Option<&'static str>,
    /// Facility power, W.
    pub facility_watts: Option<f64>,
    /// `meter` (feed meter) or `it_plus_auxiliary`.
    pub facility_source: Option<FacilitySource>,
    /// IT power, W.
    pub it_watts: Option<f64>,
    /// `it_meter` or `miners` (Σ reported power).
    pub it_source: Option<ItSource>,
}

impl Default for PueStatus {
    fn default() -> Self {
        PueStatus {
            pue: None,
            unknown_reason: Some("no_tick_yet"),
            hourly: None,
            hourly_unknown_reason: Some("no_tick_yet"),
            facility_watts: None,
            facility_source: None,
            it_watts: None,
            it_source: None,
        }
    }
}

impl PueStatus {
    /// The status of one container's (or, with `site` inputs, the site's) figures.
    pub fn new(
        now: Result<f64, PueUnknown>,
        hourly: Result<f64, PueUnknown>,
        facility: Result<(f64, Option<FacilitySource>), PueUnknown>,
        it: Result<(f64, Option<ItSource>), PueUnknown>,
    ) -> PueStatus {
        PueStatus {
            pue: now.ok(),
            unknown_reason: now.err().map(PueUnknown::label),
            hourly: hourly.ok(),
            hourly_unknown_reason: hourly.err().map(PueUnknown::label),
            facility_watts: facility.ok().map(|(w, _)| w),
            facility_source: facility.ok().and_then(|(_, s)| s),
            it_watts: it.ok().map(|(w, _)| w),
            it_source: it.ok().and_then(|(_, s)| s),
        }
    }
}

/// What the management API last said, for status output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Observed {
    /// Not polled yet.
    Unknown,
    /// The last poll failed or timed out.
    NoAnswer,
    /// Hashing.
    Mining,
    /// Asleep.
    Sleeping,
    /// Up but neither mining nor sleeping.
    Idle,
}

impl From<MinerState> for Observed {
    fn from(s: MinerState) -> Self {
        match s {
            MinerState::Mining => Observed::Mining,
            MinerState::Sleeping => Observed::Sleeping,
            MinerState::Idle => Observed::Idle,
        }
    }
}

/// One miner's power view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinerStatus {
    /// Inventory id.
    pub id: String,
    /// Container.
    pub container: String,
    /// Nameplate efficiency, J/TH.
    pub joules_per_th: f64,
    /// Pin in force (`keep_on`, `keep_off`, `maintenance`), none for automatic.
    pub pin: Option<&'static str>,
    /// What the controller intends: `asleep`, `awake`, `waking`, `falling_asleep`,
    /// `maintenance`; none before the first tick.
    pub intended: Option<&'static str>,
    /// What the management API last said.
    pub observed: Observed,
    /// Power the API reported, W.
    pub reported_watts: Option<f64>,
    /// Power the controller counted (fail safe), W.
    pub counted_watts: Option<f64>,
    /// How it was counted (`telemetry`, `nameplate_no_answer`, ...).
    pub counted: Option<&'static str>,
    /// Hashrate proven by shares, TH/s, when a Stratum connection joins to it.
    pub proven_ths: Option<f64>,
    /// Alarms raised at the last tick.
    pub alarms: Vec<&'static str>,
    /// Why it is asleep: `economic`, `power`, `temperature` or `manual`; none while awake.
    pub asleep_reason: Option<&'static str>,
}

/// The driver's whole view, as `GET /api/v1/power` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerStatus {
    /// Ticks run so far.
    pub ticks: u64,
    /// Wall-clock time of the last tick, Unix milliseconds; the JSON says
    /// `last_tick_unix_seconds`.
    #[serde(
        rename = "last_tick_unix_seconds",
        serialize_with = "opt_ms_as_seconds"
    )]
    pub last_tick_unix_ms: Option<u64>,
    /// Containers in config order.
    pub containers: Vec<ContainerStatus>,
    /// Miners in config order.
    pub miners: Vec<MinerStatus>,
    /// The site's PUE: Σ facility over Σ IT power of every container (unknown when any
    /// container's is).
    pub site_pue: PueStatus,
    /// Latest decisions, oldest first, at most [`RECENT_DECISIONS`].
    pub recent_decisions: Vec<DecisionRecord>,
}

pub(super) fn power_state_label(s: PowerState) -> &'static str {
    match s {
        PowerState::Asleep => "asleep",
        PowerState::Awake => "awake",
        PowerState::Waking => "waking",
        PowerState::FallingAsleep => "falling_asleep",
        PowerState::Maintenance => "maintenance",
    }
}

pub(super) fn counted_label(c: Counted) -> &'static str {
    match c {
        Counted::Telemetry => "telemetry",
        Counted::NameplateUnreported => "nameplate_unreported",
        Counted::NameplateNoAnswer => "nameplate_no_answer",
        Counted::NameplateSleepPending => "nameplate_sleep_pending",
        Counted::NameplateRamping => "nameplate_ramping",
        Counted::NameplateImplausible => "nameplate_implausible",
    }
}

pub(super) fn source_label(s: LoadSource) -> &'static str {
    s.label()
}

/// State shared between the driver task and its handles.
#[derive(Debug)]
pub(super) struct DriverState {
    pub controller: Mutex<Controller>,
    /// Fan and pump staging; locked after `controller` when both are held.
    pub climate: Mutex<Climate>,
    pub status: Mutex<StatusBook>,
    /// Wakes the driver for an early tick after a budget or pin change.
    pub poke: Notify,
    /// The inventory last accepted and its management clients.
    pub book: Mutex<super::reload::ClientBook>,
    /// A reloaded inventory the driver swaps in at the start of its next tick.
    pub pending: Mutex<Option<super::reload::Swap>>,
}

/// The status figures and the decision ring.
#[derive(Debug)]
pub(super) struct StatusBook {
    pub status: PowerStatus,
    pub recent: VecDeque<DecisionRecord>,
    /// Pins in force, by miner id (config, then admin API).
    pub pins: HashMap<Arc<str>, Pin>,
    /// Worker names of the miners held asleep, falling asleep or in maintenance at the
    /// last tick, so the status API can say `sleeping` rather than `starting` or `silent`.
    pub asleep_workers: std::collections::HashSet<String>,
}

impl StatusBook {
    /// Appends a decision, dropping the oldest once [`RECENT_DECISIONS`] are kept.
    pub(super) fn push_decision(&mut self, record: DecisionRecord) {
        while self.recent.len() >= RECENT_DECISIONS {
            self.recent.pop_front();
        }
        self.recent.push_back(record);
    }
}

/// Locks a mutex, taking the data even if a panic poisoned it: the values stay consistent
/// (every writer replaces whole fields), and power control must go on.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DriverState {
    pub(super) fn new(config: &PowerConfig, book: super::reload::ClientBook) -> DriverState {
        let (containers, miners) = status_rows(config);
        let pins = config
            .miners
            .iter()
            .filter_map(|m| m.pin.map(|p| (m.id.clone(), p)))
            .collect();
        DriverState {
            controller: Mutex::new(Controller::new(config)),
            climate: Mutex::new(super::climate::ClimateLoop::controller(config)),
            status: Mutex::new(StatusBook {
                status: PowerStatus {
                    ticks: 0,
                    last_tick_unix_ms: None,
                    containers,
                    miners,
                    site_pue: PueStatus::default(),
                    recent_decisions: Vec::new(),
                },
                recent: VecDeque::with_capacity(RECENT_DECISIONS),
                pins,
                asleep_workers: std::collections::HashSet::new(),
            }),
            poke: Notify::new(),
            book: Mutex::new(book),
            pending: Mutex::new(None),
        }
    }
}

/// Status rows for a new inventory, before its first tick.
pub(super) fn status_rows(config: &PowerConfig) -> (Vec<ContainerStatus>, Vec<MinerStatus>) {
    let containers = config
        .containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.to_string(),
            budget_watts: c.budget_watts,
            configured_budget_watts: c.budget_watts,
            load_watts: None,
            projected_watts: None,
            load_source: None,
            meter_fallback: None,
            inlet_c: None,
            hot: false,
            stuck_over_budget: false,
            climate: None,
            pue: PueStatus::default(),
        })
        .collect();
    let miners = config
        .miners
        .iter()
        .map(|m| MinerStatus {
            id: m.id.to_string(),
            container: config
                .containers
                .get(m.container)
                .map_or_else(String::new, |c| c.name.to_string()),
            joules_per_th: m.joules_per_th(),
            pin: m.pin.map(Pin::label),
            intended: None,
            observed: Observed::Unknown,
            reported_watts: None,
            counted_watts: None,
            counted: None,
            proven_ths: None,
            alarms: Vec::new(),
            asleep_reason: None,
        })
        .collect();
    (containers, miners)
}

/// The same containers and miners in the same order: the driver's per-position lists
/// stay aligned with the controller's, so budgets and policy may change between ticks.
fn same_layout(old: &PowerConfig, new: &PowerConfig) -> bool {
    old.containers.len() == new.containers.len()
        && old.miners.len() == new.miners.len()
        && old
            .containers
            .iter()
            .zip(&new.containers)
            .all(|(a, b)| a.name == b.name)
        && old.miners.iter().zip(&new.miners).all(|(a, b)| a == b)
}

/// A cheap, cloneable view and control of a running [`PowerDriver`](super::PowerDriver):
/// what the admin API and status output use.
#[derive(Debug, Clone)]
pub struct PowerHandle {
    pub(super) shared: Arc<DriverState>,
}

impl PowerHandle {
    /// Whether `worker`'s inventory miner is held asleep (or falling asleep, or in
    /// maintenance) by the controller at its last tick.
    pub fn is_asleep(&self, worker: &str) -> bool {
        lock(&self.shared.status).asleep_workers.contains(worker)
    }

    /// The current power view: containers, miners and recent decisions. Budgets and pins are
    /// the ones in force now; loads and states are those of the last tick.
    pub fn status(&self) -> PowerStatus {
        let budgets: Vec<Option<f64>> = {
            let c = lock(&self.shared.controller);
            let book = lock(&self.shared.status);
            book.status
                .containers
                .iter()
                .map(|s| c.budget_watts(&s.name))
                .collect()
        };
        let book = lock(&self.shared.status);
        let mut status = book.status.clone();
        for (c, budget) in status.containers.iter_mut().zip(budgets) {
            if let Some(b) = budget {
                c.budget_watts = b;
            }
        }
        for m in &mut status.miners {
            m.pin = book.pins.get(m.id.as_str()).map(|p| p.label());
        }
        status.recent_decisions = book.recent.iter().cloned().collect();
        status
    }

    /// Applies a reloaded `[power]` section: budgets, policy, driver settings and the
    /// inventory itself (miners and containers added, removed or changed; see
    /// [`Controller::reconfigure`]). New management clients are built (host names
    /// resolved) here, on the caller's thread; the driver swaps the new inventory in at the
    /// start of its next tick, which it runs at once. When the miners and containers are
    /// the same, in the same order, budgets and policy apply before this returns.
    ///
    /// # Errors
    /// [`DriverError::Resolve`](super::DriverError::Resolve) or
    /// [`DriverError::MissingClient`](super::DriverError::MissingClient) for a new
    /// miner's client, [`DriverError::NeedsRestart`](super::DriverError::NeedsRestart) for
    /// a changed climate section; nothing changes then.
    pub fn reload(&self, config: &PowerConfig) -> Result<InventoryChange, super::DriverError> {
        lock(&self.shared.controller).check_reload(config)?;
        let mut book = lock(&self.shared.book);
        let (change, swap) = book.prepare(config)?;
        if same_layout(&book.config, config) {
            let _ = lock(&self.shared.controller).reconfigure(config);
            let mut status = lock(&self.shared.status);
            for (row, spec) in status.status.containers.iter_mut().zip(&config.containers) {
                row.configured_budget_watts = spec.budget_watts;
            }
        }
        book.accept(&swap);
        drop(book);
        *lock(&self.shared.pending) = Some(swap);
        self.shared.poke.notify_one();
        Ok(change)
    }

    /// The latest decisions, oldest first (at most [`RECENT_DECISIONS`]).
    pub fn recent_decisions(&self) -> Vec<DecisionRecord> {
        lock(&self.shared.status).recent.iter().cloned().collect()
    }

    /// Demand response: replaces a container's budget (`None` returns to the configured
    /// one). The driver ticks at once, so the new budget is honoured within one tick.
    ///
    /// # Errors
    /// [`ControlError::UnknownContainer`], [`ControlError::InvalidBudget`].
    pub fn set_budget(
        &self,
        container: &str,
        budget_watts: Option<f64>,
    ) -> Result<(), ControlError> {
        lock(&self.shared.controller).set_budget(container, budget_watts)?;
        tracing::info!(
            container,
            budget_watts,
            "power budget changed by the admin API"
        );
        self.shared.poke.notify_one();
        Ok(())
    }

    /// Forces a container's fan bank (by name) or its pump (`"pump"`) on or off, or returns
    /// it to automatic staging; the driver ticks at once.
    ///
    /// # Errors
    /// [`ClimateError::UnknownContainer`] (no climate control there),
    /// [`ClimateError::UnknownDevice`].
    pub fn set_climate_override(
        &self,
        container: &str,
        device: &str,
        mode: Override,
    ) -> Result<(), ClimateError> {
        lock(&self.shared.climate).set_override(container, device, mode)?;
        tracing::info!(
            container,
            device,
            mode = mode.label(),
            "climate override changed by the admin API"
        );
        self.shared.poke.notify_one();
        Ok(())
    }

    /// Adds running time recorded before this process (the ledger's) to a container's fan
    /// bank or pump, so fan rotation by run hours goes on across a restart; call before
    /// the driver's first tick.
    ///
    /// # Errors
    /// [`ClimateError::UnknownContainer`], [`ClimateError::UnknownDevice`].
    pub fn add_climate_prior_run(
        &self,
        container: &str,
        device: &str,
        run_secs: f64,
    ) -> Result<(), ClimateError> {
        lock(&self.shared.climate).add_prior_run(container, device, run_secs)
    }

    /// Sets the container's auxiliary (non-IT: fans, curtain pump) load, W, as its climate
    /// control measures or estimates it; `None` when unknown. PUE uses it when the
    /// container has no feed meter (facility = IT + auxiliary). Takes effect next tick.
    ///
    /// # Errors
    /// [`ControlError::UnknownContainer`], [`ControlError::InvalidAuxiliary`].
    pub fn set_auxiliary_watts(
        &self,
        container: &str,
        watts: Option<f64>,
    ) -> Result<(), ControlError> {
        lock(&self.shared.controller).set_auxiliary_watts(container, watts)
    }

    /// Sets (`Some`) or lifts (`None`) a miner's pin; the driver ticks at once.
    ///
    /// # Errors
    /// [`ControlError::UnknownMiner`].
    pub fn set_pin(&self, miner: &str, pin: Option<Pin>) -> Result<(), ControlError> {
        lock(&self.shared.controller).set_pin(miner, pin)?;
        {
            let mut book = lock(&self.shared.status);
            let key = book
                .status
                .miners
                .iter()
                .find(|m| m.id == miner)
                .map(|m| Arc::<str>::from(m.id.as_str()));
            if let Some(key) = key {
                match pin {
                    Some(p) => book.pins.insert(key, p),
                    None => book.pins.remove(&key),
                };
            }
        }
        tracing::info!(
            miner,
            pin = pin.map_or("auto", Pin::label),
            "miner pin changed by the admin API"
        );
        self.shared.poke.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::inventory::PowerConfig;

    const INVENTORY: &str = r#"
        [[containers]]
        name = "c1"
        budget_kw = 100
        [[miners]]
        id = "m1"
        container = "c1"
        address = "10.0.0.7"
        family = "luxos"
        model = "S19"
        nominal_watts = 3000
        nominal_ths = 100
        pin = "keep_on"
    "#;

    fn empty_book(cfg: &PowerConfig) -> super::super::reload::ClientBook {
        super::super::reload::ClientBook {
            config: cfg.clone(),
            clients: HashMap::new(),
            factory: super::super::reload::ClientFactory::Given(HashMap::new()),
        }
    }

    #[test]
    fn decision_ring_keeps_the_latest_only() {
        let cfg = PowerConfig::from_toml_str(INVENTORY).expect("valid");
        let shared = DriverState::new(&cfg, empty_book(&cfg));
        let mut book = lock(&shared.status);
        for i in 0..RECENT_DECISIONS + 10 {
            book.push_decision(DecisionRecord::new(
                SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(i as u64),
                Arc::from("c1"),
                Some(Arc::from("m1")),
                Action::Sleep,
                Reason::OverBudget,
                "ok".into(),
            ));
        }
        assert_eq!(book.recent.len(), RECENT_DECISIONS);
        assert_eq!(book.recent.front().map(|d| d.at_unix_ms), Some(10));
        assert_eq!(
            book.recent.back().map(|d| d.at_unix_ms),
            Some((RECENT_DECISIONS + 9) as u64)
        );
    }

    #[test]
    fn handle_shows_config_then_admin_pins_and_budgets() {
        let cfg = PowerConfig::from_toml_str(INVENTORY).expect("valid");
        let handle = PowerHandle {
            shared: Arc::new(DriverState::new(&cfg, empty_book(&cfg))),
        };
        let s = handle.status();
        assert_eq!(s.miners[0].pin, Some("keep_on"));
        assert_eq!(s.containers[0].budget_watts, 100_000.0);
        assert_eq!(s.miners[0].observed, Observed::Unknown);
        handle.set_pin("m1", None).expect("known");
        handle.set_budget("c1", Some(50_000.0)).expect("known");
        let s = handle.status();
        assert_eq!(s.miners[0].pin, None);
        assert_eq!(s.containers[0].budget_watts, 50_000.0);
        assert_eq!(s.containers[0].configured_budget_watts, 100_000.0);
        assert!(handle.set_pin("m9", Some(Pin::KeepOff)).is_err());
    }
}
