//! What every miner session needs from the configuration, derived once and shared.

use std::time::Duration;

use std::sync::Arc;

use crate::config::{Config, ListenerConfig};
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
    pub vardiff: Arc<VardiffConfig>,
    /// The listener the miner connected to, for logs and the API.
    pub listener: Arc<str>,
    /// The pool group the listener routes its miners to (`None`: the balancer places
    /// them), by its index in `config.split.groups` (checked at load time).
    pub listener_group: Option<usize>,
}

impl Settings {
    /// The session settings of the configuration's first listener (the implicit
    /// `default` one when the file has no `[[listeners]]`).
    #[cfg(test)]
    pub(crate) fn from_config(config: &Config) -> Settings {
        match config.listeners.first() {
            Some(listener) => Settings::for_listener(config, listener),
            None => Settings::for_listener(config, &config.implicit_listener()),
        }
    }

    /// The session settings of miners on `listener`: the site's limits with the port's
    /// difficulty range, starting difficulty and pool group.
    pub(crate) fn for_listener(config: &Config, listener: &ListenerConfig) -> Settings {
        let p = &config.proxy;
        let vardiff = Arc::new(VardiffConfig {
            min_difficulty: listener.min_difficulty,
            max_difficulty: listener.max_difficulty,
            ..config.vardiff.clone()
        });
        Settings {
            setup_timeout: p.setup_timeout,
            idle_timeout: p.idle_timeout,
            max_line_bytes: p.max_line_bytes.get(),
            outbound_queue: p.outbound_queue.get(),
            // Saturate: a window beyond u32 seconds (136 years) means "no limit".
            ntime_window_secs: u32::try_from(p.ntime_window.as_secs()).unwrap_or(u32::MAX),
            initial_difficulty: listener
                .initial_difficulty
                .clamp(vardiff.min_difficulty, vardiff.max_difficulty),
            vardiff,
            listener: listener.name.clone(),
            listener_group: listener
                .pool_group
                .as_deref()
                .and_then(|name| config.split.group_index(name)),
        }
    }
}
