//! What one controller tick decided and saw: decisions with reasons, and per-container and
//! per-miner figures for metrics and the status API.

use std::fmt;
use std::sync::Arc;

use crate::power::pue::PueInputs;

/// What the driver should do to a miner (or what could not be done).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send the miner to sleep through its management API.
    Sleep,
    /// Wake the miner through its management API.
    Wake,
    /// An action was needed but no miner could take it (everything pinned or in dwell);
    /// nothing is sent, the operator is told.
    Blocked,
}

impl Action {
    /// Stable snake_case label for logs and the `action` metric label.
    pub fn label(self) -> &'static str {
        match self {
            Action::Sleep => "sleep",
            Action::Wake => "wake",
            Action::Blocked => "blocked",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Why a decision was taken; the set is closed so metric labels stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Load is above the budget: shed the least efficient.
    OverBudget,
    /// Inlet temperature is above the limit: shed the least efficient, then hottest.
    OverTemperature,
    /// Load is under the budget by more than the hysteresis and this miner fits.
    Headroom,
    /// Pinned keep-off: sleep whatever the budget.
    PinnedOff,
    /// Pinned keep-on and asleep: woken first once it fits.
    PinnedOn,
    /// An ordered sleep was not confirmed in time and the miner still reports mining.
    SleepNotConfirmed,
    /// Over budget, and no awake miner may be put to sleep (all pinned on or in maintenance).
    NothingSleepable,
    /// Over the temperature limit, and no awake miner may be put to sleep now.
    NothingSleepableHot,
    /// Its energy costs more than it earns, by more than the economic margin.
    Uneconomic,
    /// Asleep for economic reasons, and it pays its power again (under margin − hysteresis).
    Economic,
}

impl Reason {
    /// Stable snake_case label for logs and the `reason` metric label.
    pub fn label(self) -> &'static str {
        match self {
            Reason::OverBudget => "over_budget",
            Reason::OverTemperature => "over_temperature",
            Reason::Headroom => "headroom",
            Reason::PinnedOff => "pinned_off",
            Reason::PinnedOn => "pinned_on",
            Reason::SleepNotConfirmed => "sleep_not_confirmed",
            Reason::NothingSleepable => "nothing_sleepable",
            Reason::NothingSleepableHot => "nothing_sleepable_hot",
            Reason::Uneconomic => "uneconomic",
            Reason::Economic => "economic",
        }
    }

    /// The kind of sleep this reason puts a miner into; `None` for wakes and blocks. A
    /// retried sleep keeps the kind of the sleep it retries.
    pub fn sleep_kind(self) -> Option<SleepKind> {
        match self {
            Reason::OverBudget => Some(SleepKind::Power),
            Reason::OverTemperature => Some(SleepKind::Temperature),
            Reason::PinnedOff => Some(SleepKind::Manual),
            Reason::Uneconomic => Some(SleepKind::Economic),
            _ => None,
        }
    }

    /// Every reason, for pre-registering metric series.
    pub const ALL: [Reason; 10] = [
        Reason::OverBudget,
        Reason::OverTemperature,
        Reason::Headroom,
        Reason::PinnedOff,
        Reason::PinnedOn,
        Reason::SleepNotConfirmed,
        Reason::NothingSleepable,
        Reason::NothingSleepableHot,
        Reason::Uneconomic,
        Reason::Economic,
    ];
}

/// Why a miner is asleep, in the four kinds operators sort by (`asleep_reason` in the API
/// and metrics): every [`Reason`] that sleeps a miner maps to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SleepKind {
    /// Its energy cost exceeds its revenue by the margin.
    Economic,
    /// The container's power budget.
    Power,
    /// The container's inlet temperature.
    Temperature,
    /// A keep-off pin, or slept from outside hashgate (web UI, a previous run) and adopted.
    Manual,
}

impl SleepKind {
    /// Every kind, in the order metrics write them.
    pub const ALL: [SleepKind; 4] = [
        SleepKind::Economic,
        SleepKind::Power,
        SleepKind::Temperature,
        SleepKind::Manual,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            SleepKind::Economic => "economic",
            SleepKind::Power => "power",
            SleepKind::Temperature => "temperature",
            SleepKind::Manual => "manual",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One decision of a tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Container the decision is for.
    pub container: Arc<str>,
    /// The miner to command; `None` for [`Action::Blocked`].
    pub miner: Option<Arc<str>>,
    /// What to do.
    pub action: Action,
    /// Why.
    pub reason: Reason,
}

/// Where a container's load figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadSource {
    /// A fresh feed meter reading (plus ramping miners at nominal).
    Meter,
    /// The sum of per-miner estimates (telemetry, nameplate where no answer).
    Miners,
}

