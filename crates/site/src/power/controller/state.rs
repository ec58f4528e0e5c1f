//! Per-miner and per-container memory of the controller, and the fail-safe power estimate.

use std::time::Instant;

use crate::power::api::{MinerState, Telemetry};
use crate::power::inventory::{ContainerSpec, ControllerSettings, MinerSpec, Pin};

use super::decision::{Counted, MeterFallback, PowerState, SleepKind};

/// Inlet readings outside this range are sensor faults, not air.
const PLAUSIBLE_INLET_C: std::ops::RangeInclusive<f64> = -40.0..=90.0;

/// What the controller wants a miner to be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Intent {
    Awake,
    Asleep,
}

/// An order sent and not yet settled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Pending {
    /// Sleep ordered at `at`; counted at nominal until confirmed or timed out.
    Sleep { at: Instant },
    /// Wake ordered at `at`; counted at nominal until the ramp ends.
    Wake { at: Instant },
}

/// The controller's memory of one miner.
#[derive(Debug, Clone)]
pub(super) struct MinerRuntime {
    pub spec: MinerSpec,
    /// Config pin, replaced by the admin API at run time.
    pub pin: Option<Pin>,
    pub intent: Intent,
    /// False until a first telemetry tells us whether it was asleep when we started, so a
    /// restart of hashgate does not wake miners it had put to sleep.
    pub adopted: bool,
    /// Last time we commanded it, for the minimum dwell.
    pub last_toggle: Option<Instant>,
    pub pending: Option<Pending>,
    /// When we last woke it, so a meter reading older than that is known not to include it.
    pub woken_at: Option<Instant>,
    /// Latest successful reading and when it was taken; dropped when the miner stops answering.
    pub telemetry: Option<(Instant, Telemetry)>,
    /// Why it was last put (or found) asleep; read only while `intent` is asleep.
    pub asleep_kind: Option<SleepKind>,
    /// Its energy cost over its revenue (1 = break-even), from the driver; `None` unknown.
    pub cost_ratio: Option<f64>,
    /// Last economic sleep or wake, for the economic rule's own dwell.
    pub economic_toggle: Option<Instant>,
}

/// The controller's memory of one container.
#[derive(Debug, Clone)]
pub(super) struct ContainerRuntime {
    pub spec: ContainerSpec,
    /// Demand-response budget replacing the configured one, W.
    pub budget_override: Option<f64>,
    pub meter: Option<(Instant, f64)>,
    /// Latest IT meter reading (rack PDUs), for PUE only.
    pub it_meter: Option<(Instant, f64)>,
    /// Non-IT load (fans, pump) the climate control reports, W.
    pub auxiliary_watts: Option<f64>,
    pub last_wake: Option<Instant>,
    /// Latched when inlet passes the limit, released under limit minus hysteresis.
    pub hot: bool,
    pub last_temp_shed: Option<Instant>,
    /// Set once the "nothing sleepable" decision was emitted, so it is not repeated each tick.
    pub stuck_over_budget: bool,
    pub stuck_hot: bool,
    /// Meter fallback of the previous tick, to report changes once.
    pub meter_fallback: Option<MeterFallback>,
    /// The climate controller's view, when the container has one.
    pub climate: Option<ClimateView>,
}

/// What the climate controller last told the power controller about a container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ClimateView {
    pub at: Instant,
    /// The inlet the fans follow (sensor, else miners), °C.
    pub inlet_c: Option<f64>,
    /// Every fan the climate controller may run is running.
    pub cooling_exhausted: bool,
}

impl ContainerRuntime {
    /// A container as at start-up: configured budget, no readings.
    pub(super) fn at_start(spec: &ContainerSpec) -> Self {
        ContainerRuntime {
            spec: spec.clone(),
            budget_override: None,
            meter: None,
            it_meter: None,
            auxiliary_watts: None,
            last_wake: None,
            hot: false,
            last_temp_shed: None,
            stuck_over_budget: false,
            stuck_hot: false,
            meter_fallback: None,
            climate: None,
        }
    }

    pub(super) fn budget(&self) -> f64 {
        self.budget_override.unwrap_or(self.spec.budget_watts)
    }

    /// The meter reading to use now, or why none can be used.
    pub(super) fn meter_watts(
        &self,
        now: Instant,
    ) -> Option<Result<(Instant, f64), MeterFallback>> {
        let spec = self.spec.meter.as_ref()?;
        Some(match self.meter {
            None => Err(MeterFallback::Missing),
            Some((at, _)) if now.saturating_duration_since(at) > spec.max_age => {
                Err(MeterFallback::Stale)
            }
            Some((_, w)) if !w.is_finite() || w < 0.0 => Err(MeterFallback::Invalid),
            Some((at, w)) => Ok((at, w)),
        })
    }
}

