//! The upstream side against scripted fake pools on 127.0.0.1: handshake in ckpool order,
//! job publishing, submit forwarding and verdicts, failover, failback, back-off, pool
//! instructions and shutdown accounting. Every wait is bounded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use hashgate_protocol::extranonce::PrefixLease;
use hashgate_protocol::work::Difficulty;
use hashgate_site::config::Config;
use hashgate_site::hub::{Channel, ChannelControl, Hub, MinerJob, MinerSizes, UpstreamSubmit};
use hashgate_site::stats::{MinerStats, PoolReject, Registry, Undelivered, UpstreamState};

// --- the fake pool -------------------------------------------------------------------

const PREVHASH: &str = "47d6610a400f8febd608dce0fa881fdb2b5af88c7a17104a11ef28ecc0b3a553";
const COINB1: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff3702c9000004df2e056b04edee20040c";
const COINB2: &str = "0a636b706f6f6c2d6c6872102f6c61622d636b706f6f6c2d6c68722fffffffff02bb040395000000001600148ef1526d3ea699928d3507c9a7eac171d79311f10000000000000000266a24aa21a9ed802a63c6dd28ef12704538f7cba3175492c2e4f3def8bad3ec08d673795465e000000000";

/// How a fake pool treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answers everything (submits by nonce, see `answer_submit`).
    Normal,
    /// Keeps the TCP connection but neither answers nor sends anything.
    Silent,
    /// Closes every new connection at once.
    Refuse,
}

enum Cmd {
    Line(String),
    Close,
}

struct Inner {
    mode: Mode,
    extranonce1: String,
    extranonce2_size: usize,
    difficulty: f64,
    /// Job id of the notify sent after subscribe.
    job: String,
    conns: Vec<mpsc::Sender<Cmd>>,
    /// Every line received: (connection number, JSON).
    received: Vec<(usize, Value)>,
    /// When each connection was accepted.
    accepted: Vec<Instant>,
    /// Whether an authorize after a connection's first is answered; ckpool answers none.
    answers_worker_authorize: bool,
}

