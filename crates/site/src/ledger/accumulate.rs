//! What the ledger has gathered since it last wrote: this boot's figures per hour, built
//! from counter snapshots and the power driver's readings. Pure: time comes in as Unix
//! milliseconds, so the tests need no clock.
//!
//! Shares are never counted here one by one: every flush reads the totals the stats
//! registry already keeps per worker and adds the difference since the previous flush to
//! the hour that difference ended in. Energy is the trapezoid between two consecutive
//! driver readings, split at hour boundaries by linear interpolation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::stats::MinerTotals;

const MS_PER_HOUR: i64 = 3_600_000;
/// Hashes per unit of share difficulty.
const HASHES_PER_DIFFICULTY: f64 = 4_294_967_296.0;
const MS_PER_MIN: f64 = 60_000.0;
/// Watt-milliseconds in a kilowatt-hour.
const WMS_PER_KWH: f64 = 3.6e9;

/// The start of the hour holding `at_ms`, in Unix seconds.
pub fn hour_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(MS_PER_HOUR) * 3600
}

/// Why a miner was asleep, as the ledger buckets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SleepReason {
    /// The container's power budget (over budget, or a sleep still unconfirmed).
    Power,
    /// Inlet temperature.
    Temperature,
    /// Cost above revenue (the economics rule).
    Economic,
    /// A pin (`keep_off`, `maintenance`).
    Manual,
    /// Asleep for a reason this boot did not see (asleep before it started).
    Other,
}

impl SleepReason {
    /// Every reason, in column order.
    pub const ALL: [SleepReason; 5] = [
        SleepReason::Power,
        SleepReason::Temperature,
        SleepReason::Economic,
        SleepReason::Manual,
        SleepReason::Other,
    ];

    /// The bucket of a controller sleep decision's reason label; `None` for a retried
    /// sleep (`sleep_not_confirmed`), which keeps the reason of the sleep it retries.
    pub fn from_decision(label: &str) -> Option<SleepReason> {
        Some(match label {
            "sleep_not_confirmed" => return None,
            "over_budget" => SleepReason::Power,
            "over_temperature" => SleepReason::Temperature,
            "pinned_off" | "maintenance" | "manual" => SleepReason::Manual,
            // The economics rule's sleep is `uneconomic`; `economic` is its kind.
            "uneconomic" | "economic" => SleepReason::Economic,
            _ => SleepReason::Other,
        })
    }
}

/// What a miner was doing at a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinerPhase {
    /// Its API says it mines.
    Awake,
    /// Its API says it sleeps or idles.
    Asleep(SleepReason),
    /// Its API did not answer.
    Unreachable,
    /// Not polled yet: the interval is not counted.
    Unknown,
}

/// One inventory miner at one driver reading.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerReading {
    /// Where its row goes.
    pub place: Placement,
    /// Power, W: measured, or the nameplate figure when `estimated`.
    pub watts: Option<f64>,
    /// `watts` is the controller's nameplate figure, not a reading.
    pub estimated: bool,
    /// What it was doing.
    pub phase: MinerPhase,
}

/// One container at one driver reading.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerReading {
    /// Container name.
    pub name: Arc<str>,
    /// The feed meter's figure, W, when the meter was read and believed.
    pub metered_watts: Option<f64>,
    /// The IT meter's (rack PDUs) figure, W, when one is configured and fresh.
    pub it_meter_watts: Option<f64>,
    /// Fans and pump running, W, as the climate control reports them; none without
    /// `[climate]`.
    pub aux_watts: Option<f64>,
    /// Hottest inlet, °C.
    pub inlet_c: Option<f64>,
}

/// Everything one driver tick read.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerSample {
    /// When the tick ran, Unix ms.
    pub at_ms: i64,
    /// Inventory miners.
    pub miners: Vec<MinerReading>,
    /// Containers.
    pub containers: Vec<ContainerReading>,
}

/// Which ledger row a worker's or a miner's figures go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Inventory id, or the worker name of a miner not in the inventory.
    pub miner: Arc<str>,
    /// Its container, if in the inventory.
    pub container: Option<Arc<str>>,
    /// Its customer tag, if any.
    pub customer: Option<Arc<str>>,
}

