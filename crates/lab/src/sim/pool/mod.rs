//! A simulated Stratum V1 pool: the independent judge of shares in tests and demos.
//!
//! It behaves like ckpool (see `fixtures/stratum/` and `docs/INTEROP.md`): it answers
//! `mining.configure`, `subscribe`, the first `authorize` of a connection (a later one is
//! never answered and authorizes nothing, unless [`SimPoolConfig::authorizes_per_connection`]
//! is raised) and `extranonce.subscribe`; takes `suggest_difficulty` without answering it
//! (a new value becomes the connection's difficulty and is sent as `set_difficulty`, as
//! ckpool does); sends `set_difficulty` and the first job right after subscribe;
//! answers submits with `result:true` or `result:false` and `[code,"msg",null]`.
//! Shares are judged by [`judge`], its own deliberately plain code, never by
//! `hashgate_protocol::work`, so that a test can catch the proxy's validator being wrong.
//!
//! | submit check, in order | code | message |
//! |---|---|---|
//! | not subscribed | 25 | `Not subscribed` |
//! | nothing authorized on this connection | 24 | `Unauthorized worker` |
//! | a worker other than the one(s) authorized on this connection | 20 | `Worker mismatch` |
//! | [`PoolFault::RejectAll`] on | 23 | `Above target` |
//! | job unknown, closed by a clean job or evicted | 21 | `Job not found` |
//! | extranonce2 of the wrong size | 20 | `Invalid extranonce2 size` |
//! | version bits outside the granted mask | 20 | `Invalid version bits` |
//! | ntime before the job's or 7200 s or more after it | 20 | `Ntime out of range` |
//! | hash above the share target | 23 | `Above target` |
//! | same share accepted before | 22 | `Duplicate` |
//!
//! A share is judged against the lower of the connection's current difficulty and the
//! one in force when its job was sent, so a miner that applies `set_difficulty` at the
//! next job and one that applies it at once are both treated fairly. Likewise a share
//! may use any extranonce1 its job was sent with on that connection, so one in flight
//! across a `mining.set_extranonce` is not lost.
//!
//! # One identity per connection, as ckpool
//!
//! ckpool answers the first `mining.authorize` on a connection and never answers
//! another (whatever the name), and refuses a submit under any name but the authorized
//! one with `Worker mismatch`. The simulated pool does the same by default
//! ([`SimPoolConfig::authorizes_per_connection`] = 1), so a proxy that authorizes
//! several names on one pool connection, or probes liveness with a repeated authorize,
//! fails the fast tests as it would fail against a real pool. Tests of a lenient pool
//! raise the limit.

mod jobs;
pub mod judge;
mod server;
mod session;
mod stats;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use jobs::PoolJob;
pub use stats::{AcceptedShare, ShareKey, SimPoolStats, WorkerStats};

use server::PoolState;

/// Compact target of a recent mainnet block (881423): shares essentially never find blocks.
pub const MAINNET_NBITS: u32 = 0x1702_9a8a;
/// Regtest's compact target: about every other hash is a block, for tests that want one.
pub const REGTEST_NBITS: u32 = 0x207f_ffff;

/// How the simulated pool is set up; [`Default`] gives a sensible test pool.
#[derive(Debug, Clone)]
pub struct SimPoolConfig {
    /// Name in logs and in the coinbase tag.
    pub name: String,
    /// Where to listen; port 0 picks a free one.
    pub bind: SocketAddr,
    /// Bytes of extranonce1, unique per connection (1..=8).
    pub extranonce1_size: usize,
    /// Bytes of extranonce2 the miner rolls (1..=16).
    pub extranonce2_size: usize,
    /// Share difficulty given to each new connection; fractions allowed.
    pub difficulty: f64,
    /// Whether `mining.suggest_difficulty` changes the connection's difficulty.
    pub honor_suggest_difficulty: bool,
    /// How often a new `clean_jobs=false` job goes out; `None` for never.
    pub job_interval: Option<Duration>,
    /// How often a new block (new prevhash, `clean_jobs=true`) arrives; `None` for only
    /// on [`SimPool::new_block`].
    pub block_interval: Option<Duration>,
    /// The version-rolling mask offered in the `mining.configure` answer (0: refuse).
    pub version_mask: u32,
    /// Network target of the jobs; [`REGTEST_NBITS`] makes blocks easy to find.
    pub nbits: u32,
    /// Merkle branch length of the jobs.
    pub merkle_branch_len: usize,
    /// Jobs kept open for shares (older ones answer 21).
    pub open_jobs: usize,
    /// Accepted-share records kept for [`SimPool::accepted_shares`].
    pub share_log_cap: usize,
    /// `mining.authorize` requests answered per connection; later ones are read and
    /// never answered (ckpool: 1). Submits must use a name authorized on the connection.
    pub authorizes_per_connection: usize,
}

