//! The Prometheus exporter: renders the `metrics` recorder's output (submit latency
//! histogram, malformed lines, power controller) followed by per-miner, per-pool and
//! site series read from the stats [`Registry`] at scrape time.
//!
//! Nothing here runs on the submit path: sessions only bump atomics in their
//! [`MinerStats`](crate::stats::MinerStats); the exporter reads snapshots when scraped.
//! Metric names and labels are listed in `docs/METRICS.md` and pinned by
//! `tests/metrics/metrics_names.rs`.

pub mod process;
mod render;
pub mod text;
pub mod workers;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::downstream::ListenerStatus;
use crate::hub::Hub;
use crate::stats::Registry;

use workers::SeriesSlots;

/// Name of the submit round-trip histogram the upstream side records with `histogram!`.
pub const SUBMIT_LATENCY: &str = "hashgate_upstream_submit_latency_seconds";

/// Times a pool connection gave up per-miner worker names for the account, by pool and
/// reason (`refused`, `unanswered`).
pub const UPSTREAM_WORKER_FALLBACKS: &str = "hashgate_upstream_worker_fallbacks_total";

/// TLS handshakes with a pool that failed, by pool and kind (`expired`, `not_yet_valid`,
/// `name_mismatch`, `unknown_issuer`, `pin_mismatch`, `handshake_timeout`, `other`).
pub const UPSTREAM_TLS_ERRORS: &str = "hashgate_upstream_tls_errors_total";

/// Seconds until a TLS pool's leaf certificate expires (negative once it has), by pool, set
/// at each handshake (seconds, Prometheus' base unit, rather than days).
pub const UPSTREAM_TLS_CERT_EXPIRY_SECONDS: &str = "hashgate_upstream_tls_cert_expiry_seconds";

/// Stratum V2 pool connections whose Noise handshake failed (a wrong authority key, a pool
/// that does not speak SV2, no answer in time), by pool.
pub const UPSTREAM_SV2_HANDSHAKE_FAILURES: &str = "hashgate_upstream_sv2_handshake_failures_total";

/// Buckets of [`SUBMIT_LATENCY`], seconds: a pool on the same continent answers in tens of
/// milliseconds, one across an ocean in a few hundred; past 10 s it is as good as lost.
pub const SUBMIT_LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A Prometheus recorder set up for hashgate's histograms (true histograms with
/// [`SUBMIT_LATENCY_BUCKETS`], not summaries), not installed.
///
/// # Errors
/// Never in practice: only an empty bucket list is refused.
pub fn recorder_builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new().set_buckets_for_metric(
        Matcher::Full(SUBMIT_LATENCY.to_owned()),
        &SUBMIT_LATENCY_BUCKETS,
    )
}

/// Installs the Prometheus recorder as the process-wide `metrics` recorder and describes
/// the metrics recorded through it; call once at start-up.
///
/// # Errors
/// [`BuildError`] when a global recorder is already installed.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    process::mark_start();
    let handle = recorder_builder()?.install_recorder()?;
    describe();
    Ok(handle)
}

