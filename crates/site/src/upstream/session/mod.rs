//! The pool side of one Stratum V1 connection, without I/O: a [`PoolSession`] is fed the
//! pool's lines, the miners' shares and clock ticks, each with the current instant, and
//! leaves behind what to write to the pool ([`PoolSession::take_output`]) and what
//! happened ([`PoolSession::take_events`]: jobs for the channel server, verdicts, the
//! pool's difficulty, suggestions). A call that finds the connection over (a health rule,
//! a redirect, a refused handshake) returns the [`Ended`] reason.
//!
//! The socket task (`connection/`) is a thin loop around it, as `downstream/session.rs` is
//! for miners, so the health and identity rules are tested here in simulated time
//! (`session_tests/`), with no sockets and no sleeps.
//!
//! The session pipelines `mining.configure`, `mining.subscribe` and `mining.authorize`
//! and then takes lines in whatever order the pool sends them (ckpool sends
//! `set_difficulty` and the first `notify` before it answers `authorize`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::config::PoolUrl;
use crate::hub::{MinerWorker, UpstreamLink};
use crate::ratelog::{self, RateLimitedLog, Verdict};
use crate::stats::Undelivered;
use hashgate_protocol::stratum::{
    Authorize, Configure, Id, Message, Method, Notify, ParseError, Reconnect, Request, Response,
    ResultValue, Subscribe, VersionRolling,
};
use hashgate_protocol::work::{Difficulty, Target};

mod submit;

#[cfg(test)]
mod session_tests;

use super::UpstreamContext;
use super::error::UpstreamError;
use super::event::{ConnSpec, Ended, PoolWork};
use super::health::{Health, HealthCheck, HealthRules};
use super::pending::Pending;
use super::sizing::{PlanChoice, plan_for};
use super::suggest::Suggester;

pub(super) use submit::Fallback;

/// The user agent sent in `mining.subscribe`.
pub const USER_AGENT: &str = concat!("hashgate/", env!("CARGO_PKG_VERSION"));

/// The version-rolling mask asked for: everything, so the pool grants all it allows.
pub(crate) const REQUESTED_VERSION_MASK: u32 = 0xffff_ffff;

/// How often the socket task ticks the session. There are only a few upstream
/// connections, so a fixed tick costs nothing and keeps the timing logic in one place; a
/// tick that comes more than one period late tells [`Health`] the task itself was stalled.
pub(super) const TICK: Duration = Duration::from_millis(100);

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

/// What happened on the connection, for the socket task (jobs) and for tests.
// The socket task only acts on jobs (the rest is already in the stats and logs); the
// other events are what the simulated-time tests read.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug)]
pub(super) enum SessionEvent {
    /// Work for the channel server (and, the first time, "subscribed and ready").
    Work(Arc<PoolWork>),
    /// The pool's verdict on a share: `true` accepted.
    Verdict(bool),
    /// The pool set a new difficulty.
    Difficulty(f64),
    /// A difficulty was suggested to the pool.
    Suggested(f64),
    /// Per-miner names were given up on this connection.
    WorkerFallback(Fallback),
}

