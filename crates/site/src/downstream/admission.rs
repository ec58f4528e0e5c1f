//! Admission of connections that have not authorized yet.
//!
//! The connection cap alone let an attacker who reconnects every few seconds hold every
//! slot with connections that never authorize, keeping real miners out. Connections
//! before `mining.authorize` therefore get a budget of their own, smaller than the cap:
//!
//! | rule | default | effect |
//! |---|---|---|
//! | per source address | `proxy.max_unauthorized_per_source` (256) | one host (or one NAT) cannot take more |
//! | in total | `proxy.max_unauthorized` (half of `max_connections`) | the other half stays for miners that authorize |
//! | under pressure (over half that total) | `proxy.setup_timeout_under_pressure_secs` (2 s) | a new connection must authorize sooner, so slots turn over fast |
//!
//! A refused connection is closed at once and counted by reason. A miner that authorizes
//! leaves the budget; the cap over all connections still holds it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Budget settings, from `[proxy]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AdmissionLimits {
    /// Unauthorized connections one source address may hold.
    pub per_source: usize,
    /// Unauthorized connections over all sources.
    pub total: usize,
    /// The setup deadline while not under pressure.
    pub setup_timeout: Duration,
    /// The setup deadline once more than half of `total` is in use.
    pub setup_timeout_under_pressure: Duration,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its source address holds its whole share already.
    PerSource,
    /// Unauthorized connections hold the whole budget.
    Total,
}

impl Refusal {
    /// Metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Refusal::PerSource => "unauthorized_per_source",
            Refusal::Total => "unauthorized_total",
        }
    }
}

/// The books: unauthorized connections per source and in total.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: AdmissionLimits,
    /// Per source address; an entry is removed when its count drops to zero, so the map
    /// is bounded by the connections it counts.
    by_source: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted, not yet authorized connection; dropping it (on authorize or on close)
/// gives its place back.
#[derive(Debug)]
pub(crate) struct Unauthorized {
    admission: Arc<Admission>,
    source: IpAddr,
}

impl Admission {
    /// Empty books under `limits`.
    pub(crate) fn new(limits: AdmissionLimits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            by_source: Mutex::new(HashMap::new()),
        })
    }

    /// Admits a new connection from `source`, with the setup deadline it gets.
    pub(crate) fn admit(
        self: &Arc<Self>,
        source: IpAddr,
    ) -> Result<(Unauthorized, Duration), Refusal> {
        let mut books = self.lock();
        let total: usize = books.values().sum();
        if total >= self.limits.total {
            return Err(Refusal::Total);
        }
        let mine = books.entry(source).or_insert(0);
        if *mine >= self.limits.per_source {
            return Err(Refusal::PerSource);
        }
        *mine += 1;
        let pressed = (total + 1) * 2 > self.limits.total;
        let deadline = if pressed {
            self.limits
                .setup_timeout_under_pressure
                .min(self.limits.setup_timeout)
        } else {
            self.limits.setup_timeout
        };
        drop(books);
        Ok((
            Unauthorized {
                admission: Arc::clone(self),
                source,
            },
            deadline,
        ))
    }

    /// Unauthorized connections now, in total.
    #[cfg(test)]
    pub(crate) fn unauthorized(&self) -> usize {
        self.lock().values().sum()
    }

    fn release(&self, source: IpAddr) {
        let mut books = self.lock();
        if let Some(count) = books.get_mut(&source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                books.remove(&source);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Every update is one step, so a poisoned lock still holds consistent counts.
        self.by_source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Unauthorized {
    fn drop(&mut self) {
        self.admission.release(self.source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_source: usize, total: usize) -> AdmissionLimits {
        AdmissionLimits {
            per_source,
            total,
            setup_timeout: Duration::from_secs(10),
            setup_timeout_under_pressure: Duration::from_secs(2),
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn one_source_cannot_take_more_than_its_share() {
        let a = Admission::new(limits(3, 100));
        let held: Vec<_> = (0..3).map(|_| a.admit(ip(1)).unwrap()).collect();
        assert_eq!(a.admit(ip(1)).unwrap_err(), Refusal::PerSource);
        assert!(a.admit(ip(2)).is_ok(), "another source is still welcome");
        drop(held);
        assert!(
            a.admit(ip(1)).is_ok(),
            "places come back when connections go"
        );
    }

    #[test]
    fn the_total_leaves_room_and_pressure_shortens_the_deadline() {
        let a = Admission::new(limits(100, 4));
        let (first, d1) = a.admit(ip(1)).unwrap();
        let (second, d2) = a.admit(ip(2)).unwrap();
        assert_eq!((d1, d2), (Duration::from_secs(10), Duration::from_secs(10)));
        let (third, d3) = a.admit(ip(3)).unwrap();
        assert_eq!(d3, Duration::from_secs(2), "over half the budget: pressed");
        let fourth = a.admit(ip(4)).unwrap();
        assert_eq!(a.admit(ip(5)).unwrap_err(), Refusal::Total);
        assert_eq!(a.unauthorized(), 4);
        drop((first, second, third, fourth));
        assert_eq!(a.unauthorized(), 0);
        assert!(a.lock().is_empty(), "no entry kept for sources that left");
    }
}
