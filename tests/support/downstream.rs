//! SessionContext harness for the downstream integration tests: a real listener on 127.0.0.1:0,
//! a hub with one channel and no pool, and a line-level miner client with timeouts.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashgate_protocol::extranonce::{ExtranoncePlan, SplitLimits, choose_split};
use hashgate_protocol::stratum::Notify;
use hashgate_protocol::work::Target;
use hashgate_site::config::Config;
use hashgate_site::downstream::{Listener, ListenerCounters, ListenerStatus};
use hashgate_site::hub::{Channel, Hub, MinerJob, MinerJobParts, UpstreamLink, UpstreamSubmit};
use hashgate_site::stats::Registry;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

/// The pool extranonce1 folded into the miners' coinb1.
pub const POOL_E1: [u8; 4] = [0xaa, 0xbb, 0xcc, 0xdd];

/// The job's ntime (submits use it).
pub const NTIME: u32 = 0x6500_0000;

/// A difficulty so low its target is the maximum: every hash meets it.
pub const EASY: f64 = 1e-10;

/// A proxy with a hub and no pool; the test holds the upstream side.
pub struct Harness {
    /// Where miners connect.
    pub addr: SocketAddr,
    /// The hub the listener serves.
    pub hub: Arc<Hub>,
    /// Live miners.
    pub registry: Arc<Registry>,
    /// Cancel to shut the proxy down.
    pub shutdown: CancellationToken,
    /// Shares forwarded upstream.
    pub submits: mpsc::Receiver<UpstreamSubmit>,
    /// The link jobs carry.
    pub link: UpstreamLink,
    /// The pool's extranonce split: 16-byte pool extranonce2, 1-byte prefix, 8 miner
    /// bytes, 7 bytes of padding.
    pub plan: ExtranoncePlan,
    /// Accept-loop counters.
    pub counters: Arc<ListenerCounters>,
    /// Every listener's bound address, settings and counters.
    pub listeners: Vec<Arc<ListenerStatus>>,
    /// The accept loop.
    pub task: JoinHandle<std::io::Result<()>>,
    /// Kept so the hub can announce channels.
    _channels: mpsc::Receiver<Arc<Channel>>,
}

/// The test configuration: 127.0.0.1:0, account `site`, every share valid by default.
pub fn config() -> Config {
    let mut config = Config::from_toml(
        r#"
        [proxy]
        listen = "127.0.0.1:0"
        account = "site"
        initial_difficulty = 1e-10
        [[pools]]
        url = "stratum+tcp://127.0.0.1:1"
        [vardiff]
        min_difficulty = 1e-10
        max_difficulty = 1e12
        "#,
    )
    .expect("test config is valid");
    config.proxy.setup_timeout = Duration::from_secs(5);
    config
}

pub fn plan() -> ExtranoncePlan {
    choose_split(16, 100, SplitLimits::default()).expect("valid split")
}

impl Harness {
    /// Starts a proxy with the sizes already known (as if a pool had connected).
    pub async fn start(config: Config) -> Harness {
        let h = Harness::without_pool(config).await;
        h.hub.set_sizes(&h.plan);
        h
    }

    /// Starts a proxy before any pool has fixed the extranonce sizes.
    pub async fn without_pool(config: Config) -> Harness {
        let (hub, channels) = Hub::new(4);
        let registry = Registry::new();
        let shutdown = CancellationToken::new();
        let listener = Listener::bind(&config, hub.clone(), registry.clone(), shutdown.clone())
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let counters = listener.counters();
        let listeners = listener.statuses();
        let task = tokio::spawn(listener.run());
        let (tx, submits) = mpsc::channel(1024);
        Harness {
            addr,
            hub,
            registry,
            shutdown,
            submits,
            link: UpstreamLink::new("pool".into(), 1, tx),
            plan: plan(),
            counters,
            listeners,
            task,
            _channels: channels,
        }
    }

    /// Publishes a job on channel 0 and returns it.
    pub fn publish(&self, clean_jobs: bool, upstream_target: Target) -> Arc<MinerJob> {
        self.publish_with_mask(clean_jobs, upstream_target, 0x1fff_e000)
    }

    /// Publishes a job with a given pool version mask.
    pub fn publish_with_mask(
        &self,
        clean_jobs: bool,
        upstream_target: Target,
        version_mask: u32,
    ) -> Arc<MinerJob> {
        self.publish_job(self.plan, clean_jobs, upstream_target, version_mask)
    }

    /// Publishes a job built for `plan`.
    pub fn publish_job(
        &self,
        plan: ExtranoncePlan,
        clean_jobs: bool,
        upstream_target: Target,
        version_mask: u32,
    ) -> Arc<MinerJob> {
        let channel = self.hub.channels().into_iter().next().expect("channel 0");
        let notify = sample_notify();
        let job = MinerJob::build(
            self.hub.job_ids.next(),
            MinerJobParts {
                notify: &notify,
                pool_extranonce1: &POOL_E1,
                plan,
                upstream_target,
                version_mask,
                link: self.link.clone(),
                clean_jobs,
            },
            Instant::now(),
        )
        .expect("valid job");
        let job = Arc::new(job);
        channel.publish(job.clone());
        job
    }
}

