//! `hashgate-loadgen split`: the load through an in-process proxy with two pool groups, each
//! a simulated pool, and the split of the work the pools accepted against the weights.
//!
//! Every connection submits at the same rate, so its share-proven hashrate is the same:
//! the weights are met by how many miners each group has, to within one miner.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use hashgate_lab::sim::pool::{SimPool, SimPoolStats};
use hashgate_site::config::{ConfigError, RawConfig};
use hashgate_site::site::{Site, SiteError, SiteOptions};

use super::{LOADGEN_DIFFICULTY, LoadConfig, LoadError, LoadReport, run, sim_pool_config};

/// Why a split run failed.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// A simulated pool did not start.
    #[error("simulated pool: {0}")]
    SimPool(#[source] std::io::Error),
    /// The proxy's configuration was refused (a bad weight).
    #[error("proxy configuration: {0}")]
    Config(#[from] ConfigError),
    /// The proxy did not start or stop cleanly.
    #[error("proxy: {0}")]
    Site(#[from] SiteError),
    /// The load itself.
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// One group's share of the work.
#[derive(Debug, Clone, Serialize)]
pub struct GroupShare {
    /// `main` or `second`.
    pub group: String,
    /// Its weight over both weights.
    pub target: f64,
    /// Shares its pool accepted.
    pub accepted: u64,
    /// Its pool's accepted work (credited difficulty) over both pools'.
    pub achieved: f64,
    /// Miners the balancer moved into it.
    pub moves: u64,
}

/// The load's report and the split at the pools.
#[derive(Debug, Clone, Serialize)]
pub struct SplitReport {
    /// The load through the proxy.
    pub load: LoadReport,
    /// Per group, in configured order.
    pub groups: Vec<GroupShare>,
}

impl fmt::Display for SplitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.load)?;
        writeln!(
            f,
            "split of the work the pools accepted (target in brackets):"
        )?;
        for g in &self.groups {
            writeln!(
                f,
                "  {:<8} {:>6.2} % ({:.2} %)  {} shares, {} miners moved in",
                g.group,
                g.achieved * 100.0,
                g.target * 100.0,
                g.accepted,
                g.moves
            )?;
        }
        Ok(())
    }
}

fn work(stats: &SimPoolStats) -> f64 {
    stats.workers.values().map(|w| w.accepted_difficulty).sum()
}

/// Starts two simulated pools and the proxy with groups `main` (weight `weights.0`) and
/// `second` (`weights.1`), runs `load` through the proxy and counts the work at the pools.
/// The balancer runs every second and may move a miner every `min_move`.
///
/// # Errors
/// See [`SplitError`].
pub async fn run_split(
    mut load: LoadConfig,
    weights: (f64, f64),
    min_move: Duration,
) -> Result<SplitReport, SplitError> {
    let main = SimPool::start(sim_pool_config(Some(Duration::from_secs(5))))
        .await
        .map_err(SplitError::SimPool)?;
    let second = SimPool::start(sim_pool_config(Some(Duration::from_secs(5))))
        .await
        .map_err(SplitError::SimPool)?;
    let d = LOADGEN_DIFFICULTY;
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"loadgen\"\ninitial_difficulty = {d:e}\n\
         upstream_shares_per_sec = 0\nmax_connections = {max}\n\
         [vardiff]\nmin_difficulty = {d:e}\nmax_difficulty = {d:e}\n\
         [[pools]]\nname = \"a\"\nurl = \"stratum+tcp://{a}\"\n\
         [[pools]]\nname = \"b\"\nurl = \"stratum+tcp://{b}\"\n\
         [[pool_groups]]\nname = \"main\"\nweight = {w0:e}\npools = [\"a\"]\n\
         [[pool_groups]]\nname = \"second\"\nweight = {w1:e}\npools = [\"b\"]\n\
         [split]\nmin_move_interval_secs = {mv}\nrebalance_interval_secs = 1\n",
        max = load.connections.get() + 64,
        a = main.addr(),
        b = second.addr(),
        w0 = weights.0,
        w1 = weights.1,
        mv = min_move.as_secs_f64(),
    );
    let config = Arc::new(RawConfig::parse(&text)?.validate()?);
    let site = Site::start(SiteOptions::new(config).without_http()).await?;
    load.target = site.miner_addr;
    let (main_before, second_before) = (main.stats(), second.stats());
    let report = run(load).await;
    let (main_after, second_after) = (main.stats(), second.stats());
    let hub = site.hub.clone();
    let stopped = site.shutdown().await;
    main.shutdown().await;
    second.shutdown().await;
    let report = report?;
    stopped?;
    let works = [
        work(&main_after) - work(&main_before),
        work(&second_after) - work(&second_before),
    ];
    let accepted = [
        main_after.accepted - main_before.accepted,
        second_after.accepted - second_before.accepted,
    ];
    let total: f64 = works.iter().sum();
    let weight_sum = weights.0 + weights.1;
    let groups = ["main", "second"]
        .iter()
        .enumerate()
        .map(|(g, name)| GroupShare {
            group: (*name).to_owned(),
            target: [weights.0, weights.1][g] / weight_sum,
            accepted: accepted[g],
            achieved: if total > 0.0 { works[g] / total } else { 0.0 },
            moves: hub.split().moves(g),
        })
        .collect();
    Ok(SplitReport {
        load: report,
        groups,
    })
}
