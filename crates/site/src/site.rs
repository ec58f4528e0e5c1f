//! The assembled site: registry, hub, upstream manager, miner listener, the power driver
//! (when `[power]` is configured) and the status server with the power admin routes,
//! started from one validated [`Config`] and stopped in one order.
//!
//! `hashgate run`, `hashgate demo` and the end-to-end tests all start it through
//! [`Site::start`] and differ only in their [`SiteOptions`], so what is tested is what runs.
//!
//! # Shutdown order
//!
//! [`Site::begin_shutdown`] (or [`Site::shutdown`]) starts one sequence; [`Site::phase`]
//! tells where it is and [`Site::finished`] waits for its end.
//!
//! | phase | what stops | why here |
//! |---|---|---|
//! | [`Phase::ClosingMiners`] | the listener (a new miner is refused), every miner session, and the power driver | at once: a sleep or wake sent while the process goes away could never be confirmed or retried, so none is sent once shutdown began; miners stay as they are, and the next start learns their state from telemetry |
//! | [`Phase::DrainingUpstream`] | pool connections send what is queued and wait for verdicts, up to `min(submit_timeout, 5 s)` | after the sessions, so no share arrives behind the drain; the ledger then writes its last flush, so it holds the final counts |
//! | [`Phase::StoppingHttp`] | the status server, answering requests in flight | last, so a scrape during shutdown still sees the final counts |

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ReloadReport, restart_needed};
use crate::downstream::{Listener, ListenerCounters, ListenerStatus};
use crate::economics::{Economics, run_price_poller};
use crate::exporter::Exporter;
use crate::http::HttpState;
use crate::hub::Hub;
use crate::ledger::LedgerHandle;
use crate::power::api::MinerApi;
use crate::power::driver::DriverError;
use crate::power::inventory::PowerConfig;
use crate::power::{PowerDriver, PowerHandle};
use crate::stats::Registry;
use crate::upstream::{PoolReload, PoolSet};

/// Counter of reloads, by `result` (`applied`, `refused`).
pub const CONFIG_RELOADS: &str = "hashgate_config_reloads_total";
/// Gauge: Unix time of the last reload that was applied.
pub const CONFIG_LAST_RELOAD: &str = "hashgate_config_last_reload_success_timestamp_seconds";

/// Where the power driver's management API clients come from.
#[derive(Default)]
pub enum MinerClients {
    /// Built from each inventory miner's family, address and credentials, host names
    /// resolved once at start: what a real site uses.
    #[default]
    Inventory,
    /// Given, one per inventory miner by id: simulated miners on ports the inventory cannot
    /// name (a stock Antminer's web port), or in-process fakes.
    Given(Vec<(Arc<str>, Arc<dyn MinerApi>)>),
}

/// An optional [`ConfigSource`], printable.
#[derive(Clone, Default)]
struct Source(Option<ConfigSource>);

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

impl fmt::Debug for MinerClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MinerClients::Inventory => f.write_str("Inventory"),
            MinerClients::Given(clients) => write!(f, "Given({} clients)", clients.len()),
        }
    }
}

/// What differs between `hashgate run`, `hashgate demo` and the tests; everything else
/// comes from the [`Config`].
#[derive(Debug)]
pub struct SiteOptions {
    config: Arc<Config>,
    clients: MinerClients,
    prometheus: Option<PrometheusHandle>,
    serve_http: bool,
    source: Source,
}

/// Reads and validates the configuration again, for a reload (SIGHUP, `POST /api/v1/reload`).
pub type ConfigSource = Arc<dyn Fn() -> Result<Config, String> + Send + Sync>;

impl SiteOptions {
    /// The site `config` describes: management clients from the inventory, `/metrics`
    /// with the registry's series only, the status server on `http.listen`.
    pub fn new(config: impl Into<Arc<Config>>) -> SiteOptions {
        SiteOptions {
            config: config.into(),
            clients: MinerClients::Inventory,
            prometheus: None,
            serve_http: true,
            source: Source::default(),
        }
    }

