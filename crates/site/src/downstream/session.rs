//! One miner's session state machine: every message in, the lines to send out.
//!
//! No socket and no clock here: the connection task passes each parsed line with `now`,
//! and this code answers into the [`Outbox`].
//!
//! # States
//!
//! | phase | reached by | allowed |
//! |---|---|---|
//! | `Connected` | accepting the socket | configure, extranonce.subscribe, suggest_difficulty, subscribe |
//! | `Subscribed` | `mining.subscribe` (an extranonce prefix is leased) | + authorize; submits answer 24 |
//! | `Authorized` | the first accepted `mining.authorize` | + submit; jobs and difficulty flow |
//!
//! An authorize before subscribe is refused with 25: every real firmware subscribes first,
//! and the identity registered at authorize needs the prefix.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::hub::{
    Channel, ChannelControl, Hub, JoinError, MinerJob, MinerSizes, MinerWorker, UpstreamSubmit,
};
use crate::stats::{MinerIdentity, MinerRegistration, MinerStats, Registry};
use hashgate_protocol::extranonce::PrefixLease;
use hashgate_protocol::stratum::{
    Authorize, Configure, Id, Message, Method, ParseError, Request, ResultValue, Submit,
    SubscribeResult,
};
use hashgate_protocol::vardiff::{Vardiff, VardiffError};
use hashgate_protocol::work::{Difficulty, ShareReject, SubmitPolicy, Target, validate};

use super::agent::kept_user_agent;
use super::end::SessionEnd;
use super::jobs::{JobList, realias, renotify};
use super::outbox::Outbox;
use super::replies;
use super::settings::Settings;
use super::worker::miner_worker;

/// The version bits the proxy lets miners roll (BIP320's general-purpose bits).
pub(crate) const PROXY_VERSION_MASK: u32 = 0x1fff_e000;

/// Malformed lines in a row after which the miner is dropped. A miner with one odd
/// message is answered and kept (any good line resets the count); a peer that is not
/// speaking Stratum at all (an HTTP probe, a port scanner, garbage) is gone after 16.
pub const MAX_MALFORMED_IN_ROW: u32 = 16;

/// After a retarget, shares at the previous difficulty still count (at that difficulty)
/// for this long: real miners have work in flight at the old target for a few seconds.
pub const RETARGET_GRACE: Duration = Duration::from_secs(10);

/// Workers one connection may authorize. An ASIC authorizes one; a small farm controller
/// a handful. The cap keeps a misbehaving peer from growing the list without end.
pub(crate) const MAX_WORKERS_PER_CONNECTION: usize = 64;

/// Source of subscription ids; only their uniqueness within the process matters.
static NEXT_SUBSCRIPTION: AtomicU64 = AtomicU64::new(1);

/// What the connection task must do after a message.
#[derive(Debug)]
pub(super) enum Effect {
    /// Nothing beyond writing the queued lines.
    None,
    /// The miner now works on this channel: watch its jobs and control messages.
    Channel(Arc<Channel>),
    /// Write what is queued, then close for this reason.
    Close(SessionEnd),
}

/// The miner's extranonce slice and where its work comes from.
#[derive(Debug)]
struct Subscription {
    /// The channel whose jobs the miner works on.
    channel: Arc<Channel>,
    /// The miner's prefix (its extranonce1); freed when the session drops.
    lease: PrefixLease,
    /// Its extranonce2 size and prefix width.
    sizes: MinerSizes,
    /// Echoed in a repeated subscribe answer.
    id: String,
}

/// Where the session is in its setup.
#[derive(Debug)]
enum Phase {
    /// Connected; nothing leased yet.
    Connected,
    /// Subscribed, no worker authorized yet.
    Subscribed(Subscription),
    /// At least one worker authorized: jobs flow.
    Authorized(Subscription),
}

/// An authorized worker, as the miner sends it in submits and as it goes upstream.
#[derive(Debug)]
struct Worker {
    /// The name and its worker part.
    id: MinerWorker,
}

