//! `hashgate-loadgen compare`: the same load run directly against a simulated pool and
//! then through the proxy, in one run, so the proxy's added latency and its own CPU and
//! memory are read off one machine state; optionally also through a second hashgate
//! binary (a before/after build) and through aiostratum-proxy, each against the same pool.
//!
//! ```text
//! phase (a):  loadgen ──────────────────────────────────────> sim pool (in this process)
//! phase (b):  loadgen ──> hashgate run (child process) ──────> same sim pool
//! phase (c):  loadgen ──> hashgate run, --proxy-binary-b ────> same sim pool
//! phase (d):  loadgen ──> aiostratum-proxy (Python child) ───> same sim pool
//! ```
//!
//! The pool hands every connection `pool_difficulty`; the load suggests
//! [`LOADGEN_DIFFICULTY`] in every phase, which the pool honours directly (every share
//! meets it without hashing) and hashgate clamps to its fixed miner difficulty (the
//! same value). Hashgate's own upstream connection keeps `pool_difficulty`, so it
//! forwards only the shares that meet it: with the default 2⁻²⁸ about one in 16, as a
//! pool difficulty well above the miners' would on a site. aiostratum validates nothing
//! and relays the pool's difficulty to its miners, so its pool connection asks for
//! [`LOADGEN_DIFFICULTY`] and the pool judges every share it relays.
//!
//! Each proxy runs only during its own phase (hashgate's from before phase (a)), so an
//! idle one takes no CPU from another's measurement.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::aiostratum::{self, AIOSTRATUM_ADDR_PREFIX, AiostratumSettings};
pub use super::compare_report::{
    AddedLatency, CompareReport, CpuSplit, OtherProxy, PoolPhase, ProxyKind, Ratios, Versus,
    cpu_us_per_share,
};
use super::proxy_child::{
    HASHGATE_ADDR_PREFIX, ProxyChild, ProxyExit, ProxySettings, TempConfig, hashgate_command,
};
use super::{LOADGEN_DIFFICULTY, LoadConfig, LoadError, LoadReport, procfs};
use hashgate_lab::sim::pool::{SimPool, SimPoolConfig};

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
    /// A second hashgate binary measured in phase (c), e.g. a `stats-off` build.
    pub proxy_binary_b: Option<PathBuf>,
    /// The Python interpreter of an aiostratum-proxy venv, measured in phase (d).
    pub aiostratum: Option<PathBuf>,
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
            proxy_binary_b: None,
            aiostratum: None,
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
        "the proxy {program} did not start: {reason}; it ended with {status}; its last log lines:\n{stderr}"
    )]
    ProxyStart {
        /// The binary or interpreter started.
        program: PathBuf,
        /// What was missing.
        reason: String,
        /// Its exit status.
        status: String,
        /// Its last stderr lines.
        stderr: String,
    },
    /// More connections than aiostratum-proxy has extranonce tails for.
    #[error(
        "aiostratum-proxy splits the nonce space {max} ways at most; {requested} connections asked"
    )]
    TooManyForAiostratum {
        /// Connections asked for.
        requested: usize,
        /// Its limit.
        max: usize,
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

/// Starts the pool, runs every phase with its proxy, stops them all.
///
/// # Errors
/// [`CompareError`] when something cannot start or a phase cannot run at all; what goes
/// wrong with single connections or shares is in the report.
pub async fn compare(config: CompareConfig) -> Result<CompareReport, CompareError> {
    config.load.validate()?;
    let requested = config.load.connections.get();
    if config.aiostratum.is_some() && requested > aiostratum::MAX_WORKERS {
        return Err(CompareError::TooManyForAiostratum {
            requested,
            max: aiostratum::MAX_WORKERS,
        });
    }
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
    let load = LoadConfig {
        suggest_difficulty: Some(LOADGEN_DIFFICULTY),
        ..config.load.clone()
    };
    // Started before the direct phase so a proxy that cannot start fails the run at once.
    let hashgate = Subject::Hashgate {
        binary: &config.proxy_binary,
        phase: "through proxy",
    };
    let started = start(config, pool, &hashgate).await?;
    let direct = if config.skip_direct {
        None
    } else {
        match direct_phase(pool, &load).await {
            Ok(measured) => Some(measured),
            Err(e) => {
                started.stop().await;
                return Err(e);
            }
        }
    };
    let proxied = measure(pool, &started.child, &load, hashgate.phase()).await;
    let (proxy_pid, proxy_addr) = (started.pid, started.addr);
    let proxy_exit = started.stop().await;
    let proxied = proxied?;
    let (direct, direct_pool) = direct.unzip();

    let mut others = Vec::new();
    let b = config
        .proxy_binary_b
        .as_ref()
        .map(|binary| Subject::Hashgate {
            binary,
            phase: "through proxy B",
        });
    let aio = config
        .aiostratum
        .as_ref()
        .map(|python| Subject::Aiostratum { python });
    for subject in b.iter().chain(aio.iter()) {
        let started = start(config, pool, subject).await?;
        let (pid, addr) = (started.child.pid, started.child.miner_addr);
        let measured = measure(pool, &started.child, &load, subject.phase()).await;
        let exit = started.stop().await;
        let measured = measured?;
        others.push(OtherProxy {
            kind: subject.kind(),
            label: subject.label().into(),
            program: subject.program().to_owned(),
            pid,
            addr,
            added_latency: direct
                .as_ref()
                .map(|d| AddedLatency::between(&d.latency, &measured.load.latency)),
            versus_hashgate: Ratios::between(&proxied.load, &measured.load),
            load: measured.load,
            pool: measured.pool,
            cpu: measured.cpu,
            exit,
        });
    }

    Ok(CompareReport {
        pool: pool.addr(),
        pool_difficulty: config.pool_difficulty,
        miner_difficulty: LOADGEN_DIFFICULTY,
        proxy_pid,
        proxy_addr,
        added_latency: direct
            .as_ref()
            .map(|d| AddedLatency::between(&d.latency, &proxied.load.latency)),
        direct,
        direct_pool,
        proxied: proxied.load,
        proxied_pool: proxied.pool,
        proxy_cpu: proxied.cpu,
        proxy_exit,
        others,
    })
}

/// A proxy put under the load.
enum Subject<'a> {
    /// A hashgate binary.
    Hashgate {
        /// The binary.
        binary: &'a Path,
        /// Its phase's name in errors.
        phase: &'static str,
    },
    /// aiostratum-proxy, run by this Python interpreter.
    Aiostratum {
        /// The interpreter of its venv.
        python: &'a Path,
    },
}

