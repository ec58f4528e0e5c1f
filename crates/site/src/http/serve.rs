//! The status server's accept loop: hyper's HTTP/1 connection under limits that axum's own
//! `serve` does not set.
//!
//! | limit | why |
//! |---|---|
//! | header-read timeout, which also bounds an idle keep-alive connection (hyper starts it whenever the connection waits for a request head) | a client that sends half a request, or connects and says nothing, would otherwise hold its socket for ever and keep graceful shutdown waiting |
//! | a cap on open connections | every connection is a file descriptor taken from the pool the miners need |
//! | a descriptor reserve | an HTTP connection is refused when the process is within `fd_reserve` descriptors of `RLIMIT_NOFILE`, so scrapers cannot take what miners and pools need |
//! | a shutdown deadline | on shutdown each connection finishes its request in flight and closes; after `shutdown_grace` the rest are dropped, so SIGTERM always ends the process |
//!
//! Refusals are counted in `hashgate_http_refused_total{reason}` and logged at most once
//! per window ([`RateLimitedLog`]).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

use crate::ratelog::{RateLimitedLog, Verdict};

/// Counter of HTTP connections closed at accept, by `reason` (`max_connections`,
/// `fd_reserve`).
pub const HTTP_REFUSED: &str = "hashgate_http_refused_total";

/// Pause after `accept` ran out of descriptors, so the loop does not spin.
const EMFILE_BACKOFF: Duration = Duration::from_millis(100);

/// The limits one status server runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeLimits {
    /// Open connections at most; the next is closed at accept.
    pub max_connections: usize,
    /// Time a connection has to send a complete request head, counted from when it
    /// starts waiting for one (so also the idle keep-alive limit).
    pub header_read_timeout: Duration,
    /// Descriptors kept free for miners and pools: a connection is refused when its own
    /// descriptor number reaches `RLIMIT_NOFILE - fd_reserve`.
    pub fd_reserve: u64,
    /// How long shutdown lets connections finish before dropping them.
    pub shutdown_grace: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: super::config::DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: super::config::DEFAULT_HEADER_READ_TIMEOUT,
            fd_reserve: super::config::DEFAULT_FD_RESERVE,
            shutdown_grace: super::config::DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// Counters of one status server, readable while it runs.
#[derive(Debug, Default)]
pub struct ServeCounters {
    refused: AtomicU64,
    open: AtomicU64,
}

impl ServeCounters {
    /// Connections closed at accept (cap or descriptor reserve) so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` is cancelled, then lets
/// connections finish for at most `limits.shutdown_grace`. Every request carries the
/// peer's [`ConnectInfo<SocketAddr>`].
///
/// # Errors
/// None today: accept errors are counted, logged (rate-limited) and the loop goes on.
pub async fn serve_limited(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    limits: ServeLimits,
    counters: Arc<ServeCounters>,
) -> io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "status server listening (/metrics, /api/v1)");
    }
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let tracker = TaskTracker::new();
    // Cancelled when the grace has run out: every connection still open is dropped.
    let force = CancellationToken::new();
    let fd_ceiling = open_files_limit().map(|limit| limit.saturating_sub(limits.fd_reserve));
    let refusals = RateLimitedLog::default();
    let accept_errors = RateLimitedLog::default();
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                let exhausted = matches!(error.raw_os_error(), Some(23 | 24));
                if let Verdict::Log { suppressed } = accept_errors.check_now() {
                    tracing::warn!(%error, suppressed, "status server accept failed");
                }
                if exhausted {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(EMFILE_BACKOFF) => {}
                    }
                }
                continue;
            }
        };
        let refused = if fd_ceiling.is_some_and(|ceiling| descriptor(&stream) >= ceiling) {
            Some("fd_reserve")
        } else {
            None
        };
        let permit = match refused {
            Some(_) => None,
            None => permits.clone().try_acquire_owned().ok(),
        };
        let Some(permit) = permit else {
            let reason = refused.unwrap_or("max_connections");
            counters.refused.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(HTTP_REFUSED, "reason" => reason).increment(1);
            if let Verdict::Log { suppressed } = refusals.check_now() {
                tracing::warn!(%peer, reason, suppressed, "status server connection refused");
            }
            continue;
        };
        counters.open.fetch_add(1, Ordering::Relaxed);
        let counters = counters.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        let force = force.clone();
        let timeout = limits.header_read_timeout;
        tracker.spawn(async move {
            serve_connection(stream, peer, router, timeout, shutdown, force).await;
            counters.open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    tracker.close();
    if tokio::time::timeout(limits.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tracker.len(),
            "status server connections still open after the shutdown grace; dropped"
        );
        force.cancel();
        tracker.wait().await;
    }
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    header_read_timeout: Duration,
    shutdown: CancellationToken,
    force: CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move { Ok::<_, Infallible>(router.call(request).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let done = tokio::select! {
        biased;
        () = force.cancelled() => return,
        () = shutdown.cancelled() => false,
        served = connection.as_mut() => {
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "status server connection ended");
            }
            true
        }
    };
    if !done {
        // Finish the request in flight, then close; the header timeout and `force` bound it.
        connection.as_mut().graceful_shutdown();
        tokio::select! {
            biased;
            () = force.cancelled() => {}
            _ = connection.as_mut() => {}
        }
    }
}

/// The descriptor number of an accepted socket. Linux hands out the lowest free number,
/// so every descriptor below it is in use: a high number means the process is near its
/// limit, at no cost per accept (counting `/proc/self/fd` would read 20,000 entries).
#[cfg(unix)]
fn descriptor(stream: &TcpStream) -> u64 {
    use std::os::fd::AsRawFd;
    u64::try_from(stream.as_raw_fd()).unwrap_or(0)
}

#[cfg(not(unix))]
fn descriptor(_stream: &TcpStream) -> u64 {
    0
}

/// The soft `RLIMIT_NOFILE`, read once from `/proc/self/limits`; `None` off Linux or when
/// unlimited, and then no reserve is kept.
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files_limit(&text)
}

fn parse_open_files_limit(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_open_files_limit_is_read() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files_limit(text), Some(1024));
        assert_eq!(
            parse_open_files_limit("Max open files unlimited unlimited files"),
            None
        );
        assert_eq!(parse_open_files_limit(""), None);
    }
}
