//! The read-only HTTP server: Prometheus `/metrics` and the JSON status API under
//! `/api/v1`. Endpoints and example responses: `docs/API.md`.
//!
//! It binds loopback by default and has no authentication: everything here is read-only.
//! Routes that change state (the power admin API, `power::admin::router`) carry their own
//! bearer token and are served alongside with [`serve_merged`], behind a guard: writes
//! from a peer other than loopback answer 403 unless `http.allow_remote_admin` is set, and
//! writes once the site is shutting down answer 503 (a pin or budget accepted then could
//! never be acted on). With `http.admin_listen` they are served alone on a listener of their
//! own instead ([`serve_admin`]), so `/metrics` can face a remote Prometheus without them.
//! Connections run under the limits of [`serve`](mod@serve).

mod api;
pub mod config;
pub mod error;
pub mod json;
pub mod query;
pub mod serve;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::exporter::Exporter;

pub use config::HttpConfig;
pub(crate) use config::HttpConfigRaw;
pub use error::ApiError;
pub use serve::{ServeCounters, ServeLimits};

/// Counter of admin writes refused by the guard, by `reason` (`remote`, `shutting_down`).
pub const ADMIN_REFUSED: &str = "hashgate_admin_refused_total";

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
    /// The accept loop's limits.
    limits: ServeLimits,
    /// Admin writes from peers other than loopback are served.
    allow_remote_admin: bool,
    /// Cancelled when the site begins shutting down: admin writes answer 503 from then.
    closing: CancellationToken,
    /// The accept loop's counters.
    counters: Arc<ServeCounters>,
    /// The ledger file `/api/v1/ledger` reads, when `[ledger]` is configured.
    ledger: Option<std::path::PathBuf>,
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
                limits: config.limits(),
                allow_remote_admin: config.allow_remote_admin,
                closing: CancellationToken::new(),
                counters: Arc::new(ServeCounters::default()),
                ledger: None,
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

    /// The same state, with admin writes refused (503) once `closing` is cancelled (the
    /// site passes its root shutdown token). Meant to be called before the state is
    /// shared; a shared state is copied.
    #[must_use]
    pub fn closing_with(self, closing: CancellationToken) -> HttpState {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            exporter: shared.exporter.clone(),
            silent_after: shared.silent_after,
            started: shared.started,
            limits: shared.limits.clone(),
            power: shared.power.clone(),
            allow_remote_admin: shared.allow_remote_admin,
            closing: shared.closing.clone(),
            counters: shared.counters.clone(),
            ledger: shared.ledger.clone(),
        });
        HttpState {
            inner: Arc::new(Inner { closing, ..inner }),
        }
    }

    /// The same state, answering `/api/v1/ledger` from the file at `path`; like
    /// [`closing_with`](Self::closing_with), meant for a state not yet shared.
    #[must_use]
    pub fn ledger_at(self, path: Option<std::path::PathBuf>) -> HttpState {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            exporter: shared.exporter.clone(),
            silent_after: shared.silent_after,
            started: shared.started,
            limits: shared.limits.clone(),
            power: shared.power.clone(),
            allow_remote_admin: shared.allow_remote_admin,
            closing: shared.closing.clone(),
            counters: shared.counters.clone(),
            ledger: None,
        });
        HttpState {
            inner: Arc::new(Inner {
                ledger: path,
                ..inner
            }),
        }
    }

    /// The accept loop's counters (connections open, refused).
    pub fn counters(&self) -> Arc<ServeCounters> {
        self.inner.counters.clone()
    }

    /// The exporter.
    pub fn exporter(&self) -> &Arc<Exporter> {
        &self.inner.exporter
    }
}

/// The read-only routes: `GET /metrics`, `/api/v1/summary`, `/api/v1/miners`,
/// `/api/v1/miners/{worker}`, `/api/v1/pools`, `/api/v1/ledger`; any other path answers 404 with
/// `{"error": …}` (the power routes, when merged in, take precedence over it).
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(api::metrics))
        .route("/api/v1/summary", get(api::summary))
        .route("/api/v1/miners", get(api::miners))
        .route("/api/v1/miners/{worker}", get(api::worker))
        .route("/api/v1/pools", get(api::pools))
        .route("/api/v1/listeners", get(api::listeners))
        .route("/api/v1/pool_groups", get(api::pool_groups))
        .route("/api/v1/ledger", get(api::ledger))
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
    let guarded = extra.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        admin_guard,
    ));
    let limits = state.inner.limits.clone();
    let counters = state.counters();
    let served = serve::serve_limited(
        listener,
        router(state).merge(guarded),
        shutdown,
        limits,
        counters,
    )
    .await;
    upkeep.abort();
    served
}

/// Serves `admin` (the power admin routes) alone on a listener of its own
/// (`http.admin_listen`), behind the same guard as [`serve_merged`] and under the same
/// limits, so exposing `/metrics` to a remote Prometheus exposes nothing that writes. Any
/// other path answers 404 `{"error": …}`.
///
/// # Errors
/// The I/O error that stopped the accept loop.
pub async fn serve_admin(
    listener: TcpListener,
    state: HttpState,
    admin: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let guarded = admin
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admin_guard,
        ))
        .fallback(api::not_found);
    let limits = state.inner.limits.clone();
    serve::serve_limited(
        listener,
        guarded,
        shutdown,
        limits,
        Arc::new(ServeCounters::default()),
    )
    .await
}

/// Refuses admin writes from remote peers (unless allowed) and during shutdown; reads pass.
async fn admin_guard(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let refusal = if state.inner.closing.is_cancelled() {
        Some((
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "hashgate is shutting down",
        ))
    } else if !admin_peer_allowed(peer, state.inner.allow_remote_admin) {
        Some((
            StatusCode::FORBIDDEN,
            "remote",
            "admin writes are served to loopback only (http.allow_remote_admin)",
        ))
    } else {
        None
    };
    match refusal {
        None => next.run(request).await,
        Some((status, reason, message)) => {
            metrics::counter!(ADMIN_REFUSED, "reason" => reason).increment(1);
            (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
        }
    }
}

/// Whether an admin write from `peer` is served: loopback always, others only when
/// allowed; an unknown peer (no connection info) counts as remote.
fn admin_peer_allowed(peer: Option<std::net::IpAddr>, allow_remote: bool) -> bool {
    allow_remote || peer.is_some_and(|ip| ip.is_loopback() || ip.to_canonical().is_loopback())
}

/// Serves any router (e.g. [`router`] merged with the admin routes) until `shutdown` is
/// cancelled, under the default [`ServeLimits`]; requests in flight are finished first,
/// within the shutdown grace.
///
/// # Errors
/// The I/O error that stopped the accept loop.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve::serve_limited(
        listener,
        router,
        shutdown,
        ServeLimits::default(),
        Arc::new(ServeCounters::default()),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_writes_are_for_loopback_unless_allowed() {
        let local: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: std::net::IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let remote: std::net::IpAddr = "10.0.0.5".parse().unwrap();
        assert!(admin_peer_allowed(Some(local), false));
        assert!(admin_peer_allowed(Some(mapped), false));
        assert!(!admin_peer_allowed(Some(remote), false));
        assert!(!admin_peer_allowed(None, false));
        assert!(admin_peer_allowed(Some(remote), true));
    }
}
