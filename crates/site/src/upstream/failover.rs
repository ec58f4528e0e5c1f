//! Which pool serves a channel: the pure failover state machine.
//!
//! Pools are tried in configured order. The **active** pool's connection publishes work;
//! the first other ready pool is the **backup**, kept subscribed so a failure switches at
//! once. More preferred pools that are down keep reconnecting (with back-off) so the channel
//! can fail back to them once they have been healthy for `failback_after`.
//!
//! Which pools get a connection:
//!
//! | pool | connected? |
//! |---|---|
//! | the active one | always |
//! | more preferred than the active one | yes, retrying with back-off while down |
//! | others | only while fewer than two pools before them are ready or connecting |
//!
//! Pure: the caller reports connection events and asks [`Failover::decide`] at `now`.

use std::time::{Duration, Instant};

use super::backoff::Backoff;

/// The state of one pool's connection for a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// No connection and none wanted.
    Idle,
    /// Connecting, subscribing, waiting for the first job.
    Connecting,
    /// Subscribed with a job; healthy since then.
    Ready {
        /// When it became ready (for failback).
        since: Instant,
    },
    /// Failed; the next attempt is due at `retry_at`.
    Down {
        /// Earliest reconnect.
        retry_at: Instant,
    },
}

/// A change of the active pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Switch {
    /// The pool that was active (`None` at start).
    pub from: Option<usize>,
    /// The pool now active (`None` when no pool is ready).
    pub to: Option<usize>,
}

/// What the caller must do after a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FailoverDecision {
    /// The active pool changed: publish its latest job with `clean_jobs`.
    pub switch: Option<Switch>,
    /// Pools to open a connection to (now marked connecting).
    pub connect: Vec<usize>,
    /// Pools whose connection is no longer needed (now idle): close it.
    pub close: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Slot {
    state: LinkState,
    backoff: Backoff,
}

/// The failover state of one channel over the ordered pools.
#[derive(Debug, Clone)]
pub(crate) struct Failover {
    slots: Vec<Slot>,
    active: Option<usize>,
    failback_after: Duration,
    /// Whether any pool has been active yet: at start a less preferred pool that answers
    /// first does not take the miners while a more preferred one is still connecting
    /// (that would only mean a failback moments later).
    started: bool,
}

impl Failover {
    /// All `pools` idle, none active.
    pub(crate) fn new(
        pools: usize,
        reconnect_min: Duration,
        reconnect_max: Duration,
        failback_after: Duration,
    ) -> Failover {
        let slot = Slot {
            state: LinkState::Idle,
            backoff: Backoff::new(reconnect_min, reconnect_max),
        };
        Failover {
            slots: vec![slot; pools],
            active: None,
            failback_after,
            started: false,
        }
    }

    /// The machine over a reloaded pool list: `kept[i]` is the old index of new pool `i`
    /// when it is the same pool (its connection stays, in whatever state it is), `None` for
    /// a pool new to the list. The active pool stays active when kept; when it was removed
    /// or changed, none is active and the next [`Failover::decide`] switches to the most
    /// preferred ready pool at once (start-up's wait for a preferred pool still connecting
    /// does not apply: miners are waiting). Back-off bounds and `failback_after` are the
    /// reloaded ones; a kept pool keeps its back-off unless the bounds changed.
    pub(crate) fn remap(
        &self,
        kept: &[Option<usize>],
        reconnect_min: Duration,
        reconnect_max: Duration,
        failback_after: Duration,
    ) -> Failover {
        let fresh = Backoff::new(reconnect_min, reconnect_max);
        let same_bounds = self
            .slots
            .first()
            .is_none_or(|s| s.backoff.bounds() == fresh.bounds());
        let slots = kept
            .iter()
            .map(|old| match old.and_then(|o| self.slots.get(o)) {
                Some(slot) => Slot {
                    state: slot.state,
                    backoff: if same_bounds {
                        slot.backoff.clone()
                    } else {
                        fresh.clone()
                    },
                },
                None => Slot {
                    state: LinkState::Idle,
                    backoff: fresh.clone(),
                },
            })
            .collect();
        let active = self
            .active
            .and_then(|a| kept.iter().position(|old| *old == Some(a)));
        Failover {
            slots,
            active,
            failback_after,
            started: self.started,
        }
    }

    /// The active pool.
    pub(crate) fn active(&self) -> Option<usize> {
        self.active
    }

    /// The state of a pool's connection.
    pub(crate) fn state(&self, pool: usize) -> Option<LinkState> {
        self.slots.get(pool).map(|s| s.state)
    }

