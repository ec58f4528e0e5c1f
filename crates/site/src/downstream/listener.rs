//! The accept loops: one task per miner under a connection cap, stopped by shutdown.
//!
//! # Several listening sockets
//!
//! After a proxy restart or a network blip every miner of the site connects within a
//! fraction of a second. A listening socket queues at most `net.core.somaxconn`
//! completed connections (4,096 on current Linux); the kernel drops the handshakes
//! beyond it and those miners retry only after the SYN retransmit timer (1 s, then 3 s,
//! 7 s). So the listener opens enough sockets on the same address with `SO_REUSEPORT`
//! that their queues together hold [`proxy.max_connections`](crate::config::ProxyConfig)
//! pending connections ([`sockets_for`]); the kernel spreads connections over them by
//! address hash, and each has its own accept task. The connection cap (one semaphore),
//! the counters and shutdown are shared by all of them.
//!
//! `SO_REUSEPORT` would also let a second process of the same user bind the same port
//! and silently take a share of the miners; [`Listener::bind`] therefore refuses to
//! start when something already answers on the address.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::Config;
use crate::hub::Hub;
use crate::ratelog::{RateLimitedLog, Verdict};
use crate::stats::Registry;

use super::admission::{Admission, AdmissionLimits};
use super::connection::{SessionContext, serve};
use super::end::SessionEnd;
use super::settings::Settings;

/// Pending connections asked for on each listening socket. The kernel caps it at
/// `net.core.somaxconn` (4,096 by default since Linux 5.4), so a site that raises that
/// sysctl gets longer queues without a new build.
pub const LISTEN_BACKLOG: u32 = 65_535;

/// The queue length assumed when `net.core.somaxconn` cannot be read (not Linux).
const DEFAULT_SOMAXCONN: u32 = 4096;

/// Most listening sockets opened on one address: 32 × 4,096 queued connections is far
/// above the 20,000 open files this proxy is usually given.
pub(crate) const MAX_LISTEN_SOCKETS: usize = 32;

/// How long the bind-time check waits for something already listening on the address.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Pause after running out of file descriptors, so the loop does not spin while sessions
/// end and free some.
const EMFILE_BACKOFF: Duration = Duration::from_millis(100);

/// How long shutdown waits for sessions to end before giving up on them with a warning.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// `EMFILE` / `ENFILE` (same numbers on Linux and the BSDs): the process or the system ran
/// out of file descriptors.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// Listening sockets needed so that their accept queues (each `min(LISTEN_BACKLOG,
/// somaxconn)` long) together hold `max_connections` pending connections, within
/// `1..=MAX_LISTEN_SOCKETS`.
pub(crate) fn sockets_for(max_connections: usize, somaxconn: u32) -> usize {
    let queue = somaxconn.clamp(1, LISTEN_BACKLOG) as usize;
    max_connections.div_ceil(queue).clamp(1, MAX_LISTEN_SOCKETS)
}

/// The kernel's cap on a listening socket's queue, or [`DEFAULT_SOMAXCONN`] when unknown.
fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(DEFAULT_SOMAXCONN)
}

/// Counters of the accept loop, readable while it runs.
#[derive(Debug, Default)]
pub struct ListenerCounters {
    /// Connections given a session.
    accepted: AtomicU64,
    /// Connections closed at once because the cap was reached.
    refused: AtomicU64,
    /// `accept` failures (descriptor exhaustion and others).
    accept_errors: AtomicU64,
    /// Sessions running now.
    open: AtomicU64,
    /// Ended sessions by reason, in [`SessionEnd::LABELS`] order.
    ended: [AtomicU64; SessionEnd::LABELS.len()],
}

