//! Miner health alarms: joins what the management API claims with what shares prove.
//!
//! A miner asleep on purpose is quiet by design and raises nothing. A miner the API reports
//! as mining must prove it with shares: silence for too long, or a claimed hashrate well
//! above the share-proven one, is an alarm.

use std::time::{Duration, Instant};

use crate::power::inventory::AlarmRules;

/// What the controller wants the miner to be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntendedState {
    /// Meant to be hashing.
    Awake,
    /// Put to sleep on purpose (budget, heat or pin).
    Asleep,
    /// Pinned for maintenance: no expectations, no alarms.
    Maintenance,
}

/// What the management API last said about the miner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ApiView {
    /// No fresh answer.
    NoAnswer,
    /// Reports sleeping.
    Sleeping,
    /// Reports neither mining nor sleeping (booting, error, no pool).
    Idle,
    /// Reports mining, continuously since `since`, claiming `hashrate_ths` when it says.
    Mining {
        /// Start of the current stretch of "mining" answers.
        since: Instant,
        /// Hashrate the firmware claims, TH/s.
        hashrate_ths: Option<f64>,
    },
}

/// Everything the health rules look at for one miner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthInput {
    /// The controller's intent.
    pub intended: IntendedState,
    /// The management API's view.
    pub api: ApiView,
    /// Hashrate proven by shares over the stats window, TH/s.
    pub proven_ths: f64,
    /// Time of the last valid share, if any.
    pub last_share: Option<Instant>,
    /// Reported power outside the model's plausible band, W (none when believable).
    pub implausible_watts: Option<f64>,
}

/// A health problem worth an operator's attention.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Alarm {
    /// Mining per its API, yet no share for this long.
    NoShares {
        /// Time since the last share, or since it started mining if it never sent one.
        silent_for: Duration,
    },
    /// The API claims more hashrate than shares prove, beyond the configured margin.
    HashrateExceedsShares {
        /// What the firmware claims, TH/s.
        claimed_ths: f64,
        /// What shares prove, TH/s.
        proven_ths: f64,
    },
    /// The API reports a power figure the model cannot draw; counted at nameplate instead.
    ImplausiblePower {
        /// What the firmware reported, W.
        reported_watts: f64,
    },
}

impl Alarm {
    /// Stable snake_case label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Alarm::NoShares { .. } => "no_shares",
            Alarm::HashrateExceedsShares { .. } => "hashrate_exceeds_shares",
            Alarm::ImplausiblePower { .. } => "implausible_power",
        }
    }
}