/// One miner's power as counted this tick.
#[derive(Debug, Clone, Copy)]
pub(super) struct Estimate {
    /// Fail-safe figure that goes into the container load, W.
    pub counted: f64,
    pub how: Counted,
    /// Fresh telemetry is present.
    pub answering: bool,
    /// Load that an unexpired pending sleep will remove, W.
    pub pending_credit: f64,
}

fn sane_watts(w: Option<f64>) -> Option<f64> {
    w.filter(|w| w.is_finite() && *w >= 0.0)
}

impl MinerRuntime {
    /// A miner as at start-up: assumed awake until its first telemetry is adopted.
    pub(super) fn at_start(spec: &MinerSpec) -> Self {
        MinerRuntime {
            spec: spec.clone(),
            pin: spec.pin,
            intent: Intent::Awake,
            adopted: false,
            last_toggle: None,
            pending: None,
            woken_at: None,
            telemetry: None,
            asleep_kind: None,
            cost_ratio: None,
            economic_toggle: None,
        }
    }

    /// The same miner under a reloaded `spec` (same id).
    pub(super) fn respecified(mut self, spec: &MinerSpec) -> Self {
        let same_machine = self.spec.address == spec.address
            && self.spec.family == spec.family
            && self.spec.credentials == spec.credentials;
        if !same_machine {
            // Possibly another machine behind the new address: what we knew and ordered
            // belongs to the old one.
            self.adopted = false;
            self.pending = None;
            self.telemetry = None;
            self.woken_at = None;
            self.cost_ratio = None;
        }
        // The admin API's pin differs from the file's; only the file's follows the file.
        if self.pin == self.spec.pin && self.pin != spec.pin {
            if self.pin == Some(Pin::Maintenance) {
                // As when the admin API lifts maintenance: learn its state again.
                self.adopted = false;
                self.pending = None;
            }
            self.pin = spec.pin;
        }
        self.spec = spec.clone();
        self
    }

    /// Telemetry no older than the settings allow.
    pub(super) fn fresh(
        &self,
        now: Instant,
        s: &ControllerSettings,
    ) -> Option<(Instant, &Telemetry)> {
        self.telemetry
            .as_ref()
            .filter(|(at, _)| now.saturating_duration_since(*at) <= s.telemetry_max_age)
            .map(|(at, t)| (*at, t))
    }

    /// Hottest inlet reading, for the container temperature.
    pub(super) fn inlet_c(&self, now: Instant, s: &ControllerSettings) -> Option<f64> {
        let (_, t) = self.fresh(now, s)?;
        t.inlet_temp_c.filter(|c| PLAUSIBLE_INLET_C.contains(c))
    }

    /// Hottest board (or inlet) reading, the tie-break among equally efficient miners.
    pub(super) fn hottest_c(&self, now: Instant, s: &ControllerSettings) -> f64 {
        let Some((_, t)) = self.fresh(now, s) else {
            return f64::NEG_INFINITY;
        };
        t.board_temps_c
            .iter()
            .copied()
            .chain(t.inlet_temp_c)
            .filter(|c| c.is_finite())
            .fold(f64::NEG_INFINITY, f64::max)
    }

    pub(super) fn in_dwell(&self, now: Instant, container: &ContainerSpec) -> bool {
        self.last_toggle
            .is_some_and(|t| now.saturating_duration_since(t) < container.min_dwell)
    }

    pub(super) fn sleep_unconfirmed(&self, now: Instant, s: &ControllerSettings) -> bool {
        matches!(self.pending, Some(Pending::Sleep { at })
            if now.saturating_duration_since(at) < s.sleep_confirm_timeout)
    }

    pub(super) fn ramping(&self, now: Instant, s: &ControllerSettings) -> bool {
        matches!(self.pending, Some(Pending::Wake { at })
            if now.saturating_duration_since(at) < s.wake_ramp)
    }

    /// The fail-safe power figure: no answer, unconfirmed sleep and ramp all count at least
    /// at nameplate, so the budget holds whatever the miner is really doing.
    pub(super) fn estimate(&self, now: Instant, s: &ControllerSettings) -> Estimate {
        let nominal = self.spec.nominal_watts;
        let fresh = self.fresh(now, s);
        let (drawing, telemetry_how) = match fresh {
            None => (nominal, Counted::NameplateNoAnswer),
            Some((_, t)) => match (t.state, sane_watts(t.power_watts)) {
                (state, Some(w)) if !self.spec.plausible_watts(w, state == MinerState::Mining) => {
                    (nominal, Counted::NameplateImplausible)
                }
                (_, Some(w)) => (w, Counted::Telemetry),
                (MinerState::Sleeping, None) => (self.spec.standby_watts, Counted::Telemetry),
                (MinerState::Mining | MinerState::Idle, None) => {
                    (nominal, Counted::NameplateUnreported)
                }
            },
        };
        let (counted, how) = if self.ramping(now, s) {
            (drawing.max(nominal), Counted::NameplateRamping)
        } else if self.sleep_unconfirmed(now, s) {
            (drawing.max(nominal), Counted::NameplateSleepPending)
        } else {
            (drawing, telemetry_how)
        };
        let pending_credit = if self.sleep_unconfirmed(now, s) {
            (counted - self.spec.standby_watts).max(0.0)
        } else {
            0.0
        };
        Estimate {
            counted,
            how,
            answering: fresh.is_some(),
            pending_credit,
        }
    }

