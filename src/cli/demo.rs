//! `hashgate demo`: the proxy against a simulated site, printing what it does.

use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use hashgate_lab::demo::{self, DemoOptions};
use hashgate_site::config::parse_duration;

use super::serve::{say, shutdown_signal};

/// Demo settings.
#[derive(Debug, Clone, Args)]
pub(crate) struct DemoArgs {
    /// Stop after this long, e.g. `30s`, `2m` (default: until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Time between status lines, e.g. `3s`, `500ms` (at least 100 ms).
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub status_every: Duration,
    /// Real hashes per second each simulated ASIC computes.
    #[arg(long, default_value_t = 4000.0)]
    pub hashrate: f64,
}

/// Runs the demo until the duration ends or Ctrl-C.
///
/// # Errors
/// The simulated site or the proxy could not start.
pub(super) fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let status_interval = Some(args.status_every)
        .filter(|d| *d >= Duration::from_millis(100))
        .ok_or_else(|| anyhow::anyhow!("--status-every must be at least 100ms"))?;
    if !(args.hashrate.is_finite() && args.hashrate >= 100.0) {
        anyhow::bail!("--hashrate must be at least 100 hashes per second");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            on_signal.cancel();
        });
        let options = DemoOptions {
            duration: args.duration,
            status_interval,
            asic_hashrate: args.hashrate,
            prometheus: hashgate_site::exporter::install_recorder().ok(),
            ..DemoOptions::default()
        };
        demo::run(options, shutdown, |line| say(&line)).await?;
        Ok(())
    })
}
