//! The site's ledger task: reads the power driver's view at every driver tick, and at every
//! flush interval reads the stats registry's per-worker totals and writes what changed in
//! one transaction on a blocking thread. Nothing here touches a miner session.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::accumulate::{
    Accumulator, ContainerReading, DeviceRun, MinerPhase, MinerReading, Placement, PowerSample,
    Pricer, SleepReason, hour_of,
};
use super::store::Store;
use super::{LedgerConfig, LedgerError};
use crate::economics::Economics;
use crate::power::driver::Observed;
use crate::power::inventory::PowerConfig;
use crate::power::pue::{FacilitySource, ItSource};
use crate::power::{PowerHandle, PowerStatus};
use crate::ratelog::{RateLimitedLog, Verdict};
use crate::stats::{MinerTotals, Registry};

/// Gauge: the current hour's energy per container, J, by `source` (`miners`, `meter`).
pub const HOUR_ENERGY: &str = "hashgate_ledger_hour_energy_joules";
/// Gauge: the current hour's share-proven work per container, hashes.
pub const HOUR_WORK: &str = "hashgate_ledger_hour_work_hashes";
/// Counter: ledger flushes by `result` (`ok`, `error`).
pub const FLUSHES: &str = "hashgate_ledger_flushes_total";
/// Container label of miners outside the inventory.
pub const NO_CONTAINER: &str = "_none";

/// Flush requests waiting at most: a test or shutdown asks for one at a time.
const REQUESTS: usize = 4;

/// Talks to the running ledger task.
#[derive(Debug, Clone)]
pub struct LedgerHandle {
    path: PathBuf,
    requests: mpsc::Sender<oneshot::Sender<Result<(), String>>>,
}

impl LedgerHandle {
    /// The SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes now (as the interval would) and waits for the transaction.
    ///
    /// # Errors
    /// Why the write failed, or that the task has stopped.
    pub async fn flush(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(tx)
            .await
            .map_err(|_| LedgerError::Stopped.to_string())?;
        rx.await.map_err(|_| LedgerError::Stopped.to_string())?
    }
}

/// Which row each worker name and inventory miner goes to.
#[derive(Debug, Default)]
struct Placements {
    by_worker: HashMap<String, Placement>,
    by_id: HashMap<String, Placement>,
}

impl Placements {
    fn new(power: Option<&PowerConfig>) -> Placements {
        let mut out = Placements::default();
        for m in power.map(|p| p.miners.as_slice()).unwrap_or_default() {
            let place = Placement {
                miner: m.id.clone(),
                container: power
                    .and_then(|p| p.containers.get(m.container))
                    .map(|c| c.name.clone()),
                customer: m.customer.as_deref().map(Arc::from),
            };
            if let Some(w) = &m.worker {
                out.by_worker.insert(w.clone(), place.clone());
            }
            out.by_id.insert(m.id.to_string(), place);
        }
        out
    }

    /// A worker's row: the inventory miner whose `worker` (or, failing that, id) it is,
    /// else a row of its own under its name.
    fn of_worker(&self, worker: &str) -> Placement {
        self.by_worker
            .get(worker)
            .or_else(|| self.by_id.get(worker))
            .cloned()
            .unwrap_or_else(|| Placement {
                miner: Arc::from(worker),
                container: None,
                customer: None,
            })
    }
}

