//! Job fan-out: how far apart the same `mining.notify` reaches the connections.
//!
//! Arrival is when a connection's task read the line, so the figure includes the load
//! generator's own scheduling; on an idle loadgen that is a few microseconds.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Jobs tracked at most; a run sees a handful (one per job interval).
const MAX_JOBS: usize = 1024;

/// First and last arrival of one job id.
#[derive(Debug, Clone, Copy)]
struct Spread {
    /// First connection to read it.
    first: Instant,
    /// Last connection (so far) to read it.
    last: Instant,
    /// Connections that read it.
    count: usize,
}

/// Records notify arrivals during the submit window.
#[derive(Debug, Default)]
pub struct FanoutTracker {
    /// Arrivals by job id.
    jobs: Mutex<HashMap<String, Spread>>,
}

impl FanoutTracker {
    /// Notes that one connection read `job_id` at `at`.
    pub fn record(&self, job_id: &str, at: Instant) {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = jobs.get_mut(job_id) {
            s.first = s.first.min(at);
            s.last = s.last.max(at);
            s.count += 1;
        } else if jobs.len() < MAX_JOBS {
            jobs.insert(
                job_id.to_owned(),
                Spread {
                    first: at,
                    last: at,
                    count: 1,
                },
            );
        }
    }

    /// The summary, counting as complete the jobs that reached `held` connections.
    pub fn summary(&self, held: usize) -> FanoutSummary {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let mut list: Vec<JobFanout> = jobs
            .iter()
            .map(|(id, s)| JobFanout {
                job_id: id.clone(),
                connections: s.count,
                spread_us: micros(s.last.saturating_duration_since(s.first)),
                first_at: s.first,
            })
            .collect();
        list.sort_by_key(|j| j.first_at);
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
        t.record("a", t0 + Duration::from_micros(30));
        t.record("a", t0);
        t.record("a", t0 + Duration::from_micros(10));
        t.record("b", t0 + Duration::from_micros(50));
        let s = t.summary(3);
        assert_eq!((s.jobs_seen, s.jobs_complete), (2, 1));
        assert_eq!(s.max_spread_us, Some(30.0));
        assert_eq!(s.jobs[0].job_id, "a");
        assert_eq!(s.jobs[1].connections, 1);
        assert_eq!(t.summary(4).max_spread_us, None);
    }
}
