//! The power and temperature budget controller: a pure policy run on a tick.
//!
//! The driver feeds readings in ([`Controller::observe_telemetry`],
//! [`Controller::observe_no_answer`], [`Controller::observe_meter`]), calls
//! [`Controller::tick`] with the current time, carries out the returned [`Decision`]s
//! through each miner's [`MinerApi`](crate::power::api::MinerApi), and reports commands that
//! failed with [`Controller::command_failed`]. Nothing here does I/O or reads a clock, so
//! every rule is tested with synthetic `now`.
//!
//! Per container, each tick:
//!
//! | step | rule |
//! |---|---|
//! | load | fresh meter reading (+ miners woken since it, or still ramping, at nominal), else Σ per-miner estimates; no answer, unconfirmed sleep and ramp all count ≥ nameplate |
//! | pins | keep-off awake → sleep; maintenance → never commanded; keep-on → never slept, woken first |
//! | retry | a sleep unconfirmed past `sleep_confirm_timeout` while the miner reports mining → sleep again |
//! | budget | load > budget → sleep least efficient (miners out of dwell first) until projected load ≤ budget − margin |
//! | heat | inlet > limit latches *hot*: shed one step every interval, least efficient then hottest, until inlet < limit − hysteresis; with climate control the inlet is the climate's and the latch sets only once cooling is exhausted (every fan on) |
//! | economics | with an economic rule and fresh inputs: sleep awake miners (out of dwell) whose cost / revenue > 1 + margin, least efficient first |
//! | wake | nothing shed this tick, not hot, stagger elapsed, budget − load > hysteresis → wake the most efficient sleeper whose nominal fits under budget − margin (and, with an economic rule, that pays its power: cost / revenue under 1 + margin, or under 1 + margin − hysteresis and out of the economic dwell if it was slept for economics) |

mod change;
mod decision;
mod health;
mod policy;
mod record;
mod state;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::economics::EconomicRule;
use crate::power::api::Telemetry;
use crate::power::inventory::{ControllerSettings, Pin, PowerConfig};

pub use change::InventoryChange;
pub use decision::{
    Action, ContainerReport, Counted, Decision, LoadSource, MeterFallback, MinerReport, PowerState,
    Reason, SleepKind, TickReport,
};
pub use health::{Alarm, ApiView, HealthInput, IntendedState, evaluate_health};
pub use record::{record_tick, retire_container, retire_miner};

use state::{ClimateView, ContainerRuntime, Estimate, Intent, MinerRuntime, Pending};

/// A request to the controller that names something it does not know or is out of range.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ControlError {
    /// No miner with this id is in the inventory.
    #[error("unknown miner \"{0}\"")]
    UnknownMiner(String),
    /// No container with this name is in the inventory.
    #[error("unknown container \"{0}\"")]
    UnknownContainer(String),
    /// A demand-response budget must be a positive number of watts.
    #[error("container \"{container}\": budget {watts} W must be a finite number > 0")]
    InvalidBudget {
        /// Container name.
        container: String,
        /// The refused value.
        watts: f64,
    },
    /// An auxiliary (fans, pump) load must be a finite number of watts ≥ 0.
    #[error("container \"{container}\": auxiliary load {watts} W must be a finite number >= 0")]
    InvalidAuxiliary {
        /// Container name.
        container: String,
        /// The refused value.
        watts: f64,
    },
    /// A reload would change what is built only at start (a container's climate
    /// controller, its Modbus device and relays): that needs a restart.
    #[error("{0}: restart hashgate to apply it")]
    NeedsRestart(String),
}

/// The budget controller for every container of a site.
#[derive(Debug, Clone)]
pub struct Controller {
    settings: ControllerSettings,
    containers: Vec<ContainerRuntime>,
    miners: Vec<MinerRuntime>,
    /// Miner indices per container, so a tick walks each container's miners directly.
    members: Vec<Vec<usize>>,
    miner_index: HashMap<Arc<str>, usize>,
    container_index: HashMap<Arc<str>, usize>,
    /// The economic rule (`[economics]`); `None` leaves power and heat alone in charge.
    economic_rule: Option<EconomicRule>,
    /// The economic inputs cannot be trusted (price stale, no job): hold every economic
    /// decision as it stands.
    economics_held: bool,
}

impl Controller {
    /// Builds a controller for a validated inventory; every miner starts assumed awake
    /// until its first telemetry says otherwise.
    pub fn new(config: &PowerConfig) -> Self {
        let mut controller = Self {
            settings: config.controller,
            containers: config
                .containers
                .iter()
                .map(ContainerRuntime::at_start)
                .collect(),
            miners: config.miners.iter().map(MinerRuntime::at_start).collect(),
            members: Vec::new(),
            miner_index: HashMap::new(),
            container_index: HashMap::new(),
            economic_rule: None,
            economics_held: false,
        };
        controller.reindex();
        controller
    }

