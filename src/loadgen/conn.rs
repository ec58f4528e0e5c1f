//! One simulated miner connection: handshake, keep the newest job, send paced
//! precomputed shares, time each answer.
//!
//! No per-connection read buffer is held while idle: reads go through a stack buffer and
//! only a partial line is kept. Submits leave as slices of a pre-encoded batch, so a
//! submit costs no allocation at all once its batch exists.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::config::LoadConfig;
use super::errors::ErrorLog;
use super::fanout::FanoutTracker;
use super::jobcache::{CachedJob, JobCache};
use super::latency::LatencyRecorder;
use super::pacing::Schedule;
use super::shares::{Batch, ShareMaker, WorkContext, json_string};
use crate::stratum::{
    DEFAULT_MAX_LINE, Id, Message, Method, Notify, Request, Response, ResultValue,
};
use crate::work::{Difficulty, Job, JobTemplate};

/// Request ids of the handshake; submits start above them.
const CONFIGURE_ID: u64 = 1;
const SUGGEST_ID: u64 = 2;
const SUBSCRIBE_ID: u64 = 3;
const AUTHORIZE_ID: u64 = 4;
const FIRST_SUBMIT_ID: u64 = 100;

/// Most submits written in one wake; a connection owing more (after a stall) wakes again
/// at once, so other connections get their turn in between.
const MAX_BURST: u64 = 256;

/// A send this much after its due time counts as late. Tokio's timer wheel has 1 ms
/// slots, so up to ~1 ms behind is the timer, not the generator falling behind.
const LATE: Duration = Duration::from_millis(2);

/// Stack read buffer: several notifies' worth, so one read usually drains the socket.
const READ_CHUNK: usize = 16 * 1024;

/// The user agent sent with subscribe.
const USER_AGENT: &str = concat!("hashgate-loadgen/", env!("CARGO_PKG_VERSION"));

/// Where the run is, as the coordinator announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connections are being opened; nobody submits yet.
    Setup,
    /// Submit from `t0` until `end`.
    Submit {
        /// Start of the window.
        t0: Instant,
        /// End of the window (exclusive).
        end: Instant,
    },
    /// Every held connection closes and connects again at once (a reconnect storm).
    Reconnect,
}

/// What a connection tells the coordinator: one of `Ready` / `SetupFailed`; a ready one
/// later one `Finished`; one of `Rejoined` / `RejoinFailed` in a reconnect storm; and
/// `Lost` whenever a ready connection breaks. At most five per connection.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// Subscribed, authorized and holding a job.
    Ready {
        /// Connect attempt to ready.
        setup: Duration,
        /// When it became ready.
        at: Instant,
    },
    /// Did not get that far.
    SetupFailed,
    /// Done with the submit window (every answer in or timed out) or lost.
    Finished,
    /// A ready connection broke or was closed by the target.
    Lost,
    /// Set up again after the reconnect storm.
    Rejoined {
        /// Reconnect attempt to ready.
        setup: Duration,
        /// When it became ready again.
        at: Instant,
    },
    /// Not set up again after the reconnect storm.
    RejoinFailed,
}

/// How a connection's service ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    /// The run is over.
    Cancelled,
    /// The reconnect storm began: connect again.
    Rejoin,
}

/// State shared by every connection task of a run.
#[derive(Debug)]
pub struct Shared {
    /// The run's settings.
    pub config: LoadConfig,
    /// Answer latencies.
    pub latency: LatencyRecorder,
    /// How far behind its due time each send went (the generator's own pacing error).
    pub send_lag: LatencyRecorder,
    /// Notify arrivals during the window.
    pub fanout: FanoutTracker,
    /// Jobs parsed once per distinct notify line.
    pub jobs: JobCache,
    /// Distinct errors with counts.
    pub errors: ErrorLog,
    /// Events to the coordinator (bounded: see `run`).
    pub events: mpsc::Sender<Event>,
}

