//! One Stratum V1 client session to a pool: handshake, jobs, submits, liveness.
//!
//! The session pipelines `mining.configure`, `mining.subscribe` and `mining.authorize`
//! and then takes lines in whatever order the pool sends them (ckpool sends
//! `set_difficulty` and the first `notify` before it answers `authorize`). Every job is
//! handed to the channel server as [`PoolWork`]; the server decides whether it is
//! published (this connection is the active one) or kept for a failover.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::PoolUrl;
use crate::hub::{MinerWorker, UpstreamLink, UpstreamSubmit};
use crate::ratelog::{self, RateLimitedLog, Verdict};
use crate::stats::Undelivered;
use hashgate_protocol::stratum::{
    Authorize, CodecError, Configure, Id, Message, Method, Notify, ParseError, Reconnect, Request,
    Response, ResultValue, StratumCodec, Subscribe, VersionRolling,
};
use hashgate_protocol::work::{Difficulty, Target};

mod submit;

use super::UpstreamContext;
use super::error::UpstreamError;
use super::health::{Health, HealthCheck, HealthRules};
use super::pending::Pending;
use super::sizing::{PlanChoice, plan_for};
use super::suggest::Suggester;

pub(super) use super::event::{ConnSpec, Ended, Event, PoolWork};

/// The user agent sent in `mining.subscribe`.
pub const USER_AGENT: &str = concat!("hashgate/", env!("CARGO_PKG_VERSION"));

/// The version-rolling mask asked for: everything, so the pool grants all it allows.
pub(crate) const REQUESTED_VERSION_MASK: u32 = 0xffff_ffff;

/// Shares waiting to be written to one pool connection. The session drains the queue as
/// fast as it can write, so it only fills when the socket stalls: at a site-wide 4,000
/// shares/s (far above the ~1 share/s per miner that vardiff aims at for a 4,096-miner
/// channel) this is about a second of stall, after which failing over is the cure and
/// further shares are counted as `queue_full` against their miners rather than buffered.
pub(crate) const SUBMIT_QUEUE: usize = 4096;

/// Shares taken off the queue per write, so blocks queued behind others still go first
/// and one system call carries many submits.
const SUBMIT_BATCH: usize = 256;

/// How often liveness and submit timeouts are checked. There are only a few upstream
/// connections, so a fixed tick costs nothing and keeps the timing logic in one place; a
/// tick that comes more than one period late tells [`Health`] the task itself was stalled.
const TICK: Duration = Duration::from_millis(100);

/// Longest wait a pool may impose with `client.reconnect`; beyond it the operator's
/// configured `reconnect_max` applies, so a pool cannot park the channel for hours.
fn reconnect_wait(requested: Option<u64>, max: Duration) -> Duration {
    Duration::from_secs(requested.unwrap_or(0)).min(max)
}

/// What an answer with our id was for.
#[derive(Debug)]
enum Asked {
    Configure,
    Subscribe,
    Authorize,
    /// A miner's own name on the pool (`upstream_worker = "per-miner"`), keyed by the
    /// miner's worker; its shares go under the account until the pool says `true`.
    WorkerAuthorize(MinerWorker),
}

/// How long TCP waits on an idle pool socket before its first keepalive probe, and
/// between probes; with [`KEEPALIVE_RETRIES`] a dead path is found in about 30 s even when
/// nothing is being sent.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;

/// Longest time written data may stay unacknowledged before the kernel drops the
/// connection (`TCP_USER_TIMEOUT`): shares sent into a black hole fail the socket rather
/// than wait for the retransmission limit (about 15 minutes by default).
const USER_TIMEOUT: Duration = Duration::from_secs(20);

/// Sets keepalive timing and `TCP_USER_TIMEOUT`; a refusal only loses an early warning
/// (the share and job rules still apply), so it is logged, not fatal.
fn tune_socket(stream: &TcpStream, pool: &str) {
    let sock = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    if let Err(error) = sock
        .set_tcp_keepalive(&keepalive)
        .and_then(|()| sock.set_tcp_user_timeout(Some(USER_TIMEOUT)))
    {
        tracing::warn!(pool, %error, "cannot set TCP keepalive on the pool socket");
    }
}