/// Per worker name, the totals of its live connections and departed ones.
fn worker_totals(registry: &Registry) -> HashMap<String, MinerTotals> {
    registry.view(Instant::now(), |live, departed| {
        let mut out: HashMap<String, MinerTotals> = departed
            .by_worker
            .iter()
            .map(|(w, d)| (w.clone(), d.totals))
            .collect();
        for (_, snap) in live {
            if let Some(identity) = &snap.identity {
                out.entry(identity.worker.clone())
                    .or_default()
                    .add(&snap.totals);
            }
        }
        out
    })
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Turns the driver's view into a reading, remembering why each miner was put to sleep.
#[derive(Debug, Default)]
struct PowerReader {
    last_tick: u64,
    seen_decisions_ms: u64,
    reasons: HashMap<String, SleepReason>,
    /// Per (container, device), the latest lifetime run seconds the climate reported, and
    /// whether it changed since the last flush.
    runs: HashMap<(Arc<str>, Arc<str>), (f64, bool)>,
}

impl PowerReader {
    /// Remembers each climate device's run seconds (the controller's figure is already
    /// the lifetime one: it was seeded from the ledger).
    fn read_runs(&mut self, status: &PowerStatus) {
        for c in &status.containers {
            let Some(k) = &c.climate else { continue };
            let devices = k
                .fans
                .iter()
                .map(|f| (f.name.as_str(), f.run_hours))
                .chain(k.pump.as_ref().map(|p| ("pump", p.run_hours)));
            for (device, hours) in devices {
                let secs = hours * 3600.0;
                let key = (Arc::from(c.name.as_str()), Arc::from(device));
                let slot = self.runs.entry(key).or_insert((-1.0, false));
                if secs > slot.0 {
                    *slot = (secs, true);
                }
            }
        }
    }

    /// The device figures changed since the last flush.
    fn pending_runs(&self) -> Vec<DeviceRun> {
        self.runs
            .iter()
            .filter(|(_, (_, dirty))| *dirty)
            .map(|((container, device), (secs, _))| DeviceRun {
                container: container.clone(),
                device: device.clone(),
                run_secs: *secs,
            })
            .collect()
    }

    fn runs_written(&mut self) {
        self.runs.values_mut().for_each(|(_, dirty)| *dirty = false);
    }

    fn read(&mut self, status: &PowerStatus, places: &Placements) -> Option<PowerSample> {
        let at_ms = status.last_tick_unix_ms?;
        if status.ticks == self.last_tick {
            return None;
        }
        self.last_tick = status.ticks;
        self.read_runs(status);
        for d in &status.recent_decisions {
            if d.at_unix_ms <= self.seen_decisions_ms || d.action != "sleep" {
                continue;
            }
            if let Some(miner) = &d.miner {
                match SleepReason::from_decision(d.reason) {
                    Some(reason) => {
                        self.reasons.insert(miner.clone(), reason);
                    }
                    None => {
                        self.reasons
                            .entry(miner.clone())
                            .or_insert(SleepReason::Other);
                    }
                }
            }
        }
        if let Some(newest) = status.recent_decisions.iter().map(|d| d.at_unix_ms).max() {
            self.seen_decisions_ms = self.seen_decisions_ms.max(newest);
        }
        let miners = status
            .miners
            .iter()
            .map(|m| {
                let asleep = match m.pin {
                    Some("keep_off" | "maintenance") => SleepReason::Manual,
                    _ => self
                        .reasons
                        .get(&m.id)
                        .copied()
                        .unwrap_or(SleepReason::Other),
                };
                let phase = match m.observed {
                    Observed::Mining => MinerPhase::Awake,
                    Observed::Sleeping | Observed::Idle => MinerPhase::Asleep(asleep),
                    Observed::NoAnswer => MinerPhase::Unreachable,
                    Observed::Unknown => MinerPhase::Unknown,
                };
                // A reading the controller believed is measured; anything it counted at
                // nameplate (no answer, implausible, ramping) is an estimate.
                let (watts, estimated) = match m.counted {
                    Some("telemetry") => (m.reported_watts.or(m.counted_watts), false),
                    _ => (m.counted_watts, true),
                };
                MinerReading {
                    place: places
                        .by_id
                        .get(&m.id)
                        .cloned()
                        .unwrap_or_else(|| Placement {
                            miner: Arc::from(m.id.as_str()),
                            container: Some(Arc::from(m.container.as_str())),
                            customer: None,
                        }),
                    watts,
                    estimated,
                    phase,
                }
            })
            .collect();
        let containers = status
            .containers
            .iter()
            .map(|c| ContainerReading {
                name: Arc::from(c.name.as_str()),
                // The PUE inputs carry the meters' own figures; the load figure does
                // not (with a meter it adds the ramp of miners just woken).
                metered_watts: match c.pue.facility_source {
                    Some(FacilitySource::Meter) => c.pue.facility_watts,
                    _ => None,
                },
                it_meter_watts: match c.pue.it_source {
                    Some(ItSource::ItMeter) => c.pue.it_watts,
                    _ => None,
                },
                aux_watts: c.climate.as_ref().map(|k| k.aux_watts),
                inlet_c: c.inlet_c,
            })
            .collect();
        Some(PowerSample {
            at_ms: i64::try_from(at_ms).unwrap_or(i64::MAX),
            miners,
            containers,
        })
    }
}

/// The site's economics at one flush.
struct SitePricer<'a> {
    economics: &'a Economics,
    now: Instant,
    wall: SystemTime,
}

