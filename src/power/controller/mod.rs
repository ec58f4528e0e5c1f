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
//! | heat | inlet > limit latches *hot*: shed one step every interval, least efficient then hottest, until inlet < limit − hysteresis |
//! | wake | nothing shed this tick, not hot, stagger elapsed, budget − load > hysteresis → wake the most efficient sleeper whose nominal fits under budget − margin |

mod decision;
mod health;
mod record;
mod state;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::power::api::{MinerState, Telemetry};
use crate::power::inventory::{ControllerSettings, Pin, PowerConfig};

pub use decision::{
    Action, ContainerReport, Counted, Decision, LoadSource, MeterFallback, MinerReport, PowerState,
    Reason, TickReport,
};
pub use health::{Alarm, ApiView, HealthInput, IntendedState, evaluate_health};
pub use record::record_tick;

use state::{ContainerRuntime, Estimate, Intent, MinerRuntime, Pending};

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
}

impl Controller {
    /// Builds a controller for a validated inventory; every miner starts assumed awake
    /// until its first telemetry says otherwise.
    pub fn new(config: &PowerConfig) -> Self {
        let containers: Vec<ContainerRuntime> = config
            .containers
            .iter()
            .map(|spec| ContainerRuntime {
                spec: spec.clone(),
                budget_override: None,
                meter: None,
                last_wake: None,
                hot: false,
                last_temp_shed: None,
                stuck_over_budget: false,
                stuck_hot: false,
                meter_fallback: None,
            })
            .collect();
        let mut members = vec![Vec::new(); containers.len()];
        let miners: Vec<MinerRuntime> = config
            .miners
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                if let Some(list) = members.get_mut(spec.container) {
                    list.push(i);
                }
                MinerRuntime {
                    spec: spec.clone(),
                    pin: spec.pin,
                    intent: Intent::Awake,
                    adopted: false,
                    last_toggle: None,
                    pending: None,
                    woken_at: None,
                    telemetry: None,
                }
            })
            .collect();
        Self {
            settings: config.controller,
            miner_index: miners
                .iter()
                .enumerate()
                .map(|(i, m)| (m.spec.id.clone(), i))
                .collect(),
            container_index: containers
                .iter()
                .enumerate()
                .map(|(i, c)| (c.spec.name.clone(), i))
                .collect(),
            containers,
            miners,
            members,
        }
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
        let c = self.container_mut(container)?;
        if c.meter.is_none_or(|(prev, _)| prev <= at) {
            c.meter = Some((at, watts));
        }
        Ok(())
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
            });
        }
        report
    }
}

/// Sleep order among candidates: out of dwell before in dwell, answering before silent
/// (a command to a silent miner likely fails), least efficient, hottest, config order.
fn shed_order(a: &Candidate, b: &Candidate) -> Ordering {
    a.in_dwell
        .cmp(&b.in_dwell)
        .then(b.answering.cmp(&a.answering))
        .then(b.jth.total_cmp(&a.jth))
        .then(b.hottest.total_cmp(&a.hottest))
        .then(a.index.cmp(&b.index))
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    index: usize,
    in_dwell: bool,
    answering: bool,
    jth: f64,
    hottest: f64,
}

/// Running figures of one container during a tick.
struct Tally {
    load: f64,
    projected: f64,
    shed_any: bool,
}

impl Controller {
    fn tick_container(
        &mut self,
        ci: usize,
        now: Instant,
        est: &[Estimate],
        decisions: &mut Vec<Decision>,
    ) -> ContainerReport {
        let s = self.settings;
        // A copy, so the helpers below may borrow `self` mutably while walking it.
        let members = self.members.get(ci).cloned().unwrap_or_default();
        let Some(c) = self.containers.get(ci) else {
            return self.empty_report(ci);
        };
        let name = c.spec.name.clone();
        let budget = c.budget();
        let sum: f64 = members
            .iter()
            .filter_map(|&i| est.get(i))
            .map(|e| e.counted)
            .sum();
        let (load, source, fallback) = match c.meter_watts(now) {
            None => (sum, LoadSource::Miners, None),
            Some(Err(why)) => (sum, LoadSource::Miners, Some(why)),
            Some(Ok((metered_at, metered))) => {
                let ramp_gap: f64 = members
                    .iter()
                    .filter_map(|&i| self.miners.get(i))
                    .map(|m| m.ramp_gap(metered_at, now, &s))
                    .sum();
                (metered + ramp_gap, LoadSource::Meter, None)
            }
        };
        let temperature = members
            .iter()
            .filter_map(|&i| self.miners.get(i)?.inlet_c(now, &s))
            .reduce(f64::max);
        let credit: f64 = members
            .iter()
            .filter_map(|&i| est.get(i))
            .map(|e| e.pending_credit)
            .sum();
        let mut tally = Tally {
            load,
            projected: load - credit,
            shed_any: false,
        };

        self.apply_pins_and_retries(&members, now, est, &mut tally, decisions);
        let stuck = self.shed_for_budget(ci, &members, now, est, &mut tally, decisions);
        let hot = self.shed_for_heat(ci, &members, temperature, now, est, &mut tally, decisions);
        if !tally.shed_any && !hot {
            self.wake_one(ci, &members, temperature, now, &mut tally, decisions);
        }

        let (meter_fallback_changed, hot_now) = match self.containers.get_mut(ci) {
            Some(c) => {
                let changed = c.meter_fallback != fallback;
                c.meter_fallback = fallback;
                (changed, c.hot)
            }
            None => (false, hot),
        };
        ContainerReport {
            name,
            budget_watts: budget,
            load_watts: tally.load,
            projected_watts: tally.projected,
            source,
            meter_fallback: fallback,
            meter_fallback_changed,
            temperature_c: temperature,
            hot: hot_now,
            stuck_over_budget: stuck,
        }
    }