    /// Where a reload reads the configuration from (the file `hashgate run` was given);
    /// without one, [`Site::reload`] and `POST /api/v1/reload` have nothing to re-read.
    pub fn reload_from(mut self, source: ConfigSource) -> SiteOptions {
        self.source = Source(Some(source));
        self
    }

    /// Where the power driver's clients come from; unused without `[power]`.
    pub fn miner_clients(mut self, clients: MinerClients) -> SiteOptions {
        self.clients = clients;
        self
    }

    /// The recorder whose series lead each `/metrics` scrape: the process-wide one the
    /// binary installed, or a test's own; `None` serves the registry's series alone.
    pub fn metrics(mut self, recorder: Option<PrometheusHandle>) -> SiteOptions {
        self.prometheus = recorder;
        self
    }

    /// No status server, hence no admin routes either (the power handle still works).
    pub fn without_http(mut self) -> SiteOptions {
        self.serve_http = false;
        self
    }
}

/// Why a site could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// The miner listener could not be bound (address in use, permission, a vardiff
    /// setting the sessions cannot use).
    #[error("proxy.listen: cannot listen for miners on {addr}: {source}")]
    Listener {
        /// `proxy.listen`.
        addr: SocketAddr,
        /// What binding said.
        source: io::Error,
    },
    /// A `[[listeners]]` entry could not be bound (the error names which one).
    #[error("listeners: cannot listen for miners: {source}")]
    Listeners {
        /// What binding said, naming the listener.
        source: io::Error,
    },
    /// The status server could not be bound.
    #[error("http.listen: cannot start the status server on {addr}: {source}")]
    Http {
        /// `http.listen`.
        addr: SocketAddr,
        /// What binding said.
        source: io::Error,
    },
    /// The admin listener could not be bound.
    #[error("http.admin_listen: cannot start the admin server on {addr}: {source}")]
    AdminHttp {
        /// `http.admin_listen`.
        addr: SocketAddr,
        /// What binding said.
        source: io::Error,
    },
    /// The power driver could not be built from the inventory and the clients.
    #[error("power gating: {0}")]
    Power(#[from] DriverError),
    /// The ledger file could not be opened.
    #[error("ledger: {0}")]
    Ledger(#[from] crate::ledger::LedgerError),
    /// A part of the site panicked or failed while running or stopping.
    #[error("{part} did not stop cleanly: {problem}")]
    Stop {
        /// Which part: `miner listener`, `power driver`, `upstream`, `status server`.
        part: &'static str,
        /// The panic or I/O error.
        problem: String,
    },
}

/// Where a site is in its life; later phases compare greater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Serving miners, pools, power and HTTP.
    Running,
    /// Shutdown began: the listener and the power driver are stopped, sessions are ending.
    ClosingMiners,
    /// Pool connections deliver what is queued and wait for the pools' verdicts.
    DrainingUpstream,
    /// The status server finishes the requests in flight.
    StoppingHttp,
    /// Everything has stopped.
    Stopped,
}

/// A running site.
#[derive(Debug)]
pub struct Site {
    /// Where miners connect: the first listener's address (the real port when
    /// configured with port 0).
    pub miner_addr: SocketAddr,
    /// Every listener with its bound address, settings and counters, in configuration
    /// order.
    pub listeners: Vec<Arc<ListenerStatus>>,
    /// Where `/metrics`, `/api/v1` and the admin routes answer; `None` without HTTP.
    pub http_addr: Option<SocketAddr>,
    /// Where the admin routes answer when `http.admin_listen` gives them a listener of
    /// their own (with `[power]` and HTTP); `None` when they share `http_addr`.
    pub admin_addr: Option<SocketAddr>,
    /// Every miner and pool, for status output, metrics and the API.
    pub registry: Arc<Registry>,
    /// Channels and jobs.
    pub hub: Arc<Hub>,
    /// Accept-loop counters (accepted, refused, sessions ended by reason).
    pub listener: Arc<ListenerCounters>,
    /// Pins, budgets and the power view, when `[power]` is configured.
    pub power: Option<PowerHandle>,
    /// The hourly ledger, when `[ledger]` is configured.
    pub ledger: Option<LedgerHandle>,
    /// Price, hashprice and per-miner costs, when `[economics]` is configured.
    pub economics: Option<Arc<Economics>>,
    /// Cancelled to begin shutdown; the listener's and the driver's tokens are its children.
    shutdown: CancellationToken,
    phase: watch::Receiver<Phase>,
    stopping: JoinHandle<Result<(), SiteError>>,
    /// What [`Site::reload`] runs.
    reload: Reloader,
}

