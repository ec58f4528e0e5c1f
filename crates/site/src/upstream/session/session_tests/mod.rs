//! [`PoolSession`] in simulated time: the pool's lines are typed in, the clock is an
//! `Instant` moved by hand, ticks come every [`TICK`] as the socket task's would, and what
//! the session writes is read back as JSON. No sockets, no sleeps.

mod health;
mod identity;
mod suggest;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{PoolSession, SessionEvent, TICK};
use crate::config::Config;
use crate::hub::{ChannelHashrate, Hub, MinerWorker, UpstreamLink, UpstreamSubmit};
use crate::stats::{MinerStats, Registry};
use crate::upstream::error::UpstreamError;
use crate::upstream::event::{ConnSpec, Ended};
use crate::upstream::{PoolSet, UpstreamContext};
use hashgate_protocol::extranonce::{PrefixPool, SplitLimits, choose_split};
use hashgate_protocol::stratum::Message;

/// A notify the pool sends; `id` is its job id.
fn notify(id: &str, clean: bool) -> String {
    format!(
        r#"{{"id":null,"method":"mining.notify","params":["{id}","{prev}","01000000","ffffffff",[],"20000000","1d00ffff","5f5e1000",{clean}]}}"#,
        prev = "00".repeat(32)
    )
}

/// One pool connection's session, its clock and what it has written so far.
struct Harness {
    session: PoolSession,
    t0: Instant,
    now: Instant,
    /// Every line the session wrote, in order.
    written: Vec<Value>,
    /// Every event the session reported, in order.
    events: Vec<SessionEvent>,
    hashrate: Arc<ChannelHashrate>,
    miner: Arc<MinerStats>,
    /// Keeps the link's queue open, as the socket task does.
    _submits: mpsc::Receiver<UpstreamSubmit>,
}

impl Harness {
    /// A session under `[proxy]` lines `proxy` and `[failover]` lines `failover`, with its
    /// handshake written.
    fn new(proxy: &str, failover: &str) -> Harness {
        let text = format!(
            "[proxy]\naccount = \"site\"\n{proxy}\n[failover]\n{failover}\n\
             [[pools]]\nname = \"p\"\nurl = \"stratum+tcp://127.0.0.1:1\"\n"
        );
        let config = Arc::new(Config::from_toml(&text).unwrap());
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
        let mut session = PoolSession::new(shared, spec, link, t0);
        session.start(t0);
        let mut h = Harness {
            session,
            t0,
            now: t0,
            written: Vec::new(),
            events: Vec::new(),
            hashrate,
            miner: Arc::new(MinerStats::new(t0, SystemTime::now(), 1.0)),
            _submits: submits,
        };
        h.collect();
        h
    }

    /// Moves what the session wrote and reported into the harness.
    fn collect(&mut self) {
        let out = self.session.take_output();
        for line in out[..].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            self.written.push(serde_json::from_slice(line).unwrap());
        }
        self.events.extend(self.session.take_events());
    }

    /// A line from the pool, at the current time.
    fn pool(&mut self, line: &str) -> Result<(), Ended> {
        let message = Message::parse(line.as_bytes());
        let result = self.session.on_message(message, self.now);
        self.collect();
        result
    }

    /// Ticks every [`TICK`] until `ms` after the start; the first ending, with its time.
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

    /// Answers the handshake as ckpool does (difficulty and a job before the authorize
    /// answer): the connection is ready.
    fn ready(&mut self) {
        self.pool(
            r#"{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}"#,
        )
        .unwrap();
        self.pool(r#"{"id":2,"result":[[["mining.notify","ab"]],"0000aa01",8],"error":null}"#)
            .unwrap();
        self.pool(r#"{"id":null,"method":"mining.set_difficulty","params":[1]}"#)
            .unwrap();
        self.pool(&notify("j0", true)).unwrap();
        self.pool(r#"{"id":3,"result":true,"error":null}"#).unwrap();
        assert!(
            self.events
                .iter()
                .any(|e| matches!(e, SessionEvent::Work(_))),
            "the first job was handed over"
        );
    }

    /// A share of `worker` queued by a miner now.
    fn submit(&mut self, worker: &str) {
        let plan = choose_split(8, 10, SplitLimits::default()).unwrap();
        let lease = PrefixPool::for_plan(&plan).lease().unwrap();
        let share = UpstreamSubmit {
            worker: MinerWorker::new(worker),
            pool_job_id: "j0".into(),
            extranonce2: plan.compose(lease.prefix(), &[0; 7]).unwrap(),
            ntime: 0x5f5e_1000,
            nonce: 2,
            version_bits: None,
            is_block: false,
            difficulty: 1.0,
            miner: self.miner.clone(),
            validated_at: self.now,
        };
        self.session.on_submits(&mut vec![share], self.now);
        self.collect();
    }

    /// The lines written for `method`, in order.
    fn sent(&self, method: &str) -> Vec<&Value> {
        self.written
            .iter()
            .filter(|v| v["method"] == method)
            .collect()
    }

    /// The id of the last `mining.submit` written.
    fn last_submit_id(&self) -> u64 {
        self.sent("mining.submit").last().unwrap()["id"]
            .as_u64()
            .unwrap()
    }

    /// Answers request `id` with `result` (and `error`, JSON).
    fn answer(&mut self, id: u64, result: &str, error: &str) -> Result<(), Ended> {
        self.pool(&format!(
            r#"{{"id":{id},"result":{result},"error":{error}}}"#
        ))
    }
}

/// The failure an ending carries.
fn failure(end: &Ended) -> &UpstreamError {
    match end {
        Ended::Failed(err) => err,
        other => panic!("expected a failure, got {other:?}"),
    }
}