/// What one connection counted; the coordinator adds them up.
#[derive(Debug, Clone, Default)]
pub struct ConnOutcome {
    /// The TCP connect succeeded.
    pub connected: bool,
    /// The local address the connection used (shows source spreading at work).
    pub local_ip: Option<std::net::IpAddr>,
    /// It became ready.
    pub ready: bool,
    /// It became ready again after the reconnect storm.
    pub rejoined: bool,
    /// The connection closed or broke after becoming ready.
    pub lost: bool,
    /// Submits written.
    pub sent: u64,
    /// Submits answered `result:true`.
    pub accepted: u64,
    /// Submits rejected, by error code (0 when the answer had none).
    pub rejected: BTreeMap<i64, u64>,
    /// Submits with no answer within the answer timeout.
    pub timeouts: u64,
    /// Submits in flight when the connection was lost.
    pub lost_in_flight: u64,
    /// Answers whose id matched nothing pending (late after a timeout, or bogus).
    pub unmatched: u64,
    /// Shares owed by the schedule but not sent because no valid share could be made.
    pub not_sent: u64,
    /// Sends more than 1 ms behind schedule.
    pub late_sends: u64,
    /// Notifies received (whole connection life).
    pub notifies: u64,
    /// Lines that did not parse.
    pub bad_lines: u64,
    /// `client.reconnect` requests received (counted, not followed).
    pub reconnect_requests: u64,
    /// Lowest and highest difficulty the target set.
    pub difficulty_range: Option<(f64, f64)>,
    /// Hashes computed searching for shares.
    pub hashes: u64,
    /// Shares that needed a nonce search.
    pub searched: u64,
    /// When the last submit answer arrived.
    pub last_answer: Option<Instant>,
}

/// Opens connection `index` at `start_at` and serves it until cancelled.
pub async fn run(
    index: usize,
    start_at: Instant,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    cancel: CancellationToken,
) -> ConnOutcome {
    let mut outcome = ConnOutcome::default();
    tokio::select! {
        biased;
        () = cancel.cancelled() => return outcome,
        () = tokio::time::sleep_until(start_at.into()) => {}
    }
    // Kept across a reconnect so that no share number is ever reused.
    let mut maker = ShareMaker::new();
    let mut rejoin = false;
    loop {
        let failed = if rejoin {
            Event::RejoinFailed
        } else {
            Event::SetupFailed
        };
        let attempt = Instant::now();
        let deadline = attempt + shared.config.setup_timeout;
        let source = shared.config.source_for(index);
        let connected = tokio::select! {
            biased;
            () = cancel.cancelled() => return outcome,
            c = tokio::time::timeout_at(deadline.into(), connect(source, shared.config.target)) => c,
        };
        let stream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                shared.errors.note(format!("connect: {error}"));
                let _ = shared.events.try_send(failed);
                return outcome;
            }
            Err(_) => {
                shared.errors.note("connect: timed out");
                let _ = shared.events.try_send(failed);
                return outcome;
            }
        };
        if !rejoin {
            outcome.connected = true;
            outcome.local_ip = stream.local_addr().ok().map(|a| a.ip());
        }
        let mut conn = Conn::new(index, &shared, attempt, deadline, outcome, maker, rejoin);
        let served = conn.serve(stream, &mut phase, &cancel).await;
        outcome = conn.out;
        maker = conn.maker;
        if served != Some(Served::Rejoin) {
            return outcome;
        }
        rejoin = true;
    }
}

