//! One pool-side connection: answers requests, judges submits, relays pushes.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::jobs::PoolJob;
use super::judge::{self, ShareParts};
use super::server::PoolState;
use super::stats::{AcceptedShare, ShareKey};
use super::{PoolFault, Push};
use hashgate_protocol::stratum::{
    Configure, ConfigureResult, Id, Message, Method, Request, Response, ResultValue, RpcError,
    SetExtranonce, StratumCodec, Submit, SubscribeResult,
};

/// ntime may run this far past the job's (exclusive), as ckpool allows.
const NTIME_WINDOW_SECS: u64 = 7200;

/// A peer that does not take our bytes within this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Job sends remembered per connection; beyond the pool's open jobs anyway.
const SENT_JOBS: usize = 64;

/// The terms a job was sent to this connection under.
#[derive(Debug, Clone)]
struct Sent {
    /// The job.
    job_id: String,
    /// Share difficulty in force then.
    difficulty: f64,
    /// Extranonce1 in force then.
    extranonce1: Vec<u8>,
    /// Extranonce2 size in force then.
    extranonce2_size: usize,
}

/// What one connection has negotiated.
struct ClientSession {
    /// Pool state.
    shared: Arc<PoolState>,
    /// Peer address for logs.
    peer: SocketAddr,
    /// Extranonce1 of this connection.
    extranonce1: Vec<u8>,
    /// Extranonce2 size the miner must use.
    extranonce2_size: usize,
    /// Whether `mining.subscribe` was answered.
    subscribed: bool,
    /// Whether the miner accepts `mining.set_extranonce`.
    extranonce_subscribed: bool,
    /// The granted version-rolling mask; 0 when not negotiated.
    version_mask: u32,
    /// Workers authorized on this connection.
    authorized: HashSet<String>,
    /// `mining.authorize` requests answered on this connection, `true` or `false`.
    authorizes_answered: usize,
    /// Current share difficulty.
    difficulty: f64,
    /// How each recent job was sent to this connection, newest last.
    sent: VecDeque<Sent>,
}

/// Serves one connection until it closes, the pool stops or a fault drops it.
pub(crate) async fn run(
    shared: Arc<PoolState>,
    stream: TcpStream,
    peer: SocketAddr,
    cancel: CancellationToken,
) {
    shared.ledger().stats.connections_open += 1;
    let mut session = ClientSession {
        extranonce1: shared.fresh_extranonce1(shared.config.extranonce1_size),
        extranonce2_size: shared.config.extranonce2_size,
        subscribed: false,
        extranonce_subscribed: false,
        version_mask: 0,
        authorized: HashSet::new(),
        authorizes_answered: 0,
        difficulty: shared.default_difficulty(),
        sent: VecDeque::new(),
        peer,
        shared: Arc::clone(&shared),
    };
    if let Err(reason) = session.serve(stream, cancel).await {
        tracing::debug!(pool = %shared.config.name, %peer, reason, "sim pool connection closed");
    }
    shared.ledger().stats.connections_open -= 1;
}

