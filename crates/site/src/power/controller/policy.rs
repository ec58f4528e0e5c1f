//! One container's tick: load estimate, pins and retries, budget shedding, heat shedding,
//! staggered wake. The order of the steps is the policy; see the table in the module docs.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::power::api::MinerState;
use crate::power::inventory::Pin;
use crate::power::pue::{ItSource, PueInputs, PueUnknown};

use super::Controller;
use super::decision::{Action, ContainerReport, Decision, LoadSource, Reason, SleepKind};
use super::state::{Estimate, Intent, Pending};

/// A miner that may be put to sleep, with the keys that order the choice.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    index: usize,
    in_dwell: bool,
    answering: bool,
    jth: f64,
    hottest: f64,
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

/// What one container's tick works on, and its running figures.
struct Pass<'a> {
    ci: usize,
    /// A copy of the container's miner indices, so `self` can be borrowed mutably meanwhile.
    members: Vec<usize>,
    now: Instant,
    est: &'a [Estimate],
    temperature: Option<f64>,
    /// No more air to give (always true without climate control): heat may shed miners.
    cooling_exhausted: bool,
    /// Fail-safe load before this tick's decisions, W.
    load: f64,
    /// Load once pending and new orders take effect, W.
    projected: f64,
    /// Something was put to sleep this tick; no wake then.
    shed_any: bool,
}

impl Controller {
    pub(super) fn tick_container(
        &mut self,
        ci: usize,
        now: Instant,
        est: &[Estimate],
        decisions: &mut Vec<Decision>,
    ) -> ContainerReport {
        let s = self.settings;
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
        let miners_inlet = members
            .iter()
            .filter_map(|&i| self.miners.get(i)?.inlet_c(now, &s))
            .reduce(f64::max);
        let climate = c
            .climate
            .filter(|v| now.saturating_duration_since(v.at) <= s.telemetry_max_age);
        let temperature = climate.and_then(|v| v.inlet_c).or(miners_inlet);
        let pue = self.pue_inputs(ci, &members, now);
        let credit: f64 = members
            .iter()
            .filter_map(|&i| est.get(i))
            .map(|e| e.pending_credit)
            .sum();
        let mut pass = Pass {
            ci,
            members,
            now,
            est,
            temperature,
            cooling_exhausted: climate.is_none_or(|v| v.cooling_exhausted),
            load,
            projected: load - credit,
            shed_any: false,
        };

        self.apply_pins_and_retries(&mut pass, decisions);
        let stuck = self.shed_for_budget(&mut pass, decisions);
        let hot = self.shed_for_heat(&mut pass, decisions);
        self.shed_for_economics(&mut pass, decisions);
        if !pass.shed_any && !hot {
            self.wake_one(&mut pass, decisions);
        }

        let meter_fallback_changed = match self.containers.get_mut(ci) {
            Some(c) => {
                let changed = c.meter_fallback != fallback;
                c.meter_fallback = fallback;
                changed
            }
            None => false,
        };
        ContainerReport {
            name,
            budget_watts: budget,
            load_watts: pass.load,
            projected_watts: pass.projected,
            source,
            meter_fallback: fallback,
            meter_fallback_changed,
            temperature_c: temperature,
            hot,
            stuck_over_budget: stuck,
            pue,
        }
    }