    /// Applies a reloaded inventory: budgets and policy (`[controller]` settings, each
    /// container's budget, limits and tuning), and the miners and containers themselves.
    /// Matched by id (miners) and name (containers), what stays keeps its runtime state:
    /// intents, pending orders, demand-response overrides and admin pins. A new miner
    /// starts as at start-up (assumed awake until its first telemetry is adopted); a
    /// removed one is forgotten, so no decision can name it again. A miner whose
    /// management address, family or credentials changed may be another machine: its
    /// readings and pending order are dropped and its state is learnt again from
    /// telemetry. A pin changed in the file replaces the old one; a pin set through the
    /// admin API (different from the file's) stays.
    pub fn reconfigure(&mut self, config: &PowerConfig) -> InventoryChange {
        let change = InventoryChange::between(
            self.containers.iter().map(|c| &c.spec),
            self.miners.iter().map(|m| &m.spec),
            config,
        );
        let mut old_containers: HashMap<Arc<str>, ContainerRuntime> = self
            .containers
            .drain(..)
            .map(|c| (c.spec.name.clone(), c))
            .collect();
        self.containers = config
            .containers
            .iter()
            .map(|spec| match old_containers.remove(&spec.name) {
                Some(mut kept) => {
                    // Readings of a meter that is no longer the one configured say nothing.
                    if kept.spec.meter != spec.meter {
                        kept.meter = None;
                        kept.meter_fallback = None;
                    }
                    if kept.spec.it_meter != spec.it_meter {
                        kept.it_meter = None;
                    }
                    kept.spec = spec.clone();
                    kept
                }
                None => ContainerRuntime::at_start(spec),
            })
            .collect();
        let mut old_miners: HashMap<Arc<str>, MinerRuntime> = self
            .miners
            .drain(..)
            .map(|m| (m.spec.id.clone(), m))
            .collect();
        self.miners = config
            .miners
            .iter()
            .map(|spec| match old_miners.remove(&spec.id) {
                Some(kept) => kept.respecified(spec),
                None => MinerRuntime::at_start(spec),
            })
            .collect();
        self.settings = config.controller;
        self.reindex();
        change
    }

    /// Refuses a reload that changes what is built only at start: a container's climate
    /// controller, its Modbus device and relays (a new band or coil would not reach the
    /// fans), including a container added or removed with a climate section.
    ///
    /// # Errors
    /// [`ControlError::NeedsRestart`] naming the container.
    pub fn check_reload(&self, config: &PowerConfig) -> Result<(), ControlError> {
        let old = self
            .containers
            .iter()
            .map(|c| (&c.spec.name, &c.spec.climate));
        let new = config.containers.iter().map(|c| (&c.name, &c.climate));
        for (name, climate) in old.clone() {
            let now = new.clone().find(|(n, _)| *n == name).map(|(_, c)| c);
            if now.is_some_and(|c| c != climate) || (now.is_none() && climate.is_some()) {
                return Err(ControlError::NeedsRestart(format!(
                    "container \"{name}\": its climate section changed"
                )));
            }
        }
        for (name, climate) in new {
            if climate.is_some() && !old.clone().any(|(n, _)| n == name) {
                return Err(ControlError::NeedsRestart(format!(
                    "container \"{name}\": added with a climate section"
                )));
            }
        }
        Ok(())
    }

