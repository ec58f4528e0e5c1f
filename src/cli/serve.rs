//! `hashgate run`: the proxy (and, when configured, power gating) until SIGINT/SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use hashgate_site::config::Config;
use hashgate_site::site::{Site, SiteOptions};

use super::{EXIT_BAD_CONFIG, RunArgs};

/// Loads the configuration and runs the proxy until a shutdown signal.
///
/// # Errors
/// The runtime could not start, or a port could not be bound.
pub(super) fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = match args.raw_config().and_then(|raw| raw.validate()) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "bad configuration");
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
    };
    // Every miner is a file descriptor: take the hard limit the service manager allows, and
    // say when it is below the connection cap (LimitNOFILE needs raising then).
    let wanted = config.proxy.max_connections.get() as u64 + 64;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted => tracing::warn!(
            limit,
            wanted,
            "open-file limit is below proxy.max_connections + 64; raise LimitNOFILE"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.worker_threads {
        runtime.worker_threads(usize::from(threads));
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(serve(config, args.clone()))
}

async fn serve(config: Config, args: RunArgs) -> anyhow::Result<ExitCode> {
    // One global recorder per process: every `metrics::counter!` in the library lands here.
    let prometheus = match hashgate_site::exporter::install_recorder() {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::warn!(%error, "metrics recorder not installed; /metrics has registry series only");
            None
        }
    };
    let source: hashgate_site::site::ConfigSource = Arc::new(move || {
        args.raw_config()
            .and_then(|raw| raw.validate())
            .map_err(|e| e.to_string())
    });
    // Logged rather than returned, so it is a log line like every other (one JSON object
    // under --log-format json); nothing was announced or left running.
    let site = match Site::start(
        SiteOptions::new(config)
            .metrics(prometheus)
            .reload_from(source),
    )
    .await
    {
        Ok(site) => site,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return Ok(ExitCode::FAILURE);
        }
    };
    say(&format!("hashgate: miners connect to {}", site.miner_addr));
    if site.listeners.len() > 1 || site.listeners.iter().any(|l| l.tls) {
        for l in &site.listeners {
            let tls = if l.tls { " (TLS)" } else { "" };
            say(&format!(
                "hashgate: listener {} on {}{tls}: difficulty {} (range {}..={}), at most {} connections",
                l.name,
                l.addr,
                l.initial_difficulty,
                l.min_difficulty,
                l.max_difficulty,
                l.max_connections
            ));
        }
    }
    if let Some(http_addr) = site.http_addr {
        say(&format!(
            "hashgate: metrics on http://{http_addr}/metrics, status API on http://{http_addr}/api/v1/summary"
        ));
    }
    if let Some(ledger) = &site.ledger {
        say(&format!(
            "hashgate: ledger in {} (hashgate ledger export)",
            ledger.path().display()
        ));
    }
    tokio::select! {
        () = shutdown_signal() => {}
        () = reload_on_hangup(&site) => {}
    }
    let registry = site.registry.clone();
    let stopped = site.shutdown().await;
    // The status server is gone now: the operator's (and a log shipper's) last word on
    // where every share went is this line.
    let pools = registry.upstreams();
    let sum =
        |f: fn(&hashgate_site::stats::UpstreamSnapshot) -> u64| pools.iter().map(f).sum::<u64>();
    let (submitted, accepted, undelivered) = (
        sum(|p| p.submitted),
        sum(|p| p.accepted),
        sum(|p| p.undelivered),
    );
    let rejected = sum(|p| p.rejected.iter().sum());
    tracing::info!(
        submitted,
        accepted,
        rejected,
        undelivered,
        "stopped; shares sent to pools: accepted, rejected and undelivered (with reason in /metrics until now)"
    );
    say(&format!(
        "hashgate: stopped; shares sent to pools {submitted}: accepted {accepted}, rejected {rejected}, undelivered {undelivered}"
    ));
    stopped?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a line for the operator; a closed stdout (e.g. a pipe whose reader left) must not
/// take the proxy down with it, so write errors are ignored.
pub(crate) fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// On each SIGHUP, re-reads and validates the configuration and applies its pools, power
/// inventory, budgets and policy ([`Site::reload`]); a file that does not validate is
/// reported and the running settings are kept. Miners stay connected. Changed settings
/// that need a restart are named. Never resolves (unless SIGHUP cannot be watched).
async fn reload_on_hangup(site: &Site) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => hangup,
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGHUP; reload by restarting");
                return std::future::pending().await;
            }
        };
        while hangup.recv().await.is_some() {
            // Reads a file: off the async workers.
            let result = tokio::task::block_in_place(|| site.reload());
            // The site logs the outcome (and counts it); this is the terminal's copy.
            match result {
                Ok(report) => say(&format!("hashgate: reloaded: {}", report.summary())),
                Err(error) => say(&format!(
                    "hashgate: reload refused, running settings kept: {error}"
                )),
            }
        }
    }
    std::future::pending().await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (service managers).
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; Ctrl-C still works");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
