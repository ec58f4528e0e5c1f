//! The task serving one miner socket: reads lines, feeds the session, writes its queue,
//! follows the channel's jobs and control messages, and enforces the timeouts.
//!
//! # Memory per connection
//!
//! While a miner is idle the task holds no byte buffer: the socket is awaited for
//! readiness first and only then read into a 4 KiB buffer that is freed again as soon as
//! every complete line in it is handled. The outbound queue holds shared `Bytes` (a notify
//! is one allocation for all miners) and is freed when it drains. What stays is the
//! task's future with the session inline (vardiff, a job list of up to 8 `Arc`s and their
//! small duplicate sets, the lease, the watch and broadcast receivers): 2,024 bytes, plus
//! the miner's counters on the heap (648 bytes, mostly the hashrate windows), plus a few
//! small strings (worker name, user agent), the registry entry and tokio's task cell and
//! socket registration. `tests/downstream_memory.rs` counts the whole heap per idle miner
//! exactly; `docs/BENCHES.md` has the RSS per idle miner with 10,000 of them. The kernel
//! adds ~4.9 KB per socket, outside the process's RSS.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::hub::{ChannelControl, Hub, MinerJob};
use crate::stats::Registry;
use hashgate_protocol::stratum::{CodecError, Message, Method, Request, StratumCodec};

use super::admission::Unauthorized;
use super::end::SessionEnd;
use super::outbox::Outbox;
use super::session::{Effect, MinerSession};
use super::settings::Settings;
use super::tls::MinerIo;

/// Bytes read per readiness event: a few submits or one notify-sized line.
const READ_CHUNK: usize = 4096;

/// Lines handed to one vectored write.
const WRITE_BATCH: usize = 16;

/// How long queued lines (an error answer, `client.reconnect`) may take to go out before a
/// closing connection is dropped anyway.
const CLOSE_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// What every session shares.
#[derive(Debug)]
pub(super) struct SessionContext {
    /// Limits and policies.
    pub settings: Arc<Settings>,
    /// Prefixes and work.
    pub hub: Arc<Hub>,
    /// Live miners.
    pub registry: Arc<Registry>,
}

/// The channel feeds a subscribed miner follows; `None` before subscribe.
#[derive(Default)]
struct Feeds {
    /// Latest job of the channel.
    work: Option<watch::Receiver<Option<Arc<MinerJob>>>>,
    /// The channel's control messages.
    control: Option<broadcast::Receiver<ChannelControl>>,
    /// The channel both come from.
    channel: Option<Arc<crate::hub::Channel>>,
}

/// Serves one miner until it leaves, misbehaves or the proxy shuts down.
pub(super) async fn serve<S: MinerIo>(
    stream: S,
    peer: SocketAddr,
    admitted: (Unauthorized, Duration),
    shared: Arc<SessionContext>,
    cancel: CancellationToken,
) -> SessionEnd {
    let start = Instant::now();
    let (unauthorized, setup_timeout) = admitted;
    let session = MinerSession::new(
        shared.settings.clone(),
        shared.hub.clone(),
        shared.registry.clone(),
        peer,
        start.into_std(),
        SystemTime::now(),
    );
    let session = match session {
        Ok(session) => session,
        Err(error) => {
            tracing::error!(%error, "cannot start a miner session");
            return SessionEnd::Shutdown;
        }
    };
    let mut conn = Connection {
        stream,
        out: Outbox::new(shared.settings.outbound_queue),
        codec: StratumCodec::new(shared.settings.max_line_bytes),
        buf: BytesMut::new(),
        feeds: Feeds::default(),
        session,
        setup_deadline: start + setup_timeout,
        unauthorized: Some(Box::new(unauthorized)),
        last_heard: start,
        closing: None,
        shared,
        cancel,
    };
    match conn.run().await {
        Ok(()) => SessionEnd::PeerClosed,
        Err(end) => end,
    }
}

/// One connection's state beside the session logic.
struct Connection<S> {
    /// The miner's socket (or TLS over it), read and written through readiness, so no
    /// half is split off.
    stream: S,
    /// Lines waiting to be written.
    out: Outbox,
    /// Line framing with the hard length cap.
    codec: StratumCodec,
    /// Bytes read but not yet a complete line; empty (unallocated) while idle.
    buf: BytesMut,
    /// Job and control receivers of the miner's channel.
    feeds: Feeds,
    /// The protocol state machine.
    session: MinerSession,
    /// Subscribe and authorize must be done by then.
    setup_deadline: Instant,
    /// This connection's place in the budget of unauthorized connections, given back
    /// when the miner authorizes. Boxed: an idle, authorized miner then carries 8 bytes
    /// for it, not 32, in a task cell that grows in 128-byte steps.
    unauthorized: Option<Box<Unauthorized>>,
    /// Last time the miner sent a complete line, for the idle timeout.
    last_heard: Instant,
    /// Set when the session decided to close once its queue is written, with the deadline.
    closing: Option<(SessionEnd, Instant)>,
    /// Settings, hub and registry.
    shared: Arc<SessionContext>,
    /// Cancelled when the proxy shuts down.
    cancel: CancellationToken,
}

