//! A simulated ASIC: a Stratum V1 client that really hashes, at a throttled rate.
//!
//! It builds each coinbase from `coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2`, folds the
//! merkle branch, hashes 80-byte headers with SHA-256d (through `hashgate_protocol::work`, for speed:
//! the simulated pool is the independent judge) and submits what meets its target.
//!
//! | pool says | the ASIC does |
//! |---|---|
//! | `mining.set_difficulty` | applies it **at once**, to the work in hand (the pool accepts either way) |
//! | `mining.notify` | switches to the new job at once; `clean_jobs` also makes the old ids stale |
//! | `mining.set_extranonce` | takes the new extranonce1/size and restarts the current job |
//! | `mining.set_version_mask` | rolls within the new mask ∩ its own |
//! | `client.reconnect` | closes, waits `wait` s, connects to host:port (same server when empty) |
//! | connection lost, subscribe refused | reconnects with exponential back-off |
//! | authorize refused | stays connected but does not hash (as firmware with a bad worker) |
//!
//! A power gate ([`SimMinerState`]) stops hashing and submitting while asleep; the
//! connection stays up, as a real miner's control board keeps it.

mod client;
pub mod miner;
mod session;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::mgmt::SimMinerState;

/// How a simulated ASIC is set up; build from [`SimAsicConfig::new`].
#[derive(Debug, Clone)]
pub struct SimAsicConfig {
    /// The pool (or proxy) to connect to.
    pub server: SocketAddr,
    /// Worker name, `account.worker`.
    pub worker: String,
    /// Password sent with authorize.
    pub password: String,
    /// User agent sent with subscribe.
    pub user_agent: String,
    /// Real SHA-256d hashes per second (the throttle). A header hash costs ~0.15 µs in
    /// release and ~2 µs in a debug build, so for hundreds of miners in one debug test
    /// keep rate × count modest: e.g. 400 H/s at pool difficulty 1e-7 is still about a
    /// share a second each (2³² × difficulty hashes a share).
    pub hashrate: f64,
    /// Version-rolling mask to ask for in `mining.configure`; `None` sends no configure.
    pub version_rolling: Option<u32>,
    /// Whether to send `mining.extranonce.subscribe`.
    pub extranonce_subscribe: bool,
    /// Difficulty to suggest after authorize, if any.
    pub suggest_difficulty: Option<f64>,
    /// The physical side: when asleep, no hashing and no submits.
    pub power: Option<SimMinerState>,
    /// First reconnect delay after a drop; doubles per failure.
    pub reconnect_backoff: Duration,
    /// Longest reconnect delay.
    pub reconnect_backoff_max: Duration,
    /// How long a connect (and a TLS handshake) may take.
    pub connect_timeout: Duration,
    /// Speak Stratum over TLS (to a TLS listener of the proxy); `None`: plain TCP.
    pub tls: Option<SimAsicTls>,
}

/// The client side of TLS for a simulated ASIC.
#[derive(Debug, Clone)]
pub struct SimAsicTls {
    /// Trust roots and protocol settings.
    pub client: Arc<rustls::ClientConfig>,
    /// The name the proxy's certificate must carry.
    pub server_name: rustls::pki_types::ServerName<'static>,
}

