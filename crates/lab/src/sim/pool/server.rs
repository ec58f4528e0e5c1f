//! The pool's shared state, its accept loop and its job clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::jobs::{Chain, JobBook, JobShape, PoolJob, make_job};
use super::stats::Ledger;
use super::{PoolFault, Push, SimPoolConfig, session};

/// Pushes queued per connection before it counts as lagging. A connection that lags
/// skips to the newest job (see `session`), so this only needs to cover a burst.
const PUSH_QUEUE: usize = 256;

/// Closed jobs remembered for [`super::SimPool::known_job`].
const REMEMBERED_JOBS: usize = 256;

/// Job-making state: one lock so a job id, its chain and the book always agree.
#[derive(Debug)]
pub(crate) struct Work {
    /// Height and prevhash being mined.
    chain: Chain,
    /// Jobs open for shares.
    book: JobBook,
    /// Every recent job, open or closed, newest last.
    remembered: VecDeque<Arc<PoolJob>>,
    /// Randomness for prevhashes, branches and payout keys.
    rng: StdRng,
    /// Next job number.
    next_job: u64,
    /// Difficulty given to new connections.
    default_difficulty: f64,
}

/// State shared by the pool's tasks and its handle.
#[derive(Debug)]
pub(crate) struct PoolState {
    /// The validated config.
    pub config: SimPoolConfig,
    /// The fixed parts of every job.
    shape: JobShape,
    /// Jobs and chain.
    work: Mutex<Work>,
    /// Counters and accepted shares.
    ledger: Mutex<Ledger>,
    /// The fault switch; connections watch it.
    pub fault: watch::Sender<PoolFault>,
    /// Broadcast of jobs, difficulty and other pushes to every connection.
    pub pushes: broadcast::Sender<Push>,
    /// Next extranonce1 value; starts random so two pools do not hand out the same ones.
    next_extranonce1: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the simulator down with poisoned counters.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The pool's clock in Unix seconds (ntime of new jobs).
pub(crate) fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

impl PoolState {
    /// State for a pool with this (already checked) config, with its first job made.
    pub(super) fn new(config: SimPoolConfig) -> PoolState {
        let mut rng = StdRng::from_os_rng();
        let mut tag = format!("/hashgate-sim:{}/", config.name).into_bytes();
        tag.truncate(40);
        let shape = JobShape {
            extranonce_len: config.extranonce1_size + config.extranonce2_size,
            tag,
            branch_len: config.merkle_branch_len,
            version: 0x2000_0000,
            nbits: config.nbits,
        };
        let chain = Chain::new(880_000 + rng.random_range(0..10_000), &mut rng);
        let (fault, _) = watch::channel(PoolFault::None);
        let (pushes, _) = broadcast::channel(PUSH_QUEUE);
        let ledger = Ledger {
            log_cap: config.share_log_cap,
            ..Ledger::default()
        };
        let shared = PoolState {
            shape,
            work: Mutex::new(Work {
                chain,
                book: JobBook::new(config.open_jobs),
                remembered: VecDeque::new(),
                rng,
                next_job: 1,
                default_difficulty: config.difficulty,
            }),
            next_extranonce1: AtomicU64::new(rand::random::<u32>().into()),
            ledger: Mutex::new(ledger),
            fault,
            pushes,
            config,
        };
        shared.new_job(true);
        shared
    }

    /// The counters, locked.
    pub(super) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.ledger)
    }

    /// Makes a job, opens it, broadcasts it. `new_block` also moves the chain and makes
    /// the job clean.
    pub(super) fn new_job(&self, new_block: bool) -> Arc<PoolJob> {
        let (job, closed) = {
            let mut work = lock(&self.work);
            let work = &mut *work;
            if new_block {
                work.chain.advance(&mut work.rng);
            }
            // ckpool-style ids: a pool-wide prefix and a sequence number.
            let id = format!("{:08x}{:08x}", work.chain.height, work.next_job);
            work.next_job += 1;
            let job = Arc::new(make_job(
                id,
                &work.chain,
                &self.shape,
                unix_now(),
                new_block,
                &mut work.rng,
            ));
            let closed = work.book.push(Arc::clone(&job));
            work.remembered.push_back(Arc::clone(&job));
            while work.remembered.len() > REMEMBERED_JOBS {
                work.remembered.pop_front();
            }
            (job, closed)
        };
        {
            let mut ledger = self.ledger();
            ledger.close_jobs(&closed);
            ledger.stats.jobs_created += 1;
        }
        // No receivers is fine: nobody is connected yet.
        let _ = self.pushes.send(Push::Job(Arc::clone(&job)));
        job
    }

    /// An open job.
    pub(super) fn job(&self, id: &str) -> Option<Arc<PoolJob>> {
        lock(&self.work).book.get(id).cloned()
    }

    /// A job open or recently closed.
    pub(super) fn known_job(&self, id: &str) -> Option<Arc<PoolJob>> {
        lock(&self.work)
            .remembered
            .iter()
            .find(|j| j.notify.job_id == id)
            .cloned()
    }

    /// The newest job.
    pub(super) fn latest_job(&self) -> Option<Arc<PoolJob>> {
        lock(&self.work).book.latest().cloned()
    }

    /// Difficulty for connections that subscribe from now on.
    pub(super) fn default_difficulty(&self) -> f64 {
        lock(&self.work).default_difficulty
    }

    /// Changes the difficulty for new connections.
    pub(super) fn set_default_difficulty(&self, difficulty: f64) {
        lock(&self.work).default_difficulty = difficulty;
    }

    /// Broadcasts a push to every connection.
    pub(super) fn push(&self, push: Push) {
        let _ = self.pushes.send(push);
    }

    /// A fresh extranonce1 of `size` bytes, distinct from every other handed out until
    /// the counter wraps in its low `size` bytes.
    pub(super) fn fresh_extranonce1(&self, size: usize) -> Vec<u8> {
        let n = self.next_extranonce1.fetch_add(1, Ordering::Relaxed);
        let bytes = n.to_be_bytes();
        bytes.get(8 - size.min(8)..).unwrap_or(&bytes).to_vec()
    }
}

/// Starts the accept loop and the job clock.
pub(crate) fn spawn(
    shared: &Arc<PoolState>,
    listener: TcpListener,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
) {
    tracker.spawn(accept_loop(
        Arc::clone(shared),
        listener,
        cancel.clone(),
        tracker.clone(),
    ));
    tracker.spawn(job_clock(Arc::clone(shared), cancel.clone()));
}

async fn accept_loop(
    shared: Arc<PoolState>,
    listener: TcpListener,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(pool = %shared.config.name, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.ledger().stats.connections_total += 1;
        if *shared.fault.borrow() == PoolFault::Disconnect {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        tracker.spawn(session::run(
            Arc::clone(&shared),
            stream,
            peer,
            cancel.child_token(),
        ));
    }
}

/// Sends periodic jobs and blocks as configured.
async fn job_clock(shared: Arc<PoolState>, cancel: CancellationToken) {
    let far = Duration::from_secs(365 * 24 * 3600);
    let mut jobs = tokio::time::interval(shared.config.job_interval.unwrap_or(far));
    let mut blocks = tokio::time::interval(shared.config.block_interval.unwrap_or(far));
    // The first tick of an interval is immediate; the pool already has its first job.
    jobs.tick().await;
    blocks.tick().await;
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            _ = blocks.tick(), if shared.config.block_interval.is_some() => {
                shared.new_job(true);
            }
            _ = jobs.tick(), if shared.config.job_interval.is_some() => {
                shared.new_job(false);
            }
        }
    }
}
