//! `hashgate loadgen compare`: the same load run directly against a simulated pool and
//! then through the proxy, in one run, so the proxy's added latency and its own CPU and
//! memory are read off one machine state.
//!
//! ```text
//! phase (a):  loadgen ──────────────────────────────> sim pool (in this process)
//! phase (b):  loadgen ──> hashgate run (child process) ──> same sim pool
//! ```
//!
//! The pool hands every connection `pool_difficulty`; the load suggests
//! [`LOADGEN_DIFFICULTY`] in both phases, which the pool honours directly (every share
//! meets it without hashing) and the proxy clamps to its fixed miner difficulty (the
//! same value). The proxy's own upstream connection keeps `pool_difficulty`, so it
//! forwards only the shares that meet it: with the default 2⁻²⁸ about one in 16, as a
//! pool difficulty well above the miners' would on a site.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::proxy_child::{ProxyChild, ProxyExit, ProxySettings, TempConfig};
use super::{LOADGEN_DIFFICULTY, LatencySummary, LoadConfig, LoadError, LoadReport, procfs};
use crate::sim::pool::{SimPool, SimPoolConfig, SimPoolStats};

/// Default pool difficulty: a hash meets it with probability ≈ 2⁻³² / d = 1/16.
pub const DEFAULT_POOL_DIFFICULTY: f64 = 1.0 / (1u64 << 28) as f64;

/// Files besides the connections when both ends of each are in this process.
const FILES_PER_DIRECT_CONNECTION: u64 = 2;

/// How long the proxy has after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What to compare; [`CompareConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// The load of each phase (its `target`, `target_pid` and `suggest_difficulty` are
    /// set per phase).
    pub load: LoadConfig,
    /// The `hashgate` binary to run as the proxy.
    pub proxy_binary: PathBuf,
    /// Difficulty the simulated pool gives the proxy (and sets the forwarded fraction).
    pub pool_difficulty: f64,
    /// How often the pool sends a new job (fan-out is measured on these).
    pub job_interval: Option<Duration>,
    /// Run only the proxy phase: for connection counts whose two ends per connection
    /// would not fit this process's open-files limit.
    pub skip_direct: bool,
    /// `RUST_LOG` for the proxy child: its log lines cost it CPU during the load.
    pub proxy_log: String,
    /// How long the proxy has to print its miner address.
    pub proxy_start_timeout: Duration,
}

impl CompareConfig {
    /// Defaults: pool difficulty 2⁻²⁸, a job every 5 s, both phases, proxy logging
    /// warnings only, 15 s for the proxy to start.
    pub fn new(load: LoadConfig, proxy_binary: PathBuf) -> Self {
        CompareConfig {
            load,
            proxy_binary,
            pool_difficulty: DEFAULT_POOL_DIFFICULTY,
            job_interval: Some(Duration::from_secs(5)),
            skip_direct: false,
            proxy_log: "warn".into(),
            proxy_start_timeout: Duration::from_secs(15),
        }
    }
}

/// Why a comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A load setting is bad or does not fit the open-files limit.
    #[error("load: {0}")]
    Load(#[from] LoadError),
    /// The pool difficulty is not a positive number.
    #[error("pool difficulty must be a positive number, got {0}")]
    BadPoolDifficulty(f64),
    /// The in-process simulated pool could not start.
    #[error("simulated pool: {0}")]
    SimPool(#[source] std::io::Error),
    /// The proxy's temporary config could not be written.
    #[error("cannot write the proxy config {path}: {source}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The proxy binary could not be started.
    #[error("cannot start the proxy {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The proxy started but never named its miner address.
    #[error(
        "the proxy did not start: {reason}; it ended with {status}; its last log lines:\n{stderr}"
    )]
    ProxyStart {
        /// What was missing.
        reason: String,
        /// Its exit status.
        status: String,
        /// Its last stderr lines.
        stderr: String,
    },
    /// One phase could not run at all (no connection set up, for instance).
    #[error("{phase} phase: {source}")]
    Phase {
        /// `direct` or `through proxy`.
        phase: &'static str,
        /// Why.
        #[source]
        source: LoadError,
    },
}

