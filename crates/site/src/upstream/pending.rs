//! Shares sent to the pool and not yet answered, under the proxy's own request ids.
//!
//! Miners reuse request ids (cpuminer sends every submit as id 4), so a miner's id cannot
//! find a share again; each connection numbers its requests itself, increasing, which also
//! keeps the map in send order so expiry only ever looks at the front.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::hub::{MinerWorker, UpstreamSubmit};
use crate::stats::PoolReject;
use hashgate_protocol::stratum::Response;

/// One share on the wire.
#[derive(Debug)]
pub struct InFlight {
    /// The share, with the miner to credit.
    pub share: UpstreamSubmit,
    /// When it was written to the pool socket, for the round-trip latency.
    pub sent_at: Instant,
    /// When its submit timeout started: `sent_at`, moved later by the proxy's own stalls
    /// since (the pool's answer may have waited unread in the socket).
    pub counted_from: Instant,
}

/// The shares of one connection awaiting the pool's verdict, oldest first.
#[derive(Debug, Default)]
pub struct Pending {
    entries: BTreeMap<u64, InFlight>,
}

impl Pending {
    /// Remembers a share sent under request id `id` at `now`.
    pub fn insert(&mut self, id: u64, share: UpstreamSubmit, now: Instant) {
        self.entries.insert(
            id,
            InFlight {
                share,
                sent_at: now,
                counted_from: now,
            },
        );
    }

    /// Takes the share answered by `id`, if it was one of ours.
    pub fn take(&mut self, id: u64) -> Option<InFlight> {
        self.entries.remove(&id)
    }

    /// Takes every share sent under an id up to and including `last`, oldest first: what
    /// one SV2 batch acknowledgement covers.
    pub fn take_through(&mut self, last: u64) -> Vec<InFlight> {
        let rest = self.entries.split_off(&last.saturating_add(1));
        std::mem::replace(&mut self.entries, rest)
            .into_values()
            .collect()
    }

    /// Does not count a stall of the proxy's own task, ending at `now`, against the pool:
    /// every share's timeout restarts that much later (no later than `now`).
    pub fn excuse(&mut self, stall: Duration, now: Instant) {
        for entry in self.entries.values_mut() {
            entry.counted_from = entry
                .counted_from
                .checked_add(stall)
                .map_or(now, |later| later.min(now));
        }
    }

    /// Takes every share whose timeout, counted from `counted_from`, has run out at `now`.
    /// Stalls move later shares at least as far as earlier ones, so the oldest run out first.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<InFlight> {
        let mut expired = Vec::new();
        while let Some(entry) = self.entries.first_entry() {
            if now.saturating_duration_since(entry.get().counted_from) < timeout {
                break;
            }
            expired.push(entry.remove());
        }
        expired
    }

    /// Takes the oldest shares until fewer than `cap` remain, so a pool that reads
    /// shares but never answers cannot grow the map without bound before a timeout
    /// ends the connection (a long `silence_timeout`, a fast site).
    pub fn evict_over(&mut self, cap: usize) -> Vec<InFlight> {
        let mut evicted = Vec::new();
        while self.entries.len() >= cap.max(1) {
            match self.entries.pop_first() {
                Some((_, entry)) => evicted.push(entry),
                None => break,
            }
        }
        evicted
    }

    /// Takes every share (the connection is going away).
    pub fn drain(&mut self) -> Vec<InFlight> {
        std::mem::take(&mut self.entries).into_values().collect()
    }

    /// Shares awaiting an answer.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing awaits an answer.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The pool's verdict on a submit: accepted, or rejected with a bucketed reason. Pools
/// send three reject shapes (`[23,"Above target",null]`; `error:null` with ckpool's
/// `reject-reason`; a bare string such as `"Worker mismatch"`) and `result:false` is a
/// reject whatever `error` holds.
pub fn verdict(answer: &Response) -> Result<(), PoolReject> {
    if answer.is_accepted() {
        return Ok(());
    }
    let code = answer.error.as_ref().and_then(|e| e.code());
    Err(PoolReject::classify(code, answer.reject_message()))
}

