//! The accept loop: one task per miner under a connection cap, stopped by shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::Config;
use crate::proxy::Hub;
use crate::stats::Registry;

use super::connection::{Shared, serve};
use super::end::SessionEnd;
use super::settings::Settings;

/// Pending connections the kernel may queue: a site's miners all reconnect at once after
/// a proxy restart, and a short backlog would turn that into SYN retries of seconds.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Pause after running out of file descriptors, so the loop does not spin while sessions
/// end and free some.
const EMFILE_BACKOFF: Duration = Duration::from_millis(100);

/// How long shutdown waits for sessions to end before giving up on them with a warning.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// `EMFILE` / `ENFILE` (same numbers on Linux and the BSDs): the process or the system ran
/// out of file descriptors.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// Counters of the accept loop, readable while it runs.
#[derive(Debug, Default)]
pub struct ListenerCounters {
    /// Connections given a session.
    accepted: AtomicU64,
    /// Connections closed at once because the cap was reached.
    refused: AtomicU64,
    /// `accept` failures (descriptor exhaustion and others).
    accept_errors: AtomicU64,
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
}

/// The miner-facing listener, bound and ready to [`run`](Listener::run).
#[derive(Debug)]
pub struct Listener {
    /// The bound socket.
    listener: TcpListener,
    /// What every session shares.
    shared: Arc<Shared>,
    /// Cancelled to stop accepting and end every session.
    shutdown: CancellationToken,
    /// Every session task, so shutdown can wait for them.
    tracker: TaskTracker,
    /// One permit per live session: the connection cap.
    permits: Arc<Semaphore>,
    /// Accept-loop counters.
    counters: Arc<ListenerCounters>,
}

impl Listener {
    /// Binds `config.proxy.listen` with a backlog of [`LISTEN_BACKLOG`].
    ///
    /// # Errors
    /// The bind error (address in use, permission), or `InvalidInput` for a vardiff
    /// configuration the sessions could not use.
    pub fn bind(
        config: &Config,
        hub: Arc<Hub>,
        registry: Arc<Registry>,
        shutdown: CancellationToken,
    ) -> io::Result<Listener> {
        let settings = Settings::from_config(config);
        settings
            .vardiff
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let addr = config.proxy.listen;
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // A restarted proxy must rebind at once although old connections are in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(LISTEN_BACKLOG)?;
        Ok(Listener {
            listener,
            shared: Arc::new(Shared {
                settings: Arc::new(settings),
                hub,
                registry,
            }),
            shutdown,
            tracker: TaskTracker::new(),
            permits: Arc::new(Semaphore::new(config.proxy.max_connections.get())),
            counters: Arc::new(ListenerCounters::default()),
        })
    }

    /// The bound address (the real port when bound to port 0).
    ///
    /// # Errors
    /// As [`TcpListener::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The accept-loop counters.
    pub fn counters(&self) -> Arc<ListenerCounters> {
        self.counters.clone()
    }

    /// Accepts miners until shutdown, then waits (up to a grace period) for every session.
    ///
    /// # Errors
    /// None today: accept errors are counted and logged, and the loop goes on.
    pub async fn run(self) -> io::Result<()> {
        loop {
            let accepted = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => self.start_session(stream, peer),
                Err(error) => self.accept_failed(&error).await,
            }
        }
        drop(self.listener);
        self.tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                sessions = self.tracker.len(),
                "miner sessions still running after the shutdown grace period"
            );
        }
        Ok(())
    }

    fn start_session(&self, stream: TcpStream, peer: SocketAddr) {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            // Refused cleanly: dropping the stream closes it; nothing else is touched.
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("hashgate_downstream_refused_total").increment(1);
            tracing::warn!(%peer, "connection cap reached; miner refused");
            return;
        };
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("hashgate_downstream_accepted_total").increment(1);
        // Stratum lines are small and latency matters more than packet count.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let shared = self.shared.clone();
        let counters = self.counters.clone();
        let cancel = self.shutdown.child_token();
        let span = tracing::info_span!("miner", %peer, worker = tracing::field::Empty);
        self.tracker.spawn(
            async move {
                tracing::debug!("miner connected");
                let end = serve(stream, peer, shared, cancel).await;
                metrics::counter!("hashgate_downstream_disconnects_total", "reason" => end.label())
                    .increment(1);
                tracing::info!(reason = end.label(), "miner disconnected: {end}");
                if let Some(cell) = counters.ended.get(end.index()) {
                    cell.fetch_add(1, Ordering::Relaxed);
                }
                drop(permit);
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
            tracing::error!(%error, "out of file descriptors; pausing accepts briefly");
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
        l.accept_failed(&io::Error::from_raw_os_error(EMFILE)).await;
        assert_eq!(start.elapsed(), EMFILE_BACKOFF);
        l.accept_failed(&io::Error::from_raw_os_error(ENFILE)).await;
        assert_eq!(start.elapsed(), EMFILE_BACKOFF * 2);
        l.accept_failed(&io::Error::from(io::ErrorKind::ConnectionAborted))
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
        l.accept_failed(&io::Error::from_raw_os_error(EMFILE)).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
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