impl Pricer for SitePricer<'_> {
    fn revenue(&self, hashes: f64) -> Option<f64> {
        self.economics.revenue_of_hashes(hashes, self.now)
    }

    fn cost(&self, container: &str, it_kwh: f64) -> Option<f64> {
        self.economics.cost_of_energy(container, it_kwh, self.wall)
    }
}

struct Task {
    config: LedgerConfig,
    store: Arc<Mutex<Store>>,
    acc: Accumulator,
    registry: Arc<Registry>,
    power: Option<PowerHandle>,
    places: Placements,
    /// Prices each flush's work and energy into revenue and cost, when configured.
    economics: Option<Arc<Economics>>,
    reader: PowerReader,
    last_prune_hour: i64,
    errors: RateLimitedLog,
}

/// Opens the ledger and starts its task; it flushes a last time when `stop` is cancelled.
///
/// # Errors
/// Opening the file ([`LedgerError::Open`], [`LedgerError::NoWal`],
/// [`LedgerError::NewerSchema`]), before anything is started.
pub fn spawn(
    config: LedgerConfig,
    registry: Arc<Registry>,
    power: Option<(PowerHandle, &PowerConfig)>,
    economics: Option<Arc<Economics>>,
    stop: CancellationToken,
) -> Result<(LedgerHandle, JoinHandle<()>), LedgerError> {
    let now_ms = unix_ms(SystemTime::now());
    let mut store = Store::open(&config.path, now_ms / 1000)?;
    let retention = i64::from(config.retention_days) * 86_400;
    let pruned = store.prune(hour_of(now_ms) - retention)?;
    tracing::info!(path = %config.path.display(), boot = store.boot(), pruned, "ledger open");
    if let Some((handle, _)) = &power {
        seed_climate(handle, &store.device_runs()?);
    }
    let tick = power
        .as_ref()
        .map(|(_, p)| p.driver.tick)
        .unwrap_or(Duration::from_secs(5));
    // Readings further apart than a few missed ticks are not joined; never near an hour,
    // which the accumulator's bookkeeping relies on.
    let max_gap = (tick * 4).clamp(Duration::from_secs(10), Duration::from_secs(1800));
    let (requests, rx) = mpsc::channel(REQUESTS);
    let handle = LedgerHandle {
        path: config.path.clone(),
        requests,
    };
    let task = Task {
        places: Placements::new(power.as_ref().map(|(_, p)| *p)),
        power: power.map(|(h, _)| h),
        store: Arc::new(Mutex::new(store)),
        acc: Accumulator::new(max_gap),
        registry,
        economics,
        reader: PowerReader::default(),
        last_prune_hour: hour_of(now_ms),
        errors: RateLimitedLog::new(Duration::from_secs(60)),
        config,
    };
    let join = tokio::spawn(task.run(tick, rx, stop));
    Ok((handle, join))
}