impl ClientSession {
    async fn serve(&mut self, stream: TcpStream, cancel: CancellationToken) -> Result<(), String> {
        let (mut rd, mut wr) = stream.into_split();
        let mut faults = self.shared.fault.subscribe();
        // The fault may have been switched on between accept and here.
        if *faults.borrow_and_update() == PoolFault::Disconnect {
            return Err("disconnect fault".into());
        }
        let mut pushes = self.shared.pushes.subscribe();
        let mut codec = StratumCodec::default();
        let mut inbuf = BytesMut::with_capacity(4096);
        let mut out = BytesMut::new();
        loop {
            while let Some(item) = codec.decode(&mut inbuf).map_err(|e| e.to_string())? {
                let fault = *faults.borrow();
                if fault == PoolFault::Silence {
                    self.shared.ledger().stats.lines_ignored += 1;
                    continue;
                }
                match item {
                    Ok(Message::Request(request)) => self.handle(request, fault, &mut out),
                    Ok(Message::Response(_)) => {}
                    Err(error) => {
                        self.shared.ledger().stats.bad_lines += 1;
                        if let Some(id) = error.id() {
                            respond_error(&mut out, id.clone(), 20, &error.to_string());
                        }
                    }
                }
            }
            if !out.is_empty() {
                tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&out))
                    .await
                    .map_err(|_| "write timed out".to_string())?
                    .map_err(|e| e.to_string())?;
                out.clear();
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                changed = faults.changed() => {
                    if changed.is_err() || *faults.borrow() == PoolFault::Disconnect {
                        return Err("disconnect fault".into());
                    }
                }
                push = pushes.recv() => {
                    let silent = *faults.borrow() == PoolFault::Silence;
                    match push {
                        Ok(push) if !silent => self.relay(push, &mut out),
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => {
                            // Skipped pushes: catch up with the newest job, clean.
                            if let Some(job) = self.shared.latest_job() && !silent {
                                self.send_job(&job, true, &mut out);
                            }
                        }
                        Err(RecvError::Closed) => return Ok(()),
                    }
                }
                read = rd.read_buf(&mut inbuf) => {
                    match read {
                        Ok(0) => return Err("peer closed".into()),
                        Ok(_) => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
        }
    }

    /// Answers one request.
    fn handle(&mut self, request: Request, fault: PoolFault, out: &mut BytesMut) {
        let id = request.id;
        match request.method {
            Method::Configure(configure) => {
                let result = self.configure(&configure);
                respond(out, id, ResultValue::Configure(result));
            }
            Method::Subscribe(_) => {
                self.subscribed = true;
                let sub_id = hex::encode(&self.extranonce1);
                respond(
                    out,
                    id,
                    ResultValue::Subscribe(SubscribeResult {
                        subscriptions: vec![
                            ("mining.set_difficulty".into(), sub_id.clone()),
                            ("mining.notify".into(), sub_id),
                        ],
                        extranonce1: self.extranonce1.clone(),
                        extranonce2_size: self.extranonce2_size,
                    }),
                );
                // As ckpool: difficulty and the first job before authorize is answered.
                notify(out, Method::SetDifficulty(self.difficulty));
                if let Some(job) = self.shared.latest_job() {
                    self.send_job(&job, true, out);
                }
            }
            Method::Authorize(authorize) => {
                if self.authorizes_answered >= self.shared.config.authorizes_per_connection {
                    // ckpool logs "trying to authorise twice" and sends nothing back.
                    self.shared.ledger().stats.authorizes_ignored += 1;
                    return;
                }
                self.authorizes_answered += 1;
                let ok = !authorize.user.trim().is_empty();
                if ok {
                    self.authorized.insert(authorize.user);
                }
                respond(out, id, ResultValue::Bool(ok));
            }
            Method::ExtranonceSubscribe => {
                self.extranonce_subscribed = true;
                respond(out, id, ResultValue::Bool(true));
            }
            Method::SuggestDifficulty(d) => {
                // As ckpool: never answered (a proxy that waits for an answer, or times
                // one, fails here as it would there); a new value is applied and sent as
                // `set_difficulty`, the same one again changes nothing.
                self.shared.ledger().stats.suggestions += 1;
                let changed = (d - self.difficulty).abs() > f64::EPSILON * d.abs();
                if self.shared.config.honor_suggest_difficulty
                    && d.is_finite()
                    && d > 0.0
                    && changed
                {
                    self.difficulty = d;
                    if self.subscribed {
                        notify(out, Method::SetDifficulty(d));
                    }
                }
            }
            Method::Submit(submit) => {
                let worker = submit.worker.clone();
                match self.judge(&submit, fault) {
                    Ok(()) => respond(out, id, ResultValue::Bool(true)),
                    Err((code, message)) => {
                        self.shared.ledger().reject(&worker, code);
                        respond_error(out, id, code, message);
                    }
                }
            }
            other => {
                // Pool-to-miner methods or unknown ones: refuse, never hang up.
                let message = format!("Method '{}' not supported", other.name());
                if id != Id::Null {
                    respond_error(out, id, 20, &message);
                }
            }
        }
    }

    /// BIP310: grant the pool's mask intersected with the miner's.
    fn configure(&mut self, configure: &Configure) -> ConfigureResult {
        let mut result = ConfigureResult::default();
        if let Some(vr) = configure.version_rolling {
            let mask = self.shared.config.version_mask & vr.mask.unwrap_or(u32::MAX);
            let enough = vr.min_bit_count.is_none_or(|min| mask.count_ones() >= min);
            if mask != 0 && enough {
                self.version_mask = mask;
                result.version_rolling = Some(true);
                result.version_rolling_mask = Some(mask);
            } else {
                result.version_rolling = Some(false);
            }
        }
        if configure.minimum_difficulty.is_some() {
            result.minimum_difficulty = Some(false);
        }
        if configure.subscribe_extranonce {
            self.extranonce_subscribed = true;
            result.subscribe_extranonce = Some(true);
        }
        result
    }

    /// Judges a submit; `Err((code, message))` for a reject.
    fn judge(&mut self, submit: &Submit, fault: PoolFault) -> Result<(), (i64, &'static str)> {
        if !self.subscribed {
            return Err((25, "Not subscribed"));
        }
        if self.authorized.is_empty() {
            return Err((24, "Unauthorized worker"));
        }
        if !self.authorized.contains(&submit.worker) {
            return Err((20, "Worker mismatch"));
        }
        if fault == PoolFault::RejectAll {
            return Err((23, "Above target"));
        }
        let job = self
            .shared
            .job(&submit.job_id)
            .ok_or((21, "Job not found"))?;
        let n = &job.notify;
        // The extranonces this job went out with on this connection: after a
        // `set_extranonce` a share already in flight on the old one is still honest work.
        let candidates = self.sent_with(&submit.job_id);
        let sized: Vec<&Sent> = candidates
            .iter()
            .filter(|c| c.extranonce2_size == submit.extranonce2.len())
            .collect();
        if sized.is_empty() {
            return Err((20, "Invalid extranonce2 size"));
        }
        if let Some(bits) = submit.version_bits
            && bits & !self.version_mask != 0
        {
            return Err((20, "Invalid version bits"));
        }
        let earliest = u64::from(n.ntime);
        let ntime = u64::from(submit.ntime);
        if ntime < earliest || ntime >= earliest + NTIME_WINDOW_SECS {
            return Err((20, "Ntime out of range"));
        }
        let judged = sized.iter().find_map(|sent| {
            let input = ShareParts {
                prevhash: &n.prevhash,
                coinb1: &n.coinb1,
                coinb2: &n.coinb2,
                branch: &n.merkle_branch,
                job_version: n.version,
                nbits: n.nbits,
                extranonce1: &sent.extranonce1,
                extranonce2: submit.extranonce2.as_bytes(),
                ntime: submit.ntime,
                nonce: submit.nonce,
                version_bits: submit.version_bits,
                version_mask: self.version_mask,
            };
            let header = judge::header(&input);
            let hash = judge::sha256d(&header);
            let number = judge::hash_as_number(&hash);
            let difficulty = sent.difficulty.min(self.difficulty);
            (number <= judge::target_for_difficulty(difficulty))
                .then(|| (header, hash, number, difficulty, sent.extranonce1.clone()))
        });
        let Some((header, hash, number, difficulty, extranonce1)) = judged else {
            return Err((23, "Above target"));
        };
        let block = judge::target_for_nbits(n.nbits).is_some_and(|t| number <= t);
        let version = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let share = AcceptedShare {
            key: ShareKey {
                job_id: submit.job_id.clone(),
                extranonce1,
                extranonce2: submit.extranonce2.as_bytes().to_vec(),
                ntime: submit.ntime,
                nonce: submit.nonce,
                version,
            },
            worker: submit.worker.clone(),
            difficulty,
            hash_difficulty: judge::difficulty_of(&hash),
            header,
            block,
        };
        let mut ledger = self.shared.ledger();
        if !ledger.accept(share) {
            return Err((22, "Duplicate"));
        }
        drop(ledger);
        if block {
            tracing::info!(pool = %self.shared.config.name, peer = %self.peer, worker = %submit.worker, job = %submit.job_id, "sim pool: block found");
        }
        Ok(())
    }

    /// How this job was sent to this connection, newest first; the current values when
    /// it never was (or its record aged out).
    fn sent_with(&self, job_id: &str) -> Vec<Sent> {
        let sent: Vec<Sent> = self
            .sent
            .iter()
            .rev()
            .filter(|s| s.job_id == job_id)
            .cloned()
            .collect();
        if sent.is_empty() {
            return vec![Sent {
                job_id: job_id.to_owned(),
                difficulty: self.difficulty,
                extranonce1: self.extranonce1.clone(),
                extranonce2_size: self.extranonce2_size,
            }];
        }
        sent
    }

    /// Sends a pushed item to this connection.
    fn relay(&mut self, push: Push, out: &mut BytesMut) {
        if !self.subscribed {
            return;
        }
        match push {
            Push::Job(job) => {
                let clean = job.notify.clean_jobs;
                self.send_job(&job, clean, out);
            }
            Push::Difficulty(d) => {
                self.difficulty = d;
                notify(out, Method::SetDifficulty(d));
            }
            Push::Extranonce { extranonce2_size } => {
                if !self.extranonce_subscribed {
                    return;
                }
                self.extranonce1 = self
                    .shared
                    .fresh_extranonce1(self.shared.config.extranonce1_size);
                if let Some(size) = extranonce2_size {
                    self.extranonce2_size = size;
                }
                notify(
                    out,
                    Method::SetExtranonce(SetExtranonce {
                        extranonce1: self.extranonce1.clone(),
                        extranonce2_size: self.extranonce2_size,
                    }),
                );
                if let Some(job) = self.shared.latest_job() {
                    self.send_job(&job, true, out);
                }
            }
            Push::Reconnect(reconnect) => notify(out, Method::Reconnect(reconnect)),
        }
    }

    /// Sends a job, remembering the difficulty it went out under.
    fn send_job(&mut self, job: &PoolJob, clean: bool, out: &mut BytesMut) {
        self.sent.push_back(Sent {
            job_id: job.notify.job_id.clone(),
            difficulty: self.difficulty,
            extranonce1: self.extranonce1.clone(),
            extranonce2_size: self.extranonce2_size,
        });
        while self.sent.len() > SENT_JOBS {
            self.sent.pop_front();
        }
        out.extend_from_slice(job.notify_line(clean));
    }
}

fn notify(out: &mut BytesMut, method: Method) {
    Message::Request(Request {
        id: Id::Null,
        method,
    })
    .encode_into(out);
}

fn respond(out: &mut BytesMut, id: Id, result: ResultValue) {
    Message::Response(Response {
        id,
        result,
        error: None,
        reject_reason: None,
    })
    .encode_into(out);
}

fn respond_error(out: &mut BytesMut, id: Id, code: i64, message: &str) {
    Message::Response(Response {
        id,
        result: ResultValue::Bool(false),
        error: Some(RpcError::Array {
            code,
            message: message.to_owned(),
            data: None,
        }),
        reject_reason: None,
    })
    .encode_into(out);
}
