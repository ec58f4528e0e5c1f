//! The pool side of one Stratum V2 connection, without I/O: the counterpart of the SV1
//! [`PoolSession`](super::super::session::PoolSession), fed the pool's decoded messages,
//! the miners' shares and clock ticks, and leaving behind messages to send and the same
//! [`SessionEvent`]s, so the channel server cannot tell the two apart.
//!
//! One extended channel per connection (a connection serves one hashgate channel). Its
//! jobs become SV1 miner jobs: the coinbase prefix and suffix are `coinb1`/`coinb2`, the
//! channel's extranonce prefix is the pool's `extranonce1` and its extranonce size the
//! `extranonce2` size that the usual plan splits between miners; `SetNewPrevHash` gives
//! the previous hash, `nbits` and the time, and makes the job it names the new
//! `clean_jobs` work. Shares go up as `SubmitSharesExtended` under a running sequence
//! number; the pool acknowledges them in batches (`SubmitShares.Success` covers every
//! share up to its `last_sequence_number` not refused on its own by `SubmitShares.Error`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hub::{UpstreamLink, UpstreamSubmit};
use crate::ratelog::{self, RateLimitedLog, Verdict};
use crate::stats::{PoolReject, Undelivered};
use hashgate_protocol::stratum::Notify;
use hashgate_protocol::work::Target;

use super::super::UpstreamContext;
use super::super::error::UpstreamError;
use super::super::event::{ConnSpec, Ended, PoolWork};
use super::super::health::{Health, HealthCheck, HealthRules};
use super::super::pending::{InFlight, Pending};
use super::super::session::{SessionEvent, TICK};
use super::super::sizing::{PlanChoice, plan_for};
use super::wire::{FromPool, Job, Share, ToPool};

/// The BIP320 general-purpose version bits, which an SV2 job either lets miners roll
/// (`version_rolling_allowed`) or not.
pub(super) const BIP320_MASK: u32 = 0x1fff_e000;

/// Jobs kept for shares that refer to them: the current block's and a few future ones.
/// A pool sends a few per block; shares for a job dropped here are stale at the pool too.
const MAX_JOBS: usize = 64;

/// Shares awaiting an acknowledgement; past it the oldest count as `no_answer` (as SV1).
const MAX_PENDING: usize = 16_384;

/// Least time a share waits for its acknowledgement. SV2 pools acknowledge in batches
/// (`pool_sv2` every `share_batch_size` shares, 10 in its examples), so at a few shares a
/// minute the first share of a batch waits minutes; SV1's per-share `submit_timeout`
/// would count it lost.
const BATCH_ACK_WAIT: Duration = Duration::from_secs(300);

/// The hashrate announced for a channel whose miners have not yet proven one: one miner
/// at the proxy's starting difficulty sending a share every vardiff interval. The pool
/// sets its first target from it (so every share of such a miner is forwarded) and its
/// own vardiff follows the channel from there.
pub(super) fn first_nominal_hashrate(initial_difficulty: f64, target_interval: Duration) -> f32 {
    let interval = target_interval.as_secs_f64().max(0.001);
    (initial_difficulty * crate::stats::hashrate::HASHES_PER_DIFFICULTY / interval) as f32
}

/// The channel's hashrate is announced again (`UpdateChannel`) when the share-proven rate
/// has moved this many times from the last announcement, either way: the pool sets the
/// target from it, and small moves are noise of the meter.
const ANNOUNCE_FACTOR: f64 = 2.0;

/// Request id of the one channel a connection opens.
const OPEN_REQUEST_ID: u32 = 1;

/// The open channel.
#[derive(Debug, Clone)]
struct Channel {
    id: u32,
    group_id: u32,
    extranonce_prefix: Vec<u8>,
    extranonce_size: usize,
}

/// The latest `SetNewPrevHash`.
#[derive(Debug, Clone, Copy)]
struct PrevHash {
    prev_hash: [u8; 32],
    min_ntime: u32,
    nbits: u32,
}