/// Applies the alarm rules to one miner at `now`; an empty list means healthy.
pub fn evaluate_health(input: &HealthInput, rules: &AlarmRules, now: Instant) -> Vec<Alarm> {
    let mut alarms = Vec::new();
    if input.intended == IntendedState::Maintenance {
        return alarms;
    }
    // Whatever the intent: an unbelievable power figure is a broken sensor or firmware,
    // and the budget is being kept on nameplate instead of a measurement.
    if let Some(reported_watts) = input.implausible_watts {
        alarms.push(Alarm::ImplausiblePower { reported_watts });
    }
    let ApiView::Mining {
        since,
        hashrate_ths,
    } = input.api
    else {
        return alarms;
    };
    // A share from before this mining stretch says nothing about the current one.
    let quiet_from = input.last_share.map_or(since, |t| t.max(since));
    let silent_for = now.saturating_duration_since(quiet_from);
    if silent_for >= rules.no_shares_after {
        alarms.push(Alarm::NoShares { silent_for });
    }
    // Share-proven hashrate is meaningless until the stats window has filled.
    let window_full = now.saturating_duration_since(since) >= rules.hashrate_min_window;
    if let Some(claimed) = hashrate_ths.filter(|h| h.is_finite() && *h > 0.0)
        && window_full
        && claimed > input.proven_ths.max(0.0) * (1.0 + rules.hashrate_margin)
    {
        alarms.push(Alarm::HashrateExceedsShares {
            claimed_ths: claimed,
            proven_ths: input.proven_ths,
        });
    }
    alarms
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60;

    fn rules() -> AlarmRules {
        AlarmRules {
            no_shares_after: Duration::from_secs(10 * MIN),
            hashrate_margin: 0.2,
            hashrate_min_window: Duration::from_secs(60 * MIN),
        }
    }

    fn mining(t0: Instant, claimed: f64) -> ApiView {
        ApiView::Mining {
            since: t0,
            hashrate_ths: Some(claimed),
        }
    }

    #[test]
    fn asleep_on_purpose_is_not_an_alarm() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(600 * MIN);
        for api in [ApiView::Sleeping, ApiView::NoAnswer, ApiView::Idle] {
            let input = HealthInput {
                intended: IntendedState::Asleep,
                api,
                proven_ths: 0.0,
                last_share: None,
                implausible_watts: None,
            };
            assert!(evaluate_health(&input, &rules(), now).is_empty(), "{api:?}");
        }
    }

    #[test]
    fn mining_without_shares_alarms_after_the_threshold_only() {
        let t0 = Instant::now();
        let input = HealthInput {
            intended: IntendedState::Awake,
            api: mining(t0, 100.0),
            proven_ths: 0.0,
            last_share: Some(t0 + Duration::from_secs(5 * MIN)),
            implausible_watts: None,
        };
        let at = |m: u64| t0 + Duration::from_secs(m * MIN);
        assert!(evaluate_health(&input, &rules(), at(14)).is_empty());
        assert_eq!(
            evaluate_health(&input, &rules(), at(15)),
            vec![Alarm::NoShares {
                silent_for: Duration::from_secs(10 * MIN)
            }]
        );
    }

    #[test]
    fn share_before_the_mining_stretch_does_not_count() {
        let t0 = Instant::now();
        let woke = t0 + Duration::from_secs(120 * MIN);
        let input = HealthInput {
            intended: IntendedState::Awake,
            api: mining(woke, 100.0),
            proven_ths: 0.0,
            last_share: Some(t0),
            implausible_watts: None,
        };
        // Just woken: the old share is hours old, but the miner has had no time yet.
        assert!(evaluate_health(&input, &rules(), woke + Duration::from_secs(MIN)).is_empty());
        assert_eq!(
            evaluate_health(&input, &rules(), woke + Duration::from_secs(11 * MIN))
                .first()
                .map(Alarm::label),
            Some("no_shares")
        );
    }

    #[test]
    fn claimed_hashrate_above_proven_by_more_than_margin_alarms() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(61 * MIN);
        let input = |proven| HealthInput {
            intended: IntendedState::Awake,
            api: mining(t0, 120.0),
            proven_ths: proven,
            last_share: Some(now),
            implausible_watts: None,
        };
        assert!(
            evaluate_health(&input(100.0), &rules(), now).is_empty(),
            "exactly 20 %"
        );
        assert_eq!(
            evaluate_health(&input(99.0), &rules(), now),
            vec![Alarm::HashrateExceedsShares {
                claimed_ths: 120.0,
                proven_ths: 99.0
            }]
        );
    }

    #[test]
    fn hashrate_rule_waits_for_a_full_window() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(30 * MIN);
        let input = HealthInput {
            intended: IntendedState::Awake,
            api: mining(t0, 120.0),
            proven_ths: 50.0,
            last_share: Some(now),
            implausible_watts: None,
        };
        assert!(evaluate_health(&input, &rules(), now).is_empty());
    }

    #[test]
    fn maintenance_never_alarms() {
        let t0 = Instant::now();
        let input = HealthInput {
            intended: IntendedState::Maintenance,
            api: mining(t0, 120.0),
            proven_ths: 0.0,
            last_share: None,
            implausible_watts: None,
        };
        assert!(evaluate_health(&input, &rules(), t0 + Duration::from_secs(600 * MIN)).is_empty());
    }

    #[test]
    fn awake_intent_but_api_sleeping_is_left_to_the_controller() {
        let t0 = Instant::now();
        let input = HealthInput {
            intended: IntendedState::Awake,
            api: ApiView::Sleeping,
            proven_ths: 0.0,
            last_share: None,
            implausible_watts: None,
        };
        assert!(evaluate_health(&input, &rules(), t0 + Duration::from_secs(600 * MIN)).is_empty());
    }

    #[test]
    fn implausible_power_alarms_whatever_the_intent_but_not_in_maintenance() {
        let now = Instant::now();
        let rules = AlarmRules::default();
        for intended in [IntendedState::Awake, IntendedState::Asleep] {
            let input = HealthInput {
                intended,
                api: ApiView::Sleeping,
                proven_ths: 0.0,
                last_share: None,
                implausible_watts: Some(1e12),
            };
            assert_eq!(
                evaluate_health(&input, &rules, now),
                vec![Alarm::ImplausiblePower {
                    reported_watts: 1e12
                }]
            );
        }
        let maintenance = HealthInput {
            intended: IntendedState::Maintenance,
            api: ApiView::Sleeping,
            proven_ths: 0.0,
            last_share: None,
            implausible_watts: Some(1e12),
        };
        assert!(evaluate_health(&maintenance, &rules, now).is_empty());
    }
}
