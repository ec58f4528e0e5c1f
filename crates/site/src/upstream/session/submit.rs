//! The submit side of a pool session: shares out under the connection's own ids, verdicts
//! back to the miners, the per-miner names, and the final accounting when the connection
//! goes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::UpstreamWorker;
use crate::hub::{MinerWorker, UpstreamSubmit};
use crate::ratelog::Verdict;
use crate::stats::Undelivered;
use hashgate_protocol::stratum::{
    Authorize, Extranonce2, Id, Message, Method, Request, Response, Submit,
};

use super::super::error::UpstreamError;
use super::super::pending::{InFlight, pool_worker_name, verdict};
use super::{Asked, Ended, PoolSession, SessionEvent};

/// Per-miner names a pool connection has asked for; past this many, further miners'
/// shares go under the account (a pool's worker book, and ours, stay bounded).
pub(super) const MAX_POOL_WORKERS: usize = 16_384;

/// Shares awaiting a verdict per connection. A pool that answers is far below it (a
/// second of a 4,000 shares/s site); one that reads and never answers is given up on
/// within the silence timeout, and until then the oldest shares beyond this are counted
/// `no_answer` rather than held.
const MAX_PENDING: usize = 16_384;

/// Why per-miner names were given up on a connection (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in super::super) enum Fallback {
    /// The pool answered a worker's authorize `false`.
    Refused,
    /// The pool left a worker's authorize unanswered (ckpool's way of saying no).
    Unanswered,
}

impl Fallback {
    fn label(self) -> &'static str {
        match self {
            Fallback::Refused => "refused",
            Fallback::Unanswered => "unanswered",
        }
    }
}

/// What one pool connection knows of the per-miner names it asked for. A name is used
/// only once the pool has answered its authorize `true`; until then, and for good once
/// the pool refuses or ignores one, shares go under the account, which every pool takes.
#[derive(Debug, Default)]
pub(super) struct WorkerBook {
    /// Miner worker (as the session names it) → its name on this pool and, while the
    /// authorize is unanswered, when it was sent.
    names: HashMap<MinerWorker, (Arc<str>, Option<Instant>)>,
    /// Per-miner names were refused or ignored on this connection: the account only.
    given_up: bool,
    /// The pool has answered some name `true`: other miners' names may be asked for
    /// without waiting for each other.
    any_verified: bool,
    /// The pool user, shared by every share that goes under it.
    account: Option<Arc<str>>,
    /// Authorizes in the order they were sent, with when. Answered ones leave from the
    /// front lazily, so the oldest unanswered one is found in amortized O(1) per tick
    /// instead of by a scan of every name (up to [`MAX_POOL_WORKERS`]).
    asked: VecDeque<(Instant, MinerWorker)>,
}

impl WorkerBook {
    /// The pool user as a shared name (made once per connection).
    fn account(&mut self, user: &str) -> Arc<str> {
        self.account.get_or_insert_with(|| user.into()).clone()
    }

    /// Records that `worker`'s name on the pool, `name`, was asked for at `now`.
    fn ask(&mut self, worker: &MinerWorker, name: Arc<str>, now: Instant) {
        self.names.insert(worker.clone(), (name, Some(now)));
        self.asked.push_back((now, worker.clone()));
    }

    /// Forgets every name: the account only from here.
    fn give_up(&mut self) {
        self.given_up = true;
        self.names = HashMap::new();
        self.asked = VecDeque::new();
    }

    /// The pool answered `worker`'s authorize `true`.
    pub(super) fn verified(&mut self, worker: &MinerWorker) {
        if let Some((_, asked)) = self.names.get_mut(worker) {
            *asked = None;
            self.any_verified = true;
        }
    }

    /// Whether the pool has not yet answered any name `true` and one is still waiting.
    fn probing(&self) -> bool {
        !self.any_verified && self.names.values().any(|(_, asked)| asked.is_some())
    }

    /// Whether an authorize has waited `timeout` or longer. Requests go out in time
    /// order, so the oldest one still unanswered is the front of `asked` once the
    /// answered ones before it are dropped.
    pub(super) fn unanswered_since(&mut self, now: Instant, timeout: Duration) -> bool {
        if self.given_up {
            return false;
        }
        while let Some((at, worker)) = self.asked.front() {
            match self.names.get(worker) {
                Some((_, Some(asked))) if asked == at => break,
                _ => {
                    self.asked.pop_front();
                }
            }
        }
        self.asked
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= timeout)
    }
}

impl PoolSession {
    /// Encodes a batch of shares, blocks first (a stable sort keeps the rest in order).
    pub(in super::super) fn on_submits(&mut self, batch: &mut Vec<UpstreamSubmit>, now: Instant) {
        batch.sort_by_key(|share| !share.is_block);
        for share in batch.drain(..) {
            self.encode_submit(share, now);
        }
    }