impl LoadSource {
    /// Stable snake_case label.
    pub fn label(self) -> &'static str {
        match self {
            LoadSource::Meter => "meter",
            LoadSource::Miners => "miners",
        }
    }
}

/// Why a configured meter was not used this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterFallback {
    /// No reading has arrived yet.
    Missing,
    /// The latest reading is older than the meter's `max_age`.
    Stale,
    /// The latest reading was negative or not a number.
    Invalid,
}

impl MeterFallback {
    /// Stable snake_case label.
    pub fn label(self) -> &'static str {
        match self {
            MeterFallback::Missing => "missing",
            MeterFallback::Stale => "stale",
            MeterFallback::Invalid => "invalid",
        }
    }
}

/// How a miner's power was counted this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Fresh telemetry power (or standby when asleep and not reported).
    Telemetry,
    /// Nameplate, because the firmware reports no power while mining.
    NameplateUnreported,
    /// Nameplate, because the miner did not answer or its telemetry is stale (fail safe).
    NameplateNoAnswer,
    /// Nameplate, because a sleep was ordered and is not yet confirmed.
    NameplateSleepPending,
    /// At least nameplate, because it was woken recently (inrush and ramp).
    NameplateRamping,
    /// Nameplate, because the reported power is outside the model's plausible band (a
    /// firmware bug or unit slip); the miner is alarmed too.
    NameplateImplausible,
}

/// The controller's view of a miner's power state, exported as a gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    /// Asleep on purpose (sleep confirmed or not yet contradicted).
    Asleep,
    /// Awake and past its ramp.
    Awake,
    /// Woken, still within its ramp.
    Waking,
    /// Sleep ordered, not yet confirmed.
    FallingAsleep,
    /// Pinned for maintenance: never commanded.
    Maintenance,
}

impl PowerState {
    /// Every state, in the order `hashgate_miner_power_state` writes them.
    pub const ALL: [PowerState; 5] = [
        PowerState::Asleep,
        PowerState::Awake,
        PowerState::Waking,
        PowerState::FallingAsleep,
        PowerState::Maintenance,
    ];

    /// The `state` label of `hashgate_miner_power_state`.
    pub fn label(self) -> &'static str {
        match self {
            PowerState::Asleep => "asleep",
            PowerState::Awake => "awake",
            PowerState::Waking => "waking",
            PowerState::FallingAsleep => "falling_asleep",
            PowerState::Maintenance => "maintenance",
        }
    }
}

/// One container's figures after a tick.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerReport {
    /// Container name.
    pub name: Arc<str>,
    /// Budget in force (config or demand-response override), W.
    pub budget_watts: f64,
    /// Fail-safe load estimate before this tick's decisions, W.
    pub load_watts: f64,
    /// Expected load once this tick's and earlier pending orders have taken effect, W.
    pub projected_watts: f64,
    /// Where `load_watts` came from.
    pub source: LoadSource,
    /// Why a configured meter was not used, if it was not.
    pub meter_fallback: Option<MeterFallback>,
    /// The fallback started, ended or changed reason this tick (log it once, not every tick).
    pub meter_fallback_changed: bool,
    /// Hottest plausible inlet reading among answering miners, °C.
    pub temperature_c: Option<f64>,
    /// Shedding for heat until back under limit minus hysteresis.
    pub hot: bool,
    /// Over budget with nothing left to sleep.
    pub stuck_over_budget: bool,
    /// Facility and IT power for PUE, each with its source or why it is unknown.
    pub pue: PueInputs,
}

/// One miner's figures after a tick.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerReport {
    /// Miner id.
    pub id: Arc<str>,
    /// Container name.
    pub container: Arc<str>,
    /// Power state after this tick's decisions.
    pub state: PowerState,
    /// Power counted for it before this tick's decisions, W.
    pub counted_watts: f64,
    /// How it was counted.
    pub counted: Counted,
    /// Why it is asleep (or falling asleep); `None` while awake or in maintenance.
    pub asleep_reason: Option<SleepKind>,
}

/// Everything one tick produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickReport {
    /// Commands for the driver, and blocked actions for the operator, in order.
    pub decisions: Vec<Decision>,
    /// One entry per container, in config order.
    pub containers: Vec<ContainerReport>,
    /// One entry per miner, in config order.
    pub miners: Vec<MinerReport>,
}