impl ListenerCounters {
    /// Connections given a session so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections refused at the cap so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Miner connections open now (authorized or not).
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Failed accepts so far.
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }

    /// Sessions ended so far for the reason with this label (see [`SessionEnd::label`]).
    pub fn ended(&self, label: &str) -> u64 {
        SessionEnd::LABELS
            .iter()
            .position(|l| *l == label)
            .and_then(|i| self.ended.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Books a session that has ended.
    fn session_ended(&self, end: &SessionEnd) {
        metrics::counter!("hashgate_downstream_disconnects_total", "reason" => end.label())
            .increment(1);
        tracing::info!(reason = end.label(), "miner disconnected: {end}");
        if let Some(cell) = self.ended.get(end.index()) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What every accept loop shares.
#[derive(Debug)]
struct Acceptor {
    /// What every session shares.
    shared: Arc<SessionContext>,
    /// Cancelled to stop accepting and end every session.
    shutdown: CancellationToken,
    /// Every session task, so shutdown can wait for them.
    tracker: TaskTracker,
    /// One permit per live session: the connection cap, over all sockets.
    permits: Arc<Semaphore>,
    /// The smaller budget of connections that have not authorized yet.
    admission: Arc<Admission>,
    /// Accept-loop counters.
    counters: Arc<ListenerCounters>,
    /// Gates the warning for a refused connection: a flood of them is one line a window.
    refusal_log: RateLimitedLog,
    /// Gates the error for descriptor exhaustion, which otherwise repeats every backoff.
    exhausted_log: RateLimitedLog,
}

/// The miner-facing listener, bound and ready to [`run`](Listener::run).
#[derive(Debug)]
pub struct Listener {
    /// The bound sockets, all on the same address; never empty.
    listeners: Vec<TcpListener>,
    /// The address they are bound to (the real port when configured with port 0).
    addr: SocketAddr,
    /// What the accept loops share.
    acceptor: Arc<Acceptor>,
}

impl Listener {
    /// Binds `config.proxy.listen` with as many sockets as [`sockets_for`] the connection
    /// cap and the kernel's queue limit.
    ///
    /// # Errors
    /// As [`Listener::bind_sockets`].
    pub fn bind(
        config: &Config,
        hub: Arc<Hub>,
        registry: Arc<Registry>,
        shutdown: CancellationToken,
    ) -> io::Result<Listener> {
        let max = config.proxy.max_connections.get();
        let queue = somaxconn().clamp(1, LISTEN_BACKLOG);
        let sockets = sockets_for(max, queue);
        let held = sockets.saturating_mul(queue as usize);
        if held < max {
            tracing::warn!(
                somaxconn = queue,
                sockets,
                max_connections = max,
                "the accept queues hold {held} pending miners, fewer than max_connections: \
                 in a reconnect storm the rest wait for SYN retries; raise net.core.somaxconn"
            );
        }
        let listener = Listener::bind_sockets(config, hub, registry, shutdown, sockets)?;
        tracing::info!(
            addr = %listener.addr,
            sockets,
            queue_each = queue,
            "miner listener bound"
        );
        Ok(listener)
    }

    /// Binds `config.proxy.listen` with `sockets` listening sockets (at least one), each
    /// with a backlog of [`LISTEN_BACKLOG`].
    ///
    /// # Errors
    /// The bind error (address in use, permission); `AddrInUse` when another process
    /// already accepts connections on the address; `InvalidInput` for a vardiff
    /// configuration the sessions could not use.
    pub fn bind_sockets(
        config: &Config,
        hub: Arc<Hub>,
        registry: Arc<Registry>,
        shutdown: CancellationToken,
        sockets: usize,
    ) -> io::Result<Listener> {
        let settings = Settings::from_config(config);
        settings
            .vardiff
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        refuse_if_taken(config.proxy.listen)?;
        let first = listen(config.proxy.listen)?;
        // Port 0 picks a port for the first socket; the others must join that one.
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..sockets.max(1) {
            listeners.push(listen(addr)?);
        }
        Ok(Listener {
            listeners,
            addr,
            acceptor: Arc::new(Acceptor {
                shared: Arc::new(SessionContext {
                    settings: Arc::new(settings),
                    hub,
                    registry,
                }),
                shutdown,
                tracker: TaskTracker::new(),
                permits: Arc::new(Semaphore::new(config.proxy.max_connections.get())),
                admission: Admission::new(AdmissionLimits {
                    per_source: config.proxy.max_unauthorized_per_source.get(),
                    total: config.proxy.max_unauthorized.get(),
                    setup_timeout: config.proxy.setup_timeout,
                    setup_timeout_under_pressure: config.proxy.setup_timeout_under_pressure,
                }),
                counters: Arc::new(ListenerCounters::default()),
                refusal_log: RateLimitedLog::default(),
                exhausted_log: RateLimitedLog::default(),
            }),
        })
    }

    /// The bound address (the real port when bound to port 0).
    ///
    /// # Errors
    /// None today; kept fallible as [`TcpListener::local_addr`] is.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }

    /// Listening sockets bound on the address.
    pub fn sockets(&self) -> usize {
        self.listeners.len()
    }

    /// The accept-loop counters.
    pub fn counters(&self) -> Arc<ListenerCounters> {
        self.acceptor.counters.clone()
    }

    /// Accepts miners on every socket until shutdown, then waits (up to a grace period)
    /// for every session.
    ///
    /// # Errors
    /// None today: accept errors are counted and logged, and the loops go on.
    pub async fn run(self) -> io::Result<()> {
        let mut loops = JoinSet::new();
        for listener in self.listeners {
            loops.spawn(self.acceptor.clone().accept_loop(listener));
        }
        while let Some(done) = loops.join_next().await {
            if let Err(error) = done {
                tracing::error!(%error, "an accept loop failed");
            }
        }
        let tracker = &self.acceptor.tracker;
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                sessions = tracker.len(),
                "miner sessions still running after the shutdown grace period"
            );
        }
        Ok(())
    }
}

/// A listening socket on `addr`, sharing the port with the proxy's other sockets.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A restarted proxy must rebind at once although old connections are in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Fails with `AddrInUse` when something already accepts connections on `addr`: with
/// `SO_REUSEPORT` a second proxy of the same user would otherwise bind beside the first
/// and take part of the miners without any error.
fn refuse_if_taken(addr: SocketAddr) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let target = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    };
    // A blocking connect, once at start-up: local addresses answer (or refuse) at once.
    match std::net::TcpStream::connect_timeout(&target, PROBE_TIMEOUT) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another process already accepts connections on {addr}"),
        )),
        Err(_) => Ok(()),
    }
}

