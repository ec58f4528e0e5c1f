//! The accept loops: one task per miner under a connection cap, stopped by shutdown.
//!
//! # Several listeners
//!
//! Each `[[listeners]]` entry (or the one implicit listener of `[proxy]`) is a port with
//! its own session settings (difficulty range, starting difficulty, pool group), its own
//! connection cap and, optionally, TLS. The site's cap (`proxy.max_connections`), the
//! budget of unauthorized connections, the counters and shutdown are shared by all of
//! them: a connection takes a place under its listener's cap first, then under the
//! site's. Each listener keeps its own books ([`ListenerStatus`]) for the API and
//! `/metrics`; per-share counters carry no listener label.
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
//! address hash, and each has its own accept task. The connection caps, the counters and
//! shutdown are shared by all of them.
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

use crate::config::{Config, ListenerConfig};
use crate::hub::Hub;
use crate::ratelog::{RateLimitedLog, Verdict};
use crate::stats::Registry;

use tokio_rustls::TlsAcceptor;

use super::admission::{Admission, AdmissionLimits, Unauthorized};
use super::connection::{SessionContext, serve};
use super::end::SessionEnd;
use super::settings::Settings;
use super::tls::{self, TlsIo};

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

/// Why a connection on a listener was closed before it became a session, in the order
/// of [`ListenerStatus::refused`] (`hashgate_listener_refused_total{reason}`).
pub const REFUSAL_LABELS: [&str; 5] = [
    "max_connections",
    "site_max_connections",
    "unauthorized_per_source",
    "unauthorized_total",
    "tls_handshake",
];

/// One listener's settings and books, for `/api/v1/listeners` and `/metrics`.
#[derive(Debug)]
pub struct ListenerStatus {
    /// The listener's name (`listener` label).
    pub name: Arc<str>,
    /// Where it is bound (the real port when configured with port 0).
    pub addr: SocketAddr,
    /// Whether miners speak Stratum over TLS here.
    pub tls: bool,
    /// Vardiff floor of its miners.
    pub min_difficulty: f64,
    /// Vardiff ceiling of its miners.
    pub max_difficulty: f64,
    /// The difficulty its miners start at.
    pub initial_difficulty: f64,
    /// Its connection cap.
    pub max_connections: usize,
    /// The pool group its miners are routed to.
    pub pool_group: Option<Arc<str>>,
    /// Connections open now (handshaking, subscribed or authorized).
    open: AtomicU64,
    /// Connections given a session.
    accepted: AtomicU64,
    /// Connections closed before a session, in [`REFUSAL_LABELS`] order.
    refused: [AtomicU64; REFUSAL_LABELS.len()],
}

impl ListenerStatus {
    /// Empty books for `config` bound at `addr`.
    pub fn new(config: &ListenerConfig, addr: SocketAddr) -> ListenerStatus {
        ListenerStatus {
            name: config.name.clone(),
            addr,
            tls: config.tls.is_some(),
            min_difficulty: config.min_difficulty,
            max_difficulty: config.max_difficulty,
            initial_difficulty: config.initial_difficulty,
            max_connections: config.max_connections.get(),
            pool_group: config.pool_group.clone(),
            open: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused: Default::default(),
        }
    }