    fn encode_submit(&mut self, share: UpstreamSubmit, now: Instant) {
        let worker = self.worker_name(&share.worker, now);
        let extranonce2 = match Extranonce2::new(share.extranonce2.as_bytes()) {
            Ok(e2) => e2,
            Err(err) => {
                // Cannot happen (both caps are 32 bytes); counted rather than dropped.
                tracing::error!(pool = %self.spec.name, error = %err, "share extranonce2 cannot be encoded");
                self.undelivered(&share, Undelivered::NoAnswer);
                return;
            }
        };
        let id = self.take_id();
        Message::Request(Request {
            id: Id::Int(id),
            method: Method::Submit(Submit {
                worker: worker.to_string(),
                job_id: share.pool_job_id.to_string(),
                extranonce2,
                ntime: share.ntime,
                nonce: share.nonce,
                version_bits: share.version_bits,
            }),
        })
        .encode_into(&mut self.out);
        self.spec.stats.record_submitted(share.is_block);
        if share.is_block {
            tracing::error!(
                pool = %self.spec.name,
                worker = %worker,
                pool_job_id = %share.pool_job_id,
                extranonce2 = ?share.extranonce2,
                ntime = format_args!("{:08x}", share.ntime),
                nonce = format_args!("{:08x}", share.nonce),
                version_bits = ?share.version_bits.map(|v| format!("{v:08x}")),
                difficulty = share.difficulty,
                "BLOCK FOUND: submitting to the pool ahead of every other share"
            );
        }
        self.health.sent_request(now);
        for lost in self.pending.evict_over(MAX_PENDING) {
            self.undelivered(&lost.share, Undelivered::NoAnswer);
            if let Verdict::Log { suppressed } = self.no_answer_log.check(now) {
                tracing::warn!(pool = %self.spec.name, suppressed, pending = MAX_PENDING, "pool answers no shares; the oldest unanswered counted as no_answer");
            }
        }
        self.pending.insert(id, share, now);
    }

    /// The name a miner's shares go under on this pool. With per-miner names the first
    /// share of a miner asks the pool to authorize its name and still goes under the
    /// account, as does every share until the pool has answered `true`.
    fn worker_name(&mut self, worker: &MinerWorker, now: Instant) -> Arc<str> {
        let account = self.workers.account(&self.spec.config.user);
        let proxy = &self.shared.config.proxy;
        if proxy.upstream_worker != UpstreamWorker::PerMiner || self.workers.given_up {
            return account;
        }
        if let Some((name, asked)) = self.workers.names.get(worker) {
            return if asked.is_none() {
                name.clone()
            } else {
                account
            };
        }
        if self.workers.probing() {
            // One name at a time until the pool has taken one: a strict pool (ckpool)
            // ignores every authorize after the first, and each ignored one is a line in
            // its log and a wait of ours.
            return account;
        }
        let Some(name) = pool_worker_name(&self.spec.config.user, worker) else {
            return account;
        };
        if self.workers.names.len() >= MAX_POOL_WORKERS {
            return account;
        }
        let name: Arc<str> = name.into();
        self.request(
            Asked::WorkerAuthorize(worker.clone()),
            Method::Authorize(Authorize {
                user: name.to_string(),
                password: Some(self.spec.config.password.clone()),
            }),
            now,
        );
        self.workers.ask(worker, name, now);
        account
    }

    /// Gives up per-miner names on this connection: every share goes under the account.
    pub(super) fn per_miner_fallback(&mut self, why: Fallback, detail: &str) {
        if self.workers.given_up {
            return;
        }
        self.workers.give_up();
        self.requests
            .retain(|_, asked| !matches!(asked, Asked::WorkerAuthorize(_)));
        metrics::counter!(
            crate::exporter::UPSTREAM_WORKER_FALLBACKS,
            "pool" => self.spec.name.to_string(),
            "reason" => why.label()
        )
        .increment(1);
        self.events.push(SessionEvent::WorkerFallback(why));
        tracing::warn!(
            pool = %self.spec.name,
            reason = why.label(),
            detail,
            account = %self.spec.config.user,
            "pool does not take per-miner worker names on one connection; submitting as the account on this connection"
        );
    }