/// The SV1 form of a job under `prev`: what the channel server builds miner jobs from.
pub(super) fn notify_for(
    job: &Job,
    prev_hash: [u8; 32],
    min_ntime: u32,
    nbits: u32,
    clean: bool,
) -> Notify {
    Notify {
        job_id: job.job_id.to_string(),
        prevhash: stratum_prevhash(prev_hash),
        coinb1: job.coinbase_prefix.clone(),
        coinb2: job.coinbase_suffix.clone(),
        merkle_branch: job.merkle_path.clone(),
        version: job.version,
        nbits,
        // A future job starts at the block's earliest time; a job for the current block
        // carries its own, never earlier.
        ntime: job.min_ntime.unwrap_or(min_ntime).max(min_ntime),
        clean_jobs: clean,
    }
}

/// SV2 sends the previous hash in header byte order; Stratum V1 reverses each 4-byte
/// word of it, and the channel server takes the V1 form.
pub(super) fn stratum_prevhash(header_order: [u8; 32]) -> [u8; 32] {
    let mut out = header_order;
    for word in out.chunks_exact_mut(4) {
        word.reverse();
    }
    out
}

/// The header version a share was mined with: the job's version with the miner's rolled
/// bits in place of the mask's (as the local validation computed it).
pub(super) fn share_version(job_version: u32, mask: u32, rolled: Option<u32>) -> u32 {
    match rolled {
        Some(bits) => (job_version & !mask) | (bits & mask),
        None => job_version,
    }
}

/// The pool side of one live SV2 connection.
pub(in super::super) struct Sv2Session {
    shared: Arc<UpstreamContext>,
    spec: ConnSpec,
    out: Vec<ToPool>,
    events: Vec<SessionEvent>,
    health: Health,
    link: UpstreamLink,
    /// Set up: `SetupConnection.Success` came.
    set_up: bool,
    channel: Option<Channel>,
    target: Target,
    /// Jobs by id, with the order they came in for eviction.
    jobs: HashMap<u32, Job>,
    job_order: VecDeque<u32>,
    prev: Option<PrevHash>,
    /// The job handed over last, re-sent when the target or extranonce changes.
    current: Option<u32>,
    ready: bool,
    /// The hashrate last announced to the pool (opening the channel, `UpdateChannel`).
    announced: f64,
    next_sequence: u32,
    pending: Pending,
    latency: metrics::Histogram,
    no_answer_log: RateLimitedLog,
    reject_log: RateLimitedLog,
}

impl Sv2Session {
    /// A session for a connection whose Noise handshake just completed at `now`.
    pub(in super::super) fn new(
        shared: Arc<UpstreamContext>,
        spec: ConnSpec,
        link: UpstreamLink,
        now: Instant,
    ) -> Sv2Session {
        let latency = metrics::histogram!(
            "hashgate_upstream_submit_latency_seconds",
            "pool" => spec.name.to_string()
        );
        Sv2Session {
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
            out: Vec::new(),
            events: Vec::new(),
            link,
            set_up: false,
            channel: None,
            target: Target::DIFF1,
            jobs: HashMap::new(),
            job_order: VecDeque::new(),
            prev: None,
            current: None,
            ready: false,
            announced: 0.0,
            next_sequence: 0,
            pending: Pending::default(),
            latency,
            no_answer_log: RateLimitedLog::starting_at(ratelog::DEFAULT_WINDOW, now),
            reject_log: RateLimitedLog::starting_at(ratelog::DEFAULT_WINDOW, now),
        }
    }

    /// Messages to send, in order.
    pub(in super::super) fn take_output(&mut self) -> Vec<ToPool> {
        std::mem::take(&mut self.out)
    }

    /// What happened since the last call.
    pub(in super::super) fn take_events(&mut self) -> Vec<SessionEvent> {
        std::mem::take(&mut self.events)
    }

    /// Whether shares sent still wait for the pool's verdict.
    pub(in super::super) fn awaiting_verdicts(&self) -> bool {
        !self.pending.is_empty()
    }

