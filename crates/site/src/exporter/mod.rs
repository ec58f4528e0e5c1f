//! The Prometheus exporter: renders the `metrics` recorder's output (submit latency
//! histogram, malformed lines, power controller) followed by per-miner, per-pool and
//! site series read from the stats [`Registry`] at scrape time.
//!
//! Nothing here runs on the submit path: sessions only bump atomics in their
//! [`MinerStats`](crate::stats::MinerStats); the exporter reads snapshots when scraped.
//! Metric names and labels are listed in `docs/METRICS.md` and pinned by
//! `tests/metrics/metrics_names.rs`.

mod render;
pub mod text;
pub mod workers;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::hub::Hub;
use crate::stats::Registry;

use workers::SeriesSlots;

/// Name of the submit round-trip histogram the upstream side records with `histogram!`.
pub const SUBMIT_LATENCY: &str = "hashgate_upstream_submit_latency_seconds";

/// Times a pool connection gave up per-miner worker names for the account, by pool and
/// reason (`refused`, `unanswered`).
pub const UPSTREAM_WORKER_FALLBACKS: &str = "hashgate_upstream_worker_fallbacks_total";

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
    let handle = recorder_builder()?.install_recorder()?;
    describe();
    Ok(handle)
}

/// `# HELP` text for the series recorded through the `metrics` macros.
pub fn describe() {
    metrics::describe_histogram!(
        SUBMIT_LATENCY,
        metrics::Unit::Seconds,
        "Round trip of a share submitted to the pool, by pool."
    );
    metrics::describe_counter!(
        UPSTREAM_WORKER_FALLBACKS,
        "Pool connections that gave up per-miner worker names for the account, by pool and reason (refused, unanswered)."
    );
    metrics::describe_counter!(
        "hashgate_downstream_malformed_total",
        "Lines from miners that could not be parsed."
    );
    metrics::describe_counter!(
        crate::power::admin::ADMIN_AUTH_FAILURES,
        "Admin API writes refused, by reason (missing or wrong bearer token, writes disabled)."
    );
}

/// Renders `/metrics`: the recorder's series, then those read from the registry.
#[derive(Debug)]
pub struct Exporter {
    registry: Arc<Registry>,
    /// For extranonce space used per channel; absent in tests without a proxy.
    hub: Option<Arc<Hub>>,
    /// The installed recorder's handle; absent when nothing records through `metrics`.
    prometheus: Option<PrometheusHandle>,
    /// Which worker names own a series; shared by every scrape.
    slots: Mutex<SeriesSlots>,
}

impl Exporter {
    /// An exporter over `registry`, giving at most `max_worker_series` worker names a
    /// series of their own.
    pub fn new(registry: Arc<Registry>, max_worker_series: usize) -> Exporter {
        Exporter {
            registry,
            hub: None,
            prometheus: None,
            slots: Mutex::new(SeriesSlots::new(max_worker_series)),
        }
    }

    /// Adds the hub, for extranonce space used.
    pub fn with_hub(mut self, hub: Arc<Hub>) -> Exporter {
        self.hub = Some(hub);
        self
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
            },
        )
    }
}