/// The pool's counters over one phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolPhase {
    /// Shares it accepted.
    pub accepted: u64,
    /// Shares it rejected.
    pub rejected: u64,
    /// Connections it accepted.
    pub connections: u64,
    /// Jobs it sent.
    pub jobs: u64,
}

impl PoolPhase {
    fn between(before: &SimPoolStats, after: &SimPoolStats) -> Self {
        PoolPhase {
            accepted: after.accepted.saturating_sub(before.accepted),
            rejected: after.rejected.saturating_sub(before.rejected),
            connections: after
                .connections_total
                .saturating_sub(before.connections_total),
            jobs: after.jobs_created.saturating_sub(before.jobs_created),
        }
    }
}

/// Through-the-proxy minus direct latency, µs (negative where the proxy was faster:
/// noise).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AddedLatency {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Slowest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl AddedLatency {
    /// `proxied − direct`, quantile by quantile.
    pub fn between(direct: &LatencySummary, proxied: &LatencySummary) -> Self {
        AddedLatency {
            p50_us: proxied.p50_us - direct.p50_us,
            p90_us: proxied.p90_us - direct.p90_us,
            p99_us: proxied.p99_us - direct.p99_us,
            p999_us: proxied.p999_us - direct.p999_us,
            max_us: proxied.max_us - direct.max_us,
            mean_us: proxied.mean_us - direct.mean_us,
        }
    }
}

/// The proxy's CPU over its phase (set-up, window and answers), split user / kernel.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuSplit {
    /// Seconds in its own code.
    pub user_s: f64,
    /// Seconds in the kernel (socket reads and writes, mostly).
    pub system_s: f64,
}

/// Both phases and the proxy process.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    /// The simulated pool.
    pub pool: SocketAddr,
    /// The difficulty it gave the proxy.
    pub pool_difficulty: f64,
    /// The miners' difficulty in both phases.
    pub miner_difficulty: f64,
    /// The proxy child's pid.
    pub proxy_pid: u32,
    /// Where the miners connected to it.
    pub proxy_addr: SocketAddr,
    /// Phase (a), straight to the pool (absent with `skip_direct`).
    pub direct: Option<LoadReport>,
    /// The pool's counters over phase (a).
    pub direct_pool: Option<PoolPhase>,
    /// Phase (b), through the proxy (its `target_process` is the proxy).
    pub proxied: LoadReport,
    /// The pool's counters over phase (b): what the proxy forwarded.
    pub proxied_pool: PoolPhase,
    /// Phase (b) latency minus phase (a).
    pub added_latency: Option<AddedLatency>,
    /// The proxy's CPU over phase (b).
    pub proxy_cpu: Option<CpuSplit>,
    /// How the proxy ended.
    pub proxy_exit: ProxyExit,
}

/// Starts the pool and the proxy, runs both phases, stops both.
///
/// # Errors
/// [`CompareError`] when something cannot start or a phase cannot run at all; what goes
/// wrong with single connections or shares is in the report.
pub async fn compare(config: CompareConfig) -> Result<CompareReport, CompareError> {
    config.load.validate()?;
    let d = config.pool_difficulty;
    if !(d.is_finite() && d > 0.0) {
        return Err(CompareError::BadPoolDifficulty(d));
    }
    // Also raises this process's open-files limit before the proxy is spawned, so the
    // child inherits it (`hashgate run` does not raise its own).
    let files_each = if config.skip_direct {
        1
    } else {
        FILES_PER_DIRECT_CONNECTION
    };
    super::check_files(config.load.connections.get(), files_each)?;
    let pool = SimPool::start(SimPoolConfig {
        name: "compare-pool".into(),
        difficulty: config.pool_difficulty,
        honor_suggest_difficulty: true,
        job_interval: config.job_interval,
        // Unbounded growth with every accepted share otherwise.
        share_log_cap: 0,
        ..SimPoolConfig::default()
    })
    .await
    .map_err(CompareError::SimPool)?;
    let result = with_pool(&config, &pool).await;
    pool.shutdown().await;
    result
}