    /// `SetupConnection`, and (pipelined, as the pool reads in order) the channel.
    pub(in super::super) fn start(&mut self, now: Instant) {
        self.out.push(ToPool::Setup {
            host: self.spec.address.host.clone(),
            port: self.spec.address.port,
        });
        self.health.sent_request(now);
        let nominal = self.spec.hashrate.rate(now).map_or_else(
            || {
                first_nominal_hashrate(
                    self.shared.config.proxy.initial_difficulty,
                    self.shared.config.vardiff.target_interval,
                )
            },
            |h| h as f32,
        );
        self.announced = f64::from(nominal);
        self.out.push(ToPool::OpenChannel {
            request_id: OPEN_REQUEST_ID,
            user: self.spec.config.user.clone(),
            nominal_hash_rate: nominal,
            min_extranonce_size: self.min_extranonce_size(),
        });
    }

    /// The fewest extranonce bytes that give every miner of the channel its own space.
    fn min_extranonce_size(&self) -> u16 {
        let hub = &self.shared.hub;
        let sizes = hub.sizes();
        let from_sizes = sizes.map(|s| s.prefix_len + s.extranonce2_size);
        // Eight bytes is what SV1 pools commonly give and fits any split the proxy makes.
        u16::try_from(from_sizes.unwrap_or(8).max(8)).unwrap_or(u16::MAX)
    }