/// This boot's figures for one miner in one hour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MinerHour {
    /// Container at the last update.
    pub container: Option<Arc<str>>,
    /// Customer at the last update.
    pub customer: Option<Arc<str>>,
    /// Share counters added this hour.
    pub shares: MinerTotals,
    /// Energy integrated from readings, kWh; none without any.
    pub energy_kwh: Option<f64>,
    /// The part of `energy_kwh` that rests on a nameplate figure.
    pub energy_estimated_kwh: Option<f64>,
    /// Minutes mining.
    pub awake_min: f64,
    /// Minutes asleep, by [`SleepReason::ALL`].
    pub asleep_min: [f64; 5],
    /// Minutes its API did not answer.
    pub unreachable_min: f64,
    dirty: bool,
}

/// This boot's figures for one container in one hour.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerHour {
    /// Energy through the feed meter, kWh; none without readings.
    pub metered_kwh: Option<f64>,
    /// Minutes the meter covered.
    pub metered_min: f64,
    /// Energy through the IT meter, kWh; none without one.
    pub it_meter_kwh: Option<f64>,
    /// Energy of the fans and pump, kWh; none without climate control.
    pub fan_pump_kwh: Option<f64>,
    /// Σ inlet readings, °C (the mean is this over `inlet_samples`).
    pub inlet_c_sum: f64,
    /// Inlet readings.
    pub inlet_samples: u64,
    /// Expected revenue of its miners' work, in the economics' currency; none until priced.
    pub revenue: Option<f64>,
    /// Cost of its miners' energy at the tariff and PUE in force; none until priced.
    pub cost: Option<f64>,
    /// Hashes and kWh of this boot's hour already priced into `revenue` and `cost`.
    priced: (f64, f64),
    dirty: bool,
}

/// Prices work and energy as they are added (the site's economics): each flush prices
/// what the hour gained since the last one at the figures in force then.
pub trait Pricer {
    /// Expected revenue of `hashes` share-proven hashes; `None` without a price or a job.
    fn revenue(&self, hashes: f64) -> Option<f64>;
    /// Cost of `it_kwh` of miner energy in `container`; `None` when no tariff prices it.
    fn cost(&self, container: &str, it_kwh: f64) -> Option<f64>;
}

/// Rows to write: this boot's absolute figures for every hour that changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// (hour, miner, figures).
    pub miners: Vec<(i64, Arc<str>, MinerHour)>,
    /// (hour, container, figures).
    pub containers: Vec<(i64, Arc<str>, ContainerHour)>,
    /// Lifetime running time of climate devices whose figure changed.
    pub device_runs: Vec<DeviceRun>,
}

impl Batch {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.miners.is_empty() && self.containers.is_empty() && self.device_runs.is_empty()
    }
}

/// A climate device's running time over every boot: what the ledger seeds the climate
/// controller with at start-up, so rotation by run hours does not restart from zero.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRun {
    /// Container name.
    pub container: Arc<str>,
    /// Fan bank name, or `pump`.
    pub device: Arc<str>,
    /// Running seconds.
    pub run_secs: f64,
}

/// This boot's hours, kept until written and no longer reachable by a late reading.
#[derive(Debug)]
pub struct Accumulator {
    miners: BTreeMap<(i64, Arc<str>), MinerHour>,
    containers: BTreeMap<(i64, Arc<str>), ContainerHour>,
    /// Per worker, the registry totals at the previous flush (all zero at boot, as the
    /// registry's are).
    last_totals: HashMap<String, MinerTotals>,
    last_power: Option<PowerSample>,
    /// Two readings further apart than this are not joined: nothing is known between them.
    max_gap_ms: i64,
}

fn sub_all<const N: usize>(a: &[u64; N], b: &[u64; N]) -> [u64; N] {
    std::array::from_fn(|i| a[i].saturating_sub(b[i]))
}

/// `cur − last`, never below zero.
fn minus(cur: &MinerTotals, last: &MinerTotals) -> MinerTotals {
    MinerTotals {
        accepted: cur.accepted.saturating_sub(last.accepted),
        accepted_difficulty: (cur.accepted_difficulty - last.accepted_difficulty).max(0.0),
        rejected: sub_all(&cur.rejected, &last.rejected),
        pool_accepted: cur.pool_accepted.saturating_sub(last.pool_accepted),
        pool_rejected: sub_all(&cur.pool_rejected, &last.pool_rejected),
        undelivered: sub_all(&cur.undelivered, &last.undelivered),
        blocks: cur.blocks.saturating_sub(last.blocks),
    }
}

/// A container's power series integrated into its hour.
#[derive(Debug, Clone, Copy)]
enum Series {
    Feed,
    ItMeter,
    FanPump,
}