/// An optional reload, printable.
struct Reloader(Option<crate::power::admin::Reload>);

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

/// What a reload reads and where it applies what it read.
struct Reloading {
    source: ConfigSource,
    /// The settings in force: the start-up file with every reload's applied parts; what
    /// needs a restart keeps its start-up value here, so each reload reports it again.
    running: Mutex<Config>,
    power: Option<PowerHandle>,
    pools: PoolReload,
}

impl Reloading {
    /// Re-reads the file and applies what can change while running: the pools and their
    /// failover timing, the power inventory, budgets and policy. Counted and logged.
    fn reload(&self) -> Result<ReloadReport, String> {
        let result = self.apply();
        match &result {
            Ok(report) => {
                metrics::counter!(CONFIG_RELOADS, "result" => "applied").increment(1);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                metrics::gauge!(CONFIG_LAST_RELOAD).set(now);
                tracing::info!(
                    applied = %report.applied.join("; "),
                    needs_restart = %report.needs_restart.join(", "),
                    "configuration reloaded: {}",
                    report.summary()
                );
            }
            Err(error) => {
                metrics::counter!(CONFIG_RELOADS, "result" => "refused").increment(1);
                tracing::error!(%error, "configuration not reloaded; running settings kept");
            }
        }
        result
    }

    fn apply(&self) -> Result<ReloadReport, String> {
        let file = (self.source)()?;
        // One reload at a time: the diff is against what the previous one left.
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = ReloadReport {
            applied: Vec::new(),
            needs_restart: restart_needed(&running, &file),
        };
        // Power first: building a new miner's client is the one step that can still fail,
        // and nothing has changed yet when it does.
        if let (Some(handle), Some(section), Some(old)) =
            (&self.power, &file.power, running.power.as_mut())
        {
            let change = handle.reload(section).map_err(|e| format!("power: {e}"))?;
            report
                .applied
                .extend(change.describe().into_iter().map(|c| format!("power: {c}")));
            // The Debug form redacts the token and covers every other field.
            let mut compared = section.clone();
            compared.admin_token.clone_from(&old.admin_token);
            if change.is_empty() && format!("{compared:?}") != format!("{old:?}") {
                report.applied.push("power: budgets and policy".to_owned());
            }
            *old = compared;
        }
        report.applied.extend(self.pools.apply(PoolSet::of(&file)));
        running.pools = file.pools;
        running.failover.reconnect_min = file.failover.reconnect_min;
        running.failover.reconnect_max = file.failover.reconnect_max;
        running.failover.failback_after = file.failover.failback_after;
        Ok(report)
    }
}

/// What the admin routes' exposure calls for at start, given where they are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AdminExposure {
    /// Loopback only: nothing to say.
    Local,
    /// Served to remote peers on a non-loopback bind, over plain HTTP.
    Remote,
    /// Bound beyond loopback, but remote writes are refused (`allow_remote_admin` off).
    BoundButRefused,
    /// `allow_remote_admin` on a loopback bind: no remote peer can reach it.
    AllowedButLoopback,
}

fn admin_exposure(http: &crate::http::HttpConfig, admin_at: SocketAddr) -> AdminExposure {
    let loopback = admin_at.ip().is_loopback() || admin_at.ip().to_canonical().is_loopback();
    match (http.allow_remote_admin, loopback) {
        (true, false) => AdminExposure::Remote,
        (false, false) => AdminExposure::BoundButRefused,
        (true, true) => AdminExposure::AllowedButLoopback,
        (false, true) => AdminExposure::Local,
    }
}

