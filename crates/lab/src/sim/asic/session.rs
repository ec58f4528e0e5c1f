//! One connection of the simulated ASIC: handshake, answers, pushes, hashing ticks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::miner::{FoundShare, Work};
use super::{AsicState, BadShare, SimAsicConfig, lock};
use hashgate_protocol::stratum::{
    Authorize, Configure, Extranonce2, Id, Message, Method, Notify, Reconnect, Request, Response,
    ResultValue, StratumCodec, Submit, Subscribe, VersionRolling,
};
use hashgate_protocol::work::{Difficulty, Job, JobTemplate, Target};

/// How often the miner wakes to hash its budget: short enough for a smooth share
/// stream, long enough that hundreds of simulated miners cost few wake-ups.
const TICK: Duration = Duration::from_millis(50);

/// Longest stretch of time one tick may catch up on (after a stall or a wake-up).
const MAX_CATCH_UP: Duration = Duration::from_millis(500);

/// A pool that does not take our bytes within this long counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a connection ended.
pub(super) enum Outcome {
    /// The miner was stopped.
    Cancelled,
    /// The pool asked to reconnect (`None` host/port: same as now).
    Reconnect {
        /// New host.
        host: Option<String>,
        /// New port.
        port: Option<u16>,
        /// Delay before connecting.
        wait: Duration,
    },
    /// The connection broke or the pool closed it.
    Lost {
        /// Whether it got as far as a subscribe answer (resets the back-off).
        was_set_up: bool,
    },
}

/// A request waiting for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Configure,
    Subscribe,
    ExtranonceSubscribe,
    Authorize,
    SuggestDifficulty,
    Submit,
}

/// One connection's state.
pub(super) struct Connection<'a> {
    /// The miner's setup.
    config: &'a SimAsicConfig,
    /// Counters and bad-share requests.
    shared: &'a AsicState,
    /// Next request id (unique per connection, unlike cpuminer's).
    next_id: u64,
    /// Requests sent and not answered.
    pending: HashMap<u64, Pending>,
    /// Extranonce1 once subscribed.
    extranonce1: Option<Vec<u8>>,
    /// Extranonce2 size once subscribed.
    extranonce2_size: usize,
    /// Mask the miner asked for (0: no rolling).
    requested_mask: u32,
    /// Mask granted (0 until configure is answered).
    version_mask: u32,
    /// Whether authorize was answered true.
    authorized: bool,
    /// Current share target.
    target: Target,
    /// The newest job.
    job: Option<Arc<Job>>,
    /// Work on the newest job.
    work: Option<Work>,
    /// An id made stale by a clean job (for [`BadShare::StaleJob`]).
    stale_job_id: Option<String>,
    /// The last good share submitted (for [`BadShare::Duplicate`]).
    last_submitted: Option<FoundShare>,
    /// Nonce start points.
    rng: StdRng,
    /// When hashing was last accounted for.
    last_tick: Instant,
    /// Fractional hashes carried between ticks so low rates stay exact.
    carry: f64,
    /// Set when the pool asked to reconnect.
    reconnect: Option<Outcome>,
}