    /// The pool kept ready for a switch: the most preferred ready pool that is not active.
    #[cfg(test)]
    pub(crate) fn backup(&self) -> Option<usize> {
        (0..self.slots.len()).find(|&i| Some(i) != self.active && self.is_ready(i))
    }

    /// A pool's connection has subscribed and has a job.
    pub(crate) fn ready(&mut self, pool: usize, now: Instant) {
        if let Some(slot) = self.slots.get_mut(pool)
            && slot.state == LinkState::Connecting
        {
            slot.state = LinkState::Ready { since: now };
        }
    }

    /// A pool's connection failed (or was told to reconnect). The reconnect waits `wait`
    /// when the pool named one, else the next back-off delay (`jitter` in `0..=1`).
    /// A connection that had been healthy for `failback_after` resets the back-off first,
    /// so a pool that drops once a day is retried quickly, and one that flaps is not.
    /// Returns the delay chosen.
    pub(crate) fn down(
        &mut self,
        pool: usize,
        now: Instant,
        jitter: f64,
        wait: Option<Duration>,
    ) -> Duration {
        let failback_after = self.failback_after;
        let Some(slot) = self.slots.get_mut(pool) else {
            return Duration::ZERO;
        };
        if let LinkState::Ready { since } = slot.state
            && now.saturating_duration_since(since) >= failback_after
        {
            slot.backoff.reset();
        }
        let delay = match wait {
            Some(wait) => wait,
            None => slot.backoff.next_delay(jitter),
        };
        slot.state = LinkState::Down {
            retry_at: later(now, delay),
        };
        delay
    }

    /// Chooses the active pool and the connections to open or close at `now`.
    pub(crate) fn decide(&mut self, now: Instant) -> FailoverDecision {
        let mut decision = FailoverDecision::default();
        let chosen = self.choose_active(now);
        if chosen != self.active {
            decision.switch = Some(Switch {
                from: self.active,
                to: chosen,
            });
            self.active = chosen;
            self.started |= chosen.is_some();
        }
        let mut ready_before = 0;
        let mut hopeful_before = 0;
        for i in 0..self.slots.len() {
            let preferred = self.active.is_some_and(|a| i < a);
            let is_active = self.active == Some(i);
            let Some(slot) = self.slots.get_mut(i) else {
                break;
            };
            let state = slot.state;
            match state {
                LinkState::Idle => {
                    if preferred || hopeful_before < 2 {
                        slot.state = LinkState::Connecting;
                        decision.connect.push(i);
                    }
                }
                LinkState::Down { retry_at } => {
                    if now >= retry_at && (preferred || hopeful_before < 2) {
                        slot.state = LinkState::Connecting;
                        decision.connect.push(i);
                    }
                }
                LinkState::Connecting | LinkState::Ready { .. } => {
                    if !is_active && !preferred && ready_before >= 2 {
                        slot.state = LinkState::Idle;
                        decision.close.push(i);
                    }
                }
            }
            match slot.state {
                LinkState::Ready { .. } => {
                    ready_before += 1;
                    hopeful_before += 1;
                }
                LinkState::Connecting => hopeful_before += 1,
                LinkState::Idle | LinkState::Down { .. } => {}
            }
        }
        decision
    }

    /// When [`Failover::decide`] may have something new to say without any event: the
    /// next reconnect or failback moment.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let active = self.active;
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| match slot.state {
                LinkState::Down { retry_at } => Some(retry_at),
                LinkState::Ready { since } if active.is_some_and(|a| i < a) => {
                    Some(later(since, self.failback_after))
                }
                _ => None,
            })
            .min()
    }

    fn is_ready(&self, pool: usize) -> bool {
        matches!(
            self.slots.get(pool).map(|s| s.state),
            Some(LinkState::Ready { .. })
        )
    }

    /// The active pool stays while ready, unless a more preferred pool has been ready for
    /// `failback_after`; without a ready active pool, the most preferred ready one.
    fn choose_active(&self, now: Instant) -> Option<usize> {
        match self.active.filter(|&a| self.is_ready(a)) {
            Some(a) => {
                let failback = (0..a).find(|&p| match self.slots.get(p).map(|s| s.state) {
                    Some(LinkState::Ready { since }) => {
                        now.saturating_duration_since(since) >= self.failback_after
                    }
                    _ => false,
                });
                Some(failback.unwrap_or(a))
            }
            None => {
                let first = (0..self.slots.len()).find(|&p| self.is_ready(p))?;
                let preferred_connecting = (0..first).any(|q| {
                    matches!(
                        self.slots.get(q).map(|s| s.state),
                        Some(LinkState::Connecting)
                    )
                });
                if !self.started && preferred_connecting {
                    return None;
                }
                Some(first)
            }
        }
    }
}