/// The current time on tokio's clock (pausable in tests) as the `std` instant the pure
/// modules take.
pub(super) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs one connection until it fails, is redirected or is closed, then reports how it
/// ended. Shares still pending are counted, never dropped.
pub(super) async fn run(
    shared: Arc<UpstreamContext>,
    spec: ConnSpec,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) {
    let (pool, conn) = (spec.pool, spec.conn);
    let end = match open(&shared, &spec, &cancel).await {
        Ok(Some(stream)) => {
            let mut session = PoolSession::new(shared, spec, stream, events.clone(), cancel);
            let end = session.serve().await;
            session.finish(end).await
        }
        Ok(None) => Ended::Closed,
        Err(err) => Ended::Failed(err),
    };
    // The server may be gone already (shutdown); nothing is lost by not telling it.
    let _ = events.send(Event::Ended { pool, conn, end }).await;
}

async fn open(
    shared: &UpstreamContext,
    spec: &ConnSpec,
    cancel: &CancellationToken,
) -> Result<Option<TcpStream>, UpstreamError> {
    let address = spec.address.authority();
    let after = shared.config.failover.silence_timeout;
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Ok(None),
        res = tokio::time::timeout(after, TcpStream::connect(&address)) => match res {
            Ok(Ok(stream)) => {
                // Submits are small and latency-sensitive: no Nagle delay.
                let _ = stream.set_nodelay(true);
                tune_socket(&stream, &spec.name);
                Ok(Some(stream))
            }
            Ok(Err(source)) => Err(UpstreamError::Connect { address, source }),
            Err(_) => Err(UpstreamError::ConnectTimeout { address, after }),
        },
    }
}

/// Reads the next line; cancel-safe (bytes only leave the socket inside `read_buf`, which
/// completes or leaves them there).
async fn read_message(
    reader: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    codec: &mut StratumCodec,
) -> Result<Option<Result<Message, ParseError>>, CodecError> {
    loop {
        if let Some(item) = codec.decode(buf)? {
            return Ok(Some(item));
        }
        if reader.read_buf(buf).await? == 0 {
            return codec.decode_eof(buf);
        }
    }
}

/// The state of one live pool session.
struct PoolSession {
    shared: Arc<UpstreamContext>,
    spec: ConnSpec,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
    reader: OwnedReadHalf,
    read_buf: BytesMut,
    codec: StratumCodec,
    writer: OwnedWriteHalf,
    /// Lines encoded but not yet written; flushed once per batch.
    write_buf: BytesMut,
    health: Health,
    /// Next request id of ours; 1–3 are the handshake.
    next_id: u64,
    /// Non-submit requests awaiting an answer.
    requests: HashMap<u64, Asked>,
    /// Submits awaiting an answer.
    pending: Pending,
    /// The connection's submit queue.
    submits: mpsc::Receiver<UpstreamSubmit>,
    /// The sending side handed out with every job of this connection.
    link: UpstreamLink,
    /// `E` and `N` once subscribed.
    extranonce: Option<(Vec<u8>, usize)>,
    /// Target of the pool's latest difficulty (difficulty 1 until told otherwise).
    target: Target,
    /// The pool's latest difficulty (1 until told otherwise).
    difficulty: f64,
    /// The pool answered the pool user's authorize `true`.
    authorized: bool,
    /// When to ask the pool for a difficulty that fits the channel.
    suggester: Suggester,
    /// Granted version-rolling mask.
    version_mask: u32,
    /// The pool's latest job, re-sent to the server when the extranonce or mask changes.
    latest: Option<Notify>,
    /// Whether work has been handed to the server (the connection is ready).
    ready: bool,
    /// Per-miner names on this pool (`upstream_worker = "per-miner"` only).
    workers: submit::WorkerBook,
    /// Round-trip time of submits.
    latency: metrics::Histogram,
    /// Gate for the warning about shares left without a verdict, which repeats per
    /// share while a pool reads and does not answer.
    no_answer_log: RateLimitedLog,
    /// Gate for the warning about refused redirects.
    redirect_log: RateLimitedLog,
    /// Gate for the warning about shares the pool rejected.
    reject_log: RateLimitedLog,
}