async fn with_pool(config: &CompareConfig, pool: &SimPool) -> Result<CompareReport, CompareError> {
    let settings = ProxySettings {
        pool: pool.addr(),
        miner_difficulty: LOADGEN_DIFFICULTY,
        account: "loadgen".into(),
    };
    let file = TempConfig::write(&settings.toml())?;
    let proxy = ProxyChild::start(
        &config.proxy_binary,
        file.path(),
        &config.proxy_log,
        config.proxy_start_timeout,
    )
    .await?;
    let (pid, proxy_addr) = (proxy.pid, proxy.miner_addr);
    let phases = phases(config, pool, pid, proxy_addr).await;
    let proxy_exit = proxy.stop(STOP_GRACE).await;
    drop(file);
    let phases = phases?;
    let added_latency = phases
        .direct
        .as_ref()
        .map(|d| AddedLatency::between(&d.latency, &phases.proxied.latency));
    Ok(CompareReport {
        pool: pool.addr(),
        pool_difficulty: config.pool_difficulty,
        miner_difficulty: LOADGEN_DIFFICULTY,
        proxy_pid: pid,
        proxy_addr,
        direct: phases.direct,
        direct_pool: phases.direct_pool,
        proxied: phases.proxied,
        proxied_pool: phases.proxied_pool,
        added_latency,
        proxy_cpu: phases.proxy_cpu,
        proxy_exit,
    })
}

/// What the two phases measured.
struct Phases {
    direct: Option<LoadReport>,
    direct_pool: Option<PoolPhase>,
    proxied: LoadReport,
    proxied_pool: PoolPhase,
    proxy_cpu: Option<CpuSplit>,
}

async fn phases(
    config: &CompareConfig,
    pool: &SimPool,
    proxy_pid: u32,
    proxy_addr: SocketAddr,
) -> Result<Phases, CompareError> {
    let load = LoadConfig {
        suggest_difficulty: Some(LOADGEN_DIFFICULTY),
        ..config.load.clone()
    };
    let (direct, direct_pool) = if config.skip_direct {
        (None, None)
    } else {
        let before = pool.stats();
        let report = super::run(LoadConfig {
            target: pool.addr(),
            target_pid: None,
            ..load.clone()
        })
        .await
        .map_err(|source| CompareError::Phase {
            phase: "direct",
            source,
        })?;
        (
            Some(report),
            Some(PoolPhase::between(&before, &pool.stats())),
        )
    };

    let before = pool.stats();
    let cpu_before = procfs::cpu_split(proxy_pid).ok();
    let proxied = super::run(LoadConfig {
        target: proxy_addr,
        target_pid: Some(proxy_pid),
        ..load
    })
    .await
    .map_err(|source| CompareError::Phase {
        phase: "through proxy",
        source,
    })?;
    let cpu_after = procfs::cpu_split(proxy_pid).ok();
    let proxied_pool = PoolPhase::between(&before, &pool.stats());
    let proxy_cpu = match (cpu_before, cpu_after) {
        (Some((u0, s0)), Some((u1, s1))) => Some(CpuSplit {
            user_s: u1.saturating_sub(u0) as f64 / procfs::TICKS_PER_SEC,
            system_s: s1.saturating_sub(s0) as f64 / procfs::TICKS_PER_SEC,
        }),
        _ => None,
    };
    Ok(Phases {
        direct,
        direct_pool,
        proxied,
        proxied_pool,
        proxy_cpu,
    })
}