impl<S: MinerIo> Connection<S> {
    /// Runs until the connection ends; `Err` carries why.
    async fn run(&mut self) -> Result<(), SessionEnd> {
        let timer = sleep_until(self.setup_deadline);
        tokio::pin!(timer);
        loop {
            self.flush()?;
            if self.out.is_empty()
                && !self.stream.has_pending_write()
                && let Some((end, _)) = self.closing.take()
            {
                return Err(end);
            }
            // Re-arming moves the entry in the timer wheel under its lock, and the deadline
            // moves later on every submit (idle timeout) and every vardiff tick. So the
            // timer is only pulled earlier; a later deadline lets it fire at the old one,
            // where `on_timer` finds nothing due and it is armed again.
            let deadline = self.next_deadline();
            if deadline < timer.deadline() || timer.is_elapsed() {
                timer.as_mut().reset(deadline);
            }
            let reading = self.closing.is_none();
            let take_jobs = reading && self.session.is_authorized() && self.out.is_empty();
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(SessionEnd::Shutdown),
                ready = self.stream.writable(), if !self.out.is_empty() || self.stream.has_pending_write() => ready?,
                ready = self.stream.readable(), if reading => {
                    ready?;
                    self.read().await?;
                }
                job = next_job(&mut self.feeds.work), if take_jobs => {
                    if let Some(job) = job {
                        let now = Instant::now().into_std();
                        self.session.on_job(job, now, &mut self.out)?;
                    }
                }
                control = next_control(&mut self.feeds.control), if reading => {
                    let now = Instant::now().into_std();
                    let effect = match control {
                        Ok(control) => self.session.on_control(control, now, &mut self.out)?,
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            self.session.on_control_lost(&mut self.out)?
                        }
                        // The channel is gone: no more control messages will come.
                        Err(broadcast::error::RecvError::Closed) => {
                            self.feeds.control = None;
                            Effect::None
                        }
                    };
                    self.apply(effect);
                }
                () = &mut timer => self.on_timer()?,
            }
        }
    }

    /// The earliest of the deadlines in force.
    fn next_deadline(&self) -> Instant {
        let mut deadline = self.last_heard + self.shared.settings.idle_timeout;
        if !self.session.is_authorized() {
            deadline = deadline.min(self.setup_deadline);
        }
        if let Some(tick) = self.session.next_tick() {
            deadline = deadline.min(Instant::from_std(tick));
        }
        if let Some((_, flush_by)) = &self.closing {
            deadline = deadline.min(*flush_by);
        }
        deadline
    }

    fn on_timer(&mut self) -> Result<(), SessionEnd> {
        let now = Instant::now();
        if let Some((_, flush_by)) = &self.closing
            && now >= *flush_by
        {
            return Err(self
                .closing
                .take()
                .map_or(SessionEnd::Shutdown, |(end, _)| end));
        }
        if !self.session.is_authorized() && now >= self.setup_deadline {
            return Err(SessionEnd::SetupTimeout);
        }
        if now >= self.last_heard + self.shared.settings.idle_timeout {
            return Err(SessionEnd::IdleTimeout);
        }
        self.session.on_tick(now.into_std(), &mut self.out)
    }

    /// Reads what is there and handles every complete line.
    async fn read(&mut self) -> Result<(), SessionEnd> {
        self.buf.reserve(READ_CHUNK);
        match self.stream.try_read_buf(&mut self.buf) {
            Ok(0) => return Err(SessionEnd::PeerClosed),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Tokio clears readiness only on `WouldBlock`, so every burst of reads
                // ends here: this is the path that leaves a miner idle, and the chunk
                // reserved above must not stay with it (4 KiB per idle miner).
                if self.buf.is_empty() {
                    self.buf = BytesMut::new();
                }
                return Ok(());
            }
            Err(e) => return Err(SessionEnd::Io(e)),
        }
        while self.closing.is_none() {
            let line = match self.codec.next_line(&mut self.buf) {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(CodecError::LineTooLong { max }) => {
                    return Err(SessionEnd::LineTooLong { max });
                }
                Err(CodecError::Io(e)) => return Err(SessionEnd::Io(e)),
            };
            // Only a complete line counts as hearing from the miner: a byte every few
            // seconds that never ends a line must not hold a connection open forever.
            self.last_heard = Instant::now();
            let parsed = Message::parse(&line);
            if let Ok(Message::Request(Request {
                method: Method::Subscribe(_),
                ..
            })) = &parsed
                && self.shared.hub.sizes().is_none()
            {
                self.wait_for_upstream().await?;
            }
            let now = Instant::now().into_std();
            let effect =
                self.session
                    .handle(parsed, &line, now, SystemTime::now(), &mut self.out)?;
            self.apply(effect);
            if self.unauthorized.is_some() && self.session.is_authorized() {
                self.unauthorized = None;
            }
            // Answers to one read go out in one write (a syscall per answer would cost
            // more than validating the share), unless a burst fills half the queue.
            if self.out.half_full() {
                self.flush()?;
            }
        }
        if self.buf.is_empty() {
            // Free the read buffer: an idle miner holds none.
            self.buf = BytesMut::new();
        }
        Ok(())
    }

    /// A subscribe before any pool has connected waits for one, within the setup deadline;
    /// the session then answers with an error if there is still none.
    async fn wait_for_upstream(&self) -> Result<(), SessionEnd> {
        tokio::select! {
            () = self.cancel.cancelled() => Err(SessionEnd::Shutdown),
            _ = timeout_at(self.setup_deadline, self.shared.hub.wait_sizes()) => Ok(()),
        }
    }

    fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::None => {}
            Effect::Channel(channel) => {
                self.feeds.work = Some(channel.watch_group(self.session.group()));
                // A move or an authorize keeps the channel: its control stream (and what
                // is queued on it) stays as it is.
                let same = self
                    .feeds
                    .channel
                    .as_ref()
                    .is_some_and(|c| Arc::ptr_eq(c, &channel));
                if !same {
                    self.feeds.control = Some(channel.control());
                    self.feeds.channel = Some(channel);
                }
            }
            Effect::Close(end) => {
                if self.closing.is_none() {
                    self.closing = Some((end, Instant::now() + CLOSE_FLUSH));
                }
            }
        }
    }

    /// Writes as much of the queue as the socket takes without waiting.
    fn flush(&mut self) -> Result<(), SessionEnd> {
        while !self.out.is_empty() {
            let written = {
                let mut slices = [IoSlice::new(&[]); WRITE_BATCH];
                let n = self.out.chunks(&mut slices);
                match self
                    .stream
                    .try_write_vectored(slices.get(..n).unwrap_or_default())
                {
                    Ok(0) => return Err(SessionEnd::Io(io::ErrorKind::WriteZero.into())),
                    Ok(written) => written,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(SessionEnd::Io(e)),
                }
            };
            self.out.advance(written);
        }
        if self.stream.has_pending_write() {
            self.stream.try_flush_pending()?;
        }
        Ok(())
    }
}