impl<'a> Connection<'a> {
    pub(super) fn new(config: &'a SimAsicConfig, shared: &'a AsicState) -> Connection<'a> {
        Connection {
            config,
            shared,
            next_id: 1,
            pending: HashMap::new(),
            extranonce1: None,
            extranonce2_size: 0,
            requested_mask: config.version_rolling.unwrap_or(0),
            version_mask: 0,
            authorized: false,
            target: Difficulty::ONE.to_target(),
            job: None,
            work: None,
            stale_job_id: None,
            last_submitted: None,
            rng: StdRng::from_os_rng(),
            last_tick: Instant::now(),
            carry: 0.0,
            reconnect: None,
        }
    }

    pub(super) async fn serve<S>(mut self, stream: S, cancel: &CancellationToken) -> Outcome
    where
        S: AsyncRead + AsyncWrite + Send + Unpin,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut codec = StratumCodec::default();
        let mut inbuf = BytesMut::with_capacity(4096);
        let mut out = BytesMut::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        lock(&self.shared.stats).difficulty = 1.0;

        if self.requested_mask != 0 {
            self.request(
                &mut out,
                Pending::Configure,
                Method::Configure(Configure {
                    version_rolling: Some(VersionRolling {
                        mask: Some(self.requested_mask),
                        min_bit_count: Some(2),
                    }),
                    ..Configure::default()
                }),
            );
        }
        self.request(
            &mut out,
            Pending::Subscribe,
            Method::Subscribe(Subscribe {
                user_agent: Some(self.config.user_agent.clone()),
                session_id: None,
            }),
        );
        loop {
            loop {
                let item = match codec.decode(&mut inbuf) {
                    Ok(Some(item)) => item,
                    Ok(None) => break,
                    Err(_) => return self.lost(),
                };
                match item {
                    Ok(Message::Request(request)) => self.on_request(request, &mut out),
                    Ok(Message::Response(response)) => {
                        if !self.on_response(response, &mut out) {
                            return self.lost();
                        }
                    }
                    Err(error) => {
                        tracing::debug!(worker = %self.config.worker, %error, "sim asic: bad line from pool");
                    }
                }
                if let Some(outcome) = self.reconnect.take() {
                    return outcome;
                }
            }
            if !out.is_empty() {
                match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&out)).await {
                    Ok(Ok(())) => out.clear(),
                    _ => return self.lost(),
                }
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Outcome::Cancelled,
                read = rd.read_buf(&mut inbuf) => match read {
                    Ok(0) | Err(_) => return self.lost(),
                    Ok(_) => {}
                },
                _ = tick.tick() => self.mine(&mut out),
            }
        }
    }

    fn lost(&self) -> Outcome {
        Outcome::Lost {
            was_set_up: self.extranonce1.is_some(),
        }
    }

    /// Sends a request and remembers what it was.
    fn request(&mut self, out: &mut BytesMut, kind: Pending, method: Method) {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, kind);
        Message::Request(Request {
            id: Id::Int(id),
            method,
        })
        .encode_into(out);
    }

    /// Handles an answer; `false` when the connection is useless (subscribe refused).
    fn on_response(&mut self, response: Response, out: &mut BytesMut) -> bool {
        let Id::Int(id) = response.id else {
            return true;
        };
        let Some(kind) = self.pending.remove(&id) else {
            return true;
        };
        match kind {
            Pending::Configure => {
                if let ResultValue::Configure(c) = &response.result
                    && c.version_rolling == Some(true)
                {
                    self.version_mask = c.version_rolling_mask.unwrap_or(0) & self.requested_mask;
                    lock(&self.shared.stats).version_mask = Some(self.version_mask);
                    self.restart_work();
                }
            }
            Pending::Subscribe => {
                let ResultValue::Subscribe(s) = response.result else {
                    tracing::warn!(worker = %self.config.worker, "sim asic: subscribe refused");
                    return false;
                };
                {
                    let mut stats = lock(&self.shared.stats);
                    stats.extranonce1 = s.extranonce1.clone();
                    stats.extranonce2_size = s.extranonce2_size;
                }
                self.extranonce1 = Some(s.extranonce1);
                self.extranonce2_size = s.extranonce2_size;
                if self.config.extranonce_subscribe {
                    self.request(
                        out,
                        Pending::ExtranonceSubscribe,
                        Method::ExtranonceSubscribe,
                    );
                }
                self.request(
                    out,
                    Pending::Authorize,
                    Method::Authorize(Authorize {
                        user: self.config.worker.clone(),
                        password: Some(self.config.password.clone()),
                    }),
                );
                if let Some(d) = self.config.suggest_difficulty {
                    self.request(
                        out,
                        Pending::SuggestDifficulty,
                        Method::SuggestDifficulty(d),
                    );
                }
                self.restart_work();
            }
            Pending::Authorize => {
                self.authorized = response.is_accepted();
                lock(&self.shared.stats).authorized = self.authorized;
                if !self.authorized {
                    tracing::warn!(worker = %self.config.worker, "sim asic: authorize refused");
                }
            }
            Pending::ExtranonceSubscribe | Pending::SuggestDifficulty => {}
            Pending::Submit => {
                let mut stats = lock(&self.shared.stats);
                if response.is_accepted() {
                    stats.accepted += 1;
                } else {
                    stats.rejected += 1;
                    let code = response.error.as_ref().and_then(|e| e.code()).unwrap_or(0);
                    *stats.rejects_by_code.entry(code).or_default() += 1;
                }
            }
        }
        true
    }

    /// Handles a pool-to-miner call.
    fn on_request(&mut self, request: Request, out: &mut BytesMut) {
        match request.method {
            Method::Notify(notify) => self.on_notify(notify),
            Method::SetDifficulty(d) => {
                if let Ok(difficulty) = Difficulty::new(d) {
                    self.target = difficulty.to_target();
                    lock(&self.shared.stats).difficulty = d;
                }
            }
            Method::SetExtranonce(s) => {
                {
                    let mut stats = lock(&self.shared.stats);
                    stats.extranonce1 = s.extranonce1.clone();
                    stats.extranonce2_size = s.extranonce2_size;
                    stats.extranonce_changes += 1;
                }
                self.extranonce1 = Some(s.extranonce1);
                self.extranonce2_size = s.extranonce2_size;
                self.restart_work();
            }
            Method::SetVersionMask(mask) => {
                self.version_mask = mask & self.requested_mask;
                lock(&self.shared.stats).version_mask = Some(self.version_mask);
                self.restart_work();
            }
            Method::Reconnect(Reconnect {
                host,
                port,
                wait_seconds,
            }) => {
                self.reconnect = Some(Outcome::Reconnect {
                    host,
                    port,
                    wait: Duration::from_secs(wait_seconds.unwrap_or(0).min(3600)),
                });
            }
            Method::GetVersion if request.id != Id::Null => {
                Message::Response(Response {
                    id: request.id,
                    result: ResultValue::Text(self.config.user_agent.clone()),
                    error: None,
                    reject_reason: None,
                })
                .encode_into(out);
            }
            Method::ShowMessage(text) => {
                tracing::info!(worker = %self.config.worker, %text, "sim asic: pool message");
            }
            _ => {}
        }
    }

    fn on_notify(&mut self, n: Notify) {
        {
            let mut stats = lock(&self.shared.stats);
            stats.jobs_received += 1;
            stats.last_job_id = Some(n.job_id.clone());
        }
        let clean = n.clean_jobs;
        let job = Job::new(JobTemplate::from(n));
        let job = match job {
            Ok(job) => Arc::new(job),
            Err(error) => {
                tracing::warn!(worker = %self.config.worker, %error, "sim asic: unusable job ignored");
                return;
            }
        };
        if clean && let Some(old) = &self.job {
            self.stale_job_id = Some(old.id().to_owned());
        }
        // Real firmware moves to the newest job at once, clean or not.
        self.job = Some(job);
        self.restart_work();
    }

    /// Starts over on the newest job with the current extranonces and mask.
    fn restart_work(&mut self) {
        self.work = match (&self.job, &self.extranonce1) {
            (Some(job), Some(en1)) => Some(Work::new(
                Arc::clone(job),
                en1.clone(),
                self.extranonce2_size,
                self.version_mask,
                self.rng.random(),
            )),
            _ => None,
        };
    }

    /// Hashes the budget since the last tick and submits what it finds.
    fn mine(&mut self, out: &mut BytesMut) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last_tick).min(MAX_CATCH_UP);
        self.last_tick = now;
        let awake = self
            .config
            .power
            .as_ref()
            .is_none_or(|power| power.is_hashing(now));
        if !self.authorized || !awake {
            self.carry = 0.0;
            return;
        }
        let Some(work) = self.work.as_mut() else {
            return;
        };
        let wanted = self.config.hashrate.max(0.0) * elapsed.as_secs_f64() + self.carry;
        let budget = wanted.floor();
        self.carry = wanted - budget;
        let (found, hashes) = work.hash(budget as u64, &self.target);
        lock(&self.shared.stats).hashes += hashes;
        for share in found {
            self.submit(out, &share, None, false);
            self.last_submitted = Some(share);
        }
        let bad = lock(&self.shared.bad).pop_front();
        if let Some(kind) = bad
            && !self.forge(out, kind)
        {
            lock(&self.shared.bad).push_front(kind);
        }
    }

    /// Sends one deliberately bad submit; `false` if it cannot be made yet.
    fn forge(&mut self, out: &mut BytesMut, kind: BadShare) -> bool {
        let target = self.target;
        let Some(work) = self.work.as_mut() else {
            return false;
        };
        // Checks before hashing (job, sizes, mask, ntime, worker) decide these rejects, so
        // any nonce will do; a failing one keeps a lax judge from accepting by luck.
        let mut share = work.failing_share(&target).unwrap_or_else(|| work.share(0));
        let mut worker = None;
        match kind {
            BadShare::WrongNonce => match work.failing_share(&target) {
                Some(s) => share = s,
                None => return false,
            },
            BadShare::StaleJob => {
                share.job_id = self
                    .stale_job_id
                    .clone()
                    .unwrap_or_else(|| "00000000deadbeef".into());
            }
            BadShare::OutsideVersionMask => share.version_bits = Some(!self.version_mask),
            BadShare::Duplicate => match &self.last_submitted {
                Some(s) => share = s.clone(),
                None => return false,
            },
            BadShare::WrongExtranonce2Size => share.extranonce2.push(0),
            BadShare::NtimeOutOfRange => share.ntime = share.ntime.wrapping_add(7200),
            BadShare::UnauthorizedWorker => worker = Some(format!("{}-x", self.config.worker)),
        }
        self.submit(out, &share, worker, true);
        true
    }

    fn submit(
        &mut self,
        out: &mut BytesMut,
        share: &FoundShare,
        worker: Option<String>,
        bad: bool,
    ) {
        let Ok(extranonce2) = Extranonce2::new(&share.extranonce2) else {
            return;
        };
        {
            let mut stats = lock(&self.shared.stats);
            stats.submitted += 1;
            if bad {
                stats.bad_submitted += 1;
            }
        }
        self.request(
            out,
            Pending::Submit,
            Method::Submit(Submit {
                worker: worker.unwrap_or_else(|| self.config.worker.clone()),
                job_id: share.job_id.clone(),
                extranonce2,
                ntime: share.ntime,
                nonce: share.nonce,
                version_bits: share.version_bits,
            }),
        );
    }
}