    fn empty_report(&self, ci: usize) -> ContainerReport {
        ContainerReport {
            name: self
                .containers
                .get(ci)
                .map_or_else(|| Arc::from(""), |c| c.spec.name.clone()),
            budget_watts: 0.0,
            load_watts: 0.0,
            projected_watts: 0.0,
            source: LoadSource::Miners,
            meter_fallback: None,
            meter_fallback_changed: false,
            temperature_c: None,
            hot: false,
            stuck_over_budget: false,
        }
    }

    fn order(
        &mut self,
        i: usize,
        action: Action,
        reason: Reason,
        now: Instant,
        decisions: &mut Vec<Decision>,
    ) {
        let Some(m) = self.miners.get_mut(i) else {
            return;
        };
        match action {
            Action::Sleep => {
                m.intent = Intent::Asleep;
                m.pending = Some(Pending::Sleep { at: now });
            }
            Action::Wake => {
                m.intent = Intent::Awake;
                m.pending = Some(Pending::Wake { at: now });
                m.woken_at = Some(now);
            }
            Action::Blocked => return,
        }
        m.last_toggle = Some(now);
        let container = self
            .containers
            .get(m.spec.container)
            .map_or_else(|| Arc::from(""), |c| c.spec.name.clone());
        decisions.push(Decision {
            container,
            miner: Some(m.spec.id.clone()),
            action,
            reason,
        });
    }

    fn apply_pins_and_retries(
        &mut self,
        members: &[usize],
        now: Instant,
        est: &[Estimate],
        tally: &mut Tally,
        decisions: &mut Vec<Decision>,
    ) {
        let s = self.settings;
        for &i in members {
            let (Some(m), Some(e)) = (self.miners.get(i), est.get(i)) else {
                continue;
            };
            let saving = m.saving(e);
            let reason = match (m.pin, m.intent, m.pending) {
                (Some(Pin::Maintenance), _, _) => continue,
                (Some(Pin::KeepOff), Intent::Awake, _) => Reason::PinnedOff,
                (_, Intent::Asleep, Some(Pending::Sleep { at: ordered })) => {
                    let timed_out =
                        now.saturating_duration_since(ordered) >= s.sleep_confirm_timeout;
                    let still_on = m
                        .fresh(now, &s)
                        .is_some_and(|(at, t)| at > ordered && t.state != MinerState::Sleeping);
                    if !(timed_out && still_on) {
                        continue;
                    }
                    Reason::SleepNotConfirmed
                }
                _ => continue,
            };
            self.order(i, Action::Sleep, reason, now, decisions);
            tally.projected -= saving;
            tally.shed_any = true;
        }
    }

    fn candidates(
        &self,
        members: &[usize],
        now: Instant,
        est: &[Estimate],
        allow_dwell: bool,
    ) -> Vec<Candidate> {
        let s = self.settings;
        let Some(spec) = members
            .first()
            .and_then(|&i| self.miners.get(i))
            .and_then(|m| self.containers.get(m.spec.container))
            .map(|c| &c.spec)
        else {
            return Vec::new();
        };
        let mut list: Vec<Candidate> = members
            .iter()
            .filter_map(|&i| {
                let m = self.miners.get(i)?;
                let sheddable = m.pin.is_none() && m.intent == Intent::Awake;
                let in_dwell = m.in_dwell(now, spec);
                (sheddable && (allow_dwell || !in_dwell)).then(|| Candidate {
                    index: i,
                    in_dwell,
                    answering: est.get(i).is_some_and(|e| e.answering),
                    jth: m.spec.joules_per_th(),
                    hottest: m.hottest_c(now, &s),
                })
            })
            .collect();
        list.sort_unstable_by(shed_order);
        list
    }