/// `at + by`, or a year on for durations past what `Instant` can hold (a configured
/// delay of 1e15 s must not panic).
fn later(at: Instant, by: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    at.checked_add(by.min(YEAR)).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn machine(pools: usize) -> Failover {
        Failover::new(
            pools,
            ms(250),
            Duration::from_secs(30),
            Duration::from_secs(10),
        )
    }

    #[test]
    fn starts_on_the_preferred_pool_and_fails_back_to_it() {
        let t0 = Instant::now();
        let mut f = machine(3);
        let d = f.decide(t0);
        assert_eq!(d.connect, [0, 1]);
        assert_eq!(d.switch, None);
        // The backup answers first, but the preferred pool is still connecting: wait.
        f.ready(1, t0 + ms(10));
        assert_eq!(f.decide(t0 + ms(10)).switch, None);
        f.ready(0, t0 + ms(20));
        let d = f.decide(t0 + ms(20));
        assert_eq!(
            d.switch,
            Some(Switch {
                from: None,
                to: Some(0)
            })
        );
        assert_eq!(f.backup(), Some(1));
        // Pool 0 drops and comes back: pool 1 serves until 0 has been healthy 10 s.
        f.down(0, t0 + ms(30), 1.0, None);
        let d = f.decide(t0 + ms(30));
        assert_eq!(d.switch.and_then(|s| s.to), Some(1));
        assert_eq!(d.connect, [2], "a new backup behind the new active pool");
        assert_eq!(f.decide(t0 + ms(280)).connect, [0]);
        f.ready(0, t0 + ms(300));
        let d = f.decide(t0 + ms(300));
        assert_eq!((d.switch, d.close), (None, vec![2]));
        let back = t0 + ms(300) + Duration::from_secs(10);
        assert_eq!(f.next_deadline(), Some(back));
        assert_eq!(f.decide(back - ms(1)).switch, None);
        let d = f.decide(back);
        assert_eq!(
            d.switch,
            Some(Switch {
                from: Some(1),
                to: Some(0)
            })
        );
        assert_eq!(f.backup(), Some(1));
    }

    #[test]
    fn reload_keeps_kept_pools_and_moves_off_a_removed_active_one() {
        let t0 = Instant::now();
        let mut f = machine(2);
        f.decide(t0);
        f.ready(0, t0);
        f.ready(1, t0);
        assert_eq!(f.decide(t0).switch.and_then(|s| s.to), Some(0));
        // Reordered, active kept: no switch, no new connection to the kept pools.
        let mut g = f.remap(
            &[Some(1), Some(0)],
            ms(250),
            Duration::from_secs(30),
            ms(10),
        );
        assert_eq!(g.active(), Some(1), "still the same pool, now second");
        let d = g.decide(t0 + ms(1));
        assert_eq!((d.switch, d.connect.len()), (None, 0), "{d:?}");
        // Failback follows the new order: the now-preferred pool takes over once it has
        // been ready for the (reloaded) failback_after.
        let d = g.decide(t0 + ms(20));
        assert_eq!(d.switch.and_then(|s| s.to), Some(0));

        // The active pool removed, a new one listed first: the ready survivor takes the
        // miners at once, the new preferred pool is connected and failed back to later.
        let mut h = f.remap(&[None, Some(1)], ms(250), Duration::from_secs(30), ms(10));
        assert_eq!(h.active(), None);
        let d = h.decide(t0 + ms(2));
        assert_eq!(
            d.switch,
            Some(Switch {
                from: None,
                to: Some(1)
            })
        );
        assert_eq!(d.connect, [0]);
        h.ready(0, t0 + ms(3));
        assert_eq!(h.decide(t0 + ms(13)).switch.and_then(|s| s.to), Some(0));

        // Every pool new: nothing is active until one is ready.
        let mut k = f.remap(&[None], ms(250), Duration::from_secs(30), ms(10));
        let d = k.decide(t0);
        assert_eq!((d.switch, d.connect), (None, vec![0]));
        k.ready(0, t0 + ms(1));
        assert_eq!(k.decide(t0 + ms(1)).switch.and_then(|s| s.to), Some(0));
    }

    #[test]
    fn absurd_delays_do_not_overflow() {
        let t0 = Instant::now();
        let mut f = Failover::new(1, Duration::MAX, Duration::MAX, Duration::MAX);
        f.decide(t0);
        f.down(0, t0, 1.0, None);
        f.down(0, t0, 1.0, Some(Duration::MAX));
        assert!(f.next_deadline().is_some_and(|at| at > t0));
        assert!(f.decide(t0).connect.is_empty());
    }

    #[test]
    fn at_start_a_failed_preferred_pool_does_not_hold_up_the_next() {
        let t0 = Instant::now();
        let mut f = machine(2);
        f.decide(t0);
        f.ready(1, t0);
        assert_eq!(f.decide(t0).switch, None);
        f.down(0, t0 + ms(5), 0.0, None);
        assert_eq!(f.decide(t0 + ms(5)).switch.and_then(|s| s.to), Some(1));
    }

    #[test]
    fn failure_switches_to_the_backup_at_once_and_opens_the_next() {
        let t0 = Instant::now();
        let mut f = machine(3);
        f.decide(t0);
        f.ready(0, t0);
        f.ready(1, t0);
        f.decide(t0);
        assert_eq!(f.active(), Some(0));
        let delay = f.down(0, t0 + ms(100), 1.0, None);
        assert_eq!(delay, ms(250));
        let d = f.decide(t0 + ms(100));
        assert_eq!(
            d.switch,
            Some(Switch {
                from: Some(0),
                to: Some(1)
            })
        );
        assert_eq!(d.connect, [2], "a new backup is brought up");
        // Pool 0 retries when its back-off is over, even though two pools are up.
        f.ready(2, t0 + ms(200));
        assert_eq!(f.decide(t0 + ms(300)).connect, Vec::<usize>::new());
        assert_eq!(f.next_deadline(), Some(t0 + ms(350)));
        assert_eq!(f.decide(t0 + ms(350)).connect, [0]);
        // When it is ready again, pool 2 is not needed any more.
        f.ready(0, t0 + ms(400));
        let d = f.decide(t0 + ms(400));
        assert_eq!(d.close, [2]);
        assert_eq!(f.state(2), Some(LinkState::Idle));
        assert_eq!(f.active(), Some(1), "no failback before failback_after");
    }

    #[test]
    fn repeated_failures_back_off_and_a_healthy_spell_resets() {
        let t0 = Instant::now();
        let mut f = machine(1);
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..4 {
            assert_eq!(f.decide(now).connect, [0]);
            let d = f.down(0, now, 1.0, None);
            delays.push(d);
            assert!(f.decide(now).connect.is_empty(), "not before retry_at");
            now += d;
        }
        assert_eq!(delays, [ms(250), ms(500), ms(1000), ms(2000)]);
        assert_eq!(f.decide(now).connect, [0]);
        f.ready(0, now);
        // Healthy for failback_after, then a drop: the back-off starts over.
        let later = now + Duration::from_secs(10);
        assert_eq!(f.down(0, later, 1.0, None), ms(250));
        // A pool-requested reconnect waits what the pool said.
        f.decide(later + ms(250));
        assert_eq!(f.down(0, later, 1.0, Some(ms(5))), ms(5));
    }

    #[test]
    fn no_ready_pool_means_no_active_pool() {
        let t0 = Instant::now();
        let mut f = machine(2);
        f.decide(t0);
        f.ready(0, t0);
        f.decide(t0);
        f.down(0, t0, 0.0, None);
        f.down(1, t0, 0.0, None);
        let d = f.decide(t0);
        assert_eq!(
            d.switch,
            Some(Switch {
                from: Some(0),
                to: None
            })
        );
        assert_eq!(f.active(), None);
        assert_eq!(f.decide(t0 + ms(250)).connect, [0, 1]);
    }

    #[test]
    fn active_beyond_the_first_two_keeps_its_backup() {
        let t0 = Instant::now();
        let mut f = machine(4);
        f.decide(t0);
        f.down(0, t0, 0.0, Some(Duration::from_secs(60)));
        f.down(1, t0, 0.0, Some(Duration::from_secs(60)));
        assert_eq!(f.decide(t0).connect, [2, 3]);
        f.ready(2, t0);
        f.ready(3, t0);
        f.decide(t0);
        assert_eq!((f.active(), f.backup()), (Some(2), Some(3)));
        // The preferred pools retry; while they only connect, the backup stays.
        let retry = t0 + Duration::from_secs(60);
        let d = f.decide(retry);
        assert_eq!(d.connect, [0, 1]);
        assert!(d.close.is_empty());
    }
}