/// Connects, from `source` when spreading over loopback addresses.
async fn connect(source: Option<SocketAddr>, target: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = match source {
        Some(source) => {
            let socket = TcpSocket::new_v4()?;
            socket.bind(source)?;
            socket.connect(target).await?
        }
        None => TcpStream::connect(target).await?,
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// What woke the connection's loop.
enum Wake {
    Cancelled,
    Readable(std::io::Result<()>),
    Phase(bool),
    Timer,
}

/// One connection's state.
struct Conn<'a> {
    /// Position in the fleet: worker name, schedule offset, latency stripe.
    index: usize,
    /// Run-wide state.
    shared: &'a Shared,
    /// Counters handed back at the end.
    out: ConnOutcome,
    /// When the connect attempt began.
    attempt: Instant,
    /// Ready by then or fail.
    setup_deadline: Instant,
    /// Worker name as a JSON string literal.
    worker_json: String,
    /// Whether the subscribe answer came and authorize must now be sent.
    authorize_due: bool,
    /// Extranonce1 once subscribed.
    extranonce1: Option<Vec<u8>>,
    /// Extranonce2 size once subscribed.
    extranonce2_size: usize,
    /// Granted version-rolling mask.
    version_mask: u32,
    /// Authorize answered true.
    authorized: bool,
    /// Current share difficulty (1 until the target says otherwise, as the protocol has it).
    difficulty: Difficulty,
    /// The newest job (shared with every connection that got the same notify line).
    job: Option<Arc<CachedJob>>,
    /// Ready was announced.
    ready: bool,
    /// Finished was announced.
    finished: bool,
    /// The submit schedule, once the window is announced.
    schedule: Option<Schedule>,
    /// The submit window once announced (fan-out is recorded only inside it).
    window: Option<(Instant, Instant)>,
    /// Pre-encoded shares for the current work; dropped whenever the work changes.
    batch: Option<Batch>,
    /// Makes batches.
    maker: ShareMaker,
    /// Next request id.
    next_id: u64,
    /// Submits awaiting their answer: id and send time, oldest first.
    pending: VecDeque<(u64, Instant)>,
    /// A partial line carried to the next read.
    partial: Vec<u8>,
    /// Shares per batch: one second of this connection's share of the rate.
    per_batch: usize,
    /// This is a connection opened again in the reconnect storm.
    rejoin: bool,
}

impl<'a> Conn<'a> {
    fn new(
        index: usize,
        shared: &'a Shared,
        attempt: Instant,
        setup_deadline: Instant,
        out: ConnOutcome,
        maker: ShareMaker,
        rejoin: bool,
    ) -> Self {
        let cfg = &shared.config;
        // One second of this connection's shares, within the configured cap.
        let per_second = (cfg.rate / cfg.connections.get() as f64).ceil();
        let per_batch = (per_second as usize).clamp(1, cfg.batch.get());
        Conn {
            index,
            shared,
            out,
            attempt,
            setup_deadline,
            worker_json: json_string(&format!("{}.w{index}", cfg.worker_prefix)),
            authorize_due: false,
            extranonce1: None,
            extranonce2_size: 0,
            version_mask: 0,
            authorized: false,
            difficulty: Difficulty::ONE,
            job: None,
            ready: false,
            finished: false,
            schedule: None,
            window: None,
            batch: None,
            maker,
            next_id: FIRST_SUBMIT_ID,
            pending: VecDeque::new(),
            partial: Vec::new(),
            per_batch,
            rejoin,
        }
    }

    /// Serves the connection; `None` when it failed (already counted and reported).
    async fn serve(
        &mut self,
        mut stream: TcpStream,
        phase: &mut watch::Receiver<Phase>,
        cancel: &CancellationToken,
    ) -> Option<Served> {
        let result = self.serve_inner(&mut stream, phase, cancel).await;
        self.out.hashes = self.maker.hashes;
        self.out.searched = self.maker.searched;
        match result {
            Ok(served) => Some(served),
            Err(reason) => {
                self.shared.errors.note(reason);
                if self.ready {
                    self.out.lost = true;
                    self.out.lost_in_flight += self.pending.len() as u64;
                    self.pending.clear();
                    self.finish();
                    let _ = self.shared.events.try_send(Event::Lost);
                } else if self.rejoin {
                    let _ = self.shared.events.try_send(Event::RejoinFailed);
                } else {
                    let _ = self.shared.events.try_send(Event::SetupFailed);
                }
                None
            }
        }
    }

    /// Runs until cancelled or told to reconnect (`Ok`), or the connection fails (`Err`
    /// with the reason).
    async fn serve_inner(
        &mut self,
        stream: &mut TcpStream,
        phase: &mut watch::Receiver<Phase>,
        cancel: &CancellationToken,
    ) -> Result<Served, String> {
        let hello = self.handshake();
        write(stream, &hello, self.shared.config.setup_timeout).await?;
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let sleep = tokio::time::sleep_until(far.into());
        tokio::pin!(sleep);
        let mut armed = far;
        let mut phase_open = true;
        if self.apply_phase(*phase.borrow_and_update()) {
            return Ok(Served::Rejoin);
        }
        loop {
            let wake_at = self.next_wake().unwrap_or(far);
            if wake_at != armed {
                sleep.as_mut().reset(wake_at.into());
                armed = wake_at;
            }
            let wake = tokio::select! {
                biased;
                () = cancel.cancelled() => Wake::Cancelled,
                r = stream.readable() => Wake::Readable(r),
                r = phase.changed(), if phase_open => Wake::Phase(r.is_ok()),
                () = &mut sleep => Wake::Timer,
            };
            match wake {
                Wake::Cancelled => return Ok(Served::Cancelled),
                Wake::Readable(Err(e)) => return Err(format!("read: {e}")),
                Wake::Readable(Ok(())) => self.read_available(stream)?,
                Wake::Phase(true) => {
                    if self.apply_phase(*phase.borrow_and_update()) {
                        return Ok(Served::Rejoin);
                    }
                }
                Wake::Phase(false) => phase_open = false,
                Wake::Timer => {
                    // Re-arm on the next turn even if the computed time is unchanged.
                    armed = far;
                }
            }
            self.service(stream).await?;
        }
    }

    /// The opening lines: configure and suggest_difficulty when asked, then subscribe.
    fn handshake(&self) -> bytes::BytesMut {
        let cfg = &self.shared.config;
        let mut out = bytes::BytesMut::with_capacity(512);
        let mut send = |id: u64, method: Method| {
            Message::Request(Request {
                id: Id::Int(id),
                method,
            })
            .encode_into(&mut out);
        };
        if cfg.configure {
            send(
                CONFIGURE_ID,
                Method::Configure(crate::stratum::Configure {
                    version_rolling: Some(crate::stratum::VersionRolling {
                        mask: Some(0x1fff_e000),
                        min_bit_count: Some(2),
                    }),
                    ..Default::default()
                }),
            );
        }
        if let Some(d) = cfg.suggest_difficulty {
            send(SUGGEST_ID, Method::SuggestDifficulty(d));
        }
        send(
            SUBSCRIBE_ID,
            Method::Subscribe(crate::stratum::Subscribe {
                user_agent: Some(USER_AGENT.into()),
                session_id: None,
            }),
        );
        out
    }

    /// Follows the coordinator; `true` when this connection must close and reconnect.
    fn apply_phase(&mut self, phase: Phase) -> bool {
        match phase {
            Phase::Setup => false,
            Phase::Submit { t0, end } => {
                // A connection opened again in the storm does not submit again.
                if !self.rejoin {
                    self.window = Some((t0, end));
                    self.start_schedule();
                }
                false
            }
            Phase::Reconnect => !self.rejoin,
        }
    }

    /// Starts submitting once both ready and inside an announced window.
    fn start_schedule(&mut self) {
        if let (true, None, Some((t0, end))) = (self.ready, &self.schedule, self.window) {
            let cfg = &self.shared.config;
            self.schedule = Some(Schedule::new(
                self.index,
                cfg.connections.get(),
                cfg.rate,
                t0,
                end,
            ));
        }
    }

    /// The next time something must happen without input.
    fn next_wake(&self) -> Option<Instant> {
        let mut at: Option<Instant> = None;
        let mut earliest = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        if !self.ready {
            earliest(self.setup_deadline);
        }
        if let Some(due) = self.schedule.as_ref().and_then(Schedule::next_due) {
            earliest(due);
        }
        if let Some(&(_, sent)) = self.pending.front() {
            earliest(sent + self.shared.config.answer_timeout);
        }
        at
    }

    /// After every wake: setup deadline, timeouts, owed submits, the finished signal.
    async fn service(&mut self, stream: &mut TcpStream) -> Result<(), String> {
        let cfg = &self.shared.config;
        if self.authorize_due {
            self.authorize_due = false;
            let mut out = bytes::BytesMut::with_capacity(128);
            Message::Request(Request {
                id: Id::Int(AUTHORIZE_ID),
                method: Method::Authorize(crate::stratum::Authorize {
                    user: format!("{}.w{}", cfg.worker_prefix, self.index),
                    password: Some(cfg.password.clone()),
                }),
            })
            .encode_into(&mut out);
            write(stream, &out, cfg.setup_timeout).await?;
        }
        let now = Instant::now();
        if !self.ready {
            if now >= self.setup_deadline {
                return Err(self.setup_timeout_reason());
            }
            return Ok(());
        }
        let timeout = cfg.answer_timeout;
        while let Some(&(_, sent)) = self.pending.front() {
            if now.saturating_duration_since(sent) < timeout {
                break;
            }
            self.pending.pop_front();
            self.out.timeouts += 1;
        }
        self.send_owed(stream, now).await?;
        if self.schedule.as_ref().is_some_and(Schedule::done) && self.pending.is_empty() {
            self.finish();
        }
        Ok(())
    }

    fn setup_timeout_reason(&self) -> String {
        let step = if self.extranonce1.is_none() {
            "no subscribe answer"
        } else if !self.authorized {
            "no authorize answer"
        } else {
            "no job"
        };
        format!("setup timed out ({step})")
    }

    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            let _ = self.shared.events.try_send(Event::Finished);
        }
    }

    /// Writes every share the schedule owes by `now`, up to [`MAX_BURST`].
    async fn send_owed(&mut self, stream: &mut TcpStream, now: Instant) -> Result<(), String> {
        let Some(schedule) = self.schedule else {
            return Ok(());
        };
        let mut left = schedule.owed(now).min(MAX_BURST);
        while left > 0 {
            if self.batch.as_ref().is_none_or(|b| b.remaining() == 0) && !self.refill() {
                self.out.not_sent += left;
                self.advance(left, now);
                return Ok(());
            }
            let Some((bytes, first_id, count)) =
                self.batch.as_mut().and_then(|b| b.take(left as usize))
            else {
                return Ok(());
            };
            write(stream, &bytes, self.shared.config.answer_timeout).await?;
            for id in first_id..first_id + count as u64 {
                self.pending.push_back((id, now));
            }
            self.out.sent += count as u64;
            self.advance(count as u64, now);
            left -= count as u64;
        }
        Ok(())
    }

    /// Marks `n` scheduled shares done, noting how late the first of them went.
    fn advance(&mut self, n: u64, now: Instant) {
        if let Some(s) = self.schedule.as_mut() {
            // Each share's own lag: a burst after a stall is late by different amounts.
            for k in s.sent..s.sent + n {
                let Some(due) = s.due_at(k) else { break };
                let lag = now.saturating_duration_since(due);
                if lag > LATE {
                    self.out.late_sends += 1;
                }
                self.shared.send_lag.record(self.index, lag);
            }
            s.sent += n;
        }
    }

    /// Makes a new batch for the current work; `false` (and the reason noted) if it
    /// cannot be made.
    fn refill(&mut self) -> bool {
        let (Some(cached), Some(extranonce1)) = (&self.job, &self.extranonce1) else {
            return false;
        };
        let ctx = WorkContext {
            job: &cached.job,
            job_id_json: &cached.id_json,
            extranonce1,
            extranonce2_size: self.extranonce2_size,
            version_mask: self.version_mask,
            difficulty: self.difficulty,
        };
        let first = self.next_id;
        match self
            .maker
            .batch(&ctx, &self.worker_json, first, self.per_batch)
        {
            Ok(batch) => {
                self.next_id += batch.remaining() as u64;
                self.batch = Some(batch);
                true
            }
            Err(error) => {
                self.shared.errors.note(format!("no share made: {error}"));
                self.batch = None;
                false
            }
        }
    }

    /// Reads whatever is buffered in the socket and handles every complete line.
    ///
    /// Reads through `poll_read` with a no-op waker rather than `try_read`: tokio clears
    /// the socket's readiness on a short read there, so draining the socket costs one
    /// `recv` instead of a second one that only returns `WouldBlock`. The task is woken
    /// by the `readable()` it waits on in its loop, never by this waker.
    fn read_available(&mut self, stream: &mut TcpStream) -> Result<(), String> {
        let mut buf = [0u8; READ_CHUNK];
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            let mut rb = ReadBuf::new(&mut buf);
            let len = match Pin::new(&mut *stream).poll_read(&mut cx, &mut rb) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Err(e)) => return Err(format!("read: {e}")),
                Poll::Ready(Ok(())) => rb.filled().len(),
            };
            if len == 0 {
                return Err("closed by the target".into());
            }
            let now = Instant::now();
            self.ingest(buf.get(..len).unwrap_or(&[]), now)?;
            if len < READ_CHUNK {
                return Ok(());
            }
        }
    }

    /// Splits `data` (after any carried partial line) into lines and handles them.
    fn ingest(&mut self, data: &[u8], now: Instant) -> Result<(), String> {
        if self.partial.is_empty() {
            let used = self.lines(data, now)?;
            self.carry(data.get(used..).unwrap_or(&[]))
        } else {
            let mut joined = std::mem::take(&mut self.partial);
            joined.extend_from_slice(data);
            let used = self.lines(&joined, now)?;
            self.carry(joined.get(used..).unwrap_or(&[]))
        }
    }

    /// Keeps an incomplete line, refusing one longer than the protocol cap.
    fn carry(&mut self, rest: &[u8]) -> Result<(), String> {
        if rest.len() > DEFAULT_MAX_LINE {
            return Err(format!("line longer than {DEFAULT_MAX_LINE} bytes"));
        }
        self.partial.clear();
        if self.partial.capacity() > 2 * READ_CHUNK {
            self.partial = Vec::new();
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// Handles each complete line of `data`; returns how many bytes were consumed.
    fn lines(&mut self, data: &[u8], now: Instant) -> Result<usize, String> {
        let mut used = 0;
        while let Some(pos) = data
            .get(used..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        {
            let mut line = data.get(used..used + pos).unwrap_or(&[]);
            used += pos + 1;
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.line(line, now)?;
        }
        if !self.ready && self.extranonce1.is_some() && self.authorized && self.job.is_some() {
            self.ready = true;
            let setup = now.saturating_duration_since(self.attempt);
            if self.rejoin {
                self.out.rejoined = true;
                let _ = self
                    .shared
                    .events
                    .try_send(Event::Rejoined { setup, at: now });
            } else {
                self.out.ready = true;
                let _ = self.shared.events.try_send(Event::Ready { setup, at: now });
            }
            self.start_schedule();
        }
        Ok(used)
    }

    /// Handles one line.
    fn line(&mut self, line: &[u8], now: Instant) -> Result<(), String> {
        // Handshake answers share the accepted shape; they take the full path.
        if let Some(id) = fast_accept(line).filter(|&id| id >= FIRST_SUBMIT_ID) {
            self.answer(id, true, 0, now);
            return Ok(());
        }
        if let Some(job) = self.shared.jobs.get(line) {
            self.use_job(job, now);
            return Ok(());
        }
        match Message::parse(line) {
            Ok(Message::Response(r)) => self.response(r, now),
            Ok(Message::Request(r)) => {
                self.request(r, line, now);
                Ok(())
            }
            Err(error) => {
                self.out.bad_lines += 1;
                self.shared
                    .errors
                    .note(format!("bad line from target: {error}"));
                Ok(())
            }
        }
    }

    fn response(&mut self, r: Response, now: Instant) -> Result<(), String> {
        let Id::Int(id) = r.id else {
            self.out.unmatched += 1;
            return Ok(());
        };
        match id {
            CONFIGURE_ID => {
                if let ResultValue::Configure(c) = r.result
                    && c.version_rolling == Some(true)
                {
                    self.version_mask = c.version_rolling_mask.unwrap_or(0);
                    self.batch = None;
                }
            }
            SUGGEST_ID => {}
            SUBSCRIBE_ID => match r.result {
                ResultValue::Subscribe(s) => {
                    self.extranonce1 = Some(s.extranonce1);
                    self.extranonce2_size = s.extranonce2_size;
                    self.authorize_due = true;
                }
                _ => {
                    return Err(format!(
                        "subscribe refused: {}",
                        r.reject_message().unwrap_or("no reason given")
                    ));
                }
            },
            AUTHORIZE_ID => {
                if !r.is_accepted() {
                    return Err(format!(
                        "authorize refused: {}",
                        r.reject_message().unwrap_or("no reason given")
                    ));
                }
                self.authorized = true;
            }
            id => {
                let code = r.error.as_ref().and_then(|e| e.code()).unwrap_or(0);
                if !r.is_accepted() {
                    self.shared.errors.note(format!(
                        "share rejected ({code}): {}",
                        r.reject_message().unwrap_or("no reason given")
                    ));
                }
                self.answer(id, r.is_accepted(), code, now);
            }
        }
        Ok(())
    }

    /// Matches a submit answer to its pending entry and counts it.
    fn answer(&mut self, id: u64, accepted: bool, code: i64, now: Instant) {
        // Answers come in order from any sane target, so the front almost always matches.
        let pos = match self.pending.front() {
            Some(&(front, _)) if front == id => Some(0),
            _ => self.pending.iter().position(|&(p, _)| p == id),
        };
        let Some((_, sent)) = pos.and_then(|p| self.pending.remove(p)) else {
            self.out.unmatched += 1;
            return;
        };
        self.shared
            .latency
            .record(self.index, now.saturating_duration_since(sent));
        self.out.last_answer = Some(now);
        if accepted {
            self.out.accepted += 1;
        } else {
            *self.out.rejected.entry(code).or_default() += 1;
        }
    }

    fn request(&mut self, r: Request, line: &[u8], now: Instant) {
        match r.method {
            Method::Notify(n) => self.notify(n, line, now),
            Method::SetDifficulty(d) => match Difficulty::new(d) {
                Ok(d) => {
                    self.difficulty = d;
                    self.batch = None;
                    let v = d.get();
                    self.out.difficulty_range = Some(
                        self.out
                            .difficulty_range
                            .map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))),
                    );
                }
                Err(e) => self
                    .shared
                    .errors
                    .note(format!("set_difficulty ignored: {e}")),
            },
            Method::SetExtranonce(s) => {
                self.extranonce1 = Some(s.extranonce1);
                self.extranonce2_size = s.extranonce2_size;
                self.batch = None;
            }
            Method::Reconnect(_) => self.out.reconnect_requests += 1,
            _ => {}
        }
    }

    /// A job arrived: count it for fan-out and make it the current work.
    fn use_job(&mut self, job: Arc<CachedJob>, now: Instant) {
        self.out.notifies += 1;
        if self.window.is_some() {
            self.shared.fanout.record(job.job.id(), now);
        }
        self.job = Some(job);
        self.batch = None;
    }

    /// A notify line not seen before: build its job and share it.
    fn notify(&mut self, n: Notify, line: &[u8], now: Instant) {
        let template = JobTemplate {
            id: n.job_id,
            prevhash: n.prevhash,
            coinb1: n.coinb1,
            coinb2: n.coinb2,
            merkle_branch: n.merkle_branch,
            version: n.version,
            nbits: n.nbits,
            ntime: n.ntime,
            clean_jobs: n.clean_jobs,
        };
        match Job::new(template) {
            Ok(job) => {
                let cached = Arc::new(CachedJob {
                    id_json: json_string(job.id()),
                    job,
                });
                self.shared.jobs.insert(line, &cached);
                self.use_job(cached, now);
            }
            Err(e) => {
                self.out.notifies += 1;
                self.shared.errors.note(format!("unusable job: {e}"));
            }
        }
    }
}