/// Everything one miner session knows.
#[derive(Debug)]
pub(super) struct MinerSession {
    /// SessionContext limits and policies.
    settings: Arc<Settings>,
    /// Where prefixes and work come from.
    hub: Arc<Hub>,
    /// Where the miner is listed once authorized.
    registry: Arc<Registry>,
    /// The miner's address, for its identity.
    peer: SocketAddr,
    /// Setup state.
    phase: Phase,
    /// Workers authorized on this connection (usually one).
    workers: Vec<Worker>,
    /// From `mining.subscribe`, for the identity.
    user_agent: String,
    /// The miner accepts `mining.set_extranonce`.
    extranonce_subscribed: bool,
    /// The mask the miner asked to roll (`None`: no version rolling configured).
    requested_mask: Option<u32>,
    /// The mask granted: requested ∩ proxy ∩ pool.
    version_mask: u32,
    /// Per-miner difficulty.
    vardiff: Vardiff,
    /// The difficulty before the last retarget and when it changed (see [`RETARGET_GRACE`]).
    previous: Option<(f64, Instant)>,
    /// The difficulty last sent to the miner; `None` before the first, so a value decided
    /// before authorize (a suggestion, a BIP310 minimum) never leaves the starting
    /// difficulty, which the miner was never told, in force as the previous one.
    announced: Option<f64>,
    /// Times the latest job was re-sent under a new id after a retarget (its alias count).
    realiased: u32,
    /// Jobs the miner may submit for.
    jobs: JobList,
    /// This miner's counters.
    stats: Arc<MinerStats>,
    /// Keeps the miner listed in the registry while connected.
    registration: Option<MinerRegistration>,
    /// Malformed lines since the last good one.
    malformed_in_row: u32,
    /// When vardiff is next polled if no job comes first.
    next_poll: Instant,
    /// The pool group whose jobs the miner is sent (as booked in `stats` at the last
    /// authorize or `Regroup`).
    group: usize,
}

impl MinerSession {
    /// A fresh session for a miner connected from `peer` at `now`.
    ///
    /// # Errors
    /// [`VardiffError`] when the settings' vardiff tuning is invalid (checked at bind).
    pub(super) fn new(
        settings: Arc<Settings>,
        hub: Arc<Hub>,
        registry: Arc<Registry>,
        peer: SocketAddr,
        now: Instant,
        wall: SystemTime,
    ) -> Result<MinerSession, VardiffError> {
        let vardiff = Vardiff::new(settings.vardiff.clone(), settings.initial_difficulty, now)?;
        let stats = Arc::new(MinerStats::new(now, wall, vardiff.current()));
        let next_poll = now + settings.vardiff.target_interval;
        Ok(MinerSession {
            settings,
            hub,
            registry,
            peer,
            phase: Phase::Connected,
            workers: Vec::new(),
            user_agent: String::new(),
            extranonce_subscribed: false,
            requested_mask: None,
            version_mask: 0,
            vardiff,
            previous: None,
            realiased: 0,
            group: 0,
            announced: None,
            jobs: JobList::default(),
            stats,
            registration: None,
            malformed_in_row: 0,
            next_poll,
        })
    }

    /// Whether a worker is authorized (setup is complete and jobs flow).
    pub(super) fn is_authorized(&self) -> bool {
        matches!(self.phase, Phase::Authorized(_))
    }

    /// Whether the miner has subscribed.
    pub(super) fn is_subscribed(&self) -> bool {
        self.subscription().is_some()
    }

    /// When [`MinerSession::on_tick`] wants to run next.
    pub(super) fn next_tick(&self) -> Option<Instant> {
        self.is_authorized().then_some(self.next_poll)
    }

    fn subscription(&self) -> Option<&Subscription> {
        match &self.phase {
            Phase::Connected => None,
            Phase::Subscribed(s) | Phase::Authorized(s) => Some(s),
        }
    }

    /// Handles one line as the codec parsed it (`line` is its raw text, for counting
    /// malformed submits).
    ///
    /// # Errors
    /// A [`SessionEnd`] when the connection must close at once (its queue is full).
    pub(super) fn handle(
        &mut self,
        parsed: Result<Message, ParseError>,
        line: &[u8],
        now: Instant,
        wall: SystemTime,
        out: &mut Outbox,
    ) -> Result<Effect, SessionEnd> {
        match parsed {
            Ok(Message::Request(request)) => {
                self.malformed_in_row = 0;
                self.request(request, now, wall, out)
            }
            // Answers to our own (rare) requests carry nothing the proxy acts on.
            Ok(Message::Response(_)) => {
                self.malformed_in_row = 0;
                Ok(Effect::None)
            }
            Err(error) => self.malformed(&error, line, out),
        }
    }

