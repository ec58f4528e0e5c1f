//! `hashgate run`: the proxy (and, when configured, power gating) until SIGINT/SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::power::PowerDriver;
use crate::site::Site;
use crate::stats::Registry;

use super::{EXIT_BAD_CONFIG, RunArgs};

/// Loads the configuration and runs the proxy until a shutdown signal.
///
/// # Errors
/// The runtime could not start, or a port could not be bound.
pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = match args.raw_config().and_then(|raw| raw.validate()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("hashgate: bad configuration: {error}");
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let registry = Registry::new();
    let power = config.power.clone();
    let site = Site::start(Arc::new(config), registry.clone(), shutdown.clone()).await?;
    println!("hashgate: miners connect to {}", site.miner_addr);
    let power_task = match power {
        Some(power) => {
            let (driver, _handle) = PowerDriver::from_inventory(power, registry.clone()).await?;
            Some(tokio::spawn(driver.run(shutdown.clone())))
        }
        None => None,
    };
    shutdown_signal().await;
    tracing::info!("shutdown requested: closing miners, delivering pending shares");
    shutdown.cancel();
    site.finished().await;
    if let Some(task) = power_task {
        let _ = task.await;
    }
    Ok(())
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
