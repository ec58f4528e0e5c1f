//! An in-memory pair for testing a miner session: the [`MinerSession`] state machine, a
//! real [`Hub`] and channel, a fake pool behind the jobs' [`UpstreamLink`], and a clock the
//! test moves. No socket, no runtime, no sleep: a test reads like a transcript, and an
//! hour of vardiff takes microseconds.
//!
//! [`Harness`] plays both the connection task and the miner. As the connection it feeds
//! the session each line, job, control message and tick in the order `connection.rs`
//! does (jobs before control messages; ticks when the clock passes them), and, like a
//! miner that reads promptly, moves every queued line to the miner's inbox at once, so a
//! job is always taken (the connection takes jobs only with an empty queue). As the miner
//! it remembers what it was told (extranonce, difficulty, jobs) and can grind real shares
//! at a given difficulty.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::{broadcast, mpsc, watch};

use crate::config::Config;
use crate::hub::{
    Channel, ChannelControl, Hub, MinerJob, MinerJobParts, UpstreamLink, UpstreamSubmit,
};
use crate::stats::miner::MinerSnapshot;
use crate::stats::{PoolReject, Registry};
use hashgate_protocol::extranonce::{ExtranoncePlan, SplitLimits, choose_split};
use hashgate_protocol::stratum::{Message, Method, Notify, Request};
use hashgate_protocol::work::{ShareInput, SubmitPolicy, Target, validate};

use super::end::SessionEnd;
use super::outbox::Outbox;
use super::session::{Effect, MinerSession};
use super::settings::Settings;

/// The pool extranonce1 folded into every miner-facing coinb1.
pub(super) const POOL_E1: [u8; 4] = [0xaa, 0xbb, 0xcc, 0xdd];

/// Every job's ntime; submits use it.
pub(super) const NTIME: u32 = 0x6500_0000;

/// The version mask the test pool grants (BIP320's general-purpose bits).
pub(super) const POOL_MASK: u32 = 0x1fff_e000;

/// Jobs a harness pool gives shares this much room before `queue_full`.
const POOL_QUEUE: usize = 1024;

/// The site configuration the tests start from: account `site`, a 5 s vardiff target,
/// difficulties anywhere in `[2⁻⁴⁰, 2⁴⁰]`, starting at [`START`].
pub(super) fn config() -> Config {
    let toml = format!(
        "[proxy]\naccount = \"site\"\ninitial_difficulty = {START:e}\n\
         [[pools]]\nurl = \"stratum+tcp://127.0.0.1:1\"\n\
         [vardiff]\nmin_difficulty = {:e}\nmax_difficulty = {:e}\n",
        2f64.powi(-40),
        2f64.powi(40),
    );
    Config::from_toml(&toml).expect("harness config is valid")
}

/// The starting difficulty of [`config`]: 2⁻²⁴, so a share takes about 256 hashes to
/// grind and a test can afford real SHA-256d shares at it and well above it.
pub(super) const START: f64 = 1.0 / 16_777_216.0;

/// The pool's split the harness starts with: a 16-byte pool extranonce2, a 1-byte prefix,
/// 8 miner bytes and 7 bytes of padding.
pub(super) fn plan() -> ExtranoncePlan {
    split(16, 100)
}

/// The split for a pool extranonce2 of `pool_e2` bytes serving `miners` miners.
pub(super) fn split(pool_e2: usize, miners: usize) -> ExtranoncePlan {
    choose_split(pool_e2, miners, SplitLimits::default()).expect("a valid split")
}

/// A pool's answer to a forwarded share.
#[derive(Debug, Clone, Copy)]
pub(super) enum Verdict {
    /// The pool took it.
    Accepted,
    /// The pool refused it.
    Rejected(PoolReject),
}

/// The pool side of the jobs' link: what reaches it, and its answers as the test dictates.
#[derive(Debug)]
pub(super) struct FakePool {
    /// Carried by every job the harness publishes.
    link: UpstreamLink,
    /// Shares that met the upstream target.
    submits: mpsc::Receiver<UpstreamSubmit>,
}

