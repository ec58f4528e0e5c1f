//! The assembled proxy: registry, hub, upstream manager and miner listener, started from one
//! validated [`Config`] and stopped by one [`CancellationToken`].
//!
//! `hashgate run`, `hashgate demo` and the end-to-end tests all start the proxy through
//! [`Site::start`], so what is tested is what runs.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::downstream::{Listener, ListenerCounters};
use crate::exporter::Exporter;
use crate::http::{HttpConfig, HttpState};
use crate::hub::Hub;
use crate::stats::Registry;

/// A running proxy.
#[derive(Debug)]
pub struct Site {
    /// Where miners connect (the real port when configured with port 0).
    pub miner_addr: SocketAddr,
    /// Every miner and pool, for status output, metrics and the API.
    pub registry: Arc<Registry>,
    /// Channels and jobs.
    pub hub: Arc<Hub>,
    /// Accept-loop counters (accepted, refused, sessions ended by reason).
    pub listener: Arc<ListenerCounters>,
    /// Cancelling it begins a graceful shutdown.
    pub shutdown: CancellationToken,
    accept_task: JoinHandle<io::Result<()>>,
    upstream_task: JoinHandle<()>,
    http_task: Option<JoinHandle<io::Result<()>>>,
}

/// Upstream connections per pool the hub may open: enough for the connection cap with the
/// smallest (1-byte) prefix, so the cap, not the prefix space, is what limits miners.
fn max_channels(config: &Config) -> usize {
    config.proxy.max_connections.get().div_ceil(256).max(1)
}

impl Site {
    /// Binds the miner listener (before anything connects upstream, so a bad address fails
    /// fast), starts the upstream manager and begins accepting miners.
    ///
    /// # Errors
    /// Binding the listen address failed.
    pub async fn start(
        config: Arc<Config>,
        registry: Arc<Registry>,
        shutdown: CancellationToken,
    ) -> io::Result<Site> {
        let (hub, channels) = Hub::new(max_channels(&config));
        let listener = Listener::bind(&config, hub.clone(), registry.clone(), shutdown.clone())?;
        let miner_addr = listener.local_addr()?;
        let counters = listener.counters();
        let upstream_task = crate::upstream::spawn(
            config.clone(),
            hub.clone(),
            channels,
            registry.clone(),
            shutdown.clone(),
        );
        let accept_task = tokio::spawn(listener.run());
        tracing::info!(%miner_addr, pools = config.pools.len(), "hashgate proxy listening");
        Ok(Site {
            miner_addr,
            registry,
            hub,
            listener: counters,
            shutdown,
            accept_task,
            upstream_task,
            http_task: None,
        })
    }

    /// Starts the status server (`/metrics`, `/api/v1/...`) on `http.listen`, with `extra`
    /// routes (the power admin API) on the same listener; returns the bound address.
    ///
    /// `prometheus` is the process-wide recorder's handle (installed once per process by
    /// the binary); without it `/metrics` carries the registry's series only.
    ///
    /// # Errors
    /// Binding the address failed.
    pub async fn start_http(
        &mut self,
        http: &HttpConfig,
        prometheus: Option<PrometheusHandle>,
        extra: Router,
    ) -> io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(http.listen).await?;
        let addr = listener.local_addr()?;
        let mut exporter =
            Exporter::new(self.registry.clone(), http.max_worker_series).with_hub(self.hub.clone());
        if let Some(handle) = prometheus {
            exporter = exporter.with_prometheus(handle);
        }
        let state = HttpState::new(Arc::new(exporter), http);
        self.http_task = Some(tokio::spawn(crate::http::serve_merged(
            listener,
            state,
            extra,
            self.shutdown.clone(),
        )));
        Ok(addr)
    }

    /// Waits until shutdown has been requested and both sides have finished: miner
    /// sessions closed, pending upstream submits answered or counted within the grace period.
    pub async fn finished(self) {
        self.shutdown.cancelled().await;
        match self.accept_task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "miner listener failed"),
            Err(error) => tracing::error!(%error, "miner listener task panicked"),
        }
        if let Err(error) = self.upstream_task.await {
            tracing::error!(%error, "upstream task panicked");
        }
        if let Some(task) = self.http_task {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "status server failed"),
                Err(error) => tracing::error!(%error, "status server task panicked"),
            }
        }
    }
}
