//! [`Sv2Session`] in simulated time: the pool's messages are built by hand, the clock is
//! moved by hand, and the work handed over is compared with what an SV1 pool's notify
//! would have given. No sockets, no sleeps.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::session::{
    BIP320_MASK, Sv2Session, first_nominal_hashrate, share_version, stratum_prevhash,
};
use super::wire::{FromPool, Job, Share, ToPool};
use crate::config::Config;
use crate::hub::{ChannelHashrate, Hub, MinerWorker, UpstreamLink, UpstreamSubmit};
use crate::stats::{MinerStats, PoolReject, Registry, Undelivered};
use crate::upstream::error::UpstreamError;
use crate::upstream::event::{ConnSpec, Ended, PoolWork};
use crate::upstream::session::{SessionEvent, TICK};
use crate::upstream::{PoolSet, UpstreamContext};
use hashgate_protocol::extranonce::{PrefixPool, SplitLimits, choose_split};
use hashgate_protocol::work::{Difficulty, Target};

const CHANNEL: u32 = 7;

struct Harness {
    session: Sv2Session,
    t0: Instant,
    now: Instant,
    sent: Vec<ToPool>,
    events: Vec<SessionEvent>,
    miner: Arc<MinerStats>,
    hashrate: Arc<ChannelHashrate>,
    _submits: mpsc::Receiver<UpstreamSubmit>,
}

impl Harness {
    fn new() -> Harness {
        let text = "[proxy]\naccount = \"site\"\n[[pools]]\nname = \"p\"\n\
             url = \"stratum2+tcp://127.0.0.1:1/9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72\"\n";
        let config = Arc::new(Config::from_toml(text).unwrap());
        let (hub, _channels) = Hub::new(4);
        let registry = Registry::new();
        let name: Arc<str> = "p".into();
        let t0 = Instant::now();
        let hashrate = Arc::new(ChannelHashrate::new(t0));
        let spec = ConnSpec {
            pool: 0,
            conn: 1,
            name: name.clone(),
            config: config.pools[0].clone(),
            address: config.pools[0].url.clone(),
            stats: registry.upstream(&name),
            channel: 0,
            hashrate: hashrate.clone(),
        };
        let pools = watch::channel(Arc::new(PoolSet::of(&config))).0;
        let shared = Arc::new(UpstreamContext {
            config,
            hub,
            registry,
            shutdown: CancellationToken::new(),
            sizing: Mutex::new(()),
            next_conn: AtomicU64::new(1),
            resized: watch::channel(0).0,
            pools,
        });
        let (tx, submits) = mpsc::channel(16);
        let link = UpstreamLink::new(name, 1, tx).with_hashrate(hashrate.clone());
        let mut session = Sv2Session::new(shared, spec, link, t0);
        session.start(t0);
        let mut h = Harness {
            session,
            t0,
            now: t0,
            sent: Vec::new(),
            events: Vec::new(),
            miner: Arc::new(MinerStats::new(t0, SystemTime::now(), 1.0)),
            hashrate,
            _submits: submits,
        };
        h.collect();
        h
    }

    fn collect(&mut self) {
        self.sent.extend(self.session.take_output());
        self.events.extend(self.session.take_events());
    }

    fn pool(&mut self, msg: FromPool) -> Result<(), Ended> {
        let result = self.session.on_message(msg, self.now);
        self.collect();
        result
    }

    fn run_to(&mut self, ms: u64) -> Result<(), (u64, Ended)> {
        let until = self.t0 + Duration::from_millis(ms);
        while self.now + TICK <= until {
            self.now += TICK;
            let result = self.session.on_tick(self.now);
            self.collect();
            if let Err(end) = result {
                let at = self.now.duration_since(self.t0).as_millis();
                return Err((u64::try_from(at).unwrap(), end));
            }
        }
        Ok(())
    }