impl SimAsicConfig {
    /// A miner for `server` as `worker`, with defaults fit for tests: 4,000 hashes/s
    /// (about one share a second at difficulty 1e-6), version rolling with `1fffe000`,
    /// extranonce subscribe on, reconnect back-off 100 ms up to 5 s.
    pub fn new(server: SocketAddr, worker: impl Into<String>) -> SimAsicConfig {
        SimAsicConfig {
            server,
            worker: worker.into(),
            password: "x".into(),
            user_agent: "hashgate-sim-asic/0.1".into(),
            hashrate: 4_000.0,
            version_rolling: Some(0x1fff_e000),
            extranonce_subscribe: true,
            suggest_difficulty: None,
            power: None,
            reconnect_backoff: Duration::from_millis(100),
            reconnect_backoff_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// A deliberately bad submit, to provoke each of the pool's (or proxy's) rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadShare {
    /// A nonce whose hash misses the target (expect 23).
    WrongNonce,
    /// A job id made stale by a clean job, or an unknown one if none yet (expect 21).
    StaleJob,
    /// Version bits outside the granted mask (expect 20).
    OutsideVersionMask,
    /// The last share submitted, again (expect 22); waits until there is one.
    Duplicate,
    /// Extranonce2 one byte too long (expect 20).
    WrongExtranonce2Size,
    /// ntime two hours past the job's (expect 20).
    NtimeOutOfRange,
    /// A worker name other than the one authorized (expect 20, `Worker mismatch`).
    UnauthorizedWorker,
}

/// A snapshot of what the ASIC did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimAsicStats {
    /// Shares submitted (good and deliberately bad).
    pub submitted: u64,
    /// Of those, deliberately bad ones.
    pub bad_submitted: u64,
    /// Submits answered `result:true`.
    pub accepted: u64,
    /// Submits answered with a reject.
    pub rejected: u64,
    /// Rejects by Stratum error code (0 when the error carried no code).
    pub rejects_by_code: BTreeMap<i64, u64>,
    /// Headers hashed.
    pub hashes: u64,
    /// Difficulty in force.
    pub difficulty: f64,
    /// Whether a connection is up.
    pub connected: bool,
    /// Whether the worker is authorized on the current connection.
    pub authorized: bool,
    /// Successful connects.
    pub connects: u64,
    /// Connects after the first (after a drop or a `client.reconnect`).
    pub reconnects: u64,
    /// Failed connect attempts.
    pub connect_failures: u64,
    /// `client.reconnect` requests followed.
    pub reconnect_requests: u64,
    /// `mining.notify` jobs received.
    pub jobs_received: u64,
    /// The newest job id.
    pub last_job_id: Option<String>,
    /// Extranonce1 in use.
    pub extranonce1: Vec<u8>,
    /// Extranonce2 size in use.
    pub extranonce2_size: usize,
    /// `mining.set_extranonce` messages applied.
    pub extranonce_changes: u64,
    /// Granted version-rolling mask, if negotiated.
    pub version_mask: Option<u32>,
    /// The server connected to (changes after `client.reconnect`).
    pub server: Option<SocketAddr>,
}

/// State shared between the handle and the task.
#[derive(Debug, Default)]
struct AsicState {
    /// The counters.
    stats: Mutex<SimAsicStats>,
    /// Bad submits asked for and not yet sent.
    bad: Mutex<VecDeque<BadShare>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running simulated ASIC; stops on [`SimAsic::stop`] or drop.
#[derive(Debug)]
pub struct SimAsic {
    /// Counters and requests shared with the task.
    shared: Arc<AsicState>,
    /// Stops the task.
    cancel: CancellationToken,
    /// Tracks the task so `stop` can wait for it.
    tracker: TaskTracker,
}

impl SimAsic {
    /// Starts the miner's task (needs a tokio runtime).
    pub fn start(config: SimAsicConfig) -> SimAsic {
        let shared = Arc::new(AsicState::default());
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(client::run(config, Arc::clone(&shared), cancel.clone()));
        tracker.close();
        SimAsic {
            shared,
            cancel,
            tracker,
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimAsicStats {
        lock(&self.shared.stats).clone()
    }

    /// Queues a deliberately bad submit, sent as soon as there is work to forge it from.
    pub fn bad_share(&self, kind: BadShare) {
        lock(&self.shared.bad).push_back(kind);
    }

    /// Stops the miner and waits (up to 5 s) for its task to end.
    pub async fn stop(&self) {
        self.cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tracker.wait()).await;
    }
}

impl Drop for SimAsic {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