    /// Returns whether the container is stuck over budget with nothing left to sleep.
    fn shed_for_budget(
        &mut self,
        ci: usize,
        members: &[usize],
        now: Instant,
        est: &[Estimate],
        tally: &mut Tally,
        decisions: &mut Vec<Decision>,
    ) -> bool {
        let Some(c) = self.containers.get(ci) else {
            return false;
        };
        let (budget, target, name, was_stuck) = (
            c.budget(),
            c.budget() - c.spec.margin_watts,
            c.spec.name.clone(),
            c.stuck_over_budget,
        );
        let mut stuck = false;
        if tally.load > budget && tally.projected > target {
            // The budget is the breaker: dwell only orders the candidates, it never blocks.
            for cand in self.candidates(members, now, est, true) {
                if tally.projected <= target {
                    break;
                }
                let saving = match (self.miners.get(cand.index), est.get(cand.index)) {
                    (Some(m), Some(e)) => m.saving(e),
                    _ => continue,
                };
                self.order(
                    cand.index,
                    Action::Sleep,
                    Reason::OverBudget,
                    now,
                    decisions,
                );
                tally.projected -= saving;
                tally.shed_any = true;
            }
            stuck = tally.projected > target;
        }
        if stuck && !was_stuck {
            decisions.push(Decision {
                container: name,
                miner: None,
                action: Action::Blocked,
                reason: Reason::NothingSleepable,
            });
        }
        if let Some(c) = self.containers.get_mut(ci) {
            c.stuck_over_budget = stuck;
        }
        stuck
    }

    /// Updates the hot latch and sheds one step when due; returns whether the container is hot.
    #[allow(clippy::too_many_arguments)]
    fn shed_for_heat(
        &mut self,
        ci: usize,
        members: &[usize],
        temperature: Option<f64>,
        now: Instant,
        est: &[Estimate],
        tally: &mut Tally,
        decisions: &mut Vec<Decision>,
    ) -> bool {
        let Some(c) = self.containers.get_mut(ci) else {
            return false;
        };
        let Some(limit) = c.spec.temperature else {
            return false;
        };
        match temperature {
            Some(t) if t > limit.limit_c => c.hot = true,
            Some(t) if t >= limit.limit_c - limit.hysteresis_c => {}
            // Below the band, or nothing answering with an inlet reading: there is no heat
            // to act on, and holding the latch blind would keep every miner asleep forever.
            _ => {
                c.hot = false;
                c.last_temp_shed = None;
                c.stuck_hot = false;
            }
        }
        let due = c
            .last_temp_shed
            .is_none_or(|t| now.saturating_duration_since(t) >= limit.shed_interval);
        if !c.hot || !due {
            return c.hot;
        }
        c.last_temp_shed = Some(now);
        let (name, was_stuck) = (c.spec.name.clone(), c.stuck_hot);
        // Heat is not a breaker: miners in dwell are left alone.
        let mut shed = 0.0;
        for cand in self.candidates(members, now, est, false) {
            if shed >= limit.shed_step_watts {
                break;
            }
            let saving = match (self.miners.get(cand.index), est.get(cand.index)) {
                (Some(m), Some(e)) => m.saving(e),
                _ => continue,
            };
            self.order(
                cand.index,
                Action::Sleep,
                Reason::OverTemperature,
                now,
                decisions,
            );
            shed += saving;
            tally.projected -= saving;
            tally.shed_any = true;
        }
        let stuck = shed == 0.0;
        if stuck && !was_stuck {
            decisions.push(Decision {
                container: name,
                miner: None,
                action: Action::Blocked,
                reason: Reason::NothingSleepableHot,
            });
        }
        if let Some(c) = self.containers.get_mut(ci) {
            c.stuck_hot = stuck;
        }
        true
    }

    fn wake_one(
        &mut self,
        ci: usize,
        members: &[usize],
        temperature: Option<f64>,
        now: Instant,
        tally: &mut Tally,
        decisions: &mut Vec<Decision>,
    ) {
        let Some(c) = self.containers.get(ci) else {
            return;
        };
        let budget = c.budget();
        let fit_limit = budget - c.spec.margin_watts;
        let stagger_ok = c
            .last_wake
            .is_none_or(|t| now.saturating_duration_since(t) >= c.spec.wake_stagger);
        let cool = match (c.spec.temperature, temperature) {
            (Some(limit), Some(t)) => t < limit.limit_c - limit.hysteresis_c,
            _ => true,
        };
        if !stagger_ok || !cool || tally.load > budget {
            return;
        }
        let headroom = budget - tally.load > c.spec.hysteresis_watts;
        let spec = &c.spec;
        let mut list: Vec<(bool, f64, usize, f64)> = members
            .iter()
            .filter_map(|&i| {
                let m = self.miners.get(i)?;
                let keep_on = m.pin == Some(Pin::KeepOn);
                let eligible = m.intent == Intent::Asleep
                    && m.pending.is_none()
                    && (keep_on || (m.pin.is_none() && headroom && !m.in_dwell(now, spec)));
                eligible.then(|| (!keep_on, m.spec.joules_per_th(), i, m.spec.nominal_watts))
            })
            .collect();
        list.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        let Some(&(not_pinned, _, i, nominal)) = list
            .iter()
            .find(|(_, _, _, nominal)| tally.load + nominal <= fit_limit)
        else {
            return;
        };
        let reason = if not_pinned {
            Reason::Headroom
        } else {
            Reason::PinnedOn
        };
        self.order(i, Action::Wake, reason, now, decisions);
        tally.projected += nominal;
        if let Some(c) = self.containers.get_mut(ci) {
            c.last_wake = Some(now);
        }
    }
}

#[cfg(test)]
mod tests;