impl FakePool {
    /// A pool whose submit queue holds `capacity` shares.
    pub(super) fn new(capacity: usize) -> FakePool {
        FakePool::named("pool", 1, capacity)
    }

    /// A pool of another name and connection number (a second group's pool).
    pub(super) fn named(name: &str, connection: u64, capacity: usize) -> FakePool {
        let (tx, submits) = mpsc::channel(capacity.max(1));
        FakePool {
            link: UpstreamLink::new(name.into(), connection, tx),
            submits,
        }
    }

    /// Every share forwarded since the last call, oldest first.
    pub(super) fn take(&mut self) -> Vec<UpstreamSubmit> {
        std::iter::from_fn(|| self.submits.try_recv().ok()).collect()
    }

    /// Answers a share as the upstream connection would: against the miner it came from.
    pub(super) fn answer(&self, share: &UpstreamSubmit, verdict: Verdict) {
        match verdict {
            Verdict::Accepted => share.miner.record_pool_accepted(),
            Verdict::Rejected(reason) => share.miner.record_pool_rejected(reason),
        }
    }

    /// Closes the submit queue, as a pool connection that has gone away.
    pub(super) fn disconnect(&mut self) {
        self.submits.close();
    }
}

/// What the miner was told.
#[derive(Debug, Default)]
pub(super) struct MinerView {
    /// Its extranonce1 (the prefix), from subscribe or `mining.set_extranonce`.
    pub(super) extranonce1: Vec<u8>,
    /// Its extranonce2 size.
    pub(super) extranonce2_size: usize,
    /// The difficulty last set.
    pub(super) difficulty: Option<f64>,
    /// The job id last notified.
    pub(super) job: Option<String>,
    /// The version mask last granted.
    pub(super) version_mask: Option<u32>,
}

/// What the control feed holds for the session.
#[derive(Debug)]
enum Control {
    /// A message in order.
    Message(ChannelControl),
    /// Some were dropped: the miner lagged behind the broadcast.
    Lost,
}

/// The job and control feeds of the miner's channel, as the connection holds them.
#[derive(Debug)]
struct Feeds {
    work: watch::Receiver<Option<Arc<MinerJob>>>,
    control: broadcast::Receiver<ChannelControl>,
}

/// One miner session wired to a hub, a fake pool and a synthetic clock.
#[derive(Debug)]
pub(super) struct Harness {
    session: MinerSession,
    out: Outbox,
    /// The hub the session leases from; the test plays the upstream side on it.
    pub(super) hub: Arc<Hub>,
    /// Kept so the hub can announce channels.
    _new_channels: mpsc::Receiver<Arc<Channel>>,
    /// Where the session lists its miner.
    pub(super) registry: Arc<Registry>,
    /// Receives forwarded shares.
    pub(super) pool: FakePool,
    /// The split jobs are built for.
    pub(super) plan: ExtranoncePlan,
    /// Every job published, by id, for grinding shares on it.
    jobs: HashMap<String, Arc<MinerJob>>,
    t0: Instant,
    wall0: SystemTime,
    now: Instant,
    feeds: Option<Feeds>,
    /// Lines the session sent, not yet read by the test.
    inbox: VecDeque<Value>,
    /// Set once the session has closed (or must close once its lines are written).
    closed: Option<SessionEnd>,
    /// What the miner knows.
    pub(super) miner: MinerView,
    /// From the settings, for tests that count in intervals.
    target_interval: Duration,
    next_id: u64,
    /// Varies the extranonce2 of every share found, so two finds are never duplicates.
    finds: u64,
}

impl Harness {
    /// A session on a hub whose first pool has fixed the sizes ([`plan`]).
    pub(super) fn new(config: &Config) -> Harness {
        let h = Harness::without_pool(config);
        h.hub.set_sizes(&h.plan);
        h
    }

    /// A session on a hub no pool has connected to yet.
    pub(super) fn without_pool(config: &Config) -> Harness {
        Harness::on_hub(config, Hub::new(4))
    }