impl Acceptor {
    /// Accepts on one socket until shutdown.
    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => self.start_session(stream, peer),
                Err(error) => self.accept_failed(&error).await,
            }
        }
    }

    fn start_session(&self, stream: TcpStream, peer: SocketAddr) {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            // Refused cleanly: dropping the stream closes it; nothing else is touched.
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("hashgate_downstream_refused_total", "reason" => "max_connections")
                .increment(1);
            if let Verdict::Log { suppressed } = self.refusal_log.check_now() {
                tracing::warn!(%peer, suppressed, "connection cap reached; miner refused");
            }
            return;
        };
        let admitted = match self.admission.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("hashgate_downstream_refused_total", "reason" => refusal.label())
                    .increment(1);
                if let Verdict::Log { suppressed } = self.refusal_log.check_now() {
                    tracing::warn!(%peer, reason = refusal.label(), suppressed, "budget of unauthorized connections reached; connection refused");
                }
                return;
            }
        };
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        // Open connections are `hashgate_miners_connected`, from the registry.
        self.counters.open.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("hashgate_downstream_accepted_total").increment(1);
        // Stratum lines are small and latency matters more than packet count.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        tracing::debug!(%peer, "miner connected");
        let span = tracing::info_span!("miner", %peer, worker = tracing::field::Empty);
        // The root token itself, not a child per session: nothing cancels one session
        // alone, and a child node is ~140 bytes per miner.
        let serving = serve(
            stream,
            peer,
            admitted,
            self.shared.clone(),
            self.shutdown.clone(),
        );
        self.tracker.spawn(
            SessionTask {
                serving,
                counters: self.counters.clone(),
                permit: Some(permit),
            }
            .instrument(span),
        );
    }

    async fn accept_failed(&self, error: &io::Error) {
        self.counters.accept_errors.fetch_add(1, Ordering::Relaxed);
        let exhausted = matches!(error.raw_os_error(), Some(EMFILE | ENFILE));
        let kind = if exhausted { "fd_exhausted" } else { "other" };
        metrics::counter!("hashgate_downstream_accept_errors_total", "kind" => kind).increment(1);
        if exhausted {
            if let Verdict::Log { suppressed } = self.exhausted_log.check_now() {
                tracing::error!(%error, suppressed, "out of file descriptors; pausing accepts briefly");
            }
            tokio::select! {
                () = self.shutdown.cancelled() => {}
                () = tokio::time::sleep(EMFILE_BACKOFF) => {}
            }
        } else {
            // A connection reset before accept completed and the like: the next is fine.
            tracing::debug!(%error, "accept failed");
        }
    }
}