/// Gives the climate controller the run seconds earlier boots recorded, before its first
/// tick. A device no longer configured (renamed, removed) keeps its row and is named in
/// the log once.
fn seed_climate(power: &PowerHandle, runs: &[DeviceRun]) {
    let mut seeded = 0;
    for run in runs {
        match power.add_climate_prior_run(&run.container, &run.device, run.run_secs) {
            Ok(()) => seeded += 1,
            Err(error) => {
                tracing::info!(%error, "ledger: a recorded climate device's run hours are not used");
            }
        }
    }
    if seeded > 0 {
        tracing::info!(devices = seeded, "ledger: climate run hours restored");
    }
}

impl Task {
    async fn run(
        mut self,
        tick: Duration,
        mut requests: mpsc::Receiver<oneshot::Sender<Result<(), String>>>,
        stop: CancellationToken,
    ) {
        let mut flush = tokio::time::interval(self.config.flush);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        flush.tick().await;
        let mut sample = tokio::time::interval(tick);
        sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                Some(reply) = requests.recv() => {
                    self.sample();
                    let result = self.flush().await;
                    let _ = reply.send(result);
                }
                _ = flush.tick() => {
                    let _ = self.flush().await;
                }
                _ = sample.tick() => self.sample(),
            }
        }
        self.sample();
        if let Err(error) = self.flush().await {
            tracing::error!(%error, "ledger: the last flush at shutdown failed");
        }
    }

    fn sample(&mut self) {
        let Some(power) = &self.power else { return };
        if let Some(reading) = self.reader.read(&power.status(), &self.places) {
            self.acc.add_power(reading);
        }
    }

    async fn flush(&mut self) -> Result<(), String> {
        let now_ms = unix_ms(SystemTime::now());
        let totals = worker_totals(&self.registry);
        let places = &self.places;
        self.acc.add_shares(
            now_ms,
            totals
                .into_iter()
                .map(|(w, t)| (w.clone(), places.of_worker(&w), t)),
        );
        if let Some(economics) = &self.economics {
            self.acc.price(&SitePricer {
                economics,
                now: Instant::now(),
                wall: SystemTime::now(),
            });
        }
        let mut batch = self.acc.pending();
        batch.device_runs = self.reader.pending_runs();
        let store = self.store.clone();
        let hour = hour_of(now_ms);
        let prune_before = (hour > self.last_prune_hour)
            .then(|| hour - i64::from(self.config.retention_days) * 86_400);
        let written = tokio::task::spawn_blocking(move || {
            let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
            if !batch.is_empty() {
                store.write(&batch)?;
            }
            if let Some(before) = prune_before {
                store.prune(before)?;
            }
            store.hour_by_container(hour)
        })
        .await;
        let result = match written {
            Ok(Ok(figures)) => {
                self.acc.written(now_ms);
                self.reader.runs_written();
                if prune_before.is_some() {
                    self.last_prune_hour = hour;
                }
                for f in figures {
                    let container = f.container.unwrap_or_else(|| NO_CONTAINER.to_owned());
                    if let Some(kwh) = f.it_kwh {
                        metrics::gauge!(HOUR_ENERGY, "container" => container.clone(), "source" => "miners")
                            .set(kwh * 3.6e6);
                    }
                    if let Some(kwh) = f.metered_kwh {
                        metrics::gauge!(HOUR_ENERGY, "container" => container.clone(), "source" => "meter")
                            .set(kwh * 3.6e6);
                    }
                    metrics::gauge!(HOUR_WORK, "container" => container).set(f.hashes);
                }
                Ok(())
            }
            Ok(Err(error)) => Err(error.to_string()),
            Err(panic) => Err(format!("ledger writer panicked: {panic}")),
        };
        match &result {
            Ok(()) => metrics::counter!(FLUSHES, "result" => "ok").increment(1),
            Err(error) => {
                metrics::counter!(FLUSHES, "result" => "error").increment(1);
                // The figures stay pending and go with the next flush.
                if let Verdict::Log { suppressed } = self.errors.check_now() {
                    tracing::warn!(%error, suppressed, path = %self.config.path.display(), "ledger flush failed; retrying at the next one");
                }
            }
        }
        result
    }
}