/// `# HELP` text (and unit) for every series recorded through the `metrics` macros: a
/// family without HELP makes `promtool check metrics` fail, and the dashboard's tooltips
/// come from it.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        SUBMIT_LATENCY,
        Unit::Seconds,
        "Round trip of a share submitted to the pool, by pool."
    );
    describe_gauge!(
        crate::ledger::task::HOUR_ENERGY,
        "Energy of the current hour so far, joules, by container and source (miners: their integrated readings; meter: the feed meter), from the ledger at its last flush."
    );
    describe_gauge!(
        crate::ledger::task::HOUR_WORK,
        "Share-proven work of the current hour so far, hashes (accepted difficulty x 2^32), by container, from the ledger at its last flush."
    );
    describe_counter!(
        crate::ledger::task::FLUSHES,
        "Ledger flushes by result (ok, error); an error keeps the figures for the next flush."
    );
    describe_counter!(
        "hashgate_upstream_redirects_refused_total",
        "client.reconnect requests to a host other than the pool's own or its reconnect_hosts, refused, by pool."
    );
    describe_counter!(
        UPSTREAM_SV2_HANDSHAKE_FAILURES,
        "Stratum V2 pool connections whose Noise handshake failed (wrong authority key, not an SV2 pool, no answer), by pool."
    );
    describe_counter!(
        UPSTREAM_WORKER_FALLBACKS,
        "Pool connections on which per-miner worker names were given up for the account, by pool and reason."
    );
    describe_counter!(
        UPSTREAM_TLS_ERRORS,
        "TLS handshakes with a pool that failed, by pool and kind (expired, not_yet_valid, name_mismatch, unknown_issuer, pin_mismatch, handshake_timeout, other); the pool is not used meanwhile."
    );
    describe_gauge!(
        UPSTREAM_TLS_CERT_EXPIRY_SECONDS,
        Unit::Seconds,
        "Seconds until the TLS pool's leaf certificate expires (negative once expired), by pool, as of its last handshake."
    );
    describe_counter!(
        "hashgate_channels_closed_total",
        "Upstream channels closed after staying empty for the idle grace."
    );
    describe_counter!(
        "hashgate_downstream_malformed_total",
        "Lines from miners that could not be parsed."
    );
    describe_counter!(
        "hashgate_downstream_accepted_total",
        "Miner connections accepted."
    );
    describe_counter!(
        "hashgate_downstream_refused_total",
        "Miner connections refused, by reason (connection cap, budget of unauthorized connections)."
    );
    describe_counter!(
        "hashgate_downstream_disconnects_total",
        "Miner sessions ended, by reason."
    );
    describe_counter!(
        "hashgate_downstream_accept_errors_total",
        "Errors accepting miner connections, by kind (fd_exhausted, other)."
    );
    describe_counter!(
        crate::site::CONFIG_RELOADS,
        "Configuration reloads (SIGHUP or POST /api/v1/reload), by result (applied, refused)."
    );
    describe_gauge!(
        crate::site::CONFIG_LAST_RELOAD,
        Unit::Seconds,
        "Unix time of the last configuration reload that was applied."
    );
    describe_counter!(
        crate::power::admin::ADMIN_AUTH_FAILURES,
        "Admin API writes refused, by reason (missing or wrong bearer token, writes disabled)."
    );
    describe_counter!(
        "hashgate_power_actions_total",
        "Power controller decisions, by action (sleep, wake, blocked) and reason."
    );
    describe_counter!(
        "hashgate_power_meter_fallback_ticks_total",
        "Controller ticks that estimated a container's load from miners because its meter was unusable, by reason."
    );
    describe_counter!(
        "hashgate_modbus_errors_total",
        "Modbus operations (reads, coil writes) that failed after their attempts, by kind (connect, timeout, transport, exception, short_reply, decode, implausible, read_back, invalid)."
    );
    describe_gauge!(
        crate::power::driver::METER_UP,
        "1 while the container's meter (feed or it) gave a reading at the last tick, else 0."
    );
    describe_gauge!(
        "hashgate_container_pue",
        "Power usage effectiveness of the container at the last tick: facility over IT power (NaN while unknown; see hashgate_container_pue_source)."
    );
    describe_gauge!(
        "hashgate_container_pue_hourly",
        "PUE of the container over the last complete UTC hour: facility over IT energy (NaN while unknown)."
    );
    describe_gauge!(
        "hashgate_container_pue_source",
        "1 for the source each PUE input (facility, it) comes from now (meter, it_plus_auxiliary, it_meter, miners, unknown), 0 for the others."
    );
    describe_gauge!(
        "hashgate_container_facility_power_watts",
        "Facility power of the container used for PUE (feed meter, or IT plus auxiliary load), watts; NaN while unknown."
    );
    describe_gauge!(
        "hashgate_container_it_power_watts",
        "IT power of the container used for PUE (IT meter, or the miners' reported power), watts; NaN while unknown."
    );
    describe_gauge!(
        "hashgate_site_pue",
        "Power usage effectiveness of the site at the last tick: sum of facility over sum of IT power (NaN while any container's is unknown)."
    );
    describe_gauge!(
        "hashgate_site_pue_hourly",
        "PUE of the site over the last complete UTC hour (NaN while unknown)."
    );
    describe_gauge!(
        "hashgate_container_power_watts",
        "Fail-safe load estimate of the container at the last tick, watts."
    );
    describe_gauge!(
        "hashgate_container_budget_watts",
        "Power budget in force for the container (configured or overridden), watts."
    );
    describe_gauge!(
        "hashgate_container_projected_power_watts",
        "Load expected once pending sleep and wake orders take effect, watts."
    );
    describe_gauge!(
        "hashgate_container_inlet_celsius",
        "Container inlet temperature, degrees Celsius."
    );
    describe_gauge!(
        "hashgate_container_miners_asleep",
        "Miners of the container the controller holds asleep, by reason kind (economic, power, temperature, manual)."
    );
    describe_gauge!(
        "hashgate_hashprice",
        "Expected revenue per TH/s per day in the economics currency: (subsidy + fees) x (1 - pool fee) / (difficulty x 2^32) x 10^12 x 86400 x price."
    );
    describe_gauge!(
        "hashgate_coin_price",
        "Coin price per BTC in force, in the economics currency (config or HTTP source)."
    );
    describe_gauge!(
        "hashgate_price_stale",
        "1 while there is no coin price or it is older than economics.price_max_age_secs (the economic rule holds its decisions), else 0."
    );
    describe_gauge!(
        "hashgate_price_age_seconds",
        Unit::Seconds,
        "Time since the coin price was fetched (0 for a fixed price)."
    );
    describe_counter!(
        "hashgate_price_fetch_failures_total",
        "Coin price polls that failed, by reason (transport, status, body); the last good price stays until stale."
    );
    describe_counter!(
        "hashgate_economics_bad_jobs_total",
        "Economic evaluations whose pool job gave no block height or difficulty (the economic rule holds)."
    );
    describe_gauge!(
        "hashgate_model_shutdown_price",
        "Coin price at which a model's revenue equals its energy cost (mean over its miners' J/TH, tariffs and PUE), by model and currency."
    );
    describe_gauge!(
        "hashgate_model_break_even_tariff_per_kwh",
        "Electricity price per kWh at which a model breaks even at the current coin price, by model and currency."
    );
    describe_gauge!(
        "hashgate_container_tariff_per_kwh",
        "Electricity price per kWh in force for the container now (time-of-use tariff), by container and currency."
    );
    describe_gauge!(
        "hashgate_economics_pue",
        "Power usage effectiveness used for the container's energy cost: metered feed over miner power, else 1 + economics.overhead."
    );
    describe_gauge!(
        "hashgate_container_hot",
        "1 while the container is over its temperature limit, else 0."
    );
    describe_gauge!(
        "hashgate_container_fans_running",
        "Exhaust fan banks switched on in the container at the last climate tick."
    );
    describe_gauge!(
        "hashgate_container_pump_on",
        "1 while the container's water-curtain pump is switched on, else 0."
    );
    describe_gauge!(
        "hashgate_container_humidity_percent",
        "Relative humidity of the air entering the container's curtain, percent."
    );
    describe_gauge!(
        "hashgate_container_climate_alarm",
        "1 while the climate alarm (sensors_lost, humidity_lost, control_lost, over_temperature_all_fans) is raised for the container, else 0."
    );
    describe_counter!(
        crate::power::driver::CLIMATE_READINGS_REJECTED,
        "Climate sensor values dropped as implausible (outside -40..90 degrees Celsius or 0..100 percent), by container."
    );
    describe_gauge!(
        "hashgate_container_stuck_over_budget",
        "1 while the container is over budget and no miner can be put to sleep, else 0."
    );
    describe_gauge!(
        "hashgate_miner_power_state",
        "1 for the power state the controller holds the miner in (asleep, awake, waking, falling_asleep, maintenance), 0 for the others."
    );
    describe_gauge!(
        "hashgate_miner_counted_power_watts",
        "Power the controller counts for the miner, watts."
    );
    describe_gauge!(
        crate::power::driver::POWER_INFO,
        "1 per worker name whose connections belong to the inventory miner (by inventory worker or management IP); joins power series (miner) to share series (worker)."
    );
    describe_gauge!(
        crate::power::driver::ALARM_GAUGE,
        "1 while the alarm is raised for the inventory miner, else 0 (every alarm has a series)."
    );
}