    fn malformed(
        &mut self,
        error: &ParseError,
        line: &[u8],
        out: &mut Outbox,
    ) -> Result<Effect, SessionEnd> {
        self.malformed_in_row = self.malformed_in_row.saturating_add(1);
        metrics::counter!("hashgate_downstream_malformed_total").increment(1);
        if contains(line, b"mining.submit") {
            self.stats.record_rejected(ShareReject::Malformed);
        }
        tracing::debug!(%error, "malformed line from miner");
        if let Some(id) = error.id() {
            out.push(replies::failed(id.clone(), 20, &error.to_string()))?;
        }
        if self.malformed_in_row >= MAX_MALFORMED_IN_ROW {
            return Ok(Effect::Close(SessionEnd::TooManyMalformed {
                count: self.malformed_in_row,
            }));
        }
        Ok(Effect::None)
    }

    fn request(
        &mut self,
        request: Request,
        now: Instant,
        wall: SystemTime,
        out: &mut Outbox,
    ) -> Result<Effect, SessionEnd> {
        let id = request.id;
        match request.method {
            Method::Submit(submit) => {
                let line = match self.submit(&submit, now, wall) {
                    Ok(()) => replies::accepted(id),
                    Err(reason) => {
                        self.stats.record_rejected(reason);
                        replies::rejected(id, reason)
                    }
                };
                out.push(line)?;
                Ok(Effect::None)
            }
            Method::Subscribe(subscribe) => {
                if let Some(agent) = subscribe.user_agent {
                    self.user_agent = kept_user_agent(&agent);
                }
                self.subscribe(id, out)
            }
            Method::Authorize(authorize) => self.authorize(id, &authorize, now, out),
            Method::Configure(configure) => {
                self.configure(id, &configure, out)?;
                Ok(Effect::None)
            }
            Method::ExtranonceSubscribe => {
                self.extranonce_subscribed = true;
                out.push(replies::accepted(id))?;
                Ok(Effect::None)
            }
            Method::SuggestDifficulty(difficulty) => {
                let honoured = self.vardiff.suggest(difficulty).is_ok();
                if id != Id::Null {
                    out.push(replies::result(id, ResultValue::Bool(honoured)))?;
                }
                Ok(Effect::None)
            }
            Method::Unknown { .. } => {
                out.push(replies::failed(id, 20, "Method not found"))?;
                Ok(Effect::None)
            }
            // Pool-to-miner methods make no sense from a miner.
            _ => {
                out.push(replies::failed(id, 20, "Method not accepted from a miner"))?;
                Ok(Effect::None)
            }
        }
    }

    fn subscribe(&mut self, id: Id, out: &mut Outbox) -> Result<Effect, SessionEnd> {
        if let Some(sub) = self.subscription() {
            out.push(subscribe_answer(id, sub))?;
            return Ok(Effect::None);
        }
        let (channel, lease) = match self.hub.join() {
            Ok(joined) => joined,
            Err(error) => {
                out.push(replies::failed(id, 20, &error.to_string()))?;
                return Ok(Effect::Close(match error {
                    JoinError::NoUpstream => SessionEnd::NoUpstream,
                    JoinError::Full(_) => SessionEnd::Full(error.to_string()),
                }));
            }
        };
        let Some(sizes) = self.hub.sizes() else {
            out.push(replies::failed(id, 20, "no upstream pool is connected yet"))?;
            return Ok(Effect::Close(SessionEnd::NoUpstream));
        };
        let sub = Subscription {
            channel: channel.clone(),
            sizes: MinerSizes {
                prefix_len: lease.prefix().len(),
                extranonce2_size: sizes.extranonce2_size,
            },
            lease,
            id: format!("{:08x}", NEXT_SUBSCRIPTION.fetch_add(1, Ordering::Relaxed)),
        };
        out.push(subscribe_answer(id, &sub))?;
        self.phase = Phase::Subscribed(sub);
        Ok(Effect::Channel(channel))
    }