    /// Takes one message from the pool.
    pub(in super::super) fn on_message(
        &mut self,
        msg: FromPool,
        now: Instant,
    ) -> Result<(), Ended> {
        match msg {
            FromPool::SetupSuccess { flags } => {
                self.health.answered();
                self.set_up = true;
                tracing::debug!(pool = %self.spec.name, flags, "SV2 connection set up");
                // The channel request went out with the setup: its answer is due next.
                self.health.sent_request(now);
                Ok(())
            }
            FromPool::SetupError { code } => Err(UpstreamError::Sv2Refused {
                what: "SetupConnection",
                code,
            }
            .into()),
            FromPool::ChannelOpened {
                request_id,
                channel_id,
                group_channel_id,
                target,
                extranonce_size,
                extranonce_prefix,
            } => {
                self.health.answered();
                if request_id != OPEN_REQUEST_ID {
                    tracing::debug!(pool = %self.spec.name, request_id, "answer to no channel request of ours");
                    return Ok(());
                }
                let extranonce_size = usize::from(extranonce_size);
                self.check_extranonce(extranonce_size)?;
                tracing::info!(
                    pool = %self.spec.name,
                    channel_id,
                    extranonce_prefix = %hex::encode(&extranonce_prefix),
                    extranonce_size,
                    "SV2 extended channel open"
                );
                self.channel = Some(Channel {
                    id: channel_id,
                    group_id: group_channel_id,
                    extranonce_prefix,
                    extranonce_size,
                });
                self.set_target(target);
                self.hand_over(true);
                Ok(())
            }
            FromPool::ChannelRefused { code } => Err(UpstreamError::Sv2Refused {
                what: "OpenExtendedMiningChannel",
                code,
            }
            .into()),
            FromPool::Job(job) => {
                if !self.is_ours(job.channel_id) {
                    return Ok(());
                }
                self.health.new_job(now);
                let id = job.job_id;
                let active_now = job.min_ntime.is_some();
                self.remember(job);
                if active_now {
                    self.current = Some(id);
                    self.hand_over(false);
                }
                Ok(())
            }
            FromPool::PrevHash {
                channel_id,
                job_id,
                prev_hash,
                min_ntime,
                nbits,
            } => {
                if !self.is_ours(channel_id) {
                    return Ok(());
                }
                self.health.new_job(now);
                self.prev = Some(PrevHash {
                    prev_hash,
                    min_ntime,
                    nbits,
                });
                // Jobs for the old block are void; the future job named here is kept,
                // as are any other future jobs (the pool may name them later).
                self.jobs
                    .retain(|&id, job| id == job_id || job.min_ntime.is_none());
                self.job_order.retain(|id| self.jobs.contains_key(id));
                if let Some(job) = self.jobs.get_mut(&job_id) {
                    // Now a job of this block: the next block's prevhash drops it.
                    job.min_ntime = Some(min_ntime);
                    self.current = Some(job_id);
                    self.hand_over(true);
                } else {
                    tracing::warn!(pool = %self.spec.name, job_id, "SetNewPrevHash names a job the pool never sent");
                }
                Ok(())
            }
            FromPool::Target { channel_id, target } => {
                if self.channel.as_ref().is_some_and(|c| c.id == channel_id) {
                    self.set_target(target);
                    // Shares against the new target from the next job on; re-send the
                    // current one so the channel forwards at it right away.
                    self.hand_over(false);
                }
                Ok(())
            }
            FromPool::ExtranoncePrefix { channel_id, prefix } => {
                if let Some(channel) = self.channel.as_mut().filter(|c| c.id == channel_id) {
                    tracing::info!(pool = %self.spec.name, prefix = %hex::encode(&prefix), "pool changed the extranonce prefix");
                    channel.extranonce_prefix = prefix;
                    // Work under the old prefix is void at the pool.
                    self.hand_over(true);
                }
                Ok(())
            }
            FromPool::SharesAccepted {
                channel_id,
                last_sequence_number,
                accepted,
            } => {
                self.health.answered();
                if self.channel.as_ref().is_some_and(|c| c.id == channel_id) {
                    let covered = self.pending.take_through(u64::from(last_sequence_number));
                    if covered.len() != accepted as usize {
                        tracing::debug!(pool = %self.spec.name, covered = covered.len(), accepted, "acknowledgement count differs from the shares it covers");
                    }
                    for sent in covered {
                        self.verdict(sent, Ok(()), now)?;
                    }
                }
                Ok(())
            }
            FromPool::ShareRefused {
                channel_id,
                sequence_number,
                code,
            } => {
                self.health.answered();
                if self.channel.as_ref().is_some_and(|c| c.id == channel_id)
                    && let Some(sent) = self.pending.take(u64::from(sequence_number))
                {
                    self.verdict(sent, Err(code), now)?;
                }
                Ok(())
            }
            FromPool::ChannelClosed { channel_id, reason } => {
                if self.channel.as_ref().is_some_and(|c| c.id == channel_id) {
                    return Err(UpstreamError::Sv2Refused {
                        what: "the channel (CloseChannel)",
                        code: reason,
                    }
                    .into());
                }
                Ok(())
            }
            FromPool::Reconnect { host, port } => {
                // Followed only to the pool's own host or a listed one, as with SV1; the
                // authority key stays the configured one.
                let host = if host.is_empty() {
                    self.spec.address.host.clone()
                } else {
                    host
                };
                if !self.spec.config.may_redirect_to(&host) {
                    metrics::counter!(
                        "hashgate_upstream_redirects_refused_total",
                        "pool" => self.spec.name.to_string()
                    )
                    .increment(1);
                    tracing::warn!(pool = %self.spec.name, to = %host, "pool asked to reconnect to another host; refused");
                    return Ok(());
                }
                let mut address = self.spec.address.clone();
                address.host = host;
                if port != 0 {
                    address.port = port;
                }
                Err(Ended::Reconnect {
                    address,
                    wait: Duration::ZERO,
                })
            }
            FromPool::Other(msg_type) => {
                tracing::debug!(pool = %self.spec.name, msg_type, "ignoring SV2 message");
                Ok(())
            }
        }
    }

    fn is_ours(&self, channel_id: u32) -> bool {
        self.channel
            .as_ref()
            .is_some_and(|c| c.id == channel_id || c.group_id == channel_id)
    }

    fn remember(&mut self, job: Job) {
        let id = job.job_id;
        if self.jobs.insert(id, job).is_none() {
            self.job_order.push_back(id);
        }
        while self.job_order.len() > MAX_JOBS {
            if let Some(old) = self.job_order.pop_front() {
                self.jobs.remove(&old);
            }
        }
    }