impl PoolSession {
    fn new(
        shared: Arc<UpstreamContext>,
        spec: ConnSpec,
        stream: TcpStream,
        events: mpsc::Sender<Event>,
        cancel: CancellationToken,
    ) -> PoolSession {
        let (reader, writer) = stream.into_split();
        let (tx, submits) = mpsc::channel(SUBMIT_QUEUE);
        let link = UpstreamLink::new(spec.name.clone(), spec.conn, tx)
            .with_hashrate(spec.hashrate.clone());
        let now = now();
        let suggester = Suggester::new(shared.config.proxy.upstream_shares_per_sec);
        // The series exists from the first connection, so `increase()` in an alert sees
        // the first refusal too.
        metrics::counter!(
            "hashgate_upstream_redirects_refused_total",
            "pool" => spec.name.to_string()
        )
        .increment(0);
        let latency = metrics::histogram!(
            "hashgate_upstream_submit_latency_seconds",
            "pool" => spec.name.to_string()
        );
        PoolSession {
            codec: StratumCodec::new(shared.config.proxy.max_line_bytes.get()),
            health: Health::new(
                HealthRules {
                    answer_timeout: shared.config.failover.silence_timeout,
                    job_floor: shared.config.failover.job_timeout_floor,
                    reject_streak: shared.config.failover.reject_streak,
                },
                TICK,
                now,
            ),
            shared,
            spec,
            events,
            cancel,
            reader,
            read_buf: BytesMut::with_capacity(8 * 1024),
            writer,
            write_buf: BytesMut::with_capacity(8 * 1024),
            next_id: 1,
            requests: HashMap::new(),
            pending: Pending::default(),
            submits,
            link,
            extranonce: None,
            target: Target::DIFF1,
            difficulty: 1.0,
            authorized: false,
            suggester,
            version_mask: 0,
            latest: None,
            ready: false,
            workers: submit::WorkerBook::default(),
            latency,
            no_answer_log: RateLimitedLog::starting_at(ratelog::DEFAULT_WINDOW, now),
            redirect_log: RateLimitedLog::starting_at(ratelog::DEFAULT_WINDOW, now),
            reject_log: RateLimitedLog::starting_at(ratelog::DEFAULT_WINDOW, now),
        }
    }