    fn works(&self) -> Vec<Arc<PoolWork>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Work(w) => Some(w.clone()),
                _ => None,
            })
            .collect()
    }

    /// Setup, the channel (prefix `aa bb`, 8 bytes of extranonce), a future job 1 and the
    /// previous hash that makes it current.
    fn ready(&mut self) {
        self.pool(FromPool::SetupSuccess { flags: 0 }).unwrap();
        self.pool(FromPool::ChannelOpened {
            request_id: 1,
            channel_id: CHANNEL,
            group_channel_id: 1,
            target: Target::DIFF1.to_le_bytes(),
            extranonce_size: 8,
            extranonce_prefix: vec![0xaa, 0xbb],
        })
        .unwrap();
        assert!(
            self.works().is_empty(),
            "no work before a job and a prevhash"
        );
        self.pool(FromPool::Job(job(1, None, true))).unwrap();
        assert!(
            self.works().is_empty(),
            "a future job waits for its prevhash"
        );
        self.pool(prev_hash(1, 1_700_000_000)).unwrap();
    }

    /// A share for pool job `job_id`, with rolled version bits `bits`.
    fn submit(&mut self, job_id: &str, bits: Option<u32>, e2_last: u8) {
        let plan = choose_split(8, 10, SplitLimits::default()).unwrap();
        let lease = PrefixPool::for_plan(&plan).lease().unwrap();
        let mut miner_e2 = vec![0; plan.miner_extranonce2_size()];
        if let Some(last) = miner_e2.last_mut() {
            *last = e2_last;
        }
        let share = UpstreamSubmit {
            worker: MinerWorker::new("site.m1"),
            pool_job_id: job_id.into(),
            extranonce2: plan.compose(lease.prefix(), &miner_e2).unwrap(),
            ntime: 1_700_000_005,
            nonce: 0xdead_beef,
            version_bits: bits,
            is_block: false,
            difficulty: 1.0,
            miner: self.miner.clone(),
            validated_at: self.now,
        };
        self.session.on_submits(&mut vec![share], self.now);
        self.collect();
    }

    fn shares(&self) -> Vec<&Share> {
        self.sent
            .iter()
            .filter_map(|m| match m {
                ToPool::Submit(s) => Some(s),
                _ => None,
            })
            .collect()
    }
}

fn job(id: u32, min_ntime: Option<u32>, rolling: bool) -> Job {
    Job {
        channel_id: CHANNEL,
        job_id: id,
        min_ntime,
        version: 0x2000_0000,
        version_rolling_allowed: rolling,
        merkle_path: vec![[0x11; 32], [0x22; 32]],
        coinbase_prefix: vec![1, 2, 3, 4],
        coinbase_suffix: vec![5, 6, 7],
    }
}

fn prev_hash(job_id: u32, min_ntime: u32) -> FromPool {
    let mut prev = [0u8; 32];
    for (i, b) in prev.iter_mut().enumerate() {
        *b = u8::try_from(i).unwrap();
    }
    FromPool::PrevHash {
        channel_id: CHANNEL,
        job_id,
        prev_hash: prev,
        min_ntime,
        nbits: 0x1d00_ffff,
    }
}

#[test]
fn setup_and_the_channel_are_asked_for_at_once() {
    let h = Harness::new();
    assert!(matches!(&h.sent[0], ToPool::Setup { host, port: 1 } if host == "127.0.0.1"));
    match &h.sent[1] {
        ToPool::OpenChannel {
            user,
            min_extranonce_size,
            ..
        } => {
            assert_eq!(user, "site");
            assert!(*min_extranonce_size >= 8);
        }
        other => panic!("expected the channel request, got {other:?}"),
    }
}