/// The pieces of `[t0, t1)` in each hour: (hour, from, to), Unix ms.
fn pieces(t0: i64, t1: i64) -> impl Iterator<Item = (i64, i64, i64)> {
    let mut at = t0;
    std::iter::from_fn(move || {
        if at >= t1 {
            return None;
        }
        let end = ((at.div_euclid(MS_PER_HOUR) + 1) * MS_PER_HOUR).min(t1);
        let piece = (hour_of(at), at, end);
        at = end;
        Some(piece)
    })
}

/// Watt-milliseconds between `a` and `b` of a reading that went linearly from `w0` at `t0`
/// to `w1` at `t1`.
fn trapezoid(t0: i64, w0: f64, t1: i64, w1: f64, a: i64, b: i64) -> f64 {
    let span = (t1 - t0) as f64;
    let w = |t: i64| w0 + (w1 - w0) * (t - t0) as f64 / span;
    (w(a) + w(b)) / 2.0 * (b - a) as f64
}

impl Accumulator {
    /// Empty, joining readings at most `max_gap` apart.
    pub fn new(max_gap: Duration) -> Accumulator {
        Accumulator {
            miners: BTreeMap::new(),
            containers: BTreeMap::new(),
            last_totals: HashMap::new(),
            last_power: None,
            max_gap_ms: i64::try_from(max_gap.as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn miner(&mut self, hour: i64, place: &Placement) -> &mut MinerHour {
        let row = self.miners.entry((hour, place.miner.clone())).or_default();
        row.container.clone_from(&place.container);
        row.customer.clone_from(&place.customer);
        row.dirty = true;
        row
    }

    fn container(&mut self, hour: i64, name: &Arc<str>) -> &mut ContainerHour {
        let row = self.containers.entry((hour, name.clone())).or_default();
        row.dirty = true;
        row
    }

    /// Takes the registry's per-worker totals at `at_ms` and adds what grew since the last
    /// call to the hour that ends the interval (a flush at exactly the hour's end belongs
    /// to the hour ending).
    pub fn add_shares(
        &mut self,
        at_ms: i64,
        workers: impl IntoIterator<Item = (String, Placement, MinerTotals)>,
    ) {
        let hour = hour_of(at_ms - 1);
        for (worker, place, totals) in workers {
            let last = self.last_totals.get(&worker).copied().unwrap_or_default();
            let delta = minus(&totals, &last);
            if delta != MinerTotals::default() {
                self.miner(hour, &place).shares.add(&delta);
            }
            self.last_totals.insert(worker, totals);
        }
    }

    /// Takes one driver reading: integrates energy and minutes since the previous one (in
    /// the state the previous one saw) and records the inlet temperature.
    pub fn add_power(&mut self, sample: PowerSample) {
        let previous = self.last_power.take();
        if let Some(prev) = &previous {
            if sample.at_ms == prev.at_ms {
                // The same tick read twice.
                self.last_power = previous;
                return;
            }
            // A clock stepped back starts afresh from the new reading: nothing is known
            // between the two.
            if sample.at_ms > prev.at_ms && sample.at_ms - prev.at_ms <= self.max_gap_ms {
                self.integrate(prev, &sample);
            }
        }
        for c in &sample.containers {
            if let Some(t) = c.inlet_c.filter(|t| t.is_finite()) {
                let row = self.container(hour_of(sample.at_ms), &c.name);
                row.inlet_c_sum += t;
                row.inlet_samples += 1;
            }
        }
        self.last_power = Some(sample);
    }

    fn integrate(&mut self, prev: &PowerSample, next: &PowerSample) {
        let (t0, t1) = (prev.at_ms, next.at_ms);
        for m1 in &next.miners {
            let Some(m0) = prev.miners.iter().find(|m| m.place.miner == m1.place.miner) else {
                continue;
            };
            let energy = match (m0.watts, m1.watts) {
                (Some(w0), Some(w1)) if w0.is_finite() && w1.is_finite() => {
                    Some((w0.max(0.0), w1.max(0.0), m0.estimated || m1.estimated))
                }
                _ => None,
            };
            for (hour, a, b) in pieces(t0, t1) {
                let minutes = (b - a) as f64 / MS_PER_MIN;
                let row = self.miner(hour, &m1.place);
                match m0.phase {
                    MinerPhase::Awake => row.awake_min += minutes,
                    MinerPhase::Asleep(r) => row.asleep_min[r as usize] += minutes,
                    MinerPhase::Unreachable => row.unreachable_min += minutes,
                    MinerPhase::Unknown => {}
                }
                if let Some((w0, w1, estimated)) = energy {
                    let kwh = trapezoid(t0, w0, t1, w1, a, b) / WMS_PER_KWH;
                    *row.energy_kwh.get_or_insert(0.0) += kwh;
                    let est = row.energy_estimated_kwh.get_or_insert(0.0);
                    if estimated {
                        *est += kwh;
                    }
                }
            }
        }
        for c1 in &next.containers {
            let Some(c0) = prev.containers.iter().find(|c| c.name == c1.name) else {
                continue;
            };
            let series: [(Option<f64>, Option<f64>, Series); 3] = [
                (c0.metered_watts, c1.metered_watts, Series::Feed),
                (c0.it_meter_watts, c1.it_meter_watts, Series::ItMeter),
                (c0.aux_watts, c1.aux_watts, Series::FanPump),
            ];
            for (w0, w1, which) in series {
                let (Some(w0), Some(w1)) = (w0, w1) else {
                    continue;
                };
                if !(w0.is_finite() && w1.is_finite()) {
                    continue;
                }
                for (hour, a, b) in pieces(t0, t1) {
                    let kwh = trapezoid(t0, w0.max(0.0), t1, w1.max(0.0), a, b) / WMS_PER_KWH;
                    let row = self.container(hour, &c1.name);
                    match which {
                        Series::Feed => {
                            *row.metered_kwh.get_or_insert(0.0) += kwh;
                            row.metered_min += (b - a) as f64 / MS_PER_MIN;
                        }
                        Series::ItMeter => *row.it_meter_kwh.get_or_insert(0.0) += kwh,
                        Series::FanPump => *row.fan_pump_kwh.get_or_insert(0.0) += kwh,
                    }
                }
            }
        }
    }

    /// Prices what each container's hours gained since the last call: its miners' work
    /// (Σ accepted difficulty × 2³²) as revenue and their energy as cost. What cannot be
    /// priced yet (no price, no job) stays unpriced and is priced by a later call.
    pub fn price(&mut self, pricer: &dyn Pricer) {
        let mut totals: BTreeMap<(i64, Arc<str>), (f64, f64)> = BTreeMap::new();
        for ((hour, _), row) in &self.miners {
            if let Some(container) = &row.container {
                let t = totals.entry((*hour, container.clone())).or_default();
                t.0 += row.shares.accepted_difficulty * HASHES_PER_DIFFICULTY;
                t.1 += row.energy_kwh.unwrap_or(0.0);
            }
        }
        for ((hour, container), (hashes, kwh)) in totals {
            let (priced_hashes, priced_kwh) = self
                .containers
                .get(&(hour, container.clone()))
                .map_or((0.0, 0.0), |c| c.priced);
            let revenue = (hashes > priced_hashes)
                .then(|| pricer.revenue(hashes - priced_hashes))
                .flatten();
            let cost = (kwh > priced_kwh)
                .then(|| pricer.cost(&container, kwh - priced_kwh))
                .flatten();
            if revenue.is_none() && cost.is_none() {
                continue;
            }
            let row = self.container(hour, &container);
            if let Some(r) = revenue {
                *row.revenue.get_or_insert(0.0) += r;
                row.priced.0 = hashes;
            }
            if let Some(c) = cost {
                *row.cost.get_or_insert(0.0) += c;
                row.priced.1 = kwh;
            }
        }
    }

    /// The rows changed since the last [`Accumulator::written`], with this boot's
    /// absolute figures for their hours.
    pub fn pending(&self) -> Batch {
        Batch {
            miners: self
                .miners
                .iter()
                .filter(|(_, r)| r.dirty)
                .map(|((h, m), r)| (*h, m.clone(), r.clone()))
                .collect(),
            containers: self
                .containers
                .iter()
                .filter(|(_, r)| r.dirty)
                .map(|((h, c), r)| (*h, c.clone(), r.clone()))
                .collect(),
            device_runs: Vec::new(),
        }
    }

    /// Marks everything written and forgets hours before the previous one: a reading can
    /// still reach back into the previous hour (the interval that crosses its end), never
    /// further, and a forgotten hour's rows must never be rewritten from a partial figure.
    pub fn written(&mut self, now_ms: i64) {
        let keep_from = hour_of(now_ms) - 3600;
        self.miners.retain(|(h, _), _| *h >= keep_from);
        self.containers.retain(|(h, _), _| *h >= keep_from);
        self.miners.values_mut().for_each(|r| r.dirty = false);
        self.containers.values_mut().for_each(|r| r.dirty = false);
    }
}