    /// Rebuilds the lookups after the miner or container lists changed.
    fn reindex(&mut self) {
        let mut members = vec![Vec::new(); self.containers.len()];
        for (i, m) in self.miners.iter().enumerate() {
            if let Some(list) = members.get_mut(m.spec.container) {
                list.push(i);
            }
        }
        self.members = members;
        self.miner_index = self
            .miners
            .iter()
            .enumerate()
            .map(|(i, m)| (m.spec.id.clone(), i))
            .collect();
        self.container_index = self
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| (c.spec.name.clone(), i))
            .collect();
    }

    /// The pin in force for a miner (the file's, or the admin API's since).
    pub fn pin(&self, miner: &str) -> Option<Pin> {
        self.miners.get(*self.miner_index.get(miner)?)?.pin
    }

    /// Sets or removes the economic curtailment rule (`[economics]`).
    pub fn set_economic_rule(&mut self, rule: Option<EconomicRule>) {
        self.economic_rule = rule;
    }

    /// Records a miner's energy cost over its revenue (1 = break-even); `None` when not
    /// known (no efficiency, no revenue yet), which the rule never acts on.
    ///
    /// # Errors
    /// [`ControlError::UnknownMiner`].
    pub fn observe_economics(
        &mut self,
        miner: &str,
        cost_ratio: Option<f64>,
    ) -> Result<(), ControlError> {
        self.miner_mut(miner)?.cost_ratio = cost_ratio.filter(|r| r.is_finite() && *r >= 0.0);
        Ok(())
    }

    /// Holds (or releases) every economic decision as it stands: no economic sleep, and no
    /// wake of a miner slept for economics, while the price is stale or the network unknown.
    pub fn hold_economics(&mut self, hold: bool) {
        self.economics_held = hold;
    }

    fn miner_mut(&mut self, id: &str) -> Result<&mut MinerRuntime, ControlError> {
        self.miner_index
            .get(id)
            .and_then(|&i| self.miners.get_mut(i))
            .ok_or_else(|| ControlError::UnknownMiner(id.to_owned()))
    }

    fn container_mut(&mut self, name: &str) -> Result<&mut ContainerRuntime, ControlError> {
        self.container_index
            .get(name)
            .and_then(|&i| self.containers.get_mut(i))
            .ok_or_else(|| ControlError::UnknownContainer(name.to_owned()))
    }

    /// Records a successful telemetry reading taken at `at`.
    ///
    /// # Errors
    /// [`ControlError::UnknownMiner`].
    pub fn observe_telemetry(
        &mut self,
        miner: &str,
        at: Instant,
        telemetry: Telemetry,
    ) -> Result<(), ControlError> {
        let m = self.miner_mut(miner)?;
        if m.telemetry.as_ref().is_none_or(|(prev, _)| *prev <= at) {
            m.telemetry = Some((at, telemetry));
        }
        Ok(())
    }

    /// Records that the miner did not answer at `at`: it counts at nominal from now on.
    ///
    /// # Errors
    /// [`ControlError::UnknownMiner`].
    pub fn observe_no_answer(&mut self, miner: &str, at: Instant) -> Result<(), ControlError> {
        let m = self.miner_mut(miner)?;
        if m.telemetry.as_ref().is_some_and(|(prev, _)| *prev <= at) {
            m.telemetry = None;
        }
        Ok(())
    }

    /// Records a feed meter reading of `watts` taken at `at`.
    ///
    /// # Errors
    /// [`ControlError::UnknownContainer`].
    pub fn observe_meter(
        &mut self,
        container: &str,
        at: Instant,
        watts: f64,
    ) -> Result<(), ControlError> {
        keep_newer(&mut self.container_mut(container)?.meter, at, watts);
        Ok(())
    }

    /// Records an IT meter reading (rack PDUs) of `watts` taken at `at`, for PUE.
    ///
    /// # Errors
    /// [`ControlError::UnknownContainer`].
    pub fn observe_it_meter(
        &mut self,
        container: &str,
        at: Instant,
        watts: f64,
    ) -> Result<(), ControlError> {
        keep_newer(&mut self.container_mut(container)?.it_meter, at, watts);
        Ok(())
    }

    /// Sets the container's non-IT load (fans, curtain pump) that its climate control
    /// reports, W; `None` when unknown. Facility power is IT + this when the container has
    /// no feed meter (a feed meter already includes it).
    ///
    /// # Errors
    /// [`ControlError::UnknownContainer`]; [`ControlError::InvalidAuxiliary`] for a negative
    /// or non-finite figure.
    pub fn set_auxiliary_watts(
        &mut self,
        container: &str,
        watts: Option<f64>,
    ) -> Result<(), ControlError> {
        if let Some(w) = watts
            && !(w.is_finite() && w >= 0.0)
        {
            return Err(ControlError::InvalidAuxiliary {
                container: container.to_owned(),
                watts: w,
            });
        }
        self.container_mut(container)?.auxiliary_watts = watts;
        Ok(())
    }

    /// Records the climate controller's view of a container at `at`: the inlet its fans
    /// follow and whether every fan it may run is running. While this is fresh (within
    /// `telemetry_max_age`) the heat rule uses this inlet and sheds miners only once cooling
    /// is exhausted: air is cheaper than hashrate. Without it the rule is as before.
    ///
    /// # Errors
    /// [`ControlError::UnknownContainer`].
    pub fn observe_climate(
        &mut self,
        container: &str,
        at: Instant,
        inlet_c: Option<f64>,
        cooling_exhausted: bool,
    ) -> Result<(), ControlError> {
        let c = self.container_mut(container)?;
        if c.climate.is_none_or(|v| v.at <= at) {
            c.climate = Some(ClimateView {
                at,
                inlet_c,
                cooling_exhausted,
            });
        }
        Ok(())
    }

    /// The hottest fresh, plausible inlet among a container's miners, °C: the climate
    /// controller's fallback when its inlet sensor is lost.
    pub fn miners_inlet_c(&self, container: &str, now: Instant) -> Option<f64> {
        let ci = *self.container_index.get(container)?;
        self.members
            .get(ci)?
            .iter()
            .filter_map(|&i| self.miners.get(i)?.inlet_c(now, &self.settings))
            .reduce(f64::max)
    }

    /// Replaces a container's budget (demand response); `None` returns to the configured one.
    /// The next tick honours it.
    ///
    /// # Errors
    /// [`ControlError::UnknownContainer`], [`ControlError::InvalidBudget`].
    pub fn set_budget(
        &mut self,
        container: &str,
        budget_watts: Option<f64>,
    ) -> Result<(), ControlError> {
        if let Some(w) = budget_watts
            && !(w.is_finite() && w > 0.0)
        {
            return Err(ControlError::InvalidBudget {
                container: container.to_owned(),
                watts: w,
            });
        }
        self.container_mut(container)?.budget_override = budget_watts;
        Ok(())
    }

    /// Sets or clears a miner's manual pin (admin API); it replaces the config pin.
    ///
    /// # Errors
    /// [`ControlError::UnknownMiner`].
    pub fn set_pin(&mut self, miner: &str, pin: Option<Pin>) -> Result<(), ControlError> {
        let m = self.miner_mut(miner)?;
        if m.pin == Some(Pin::Maintenance) && pin != Some(Pin::Maintenance) {
            // A technician may have left it in any state: learn it again from telemetry.
            m.adopted = false;
            m.pending = None;
        }
        m.pin = pin;
        Ok(())
    }

    /// Reports that a commanded sleep or wake failed at the API, so the controller stops
    /// counting on it. The miner keeps its dwell, so the next tick prefers other miners.
    ///
    /// # Errors
    /// [`ControlError::UnknownMiner`].
    pub fn command_failed(
        &mut self,
        miner: &str,
        action: Action,
        now: Instant,
    ) -> Result<(), ControlError> {
        let m = self.miner_mut(miner)?;
        match (action, m.pending) {
            (Action::Sleep, Some(Pending::Sleep { .. })) => {
                m.intent = Intent::Awake;
                m.pending = None;
                m.last_toggle = Some(now);
            }
            (Action::Wake, Some(Pending::Wake { .. })) => {
                m.intent = Intent::Asleep;
                m.pending = None;
                m.last_toggle = Some(now);
            }
            _ => {}
        }
        Ok(())
    }

    /// The budget in force for a container (config or demand response), W.
    pub fn budget_watts(&self, container: &str) -> Option<f64> {
        let i = *self.container_index.get(container)?;
        self.containers.get(i).map(ContainerRuntime::budget)
    }

    /// The controller's intended state of a miner, for the health evaluation.
    pub fn intended_state(&self, miner: &str) -> Option<IntendedState> {
        let m = self.miners.get(*self.miner_index.get(miner)?)?;
        Some(match (m.pin, m.intent) {
            (Some(Pin::Maintenance), _) => IntendedState::Maintenance,
            (_, Intent::Awake) => IntendedState::Awake,
            (_, Intent::Asleep) => IntendedState::Asleep,
        })
    }

    /// The miner's fresh reported power when it is not believable for its model (see
    /// [`crate::power::inventory::MinerSpec::plausible_watts`]), for the health alarm.
    pub fn implausible_watts(&self, miner: &str, now: Instant) -> Option<f64> {
        let m = self.miners.get(*self.miner_index.get(miner)?)?;
        m.implausible_watts(now, &self.settings)
    }

    /// Runs one tick at `now`: settles pending orders, estimates each container's load and
    /// temperature, and returns the decisions with the figures behind them.
    pub fn tick(&mut self, now: Instant) -> TickReport {
        let s = self.settings;
        for m in &mut self.miners {
            m.reconcile(now, &s);
        }
        let estimates: Vec<Estimate> = self.miners.iter().map(|m| m.estimate(now, &s)).collect();
        let mut report = TickReport {
            decisions: Vec::new(),
            containers: Vec::with_capacity(self.containers.len()),
            miners: Vec::with_capacity(self.miners.len()),
        };
        for ci in 0..self.containers.len() {
            let summary = self.tick_container(ci, now, &estimates, &mut report.decisions);
            report.containers.push(summary);
        }
        for (m, e) in self.miners.iter().zip(&estimates) {
            let container = self
                .containers
                .get(m.spec.container)
                .map_or_else(|| Arc::from(""), |c| c.spec.name.clone());
            report.miners.push(MinerReport {
                id: m.spec.id.clone(),
                container,
                state: m.power_state(now, &s),
                counted_watts: e.counted,
                counted: e.how,
                asleep_reason: m.asleep_reason(),
            });
        }
        report
    }
}

#[cfg(test)]
mod tests;

/// Stores a meter reading unless a newer one is already held (readings can arrive out of
/// order when a slow poll finishes after a faster one).
fn keep_newer(slot: &mut Option<(Instant, f64)>, at: Instant, watts: f64) {
    if slot.is_none_or(|(prev, _)| prev <= at) {
        *slot = Some((at, watts));
    }
}