/// Says at start how far the admin writes reach: an operator who opened `/metrics` to a
/// remote Prometheus must not expose pins and budgets without knowing it.
fn warn_admin_exposure(http: &crate::http::HttpConfig, admin_at: SocketAddr) {
    match admin_exposure(http, admin_at) {
        AdminExposure::Remote => tracing::warn!(
            admin = %admin_at,
            "admin API exposed over plain HTTP: power admin writes (pins, budgets, reload) are \
             served to any peer on the network holding the token, and the token crosses it in \
             clear; keep that network trusted, or serve admin on loopback (http.admin_listen)"
        ),
        AdminExposure::BoundButRefused => tracing::info!(
            admin = %admin_at,
            "admin writes from peers other than loopback are refused (http.allow_remote_admin is off)"
        ),
        AdminExposure::AllowedButLoopback => tracing::info!(
            admin = %admin_at,
            "http.allow_remote_admin has no effect: the admin routes listen on loopback"
        ),
        AdminExposure::Local => {}
    }
}

/// Upstream connections per pool the hub may open: enough for the connection cap with the
/// smallest (1-byte) prefix, so the cap, not the prefix space, is what limits miners.
fn max_channels(config: &Config) -> usize {
    config.proxy.max_connections.get().div_ceil(256).max(1)
}