pub fn sample_notify() -> Notify {
    Notify {
        job_id: "pool-job-7".into(),
        prevhash: [7; 32],
        coinb1: vec![1, 0, 0, 0, 1, 2, 3],
        coinb2: vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
        merkle_branch: vec![[9; 32], [10; 32]],
        version: 0x2000_0000,
        nbits: 0x1d00_ffff,
        ntime: NTIME,
        clean_jobs: false,
    }
}

/// What a miner learned while setting up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Its extranonce1 (the prefix), hex.
    pub extranonce1: String,
    /// Its extranonce2 size.
    pub extranonce2_size: u64,
    /// The first job id, when a job existed.
    pub job_id: Option<String>,
}

/// A miner speaking line-level JSON over real TCP (or TLS over it).
pub struct Miner {
    reader: BufReader<Box<dyn AsyncRead + Unpin + Send>>,
    writer: Box<dyn AsyncWrite + Unpin + Send>,
    next_id: u64,
}

impl Miner {
    /// A miner over an established stream (a TLS client stream, say).
    pub fn over<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S) -> Miner {
        let (r, w) = tokio::io::split(stream);
        Miner {
            reader: BufReader::new(Box::new(r)),
            writer: Box::new(w),
            next_id: 1,
        }
    }

    pub async fn connect(addr: SocketAddr) -> Miner {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Miner::over(stream)
    }

    /// Connects from a chosen loopback source address (127.0.0.x), as a second host would.
    pub async fn connect_from(addr: SocketAddr, source: std::net::Ipv4Addr) -> Miner {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from((source, 0)))
            .expect("bind a loopback source");
        let stream = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Miner::over(stream)
    }

    /// Sends one raw line (a newline is added).
    pub async fn send_raw(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
    }

    /// Sends bytes as they are (no newline), e.g. a line trickled a byte at a time;
    /// `false` once the proxy has closed the connection.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> bool {
        self.writer.write_all(bytes).await.is_ok()
    }

    /// Sends a request and returns its id.
    pub async fn send(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let line = json!({"id": id, "method": method, "params": params}).to_string();
        self.send_raw(&line).await;
        id
    }

    /// The next line, parsed; panics on timeout or EOF.
    pub async fn recv(&mut self) -> Value {
        match self.try_recv().await {
            Some(v) => v,
            None => panic!("connection closed while waiting for a line"),
        }
    }

    /// The next line, or `None` at EOF; panics on timeout.
    pub async fn try_recv(&mut self) -> Option<Value> {
        self.try_recv_within(WAIT).await
    }

    /// The next line, or `None` at EOF; panics if nothing comes within `wait`.
    pub async fn try_recv_within(&mut self, wait: Duration) -> Option<Value> {
        let mut line = String::new();
        let n = tokio::time::timeout(wait, self.reader.read_line(&mut line))
            .await
            .expect("a line in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}")))
    }

    /// Sends a request and returns its answer (asserting the id is echoed).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params).await;
        let answer = self.recv().await;
        assert_eq!(answer["id"], json!(id), "answer to {method}: {answer}");
        answer
    }

    /// Reads until the connection closes (lines before that are returned).
    pub async fn until_closed(&mut self) -> Vec<Value> {
        let mut lines = Vec::new();
        while let Some(v) = self.try_recv().await {
            lines.push(v);
        }
        lines
    }

    /// Subscribe, authorize as `worker`, read set_difficulty and (if `expect_job`) notify.
    pub async fn setup(&mut self, worker: &str, expect_job: bool) -> Setup {
        let sub = self
            .call("mining.subscribe", json!(["test-miner/1.0"]))
            .await;
        assert_eq!(sub["error"], Value::Null, "{sub}");
        let result = &sub["result"];
        let extranonce1 = result[1].as_str().expect("extranonce1").to_owned();
        let extranonce2_size = result[2].as_u64().expect("extranonce2 size");
        let auth = self.call("mining.authorize", json!([worker, "x"])).await;
        assert_eq!(auth["result"], json!(true), "{auth}");
        let diff = self.recv().await;
        assert_eq!(diff["method"], json!("mining.set_difficulty"), "{diff}");
        let job_id = if expect_job {
            let notify = self.recv().await;
            assert_eq!(notify["method"], json!("mining.notify"), "{notify}");
            Some(notify["params"][0].as_str().expect("job id").to_owned())
        } else {
            None
        };
        Setup {
            extranonce1,
            extranonce2_size,
            job_id,
        }
    }

    /// Submits a share and returns the answer.
    pub async fn submit(&mut self, worker: &str, job: &str, e2: &str, nonce: u32) -> Value {
        self.call(
            "mining.submit",
            json!([
                worker,
                job,
                e2,
                format!("{NTIME:08x}"),
                format!("{nonce:08x}")
            ]),
        )
        .await
    }
}

/// The error code of an answer, if any.
pub fn error_code(answer: &Value) -> Option<i64> {
    answer["error"][0].as_i64()
}
