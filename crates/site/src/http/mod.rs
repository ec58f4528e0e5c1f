//! The read-only HTTP server: Prometheus `/metrics` and the JSON status API under
//! `/api/v1`. Endpoints and example responses: `docs/API.md`.
//!
//! It binds loopback by default and has no authentication: everything here is read-only.
//! Routes that change state (the power admin API, `power::admin::router`) carry their own
//! bearer token and are served alongside with [`serve_merged`].

mod api;
pub mod config;
pub mod error;
pub mod json;
pub mod query;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::exporter::Exporter;

pub use config::HttpConfig;
pub(crate) use config::HttpConfigRaw;
pub use error::ApiError;

/// How often the recorder's histogram buffers are drained between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// What every handler reads; cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    exporter: Arc<Exporter>,
    /// Silence after which the API lists a miner as `silent`.
    silent_after: Duration,
    /// For `uptime_seconds`.
    started: Instant,
    /// The power driver's handle, to report miners asleep on purpose as `sleeping`.
    power: Option<crate::power::PowerHandle>,
}

impl HttpState {
    /// State over `exporter` (and the registry it reads) with the API settings of `config`.
    pub fn new(exporter: Arc<Exporter>, config: &HttpConfig) -> HttpState {
        HttpState::new_with_power(exporter, config, None)
    }

    /// State that also asks `power` which miners are asleep on purpose.
    pub fn new_with_power(
        exporter: Arc<Exporter>,
        config: &HttpConfig,
        power: Option<crate::power::PowerHandle>,
    ) -> HttpState {
        HttpState {
            inner: Arc::new(Inner {
                exporter,
                silent_after: config.silent_after,
                started: Instant::now(),
                power,
            }),
        }
    }

    /// Whether the connection's miner is held asleep by the power controller.
    fn is_asleep(&self, snap: &crate::stats::MinerSnapshot) -> bool {
        match (&self.inner.power, &snap.identity) {
            (Some(power), Some(identity)) => power.is_asleep(&identity.worker),
            _ => false,
        }
    }

    /// The exporter.
    pub fn exporter(&self) -> &Arc<Exporter> {
        &self.inner.exporter
    }
}

/// The read-only routes: `GET /metrics`, `/api/v1/summary`, `/api/v1/miners`,
/// `/api/v1/miners/{worker}`, `/api/v1/pools`; any other path answers 404 with
/// `{"error": …}` (the power routes, when merged in, take precedence over it).
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(api::metrics))
        .route("/api/v1/summary", get(api::summary))
        .route("/api/v1/miners", get(api::miners))
        .route("/api/v1/miners/{worker}", get(api::worker))
        .route("/api/v1/pools", get(api::pools))
        .fallback(api::not_found)
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` is cancelled, draining the recorder's
/// buffers meanwhile.
///
/// # Errors
/// The I/O error that stopped the accept loop.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_merged(listener, state, Router::new(), shutdown).await
}

/// Like [`serve`], with `extra` routes (e.g. the power admin API) served on the same
/// listener.
///
/// # Errors
/// The I/O error that stopped the accept loop.
pub async fn serve_merged(
    listener: TcpListener,
    state: HttpState,
    extra: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let exporter = state.exporter().clone();
    let upkeep_stop = shutdown.clone();
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                biased;
                () = upkeep_stop.cancelled() => break,
                _ = tick.tick() => exporter.run_upkeep(),
            }
        }
    });
    let served = serve_router(listener, router(state).merge(extra), shutdown).await;
    upkeep.abort();
    served
}

/// Serves any router (e.g. [`router`] merged with the admin routes) until `shutdown` is
/// cancelled; requests in flight are finished first.
///
/// # Errors
/// The I/O error that stopped the accept loop.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "status server listening (/metrics, /api/v1)");
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