/// A miner's own name on a pool whose user is `pool_user`: `<pool_user>.<rig>`, so the
/// pool's dashboard shows every miner under the site's user there (`None` when the
/// miner has no worker part to add).
pub(crate) fn pool_worker_name(pool_user: &str, worker: &MinerWorker) -> Option<String> {
    let rig = worker.rig();
    (!rig.is_empty() && !pool_user.is_empty()).then(|| format!("{pool_user}.{rig}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashgate_protocol::stratum::Message;

    fn response(line: &str) -> Response {
        match Message::parse(line.as_bytes()) {
            Ok(Message::Response(r)) => r,
            other => panic!("not a response: {other:?}"),
        }
    }

    #[test]
    fn three_reject_shapes_and_an_accept() {
        assert_eq!(
            verdict(&response(r#"{"result":true,"error":null,"id":4}"#)),
            Ok(())
        );
        assert_eq!(
            verdict(&response(
                r#"{"result":false,"error":[23,"Above target",null],"id":5}"#
            )),
            Err(PoolReject::LowDifficulty)
        );
        assert_eq!(
            verdict(&response(
                r#"{"result":false,"error":null,"id":6,"reject-reason":"Stale"}"#
            )),
            Err(PoolReject::Stale)
        );
        assert_eq!(
            verdict(&response(
                r#"{"result":false,"error":"Worker mismatch","id":7}"#
            )),
            Err(PoolReject::Unauthorized)
        );
        assert_eq!(
            verdict(&response(r#"{"result":true,"error":[20,"x",null],"id":8}"#)),
            Err(PoolReject::Other),
            "an error with result true is not an accept"
        );
    }

    fn share(miner: &std::sync::Arc<crate::stats::MinerStats>, now: Instant) -> UpstreamSubmit {
        let plan = hashgate_protocol::extranonce::choose_split(
            8,
            10,
            hashgate_protocol::extranonce::SplitLimits::default(),
        )
        .unwrap();
        let lease = hashgate_protocol::extranonce::PrefixPool::for_plan(&plan)
            .lease()
            .unwrap();
        UpstreamSubmit {
            worker: MinerWorker::new("a.w"),
            pool_job_id: "j".into(),
            extranonce2: plan.compose(lease.prefix(), &[0; 7]).unwrap(),
            ntime: 1,
            nonce: 2,
            version_bits: None,
            is_block: false,
            difficulty: 1.0,
            miner: miner.clone(),
            validated_at: now,
        }
    }

    fn miner(now: Instant) -> std::sync::Arc<crate::stats::MinerStats> {
        std::sync::Arc::new(crate::stats::MinerStats::new(
            now,
            std::time::SystemTime::now(),
            1.0,
        ))
    }

    #[test]
    fn expiry_takes_the_oldest_first_and_answers_find_their_share() {
        let t0 = Instant::now();
        let miner = miner(t0);
        let mut p = Pending::default();
        for (id, at) in [(4, 0), (5, 100), (6, 200), (7, 300)] {
            p.insert(id, share(&miner, t0), t0 + Duration::from_millis(at));
        }
        assert!(p.take(6).is_some());
        assert!(p.take(6).is_none(), "an answer counts once");
        let timeout = Duration::from_secs(1);
        assert!(
            p.expire(t0 + Duration::from_millis(999), timeout)
                .is_empty()
        );
        let gone = p.expire(t0 + Duration::from_millis(1150), timeout);
        let sent: Vec<Instant> = gone.iter().map(|f| f.sent_at).collect();
        assert_eq!(sent, [t0, t0 + Duration::from_millis(100)]);
        assert_eq!(p.len(), 1);
        assert_eq!(p.drain().len(), 1);
        assert!(p.is_empty());
    }

    #[test]
    fn a_pool_that_never_answers_cannot_grow_the_map_past_its_cap() {
        let t0 = Instant::now();
        let miner = miner(t0);
        let mut p = Pending::default();
        let mut evicted = Vec::new();
        for id in 0..100u64 {
            evicted.extend(p.evict_over(8).into_iter().map(|f| f.sent_at));
            p.insert(id, share(&miner, t0), t0 + Duration::from_millis(id));
        }
        assert_eq!(p.len(), 8);
        assert_eq!(evicted.len(), 92);
        assert_eq!(evicted[0], t0, "the oldest go first");
        assert!(p.take(99).is_some() && p.take(91).is_none());
    }

    #[test]
    fn a_stall_of_the_proxy_restarts_the_timeouts() {
        let t0 = Instant::now();
        let miner = miner(t0);
        let ms = Duration::from_millis;
        let mut p = Pending::default();
        p.insert(1, share(&miner, t0), t0);
        p.insert(2, share(&miner, t0), t0 + ms(1500));
        // The check at 3.0 s finds a 1.9 s stall; share 2 went out inside that gap (the
        // task ran, its tick did not), and its timeout starts no later than the check.
        p.excuse(ms(1900), t0 + ms(3000));
        let timeout = Duration::from_secs(1);
        assert!(p.expire(t0 + ms(2899), timeout).is_empty());
        let gone = p.expire(t0 + ms(2900), timeout);
        assert_eq!(gone.len(), 1);
        assert_eq!(
            gone[0].sent_at, t0,
            "the latency still counts from the send"
        );
        assert_eq!(gone[0].counted_from, t0 + ms(1900));
        assert!(p.expire(t0 + ms(3999), timeout).is_empty());
        assert_eq!(p.expire(t0 + ms(4000), timeout).len(), 1);
    }

    #[test]
    fn a_miner_is_named_under_each_pool_user_from_its_parts() {
        let name = |user: &str, worker: &str| pool_worker_name(user, &MinerWorker::new(worker));
        assert_eq!(name("site", "site.rig7").as_deref(), Some("site.rig7"));
        assert_eq!(name("other", "site.rig7").as_deref(), Some("other.rig7"));
        assert_eq!(name("other", "rig7").as_deref(), Some("other.rig7"));
        assert_eq!(name("other", "anyone.a.b").as_deref(), Some("other.a.b"));
        assert_eq!(name("other", "acct.").as_deref(), None);
        assert_eq!(name("", "acct.rig").as_deref(), None);
    }
}
