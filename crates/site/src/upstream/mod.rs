//! The upstream side: connections to the pools, submit forwarding and failover.
//!
//! [`spawn`] starts a manager that serves every [`Channel`](crate::hub::Channel) the hub
//! opens. Each channel gets its own task (`serve.rs`) holding one connection per wanted
//! pool (`connection/`): the active pool's jobs are published to the channel's miners,
//! the next pool is kept subscribed with its latest job ready, and a failed or silent pool
//! is replaced at once by that backup (its job published with `clean_jobs = true`) and
//! retried with back-off until it can be failed back to.
//!
//! | file | owns | does I/O? |
//! |---|---|---|
//! | `manager.rs` | [`spawn`]: one task per channel, shutdown | spawns tasks |
//! | `serve.rs` | one channel: connections per pool, publishing, switching | spawns connections |
//! | `connection/` | the socket task of one pool connection: connect, a thin loop feeding its [`PoolSession`](session) lines, shares and ticks, writing what it encoded, the shutdown grace | TCP |
//! | `session/` | `PoolSession`, the pool side of one SV1 connection without I/O: handshake, jobs, difficulty and suggestions, health verdicts, redirects (`mod.rs`); shares out, verdicts back, per-miner names, final accounting (`submit.rs`); tested in simulated time (`session_tests/`) | no |
//! | `sv2/` | Stratum V2 pools: the Noise connection and a sans-I/O session producing the same work and taking the same shares as the SV1 one | TCP (`connection.rs`) |
//! | `suggest.rs` | which difficulty to suggest to a pool ([`Suggester`](suggest)) | no |
//! | `event.rs` | what a connection hands its channel server: work, how it ended | no |
//! | `failover.rs` | which pool is active, which to connect or close ([`Failover`]) | no |
//! | `health.rs` | when silence, a job drought or a reject run means down, not counting the proxy's own stalls ([`Health`]) | no |
//! | `backoff.rs` | reconnect delays ([`Backoff`]) | no |
//! | `pending.rs` | submits awaiting answers, pool verdicts, worker names | no |
//! | `sizing.rs` | the extranonce split per pool ([`plan_for`]) | no |
//! | `error.rs` | [`UpstreamError`] | no |

mod backoff;
mod connection;
mod error;
mod event;
mod failover;
mod health;
mod manager;
mod pending;
mod serve;
mod session;
mod sizing;
mod suggest;
mod sv2;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, PoolConfig};
use crate::hub::Hub;
use crate::stats::Registry;
use hashgate_protocol::extranonce::SplitLimits;

pub use manager::{PoolReload, spawn, spawn_reloadable};
pub use pending::{Pending, verdict};
pub use session::USER_AGENT;

/// Longest a shutdown waits for the pool's answers to shares already sent (the submit
/// timeout when shorter); the rest are counted as `shutdown`.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What every channel server and connection shares.
#[derive(Debug)]
struct UpstreamContext {
    /// The site configuration.
    config: Arc<Config>,
    /// Where jobs are published and miner sizes live.
    hub: Arc<Hub>,
    /// Per-pool counters.
    registry: Arc<Registry>,
    /// The proxy's shutdown.
    shutdown: CancellationToken,
    /// Serialises "read the miner sizes, maybe change them" across connections, so two
    /// pools answering at once cannot both fix the sizes.
    sizing: Mutex<()>,
    /// Next connection number (process-unique, for `UpstreamLink::connection`).
    next_conn: AtomicU64,
    /// Bumped whenever a channel resizes the miners, so every other channel republishes
    /// its job under the new sizes at once instead of at the pool's next notify.
    resized: watch::Sender<u64>,
    /// The pools and failover timing in force: the file's at start, replaced by a reload;
    /// every channel server follows it (`config.pools` is the start-up list only).
    pools: watch::Sender<Arc<PoolSet>>,
}

/// What a reload can change on the upstream side without touching a miner.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSet {
    /// Pools in failover order.
    pub pools: Vec<PoolConfig>,
    /// Each pool group's pools, by name in the group's failover order (`None`: every pool).
    pub groups: Vec<Option<Vec<String>>>,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// How long a recovered preferred pool must stay healthy before miners go back.
    pub failback_after: Duration,
}

impl PoolSet {
    /// The pool list and reloadable failover timing of `config`.
    pub fn of(config: &Config) -> PoolSet {
        PoolSet {
            pools: config.pools.clone(),
            groups: config
                .split
                .groups
                .iter()
                .map(|g| g.pools.clone())
                .collect(),
            reconnect_min: config.failover.reconnect_min,
            reconnect_max: config.failover.reconnect_max,
            failback_after: config.failover.failback_after,
        }
    }

    /// The pools of group `group`, in its failover order.
    pub fn group_pools(&self, group: usize) -> Vec<PoolConfig> {
        match self.groups.get(group) {
            Some(Some(names)) => names
                .iter()
                .filter_map(|n| self.pools.iter().find(|p| p.name == *n).cloned())
                .collect(),
            Some(None) => self.pools.clone(),
            None => Vec::new(),
        }
    }

    /// What changes from `self` to `new`, one phrase each (`pool "b" added`, ...); empty
    /// when nothing does.
    pub fn describe_change(&self, new: &PoolSet) -> Vec<String> {
        let mut out = Vec::new();
        for p in &new.pools {
            match self.pools.iter().find(|o| o.name == p.name) {
                None => out.push(format!("pool \"{}\" added", p.name)),
                Some(o) if o != p => out.push(format!("pool \"{}\" changed", p.name)),
                Some(_) => {}
            }
        }
        for o in &self.pools {
            if !new.pools.iter().any(|p| p.name == o.name) {
                out.push(format!("pool \"{}\" removed", o.name));
            }
        }
        let names = |set: &PoolSet| set.pools.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        let (old_order, new_order) = (names(self), names(new));
        if out.is_empty() && old_order != new_order {
            out.push(format!("pool order now {}", new_order.join(", ")));
        }
        if self.groups != new.groups {
            out.push("pool group membership".to_owned());
        }
        if (self.reconnect_min, self.reconnect_max, self.failback_after)
            != (new.reconnect_min, new.reconnect_max, new.failback_after)
        {
            out.push("failover timing".to_owned());
        }
        out
    }
}

impl UpstreamContext {
    fn sizing_lock(&self) -> MutexGuard<'_, ()> {
        // Guards no data, so a poisoned lock is as good as a clean one.
        self.sizing.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn split_limits(&self) -> SplitLimits {
        SplitLimits {
            max_miner_extranonce2: usize::from(self.config.proxy.max_miner_extranonce2),
            ..SplitLimits::default()
        }
    }

    fn next_conn(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}