#[test]
fn a_future_job_and_its_prevhash_become_one_clean_sv1_job() {
    let mut h = Harness::new();
    h.ready();
    let works = h.works();
    assert_eq!(works.len(), 1);
    let work = &works[0];
    assert!(work.clean && work.notify.clean_jobs);
    assert_eq!(work.notify.job_id, "1");
    assert_eq!(
        work.notify.coinb1,
        [1, 2, 3, 4],
        "coinbase prefix is coinb1"
    );
    assert_eq!(work.notify.coinb2, [5, 6, 7], "coinbase suffix is coinb2");
    assert_eq!(
        work.extranonce1,
        [0xaa, 0xbb],
        "the channel prefix is extranonce1"
    );
    assert_eq!(work.extranonce2_size, 8);
    assert_eq!(work.notify.merkle_branch, vec![[0x11; 32], [0x22; 32]]);
    assert_eq!(work.notify.version, 0x2000_0000);
    assert_eq!(work.notify.nbits, 0x1d00_ffff);
    assert_eq!(
        work.notify.ntime, 1_700_000_000,
        "a future job starts at the block's min_ntime"
    );
    assert_eq!(work.version_mask, BIP320_MASK);
    assert_eq!(work.target, Target::DIFF1);
    // Stratum V1 order: each 4-byte word of the header-order hash reversed.
    assert_eq!(&work.notify.prevhash[..8], &[3, 2, 1, 0, 7, 6, 5, 4]);
}

#[test]
fn a_job_for_the_current_block_is_new_work_without_clean() {
    let mut h = Harness::new();
    h.ready();
    h.pool(FromPool::Job(job(2, Some(1_700_000_030), false)))
        .unwrap();
    let works = h.works();
    let last = works.last().unwrap();
    assert_eq!(works.len(), 2);
    assert!(!last.clean);
    assert_eq!(last.notify.job_id, "2");
    assert_eq!(last.notify.ntime, 1_700_000_030);
    assert_eq!(
        last.version_mask, 0,
        "this job does not allow version rolling"
    );
    // A new block: the future job it names is clean work again.
    h.pool(FromPool::Job(job(3, None, true))).unwrap();
    h.pool(prev_hash(3, 1_700_000_600)).unwrap();
    let works = h.works();
    let last = works.last().unwrap();
    assert!(last.clean && last.notify.job_id == "3");
    assert_eq!(last.notify.ntime, 1_700_000_600);
    // A share for the last block's job is stale: not sent, counted as the pool would.
    h.submit("1", None, 9);
    assert!(h.shares().is_empty());
    assert_eq!(h.miner.totals().pool_rejected[0], 1, "stale");
}

#[test]
fn set_target_is_the_pool_difficulty_the_channel_forwards_at() {
    let mut h = Harness::new();
    h.ready();
    let easier = 0.25;
    let target = Difficulty::new(easier).unwrap().to_target().to_le_bytes();
    h.pool(FromPool::Target {
        channel_id: CHANNEL,
        target,
    })
    .unwrap();
    let last = h.works().last().unwrap().clone();
    assert!(!last.clean, "a new target is not a new block");
    assert!(
        (last.target.difficulty() - easier).abs() < 1e-3,
        "{}",
        last.target.difficulty()
    );
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, SessionEvent::Difficulty(d) if (d - easier).abs() < 1e-3))
    );
}