    async fn serve(&mut self) -> Ended {
        tracing::info!(pool = %self.spec.name, conn = self.spec.conn, address = %self.spec.address, "connected to pool");
        match self.handshake().await {
            Ok(()) => {}
            Err(end) => return end,
        }
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(SUBMIT_BATCH);
        loop {
            // Unbiased: a pool flooding lines must not starve the submit queue or the
            // health tick, nor a burst of shares the pool's answers.
            let step = tokio::select! {
                _ = self.cancel.cancelled() => return Ended::Closed,
                line = read_message(&mut self.reader, &mut self.read_buf, &mut self.codec) => {
                    self.on_line(line).await
                }
                _ = self.submits.recv_many(&mut batch, SUBMIT_BATCH) => {
                    self.send_batch(&mut batch).await
                }
                _ = tick.tick() => self.on_tick().await,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    async fn handshake(&mut self) -> Result<(), Ended> {
        let configure = Configure {
            version_rolling: Some(VersionRolling {
                mask: Some(REQUESTED_VERSION_MASK),
                min_bit_count: Some(2),
            }),
            ..Configure::default()
        };
        self.request(Asked::Configure, Method::Configure(configure));
        self.request(
            Asked::Subscribe,
            Method::Subscribe(Subscribe {
                user_agent: Some(USER_AGENT.to_owned()),
                session_id: None,
            }),
        );
        self.request(Asked::Authorize, self.authorize_pool_user());
        self.flush().await
    }

    fn authorize_pool_user(&self) -> Method {
        Method::Authorize(Authorize {
            user: self.spec.config.user.clone(),
            password: Some(self.spec.config.password.clone()),
        })
    }

    /// Encodes a request under a fresh id of ours and remembers what it was.
    fn request(&mut self, kind: Asked, method: Method) {
        let id = self.take_id();
        // A worker's authorize is the one request a pool may leave unanswered (ckpool
        // answers only the first on a connection): its silence means "not supported", not
        // "pool down", and is judged by the worker book instead.
        if !matches!(kind, Asked::WorkerAuthorize(_)) {
            self.health.sent_request(now());
        }
        self.requests.insert(id, kind);
        Message::Request(Request {
            id: Id::Int(id),
            method,
        })
        .encode_into(&mut self.write_buf);
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    async fn flush(&mut self) -> Result<(), Ended> {
        if self.write_buf.is_empty() {
            return Ok(());
        }
        let limit = self.shared.config.failover.silence_timeout;
        match tokio::time::timeout(limit, self.writer.write_all(&self.write_buf)).await {
            Ok(Ok(())) => {
                self.write_buf.clear();
                Ok(())
            }
            Ok(Err(err)) => Err(CodecError::Io(err).into()),
            Err(_) => Err(UpstreamError::WriteStalled(limit).into()),
        }
    }

    async fn on_line(
        &mut self,
        line: Result<Option<Result<Message, ParseError>>, CodecError>,
    ) -> Result<(), Ended> {
        let now = now();
        match line? {
            None => Err(UpstreamError::Closed.into()),
            Some(Err(err)) => {
                tracing::warn!(pool = %self.spec.name, error = %err, "unreadable line from pool");
                Ok(())
            }
            Some(Ok(Message::Response(answer))) => {
                self.health.answered();
                self.on_answer(answer, now)?;
                if !self.ready && self.extranonce.is_some() && self.latest.is_some() {
                    // A pool that sent its first job before answering subscribe.
                    self.hand_over(true).await?;
                }
                Ok(())
            }
            Some(Ok(Message::Request(request))) => self.on_request(request, now).await,
        }
    }

    fn on_answer(&mut self, answer: Response, now: Instant) -> Result<(), Ended> {
        let Id::Int(id) = answer.id else {
            tracing::debug!(pool = %self.spec.name, id = %answer.id, "answer to no request of ours");
            return Ok(());
        };
        if let Some(share) = self.pending.take(id) {
            return self.on_submit_answer(share, &answer, now);
        }
        match self.requests.remove(&id) {
            Some(Asked::Configure) => {
                self.version_mask = match &answer.result {
                    ResultValue::Configure(c) if c.version_rolling == Some(true) => {
                        c.version_rolling_mask.unwrap_or(0) & REQUESTED_VERSION_MASK
                    }
                    _ => 0,
                };
                tracing::debug!(pool = %self.spec.name, mask = format_args!("{:08x}", self.version_mask), "version rolling");
                Ok(())
            }
            Some(Asked::Subscribe) => self.on_subscribed(answer),
            Some(Asked::Authorize) => {
                if answer.is_accepted() {
                    tracing::debug!(pool = %self.spec.name, user = %self.spec.config.user, "authorized");
                    self.authorized = true;
                    Ok(())
                } else {
                    Err(UpstreamError::Unauthorized {
                        user: self.spec.config.user.clone(),
                        reason: answer
                            .reject_message()
                            .unwrap_or("no reason given")
                            .to_owned(),
                    }
                    .into())
                }
            }
            Some(Asked::WorkerAuthorize(worker)) => {
                if answer.is_accepted() {
                    self.workers.verified(&worker);
                } else {
                    let reason = answer.reject_message().unwrap_or("no reason given");
                    self.per_miner_fallback(submit::Fallback::Refused, reason);
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn on_subscribed(&mut self, answer: Response) -> Result<(), Ended> {
        let ResultValue::Subscribe(result) = answer.result else {
            let reason = answer
                .reject_message()
                .map_or_else(|| format!("{:?}", answer.result), str::to_owned);
            return Err(UpstreamError::SubscribeRefused(reason).into());
        };
        // A configure the pool never answered would have been answered before this.
        if self
            .requests
            .values()
            .any(|r| matches!(r, Asked::Configure))
        {
            self.requests.retain(|_, r| !matches!(r, Asked::Configure));
            self.version_mask = 0;
        }
        self.check_extranonce(result.extranonce2_size)?;
        tracing::info!(
            pool = %self.spec.name,
            extranonce1 = %hex::encode(&result.extranonce1),
            extranonce2_size = result.extranonce2_size,
            "subscribed"
        );
        self.extranonce = Some((result.extranonce1, result.extranonce2_size));
        self.spec
            .stats
            .set_channel_difficulty(self.spec.channel, self.difficulty);
        Ok(())
    }

    /// Refuses a pool extranonce2 that cannot be split at all; the first pool to report a
    /// usable one fixes the miners' sizes (which also opens the first channel).
    fn check_extranonce(&self, pool_extranonce2_size: usize) -> Result<(), Ended> {
        let proxy = &self.shared.config.proxy;
        let choice = {
            let _sizing = self.shared.sizing_lock();
            let current = self.shared.hub.sizes();
            let choice = plan_for(
                current,
                pool_extranonce2_size,
                proxy.miners_per_upstream.get(),
                self.shared.split_limits(),
            )
            .map_err(UpstreamError::from)?;
            if current.is_none()
                && let PlanChoice::Resize(plan) = choice
            {
                self.shared.hub.set_sizes(&plan);
                tracing::info!(
                    pool = %self.spec.name,
                    prefix_len = plan.prefix_len(),
                    miner_extranonce2_size = plan.miner_extranonce2_size(),
                    pad_len = plan.pad_len(),
                    "miner extranonce sizes fixed by the first pool"
                );
            }
            choice
        };
        if let PlanChoice::Resize(_) = choice {
            tracing::debug!(pool = %self.spec.name, pool_extranonce2_size, "pool needs other miner sizes when it becomes active");
        }
        Ok(())
    }

    async fn on_request(&mut self, request: Request, now: Instant) -> Result<(), Ended> {
        match request.method {
            Method::Notify(notify) => {
                self.health.new_job(now);
                let clean = notify.clean_jobs;
                self.latest = Some(notify);
                self.hand_over(clean).await
            }
            Method::SetDifficulty(difficulty) => {
                match Difficulty::new(difficulty) {
                    Ok(d) => {
                        self.target = d.to_target();
                        self.difficulty = difficulty;
                        self.spec.stats.set_difficulty(difficulty);
                        self.spec
                            .stats
                            .set_channel_difficulty(self.spec.channel, difficulty);
                        tracing::debug!(pool = %self.spec.name, difficulty, "pool difficulty");
                    }
                    Err(err) => {
                        tracing::warn!(pool = %self.spec.name, error = %err, "ignoring pool difficulty")
                    }
                }
                Ok(())
            }
            Method::SetExtranonce(set) => {
                self.check_extranonce(set.extranonce2_size)?;
                tracing::info!(
                    pool = %self.spec.name,
                    extranonce1 = %hex::encode(&set.extranonce1),
                    extranonce2_size = set.extranonce2_size,
                    "pool changed the extranonce"
                );
                self.extranonce = Some((set.extranonce1, set.extranonce2_size));
                // Work under the old extranonce is void at the pool.
                self.hand_over(true).await
            }
            Method::SetVersionMask(mask) => {
                self.version_mask = mask & REQUESTED_VERSION_MASK;
                tracing::info!(pool = %self.spec.name, mask = format_args!("{mask:08x}"), "pool changed the version mask");
                self.hand_over(false).await
            }
            Method::Reconnect(Reconnect {
                host,
                port,
                wait_seconds,
            }) => {
                let address = PoolUrl {
                    host: host
                        .filter(|h| !h.is_empty())
                        .unwrap_or_else(|| self.spec.address.host.clone()),
                    port: port.filter(|&p| p != 0).unwrap_or(self.spec.address.port),
                };
                if !self.spec.config.may_redirect_to(&address.host) {
                    metrics::counter!(
                        "hashgate_upstream_redirects_refused_total",
                        "pool" => self.spec.name.to_string()
                    )
                    .increment(1);
                    // A pool (or whoever speaks for it) can send these as fast as it likes.
                    if let Verdict::Log { suppressed } = self.redirect_log.check(now) {
                        tracing::warn!(
                            pool = %self.spec.name,
                            to = %address,
                            suppressed,
                            "pool asked to reconnect to another host; refused (the account and the site's shares stay with the configured pool; list the host in pools[].reconnect_hosts to allow it)"
                        );
                    }
                    return Ok(());
                }
                let wait = reconnect_wait(wait_seconds, self.shared.config.failover.reconnect_max);
                tracing::warn!(pool = %self.spec.name, to = %address, ?wait, "pool asked to reconnect");
                Err(Ended::Reconnect { address, wait })
            }
            Method::GetVersion => {
                if request.id != Id::Null {
                    Message::Response(Response {
                        id: request.id,
                        result: ResultValue::Text(USER_AGENT.to_owned()),
                        error: None,
                        reject_reason: None,
                    })
                    .encode_into(&mut self.write_buf);
                    self.flush().await?;
                }
                Ok(())
            }
            Method::ShowMessage(text) => {
                tracing::info!(pool = %self.spec.name, message = %text, "message from pool");
                Ok(())
            }
            other => {
                tracing::debug!(pool = %self.spec.name, method = other.name(), "ignoring pool request");
                Ok(())
            }
        }
    }

    /// Hands the latest job to the channel server, once subscribed.
    async fn hand_over(&mut self, clean: bool) -> Result<(), Ended> {
        let (Some((extranonce1, extranonce2_size)), Some(notify)) =
            (&self.extranonce, &self.latest)
        else {
            return Ok(());
        };
        let work = PoolWork {
            notify: notify.clone(),
            extranonce1: extranonce1.clone(),
            extranonce2_size: *extranonce2_size,
            target: self.target,
            version_mask: self.version_mask,
            link: self.link.clone(),
            clean,
        };
        self.ready = true;
        let event = Event::Work {
            pool: self.spec.pool,
            conn: self.spec.conn,
            work: Arc::new(work),
        };
        if self.events.send(event).await.is_err() {
            // The channel server is gone: the proxy is shutting down.
            return Err(Ended::Closed);
        }
        Ok(())
    }

    async fn on_tick(&mut self) -> Result<(), Ended> {
        let now = now();
        // First, so a tick that comes late because this task was starved excuses the gap
        // before any deadline is judged: the pool's lines may be waiting unread.
        let verdict = self.health.check(now);
        let stall = self.health.take_stall();
        if !stall.is_zero() {
            // Lines the pool sent meanwhile are still in the socket: restart the shares'
            // timeouts too, and tell the operator the machine is too busy.
            self.pending.excuse(stall, now);
            if stall >= Duration::from_secs(1) {
                tracing::warn!(pool = %self.spec.name, ?stall, "upstream task stalled (machine overloaded?); not counted against the pool");
            } else {
                tracing::debug!(pool = %self.spec.name, ?stall, "upstream task stalled");
            }
        }
        let setup = self
            .shared
            .config
            .failover
            .silence_timeout
            .saturating_mul(2);
        if !self.ready && self.health.awake_for(now) >= setup {
            return Err(UpstreamError::SetupTimeout(setup).into());
        }
        if self
            .workers
            .unanswered_since(now, self.shared.config.failover.silence_timeout)
        {
            self.per_miner_fallback(submit::Fallback::Unanswered, "no answer");
        }
        for expired in self
            .pending
            .expire(now, self.shared.config.failover.submit_timeout)
        {
            if let Verdict::Log { suppressed } = self.no_answer_log.check(now) {
                tracing::warn!(pool = %self.spec.name, worker = %expired.share.worker, suppressed, "pool did not answer a share in time");
            }
            self.undelivered(&expired.share, Undelivered::NoAnswer);
        }
        self.suggest_difficulty(now).await?;
        match verdict {
            HealthCheck::Fine => Ok(()),
            HealthCheck::Unanswered(after) => Err(UpstreamError::Unanswered(after).into()),
            HealthCheck::NoNewJob(after) => Err(UpstreamError::NoNewJob(after).into()),
        }
    }

    /// Asks the pool for a difficulty that fits the channel, when the rule says so
    /// (`suggest.rs`). The request is written but not awaited: ckpool never answers it
    /// and a pool may ignore it, so it must not start the answer clock in [`Health`], nor
    /// wait in `requests` for an answer that never comes; the pool's `set_difficulty`, if
    /// any, is followed as always.
    async fn suggest_difficulty(&mut self, now: Instant) -> Result<(), Ended> {
        if !self.authorized || self.extranonce.is_none() {
            return Ok(());
        }
        let hashrate = self.spec.hashrate.rate(now);
        let Some(difficulty) = self.suggester.decide(hashrate, self.difficulty) else {
            return Ok(());
        };
        tracing::info!(
            pool = %self.spec.name,
            channel = self.spec.channel,
            hashrate = hashrate.unwrap_or(0.0),
            pool_difficulty = self.difficulty,
            suggested = difficulty,
            "suggesting a difficulty that fits the channel"
        );
        let id = self.take_id();
        Message::Request(Request {
            id: Id::Int(id),
            method: Method::SuggestDifficulty(difficulty),
        })
        .encode_into(&mut self.write_buf);
        self.spec
            .stats
            .set_channel_suggested(self.spec.channel, difficulty);
        self.flush().await
    }
}