impl Default for SimPoolConfig {
    fn default() -> Self {
        SimPoolConfig {
            name: "simpool".into(),
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            extranonce1_size: 4,
            extranonce2_size: 8,
            // About 4,300 hashes a share: a few shares a second from a throttled sim ASIC.
            difficulty: 1e-6,
            honor_suggest_difficulty: true,
            job_interval: Some(Duration::from_secs(30)),
            block_interval: None,
            version_mask: 0x1fff_e000,
            nbits: MAINNET_NBITS,
            merkle_branch_len: 4,
            open_jobs: 16,
            share_log_cap: 100_000,
            authorizes_per_connection: 1,
        }
    }
}

impl SimPoolConfig {
    /// Checks the values a pool cannot run with.
    fn check(&self) -> io::Result<()> {
        let bad = |what: String| Err(io::Error::new(io::ErrorKind::InvalidInput, what));
        if !(1..=8).contains(&self.extranonce1_size) {
            return bad(format!(
                "sim pool {}: extranonce1_size {} is outside 1..=8",
                self.name, self.extranonce1_size
            ));
        }
        if !(1..=16).contains(&self.extranonce2_size) {
            return bad(format!(
                "sim pool {}: extranonce2_size {} is outside 1..=16",
                self.name, self.extranonce2_size
            ));
        }
        if !(self.difficulty.is_finite() && self.difficulty > 0.0) {
            return bad(format!(
                "sim pool {}: difficulty {} must be a positive number",
                self.name, self.difficulty
            ));
        }
        if self.authorizes_per_connection == 0 {
            return bad(format!(
                "sim pool {}: authorizes_per_connection must be at least 1",
                self.name
            ));
        }
        if judge::target_for_nbits(self.nbits).is_none() {
            return bad(format!(
                "sim pool {}: nbits {:08x} is not a valid compact target",
                self.name, self.nbits
            ));
        }
        if [self.job_interval, self.block_interval]
            .iter()
            .flatten()
            .any(Duration::is_zero)
        {
            return bad(format!(
                "sim pool {}: intervals must be above zero",
                self.name
            ));
        }
        Ok(())
    }
}

/// A fault the pool can be switched into at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolFault {
    /// Normal service.
    #[default]
    None,
    /// Drop every connection now and drop new ones at once while on.
    Disconnect,
    /// Keep sockets open, read and ignore everything, send nothing.
    Silence,
    /// Answer every submit `result:false` with `[23,"Above target",null]`.
    RejectAll,
}

/// Something the pool pushes to its connections.
#[derive(Debug, Clone)]
pub(crate) enum Push {
    /// A new job.
    Job(Arc<PoolJob>),
    /// A new difficulty for every connection.
    Difficulty(f64),
    /// A fresh extranonce1 (and maybe a new extranonce2 size) for connections that
    /// subscribed to extranonce changes.
    Extranonce {
        /// The new extranonce2 size, `None` to keep each connection's.
        extranonce2_size: Option<usize>,
    },
    /// `client.reconnect` with these params.
    Reconnect(hashgate_protocol::stratum::Reconnect),
}