/// The pool side of one live connection.
pub(super) struct PoolSession {
    shared: Arc<UpstreamContext>,
    spec: ConnSpec,
    /// Lines encoded but not yet written; taken by the socket task.
    out: BytesMut,
    /// What happened since the socket task last looked.
    events: Vec<SessionEvent>,
    health: Health,
    /// Next request id of ours; 1–3 are the handshake.
    next_id: u64,
    /// Non-submit requests awaiting an answer.
    requests: HashMap<u64, Asked>,
    /// Submits awaiting an answer.
    pending: Pending,
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
    /// A session for a connection just opened at `now`; shares for its jobs go to `link`.
    pub(super) fn new(
        shared: Arc<UpstreamContext>,
        spec: ConnSpec,
        link: UpstreamLink,
        now: Instant,
    ) -> PoolSession {
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
            out: BytesMut::with_capacity(8 * 1024),
            events: Vec::new(),
            next_id: 1,
            requests: HashMap::new(),
            pending: Pending::default(),
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

    /// Lines to write to the pool, in order; empty when there is nothing.
    pub(super) fn take_output(&mut self) -> BytesMut {
        self.out.split()
    }

    /// What happened since the last call, in order.
    pub(super) fn take_events(&mut self) -> Vec<SessionEvent> {
        std::mem::take(&mut self.events)
    }

    /// Whether shares sent are still waiting for a verdict.
    pub(super) fn awaiting_verdicts(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The handshake: configure, subscribe and authorize, pipelined.
    pub(super) fn start(&mut self, now: Instant) {
        let configure = Configure {
            version_rolling: Some(VersionRolling {
                mask: Some(REQUESTED_VERSION_MASK),
                min_bit_count: Some(2),
            }),
            ..Configure::default()
        };
        self.request(Asked::Configure, Method::Configure(configure), now);
        self.request(
            Asked::Subscribe,
            Method::Subscribe(Subscribe {
                user_agent: Some(USER_AGENT.to_owned()),
                session_id: None,
            }),
            now,
        );
        let authorize = Method::Authorize(Authorize {
            user: self.spec.config.user.clone(),
            password: Some(self.spec.config.password.clone()),
        });
        self.request(Asked::Authorize, authorize, now);
    }

    /// Encodes a request under a fresh id of ours and remembers what it was.
    fn request(&mut self, kind: Asked, method: Method, now: Instant) {
        let id = self.take_id();
        // A worker's authorize is the one request a pool may leave unanswered (ckpool
        // answers only the first on a connection): its silence means "not supported", not
        // "pool down", and is judged by the worker book instead.
        if !matches!(kind, Asked::WorkerAuthorize(_)) {
            self.health.sent_request(now);
        }
        self.requests.insert(id, kind);
        Message::Request(Request {
            id: Id::Int(id),
            method,
        })
        .encode_into(&mut self.out);
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Takes one line from the pool (or the reason it could not be parsed).
    pub(super) fn on_message(
        &mut self,
        line: Result<Message, ParseError>,
        now: Instant,
    ) -> Result<(), Ended> {
        match line {
            Err(err) => {
                tracing::warn!(pool = %self.spec.name, error = %err, "unreadable line from pool");
                Ok(())
            }
            Ok(Message::Response(answer)) => {
                self.health.answered();
                self.on_answer(answer, now)?;
                if !self.ready && self.extranonce.is_some() && self.latest.is_some() {
                    // A pool that sent its first job before answering subscribe.
                    self.hand_over(true);
                }
                Ok(())
            }
            Ok(Message::Request(request)) => self.on_request(request, now),
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

    fn on_request(&mut self, request: Request, now: Instant) -> Result<(), Ended> {
        match request.method {
            Method::Notify(notify) => {
                self.health.new_job(now);
                let clean = notify.clean_jobs;
                self.latest = Some(notify);
                self.hand_over(clean);
                Ok(())
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
                        self.events.push(SessionEvent::Difficulty(difficulty));
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
                self.hand_over(true);
                Ok(())
            }
            Method::SetVersionMask(mask) => {
                self.version_mask = mask & REQUESTED_VERSION_MASK;
                tracing::info!(pool = %self.spec.name, mask = format_args!("{mask:08x}"), "pool changed the version mask");
                self.hand_over(false);
                Ok(())
            }
            Method::Reconnect(Reconnect {
                host,
                port,
                wait_seconds,
            }) => self.on_reconnect(host, port, wait_seconds, now),
            Method::GetVersion => {
                if request.id != Id::Null {
                    Message::Response(Response {
                        id: request.id,
                        result: ResultValue::Text(USER_AGENT.to_owned()),
                        error: None,
                        reject_reason: None,
                    })
                    .encode_into(&mut self.out);
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

    /// `client.reconnect`: followed (the connection ends) only to the pool's own host or
    /// one the operator listed; anything else is refused and counted.
    fn on_reconnect(
        &mut self,
        host: Option<String>,
        port: Option<u16>,
        wait_seconds: Option<u64>,
        now: Instant,
    ) -> Result<(), Ended> {
        let address = PoolUrl {
            host: host
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| self.spec.address.host.clone()),
            port: port.filter(|&p| p != 0).unwrap_or(self.spec.address.port),
            tls: self.spec.address.tls,
            sv2: None,
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

    /// Hands the latest job to the channel server, once subscribed.
    fn hand_over(&mut self, clean: bool) {
        let (Some((extranonce1, extranonce2_size)), Some(notify)) =
            (&self.extranonce, &self.latest)
        else {
            return;
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
        self.events.push(SessionEvent::Work(Arc::new(work)));
    }

    /// The clock: stalls, setup and share deadlines, per-miner names left unanswered,
    /// difficulty suggestions, and the health verdict.
    pub(super) fn on_tick(&mut self, now: Instant) -> Result<(), Ended> {
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
        self.suggest_difficulty(now);
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
    fn suggest_difficulty(&mut self, now: Instant) {
        if !self.authorized || self.extranonce.is_none() {
            return;
        }
        let hashrate = self.spec.hashrate.rate(now);
        let Some(difficulty) = self.suggester.decide(hashrate, self.difficulty) else {
            return;
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
        .encode_into(&mut self.out);
        self.spec
            .stats
            .set_channel_suggested(self.spec.channel, difficulty);
        self.events.push(SessionEvent::Suggested(difficulty));
    }
}
