//! The miner-facing job built from one pool `mining.notify`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;

use hashgate_protocol::extranonce::ExtranoncePlan;
use hashgate_protocol::stratum::{Id, Message, Method, Notify, Request};
use hashgate_protocol::work::{Job, JobError, JobTemplate, Target};

use super::link::UpstreamLink;

/// Hands out proxy-wide job ids, so jobs from different pools and connections never collide
/// in a miner's list.
#[derive(Debug, Default)]
pub struct JobIds {
    next: AtomicU64,
}

impl JobIds {
    /// A fresh id, as short lowercase hex (miners echo it in every submit).
    pub fn next(&self) -> Arc<str> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{n:x}").into()
    }
}

/// What an upstream connection knows when a notify arrives.
#[derive(Debug, Clone)]
pub struct MinerJobParts<'a> {
    /// The pool's notify as parsed.
    pub notify: &'a Notify,
    /// This connection's pool extranonce1 (`E`).
    pub pool_extranonce1: &'a [u8],
    /// How this pool's extranonce2 is split for miners.
    pub plan: ExtranoncePlan,
    /// The pool difficulty's target at the time of the notify.
    pub upstream_target: Target,
    /// The version-rolling mask the pool granted (0 when none).
    pub version_mask: u32,
    /// Where shares for this job go.
    pub link: UpstreamLink,
    /// Whether to tell miners to drop their old work (the pool said so, or the pool changed).
    pub clean_jobs: bool,
}

/// A job as miners see it: the pool's job with `E ‖ padding` folded into coinb1 and a
/// proxy-wide id, plus everything needed to forward its shares.
#[derive(Debug)]
pub struct MinerJob {
    /// The proxy's job id, as the miner sees it.
    pub id: Arc<str>,
    /// The validation job over the miner-facing coinb1.
    pub job: Job,
    /// The pool's own job id, used upstream.
    pub pool_job_id: Arc<str>,
    /// The split of the issuing pool's extranonce2 (its padding differs per pool).
    pub plan: ExtranoncePlan,
    /// A share at or below this target goes to the pool.
    pub upstream_target: Target,
    /// Version bits the pool lets miners roll.
    pub version_mask: u32,
    /// The issuing connection.
    pub link: UpstreamLink,
    /// The `mining.notify` line for miners, encoded once and shared by all of them.
    pub notify_line: Bytes,
    /// When the job was built, for fan-out latency and staleness.
    pub created: Instant,
}

impl MinerJob {
    /// Builds the miner-facing job.
    ///
    /// # Errors
    /// [`JobError`] when the notify's nbits encode no valid target (a broken pool job).
    pub fn build(
        id: Arc<str>,
        parts: MinerJobParts<'_>,
        now: Instant,
    ) -> Result<MinerJob, JobError> {
        let n = parts.notify;
        let mut coinb1 =
            Vec::with_capacity(n.coinb1.len() + parts.plan.pool_extranonce2_size() + 8);
        coinb1.extend_from_slice(&n.coinb1);
        parts
            .plan
            .extend_coinb1(parts.pool_extranonce1, &mut coinb1);
        let miner_notify = Notify {
            job_id: id.to_string(),
            prevhash: n.prevhash,
            coinb1,
            coinb2: n.coinb2.clone(),
            merkle_branch: n.merkle_branch.clone(),
            version: n.version,
            nbits: n.nbits,
            ntime: n.ntime,
            clean_jobs: parts.clean_jobs,
        };
        let notify_line = Message::Request(Request {
            id: Id::Null,
            method: Method::Notify(miner_notify.clone()),
        })
        .to_bytes();
        let job = Job::new(JobTemplate::from(miner_notify))?;
        Ok(MinerJob {
            id,
            job,
            pool_job_id: n.job_id.as_str().into(),
            plan: parts.plan,
            upstream_target: parts.upstream_target,
            version_mask: parts.version_mask,
            link: parts.link,
            notify_line,
            created: now,
        })
    }

    /// Whether miners must drop earlier jobs.
    pub fn clean_jobs(&self) -> bool {
        self.job.clean_jobs()
    }
}