    fn set_target(&mut self, target: [u8; 32]) {
        self.target = Target::from_le_bytes(target);
        let difficulty = self.target.difficulty();
        self.spec.stats.set_difficulty(difficulty);
        self.spec
            .stats
            .set_channel_difficulty(self.spec.channel, difficulty);
        self.events.push(SessionEvent::Difficulty(difficulty));
        tracing::debug!(pool = %self.spec.name, difficulty, "pool target");
    }

    /// As SV1: an extranonce that cannot be split is refused; the first usable one fixes
    /// the miners' sizes.
    fn check_extranonce(&self, size: usize) -> Result<(), Ended> {
        let proxy = &self.shared.config.proxy;
        let _sizing = self.shared.sizing_lock();
        let current = self.shared.hub.sizes();
        let choice = plan_for(
            current,
            size,
            proxy.miners_per_upstream.get(),
            self.shared.split_limits(),
        )
        .map_err(UpstreamError::from)?;
        if current.is_none()
            && let PlanChoice::Resize(plan) = choice
        {
            self.shared.hub.set_sizes(&plan);
        }
        Ok(())
    }

    /// Hands the current job to the channel server once the channel is open and a
    /// previous hash is known.
    fn hand_over(&mut self, clean: bool) {
        let (Some(channel), Some(prev), Some(job)) = (
            &self.channel,
            &self.prev,
            self.current.and_then(|id| self.jobs.get(&id)),
        ) else {
            return;
        };
        let work = PoolWork {
            notify: notify_for(job, prev.prev_hash, prev.min_ntime, prev.nbits, clean),
            extranonce1: channel.extranonce_prefix.clone(),
            extranonce2_size: channel.extranonce_size,
            target: self.target,
            version_mask: if job.version_rolling_allowed {
                BIP320_MASK
            } else {
                0
            },
            link: self.link.clone(),
            clean,
        };
        self.ready = true;
        self.events.push(SessionEvent::Work(Arc::new(work)));
    }

    /// Encodes a batch of shares, blocks first.
    pub(in super::super) fn on_submits(&mut self, batch: &mut Vec<UpstreamSubmit>, now: Instant) {
        batch.sort_by_key(|share| !share.is_block);
        for share in batch.drain(..) {
            self.submit(share, now);
        }
    }

    fn submit(&mut self, share: UpstreamSubmit, now: Instant) {
        let Some(channel) = &self.channel else {
            // Work is only handed out once the channel is open.
            self.undelivered(&share, Undelivered::UpstreamGone);
            return;
        };
        let job = share
            .pool_job_id
            .parse::<u32>()
            .ok()
            .and_then(|id| self.jobs.get(&id).map(|job| (id, job)));
        let Some((job_id, job)) = job else {
            // The job left the book with its block: the pool would call it stale.
            share.miner.record_pool_rejected(PoolReject::Stale);
            self.spec.stats.record_rejected(PoolReject::Stale);
            return;
        };
        let mask = if job.version_rolling_allowed {
            BIP320_MASK
        } else {
            0
        };
        let sequence_number = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.out.push(ToPool::Submit(Share {
            channel_id: channel.id,
            sequence_number,
            job_id,
            nonce: share.nonce,
            ntime: share.ntime,
            version: share_version(job.version, mask, share.version_bits),
            extranonce: share.extranonce2.as_bytes().to_vec(),
        }));
        self.spec.stats.record_submitted(share.is_block);
        if share.is_block {
            tracing::error!(
                pool = %self.spec.name,
                worker = %share.worker,
                job_id,
                nonce = format_args!("{:08x}", share.nonce),
                "BLOCK FOUND: submitting to the SV2 pool ahead of every other share"
            );
        }
        for lost in self.pending.evict_over(MAX_PENDING) {
            self.undelivered(&lost.share, Undelivered::NoAnswer);
        }
        self.pending.insert(u64::from(sequence_number), share, now);
    }