    /// How much more than a meter reading taken at `metered_at` a woken miner may draw:
    /// a reading older than the wake saw it at standby; during the ramp, the meter saw at
    /// most its last telemetry power no newer than the reading (standby when none).
    pub(super) fn ramp_gap(
        &self,
        metered_at: Instant,
        now: Instant,
        s: &ControllerSettings,
    ) -> f64 {
        let Some(woken) = self.woken_at.filter(|_| self.intent == Intent::Awake) else {
            return 0.0;
        };
        let seen = if metered_at <= woken {
            None
        } else if self.ramping(now, s) {
            self.fresh(now, s)
                .filter(|(at, _)| *at <= metered_at)
                .and_then(|(_, t)| {
                    sane_watts(t.power_watts)
                        .filter(|w| self.spec.plausible_watts(*w, t.state == MinerState::Mining))
                })
        } else {
            return 0.0;
        };
        (self.spec.nominal_watts - seen.unwrap_or(self.spec.standby_watts)).max(0.0)
    }

    /// The fresh reported power when it is outside the model's plausible band.
    pub(super) fn implausible_watts(&self, now: Instant, s: &ControllerSettings) -> Option<f64> {
        let (_, t) = self.fresh(now, s)?;
        let w = sane_watts(t.power_watts)?;
        (!self.spec.plausible_watts(w, t.state == MinerState::Mining)).then_some(w)
    }

    /// What this miner would save if put to sleep now, W.
    pub(super) fn saving(&self, estimate: &Estimate) -> f64 {
        (estimate.counted - self.spec.standby_watts).max(0.0)
    }

    /// Settles pending orders and intent against the latest telemetry.
    pub(super) fn reconcile(&mut self, now: Instant, s: &ControllerSettings) {
        let Some((at, state)) = self.fresh(now, s).map(|(at, t)| (at, t.state)) else {
            return;
        };
        if !self.adopted {
            self.adopted = true;
            if self.pending.is_none() {
                self.intent = match state {
                    MinerState::Sleeping => Intent::Asleep,
                    MinerState::Mining | MinerState::Idle => Intent::Awake,
                };
                if self.intent == Intent::Asleep {
                    self.asleep_kind = Some(SleepKind::Manual);
                }
            }
        }
        match self.pending {
            Some(Pending::Sleep { at: ordered })
                if at > ordered && state == MinerState::Sleeping =>
            {
                self.pending = None;
            }
            Some(Pending::Wake { at: ordered })
                if now.saturating_duration_since(ordered) >= s.wake_ramp =>
            {
                self.pending = None;
            }
            _ => {}
        }
        // A wake that did not take, or a sleep from outside: follow reality so the normal
        // wake path (with dwell and stagger) handles it instead of fighting it.
        if self.intent == Intent::Awake
            && self.pending.is_none()
            && state == MinerState::Sleeping
            && self
                .last_toggle
                .is_none_or(|t| at > t && now.saturating_duration_since(t) >= s.wake_ramp)
        {
            self.intent = Intent::Asleep;
            self.asleep_kind = Some(SleepKind::Manual);
        }
        // Woken from outside (web UI, power cycle) after a confirmed sleep: it draws power
        // again, so it must be sheddable again; a keep-off pin then sleeps it once more.
        if self.intent == Intent::Asleep
            && self.pending.is_none()
            && state != MinerState::Sleeping
            && self.last_toggle.is_none_or(|t| at > t)
        {
            self.intent = Intent::Awake;
        }
    }

    /// Why it is asleep, while the controller means it to be.
    pub(super) fn asleep_reason(&self) -> Option<SleepKind> {
        match (self.pin, self.intent) {
            (Some(Pin::Maintenance), _) | (_, Intent::Awake) => None,
            (_, Intent::Asleep) => Some(self.asleep_kind.unwrap_or(SleepKind::Manual)),
        }
    }

    pub(super) fn power_state(&self, now: Instant, s: &ControllerSettings) -> PowerState {
        if self.pin == Some(Pin::Maintenance) {
            return PowerState::Maintenance;
        }
        match self.intent {
            Intent::Awake if self.ramping(now, s) => PowerState::Waking,
            Intent::Awake => PowerState::Awake,
            Intent::Asleep if matches!(self.pending, Some(Pending::Sleep { .. })) => {
                PowerState::FallingAsleep
            }
            Intent::Asleep => PowerState::Asleep,
        }
    }
}
