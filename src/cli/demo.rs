//! `hashgate demo`: the proxy against a simulated site, printing what it does.

use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use hashgate_lab::demo::{self, DemoOptions};

use super::serve::{say, shutdown_signal};

/// Demo settings.
#[derive(Debug, Clone, Args)]
pub(crate) struct DemoArgs {
    /// Stop after this long, e.g. `30s`, `2m` (default: until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Seconds between status lines.
    #[arg(long, default_value_t = 3.0)]
    pub status_every: f64,
    /// Real hashes per second each simulated ASIC computes.
    #[arg(long, default_value_t = 4000.0)]
    pub hashrate: f64,
}

/// Parses `90`, `90s`, `2m` or `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 2m or 1h"))?;
    let secs = match unit {
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?}: use s, m or h")),
    };
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} must be a positive duration"))
}

/// Runs the demo until the duration ends or Ctrl-C.
///
/// # Errors
/// The simulated site or the proxy could not start.
pub(super) fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let status_interval = Duration::try_from_secs_f64(args.status_every)
        .ok()
        .filter(|d| *d >= Duration::from_millis(100))
        .ok_or_else(|| anyhow::anyhow!("--status-every must be at least 0.1 seconds"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_operators_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-3s").is_err());
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