    /// Records a share's verdict; a run of rejects as long as `failover.reject_streak`
    /// ends the connection (the pool refuses all work).
    pub(super) fn on_submit_answer(
        &mut self,
        sent: InFlight,
        answer: &Response,
        now: Instant,
    ) -> Result<(), Ended> {
        let rtt = now.saturating_duration_since(sent.sent_at);
        self.latency.record(rtt.as_secs_f64());
        self.spec.stats.record_submit_latency(rtt);
        let share = &sent.share;
        self.events
            .push(SessionEvent::Verdict(answer.is_accepted()));
        match verdict(answer) {
            Ok(()) => {
                share.miner.record_pool_accepted();
                self.spec.stats.record_accepted();
            }
            Err(reason) => {
                share.miner.record_pool_rejected(reason);
                self.spec.stats.record_rejected(reason);
                // Every share a pool rejects was told `true` to its miner: an operator must
                // see it, but one line per window, not one per share.
                if let Verdict::Log { suppressed } = self.reject_log.check(now) {
                    tracing::warn!(
                        pool = %self.spec.name,
                        worker = %share.worker,
                        reason = reason.label(),
                        message = answer.reject_message().unwrap_or(""),
                        rejected_since_last_line = suppressed,
                        "pool rejected a share the proxy had accepted"
                    );
                }
            }
        }
        if share.is_block {
            tracing::error!(pool = %self.spec.name, accepted = answer.is_accepted(), message = answer.reject_message().unwrap_or(""), "BLOCK FOUND: pool answered the block submit");
        }
        match self.health.verdict(answer.is_accepted()) {
            Some(run) => Err(UpstreamError::RejectingAll(run).into()),
            None => Ok(()),
        }
    }

    pub(in super::super) fn undelivered(&self, share: &UpstreamSubmit, reason: Undelivered) {
        share.miner.record_undelivered(reason);
        self.spec.stats.record_undelivered(reason);
    }

    /// Accounts for every share still waiting for a verdict when the connection is over:
    /// `shutdown` when the proxy is stopping, else `no_answer` (a failed connection lost
    /// its verdicts). The socket task first sends what is queued and reads answers for a
    /// grace period when it closed the connection itself.
    pub(in super::super) fn finish(&mut self, shutdown: bool) {
        self.spec.stats.clear_channel(self.spec.channel);
        let reason = if shutdown {
            Undelivered::Shutdown
        } else {
            Undelivered::NoAnswer
        };
        let left = self.pending.drain();
        if !left.is_empty() {
            tracing::warn!(pool = %self.spec.name, shares = left.len(), reason = reason.label(), "shares left without a pool verdict");
        }
        for sent in left {
            self.undelivered(&sent.share, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_name_is_asked_for_at_a_time_until_the_pool_takes_one() {
        let t0 = Instant::now();
        let mut book = WorkerBook::default();
        assert!(!book.probing());
        let (m1, m2) = (MinerWorker::new("site.m1"), MinerWorker::new("site.m2"));
        book.ask(&m1, "u.m1".into(), t0);
        assert!(book.probing(), "m2 must wait for m1's answer");
        assert!(!book.unanswered_since(t0 + Duration::from_millis(2999), Duration::from_secs(3)));
        assert!(book.unanswered_since(t0 + Duration::from_secs(3), Duration::from_secs(3)));
        book.verified(&m1);
        assert!(!book.probing());
        // Once the pool has taken a name, others are asked for side by side.
        book.ask(&m2, "u.m2".into(), t0);
        assert!(!book.probing());
        book.verified(&m2);
        assert!(book.names.values().all(|(_, asked)| asked.is_none()));
    }

    #[test]
    fn the_oldest_unanswered_authorize_is_the_one_timed() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let timeout = Duration::from_secs(3);
        let mut book = WorkerBook::default();
        let m: Vec<_> = (0..4)
            .map(|i| MinerWorker::new(&format!("site.m{i}")))
            .collect();
        book.ask(&m[0], "u.m0".into(), t0);
        book.verified(&m[0]);
        book.ask(&m[1], "u.m1".into(), t0 + ms(1000));
        book.ask(&m[2], "u.m2".into(), t0 + ms(2000));
        book.ask(&m[3], "u.m3".into(), t0 + ms(2500));
        // m0 was answered: m1, asked at 1 s, is the oldest waiting.
        assert!(!book.unanswered_since(t0 + ms(3999), timeout));
        assert!(book.unanswered_since(t0 + ms(4000), timeout));
        // Answered out of order: m2 verified first, then m1; m3 (2.5 s) is left.
        book.verified(&m[2]);
        assert!(
            book.unanswered_since(t0 + ms(4000), timeout),
            "m1 still waits"
        );
        book.verified(&m[1]);
        assert!(!book.unanswered_since(t0 + ms(5499), timeout));
        assert!(book.unanswered_since(t0 + ms(5500), timeout));
        assert_eq!(book.asked.len(), 1, "answered ones left the queue");
        book.verified(&m[3]);
        assert!(!book.unanswered_since(t0 + ms(60_000), timeout));
        assert!(book.asked.is_empty());
    }
}