    fn authorize(
        &mut self,
        id: Id,
        authorize: &Authorize,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<Effect, SessionEnd> {
        if !self.is_subscribed() {
            let reason = ShareReject::NotSubscribed;
            out.push(replies::refused(id, reason.code().into(), reason.reason()))?;
            return Ok(Effect::None);
        }
        let worker = match miner_worker(&authorize.user) {
            Ok(worker) => worker,
            Err(error) => {
                out.push(replies::refused(id, 20, &error.to_string()))?;
                return Ok(Effect::None);
            }
        };
        if !self.workers.iter().any(|w| w.id.name() == authorize.user) {
            if self.workers.len() >= MAX_WORKERS_PER_CONNECTION {
                out.push(replies::refused(
                    id,
                    20,
                    "Too many workers on one connection",
                ))?;
                return Ok(Effect::None);
            }
            // Nearly every miner authorizes one worker: room for exactly that, not the
            // four a first push would reserve (96 bytes per idle miner).
            self.workers.reserve_exact(1);
            self.workers.push(Worker { id: worker });
        }
        out.push(replies::accepted(id))?;
        let phase = std::mem::replace(&mut self.phase, Phase::Connected);
        let Phase::Subscribed(sub) = phase else {
            // Already authorized (another worker on the same connection): nothing to start.
            self.phase = phase;
            return Ok(Effect::None);
        };
        tracing::Span::current().record("worker", authorize.user.as_str());
        self.record_identity(&sub);
        // The pool group is chosen once, at the first worker: the listener's own group
        // (`listeners[].pool_group`) pins the miner there, else a route by worker name,
        // else the balancer.
        let placement = self
            .hub
            .split()
            .place(&authorize.user, self.settings.listener_group);
        tracing::debug!(
            listener = %self.settings.listener,
            group = placement.group,
            "miner authorized"
        );
        self.stats.place(placement.group, placement.home);
        self.group = placement.group;
        self.registration = Some(self.registry.add_miner(self.stats.clone()));
        let current = sub.channel.current_of(self.group);
        let channel = sub.channel.clone();
        self.phase = Phase::Authorized(sub);
        self.send_difficulty(now, out)?;
        if let Some(job) = current {
            self.push_job(job, now, out)?;
        }
        // The connection watches the group's feed from now on.
        Ok(Effect::Channel(channel))
    }

    /// The pool group whose jobs the miner is sent.
    pub(super) fn group(&self) -> usize {
        self.group
    }

    /// Follows a move by the balancer: when the group booked in the miner's stats is not
    /// the one it works for, it is sent that group's latest job with `clean_jobs`, so it
    /// drops the old work at once (no reconnect: its prefix serves every group). Jobs
    /// already sent stay valid for the shares in flight, which go to the pool that
    /// issued them.
    fn regroup(&mut self, now: Instant, out: &mut Outbox) -> Result<Effect, SessionEnd> {
        let target = self.stats.group();
        let Phase::Authorized(sub) = &self.phase else {
            return Ok(Effect::None);
        };
        if target == self.group || target >= sub.channel.group_count() {
            return Ok(Effect::None);
        }
        let channel = sub.channel.clone();
        self.group = target;
        if let Some(job) = channel.current_of(target) {
            let fits = job.plan.prefix_len() == sub.sizes.prefix_len
                && job.plan.miner_extranonce2_size() == sub.sizes.extranonce2_size;
            if fits {
                if self.vardiff.pending().is_some() {
                    self.send_difficulty(now, out)?;
                }
                let line = renotify(&job, None, true).unwrap_or_else(|| job.notify_line.clone());
                out.push(line)?;
                let sent = self.announced_difficulty();
                self.jobs.push_keeping(job, sent);
            }
        }
        Ok(Effect::Channel(channel))
    }

    /// Publishes who the miner is: its first worker, address, agent and current prefix.
    fn record_identity(&self, sub: &Subscription) {
        let worker = self.workers.first().map(|w| w.id.name().to_owned());
        self.stats.set_identity(MinerIdentity {
            worker: worker.unwrap_or_default(),
            remote: self.peer,
            user_agent: self.user_agent.clone(),
            prefix_hex: hex::encode(sub.lease.prefix().as_bytes()),
        });
    }

    fn configure(
        &mut self,
        id: Id,
        configure: &Configure,
        out: &mut Outbox,
    ) -> Result<(), SessionEnd> {
        let mut answer = serde_json::Map::new();
        if let Some(rolling) = configure.version_rolling {
            let asked = rolling.mask.unwrap_or(PROXY_VERSION_MASK);
            self.requested_mask = Some(asked);
            self.version_mask = asked & PROXY_VERSION_MASK & self.pool_mask();
            answer.insert("version-rolling".into(), true.into());
            answer.insert(
                "version-rolling.mask".into(),
                format!("{:08x}", self.version_mask).into(),
            );
        }
        if let Some(minimum) = configure.minimum_difficulty {
            answer.insert(
                "minimum-difficulty".into(),
                self.raise_minimum(minimum).into(),
            );
        }
        if configure.subscribe_extranonce {
            self.extranonce_subscribed = true;
            answer.insert("subscribe-extranonce".into(), true.into());
        }
        for name in &configure.unknown {
            answer.insert(name.clone(), false.into());
        }
        let text = serde_json::Value::Object(answer).to_string();
        out.push(replies::result(id, ResultValue::Other(text.into())))
    }

    /// The pool's version mask from the work the miner gets (or will get), or the proxy's
    /// own before any job exists.
    fn pool_mask(&self) -> u32 {
        let job = match self.subscription() {
            Some(sub) => sub.channel.current(),
            None => self.hub.channels().first().and_then(|c| c.current()),
        };
        job.map_or(PROXY_VERSION_MASK, |j| j.version_mask)
    }

    /// BIP310 `minimum-difficulty`: the miner's floor, kept inside the site's bounds; a
    /// raise goes out with the next job like any retarget (or at authorize).
    fn raise_minimum(&mut self, minimum: f64) -> bool {
        self.vardiff.set_minimum(minimum).is_ok()
    }

    fn submit(&mut self, s: &Submit, now: Instant, wall: SystemTime) -> Result<(), ShareReject> {
        let Some(sub) = self.subscription() else {
            return Err(ShareReject::NotSubscribed);
        };
        let worker = self
            .workers
            .iter()
            .find(|w| w.id.name() == s.worker)
            .ok_or(ShareReject::Unauthorized)?;
        let (job, sent) = self.jobs.get(&s.job_id).ok_or(ShareReject::Stale)?;
        let current = self.announced_difficulty();
        let previous = self
            .previous
            .filter(|(_, at)| now.saturating_duration_since(*at) < RETARGET_GRACE)
            .map(|(d, _)| d);
        // Work on a notify sent before a retarget, under that notify's own id: the miner
        // may still be on it at the difficulty it was sent with (see `jobs::base_id`).
        let sent = sent.filter(|d| *d < current);
        let easiest = [previous, sent]
            .into_iter()
            .flatten()
            .fold(current, f64::min);
        let policy = SubmitPolicy {
            extranonce2_len: sub.sizes.extranonce2_size,
            version_mask: self.version_mask & job.version_mask,
            ntime_window_secs: self.settings.ntime_window_secs,
            miner_target: target_of(easiest),
        };
        let prefix = sub.lease.prefix();
        let share = validate(
            &job.job,
            &hashgate_protocol::work::ShareInput {
                extranonce1: prefix.as_bytes(),
                extranonce2: s.extranonce2.as_bytes(),
                ntime: s.ntime,
                nonce: s.nonce,
                version_bits: s.version_bits,
            },
            &policy,
        )?;
        // Credit the highest difficulty in force that the share meets.
        let credited = [Some(current), previous, sent]
            .into_iter()
            .flatten()
            .filter(|d| share.meets(&target_of(*d)))
            .fold(easiest, f64::max);
        // The channel's hashrate counts every credited share, forwarded or not.
        let hashrate = job.link.hashrate().cloned();
        let forward = share.is_block() || share.meets(&job.upstream_target);
        let upstream = forward.then(|| {
            (
                job.plan.compose(prefix, s.extranonce2.as_bytes()),
                job.pool_job_id.clone(),
                job.link.clone(),
                worker.id.clone(),
            )
        });
        self.jobs.record(&s.job_id, share.hash())?;
        self.stats
            .record_accepted(now, wall, credited, share.difficulty());
        self.vardiff.on_share(now, credited);
        if let Some(hashrate) = &hashrate {
            hashrate.record(now, credited);
        }
        if share.is_block() {
            self.stats.record_block();
            tracing::warn!(hash = %share.hash(), job = %s.job_id, worker = %s.worker, "BLOCK FOUND by this miner");
        }
        if let Some((extranonce2, pool_job_id, link, worker)) = upstream {
            match extranonce2 {
                Ok(extranonce2) => {
                    // A failure is counted against the miner by the link itself.
                    let _ = link.submit(UpstreamSubmit {
                        worker,
                        pool_job_id,
                        extranonce2,
                        ntime: s.ntime,
                        nonce: s.nonce,
                        version_bits: s.version_bits,
                        is_block: share.is_block(),
                        difficulty: credited,
                        miner: self.stats.clone(),
                        validated_at: now,
                    });
                }
                Err(error) => {
                    tracing::error!(%error, "cannot compose the pool extranonce2 of a valid share");
                }
            }
        }
        Ok(())
    }

    /// Sends a job taken from the channel: the pending difficulty first, then the notify.
    ///
    /// # Errors
    /// [`SessionEnd::SlowConsumer`] when the queue is full.
    pub(super) fn on_job(
        &mut self,
        job: Arc<MinerJob>,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<(), SessionEnd> {
        if !self.is_authorized() || self.jobs.latest().is_some_and(|j| Arc::ptr_eq(j, &job)) {
            return Ok(());
        }
        // Polling here means a retarget rides on the job that follows it.
        let _ = self.vardiff.poll(now);
        self.push_job(job, now, out)
    }

    fn push_job(
        &mut self,
        job: Arc<MinerJob>,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<(), SessionEnd> {
        let fits = self.subscription().is_some_and(|sub| {
            job.plan.prefix_len() == sub.sizes.prefix_len
                && job.plan.miner_extranonce2_size() == sub.sizes.extranonce2_size
        });
        if !fits {
            // Built for the extranonce sizes before a resize: the miner could not work
            // it; the pool's next job will be built for the new sizes.
            tracing::debug!(job = %job.id, "job skipped: built for other extranonce sizes");
            return Ok(());
        }
        if self.vardiff.pending().is_some() {
            self.send_difficulty(now, out)?;
        }
        out.push(job.notify_line.clone())?;
        let sent = self.announced_difficulty();
        self.jobs.push(job, sent);
        // The tick keeps its own beat: a job does not postpone it, so a silent new miner
        // is probed down every target interval however often jobs come.
        Ok(())
    }

    /// The difficulty the miner was last told (the vardiff's before the first).
    fn announced_difficulty(&self) -> f64 {
        self.announced.unwrap_or(self.vardiff.current())
    }

    /// Sends `mining.set_difficulty` with the pending difficulty (or the current one) and
    /// commits it.
    fn send_difficulty(&mut self, now: Instant, out: &mut Outbox) -> Result<(), SessionEnd> {
        let next = self.vardiff.pending().unwrap_or(self.vardiff.current());
        out.push(replies::set_difficulty(next))?;
        self.vardiff.applied(now);
        if let Some(before) = self.announced
            && before != next
        {
            self.previous = Some((before, now));
        }
        self.announced = Some(next);
        self.stats.set_difficulty(next);
        Ok(())
    }

    /// The periodic vardiff poll while no jobs come: a retarget is sent at once with the
    /// latest job again, so a miner on a long-lived job still gets its new difficulty.
    ///
    /// # Errors
    /// [`SessionEnd::SlowConsumer`] when the queue is full.
    pub(super) fn on_tick(&mut self, now: Instant, out: &mut Outbox) -> Result<(), SessionEnd> {
        if !self.is_authorized() || now < self.next_poll {
            return Ok(());
        }
        self.next_poll = now + self.settings.vardiff.target_interval;
        let _ = self.vardiff.poll(now);
        if self.vardiff.pending().is_none() {
            return Ok(());
        }
        if let Some(job) = self.jobs.latest().cloned() {
            self.send_difficulty(now, out)?;
            // Under a new id: a miner that rebuilds work only on a new job id would
            // otherwise keep hashing at the old difficulty until the pool's next job.
            // One that keeps its old work even so (cpuminer, see `jobs::base_id`) is
            // judged by the difficulty its job id was sent with.
            self.realiased = self.realiased.wrapping_add(1);
            let line = realias(&job, self.realiased).unwrap_or_else(|| job.notify_line.clone());
            out.push(line)?;
        }
        Ok(())
    }

    /// A control message from the miner's channel.
    ///
    /// # Errors
    /// [`SessionEnd::SlowConsumer`] when the queue is full.
    pub(super) fn on_control(
        &mut self,
        control: ChannelControl,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<Effect, SessionEnd> {
        match control {
            ChannelControl::Resize(_) => self.resize(now, out),
            ChannelControl::Regroup => self.regroup(now, out),
            ChannelControl::VersionMask(pool_mask) => {
                if let Some(asked) = self.requested_mask {
                    let granted = asked & PROXY_VERSION_MASK & pool_mask;
                    if granted != self.version_mask {
                        self.version_mask = granted;
                        out.push(replies::set_version_mask(granted))?;
                    }
                }
                Ok(Effect::None)
            }
        }
    }

    /// The miner's control messages were lost (it lagged behind): it cannot be trusted to
    /// have the right extranonce, so it is sent away to reconnect.
    ///
    /// # Errors
    /// [`SessionEnd::SlowConsumer`] when the queue is full.
    pub(super) fn on_control_lost(&mut self, out: &mut Outbox) -> Result<Effect, SessionEnd> {
        out.push(replies::reconnect())?;
        Ok(Effect::Close(SessionEnd::Reconnected))
    }

    fn resize(&mut self, now: Instant, out: &mut Outbox) -> Result<Effect, SessionEnd> {
        if !self.is_subscribed() {
            return Ok(Effect::None);
        }
        if !self.extranonce_subscribed {
            return self.on_control_lost(out);
        }
        let (Ok((channel, lease)), Some(sizes)) = (self.hub.join(), self.hub.sizes()) else {
            return self.on_control_lost(out);
        };
        let sizes = MinerSizes {
            prefix_len: lease.prefix().len(),
            extranonce2_size: sizes.extranonce2_size,
        };
        out.push(replies::set_extranonce(
            lease.prefix().as_bytes(),
            sizes.extranonce2_size,
        ))?;
        let current = channel.current_of(self.group);
        match &mut self.phase {
            Phase::Connected => {}
            Phase::Subscribed(sub) | Phase::Authorized(sub) => {
                sub.channel = channel.clone();
                sub.lease = lease;
                sub.sizes = sizes;
            }
        }
        if let Phase::Authorized(sub) = &self.phase {
            self.record_identity(sub);
        }
        // Old jobs were built for the old extranonce: shares for them are void.
        self.jobs.clear();
        if let Some(job) = current
            && self.is_authorized()
        {
            self.push_job(job, now, out)?;
        }
        Ok(Effect::Channel(channel))
    }
}

/// `[[["mining.set_difficulty",sid],["mining.notify",sid]],"<prefix hex>",m]`.
fn subscribe_answer(id: Id, sub: &Subscription) -> Bytes {
    replies::result(
        id,
        ResultValue::Subscribe(SubscribeResult {
            subscriptions: vec![
                ("mining.set_difficulty".into(), sub.id.clone()),
                ("mining.notify".into(), sub.id.clone()),
            ],
            extranonce1: sub.lease.prefix().as_bytes().to_vec(),
            extranonce2_size: sub.sizes.extranonce2_size,
        }),
    )
}

/// The share target of a difficulty the vardiff produced (always finite and positive).
fn target_of(difficulty: f64) -> Target {
    Difficulty::new(difficulty).map_or(Target::DIFF1, Difficulty::to_target)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