    fn verdict(
        &mut self,
        sent: InFlight,
        result: Result<(), String>,
        now: Instant,
    ) -> Result<(), Ended> {
        let rtt = now.saturating_duration_since(sent.sent_at);
        self.latency.record(rtt.as_secs_f64());
        self.spec.stats.record_submit_latency(rtt);
        let accepted = result.is_ok();
        self.events.push(SessionEvent::Verdict(accepted));
        let share = &sent.share;
        match &result {
            Ok(()) => {
                share.miner.record_pool_accepted();
                self.spec.stats.record_accepted();
            }
            Err(code) => {
                let reason = PoolReject::classify(None, Some(code));
                share.miner.record_pool_rejected(reason);
                self.spec.stats.record_rejected(reason);
                if let Verdict::Log { suppressed } = self.reject_log.check(now) {
                    tracing::warn!(
                        pool = %self.spec.name,
                        worker = %share.worker,
                        reason = reason.label(),
                        code = %code,
                        rejected_since_last_line = suppressed,
                        "SV2 pool rejected a share the proxy had accepted"
                    );
                }
            }
        }
        if share.is_block {
            tracing::error!(pool = %self.spec.name, accepted, "BLOCK FOUND: SV2 pool answered the block submit");
        }
        match self.health.verdict(accepted) {
            Some(run) => Err(UpstreamError::RejectingAll(run).into()),
            None => Ok(()),
        }
    }

    /// The clock: setup deadline, shares left unacknowledged, the health rules.
    pub(in super::super) fn on_tick(&mut self, now: Instant) -> Result<(), Ended> {
        let verdict = self.health.check(now);
        let stall = self.health.take_stall();
        if !stall.is_zero() {
            self.pending.excuse(stall, now);
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
        self.announce_hashrate(now);
        let wait = self
            .shared
            .config
            .failover
            .submit_timeout
            .max(BATCH_ACK_WAIT);
        for expired in self.pending.expire(now, wait) {
            if let Verdict::Log { suppressed } = self.no_answer_log.check(now) {
                tracing::warn!(pool = %self.spec.name, worker = %expired.share.worker, suppressed, "SV2 pool did not acknowledge a share in time");
            }
            self.undelivered(&expired.share, Undelivered::NoAnswer);
        }
        match verdict {
            HealthCheck::Fine => Ok(()),
            HealthCheck::Unanswered(after) => Err(UpstreamError::Unanswered(after).into()),
            HealthCheck::NoNewJob(after) => Err(UpstreamError::NoNewJob(after).into()),
        }
    }

    /// `UpdateChannel` once the channel's share-proven hashrate has moved
    /// [`ANNOUNCE_FACTOR`] from what the pool was told (SV2's counterpart of the SV1
    /// difficulty suggestion: the pool's target follows it).
    fn announce_hashrate(&mut self, now: Instant) {
        let (Some(channel), Some(rate)) = (&self.channel, self.spec.hashrate.rate(now)) else {
            return;
        };
        if rate <= 0.0 {
            return;
        }
        let ratio = rate / self.announced.max(f64::MIN_POSITIVE);
        if (1.0 / ANNOUNCE_FACTOR..=ANNOUNCE_FACTOR).contains(&ratio) {
            return;
        }
        tracing::info!(pool = %self.spec.name, hashrate = rate, announced = self.announced, "announcing the channel's hashrate to the SV2 pool");
        self.out.push(ToPool::Update {
            channel_id: channel.id,
            nominal_hash_rate: rate as f32,
        });
        self.announced = rate;
    }

    pub(in super::super) fn undelivered(&self, share: &UpstreamSubmit, reason: Undelivered) {
        share.miner.record_undelivered(reason);
        self.spec.stats.record_undelivered(reason);
    }

    /// Accounts for every share still unacknowledged when the connection is over.
    pub(in super::super) fn finish(&mut self, shutdown: bool) {
        self.spec.stats.clear_channel(self.spec.channel);
        let reason = if shutdown {
            Undelivered::Shutdown
        } else {
            Undelivered::NoAnswer
        };
        let left = self.pending.drain();
        if !left.is_empty() {
            tracing::warn!(pool = %self.spec.name, shares = left.len(), reason = reason.label(), "shares left without an SV2 pool acknowledgement");
        }
        for sent in left {
            self.undelivered(&sent.share, reason);
        }
    }
}