/// A latency row: its label, and how to read it off a summary and off the difference.
type Quantile = (
    &'static str,
    fn(&LatencySummary) -> f64,
    fn(&AddedLatency) -> f64,
);

/// One table row: a label, the direct and proxied cells, and the difference.
fn row(
    f: &mut fmt::Formatter<'_>,
    label: &str,
    direct: &str,
    proxied: &str,
    added: &str,
) -> fmt::Result {
    writeln!(f, "  {label:<28} {direct:>18} {proxied:>18} {added:>12}")
}

fn us(v: f64) -> String {
    format!("{v:.0}")
}

fn signed_us(v: f64) -> String {
    format!("{v:+.0}")
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

impl fmt::Display for CompareReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.proxied;
        writeln!(
            f,
            "hashgate loadgen compare: {} connections, {:.0} shares/s for {:.1} s per phase",
            p.connections.requested, p.shares.target_rate, p.shares.duration_s
        )?;
        writeln!(
            f,
            "  sim pool {} (difficulty {:e} to the proxy, miners at {:e}); proxy pid {} on {}",
            self.pool, self.pool_difficulty, self.miner_difficulty, self.proxy_pid, self.proxy_addr
        )?;
        let d = self.direct.as_ref();
        let cell = |get: &dyn Fn(&LoadReport) -> String| d.map_or_else(|| "-".into(), get);
        row(f, "", "direct", "through proxy", "added")?;
        row(
            f,
            "ready / held at end",
            &cell(&|r| format!("{} / {}", r.connections.ready, r.connections.held_at_end)),
            &format!("{} / {}", p.connections.ready, p.connections.held_at_end),
            "",
        )?;
        row(
            f,
            "sent / accepted",
            &cell(&|r| format!("{} / {}", r.shares.sent, r.shares.accepted)),
            &format!("{} / {}", p.shares.sent, p.shares.accepted),
            "",
        )?;
        let faults = |r: &LoadReport| {
            format!(
                "{} / {} / {}",
                r.shares.rejected(),
                r.shares.timeouts,
                r.shares.lost_in_flight
            )
        };
        row(
            f,
            "rejected / timeouts / lost",
            &cell(&faults),
            &faults(p),
            "",
        )?;
        let pool_cell = |pp: &PoolPhase| format!("{} / {}", pp.accepted, pp.rejected);
        row(
            f,
            "pool accepted / rejected",
            &self
                .direct_pool
                .as_ref()
                .map_or_else(|| "-".into(), pool_cell),
            &pool_cell(&self.proxied_pool),
            "",
        )?;
        let a = self.added_latency;
        let quantiles: [Quantile; 6] = [
            ("latency p50 (µs)", |l| l.p50_us, |a| a.p50_us),
            ("latency p90 (µs)", |l| l.p90_us, |a| a.p90_us),
            ("latency p99 (µs)", |l| l.p99_us, |a| a.p99_us),
            ("latency p99.9 (µs)", |l| l.p999_us, |a| a.p999_us),
            ("latency max (µs)", |l| l.max_us, |a| a.max_us),
            ("latency mean (µs)", |l| l.mean_us, |a| a.mean_us),
        ];
        for (label, get, added) in quantiles {
            row(
                f,
                label,
                &cell(&|r| us(get(&r.latency))),
                &us(get(&p.latency)),
                &a.as_ref().map_or_else(String::new, |a| signed_us(added(a))),
            )?;
        }
        row(
            f,
            "send lag p99 (µs)",
            &cell(&|r| us(r.shares.send_lag.p99_us)),
            &us(p.shares.send_lag.p99_us),
            "",
        )?;
        row(
            f,
            "all ready / setup p50 (ms)",
            &cell(&|r| {
                format!(
                    "{} / {}",
                    opt_ms(r.connections.all_ready_ms),
                    opt_ms(r.connections.setup_p50_ms)
                )
            }),
            &format!(
                "{} / {}",
                opt_ms(p.connections.all_ready_ms),
                opt_ms(p.connections.setup_p50_ms)
            ),
            "",
        )?;
        row(
            f,
            "fan-out widest spread (ms)",
            &cell(&|r| opt_ms(r.fanout.max_spread_us.map(|us| us / 1000.0))),
            &opt_ms(p.fanout.max_spread_us.map(|us| us / 1000.0)),
            "",
        )?;
        if p.reconnect.is_some() {
            let storm = |r: &LoadReport| {
                r.reconnect.as_ref().map_or_else(
                    || "-".into(),
                    |s| {
                        format!(
                            "{}/{} in {}",
                            s.ready,
                            s.connections,
                            opt_ms(s.all_ready_ms)
                        )
                    },
                )
            };
            row(f, "reconnect storm (ms)", &cell(&storm), &storm(p), "")?;
        }
        row(
            f,
            "loadgen + pool CPU (%)",
            &cell(&|r| opt_ms(r.loadgen_cpu_percent)),
            &opt_ms(p.loadgen_cpu_percent),
            "",
        )?;
        if let Some(t) = &p.target_process {
            writeln!(
                f,
                "  proxy: CPU {}% of a core in the window; RSS {} → {} (idle) → {} KiB; {} B per idle connection",
                opt_ms(t.cpu_percent),
                t.rss_before_kib,
                t.rss_connected_kib,
                t.rss_after_kib,
                t.bytes_per_connection
                    .map_or_else(|| "-".into(), |b| format!("{b:.0}"))
            )?;
            if let Some(kib) = t.rss_after_reconnect_kib {
                writeln!(f, "  proxy RSS after the reconnect storm: {kib} KiB")?;
            }
        }
        if let Some(c) = &self.proxy_cpu {
            writeln!(
                f,
                "  proxy CPU over its phase: {:.2} s user, {:.2} s system",
                c.user_s, c.system_s
            )?;
        }
        let e = &self.proxy_exit;
        writeln!(
            f,
            "  proxy exit: {} ({}), {} log lines",
            e.status,
            if e.graceful {
                "clean after SIGTERM"
            } else {
                "NOT clean"
            },
            e.log_lines
        )?;
        for line in &e.log_tail {
            writeln!(f, "  proxy| {line}")?;
        }
        for (phase, r) in [("direct", d), ("proxy", Some(p))] {
            for (message, n) in r.map(|r| r.errors.as_slice()).unwrap_or_default() {
                writeln!(f, "  ! {phase}: {n}× {message}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pool_difficulty_forwards_one_share_in_sixteen() {
        // A hash meets difficulty d with probability 2^-32 / d.
        let p = 2f64.powi(-32) / DEFAULT_POOL_DIFFICULTY;
        assert!((p - 1.0 / 16.0).abs() < 1e-12, "{p}");
        assert!(DEFAULT_POOL_DIFFICULTY > 65535.0 * 2f64.powi(-48) * 10.0);
    }

    #[test]
    fn added_latency_is_proxied_minus_direct() {
        let direct = LatencySummary {
            count: 10,
            mean_us: 100.0,
            p50_us: 90.0,
            p90_us: 150.0,
            p99_us: 300.0,
            p999_us: 500.0,
            max_us: 800.0,
        };
        let proxied = LatencySummary {
            count: 10,
            mean_us: 130.0,
            p50_us: 110.0,
            p90_us: 200.0,
            p99_us: 250.0,
            p999_us: 900.0,
            max_us: 1800.0,
        };
        let a = AddedLatency::between(&direct, &proxied);
        assert_eq!(a.p50_us, 20.0);
        assert_eq!(a.p90_us, 50.0);
        assert_eq!(a.p99_us, -50.0);
        assert_eq!(a.p999_us, 400.0);
        assert_eq!(a.max_us, 1000.0);
        assert_eq!(a.mean_us, 30.0);
    }
}