/// The next job of the channel; never resolves before subscribe or once the channel is gone.
async fn next_job(
    work: &mut Option<watch::Receiver<Option<Arc<MinerJob>>>>,
) -> Option<Arc<MinerJob>> {
    let Some(rx) = work else {
        return std::future::pending().await;
    };
    if rx.changed().await.is_err() {
        return std::future::pending().await;
    }
    rx.borrow_and_update().clone()
}

/// The next control message; never resolves before subscribe.
async fn next_control(
    control: &mut Option<broadcast::Receiver<ChannelControl>>,
) -> Result<ChannelControl, broadcast::error::RecvError> {
    match control {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::MinerStats;
    use tokio::net::TcpStream;

    /// The state a connection keeps for its whole life: the task's future (which holds
    /// the session inline) and the miner's counters on the heap. Byte buffers are not
    /// counted because an idle connection holds none.
    #[tokio::test]
    async fn an_idle_connection_stays_well_under_4_kib() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (stream, peer) = listener.accept().await.expect("accept");
        let config = crate::config::Config::from_toml(
            "[proxy]\naccount = \"a\"\n[[pools]]\nurl = \"stratum+tcp://127.0.0.1:1\"\n",
        )
        .expect("config");
        let (hub, _rx) = Hub::new(1);
        let shared = Arc::new(SessionContext {
            settings: Arc::new(Settings::from_config(&config)),
            hub,
            registry: Registry::new(),
        });
        let admission =
            super::super::admission::Admission::new(super::super::admission::AdmissionLimits {
                per_source: 1,
                total: 1,
                setup_timeout: Duration::from_secs(10),
                setup_timeout_under_pressure: Duration::from_secs(2),
            });
        let admitted = admission.admit(peer.ip()).expect("room for one");
        let task = serve(stream, peer, admitted, shared, CancellationToken::new());
        let future = std::mem::size_of_val(&task);
        let stats = std::mem::size_of::<MinerStats>();
        eprintln!("per connection: task future {future} B, miner stats {stats} B");
        assert!(future + stats < 4096, "{future} + {stats}");
    }
}