impl Site {
    /// Binds the miner listener and the status server and builds the power driver (so a
    /// bad address or an unresolvable miner fails before anything connects upstream), then
    /// starts the upstream manager, the accept loop, the driver and the status server.
    ///
    /// # Errors
    /// [`SiteError::Listener`], [`SiteError::Http`] or [`SiteError::Power`]; nothing is
    /// left running then.
    pub async fn start(options: SiteOptions) -> Result<Site, SiteError> {
        let SiteOptions {
            config,
            clients,
            prometheus,
            serve_http,
            source,
        } = options;
        let registry = Registry::new();
        let (hub, channels) = Hub::with_split(
            max_channels(&config),
            crate::hub::SplitBook::new(config.split.clone()),
        );
        let shutdown = CancellationToken::new();
        // The listener and the driver stop the instant shutdown begins; the upstream and
        // the status server only when the sequence reaches them.
        let upstream_stop = CancellationToken::new();
        let http_stop = CancellationToken::new();
        // The ledger writes its last flush once the pools' verdicts are in.
        let ledger_stop = CancellationToken::new();

        let listener_error = |source| {
            if config.listeners.is_empty() {
                SiteError::Listener {
                    addr: config.proxy.listen,
                    source,
                }
            } else {
                SiteError::Listeners { source }
            }
        };
        let listener = Listener::bind(
            &config,
            hub.clone(),
            registry.clone(),
            shutdown.child_token(),
        )
        .map_err(listener_error)?;
        let miner_addr = listener.local_addr().map_err(listener_error)?;
        let http_listener = if serve_http {
            let http_error = |source| SiteError::Http {
                addr: config.http.listen,
                source,
            };
            let bound = TcpListener::bind(config.http.listen)
                .await
                .map_err(http_error)?;
            let addr = bound.local_addr().map_err(http_error)?;
            Some((bound, addr))
        } else {
            None
        };
        let admin_listener = match config.http.admin_listen {
            Some(wanted) if serve_http && config.power.is_some() => {
                let admin_error = |source| SiteError::AdminHttp {
                    addr: wanted,
                    source,
                };
                let bound = TcpListener::bind(wanted).await.map_err(admin_error)?;
                let addr = bound.local_addr().map_err(admin_error)?;
                Some((bound, addr))
            }
            Some(wanted) => {
                tracing::info!(admin_listen = %wanted, "http.admin_listen: no admin routes to serve (no [power] section or no status server); not bound");
                None
            }
            None => None,
        };
        let economics = config
            .economics
            .clone()
            .map(|e| Arc::new(Economics::new(e, Some(hub.clone()))));
        let driver = match &config.power {
            Some(power) => {
                let (driver, handle) =
                    build_driver(power.clone(), clients, registry.clone()).await?;
                let driver = match &economics {
                    Some(e) => driver.with_economics(e.clone()),
                    None => driver,
                };
                Some((driver, handle))
            }
            None => None,
        };

        // Opened before anything starts, so a bad ledger path fails with nothing running.
        let ledger = match &config.ledger {
            Some(ledger) => Some(crate::ledger::spawn(
                ledger.clone(),
                registry.clone(),
                driver
                    .as_ref()
                    .zip(config.power.as_ref())
                    .map(|((_, handle), power)| (handle.clone(), power)),
                economics.clone(),
                ledger_stop.clone(),
            )?),
            None => None,
        };
        let (ledger, ledger_task) = match ledger {
            Some((handle, task)) => (Some(handle), Some(task)),
            None => (None, None),
        };
        let counters = listener.counters();
        let listeners = listener.statuses();
        let (upstream_task, pool_reload) = crate::upstream::spawn_reloadable(
            config.clone(),
            hub.clone(),
            channels,
            registry.clone(),
            upstream_stop.clone(),
        );
        // Moving miners is pointless once they are being closed: the balancer stops with
        // the listener, and holds nothing that needs draining.
        drop(crate::split::spawn(
            hub.clone(),
            registry.clone(),
            shutdown.child_token(),
        ));
        let accept_task = tokio::spawn(listener.run());
        let (power, power_task) = match driver {
            Some((driver, handle)) => {
                let task = tokio::spawn(driver.run(shutdown.child_token()));
                (Some(handle), Some(task))
            }
            None => (None, None),
        };
        let reload = source.0.map(|source| {
            let reloading = Reloading {
                source,
                running: Mutex::new(Config::clone(&config)),
                power: power.clone(),
                pools: pool_reload,
            };
            let reload: crate::power::admin::Reload = Arc::new(move || reloading.reload());
            reload
        });
        let admin = match (&power, &config.power) {
            (Some(handle), Some(section)) => crate::power::admin::router_with_reload(
                handle.clone(),
                section.admin_token.clone(),
                reload.clone(),
            ),
            _ => axum::Router::new(),
        };
        let admin_addr = admin_listener.as_ref().map(|(_, addr)| *addr);
        let economics_routes = match &economics {
            Some(e) => {
                // The poller and the gauge refresher end with the driver: nothing they do
                // needs the drain.
                tokio::spawn(run_price_poller(
                    e.price_book().clone(),
                    shutdown.child_token(),
                ));
                tokio::spawn(refresh_economics_gauges(e.clone(), shutdown.child_token()));
                crate::economics::router(e.clone())
            }
            None => axum::Router::new(),
        };
        let (http_addr, http_task) = match http_listener {
            Some((bound, addr)) => {
                let mut exporter = Exporter::new(registry.clone(), config.http.max_worker_series)
                    .with_hub(hub.clone())
                    .with_listeners(listeners.clone());
                if let Some(handle) = prometheus {
                    exporter = exporter.with_prometheus(handle);
                }
                if config.power.is_some() {
                    warn_admin_exposure(&config.http, admin_addr.unwrap_or(addr));
                }
                let state =
                    HttpState::new_with_power(Arc::new(exporter), &config.http, power.clone())
                        .closing_with(shutdown.clone())
                        .ledger_at(ledger.as_ref().map(|l| l.path().to_owned()));
                let (on_status, separate) = match (admin_listener, &power) {
                    (Some((admin_bound, admin_at)), Some(handle)) => (
                        crate::power::admin::moved_router(handle.clone(), admin_at)
                            .merge(economics_routes),
                        Some(crate::http::serve_admin(
                            admin_bound,
                            state.clone(),
                            admin,
                            http_stop.clone(),
                        )),
                    ),
                    _ => (admin.merge(economics_routes), None),
                };
                let status = crate::http::serve_merged(bound, state, on_status, http_stop.clone());
                let task = tokio::spawn(async move {
                    match separate {
                        Some(admin) => {
                            let (status, admin) = tokio::join!(status, admin);
                            status.and(admin)
                        }
                        None => status.await,
                    }
                });
                (Some(addr), Some(task))
            }
            None => (None, None),
        };
        tracing::info!(%miner_addr, http = http_addr.map(tracing::field::display), pools = config.pools.len(), power = power.is_some(), "hashgate proxy listening");

        let (phase_tx, phase) = watch::channel(Phase::Running);
        let stopping = tokio::spawn(
            Stopping {
                shutdown: shutdown.clone(),
                phase: phase_tx,
                accept: accept_task,
                power: power_task,
                upstream: (upstream_stop, upstream_task),
                ledger: (ledger_stop, ledger_task),
                http: (http_stop, http_task),
            }
            .run(),
        );
        Ok(Site {
            reload: Reloader(reload),
            miner_addr,
            listeners,
            http_addr,
            admin_addr,
            registry,
            hub,
            listener: counters,
            power,
            ledger,
            economics,
            shutdown,
            phase,
            stopping,
        })
    }