    /// A session on a hub serving the pool groups of `split`, the first pool connected.
    pub(super) fn with_split(config: &Config, split: crate::hub::SplitBook) -> Harness {
        let h = Harness::on_hub(config, Hub::with_split(4, split));
        h.hub.set_sizes(&h.plan);
        h
    }

    fn on_hub(
        config: &Config,
        (hub, new_channels): (Arc<Hub>, mpsc::Receiver<Arc<Channel>>),
    ) -> Harness {
        let registry = Registry::new();
        let t0 = Instant::now();
        let wall0 = SystemTime::now();
        let settings = Arc::new(Settings::from_config(config));
        let peer = SocketAddr::from(([192, 0, 2, 7], 4028));
        let session = MinerSession::new(
            settings.clone(),
            hub.clone(),
            registry.clone(),
            peer,
            t0,
            wall0,
        )
        .expect("valid vardiff settings");
        Harness {
            session,
            out: Outbox::new(settings.outbound_queue),
            hub,
            _new_channels: new_channels,
            registry,
            pool: FakePool::new(POOL_QUEUE),
            plan: plan(),
            jobs: HashMap::new(),
            t0,
            wall0,
            now: t0,
            feeds: None,
            inbox: VecDeque::new(),
            closed: None,
            miner: MinerView::default(),
            target_interval: settings.vardiff.target_interval,
            next_id: 1,
            finds: 0,
        }
    }

    /// The synthetic time now.
    pub(super) fn now(&self) -> Instant {
        self.now
    }

    /// Time since the session started.
    pub(super) fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// The vardiff target interval of the session's settings.
    pub(super) fn target_interval(&self) -> Duration {
        self.target_interval
    }

    /// Why the session closed, if it has.
    pub(super) fn closed(&self) -> Option<&SessionEnd> {
        self.closed.as_ref()
    }