    /// Connections open on this listener now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections accepted on this listener so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed before a session for the reason with this label (see
    /// [`REFUSAL_LABELS`]).
    pub fn refused(&self, label: &str) -> u64 {
        self.refusal_cell(label)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Counts a refusal by its label's position.
    fn count_refusal(&self, label: &str) {
        if let Some(cell) = self.refusal_cell(label) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counter of the refusal `label` (one of [`REFUSAL_LABELS`]).
    fn refusal_cell(&self, label: &str) -> Option<&AtomicU64> {
        REFUSAL_LABELS
            .iter()
            .position(|l| *l == label)
            .and_then(|i| self.refused.get(i))
    }
}

/// What every accept loop of one listener shares.
#[derive(Debug)]
struct Acceptor {
    /// What every session of this listener shares (its settings among them).
    shared: Arc<SessionContext>,
    /// Cancelled to stop accepting and end every session.
    shutdown: CancellationToken,
    /// Every session task of the site, so shutdown can wait for them.
    tracker: TaskTracker,
    /// One permit per live session: the site's connection cap, over every listener.
    permits: Arc<Semaphore>,
    /// One permit per live session of this listener: its own cap.
    port_permits: Arc<Semaphore>,
    /// The site's smaller budget of connections that have not authorized yet.
    admission: Arc<Admission>,
    /// The site's accept-loop counters.
    counters: Arc<ListenerCounters>,
    /// This listener's settings and counters.
    status: Arc<ListenerStatus>,
    /// The TLS server side, on a TLS listener.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Gates the warning for a refused connection: a flood of them is one line a window.
    refusal_log: RateLimitedLog,
    /// Gates the warning for a failed TLS handshake (a plain miner retrying on the port).
    tls_log: RateLimitedLog,
    /// Gates the error for descriptor exhaustion, which otherwise repeats every backoff.
    exhausted_log: RateLimitedLog,
}

/// One bound listener: its sockets and what their accept loops share.
#[derive(Debug)]
struct Port {
    /// The bound sockets, all on the same address; never empty.
    listeners: Vec<TcpListener>,
    /// The address they are bound to (the real port when configured with port 0).
    addr: SocketAddr,
    /// What the accept loops share.
    acceptor: Arc<Acceptor>,
}

/// The miner-facing listeners, bound and ready to [`run`](Listener::run).
#[derive(Debug)]
pub struct Listener {
    /// Every listener of the configuration, in its order; never empty.
    ports: Vec<Port>,
    /// Every session of every listener.
    tracker: TaskTracker,
    /// The site's counters.
    counters: Arc<ListenerCounters>,
}

impl Listener {
    /// Binds every listener of the configuration ([`Config::listeners`]), each with as
    /// many sockets as [`sockets_for`] its connection cap and the kernel's queue limit.
    ///
    /// # Errors
    /// As [`Listener::bind_sockets`].
    pub fn bind(
        config: &Config,
        hub: Arc<Hub>,
        registry: Arc<Registry>,
        shutdown: CancellationToken,
    ) -> io::Result<Listener> {
        let queue = somaxconn().clamp(1, LISTEN_BACKLOG);
        let wanted: Vec<usize> = config
            .listeners()
            .iter()
            .map(|l| {
                let max = l.max_connections.get().min(config.proxy.max_connections.get());
                let sockets = sockets_for(max, queue);
                let held = sockets.saturating_mul(queue as usize);
                if held < max {
                    tracing::warn!(
                        listener = %l.name,
                        somaxconn = queue,
                        sockets,
                        max_connections = max,
                        "the accept queues hold {held} pending miners, fewer than max_connections: \
                         in a reconnect storm the rest wait for SYN retries; raise net.core.somaxconn"
                    );
                }
                sockets
            })
            .collect();
        let listener = Listener::bind_each(config, hub, registry, shutdown, |i| {
            wanted.get(i).copied().unwrap_or(1)
        })?;
        for port in &listener.ports {
            tracing::info!(
                listener = %port.acceptor.status.name,
                addr = %port.addr,
                tls = port.acceptor.tls.is_some(),
                sockets = port.listeners.len(),
                queue_each = queue,
                "miner listener bound"
            );
        }
        Ok(listener)
    }

    /// Binds every listener of the configuration with `sockets` listening sockets each
    /// (at least one), each with a backlog of [`LISTEN_BACKLOG`].
    ///
    /// # Errors
    /// The bind error (address in use, permission), naming the listener when the file
    /// has `[[listeners]]`; `AddrInUse` when another process already accepts connections
    /// on an address; `InvalidInput` for a vardiff configuration the sessions could not
    /// use or TLS files that do not make a certificate and key.
    pub fn bind_sockets(
        config: &Config,
        hub: Arc<Hub>,
        registry: Arc<Registry>,
        shutdown: CancellationToken,
        sockets: usize,
    ) -> io::Result<Listener> {
        Listener::bind_each(config, hub, registry, shutdown, |_| sockets)
    }

    fn bind_each(
        config: &Config,
        hub: Arc<Hub>,
        registry: Arc<Registry>,
        shutdown: CancellationToken,
        sockets: impl Fn(usize) -> usize,
    ) -> io::Result<Listener> {
        let tracker = TaskTracker::new();
        let counters = Arc::new(ListenerCounters::default());
        let permits = Arc::new(Semaphore::new(config.proxy.max_connections.get()));
        let admission = Admission::new(AdmissionLimits {
            per_source: config.proxy.max_unauthorized_per_source.get(),
            total: config.proxy.max_unauthorized.get(),
            setup_timeout: config.proxy.setup_timeout,
            setup_timeout_under_pressure: config.proxy.setup_timeout_under_pressure,
        });
        let named = !config.listeners.is_empty();
        let mut ports = Vec::new();
        for (i, l) in config.listeners().iter().enumerate() {
            // A file with `[[listeners]]` is told which entry failed; one without keeps
            // the error as it always read (the site names `proxy.listen`).
            let name_error = |e: io::Error| {
                if named {
                    io::Error::new(
                        e.kind(),
                        format!("listeners[{i}] ({:?}, {}): {e}", l.name, l.listen),
                    )
                } else {
                    e
                }
            };
            let settings = Settings::for_listener(config, l);
            settings
                .vardiff
                .validate()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
                .map_err(name_error)?;
            let tls = match &l.tls {
                Some(files) => Some(tls::server_config(files).map_err(|e| {
                    name_error(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("tls: {e}"),
                    ))
                })?),
                None => None,
            };
            refuse_if_taken(l.listen).map_err(name_error)?;
            let first = listen(l.listen).map_err(name_error)?;
            // Port 0 picks a port for the first socket; the others must join that one.
            let addr = first.local_addr()?;
            let mut listeners = vec![first];
            for _ in 1..sockets(i).max(1) {
                listeners.push(listen(addr).map_err(name_error)?);
            }
            ports.push(Port {
                listeners,
                addr,
                acceptor: Arc::new(Acceptor {
                    shared: Arc::new(SessionContext {
                        settings: Arc::new(settings),
                        hub: hub.clone(),
                        registry: registry.clone(),
                    }),
                    shutdown: shutdown.clone(),
                    tracker: tracker.clone(),
                    permits: permits.clone(),
                    port_permits: Arc::new(Semaphore::new(l.max_connections.get())),
                    admission: admission.clone(),
                    counters: counters.clone(),
                    status: Arc::new(ListenerStatus::new(l, addr)),
                    tls,
                    refusal_log: RateLimitedLog::default(),
                    tls_log: RateLimitedLog::default(),
                    exhausted_log: RateLimitedLog::default(),
                }),
            });
        }
        Ok(Listener {
            ports,
            tracker,
            counters,
        })
    }

    /// The first listener's bound address (the real port when bound to port 0).
    ///
    /// # Errors
    /// `NotFound` if there were no listener, which [`Config::listeners`] rules out.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.ports
            .first()
            .map(|p| p.addr)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no miner listener"))
    }