/// Recognises the common accepted-share answer `{"id":N,"result":true,"error":null}`
/// without a JSON parse; anything else goes through the full parser.
fn fast_accept(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"id\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let (number, tail) = rest.split_at(digits);
    if tail != b",\"result\":true,\"error\":null}" {
        return None;
    }
    std::str::from_utf8(number).ok()?.parse().ok()
}

/// Writes all of `bytes` or fails after `limit`.
async fn write(stream: &mut TcpStream, bytes: &[u8], limit: Duration) -> Result<(), String> {
    match tokio::time::timeout(limit, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(_) => Err("write: timed out (target not reading)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_takes_only_the_exact_accept_shape() {
        assert_eq!(
            fast_accept(br#"{"id":123,"result":true,"error":null}"#),
            Some(123)
        );
        assert_eq!(
            fast_accept(br#"{"id":1,"result":false,"error":null}"#),
            None
        );
        assert_eq!(
            fast_accept(br#"{"id":"1","result":true,"error":null}"#),
            None
        );
        assert_eq!(fast_accept(br#"{"result":true,"error":null,"id":1}"#), None);
        assert_eq!(
            fast_accept(br#"{"id":99999999999999999999,"result":true,"error":null}"#),
            None
        );
    }

    #[test]
    fn fast_path_agrees_with_the_parser() {
        let line = br#"{"id":77,"result":true,"error":null}"#;
        match Message::parse(line) {
            Ok(Message::Response(r)) => {
                assert!(r.is_accepted());
                assert_eq!(r.id, Id::Int(77));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fast_accept(line), Some(77));
    }
}