#[derive(Clone)]
struct FakePool {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

fn notify_line(job: &str, clean: bool) -> String {
    json!({"params":[job, PREVHASH, COINB1, COINB2,
        ["2d5623f6e5e9d382a589a1a98e653255e467110ee03a96c37a36bd7dbf0b3735"],
        "20000000","1b00ffff","6b052edf", clean],"id":null,"method":"mining.notify"})
    .to_string()
}

impl FakePool {
    async fn start(extranonce1: &str, extranonce2_size: usize, job: &str) -> FakePool {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = FakePool {
            addr: listener.local_addr().unwrap(),
            inner: Arc::new(Mutex::new(Inner {
                mode: Mode::Normal,
                extranonce1: extranonce1.into(),
                extranonce2_size,
                difficulty: 0.001,
                job: job.into(),
                conns: Vec::new(),
                received: Vec::new(),
                accepted: Vec::new(),
                answers_worker_authorize: false,
            })),
        };
        let p = pool.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (mode, conn) = {
                    let mut inner = p.inner.lock().unwrap();
                    inner.accepted.push(Instant::now());
                    (inner.mode, inner.accepted.len() - 1)
                };
                if mode == Mode::Refuse {
                    drop(stream);
                    continue;
                }
                let (tx, rx) = mpsc::channel(64);
                p.inner.lock().unwrap().conns.push(tx.clone());
                tokio::spawn(p.clone().serve(stream, conn, tx, rx));
            }
        });
        pool
    }

    async fn serve(
        self,
        stream: tokio::net::TcpStream,
        conn: usize,
        tx: mpsc::Sender<Cmd>,
        mut rx: mpsc::Receiver<Cmd>,
    ) {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Line(line)) => {
                        if write.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    Some(Cmd::Close) | None => return,
                },
                line = lines.next_line() => {
                    let Ok(Some(line)) = line else { return };
                    let value: Value = serde_json::from_str(&line).unwrap();
                    let mode = {
                        let mut inner = self.inner.lock().unwrap();
                        inner.received.push((conn, value.clone()));
                        inner.mode
                    };
                    if mode == Mode::Silent {
                        continue;
                    }
                    for out in self.answer(&value, &tx, conn) {
                        if write.write_all(format!("{out}\n").as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }

    fn answer(&self, req: &Value, tx: &mpsc::Sender<Cmd>, conn: usize) -> Vec<String> {
        let id = req["id"].clone();
        let ok = |result: Value| json!({"id": id, "result": result, "error": null}).to_string();
        let inner = self.inner.lock().unwrap();
        match req["method"].as_str().unwrap_or("") {
            "mining.configure" => vec![ok(
                json!({"version-rolling": true, "version-rolling.mask": "1fffe000"}),
            )],
            // ckpool order: difficulty and the first job go out before authorize is answered.
            "mining.subscribe" => vec![
                ok(json!([
                    [["mining.notify", "ab"]],
                    inner.extranonce1,
                    inner.extranonce2_size
                ])),
                json!({"params":[inner.difficulty],"id":null,"method":"mining.set_difficulty"})
                    .to_string(),
                notify_line(&inner.job, true),
            ],
            "mining.authorize" => {
                let earlier = inner
                    .received
                    .iter()
                    .filter(|(c, v)| *c == conn && method_is(v, "mining.authorize"))
                    .count();
                // `received` already holds this one: the first has a count of 1.
                if earlier <= 1 || inner.answers_worker_authorize {
                    vec![ok(json!(true))]
                } else {
                    vec![]
                }
            }
            "mining.submit" => {
                let nonce = u32::from_str_radix(req["params"][4].as_str().unwrap(), 16).unwrap();
                match nonce {
                    2 => vec![
                        json!({"id": id, "result": false, "error": [23, "Above target", null]})
                            .to_string(),
                    ],
                    3 => vec![
                        json!({"id": id, "result": false, "error": null, "reject-reason": "Stale"})
                            .to_string(),
                    ],
                    4 => vec![
                        json!({"id": id, "result": false, "error": "Worker mismatch"}).to_string(),
                    ],
                    5 => vec![],
                    6 => {
                        let tx = tx.clone();
                        let line = ok(json!(true));
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            let _ = tx.send(Cmd::Line(line)).await;
                        });
                        vec![]
                    }
                    _ => vec![ok(json!(true))],
                }
            }
            _ => vec![
                json!({"id": id, "result": null, "error": [20, "unknown method", null]})
                    .to_string(),
            ],
        }
    }

    fn set_mode(&self, mode: Mode) {
        self.inner.lock().unwrap().mode = mode;
    }

    fn set_job(&self, job: &str) {
        self.inner.lock().unwrap().job = job.into();
    }

    /// Sends a line on every live connection.
    async fn send(&self, line: &str) {
        let conns = self.inner.lock().unwrap().conns.clone();
        for c in conns {
            let _ = c.send(Cmd::Line(line.to_owned())).await;
        }
    }

    /// Closes every live connection.
    async fn close_all(&self) {
        let conns = std::mem::take(&mut self.inner.lock().unwrap().conns);
        for c in conns {
            let _ = c.send(Cmd::Close).await;
        }
    }

    fn received(&self) -> Vec<(usize, Value)> {
        self.inner.lock().unwrap().received.clone()
    }

    fn accepted(&self) -> Vec<Instant> {
        self.inner.lock().unwrap().accepted.clone()
    }

    /// Waits for a received line matching `pred`.
    async fn wait_line(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some((_, v)) = self.received().into_iter().find(|(_, v)| pred(v)) {
                return v;
            }
            assert!(Instant::now() < deadline, "pool never received {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn method_is(v: &Value, name: &str) -> bool {
    v["method"] == name
}

// --- the proxy side ------------------------------------------------------------------

struct Proxy {
    hub: Arc<Hub>,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
    handle: JoinHandle<()>,
    channel: Arc<Channel>,
    lease: PrefixLease,
    work: watch::Receiver<Option<Arc<MinerJob>>>,
}

fn config(pools: &[SocketAddr], failover: &str) -> Arc<Config> {
    let mut text = String::from("[proxy]\naccount = \"site\"\n[failover]\n");
    text.push_str(failover);
    for (i, addr) in pools.iter().enumerate() {
        text.push_str(&format!(
            "[[pools]]\nname = \"p{i}\"\nurl = \"stratum+tcp://{addr}\"\n"
        ));
    }
    Arc::new(Config::from_toml(&text).unwrap())
}

const FAST: &str = "silence_timeout_secs = 3\nreconnect_min_secs = 0.05\nreconnect_max_secs = 0.4\nfailback_after_secs = 1\nsubmit_timeout_secs = 1\n";

async fn start_proxy(config: Arc<Config>) -> Proxy {
    let (hub, channels) = Hub::new(4);
    let registry = Registry::new();
    let shutdown = CancellationToken::new();
    let handle = hashgate_site::upstream::spawn(
        config,
        hub.clone(),
        channels,
        registry.clone(),
        shutdown.clone(),
    );
    tokio::time::timeout(Duration::from_secs(10), hub.wait_sizes())
        .await
        .expect("no pool fixed the miner sizes");
    let (channel, lease) = hub.join().unwrap();
    let work = channel.watch();
    Proxy {
        hub,
        registry,
        shutdown,
        handle,
        channel,
        lease,
        work,
    }
}

impl Proxy {
    /// Waits for a published job matching `pred`.
    async fn job(&mut self, what: &str, pred: impl Fn(&MinerJob) -> bool) -> Arc<MinerJob> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(job) = self.work.borrow_and_update().clone()
                && pred(&job)
            {
                return job;
            }
            match tokio::time::timeout_at(deadline, self.work.changed()).await {
                Ok(Ok(())) => {}
                _ => panic!("no job published: {what}"),
            }
        }
    }

    fn share(
        &self,
        job: &MinerJob,
        miner: &Arc<MinerStats>,
        nonce: u32,
        is_block: bool,
    ) -> UpstreamSubmit {
        let m = job.plan.miner_extranonce2_size();
        let e2: Vec<u8> = (1..=m as u8).collect();
        UpstreamSubmit {
            worker: hashgate_site::hub::MinerWorker::new("site.rig1"),
            pool_job_id: job.pool_job_id.clone(),
            extranonce2: job.plan.compose(self.lease.prefix(), &e2).unwrap(),
            ntime: 0x6b05_2edf,
            nonce,
            version_bits: Some(0x0000_2000),
            is_block,
            difficulty: 1.0,
            miner: miner.clone(),
            validated_at: Instant::now(),
        }
    }

    fn pool_state(&self, name: &str) -> hashgate_site::stats::UpstreamSnapshot {
        self.registry
            .upstreams()
            .into_iter()
            .find(|u| &*u.pool == name)
            .unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("upstream did not shut down")
            .unwrap();
    }
}