#[test]
fn shares_go_up_extended_and_a_batch_acknowledgement_credits_them() {
    let mut h = Harness::new();
    h.ready();
    h.submit("1", Some(0x0000_6000), 1);
    h.submit("1", None, 2);
    h.submit("1", Some(0x0000_2000), 3);
    let shares = h.shares();
    assert_eq!(shares.len(), 3);
    assert_eq!(
        shares.iter().map(|s| s.sequence_number).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let first = shares[0];
    assert_eq!((first.channel_id, first.job_id), (CHANNEL, 1));
    assert_eq!((first.nonce, first.ntime), (0xdead_beef, 1_700_000_005));
    assert_eq!(
        first.version, 0x2000_6000,
        "the job's version with the rolled bits"
    );
    assert_eq!(shares[1].version, 0x2000_0000);
    assert_eq!(
        first.extranonce.len(),
        8,
        "the bytes after the channel prefix"
    );
    assert_eq!(*first.extranonce.last().unwrap(), 1);
    // The pool refuses the middle one on its own, then acknowledges the batch.
    h.pool(FromPool::ShareRefused {
        channel_id: CHANNEL,
        sequence_number: 1,
        code: "stale-share".into(),
    })
    .unwrap();
    h.pool(FromPool::SharesAccepted {
        channel_id: CHANNEL,
        last_sequence_number: 2,
        accepted: 2,
    })
    .unwrap();
    let totals = h.miner.totals();
    assert_eq!(totals.pool_accepted, 2);
    assert_eq!(totals.pool_rejected.iter().sum::<u64>(), 1);
    assert_eq!(
        totals.pool_rejected[0],
        1,
        "counted {:?}",
        PoolReject::ALL[0]
    );
    assert!(!h.session.awaiting_verdicts());
}

#[test]
fn an_acknowledgement_covers_only_the_shares_up_to_its_sequence_number() {
    let mut h = Harness::new();
    h.ready();
    for i in 0..4 {
        h.submit("1", None, i);
    }
    h.pool(FromPool::SharesAccepted {
        channel_id: CHANNEL,
        last_sequence_number: 1,
        accepted: 2,
    })
    .unwrap();
    assert_eq!(h.miner.totals().pool_accepted, 2);
    assert!(h.session.awaiting_verdicts(), "shares 2 and 3 still wait");
}

#[test]
fn batched_acknowledgements_are_not_silence_but_a_share_never_acknowledged_is_counted() {
    let mut h = Harness::new();
    h.ready();
    h.submit("1", None, 1);
    let no_answer = |h: &Harness| h.miner.totals().undelivered[Undelivered::NoAnswer as usize];
    // Jobs keep coming, as from a live pool, so only the share is judged. Far past the
    // silence timeout (3 s) a pool that acknowledges every tenth share has not gone quiet.
    for step in 1..=14u32 {
        h.run_to(u64::from(step) * 20_000).unwrap();
        h.pool(FromPool::Job(job(
            10 + step,
            Some(1_700_000_000 + step),
            true,
        )))
        .unwrap();
    }
    assert!(h.session.awaiting_verdicts(), "280 s: still waiting");
    assert_eq!(no_answer(&h), 0);
    h.run_to(300_100).unwrap();
    assert!(!h.session.awaiting_verdicts());
    assert_eq!(
        no_answer(&h),
        1,
        "counted once the acknowledgement window is over"
    );
}

#[test]
fn a_refused_setup_or_channel_ends_the_connection_with_the_pools_code() {
    let mut h = Harness::new();
    let end = h
        .pool(FromPool::SetupError {
            code: "unsupported-feature-flags".into(),
        })
        .unwrap_err();
    let Ended::Failed(UpstreamError::Sv2Refused { code, .. }) = end else {
        panic!("expected a refusal, got {end:?}");
    };
    assert_eq!(code, "unsupported-feature-flags");
    let mut h = Harness::new();
    h.pool(FromPool::SetupSuccess { flags: 0 }).unwrap();
    let end = h
        .pool(FromPool::ChannelRefused {
            code: "unknown-user".into(),
        })
        .unwrap_err();
    assert!(
        end_text(&end).contains("unknown-user"),
        "{}",
        end_text(&end)
    );
}

#[test]
fn a_pool_that_never_sets_up_is_given_up() {
    let mut h = Harness::new();
    let (at, end) = h.run_to(60_000).unwrap_err();
    assert!(at <= 6_000, "ended at {at} ms");
    assert!(matches!(
        end,
        Ended::Failed(UpstreamError::Unanswered(_) | UpstreamError::SetupTimeout(_))
    ));
}

#[test]
fn a_new_channel_announces_one_miner_at_the_starting_difficulty() {
    // 1,024 every 5 s is 0.88 TH/s; a CPU miner's 0.001 every 5 s is 0.86 MH/s.
    let asic = first_nominal_hashrate(1024.0, Duration::from_secs(5));
    assert!((asic / 8.796e11 - 1.0).abs() < 1e-3, "{asic}");
    let cpu = first_nominal_hashrate(0.001, Duration::from_secs(5));
    assert!((cpu / 8.59e5 - 1.0).abs() < 1e-2, "{cpu}");
}

#[test]
fn the_channels_hashrate_is_announced_when_it_moves_twofold() {
    let mut h = Harness::new();
    h.ready();
    let updates = |h: &Harness| -> Vec<f32> {
        h.sent
            .iter()
            .filter_map(|m| match m {
                ToPool::Update {
                    nominal_hash_rate, ..
                } => Some(*nominal_hash_rate),
                _ => None,
            })
            .collect()
    };
    // The channel opened announcing one miner at 1,024 every 5 s (0.88 TH/s); the miners
    // prove 100 diff-1 shares a tick, 1,000 a second: 4.3 TH/s, about 5 times that.
    let mut job = 100;
    let mut mine = |h: &mut Harness, to_ms: u64, per_tick: f64| {
        while h.now.duration_since(h.t0) < Duration::from_millis(to_ms) {
            h.hashrate.record(h.now, per_tick);
            let ms = u64::try_from(h.now.duration_since(h.t0).as_millis()).unwrap();
            if ms % 20_000 == 0 {
                job += 1;
                h.pool(FromPool::Job(job_for(job))).unwrap();
            }
            h.run_to(ms + 100).unwrap();
        }
    };
    mine(&mut h, 14_000, 100.0);
    assert!(updates(&h).is_empty(), "no rate in the meter's first 15 s");
    mine(&mut h, 20_000, 100.0);
    let sent = updates(&h);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!((sent[0] / 4.295e12 - 1.0).abs() < 0.1, "{sent:?}");
    // Steady: nothing more.
    mine(&mut h, 60_000, 100.0);
    assert_eq!(updates(&h).len(), 1);
}

fn job_for(id: u32) -> Job {
    job(id, Some(1_700_000_000 + id), true)
}

#[test]
fn version_and_prevhash_helpers() {
    assert_eq!(
        share_version(0x2000_0004, BIP320_MASK, Some(0x1fff_e000)),
        0x3fff_e004
    );
    assert_eq!(share_version(0x2000_0004, 0, None), 0x2000_0004);
    let mut header = [0u8; 32];
    header[0] = 1;
    assert_eq!(stratum_prevhash(header)[3], 1);
}

fn end_text(end: &Ended) -> String {
    match end {
        Ended::Failed(err) => err.to_string(),
        other => format!("{other:?}"),
    }
}

#[test]
fn a_reconnect_is_followed_to_the_pools_own_host_with_its_key_and_refused_elsewhere() {
    let mut h = Harness::new();
    h.ready();
    // Another host, not in reconnect_hosts: refused, and the connection goes on.
    h.pool(FromPool::Reconnect {
        host: "elsewhere.example".into(),
        port: 3333,
    })
    .expect("a refused redirect does not end the connection");
    // The pool's own host on another port (an empty host means "mine"): followed at
    // once, still SV2 and still checked against the configured authority key.
    let end = h
        .pool(FromPool::Reconnect {
            host: String::new(),
            port: 34255,
        })
        .unwrap_err();
    let Ended::Reconnect { address, wait } = end else {
        panic!("expected a reconnect, got {end:?}");
    };
    assert_eq!((address.host.as_str(), address.port), ("127.0.0.1", 34255));
    let configured: crate::config::PoolUrl =
        "stratum2+tcp://127.0.0.1:1/9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"
            .parse()
            .unwrap();
    assert!(configured.sv2.is_some());
    assert_eq!(address.sv2, configured.sv2, "the authority key is kept");
    assert_eq!(wait, Duration::ZERO);
}
