//! Job fan-out: how far apart the same `mining.notify` reaches the connections.
//!
//! Arrival is when a connection's task read the line, so the figure includes the load
//! generator's own scheduling; on an idle loadgen that is a few microseconds.
//!
//! Recording is lock-free: ten thousand connections reading the same notify within a few
//! milliseconds would otherwise queue on one mutex (and hash the job id each time), and
//! that queueing would show up as spread that is the generator's, not the target's. Each
//! distinct notify line gets one [`Arrivals`] (held by the shared parsed job); only its
//! first arrival takes the tracker's lock, to list it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Notify lines tracked at most; a run sees a handful (one per job interval and upstream
/// connection).
const MAX_JOBS: usize = 1024;

/// First and last arrival of one notify line, as nanoseconds since the tracker's epoch.
#[derive(Debug)]
pub(crate) struct Arrivals {
    /// The job id the line carries.
    job_id: String,
    /// Earliest arrival; `u64::MAX` until the first.
    first: AtomicU64,
    /// Latest arrival so far.
    last: AtomicU64,
    /// Connections that read it.
    count: AtomicU64,
    /// Listed in the tracker already.
    listed: AtomicBool,
}

impl Arrivals {
    /// Nothing arrived yet for this job id.
    pub(crate) fn new(job_id: &str) -> Arrivals {
        Arrivals {
            job_id: job_id.to_owned(),
            first: AtomicU64::new(u64::MAX),
            last: AtomicU64::new(0),
            count: AtomicU64::new(0),
            listed: AtomicBool::new(false),
        }
    }
}

/// Records notify arrivals during the submit window.
#[derive(Debug)]
pub(crate) struct FanoutTracker {
    /// Arrival times are kept relative to this.
    epoch: Instant,
    /// Every line that arrived at least once, in first-arrival order.
    jobs: Mutex<Vec<Arc<Arrivals>>>,
}

impl Default for FanoutTracker {
    fn default() -> Self {
        FanoutTracker {
            epoch: Instant::now(),
            jobs: Mutex::new(Vec::new()),
        }
    }
}

impl FanoutTracker {
    /// Notes that one connection read the line of `job` at `at`.
    pub(crate) fn record(&self, job: &Arc<Arrivals>, at: Instant) {
        let nanos = u64::try_from(at.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX - 1);
        job.first.fetch_min(nanos, Ordering::Relaxed);
        job.last.fetch_max(nanos, Ordering::Relaxed);
        job.count.fetch_add(1, Ordering::Relaxed);
        if !job.listed.swap(true, Ordering::Relaxed) {
            let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
            if jobs.len() < MAX_JOBS {
                jobs.push(Arc::clone(job));
            }
        }
    }

    /// The summary, counting as complete the jobs that reached `held` connections. Lines
    /// with the same job id (parsed twice in a race, or the same job on different
    /// upstream connections) count as one job.
    pub(crate) fn summary(&self, held: usize) -> FanoutSummary {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let mut by_id: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
        for a in jobs.iter() {
            let first = a.first.load(Ordering::Relaxed);
            let last = a.last.load(Ordering::Relaxed);
            let count = a.count.load(Ordering::Relaxed);
            let e = by_id.entry(&a.job_id).or_insert((first, last, 0));
            e.0 = e.0.min(first);
            e.1 = e.1.max(last);
            e.2 += count;
        }
        let mut list: Vec<(u64, JobFanout)> = by_id
            .into_iter()
            .map(|(id, (first, last, count))| {
                let spread = Duration::from_nanos(last.saturating_sub(first));
                let job = JobFanout {
                    job_id: id.to_owned(),
                    connections: usize::try_from(count).unwrap_or(usize::MAX),
                    spread_us: micros(spread),
                    first_at: self.epoch + Duration::from_nanos(first),
                };
                (first, job)
            })
            .collect();
        list.sort_by_key(|(first, _)| *first);
        let list: Vec<JobFanout> = list.into_iter().map(|(_, j)| j).collect();
        let complete: Vec<f64> = list
            .iter()
            .filter(|j| held > 0 && j.connections >= held)
            .map(|j| j.spread_us)
            .collect();
        FanoutSummary {
            jobs_seen: list.len(),
            jobs_complete: complete.len(),
            max_spread_us: complete
                .iter()
                .copied()
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v)))),
            jobs: list,
        }
    }
}

fn micros(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1000.0
}

/// One job's fan-out.
#[derive(Debug, Clone, Serialize)]
pub struct JobFanout {
    /// The job id as the connections saw it.
    pub job_id: String,
    /// Connections that received it.
    pub connections: usize,
    /// First-to-last arrival across those connections.
    pub spread_us: f64,
    /// First arrival, to order jobs.
    #[serde(skip)]
    pub first_at: Instant,
}

/// Fan-out over the submit window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FanoutSummary {
    /// Distinct job ids that arrived during the window.
    pub jobs_seen: usize,
    /// Of those, jobs that reached every connection held.
    pub jobs_complete: usize,
    /// Widest first-to-last spread among complete jobs.
    pub max_spread_us: Option<f64>,
    /// Every job, oldest first.
    pub jobs: Vec<JobFanout>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_first_to_last_and_completeness_counts_connections() {
        let t = FanoutTracker::default();
        let t0 = Instant::now();
        let a = Arc::new(Arrivals::new("a"));
        let b = Arc::new(Arrivals::new("b"));
        t.record(&a, t0 + Duration::from_micros(30));
        t.record(&a, t0);
        t.record(&a, t0 + Duration::from_micros(10));
        t.record(&b, t0 + Duration::from_micros(50));
        let s = t.summary(3);
        assert_eq!((s.jobs_seen, s.jobs_complete), (2, 1));
        assert_eq!(s.max_spread_us, Some(30.0));
        assert_eq!(s.jobs[0].job_id, "a");
        assert_eq!(s.jobs[1].connections, 1);
        assert_eq!(t.summary(4).max_spread_us, None);
    }

    #[test]
    fn two_lines_with_one_job_id_count_as_one_job() {
        let t = FanoutTracker::default();
        let t0 = Instant::now();
        let first = Arc::new(Arrivals::new("j"));
        let second = Arc::new(Arrivals::new("j"));
        t.record(&first, t0 + Duration::from_micros(5));
        t.record(&second, t0 + Duration::from_micros(25));
        t.record(&first, t0 + Duration::from_micros(15));
        let s = t.summary(3);
        assert_eq!((s.jobs_seen, s.jobs_complete), (1, 1));
        assert_eq!(s.jobs[0].connections, 3);
        assert_eq!(s.max_spread_us, Some(20.0));
    }

    #[test]
    fn records_from_many_threads_all_count() {
        let t = Arc::new(FanoutTracker::default());
        let job = Arc::new(Arrivals::new("x"));
        let t0 = Instant::now();
        let handles: Vec<_> = (0..4u64)
            .map(|k| {
                let (t, job) = (Arc::clone(&t), Arc::clone(&job));
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        t.record(&job, t0 + Duration::from_micros(k * 1000 + i));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let s = t.summary(4000);
        assert_eq!(s.jobs_complete, 1);
        assert_eq!(s.max_spread_us, Some(3999.0));
    }
}