    /// Re-reads the configuration (see [`SiteOptions::reload_from`]) and applies what can
    /// change while running: the pools (a kept active pool keeps its connection; a removed
    /// or changed one hands its channels to the first ready pool of the new list) and
    /// their failover timing, the power inventory, budgets and policy. Miners stay
    /// connected. Changed settings that need a restart (listeners, limits, vardiff) are
    /// named in the report and keep their running values.
    ///
    /// # Errors
    /// Why nothing changed: no source, a file that does not validate, or a new miner whose
    /// management client cannot be built.
    pub fn reload(&self) -> Result<ReloadReport, String> {
        match &self.reload.0 {
            Some(reload) => reload(),
            None => Err("nothing to reload: no configuration source".to_owned()),
        }
    }

    /// Begins the shutdown sequence (see the module documentation) without waiting for it;
    /// calling it again changes nothing.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Where the site is in its life.
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Waits until shutdown has been begun and every phase has ended: miner sessions
    /// closed, the driver stopped, pending upstream submits answered or counted within the
    /// grace period, the status server stopped.
    ///
    /// # Errors
    /// [`SiteError::Stop`] naming the first part that panicked or failed (every one is
    /// logged); the later phases still ran.
    pub async fn finished(self) -> Result<(), SiteError> {
        match self.stopping.await {
            Ok(result) => result,
            Err(error) => Err(stop_error("shutdown sequence", &error)),
        }
    }

    /// [`begin_shutdown`](Site::begin_shutdown), then [`finished`](Site::finished).
    ///
    /// # Errors
    /// As [`Site::finished`].
    pub async fn shutdown(self) -> Result<(), SiteError> {
        self.begin_shutdown();
        self.finished().await
    }
}

/// Keeps the price and hashprice gauges current between scrapes of `/api/v1/economics`.
async fn refresh_economics_gauges(economics: Arc<Economics>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                economics.snapshot(std::time::Instant::now());
            }
        }
    }
}

async fn build_driver(
    power: PowerConfig,
    clients: MinerClients,
    registry: Arc<Registry>,
) -> Result<(PowerDriver, PowerHandle), DriverError> {
    match clients {
        MinerClients::Inventory => PowerDriver::from_inventory(power, registry).await,
        MinerClients::Given(clients) => PowerDriver::new(power, clients, registry),
    }
}

/// The site's tasks as the shutdown sequence stops them, in order.
struct Stopping {
    shutdown: CancellationToken,
    phase: watch::Sender<Phase>,
    accept: JoinHandle<io::Result<()>>,
    power: Option<JoinHandle<()>>,
    upstream: (CancellationToken, JoinHandle<()>),
    ledger: (CancellationToken, Option<JoinHandle<()>>),
    http: (CancellationToken, Option<JoinHandle<io::Result<()>>>),
}