pin_project_lite::pin_project! {
    /// One miner's task: its session, then the accept loop's books when it ends.
    ///
    /// A named future rather than an `async` block: the block would keep its own copy of
    /// everything it passes to [`serve`] (socket, address, handles: ~80 bytes) beside the
    /// session future, which pushes tokio's task cell over a 128-byte step.
    struct SessionTask<F> {
        #[pin]
        serving: F,
        counters: Arc<ListenerCounters>,
        // Released when the session ends, freeing a place under the connection cap.
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<F: Future<Output = SessionEnd>> Future for SessionTask<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let end = ready!(this.serving.poll(cx));
        this.counters.session_ended(&end);
        drop(this.permit.take());
        Poll::Ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(shutdown: CancellationToken) -> Listener {
        let config = Config::from_toml(
            "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"a\"\n[[pools]]\nurl = \"stratum+tcp://127.0.0.1:1\"\n",
        )
        .expect("config");
        let (hub, _rx) = Hub::new(1);
        Listener::bind(&config, hub, Registry::new(), shutdown).expect("bind")
    }

    #[tokio::test(start_paused = true)]
    async fn descriptor_exhaustion_pauses_accepts_and_other_errors_do_not() {
        let l = listener(CancellationToken::new());
        let start = tokio::time::Instant::now();
        l.acceptor
            .accept_failed(&io::Error::from_raw_os_error(EMFILE))
            .await;
        assert_eq!(start.elapsed(), EMFILE_BACKOFF);
        l.acceptor
            .accept_failed(&io::Error::from_raw_os_error(ENFILE))
            .await;
        assert_eq!(start.elapsed(), EMFILE_BACKOFF * 2);
        l.acceptor
            .accept_failed(&io::Error::from(io::ErrorKind::ConnectionAborted))
            .await;
        assert_eq!(start.elapsed(), EMFILE_BACKOFF * 2);
        assert_eq!(l.counters().accept_errors(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_cuts_the_back_off_short() {
        let shutdown = CancellationToken::new();
        let l = listener(shutdown.clone());
        shutdown.cancel();
        let start = tokio::time::Instant::now();
        l.acceptor
            .accept_failed(&io::Error::from_raw_os_error(EMFILE))
            .await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn enough_sockets_to_queue_every_miner_at_once() {
        assert_eq!(sockets_for(1, 4096), 1);
        assert_eq!(sockets_for(4096, 4096), 1);
        assert_eq!(sockets_for(4097, 4096), 2);
        assert_eq!(sockets_for(20_000, 4096), 5);
        assert_eq!(sockets_for(100_000, 4096), 25);
        assert_eq!(sockets_for(100_000, 65_535), 2);
        // An old kernel's 128 would need hundreds: capped.
        assert_eq!(sockets_for(100_000, 128), MAX_LISTEN_SOCKETS);
        // A backlog above what is asked for counts as what is asked for.
        assert_eq!(sockets_for(200_000, 1 << 20), 4);
        assert_eq!(sockets_for(10, 0), 10);
    }

    #[tokio::test]
    async fn an_unusable_vardiff_config_is_refused_at_bind() {
        let mut config = Config::from_toml(
            "[proxy]\nlisten = \"127.0.0.1:0\"\n[[pools]]\nurl = \"stratum+tcp://127.0.0.1:1\"\nuser = \"u\"\n",
        )
        .expect("config");
        config.vardiff.target_interval = Duration::ZERO;
        let (hub, _rx) = Hub::new(1);
        let err = Listener::bind(&config, hub, Registry::new(), CancellationToken::new())
            .expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