    /// Moves the clock on by `by`, running every vardiff tick that falls due on the way
    /// at its own time, as the connection's timer would.
    pub(super) fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        while self.closed.is_none() {
            let Some(tick) = self.session.next_tick().filter(|t| *t <= until) else {
                break;
            };
            self.now = self.now.max(tick);
            let now = self.now;
            let result = self.session.on_tick(now, &mut self.out);
            self.settle(result.map(|()| Effect::None));
        }
        self.now = until;
    }

    /// Moves the clock to `at` (not backwards); see [`Harness::advance`].
    pub(super) fn advance_to(&mut self, at: Instant) {
        self.advance(at.saturating_duration_since(self.now));
    }

    /// When the session next wants its tick, if it does.
    pub(super) fn next_tick(&self) -> Option<Instant> {
        self.session.next_tick()
    }

    /// Sends one raw line from the miner.
    pub(super) fn send_raw(&mut self, line: &str) {
        assert!(
            self.closed.is_none(),
            "the session has closed ({:?}); it reads nothing more",
            self.closed
        );
        let bytes = line.as_bytes();
        let parsed = Message::parse(bytes);
        let (now, wall) = (self.now, self.wall());
        let result = self.session.handle(parsed, bytes, now, wall, &mut self.out);
        self.settle(result);
    }

    /// Sends a request and returns its id.
    pub(super) fn send(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let line = json!({"id": id, "method": method, "params": params}).to_string();
        self.send_raw(&line);
        id
    }

    /// Sends a request and returns its answer, which must be the next line.
    pub(super) fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params);
        let answer = self.recv();
        assert_eq!(answer["id"], json!(id), "answer to {method}: {answer}");
        answer
    }

    /// The next line the miner received; panics when there is none.
    pub(super) fn recv(&mut self) -> Value {
        self.try_recv().expect("a line for the miner")
    }

    /// The next line the miner received, if any.
    pub(super) fn try_recv(&mut self) -> Option<Value> {
        self.inbox.pop_front()
    }

    /// Every line the miner received and has not read, oldest first.
    pub(super) fn drain(&mut self) -> Vec<Value> {
        self.inbox.drain(..).collect()
    }

    /// The methods of the unread lines (`"answer"` for answers), for order checks.
    pub(super) fn drain_methods(&mut self) -> Vec<String> {
        self.drain()
            .iter()
            .map(|v| v["method"].as_str().unwrap_or("answer").to_owned())
            .collect()
    }

    /// Subscribes and authorizes `worker`, reading the answers, the first difficulty and,
    /// when a job exists, the first notify; returns the first job's id.
    pub(super) fn setup(&mut self, worker: &str) -> Option<String> {
        let sub = self.call("mining.subscribe", json!(["harness-miner/1.0"]));
        assert_eq!(sub["error"], Value::Null, "{sub}");
        let auth = self.call("mining.authorize", json!([worker, "x"]));
        assert_eq!(auth["result"], json!(true), "{auth}");
        let diff = self.recv();
        assert_eq!(diff["method"], json!("mining.set_difficulty"), "{diff}");
        let notify = self.try_recv()?;
        assert_eq!(notify["method"], json!("mining.notify"), "{notify}");
        notify["params"][0].as_str().map(str::to_owned)
    }

    /// Publishes a job on channel 0 for the harness plan with the pool's mask.
    pub(super) fn publish(&mut self, clean_jobs: bool, upstream_target: Target) -> Arc<MinerJob> {
        self.publish_job(self.plan, clean_jobs, upstream_target, POOL_MASK)
    }

    /// Publishes a job built for `plan`, with the pool's version mask, on channel 0.
    pub(super) fn publish_job(
        &mut self,
        plan: ExtranoncePlan,
        clean_jobs: bool,
        upstream_target: Target,
        version_mask: u32,
    ) -> Arc<MinerJob> {
        let channel = self.hub.channels().into_iter().next().expect("channel 0");
        let notify = Notify {
            job_id: "pool-job-7".into(),
            prevhash: [7; 32],
            coinb1: vec![1, 0, 0, 0, 1, 2, 3],
            coinb2: vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
            merkle_branch: vec![[9; 32], [10; 32]],
            version: 0x2000_0000,
            nbits: 0x1d00_ffff,
            ntime: NTIME,
            clean_jobs,
        };
        let parts = MinerJobParts {
            notify: &notify,
            pool_extranonce1: &POOL_E1,
            plan,
            upstream_target,
            version_mask,
            link: self.pool.link.clone(),
            clean_jobs,
        };
        let job = Arc::new(MinerJob::build(self.hub.job_ids.next(), parts, self.now).expect("job"));
        self.jobs.insert(job.id.to_string(), job.clone());
        channel.publish(job.clone());
        self.pump();
        job
    }

    /// Publishes a job of [`plan`] on channel 0 for pool group `group`, carrying `pool`'s
    /// link (each group's jobs come from its own pool connection).
    pub(super) fn publish_for_group(
        &mut self,
        group: usize,
        pool: &FakePool,
        clean_jobs: bool,
    ) -> Arc<MinerJob> {
        let channel = self.hub.channels().into_iter().next().expect("channel 0");
        let notify = Notify {
            job_id: format!("group{group}-job"),
            prevhash: [7; 32],
            coinb1: vec![1, 0, 0, 0, 1, 2, 3, group as u8],
            coinb2: vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
            merkle_branch: vec![[9; 32], [10; 32]],
            version: 0x2000_0000,
            nbits: 0x1d00_ffff,
            ntime: NTIME,
            clean_jobs,
        };
        let parts = MinerJobParts {
            notify: &notify,
            pool_extranonce1: &POOL_E1,
            plan: self.plan,
            upstream_target: Target::MAX,
            version_mask: POOL_MASK,
            link: pool.link.clone(),
            clean_jobs,
        };
        let job = Arc::new(MinerJob::build(self.hub.job_ids.next(), parts, self.now).expect("job"));
        self.jobs.insert(job.id.to_string(), job.clone());
        channel.publish_to(group, job.clone());
        self.pump();
        job
    }

    /// Sends a control message to every miner of channel 0.
    pub(super) fn broadcast(&mut self, control: ChannelControl) {
        let channel = self.hub.channels().into_iter().next().expect("channel 0");
        channel.broadcast(control);
        self.pump();
    }

    /// Lets the session take whatever its feeds hold (after the test changed the hub
    /// directly, e.g. [`Hub::set_sizes`]).
    pub(super) fn pump(&mut self) {
        loop {
            self.flush();
            if self.closed.is_some() {
                return;
            }
            if let Some(job) = self.next_job() {
                let now = self.now;
                let result = self.session.on_job(job, now, &mut self.out);
                self.settle_quietly(result.map(|()| Effect::None));
                continue;
            }
            let Some(control) = self.next_control() else {
                return;
            };
            let now = self.now;
            let result = match control {
                Control::Message(control) => self.session.on_control(control, now, &mut self.out),
                Control::Lost => self.session.on_control_lost(&mut self.out),
            };
            self.settle_quietly(result);
        }
    }

    /// Submits with `worker` on `job` and returns the answer.
    pub(super) fn submit(
        &mut self,
        worker: &str,
        job: &str,
        extranonce2: &[u8],
        nonce: u32,
    ) -> Value {
        self.submit_rolled(worker, job, extranonce2, nonce, None)
    }

    /// Submits with optional version bits and returns the answer.
    pub(super) fn submit_rolled(
        &mut self,
        worker: &str,
        job: &str,
        extranonce2: &[u8],
        nonce: u32,
        version_bits: Option<u32>,
    ) -> Value {
        let mut params = vec![
            json!(worker),
            json!(job),
            json!(hex::encode(extranonce2)),
            json!(format!("{NTIME:08x}")),
            json!(format!("{nonce:08x}")),
        ];
        if let Some(bits) = version_bits {
            params.push(json!(format!("{bits:08x}")));
        }
        self.call("mining.submit", Value::Array(params))
    }

    /// A share on `job` (extranonce2, nonce) for the miner's current extranonce whose hash
    /// difficulty lies in `[at_least, below)`, found by grinding nonces as a miner would.
    /// Every call starts from a new extranonce2, so no two finds are the same share.
    pub(super) fn find_share(&mut self, job: &str, at_least: f64, below: f64) -> (Vec<u8>, u32) {
        self.find_rolled_share(job, at_least, below, None)
    }

    /// [`Harness::find_share`] with version bits, rolled over the job's version within
    /// the mask the miner was granted. Bits outside it make a share the session refuses
    /// before hashing, so for those any nonce is returned.
    pub(super) fn find_rolled_share(
        &mut self,
        job: &str,
        at_least: f64,
        below: f64,
        version_bits: Option<u32>,
    ) -> (Vec<u8>, u32) {
        self.finds += 1;
        let job = self
            .jobs
            .get(super::jobs::base_id(job))
            .expect("a job the harness published");
        let mut extranonce2 = vec![0; self.miner.extranonce2_size];
        for (byte, seed) in extranonce2.iter_mut().zip(self.finds.to_le_bytes()) {
            *byte = seed;
        }
        let policy = SubmitPolicy {
            version_mask: self.miner.version_mask.unwrap_or(0) & job.version_mask,
            ..SubmitPolicy::new(extranonce2.len(), Target::MAX)
        };
        if version_bits.is_some_and(|bits| bits & !policy.version_mask != 0) {
            return (extranonce2, 0);
        }
        // Enough for a 2⁻¹⁰ share a thousand times over; a test asking for more is wrong.
        for nonce in 0..(1u32 << 24) {
            let input = ShareInput {
                extranonce1: &self.miner.extranonce1,
                extranonce2: &extranonce2,
                ntime: NTIME,
                nonce,
                version_bits,
            };
            let share = validate(&job.job, &input, &policy).expect("a well-formed share");
            let d = share.difficulty();
            if d >= at_least && d < below {
                return (extranonce2, nonce);
            }
        }
        panic!("no share in [{at_least}, {below}) within 2^24 nonces");
    }

    /// The miner's snapshot in the registry (after authorize).
    pub(super) fn snapshot(&self) -> MinerSnapshot {
        let miners = self.registry.miners(self.now);
        let [(_, snapshot)] = miners.as_slice() else {
            panic!("one miner listed, got {}", miners.len());
        };
        snapshot.clone()
    }

    fn wall(&self) -> SystemTime {
        self.wall0 + (self.now - self.t0)
    }

    fn settle(&mut self, result: Result<Effect, SessionEnd>) {
        self.settle_quietly(result);
        self.pump();
    }

    /// Applies an effect as the connection does, without pumping.
    fn settle_quietly(&mut self, result: Result<Effect, SessionEnd>) {
        match result {
            Ok(Effect::None) => {}
            Ok(Effect::Channel(channel)) => {
                self.feeds = Some(Feeds {
                    work: channel.watch_group(self.session.group()),
                    control: channel.control(),
                });
            }
            Ok(Effect::Close(end)) | Err(end) => {
                self.closed.get_or_insert(end);
            }
        }
        self.flush();
    }

    /// Takes every queued line as the miner reads it, remembering what it is told.
    fn flush(&mut self) {
        loop {
            let line = {
                let mut slices = [std::io::IoSlice::new(&[])];
                match self.out.chunks(&mut slices) {
                    0 => break,
                    _ => Bytes::copy_from_slice(&slices[0]),
                }
            };
            self.out.advance(line.len());
            let value: Value = serde_json::from_slice(&line)
                .unwrap_or_else(|e| panic!("the session sent bad JSON {line:?}: {e}"));
            self.observe(&value);
            // serde_json's default float parsing may miss by an ulp; the protocol parser
            // reads a difficulty exactly, as a miner must.
            if let Ok(Message::Request(Request {
                method: Method::SetDifficulty(d),
                ..
            })) = Message::parse(&line)
            {
                self.miner.difficulty = Some(d);
            }
            self.inbox.push_back(value);
        }
    }

    fn observe(&mut self, line: &Value) {
        let params = &line["params"];
        match line["method"].as_str() {
            Some("mining.notify") => self.miner.job = params[0].as_str().map(str::to_owned),
            Some("mining.set_extranonce") => {
                self.miner.extranonce1 = hex_param(&params[0]);
                self.miner.extranonce2_size = size_param(&params[1]);
            }
            Some("mining.set_version_mask") => {
                self.miner.version_mask = mask_param(&params[0]);
            }
            _ => {
                let result = &line["result"];
                // The subscribe answer: [[subscriptions], extranonce1, extranonce2_size].
                if result[0].is_array() && result[1].is_string() {
                    self.miner.extranonce1 = hex_param(&result[1]);
                    self.miner.extranonce2_size = size_param(&result[2]);
                }
                if let Some(mask) = result.get("version-rolling.mask") {
                    self.miner.version_mask = mask_param(mask);
                }
            }
        }
    }

    fn next_job(&mut self) -> Option<Arc<MinerJob>> {
        if !self.session.is_authorized() {
            return None;
        }
        let work = &mut self.feeds.as_mut()?.work;
        if !work.has_changed().unwrap_or(false) {
            return None;
        }
        work.borrow_and_update().clone()
    }

    fn next_control(&mut self) -> Option<Control> {
        let feeds = self.feeds.as_mut()?;
        match feeds.control.try_recv() {
            Ok(control) => Some(Control::Message(control)),
            Err(TryRecvError::Lagged(_)) => Some(Control::Lost),
            Err(TryRecvError::Empty | TryRecvError::Closed) => None,
        }
    }
}

fn hex_param(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap_or_default()).expect("hex")
}

fn size_param(v: &Value) -> usize {
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .expect("a size")
}

fn mask_param(v: &Value) -> Option<u32> {
    v.as_str().and_then(|s| u32::from_str_radix(s, 16).ok())
}