/// Renders `/metrics`: the recorder's series, then those read from the registry.
#[derive(Debug)]
pub struct Exporter {
    registry: Arc<Registry>,
    /// For extranonce space used per channel; absent in tests without a proxy.
    hub: Option<Arc<Hub>>,
    /// The miner listeners, for their connections and refusals; empty in tests without a
    /// proxy.
    listeners: Vec<Arc<ListenerStatus>>,
    /// The installed recorder's handle; absent when nothing records through `metrics`.
    prometheus: Option<PrometheusHandle>,
    /// Which worker names own a series; shared by every scrape.
    slots: Mutex<SeriesSlots>,
}

impl Exporter {
    /// An exporter over `registry`, giving at most `max_worker_series` worker names a
    /// series of their own.
    pub fn new(registry: Arc<Registry>, max_worker_series: usize) -> Exporter {
        process::mark_start();
        Exporter {
            registry,
            hub: None,
            listeners: Vec::new(),
            prometheus: None,
            slots: Mutex::new(SeriesSlots::new(max_worker_series)),
        }
    }

    /// Adds the hub, for extranonce space used.
    pub fn with_hub(mut self, hub: Arc<Hub>) -> Exporter {
        self.hub = Some(hub);
        self
    }

    /// Adds the miner listeners, for their series and `/api/v1/listeners`.
    pub fn with_listeners(mut self, listeners: Vec<Arc<ListenerStatus>>) -> Exporter {
        self.listeners = listeners;
        self
    }

