//! The socket task of one pool connection: connects, then runs a thin loop around the
//! sans-I/O [`PoolSession`] (`session/`): the pool's lines, the miners' shares and a clock
//! tick go in, what the session wrote goes out to the socket and its jobs to the channel
//! server, which decides whether they are published (this connection is the active one)
//! or kept for a failover.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::exporter::{UPSTREAM_TLS_CERT_EXPIRY_SECONDS, UPSTREAM_TLS_ERRORS};
use crate::hub::{UpstreamLink, UpstreamSubmit};
use crate::stats::{Transport, Undelivered};
use hashgate_protocol::stratum::{CodecError, Message, ParseError, StratumCodec};

use super::UpstreamContext;
use super::error::UpstreamError;
use super::session::{PoolSession, SessionEvent, TICK};

pub(super) use super::event::{ConnSpec, Ended, Event, PoolWork};

/// Shares waiting to be written to one pool connection. The session drains the queue as
/// fast as it can write, so it only fills when the socket stalls: at a site-wide 4,000
/// shares/s (far above the ~1 share/s per miner that vardiff aims at for a 4,096-miner
/// channel) this is about a second of stall, after which failing over is the cure and
/// further shares are counted as `queue_full` against their miners rather than buffered.
pub(crate) const SUBMIT_QUEUE: usize = 4096;

/// Shares taken off the queue per write, so blocks queued behind others still go first
/// and one system call carries many submits.
const SUBMIT_BATCH: usize = 256;

/// How long TCP waits on an idle pool socket before its first keepalive probe, and
/// between probes; with [`KEEPALIVE_RETRIES`] a dead path is found in about 30 s even when
/// nothing is being sent.
const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(15);
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;

/// Longest time written data may stay unacknowledged before the kernel drops the
/// connection (`TCP_USER_TIMEOUT`): shares sent into a black hole fail the socket rather
/// than wait for the retransmission limit (about 15 minutes by default).
const USER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

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

/// The reading half of a pool connection, plain TCP or TLS alike: the loop below does not
/// care which, so failover, health and shutdown are the same over both.
pub(super) type PoolReader = Box<dyn AsyncRead + Send + Unpin>;

/// The writing half of a pool connection.
pub(super) type PoolWriter = Box<dyn AsyncWrite + Send + Unpin>;

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
    if let Some(key) = spec.address.sv2.clone() {
        return super::sv2::run(shared, spec, key, events, cancel).await;
    }
    let (pool, conn) = (spec.pool, spec.conn);
    let end = match open(&shared, &spec, &cancel).await {
        Ok(Some(stream)) => {
            let mut task = Task::new(shared, spec, stream, events.clone(), cancel);
            let end = task.serve().await;
            task.finish(end).await
        }
        Ok(None) => Ended::Closed,
        Err(err) => Ended::Failed(err),
    };
    // The server may be gone already (shutdown); nothing is lost by not telling it.
    let _ = events.send(Event::Ended { pool, conn, end }).await;
}

/// Connects within the silence timeout (or not at all, when cancelled first).
pub(super) async fn open(
    shared: &UpstreamContext,
    spec: &ConnSpec,
    cancel: &CancellationToken,
) -> Result<Option<(PoolReader, PoolWriter)>, UpstreamError> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Ok(None),
        res = connect(spec, shared.config.failover.silence_timeout) => res.map(Some),
    }
}

