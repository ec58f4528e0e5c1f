//! What every miner session needs from the configuration, derived once and shared.

use std::time::Duration;

use crate::config::Config;
use hashgate_protocol::vardiff::VardiffConfig;

/// The session limits and policies, shared by every session through an `Arc`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    /// Subscribe and authorize must both be done this long after connecting.
    pub setup_timeout: Duration,
    /// A miner that sends nothing for this long is dropped.
    pub idle_timeout: Duration,
    /// Longest line accepted from a miner; a longer one disconnects it.
    pub max_line_bytes: usize,
    /// Lines queued towards one miner before it is judged too slow and disconnected.
    pub outbound_queue: usize,
    /// Seconds past the job's ntime a share's ntime may be (exclusive).
    pub ntime_window_secs: u32,
    /// Difficulty a miner starts at, already inside the vardiff bounds.
    pub initial_difficulty: f64,
    /// Per-miner vardiff tuning: the configured interval and bounds, defaults for the rest.
    pub vardiff: std::sync::Arc<VardiffConfig>,
}

impl Settings {
    /// Derives the session settings from a validated configuration.
    pub(crate) fn from_config(config: &Config) -> Settings {
        let p = &config.proxy;
        let vardiff = std::sync::Arc::new(config.vardiff.clone());
        Settings {
            setup_timeout: p.setup_timeout,
            idle_timeout: p.idle_timeout,
            max_line_bytes: p.max_line_bytes.get(),
            outbound_queue: p.outbound_queue.get(),
            // Saturate: a window beyond u32 seconds (136 years) means "no limit".
            ntime_window_secs: u32::try_from(p.ntime_window.as_secs()).unwrap_or(u32::MAX),
            initial_difficulty: p
                .initial_difficulty
                .clamp(vardiff.min_difficulty, vardiff.max_difficulty),
            vardiff,
        }
    }
}