    /// The miner listeners, in configuration order.
    pub fn listeners(&self) -> &[Arc<ListenerStatus>] {
        &self.listeners
    }

    /// Adds the recorder whose output leads each scrape.
    pub fn with_prometheus(mut self, handle: PrometheusHandle) -> Exporter {
        self.prometheus = Some(handle);
        self
    }

    /// The registry read at each scrape.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The hub, if given.
    pub fn hub(&self) -> Option<&Arc<Hub>> {
        self.hub.as_ref()
    }

    /// Drains the recorder's histogram buffers; call every few seconds so memory stays
    /// bounded between scrapes.
    pub fn run_upkeep(&self) {
        if let Some(handle) = &self.prometheus {
            handle.run_upkeep();
        }
    }

    /// The whole exposition text, hashrates taken at `now`.
    ///
    /// Takes the registry's view lock while grouping (about a microsecond per miner), so
    /// call it off the async workers (`spawn_blocking`) on a large site.
    pub fn render(&self, now: Instant) -> String {
        let head = self
            .prometheus
            .as_ref()
            .map(PrometheusHandle::render)
            .unwrap_or_default();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let (rows, site) = self.registry.view(now, |live, departed| {
            workers::group(&mut slots, live, departed)
        });
        let channels: Vec<(usize, (u32, u32))> = self
            .hub
            .as_ref()
            .map(|hub| {
                hub.channels()
                    .iter()
                    .map(|c| (c.index(), c.prefix_usage()))
                    .collect()
            })
            .unwrap_or_default();
        render::render(
            head,
            &render::Inputs {
                rows: &rows,
                site: &site,
                slots: &slots,
                upstreams: &self.registry.upstreams(),
                channels: &channels,
                listeners: &self.listeners,
                groups: &self
                    .hub
                    .as_ref()
                    .map(|hub| hub.split().status())
                    .unwrap_or_default(),
            },
        )
    }
}