/// TCP connect, then (for a `stratum+ssl://` pool) the TLS handshake, both within `limit`.
async fn connect(
    spec: &ConnSpec,
    limit: Duration,
) -> Result<(PoolReader, PoolWriter), UpstreamError> {
    let address = spec.address.authority();
    let started = tokio::time::Instant::now();
    let stream = match tokio::time::timeout(limit, TcpStream::connect(&address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(UpstreamError::Connect { address, source }),
        Err(_) => {
            return Err(UpstreamError::ConnectTimeout {
                address,
                after: limit,
            });
        }
    };
    // Submits are small and latency-sensitive: no Nagle delay.
    let _ = stream.set_nodelay(true);
    tune_socket(&stream, &spec.name);
    if !spec.address.tls {
        spec.stats.set_transport(Transport::Plain);
        let (reader, writer) = stream.into_split();
        return Ok((Box::new(reader), Box::new(writer)));
    }
    let pool = spec.name.to_string();
    let Some(client) = spec.config.tls.as_ref() else {
        // The configuration builds a client for every TLS URL; this guards the invariant
        // rather than ever falling back to plain TCP.
        return Err(UpstreamError::Tls {
            address,
            source: crate::tls::TlsError::Other {
                name: spec.address.host.clone(),
                reason: "no TLS settings for this pool".to_owned(),
            },
        });
    };
    for kind in crate::tls::TlsError::KINDS {
        metrics::counter!(UPSTREAM_TLS_ERRORS, "pool" => pool.clone(), "kind" => kind).increment(0);
    }
    let left = limit.saturating_sub(started.elapsed());
    match client.connect(&spec.address.host, stream, left).await {
        Ok((stream, peer)) => {
            if let Some(peer) = &peer {
                metrics::gauge!(UPSTREAM_TLS_CERT_EXPIRY_SECONDS, "pool" => pool).set(
                    crate::tls::expiry_seconds(peer.not_after, std::time::SystemTime::now()),
                );
            }
            spec.stats.set_transport(Transport::Tls(peer));
            let (reader, writer) = tokio::io::split(stream);
            Ok((Box::new(reader), Box::new(writer)))
        }
        Err(source) => {
            metrics::counter!(UPSTREAM_TLS_ERRORS, "pool" => pool.clone(), "kind" => source.kind())
                .increment(1);
            if let crate::tls::TlsError::Expired {
                not_after: Some(not_after),
                ..
            } = &source
            {
                // The gauge shows how long ago, so the expiry alert keeps firing.
                metrics::gauge!(UPSTREAM_TLS_CERT_EXPIRY_SECONDS, "pool" => pool).set(
                    crate::tls::expiry_seconds(*not_after, std::time::SystemTime::now()),
                );
            }
            Err(UpstreamError::Tls { address, source })
        }
    }
}

/// Reads the next line; cancel-safe (bytes only leave the socket inside `read_buf`, which
/// completes or leaves them there).
async fn read_message(
    reader: &mut PoolReader,
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

/// The I/O around one [`PoolSession`].
struct Task {
    session: PoolSession,
    shared: Arc<UpstreamContext>,
    /// Pool index and connection number, for the events to the channel server.
    pool: usize,
    conn: u64,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
    reader: PoolReader,
    read_buf: BytesMut,
    codec: StratumCodec,
    writer: PoolWriter,
    /// The connection's submit queue.
    submits: mpsc::Receiver<UpstreamSubmit>,
}

impl Task {
    fn new(
        shared: Arc<UpstreamContext>,
        spec: ConnSpec,
        (reader, writer): (PoolReader, PoolWriter),
        events: mpsc::Sender<Event>,
        cancel: CancellationToken,
    ) -> Task {
        let (tx, submits) = mpsc::channel(SUBMIT_QUEUE);
        let link = UpstreamLink::new(spec.name.clone(), spec.conn, tx)
            .with_hashrate(spec.hashrate.clone());
        let (pool, conn) = (spec.pool, spec.conn);
        tracing::info!(pool = %spec.name, conn, address = %spec.address, "connected to pool");
        Task {
            codec: StratumCodec::new(shared.config.proxy.max_line_bytes.get()),
            session: PoolSession::new(shared.clone(), spec, link, now()),
            shared,
            pool,
            conn,
            events,
            cancel,
            reader,
            read_buf: BytesMut::with_capacity(8 * 1024),
            writer,
            submits,
        }
    }

    async fn serve(&mut self) -> Ended {
        self.session.start(now());
        if let Err(end) = self.drain().await {
            return end;
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
                    match line {
                        Ok(Some(line)) => self.session.on_message(line, now()),
                        Ok(None) => Err(UpstreamError::Closed.into()),
                        Err(err) => Err(err.into()),
                    }
                }
                _ = self.submits.recv_many(&mut batch, SUBMIT_BATCH) => {
                    self.session.on_submits(&mut batch, now());
                    Ok(())
                }
                _ = tick.tick() => self.session.on_tick(now()),
            };
            // What the session wrote before it found the connection over is still sent
            // where the socket allows (answers to the pool, shares already encoded).
            let drained = self.drain().await;
            if let Err(end) = step.and(drained) {
                return end;
            }
        }
    }

    /// Writes what the session encoded and hands its jobs to the channel server.
    async fn drain(&mut self) -> Result<(), Ended> {
        let out = self.session.take_output();
        if !out.is_empty() {
            let limit = self.shared.config.failover.silence_timeout;
            match tokio::time::timeout(limit, self.writer.write_all(&out)).await {
                // A TLS writer may hold the last record until flushed; for TCP it is free.
                Ok(Ok(())) => {
                    if let Err(err) = self.writer.flush().await {
                        return Err(CodecError::Io(err).into());
                    }
                }
                Ok(Err(err)) => return Err(CodecError::Io(err).into()),
                Err(_) => return Err(UpstreamError::WriteStalled(limit).into()),
            }
        }
        for event in self.session.take_events() {
            if let SessionEvent::Work(work) = event {
                let event = Event::Work {
                    pool: self.pool,
                    conn: self.conn,
                    work,
                };
                if self.events.send(event).await.is_err() {
                    // The channel server is gone: the proxy is shutting down.
                    return Err(Ended::Closed);
                }
            }
        }
        Ok(())
    }

    /// Accounts for every share still held. A connection closed by the proxy first sends
    /// what is queued and waits (up to a grace period) for the answers; a failed one
    /// cannot, so its sent shares lost their verdict and unsent ones never left.
    async fn finish(&mut self, end: Ended) -> Ended {
        // No new shares from here: sessions holding this link count them as upstream_gone.
        self.submits.close();
        let shutdown = self.shared.shutdown.is_cancelled();
        let mut end = end;
        if matches!(end, Ended::Closed) {
            let mut queued = Vec::new();
            while let Ok(share) = self.submits.try_recv() {
                queued.push(share);
            }
            self.session.on_submits(&mut queued, now());
            if let Err(failed) = self.drain().await {
                end = failed;
            } else if let Err(failed) = self.await_answers().await {
                end = failed;
            }
        }
        while let Ok(share) = self.submits.try_recv() {
            let reason = if shutdown {
                Undelivered::Shutdown
            } else {
                Undelivered::UpstreamGone
            };
            self.session.undelivered(&share, reason);
        }
        self.session.finish(shutdown);
        end
    }

    /// Reads answers until none are pending or the grace period is over.
    async fn await_answers(&mut self) -> Result<(), Ended> {
        let grace = self
            .shared
            .config
            .failover
            .submit_timeout
            .min(super::SHUTDOWN_GRACE);
        let deadline = tokio::time::Instant::now() + grace;
        while self.session.awaiting_verdicts() {
            let line = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
                line = read_message(&mut self.reader, &mut self.read_buf, &mut self.codec) => line,
            };
            match line? {
                None => return Err(UpstreamError::Closed.into()),
                Some(Ok(Message::Response(answer))) => {
                    self.session
                        .on_message(Ok(Message::Response(answer)), now())?;
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