/// A running simulated pool; stops on [`SimPool::shutdown`] or drop.
#[derive(Debug)]
pub struct SimPool {
    /// State shared with the accept loop, job ticker and connection tasks.
    shared: Arc<PoolState>,
    /// The bound address.
    addr: SocketAddr,
    /// Cancels every task of this pool.
    cancel: CancellationToken,
    /// Tracks the tasks so shutdown can wait for them.
    tracker: TaskTracker,
}

/// Pending connections the simulated pool's socket asks for: the same as the proxy's
/// miner listener (capped by `net.core.somaxconn`), so that a storm measured directly
/// against the pool and one measured through the proxy meet the same kernel queue,
/// not the short fixed backlog of tokio's `TcpListener::bind`.
pub const SIM_POOL_BACKLOG: u32 = hashgate_site::downstream::LISTEN_BACKLOG;

/// Binds `addr` with [`SIM_POOL_BACKLOG`].
fn listen(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(SIM_POOL_BACKLOG)
}

impl SimPool {
    /// Validates the config, binds and starts serving.
    ///
    /// # Errors
    /// `InvalidInput` for a config the pool cannot run with; bind errors as they come.
    pub async fn start(config: SimPoolConfig) -> io::Result<SimPool> {
        config.check()?;
        let listener = listen(config.bind)?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let shared = Arc::new(PoolState::new(config));
        server::spawn(&shared, listener, &cancel, &tracker);
        tracing::info!(pool = %shared.config.name, %addr, "sim pool listening");
        Ok(SimPool {
            shared,
            addr,
            cancel,
            tracker,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops every task and waits (up to 5 s) for them to end.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(pool = %self.shared.config.name, "sim pool tasks still running after 5 s");
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimPoolStats {
        self.shared.ledger().stats.clone()
    }

    /// Accepted shares in order (up to `share_log_cap`).
    pub fn accepted_shares(&self) -> Vec<AcceptedShare> {
        self.shared.ledger().log.clone()
    }

    /// The open job with this id, as sent.
    pub fn job(&self, job_id: &str) -> Option<Arc<PoolJob>> {
        self.shared.job(job_id)
    }

    /// Every job created so far that is still remembered (open or recently closed), so a
    /// test can re-verify accepted shares after a clean job.
    pub fn known_job(&self, job_id: &str) -> Option<Arc<PoolJob>> {
        self.shared.known_job(job_id)
    }

    /// The newest job.
    pub fn latest_job(&self) -> Option<Arc<PoolJob>> {
        self.shared.latest_job()
    }

    /// Sends a new `clean_jobs=false` job now.
    pub fn new_job(&self) -> Arc<PoolJob> {
        self.shared.new_job(false)
    }

    /// A new block: new prevhash and height, sent with `clean_jobs=true`.
    pub fn new_block(&self) -> Arc<PoolJob> {
        self.shared.new_job(true)
    }

    /// Switches a fault on (or back to [`PoolFault::None`]).
    pub fn set_fault(&self, fault: PoolFault) {
        self.shared.fault.send_replace(fault);
    }

    /// The fault in force.
    pub fn fault(&self) -> PoolFault {
        *self.shared.fault.borrow()
    }

    /// Sets every connection's difficulty (and the default for new ones) and tells them.
    pub fn set_difficulty(&self, difficulty: f64) {
        if difficulty.is_finite() && difficulty > 0.0 {
            self.shared.set_default_difficulty(difficulty);
            self.shared.push(Push::Difficulty(difficulty));
        }
    }

    /// Gives every connection that sent `mining.extranonce.subscribe` a fresh extranonce1
    /// (and `extranonce2_size` if given), followed by the current job with `clean_jobs`.
    pub fn set_extranonce(&self, extranonce2_size: Option<usize>) {
        self.shared.push(Push::Extranonce { extranonce2_size });
    }

    /// Sends `client.reconnect` to every connection (host/port `None` means "here").
    pub fn reconnect(&self, host: Option<String>, port: Option<u16>, wait_seconds: Option<u64>) {
        self.shared
            .push(Push::Reconnect(hashgate_protocol::stratum::Reconnect {
                host,
                port,
                wait_seconds,
            }));
    }
}

impl Drop for SimPool {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