fn miner() -> Arc<MinerStats> {
    Arc::new(MinerStats::new(Instant::now(), SystemTime::now(), 1.0))
}

/// Polls until `cond` holds (bounded).
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn index(reason: PoolReject) -> usize {
    PoolReject::ALL.iter().position(|&r| r == reason).unwrap()
}

fn undelivered(reason: Undelivered) -> usize {
    Undelivered::ALL.iter().position(|&r| r == reason).unwrap()
}

// --- the tests -----------------------------------------------------------------------

#[tokio::test]
async fn handshake_in_ckpool_order_publishes_the_job_with_folded_coinb1() {
    let pool = FakePool::start("e02e056b", 8, "6b052edf00000001").await;
    let mut proxy = start_proxy(config(&[pool.addr], FAST)).await;
    let job = proxy.job("first job", |_| true).await;

    let lines = pool.received();
    let methods: Vec<&str> = lines
        .iter()
        .take(3)
        .map(|(_, v)| v["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        ["mining.configure", "mining.subscribe", "mining.authorize"]
    );
    let configure = &lines[0].1;
    assert_eq!(configure["params"][0], json!(["version-rolling"]));
    assert_eq!(
        configure["params"][1]["version-rolling.mask"],
        json!("ffffffff")
    );
    let agent = lines[1].1["params"][0].as_str().unwrap();
    assert!(agent.starts_with("hashgate/"), "{agent}");
    assert_eq!(lines[2].1["params"], json!(["site", "x"]));

    // 8-byte pool extranonce2, 4,096 miners per connection: 2-byte prefix, 6 miner bytes.
    assert_eq!(
        proxy.hub.sizes(),
        Some(MinerSizes {
            prefix_len: 2,
            extranonce2_size: 6
        })
    );
    let mut coinb1 = hex::decode(COINB1).unwrap();
    coinb1.extend_from_slice(&hex::decode("e02e056b").unwrap());
    assert_eq!(job.job.coinb1(), coinb1.as_slice());
    assert_eq!(&*job.pool_job_id, "6b052edf00000001");
    assert!(job.clean_jobs());
    assert_eq!(job.version_mask, 0x1fff_e000);
    assert_eq!(
        job.upstream_target,
        Difficulty::new(0.001).unwrap().to_target()
    );
    assert_eq!(&*job.link.pool, "p0");
    let snap = proxy.pool_state("p0");
    assert_eq!(snap.state, UpstreamState::Active);
    assert_eq!(snap.difficulty, 0.001);
    proxy.stop().await;
}

#[tokio::test]
async fn submits_go_out_under_own_ids_and_every_verdict_is_counted() {
    let pool = FakePool::start("e02e056b", 8, "j1").await;
    let mut proxy = start_proxy(config(&[pool.addr], FAST)).await;
    let job = proxy.job("first job", |_| true).await;
    let m = miner();
    for nonce in 1..=5 {
        job.link
            .submit(proxy.share(&job, &m, nonce, false))
            .unwrap();
    }
    eventually("four verdicts and one timeout", || {
        let s = m.snapshot(Instant::now());
        s.totals.pool_accepted + s.totals.pool_rejected_total() == 4
            && s.totals.undelivered_total() == 1
    })
    .await;
    let s = m.snapshot(Instant::now());
    assert_eq!(s.totals.pool_accepted, 1);
    assert_eq!(s.totals.pool_rejected[index(PoolReject::LowDifficulty)], 1);
    assert_eq!(s.totals.pool_rejected[index(PoolReject::Stale)], 1);
    assert_eq!(s.totals.pool_rejected[index(PoolReject::Unauthorized)], 1);
    assert_eq!(s.totals.undelivered[undelivered(Undelivered::NoAnswer)], 1);
    let up = proxy.pool_state("p0");
    assert_eq!((up.submitted, up.accepted, up.undelivered), (5, 1, 1));
    assert_eq!(up.rejected.iter().sum::<u64>(), 3);

    let lines = pool.received();
    let authorizes = lines
        .iter()
        .filter(|(_, v)| method_is(v, "mining.authorize"))
        .count();
    assert_eq!(authorizes, 1, "the account only, by default");
    let submits: Vec<&Value> = lines
        .iter()
        .filter(|(_, v)| method_is(v, "mining.submit"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(submits.len(), 5);
    let e2 = job
        .plan
        .compose(proxy.lease.prefix(), &[1, 2, 3, 4, 5, 6])
        .unwrap();
    assert_eq!(
        submits[0]["params"],
        json!([
            "site",
            "j1",
            hex::encode(e2.as_bytes()),
            "6b052edf",
            "00000001",
            "00002000"
        ])
    );
    let mut ids: Vec<u64> = submits.iter().map(|v| v["id"].as_u64().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 5, "each submit has its own id");
    assert!(ids.iter().all(|&id| id > 3), "ids after the handshake's");
    proxy.stop().await;
}

#[tokio::test]
async fn a_block_jumps_the_queue() {
    let pool = FakePool::start("e02e056b", 8, "j1").await;
    let mut proxy = start_proxy(config(&[pool.addr], FAST)).await;
    let job = proxy.job("first job", |_| true).await;
    let m = miner();
    // Queued without yielding, so the session finds all of them at once.
    for nonce in 10..20 {
        job.link
            .submit(proxy.share(&job, &m, nonce, false))
            .unwrap();
    }
    job.link.submit(proxy.share(&job, &m, 99, true)).unwrap();
    pool.wait_line("11 submits", |_| {
        pool.received()
            .iter()
            .filter(|(_, v)| method_is(v, "mining.submit"))
            .count()
            == 11
    })
    .await;
    let first = pool
        .received()
        .into_iter()
        .find(|(_, v)| method_is(v, "mining.submit"))
        .unwrap()
        .1;
    assert_eq!(first["params"][4], "00000063", "the block goes first");
    assert_eq!(proxy.pool_state("p0").blocks, 1);
    proxy.stop().await;
}

#[tokio::test]
async fn disconnect_fails_over_to_the_backup_within_a_second() {
    let a = FakePool::start("aaaaaaaa", 8, "ja").await;
    let b = FakePool::start("bbbbbbbb", 8, "jb").await;
    let mut proxy = start_proxy(config(&[a.addr, b.addr], FAST)).await;
    let job = proxy.job("job from a", |j| &*j.link.pool == "p0").await;
    // The backup is subscribed and ready before anything fails.
    b.wait_line("backup subscribe", |v| method_is(v, "mining.subscribe"))
        .await;
    eventually("backup ready", || {
        proxy.pool_state("p1").state == UpstreamState::Backup
    })
    .await;
    let m = miner();
    job.link.submit(proxy.share(&job, &m, 5, false)).unwrap();
    a.wait_line("the unanswered submit", |v| method_is(v, "mining.submit"))
        .await;

    a.set_mode(Mode::Refuse);
    let t0 = Instant::now();
    a.close_all().await;
    let switched = proxy.job("job from b", |j| &*j.link.pool == "p1").await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "failover took {took:?}");
    assert!(
        switched.clean_jobs(),
        "the switch tells miners to drop old work"
    );
    assert_eq!(&*switched.pool_job_id, "jb");
    let mut coinb1 = hex::decode(COINB1).unwrap();
    coinb1.extend_from_slice(&[0xbb; 4]);
    assert_eq!(switched.job.coinb1(), coinb1.as_slice());
    // The share in flight on the dead connection is counted, not lost.
    eventually("pending share counted", || {
        m.snapshot(Instant::now()).totals.undelivered[undelivered(Undelivered::NoAnswer)] == 1
    })
    .await;
    assert_eq!(proxy.pool_state("p0").failovers, 1);
    eventually("backup active", || {
        proxy.pool_state("p1").state == UpstreamState::Active
    })
    .await;
    // A share for the dead connection's job is refused at once and counted.
    assert_eq!(
        job.link.submit(proxy.share(&job, &m, 1, false)),
        Err(Undelivered::UpstreamGone)
    );
    proxy.stop().await;
}

/// Pools `a` (p0, active with a job published) and `b` (p1, subscribed as the backup).
async fn active_and_backup() -> (FakePool, FakePool, Proxy) {
    let a = FakePool::start("aaaaaaaa", 8, "ja").await;
    let b = FakePool::start("bbbbbbbb", 8, "jb").await;
    let mut proxy = start_proxy(config(&[a.addr, b.addr], FAST)).await;
    proxy.job("job from a", |j| &*j.link.pool == "p0").await;
    eventually("backup ready", || {
        proxy.pool_state("p1").state == UpstreamState::Backup
    })
    .await;
    (a, b, proxy)
}

#[tokio::test]
async fn an_idle_pool_is_not_probed_and_is_kept() {
    // ckpool never answers a second authorize on a connection: probing with one made a
    // healthy pool look silent every 3 s (issue #10).
    let (a, _b, proxy) = active_and_backup().await;
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let requests: Vec<String> = a
        .received()
        .iter()
        .map(|(_, v)| v["method"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        requests,
        ["mining.configure", "mining.subscribe", "mining.authorize"],
        "nothing but the handshake to an idle pool"
    );
    assert_eq!(proxy.pool_state("p0").state, UpstreamState::Active);
    assert_eq!(a.accepted().len(), 1, "one connection");
    proxy.stop().await;
}

#[tokio::test]
async fn a_pool_that_stops_answering_shares_fails_over_within_the_silence_timeout() {
    let (a, _b, mut proxy) = active_and_backup().await;
    let job = proxy.job("job from a", |j| &*j.link.pool == "p0").await;
    a.set_mode(Mode::Silent);
    let m = miner();
    let t0 = Instant::now();
    job.link.submit(proxy.share(&job, &m, 1, false)).unwrap();
    let switched = proxy.job("job from b", |j| &*j.link.pool == "p1").await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_millis(4500),
        "unanswered-share failover took {took:?} (timeout 3 s)"
    );
    assert!(switched.clean_jobs());
    eventually("the unanswered share counted", || {
        m.snapshot(Instant::now()).totals.undelivered_total() == 1
    })
    .await;
    proxy.stop().await;
}

#[tokio::test]
async fn a_pool_rejecting_every_share_fails_over_after_the_streak() {
    let a = FakePool::start("aaaaaaaa", 8, "ja").await;
    let b = FakePool::start("bbbbbbbb", 8, "jb").await;
    let mut proxy = start_proxy(config(
        &[a.addr, b.addr],
        &format!("{FAST}reject_streak = 5\n"),
    ))
    .await;
    let job = proxy.job("job from a", |j| &*j.link.pool == "p0").await;
    let m = miner();
    // Nonce 2: "Above target". Four rejects in a row are tolerated...
    for _ in 0..4 {
        job.link.submit(proxy.share(&job, &m, 2, false)).unwrap();
    }
    eventually("four rejects", || {
        m.snapshot(Instant::now()).totals.pool_rejected_total() == 4
    })
    .await;
    assert_eq!(proxy.pool_state("p0").state, UpstreamState::Active);
    // ...an accept resets the run, and five more end the connection.
    job.link.submit(proxy.share(&job, &m, 1, false)).unwrap();
    for _ in 0..5 {
        job.link.submit(proxy.share(&job, &m, 2, false)).unwrap();
    }
    let switched = proxy.job("job from b", |j| &*j.link.pool == "p1").await;
    assert!(switched.clean_jobs());
    let s = m.snapshot(Instant::now()).totals;
    assert_eq!((s.pool_accepted, s.pool_rejected_total()), (1, 9));
    proxy.stop().await;
}

#[tokio::test]
async fn a_stalled_proxy_keeps_a_pool_that_would_have_answered() {
    // The whole runtime (proxy and fake pool alike, one thread) is starved for longer than
    // the silence timeout, as on an overloaded machine: the pool was quiet only because
    // nothing ran. Its connection must survive; only real silence replaces it.
    let (a, _b, mut proxy) = active_and_backup().await;
    let job = proxy.job("job from a", |j| &*j.link.pool == "p0").await;
    let m = miner();
    // Nonce 6: the pool answers 300 ms later, a timer that cannot fire during the stall.
    job.link.submit(proxy.share(&job, &m, 6, false)).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Block the runtime's only thread: no task runs and no timer fires for 4 s, so the
    // share's answer is more than the 3 s timeout late by the wall clock.
    std::thread::sleep(Duration::from_secs(4));
    // Room for the late tick (which used to give the pool up at once) and the answer.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(m.snapshot(Instant::now()).totals.pool_accepted, 1);
    assert_eq!(proxy.pool_state("p0").state, UpstreamState::Active);
    assert_eq!(proxy.pool_state("p1").failovers, 0);
    assert_eq!(a.accepted().len(), 1, "the pool connection was kept");
    proxy.stop().await;
}

#[tokio::test]
async fn fails_back_to_the_preferred_pool_once_it_has_been_healthy() {
    let a = FakePool::start("aaaaaaaa", 8, "ja").await;
    let b = FakePool::start("bbbbbbbb", 8, "jb").await;
    let mut proxy = start_proxy(config(&[a.addr, b.addr], FAST)).await;
    proxy.job("job from a", |j| &*j.link.pool == "p0").await;
    a.set_mode(Mode::Refuse);
    a.close_all().await;
    proxy.job("job from b", |j| &*j.link.pool == "p1").await;
    a.set_job("ja2");
    a.set_mode(Mode::Normal);
    let t0 = Instant::now();
    let back = proxy
        .job("job from a again", |j| &*j.link.pool == "p0")
        .await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "failback waits failback_after (took {took:?})"
    );
    assert!(took < Duration::from_secs(4), "failback took {took:?}");
    assert!(back.clean_jobs());
    assert_eq!(&*back.pool_job_id, "ja2");
    assert_eq!(proxy.pool_state("p1").failovers, 1);
    eventually("states", || {
        proxy.pool_state("p0").state == UpstreamState::Active
            && proxy.pool_state("p1").state == UpstreamState::Backup
    })
    .await;
    proxy.stop().await;
}

#[tokio::test]
async fn reconnects_back_off_exponentially_with_jitter() {
    let a = FakePool::start("aaaaaaaa", 8, "ja").await;
    let mut proxy = start_proxy(config(&[a.addr], FAST)).await;
    proxy.job("job", |_| true).await;
    a.set_mode(Mode::Refuse);
    a.close_all().await;
    let before = a.accepted().len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let attempts = a.accepted();
    let tries = &attempts[before..];
    // Delays 0.05, 0.1, 0.2, 0.4, 0.4 ... (each between half and full): 5–12 tries.
    assert!(
        (5..=14).contains(&tries.len()),
        "{} reconnects in 2.5 s",
        tries.len()
    );
    let gaps: Vec<Duration> = tries.windows(2).map(|w| w[1] - w[0]).collect();
    let late = &gaps[gaps.len().saturating_sub(2)..];
    assert!(
        late.iter().all(|g| *g >= Duration::from_millis(190)),
        "late gaps reach the 0.4 s cap (half of it with jitter): {gaps:?}"
    );
    assert!(gaps[0] < Duration::from_millis(300), "{gaps:?}");
    assert!(proxy.pool_state("p0").reconnects >= 5);
    eventually("pool marked down", || {
        proxy.pool_state("p0").state == UpstreamState::Down
    })
    .await;
    proxy.stop().await;
}

#[tokio::test]
async fn set_difficulty_and_set_extranonce_are_honoured() {
    let pool = FakePool::start("e02e056b", 8, "j1").await;
    let mut proxy = start_proxy(config(&[pool.addr], FAST)).await;
    proxy.job("first job", |_| true).await;
    let mut control = proxy.channel.control();

    pool.send(r#"{"params":[2],"id":null,"method":"mining.set_difficulty"}"#)
        .await;
    pool.send(&notify_line("j2", false)).await;
    let job = proxy.job("j2", |j| &*j.pool_job_id == "j2").await;
    assert_eq!(
        job.upstream_target,
        Difficulty::new(2.0).unwrap().to_target()
    );
    assert!(!job.clean_jobs());
    assert_eq!(proxy.pool_state("p0").difficulty, 2.0);

    // New extranonce1, same size: the job is republished at once with clean_jobs.
    pool.send(r#"{"params":["aabbccdd",8],"id":null,"method":"mining.set_extranonce"}"#)
        .await;
    let job = proxy
        .job("republished", |j| {
            j.job.coinb1().ends_with(&[0xaa, 0xbb, 0xcc, 0xdd])
        })
        .await;
    assert!(job.clean_jobs());
    assert_eq!(&*job.pool_job_id, "j2");

    // A smaller extranonce2 than the miners' sizes need: miners are resized.
    pool.send(r#"{"params":["11223344",4],"id":null,"method":"mining.set_extranonce"}"#)
        .await;
    let job = proxy
        .job("resized", |j| j.plan.pool_extranonce2_size() == 4)
        .await;
    let sizes = MinerSizes {
        prefix_len: 2,
        extranonce2_size: 2,
    };
    assert_eq!(proxy.hub.sizes(), Some(sizes));
    assert_eq!(MinerSizes::of(&job.plan), sizes);
    let msg = tokio::time::timeout(Duration::from_secs(5), control.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg, ChannelControl::Resize(sizes));

    // A new version mask reaches the miners.
    pool.send(r#"{"params":["00ffe000"],"id":null,"method":"mining.set_version_mask"}"#)
        .await;
    let job = proxy.job("mask", |j| j.version_mask == 0x00ff_e000).await;
    assert_eq!(job.version_mask, 0x00ff_e000);
    let msg = tokio::time::timeout(Duration::from_secs(5), control.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg, ChannelControl::VersionMask(0x00ff_e000));
    proxy.stop().await;
}

#[tokio::test]
async fn client_reconnect_moves_the_connection_where_the_pool_says() {
    let a = FakePool::start("aaaaaaaa", 8, "ja").await;
    let c = FakePool::start("cccccccc", 8, "jc").await;
    let mut proxy = start_proxy(config(&[a.addr], FAST)).await;
    proxy.job("job from a", |_| true).await;
    a.set_mode(Mode::Refuse);
    a.send(&format!(
        r#"{{"params":["127.0.0.1",{},0],"id":null,"method":"client.reconnect"}}"#,
        c.addr.port()
    ))
    .await;
    let job = proxy.job("job from c", |j| &*j.pool_job_id == "jc").await;
    assert!(job.clean_jobs());
    assert!(job.job.coinb1().ends_with(&[0xcc; 4]));
    assert_eq!(c.accepted().len(), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn client_reconnect_to_another_host_is_refused_and_the_connection_kept() {
    // Issue #11: a redirect was followed anywhere, and the target received the account
    // and the site's shares. "localhost" reaches `c` too, but is not the configured host.
    let a = FakePool::start("aaaaaaaa", 8, "ja").await;
    let c = FakePool::start("cccccccc", 8, "jc").await;
    let mut proxy = start_proxy(config(&[a.addr], FAST)).await;
    let job = proxy.job("job from a", |_| true).await;
    a.send(&format!(
        r#"{{"params":["localhost",{},0],"id":null,"method":"client.reconnect"}}"#,
        c.addr.port()
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(c.accepted().len(), 0, "nothing reached the other host");
    assert_eq!(a.accepted().len(), 1, "the pool connection was kept");
    // Shares still flow to the configured pool.
    let m = miner();
    job.link.submit(proxy.share(&job, &m, 1, false)).unwrap();
    eventually("accepted by a", || {
        m.snapshot(Instant::now()).totals.pool_accepted == 1
    })
    .await;
    proxy.stop().await;
}

#[tokio::test]
async fn client_reconnect_to_a_listed_host_is_followed() {
    let a = FakePool::start("aaaaaaaa", 8, "ja").await;
    let c = FakePool::start("cccccccc", 8, "jc").await;
    let text = format!(
        "[proxy]\naccount = \"site\"\n[failover]\n{FAST}[[pools]]\nname = \"p0\"\nurl = \"stratum+tcp://{}\"\nreconnect_hosts = [\"LocalHost\"]\n",
        a.addr
    );
    let mut proxy = start_proxy(Arc::new(Config::from_toml(&text).unwrap())).await;
    proxy.job("job from a", |_| true).await;
    a.set_mode(Mode::Refuse);
    a.send(&format!(
        r#"{{"params":["localhost",{},0],"id":null,"method":"client.reconnect"}}"#,
        c.addr.port()
    ))
    .await;
    let job = proxy.job("job from c", |j| &*j.pool_job_id == "jc").await;
    assert!(job.clean_jobs());
    assert_eq!(c.accepted().len(), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn shutdown_delivers_what_it_can_and_counts_the_rest() {
    let pool = FakePool::start("e02e056b", 8, "j1").await;
    let mut proxy = start_proxy(config(&[pool.addr], FAST)).await;
    let job = proxy.job("first job", |_| true).await;
    let m = miner();
    // 6: answered after 300 ms (inside the grace period); 5: never answered.
    job.link.submit(proxy.share(&job, &m, 6, false)).unwrap();
    job.link.submit(proxy.share(&job, &m, 5, false)).unwrap();
    pool.wait_line("both submits", |_| {
        pool.received()
            .iter()
            .filter(|(_, v)| method_is(v, "mining.submit"))
            .count()
            == 2
    })
    .await;
    let t0 = Instant::now();
    let link = job.link.clone();
    let registry = proxy.registry.clone();
    proxy.stop().await;
    assert!(t0.elapsed() < Duration::from_secs(3));
    let s = m.snapshot(Instant::now());
    assert_eq!(
        s.totals.pool_accepted, 1,
        "the answer inside the grace period counts"
    );
    assert_eq!(s.totals.undelivered[undelivered(Undelivered::Shutdown)], 1);
    assert_eq!(s.totals.undelivered_total(), 1);
    assert!(link.is_closed(), "no new work taken after shutdown");
    assert_eq!(registry.upstreams()[0].state, UpstreamState::Down);
}

#[tokio::test]
async fn a_pool_with_too_small_an_extranonce2_is_skipped_for_the_next() {
    // Two bytes leave no room for a prefix and a rollable miner part.
    let tiny = FakePool::start("aaaaaaaa", 2, "ja").await;
    let b = FakePool::start("bbbbbbbb", 4, "jb").await;
    let mut proxy = start_proxy(config(&[tiny.addr, b.addr], FAST)).await;
    let job = proxy.job("job from b", |j| &*j.link.pool == "p1").await;
    assert_eq!(
        proxy.hub.sizes(),
        Some(MinerSizes {
            prefix_len: 2,
            extranonce2_size: 2
        })
    );
    assert_eq!(job.plan.pool_extranonce2_size(), 4);
    eventually("tiny pool marked down", || {
        proxy.pool_state("p0").reconnects >= 1
    })
    .await;
    proxy.stop().await;
}

#[tokio::test]
async fn a_second_channel_gets_its_own_pool_connection() {
    let pool = FakePool::start("e02e056b", 8, "j1").await;
    let text = format!(
        "[proxy]\naccount = \"site\"\nminers_per_upstream = 100\n[failover]\n{FAST}[[pools]]\nname = \"p0\"\nurl = \"stratum+tcp://{}\"\n",
        pool.addr
    );
    let mut proxy = start_proxy(Arc::new(Config::from_toml(&text).unwrap())).await;
    let first = proxy.job("channel 0 job", |_| true).await;
    // A 1-byte prefix: 256 miners per channel; the 257th opens channel 1.
    assert_eq!(proxy.hub.sizes().unwrap().prefix_len, 1);
    let mut leases = Vec::new();
    let second = loop {
        let (channel, lease) = proxy.hub.join().unwrap();
        leases.push(lease);
        if channel.index() == 1 {
            break channel;
        }
    };
    assert_eq!(leases.len(), 256, "channel 0 held 255 more miners");
    let mut work = second.watch();
    let job = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(job) = work.borrow_and_update().clone() {
                return job;
            }
            work.changed().await.unwrap();
        }
    })
    .await
    .expect("channel 1 got no job");
    assert_ne!(job.link.connection, first.link.connection);
    assert!(job.clean_jobs());
    assert_eq!(pool.accepted().len(), 2, "one pool connection per channel");
    proxy.stop().await;
}

/// `upstream_worker = "per-miner"` on one pool `p0` whose user is `other`.
fn per_miner_config(pool: SocketAddr) -> Arc<Config> {
    let text = format!(
        "[proxy]\naccount = \"site\"\nupstream_worker = \"per-miner\"\n[failover]\n{FAST}[[pools]]\nname = \"p0\"\nurl = \"stratum+tcp://{pool}\"\nuser = \"other\"\npassword = \"pw\"\n",
    );
    Arc::new(Config::from_toml(&text).unwrap())
}

fn submit_workers(pool: &FakePool) -> Vec<String> {
    pool.received()
        .iter()
        .filter(|(_, v)| method_is(v, "mining.submit"))
        .map(|(_, v)| v["params"][0].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn per_miner_names_are_used_once_the_pool_accepts_them() {
    let pool = FakePool::start("e02e056b", 8, "j1").await;
    pool.inner.lock().unwrap().answers_worker_authorize = true;
    let mut proxy = start_proxy(per_miner_config(pool.addr)).await;
    let job = proxy.job("first job", |_| true).await;
    let m = miner();
    job.link.submit(proxy.share(&job, &m, 1, false)).unwrap();
    eventually("one accept", || {
        m.snapshot(Instant::now()).totals.pool_accepted == 1
    })
    .await;
    job.link.submit(proxy.share(&job, &m, 1, false)).unwrap();
    eventually("two accepts", || {
        m.snapshot(Instant::now()).totals.pool_accepted == 2
    })
    .await;
    let lines = pool.received();
    assert_eq!(lines[2].1["params"], json!(["other", "pw"]));
    let worker_auths: Vec<&Value> = lines
        .iter()
        .map(|(_, v)| v)
        .filter(|v| method_is(v, "mining.authorize") && v["params"][0] == "other.rig1")
        .collect();
    assert_eq!(worker_auths.len(), 1, "authorized once per connection");
    assert_eq!(worker_auths[0]["params"], json!(["other.rig1", "pw"]));
    assert_eq!(
        submit_workers(&pool),
        ["other", "other.rig1"],
        "the account until the pool said true"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn per_miner_names_fall_back_to_the_account_where_the_pool_ignores_them() {
    // ckpool's way: a second authorize on a connection is never answered, and a submit
    // under that name would be refused as "Worker mismatch".
    let pool = FakePool::start("e02e056b", 8, "j1").await;
    let mut proxy = start_proxy(per_miner_config(pool.addr)).await;
    let job = proxy.job("first job", |_| true).await;
    let m = miner();
    job.link.submit(proxy.share(&job, &m, 1, false)).unwrap();
    // Past the 3 s answer timeout of the worker's authorize.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    for _ in 0..3 {
        job.link.submit(proxy.share(&job, &m, 1, false)).unwrap();
    }
    eventually("four accepts", || {
        m.snapshot(Instant::now()).totals.pool_accepted == 4
    })
    .await;
    assert_eq!(submit_workers(&pool), ["other"; 4]);
    assert_eq!(pool.accepted().len(), 1, "the connection was kept");
    let worker_auths = pool
        .received()
        .iter()
        .filter(|(_, v)| method_is(v, "mining.authorize") && v["params"][0] == "other.rig1")
        .count();
    assert_eq!(
        worker_auths, 1,
        "asked once, then given up on this connection"
    );
    proxy.stop().await;
}
