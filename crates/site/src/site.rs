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
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::downstream::{Listener, ListenerCounters};
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
    /// The status server could not be bound.
    #[error("http.listen: cannot start the status server on {addr}: {source}")]
    Http {
        /// `http.listen`.
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
    /// Where miners connect (the real port when configured with port 0).
    pub miner_addr: SocketAddr,
    /// Where `/metrics`, `/api/v1` and the admin routes answer; `None` without HTTP.
    pub http_addr: Option<SocketAddr>,
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

/// Re-reads the configuration through `source` and applies its power budgets and policy
/// to `power`; nothing changes on error.
fn reload_with(source: &ConfigSource, power: Option<&PowerHandle>) -> Result<(), String> {
    let config = source()?;
    match (power, &config.power) {
        (Some(handle), Some(section)) => handle.reload(section).map_err(|e| e.to_string()),
        (None, None) => Ok(()),
        (None, Some(_)) | (Some(_), None) => {
            Err("adding or removing the [power] section needs a restart".to_owned())
        }
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
        let (hub, channels) = Hub::new(max_channels(&config));
        let shutdown = CancellationToken::new();
        // The listener and the driver stop the instant shutdown begins; the upstream and
        // the status server only when the sequence reaches them.
        let upstream_stop = CancellationToken::new();
        let http_stop = CancellationToken::new();
        // The ledger writes its last flush once the pools' verdicts are in.
        let ledger_stop = CancellationToken::new();

        let listener_error = |source| SiteError::Listener {
            addr: config.proxy.listen,
            source,
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
                let reload = source.0.clone().map(|source| {
                    let handle = handle.clone();
                    let reload: crate::power::admin::Reload =
                        Arc::new(move || reload_with(&source, Some(&handle)));
                    reload
                });
                let admin = crate::power::admin::router_with_reload(
                    handle.clone(),
                    power.admin_token.clone(),
                    reload,
                );
                Some((driver, handle, admin))
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
                    .map(|((_, handle, _), power)| (handle.clone(), power)),
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
        let upstream_task = crate::upstream::spawn(
            config.clone(),
            hub.clone(),
            channels,
            registry.clone(),
            upstream_stop.clone(),
        );
        let accept_task = tokio::spawn(listener.run());
        let (power, power_task, admin) = match driver {
            Some((driver, handle, admin)) => {
                let task = tokio::spawn(driver.run(shutdown.child_token()));
                (Some(handle), Some(task), admin)
            }
            None => (None, None, axum::Router::new()),
        };
        let admin = match &economics {
            Some(e) => {
                // The poller and the gauge refresher end with the driver: nothing they do
                // needs the drain.
                tokio::spawn(run_price_poller(
                    e.price_book().clone(),
                    shutdown.child_token(),
                ));
                tokio::spawn(refresh_economics_gauges(e.clone(), shutdown.child_token()));
                admin.merge(crate::economics::router(e.clone()))
            }
            None => admin,
        };
        let (http_addr, http_task) = match http_listener {
            Some((bound, addr)) => {
                let mut exporter = Exporter::new(registry.clone(), config.http.max_worker_series)
                    .with_hub(hub.clone());
                if let Some(handle) = prometheus {
                    exporter = exporter.with_prometheus(handle);
                }
                if config.http.allow_remote_admin && config.power.is_some() {
                    tracing::warn!(
                        listen = %addr,
                        "http.allow_remote_admin: power admin writes are served to any peer \
                         holding the token; keep the network in front of this port trusted"
                    );
                }
                let state =
                    HttpState::new_with_power(Arc::new(exporter), &config.http, power.clone())
                        .closing_with(shutdown.clone())
                        .ledger_at(ledger.as_ref().map(|l| l.path().to_owned()));
                let task = tokio::spawn(crate::http::serve_merged(
                    bound,
                    state,
                    admin,
                    http_stop.clone(),
                ));
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
        let reload = source.0.map(|source| {
            let handle = power.clone();
            let reload: crate::power::admin::Reload =
                Arc::new(move || reload_with(&source, handle.as_ref()));
            reload
        });
        Ok(Site {
            reload: Reloader(reload),
            miner_addr,
            http_addr,
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

    /// Re-reads the configuration (see [`SiteOptions::reload_from`]) and applies its power
    /// budgets and policy; miners stay connected. Pools and listeners are not reloaded.
    ///
    /// # Errors
    /// Why nothing changed: no source, a file that does not validate, or an inventory
    /// change that needs a restart.
    pub fn reload(&self) -> Result<(), String> {
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
