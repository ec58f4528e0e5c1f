//! One simulated miner connection: handshake, keep the newest job, send paced
//! precomputed shares, time each answer.
//!
//! No per-connection read buffer is held while idle: reads go through a stack buffer and
//! only a partial line is kept. Submits leave as slices of a pre-encoded batch, so a
//! submit costs no allocation at all once its batch exists.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

mod inbound;
mod outbound;

use super::config::LoadConfig;
use super::errors::ErrorLog;
use super::fanout::FanoutTracker;
use super::jobcache::{CachedJob, JobCache};
use super::latency::LatencyRecorder;
use super::pacing::Schedule;
use super::shares::{Batch, ShareMaker, json_string};
use hashgate_protocol::stratum::{Id, Message, Method, Request};
use hashgate_protocol::work::Difficulty;
use outbound::write;

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
pub(crate) enum Phase {
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
pub(crate) enum Event {
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
pub(crate) struct RunContext {
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
    /// Running totals for the once-a-second progress line.
    pub progress: Progress,
}

/// Running totals read by the progress line while the run goes on (the per-connection
/// [`ConnOutcome`]s are only added up at the end). Bumped once per batch written and once
/// per answer, so the shared cache line costs little next to the socket work.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Connections subscribed, authorized and holding a job.
    pub ready: AtomicU64,
    /// Shares written.
    pub sent: AtomicU64,
    /// Shares the target accepted.
    pub accepted: AtomicU64,
    /// Shares the target rejected.
    pub rejected: AtomicU64,
}

/// What one connection counted; the coordinator adds them up.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnOutcome {
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
pub(crate) async fn run(
    index: usize,
    start_at: Instant,
    shared: Arc<RunContext>,
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
            c = tokio::time::timeout_at(deadline.into(), connect(source, shared.config.target_for(index))) => c,
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
    shared: &'a RunContext,
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
        shared: &'a RunContext,
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
                Method::Configure(hashgate_protocol::stratum::Configure {
                    version_rolling: Some(hashgate_protocol::stratum::VersionRolling {
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
            Method::Subscribe(hashgate_protocol::stratum::Subscribe {
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
}