    /// Listening sockets bound on the first listener's address.
    pub fn sockets(&self) -> usize {
        self.ports.first().map_or(0, |p| p.listeners.len())
    }

    /// The site's accept-loop counters, over every listener.
    pub fn counters(&self) -> Arc<ListenerCounters> {
        self.counters.clone()
    }

    /// Every listener's settings, bound address and counters, in configuration order.
    pub fn statuses(&self) -> Vec<Arc<ListenerStatus>> {
        self.ports
            .iter()
            .map(|p| p.acceptor.status.clone())
            .collect()
    }

    /// Accepts miners on every socket of every listener until shutdown, then waits (up
    /// to a grace period) for every session.
    ///
    /// # Errors
    /// None today: accept errors are counted and logged, and the loops go on.
    pub async fn run(self) -> io::Result<()> {
        let mut loops = JoinSet::new();
        for port in self.ports {
            for listener in port.listeners {
                loops.spawn(port.acceptor.clone().accept_loop(listener));
            }
        }
        while let Some(done) = loops.join_next().await {
            if let Err(error) = done {
                tracing::error!(%error, "an accept loop failed");
            }
        }
        let tracker = &self.tracker;
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

    fn start_session(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        // The listener's own cap first: a full port refuses although the site has room.
        let Ok(port_permit) = self.port_permits.clone().try_acquire_owned() else {
            self.refuse(peer, "max_connections", "listener_max_connections");
            return;
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.refuse(peer, "site_max_connections", "max_connections");
            return;
        };
        let admitted = match self.admission.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                self.refuse(peer, refusal.label(), refusal.label());
                return;
            }
        };
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        self.status.accepted.fetch_add(1, Ordering::Relaxed);
        // Open connections are `hashgate_miners_connected`, from the registry.
        self.counters.open.fetch_add(1, Ordering::Relaxed);
        self.status.open.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("hashgate_downstream_accepted_total").increment(1);
        // Stratum lines are small and latency matters more than packet count.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        tracing::debug!(%peer, "miner connected");
        let span = tracing::info_span!(
            "miner",
            %peer,
            listener = %self.status.name,
            worker = tracing::field::Empty
        );
        let permits = [permit, port_permit];
        match &self.tls {
            None => {
                // The root token itself, not a child per session: nothing cancels one
                // session alone, and a child node is ~140 bytes per miner.
                let serving = serve(
                    stream,
                    peer,
                    admitted,
                    self.shared.clone(),
                    self.shutdown.clone(),
                );
                self.spawn(serving, permits, span);
            }
            Some(tls) => {
                // An Arc clone: the server configuration is shared, not rebuilt.
                let acceptor = TlsAcceptor::from(tls.clone());
                let serving = self.clone().serve_tls(acceptor, stream, peer, admitted);
                self.spawn(serving, permits, span);
            }
        }
    }

    fn spawn<F>(&self, serving: F, permits: [OwnedSemaphorePermit; 2], span: tracing::Span)
    where
        F: Future<Output = SessionEnd> + Send + 'static,
    {
        self.tracker.spawn(
            SessionTask {
                serving,
                counters: self.counters.clone(),
                status: self.status.clone(),
                permits: Some(permits),
            }
            .instrument(span),
        );
    }

    /// The TLS handshake within the setup deadline, then the session over TLS.
    async fn serve_tls(
        self: Arc<Self>,
        tls: TlsAcceptor,
        stream: TcpStream,
        peer: SocketAddr,
        admitted: (Unauthorized, Duration),
    ) -> SessionEnd {
        let (unauthorized, setup_timeout) = admitted;
        let start = tokio::time::Instant::now();
        let handshake = tokio::select! {
            biased;
            () = self.shutdown.cancelled() => return SessionEnd::Shutdown,
            done = tokio::time::timeout(setup_timeout, tls.accept(stream)) => done,
        };
        let reason = match handshake {
            Ok(Ok(stream)) => {
                // The handshake spent part of the setup deadline.
                let left = setup_timeout.saturating_sub(start.elapsed());
                return serve(
                    TlsIo::new(stream),
                    peer,
                    (unauthorized, left),
                    self.shared.clone(),
                    self.shutdown.clone(),
                )
                .await;
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => "not finished within the setup timeout".to_owned(),
        };
        self.status.count_refusal("tls_handshake");
        metrics::counter!("hashgate_downstream_refused_total", "reason" => "tls_handshake")
            .increment(1);
        if let Verdict::Log { suppressed } = self.tls_log.check_now() {
            tracing::warn!(%peer, suppressed, %reason, "TLS handshake failed (a miner speaking plain Stratum to a TLS port?); connection closed");
        }
        SessionEnd::Tls(reason)
    }

    /// Closes a connection that gets no session, counted on the listener by
    /// `port_reason` and for the site by `site_reason`.
    fn refuse(&self, peer: SocketAddr, port_reason: &'static str, site_reason: &'static str) {
        // Dropping the stream closes it; nothing else is touched.
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        self.status.count_refusal(port_reason);
        metrics::counter!("hashgate_downstream_refused_total", "reason" => site_reason)
            .increment(1);
        if let Verdict::Log { suppressed } = self.refusal_log.check_now() {
            tracing::warn!(%peer, listener = %self.status.name, reason = port_reason, suppressed, "miner connection refused");
        }
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
        status: Arc<ListenerStatus>,
        // Released when the session ends, freeing its place under the site's cap and
        // under its listener's.
        permits: Option<[OwnedSemaphorePermit; 2]>,
    }
}

impl<F: Future<Output = SessionEnd>> Future for SessionTask<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let end = ready!(this.serving.poll(cx));
        this.counters.session_ended(&end);
        this.status.open.fetch_sub(1, Ordering::Relaxed);
        drop(this.permits.take());
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
        l.ports[0]
            .acceptor
            .accept_failed(&io::Error::from_raw_os_error(EMFILE))
            .await;
        assert_eq!(start.elapsed(), EMFILE_BACKOFF);
        l.ports[0]
            .acceptor
            .accept_failed(&io::Error::from_raw_os_error(ENFILE))
            .await;
        assert_eq!(start.elapsed(), EMFILE_BACKOFF * 2);
        l.ports[0]
            .acceptor
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
        l.ports[0]
            .acceptor
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
