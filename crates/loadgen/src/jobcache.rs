//! Jobs parsed once per distinct `mining.notify` line and shared by every connection.
//!
//! Ten thousand connections receiving the same notify would otherwise each parse ~1 KB
//! of JSON and build a [`Job`]; done one after another on two cores that alone takes tens
//! of milliseconds and would show up as fan-out spread that is the generator's, not the
//! target's. The cache key is the whole line, so miners that get different coinbases
//! (different upstream connections behind a proxy) still get their own job.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use super::fanout::Arrivals;
use hashgate_protocol::work::Job;

/// Distinct notify lines remembered: a few jobs × a few upstream connections.
const KEEP: usize = 64;

/// How far into a line to look for the method name; encoders put `id` and `method`
/// before `params`, and a line that does not is simply parsed in full.
const METHOD_WINDOW: usize = 64;

/// A job ready to use, with its id as a JSON string literal.
#[derive(Debug)]
pub(crate) struct CachedJob {
    /// The job.
    pub job: Job,
    /// `job.id()` as a JSON string literal, quotes included.
    pub id_json: String,
    /// When connections read this line (fan-out), recorded without a lock.
    pub arrivals: Arc<Arrivals>,
}

/// A notify line's bytes and the job built from it.
type Entry = (Box<[u8]>, Arc<CachedJob>);

/// Recently seen notify lines and their jobs.
#[derive(Debug, Default)]
pub(crate) struct JobCache {
    /// Lines and jobs, newest last.
    recent: Mutex<VecDeque<Entry>>,
}

impl JobCache {
    /// The job of an identical line seen before.
    pub(crate) fn get(&self, line: &[u8]) -> Option<Arc<CachedJob>> {
        if !looks_like_notify(line) {
            return None;
        }
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent
            .iter()
            .rev()
            .find(|(l, _)| **l == *line)
            .map(|(_, j)| Arc::clone(j))
    }

    /// Remembers the job a line was parsed into.
    pub(crate) fn insert(&self, line: &[u8], job: &Arc<CachedJob>) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.iter().any(|(l, _)| **l == *line) {
            return;
        }
        recent.push_back((line.into(), Arc::clone(job)));
        while recent.len() > KEEP {
            recent.pop_front();
        }
    }
}

/// Whether the start of `line` names `mining.notify`.
fn looks_like_notify(line: &[u8]) -> bool {
    const NAME: &[u8] = b"\"mining.notify\"";
    let head = line.get(..METHOD_WINDOW.min(line.len())).unwrap_or(&[]);
    head.windows(NAME.len()).any(|w| w == NAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashgate_protocol::work::JobTemplate;

    fn job(id: &str) -> Arc<CachedJob> {
        let job = Job::new(JobTemplate {
            id: id.into(),
            prevhash: [0; 32],
            coinb1: vec![1; 10],
            coinb2: vec![2; 10],
            merkle_branch: vec![],
            version: 0x2000_0000,
            nbits: 0x1d00_ffff,
            ntime: 1,
            clean_jobs: false,
        })
        .expect("valid");
        Arc::new(CachedJob {
            id_json: format!("\"{id}\""),
            arrivals: Arc::new(Arrivals::new(id)),
            job,
        })
    }

    #[test]
    fn identical_lines_share_one_job_and_others_miss() {
        let cache = JobCache::default();
        let a = br#"{"id":null,"method":"mining.notify","params":["a"]}"#;
        let b = br#"{"id":null,"method":"mining.notify","params":["b"]}"#;
        assert!(cache.get(a).is_none());
        cache.insert(a, &job("a"));
        assert_eq!(
            cache.get(a).map(|j| j.job.id().to_owned()),
            Some("a".into())
        );
        assert!(cache.get(b).is_none());
        // Not a notify by its head: never looked up.
        let late = br#"{"params":["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"],"id":null,"method":"mining.notify"}"#;
        cache.insert(late, &job("a"));
        assert!(cache.get(late).is_none());
    }

    #[test]
    fn only_the_newest_lines_are_kept() {
        let cache = JobCache::default();
        let line = |i: usize| format!(r#"{{"id":null,"method":"mining.notify","params":["{i}"]}}"#);
        for i in 0..KEEP + 1 {
            cache.insert(line(i).as_bytes(), &job(&i.to_string()));
        }
        assert!(cache.get(line(0).as_bytes()).is_none());
        assert!(cache.get(line(KEEP).as_bytes()).is_some());
    }
}