    /// Facility and IT power of a container for PUE: meters when fresh, else the miners'
    /// reported power plus the climate control's auxiliary load.
    fn pue_inputs(&self, ci: usize, members: &[usize], now: Instant) -> PueInputs {
        let Some(c) = self.containers.get(ci) else {
            return PueInputs::from_parts(None, None, Err(PueUnknown::NoFacilityPower));
        };
        let feed = match c.meter_watts(now) {
            Some(Ok((_, w))) => Some(w),
            _ => None,
        };
        let it = match &c.spec.it_meter {
            Some(spec) => match c.it_meter {
                Some((at, w))
                    if now.saturating_duration_since(at) <= spec.max_age
                        && w.is_finite()
                        && w >= 0.0 =>
                {
                    Ok((w, ItSource::ItMeter))
                }
                _ => Err(PueUnknown::ItMeterStale),
            },
            None => members
                .iter()
                .filter_map(|&i| self.miners.get(i))
                .map(|m| {
                    m.fresh(now, &self.settings)
                        .and_then(|(_, t)| t.power_watts)
                        .filter(|w| w.is_finite() && *w >= 0.0)
                })
                .sum::<Option<f64>>()
                .map(|w| (w, ItSource::Miners))
                .ok_or(PueUnknown::MinerPowerUnreported),
        };
        PueInputs::from_parts(feed, c.auxiliary_watts, it)
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
            pue: PueInputs::from_parts(None, None, Err(PueUnknown::NoFacilityPower)),
        }
    }

    /// Records an order in the miner's memory and emits the decision.
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
                // A retried sleep keeps the kind of the sleep it retries.
                m.asleep_kind = reason.sleep_kind().or(m.asleep_kind);
            }
            Action::Wake => {
                m.intent = Intent::Awake;
                m.pending = Some(Pending::Wake { at: now });
                m.woken_at = Some(now);
            }
            Action::Blocked => return,
        }
        if matches!(reason, Reason::Uneconomic | Reason::Economic) {
            m.economic_toggle = Some(now);
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

    /// Orders a sleep and takes the miner's saving off the projected load.
    fn order_sleep(
        &mut self,
        pass: &mut Pass<'_>,
        i: usize,
        reason: Reason,
        decisions: &mut Vec<Decision>,
    ) -> f64 {
        let saving = match (self.miners.get(i), pass.est.get(i)) {
            (Some(m), Some(e)) => m.saving(e),
            _ => return 0.0,
        };
        self.order(i, Action::Sleep, reason, pass.now, decisions);
        pass.projected -= saving;
        pass.shed_any = true;
        saving
    }

    fn apply_pins_and_retries(&mut self, pass: &mut Pass<'_>, decisions: &mut Vec<Decision>) {
        let s = self.settings;
        let now = pass.now;
        for i in pass.members.clone() {
            let Some(m) = self.miners.get(i) else {
                continue;
            };
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
            self.order_sleep(pass, i, reason, decisions);
        }
    }

    /// Awake, unpinned miners in shed order; with `allow_dwell` false, those in dwell are left out.
    fn candidates(&self, pass: &Pass<'_>, allow_dwell: bool) -> Vec<Candidate> {
        let s = self.settings;
        let Some(spec) = self.containers.get(pass.ci).map(|c| &c.spec) else {
            return Vec::new();
        };
        let mut list: Vec<Candidate> = pass
            .members
            .iter()
            .filter_map(|&i| {
                let m = self.miners.get(i)?;
                let sheddable = m.pin.is_none() && m.intent == Intent::Awake;
                let in_dwell = m.in_dwell(pass.now, spec);
                (sheddable && (allow_dwell || !in_dwell)).then(|| Candidate {
                    index: i,
                    in_dwell,
                    answering: pass.est.get(i).is_some_and(|e| e.answering),
                    jth: m.spec.joules_per_th(),
                    hottest: m.hottest_c(pass.now, &s),
                })
            })
            .collect();
        list.sort_unstable_by(shed_order);
        list
    }

    /// Sheds for the budget; returns whether the container is stuck over budget with
    /// nothing left to sleep.
    fn shed_for_budget(&mut self, pass: &mut Pass<'_>, decisions: &mut Vec<Decision>) -> bool {
        let Some(c) = self.containers.get(pass.ci) else {
            return false;
        };
        let (budget, target, name, was_stuck) = (
            c.budget(),
            c.budget() - c.spec.margin_watts,
            c.spec.name.clone(),
            c.stuck_over_budget,
        );
        let mut stuck = false;
        if pass.load > budget && pass.projected > target {
            // The budget is the breaker: dwell only orders the candidates, it never blocks.
            for cand in self.candidates(pass, true) {
                if pass.projected <= target {
                    break;
                }
                self.order_sleep(pass, cand.index, Reason::OverBudget, decisions);
            }
            stuck = pass.projected > target;
        }
        if stuck && !was_stuck {
            decisions.push(Decision {
                container: name,
                miner: None,
                action: Action::Blocked,
                reason: Reason::NothingSleepable,
            });
        }
        if let Some(c) = self.containers.get_mut(pass.ci) {
            c.stuck_over_budget = stuck;
        }
        stuck
    }

    /// Updates the hot latch and sheds one step when due; returns whether the container is hot.
    fn shed_for_heat(&mut self, pass: &mut Pass<'_>, decisions: &mut Vec<Decision>) -> bool {
        let now = pass.now;
        let Some(c) = self.containers.get_mut(pass.ci) else {
            return false;
        };
        let Some(limit) = c.spec.temperature else {
            return false;
        };
        match pass.temperature {
            // While the climate can still start a fan, a hot inlet is the fans' to fix and
            // the latch is not set; once set (cooling exhausted) it holds as before.
            Some(t) if t > limit.limit_c && pass.cooling_exhausted => c.hot = true,
            Some(t) if t > limit.limit_c => {}
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
        for cand in self.candidates(pass, false) {
            if shed >= limit.shed_step_watts {
                break;
            }
            shed += self.order_sleep(pass, cand.index, Reason::OverTemperature, decisions);
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
        if let Some(c) = self.containers.get_mut(pass.ci) {
            c.stuck_hot = stuck;
        }
        true
    }

    /// Sleeps every awake miner (out of dwell) whose cost exceeds its revenue by more than
    /// the margin, the costliest first. Economics is not a breaker: dwell is respected.
    fn shed_for_economics(&mut self, pass: &mut Pass<'_>, decisions: &mut Vec<Decision>) {
        let Some(rule) = self.economic_rule.filter(|_| !self.economics_held) else {
            return;
        };
        let limit = 1.0 + rule.margin;
        let mut losing: Vec<(f64, usize)> = self
            .candidates(pass, false)
            .iter()
            .filter_map(|c| {
                let m = self.miners.get(c.index)?;
                let in_economic_dwell = m
                    .economic_toggle
                    .is_some_and(|t| pass.now.saturating_duration_since(t) < rule.min_dwell);
                m.cost_ratio
                    .filter(|r| *r > limit && !in_economic_dwell)
                    .map(|r| (r, c.index))
            })
            .collect();
        losing.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, i) in losing {
            self.order_sleep(pass, i, Reason::Uneconomic, decisions);
        }
    }

    /// Whether the economic rule lets this sleeper wake: it must pay its power (a miner
    /// slept for economics by the hysteresis, and out of the economic dwell), and nothing
    /// slept for economics wakes while the rule is held.
    fn economics_allow_wake(&self, i: usize, now: Instant) -> bool {
        let (Some(rule), Some(m)) = (self.economic_rule, self.miners.get(i)) else {
            return true;
        };
        let economic = m.asleep_kind == Some(SleepKind::Economic);
        if economic {
            let in_dwell = m
                .economic_toggle
                .is_some_and(|t| now.saturating_duration_since(t) < rule.min_dwell);
            let pays = m
                .cost_ratio
                .is_some_and(|r| r < 1.0 + rule.margin - rule.hysteresis);
            !self.economics_held && !in_dwell && pays
        } else {
            // Slept for power or heat: waking one that loses money would only put it
            // straight back to sleep for economics.
            m.cost_ratio.is_none_or(|r| r <= 1.0 + rule.margin)
        }
    }

    /// Wakes at most one miner: a keep-on sleeper first, else the most efficient that fits.
    fn wake_one(&mut self, pass: &mut Pass<'_>, decisions: &mut Vec<Decision>) {
        let now = pass.now;
        let Some(c) = self.containers.get(pass.ci) else {
            return;
        };
        let budget = c.budget();
        let fit_limit = budget - c.spec.margin_watts;
        let stagger_ok = c
            .last_wake
            .is_none_or(|t| now.saturating_duration_since(t) >= c.spec.wake_stagger);
        let cool = match (c.spec.temperature, pass.temperature) {
            (Some(limit), Some(t)) => t < limit.limit_c - limit.hysteresis_c,
            _ => true,
        };
        if !stagger_ok || !cool || pass.load > budget {
            return;
        }
        let headroom = budget - pass.load > c.spec.hysteresis_watts;
        let spec = &c.spec;
        // (not pinned keep-on, J/TH, index, nominal W): keep-on first, then most efficient.
        let mut list: Vec<(bool, f64, usize, f64)> = pass
            .members
            .iter()
            .filter_map(|&i| {
                let m = self.miners.get(i)?;
                let keep_on = m.pin == Some(Pin::KeepOn);
                let eligible = m.intent == Intent::Asleep
                    && m.pending.is_none()
                    && (keep_on
                        || (m.pin.is_none()
                            && headroom
                            && !m.in_dwell(now, spec)
                            && self.economics_allow_wake(i, now)));
                eligible.then(|| (!keep_on, m.spec.joules_per_th(), i, m.spec.nominal_watts))
            })
            .collect();
        list.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        let Some(&(not_pinned, _, i, nominal)) = list
            .iter()
            .find(|(_, _, _, nominal)| pass.load + nominal <= fit_limit)
        else {
            return;
        };
        let slept_for_economics = self
            .miners
            .get(i)
            .is_some_and(|m| m.asleep_kind == Some(SleepKind::Economic));
        let reason = match (not_pinned, slept_for_economics) {
            (false, _) => Reason::PinnedOn,
            (true, true) => Reason::Economic,
            (true, false) => Reason::Headroom,
        };
        self.order(i, Action::Wake, reason, now, decisions);
        pass.projected += nominal;
        if let Some(c) = self.containers.get_mut(pass.ci) {
            c.last_wake = Some(now);
        }
    }
}