impl Subject<'_> {
    fn kind(&self) -> ProxyKind {
        match self {
            Subject::Hashgate { .. } => ProxyKind::Hashgate,
            Subject::Aiostratum { .. } => ProxyKind::Aiostratum,
        }
    }

    fn phase(&self) -> &'static str {
        match self {
            Subject::Hashgate { phase, .. } => phase,
            Subject::Aiostratum { .. } => "through aiostratum-proxy",
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Subject::Hashgate { .. } => "hashgate B",
            Subject::Aiostratum { .. } => "aiostratum",
        }
    }

    fn program(&self) -> &Path {
        match self {
            Subject::Hashgate { binary, .. } => binary,
            Subject::Aiostratum { python } => python,
        }
    }
}

/// A started proxy and the files it reads, removed once it stops.
struct Started {
    /// The process.
    child: ProxyChild,
    /// Its pid (kept for the report after the child is consumed).
    pid: u32,
    /// Its miner address.
    addr: SocketAddr,
    /// Its config (and launcher), removed on drop.
    _files: Vec<TempConfig>,
}

impl Started {
    async fn stop(self) -> ProxyExit {
        self.child.stop(STOP_GRACE).await
    }
}

async fn start(
    config: &CompareConfig,
    pool: &SimPool,
    subject: &Subject<'_>,
) -> Result<Started, CompareError> {
    let timeout = config.proxy_start_timeout;
    let (child, files) = match subject {
        Subject::Hashgate { binary, .. } => {
            let settings = ProxySettings {
                pool: pool.addr(),
                miner_difficulty: LOADGEN_DIFFICULTY,
                account: "loadgen".into(),
            };
            let file = TempConfig::write(&settings.toml(), "toml")?;
            let command = hashgate_command(binary, file.path(), &config.proxy_log);
            let child = ProxyChild::start(command, binary, HASHGATE_ADDR_PREFIX, timeout).await?;
            (child, vec![file])
        }
        Subject::Aiostratum { python } => {
            let settings = AiostratumSettings {
                pool: pool.addr(),
                miner_difficulty: LOADGEN_DIFFICULTY,
                account: "loadgen".into(),
            };
            let yaml = TempConfig::write(&settings.yaml(), "yaml")?;
            let launcher = TempConfig::write(aiostratum::LAUNCHER, "py")?;
            let command = aiostratum::command(python, launcher.path(), yaml.path());
            let child = ProxyChild::start(command, python, AIOSTRATUM_ADDR_PREFIX, timeout).await?;
            (child, vec![yaml, launcher])
        }
    };
    Ok(Started {
        pid: child.pid,
        addr: child.miner_addr,
        child,
        _files: files,
    })
}

async fn direct_phase(
    pool: &SimPool,
    load: &LoadConfig,
) -> Result<(LoadReport, PoolPhase), CompareError> {
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
    Ok((report, PoolPhase::between(&before, &pool.stats())))
}

/// What one phase through a proxy measured.
struct Measured {
    load: LoadReport,
    pool: PoolPhase,
    cpu: Option<CpuSplit>,
}

async fn measure(
    pool: &SimPool,
    proxy: &ProxyChild,
    load: &LoadConfig,
    phase: &'static str,
) -> Result<Measured, CompareError> {
    let before = pool.stats();
    let cpu_before = procfs::cpu_split(proxy.pid).ok();
    let report = super::run(LoadConfig {
        target: proxy.miner_addr,
        target_pid: Some(proxy.pid),
        ..load.clone()
    })
    .await
    .map_err(|source| CompareError::Phase { phase, source })?;
    let cpu_after = procfs::cpu_split(proxy.pid).ok();
    let cpu = match (cpu_before, cpu_after) {
        (Some((u0, s0)), Some((u1, s1))) => Some(CpuSplit {
            user_s: u1.saturating_sub(u0) as f64 / procfs::TICKS_PER_SEC,
            system_s: s1.saturating_sub(s0) as f64 / procfs::TICKS_PER_SEC,
        }),
        _ => None,
    };
    Ok(Measured {
        load: report,
        pool: PoolPhase::between(&before, &pool.stats()),
        cpu,
    })
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
}