impl Stopping {
    async fn run(self) -> Result<(), SiteError> {
        let mut first: Option<SiteError> = None;
        let mut note = |result: Result<(), SiteError>| {
            if let Err(error) = result {
                tracing::error!(%error, "site shutdown");
                first.get_or_insert(error);
            }
        };
        self.shutdown.cancelled().await;
        self.phase.send_replace(Phase::ClosingMiners);
        tracing::info!("shutdown: miners refused and closed, power commands stopped");
        let power = async {
            match self.power {
                Some(task) => task.await.map_err(|e| stop_error("power driver", &e)),
                None => Ok(()),
            }
        };
        let (accepted, powered) = tokio::join!(self.accept, power);
        note(served("miner listener", accepted));
        note(powered);

        self.phase.send_replace(Phase::DrainingUpstream);
        tracing::info!("shutdown: delivering pending shares to the pools");
        let (upstream_stop, upstream) = self.upstream;
        upstream_stop.cancel();
        note(upstream.await.map_err(|e| stop_error("upstream", &e)));
        let (ledger_stop, ledger) = self.ledger;
        ledger_stop.cancel();
        if let Some(task) = ledger {
            note(task.await.map_err(|e| stop_error("ledger", &e)));
        }

        self.phase.send_replace(Phase::StoppingHttp);
        let (http_stop, http) = self.http;
        http_stop.cancel();
        if let Some(task) = http {
            note(served("status server", task.await));
        }
        self.phase.send_replace(Phase::Stopped);
        tracing::info!("shutdown: done");
        first.map_or(Ok(()), Err)
    }
}

fn served(part: &'static str, joined: Result<io::Result<()>, JoinError>) -> Result<(), SiteError> {
    match joined {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(SiteError::Stop {
            part,
            problem: error.to_string(),
        }),
        Err(error) => Err(stop_error(part, &error)),
    }
}

fn stop_error(part: &'static str, error: &JoinError) -> SiteError {
    SiteError::Stop {
        part,
        problem: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str =
        "[proxy]\naccount = \"site\"\n[[pools]]\nurl = \"stratum+tcp://127.0.0.1:3333\"\n";

    #[test]
    fn admin_exposure_follows_the_bind_and_the_switch() {
        let http = |allow| crate::http::HttpConfig {
            allow_remote_admin: allow,
            ..crate::http::HttpConfig::default()
        };
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            admin_exposure(&http(true), at("0.0.0.0:9185")),
            AdminExposure::Remote
        );
        assert_eq!(
            admin_exposure(&http(true), at("10.1.2.3:9184")),
            AdminExposure::Remote
        );
        assert_eq!(
            admin_exposure(&http(false), at("10.1.2.3:9184")),
            AdminExposure::BoundButRefused
        );
        assert_eq!(
            admin_exposure(&http(true), at("127.0.0.1:9185")),
            AdminExposure::AllowedButLoopback
        );
        assert_eq!(
            admin_exposure(&http(false), at("[::1]:9185")),
            AdminExposure::Local
        );
    }

    #[test]
    fn reloads_are_counted_and_the_last_success_timed() {
        let text = Arc::new(Mutex::new(FILE.to_owned()));
        let read = text.clone();
        let source: ConfigSource = Arc::new(move || {
            let text = read.lock().unwrap().clone();
            Config::from_toml(&text).map_err(|e| e.to_string())
        });
        let running = Config::from_toml(FILE).unwrap();
        let reloading = Reloading {
            source,
            pools: PoolReload::detached(PoolSet::of(&running)),
            running: Mutex::new(running),
            power: None,
        };
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            *text.lock().unwrap() =
                format!("{FILE}[[pools]]\nname = \"b\"\nurl = \"stratum+tcp://127.0.0.1:3334\"\n");
            let report = reloading.reload().unwrap();
            assert_eq!(report.applied, ["pool \"b\" added"]);
            // The same file again: applied, nothing changed.
            assert!(reloading.reload().unwrap().applied.is_empty());
            *text.lock().unwrap() = "[proxy\n".to_owned();
            assert!(reloading.reload().is_err());
        });
        let rendered = handle.render();
        for line in [
            "hashgate_config_reloads_total{result=\"applied\"} 2",
            "hashgate_config_reloads_total{result=\"refused\"} 1",
        ] {
            assert!(rendered.contains(line), "{line} not in\n{rendered}");
        }
        let stamp = rendered
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{CONFIG_LAST_RELOAD} ")))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(stamp > 1.7e9, "{rendered}");
    }
}
