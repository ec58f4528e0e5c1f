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
use super::sv2peers::{
    self, AUTHORITY_PUBLIC, Sv2Peers, Sv2Pool, TRANSLATOR_MINER_DIFFICULTY,
    TRANSLATOR_MINER_HASHRATE, TranslatorSettings,
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
    /// A directory with SRI's `bin/pool_sv2`, `bin/sv2-minitp` and `bin/translator_sv2`:
    /// hashgate and translator_sv2 side by side on one pool_sv2 instead of the sim pool
    /// (see [`compare_sv2`]).
    pub sv2_peers: Option<PathBuf>,
    /// With `sv2_peers`: measure translator_sv2 before hashgate (to see order effects).
    pub translator_first: bool,
    /// With `sv2_peers`: sv2-minitp advances the chain this often (0: never). pool_sv2
    /// keeps at most 72,000 accepted shares per chain tip for a channel (SRI's dedup
    /// budget at 60 shares/min) and closes the channel beyond that.
    pub sv2_block_interval: Option<Duration>,
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
            sv2_peers: None,
            translator_first: false,
            sv2_block_interval: None,
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
    /// An SV2 peer is missing or could not be given a port.
    #[error("SV2 peers: {0}")]
    Sv2Peer(String),
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
    if let Some(dir) = &config.sv2_peers {
        return compare_sv2(&config, dir).await;
    }
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
        pool_name: "sim pool".into(),
        pool_difficulty: Some(config.pool_difficulty),
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
                pool_url: format!("stratum+tcp://{}", pool.addr()),
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
    let (report, cpu) = measure_with(proxy, load, phase).await?;
    Ok(Measured {
        load: report,
        pool: PoolPhase::between(&before, &pool.stats()),
        cpu,
    })
}

/// Runs the load through `proxy`, with its CPU over the phase split user / kernel.
async fn measure_with(
    proxy: &ProxyChild,
    load: &LoadConfig,
    phase: &'static str,
) -> Result<(LoadReport, Option<CpuSplit>), CompareError> {
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
    Ok((report, cpu))
}

/// Hashgate's account on pool_sv2 (its channels' user identity starts with it).
const SV2_HASHGATE_USER: &str = "hashgate-compare";

/// translator_sv2's user identity on pool_sv2.
const SV2_TRANSLATOR_USER: &str = "translator-compare";

/// How long a proxy has to open its channel on pool_sv2 after it listens: both open it
/// at start, and a miner connecting before would time the handshake, not the proxy.
const SV2_CHANNEL_SETTLE: Duration = Duration::from_secs(2);

/// hashgate and translator_sv2 side by side on one pool_sv2 (fed by sv2-minitp):
///
/// ```text
/// phase (b):  loadgen ──> hashgate run (child) ──SV2──> pool_sv2 <── sv2-minitp
/// phase (t):  loadgen ──> translator_sv2 (child) ─SV2─> same pool_sv2
/// ```
///
/// There is no direct phase: pool_sv2 speaks no SV1. Both proxies answer a miner's
/// submit themselves after checking it against the miner's target (neither waits for
/// the pool), so the answer latency is each proxy's own. Both pin the miners at
/// [`TRANSLATOR_MINER_DIFFICULTY`]: translator_sv2 with vardiff off and a 1 H/s floor,
/// hashgate with vardiff min = max. Each forwards only the shares meeting its channel's
/// pool target; the pool's own counts per proxy are read off its metrics endpoint.
async fn compare_sv2(config: &CompareConfig, dir: &Path) -> Result<CompareReport, CompareError> {
    let peers = Sv2Peers::find(dir)?;
    super::check_files(config.load.connections.get(), 1)?;
    let template_interval = config.job_interval.map_or(30, |d| d.as_secs().max(1));
    let block_interval = config.sv2_block_interval.map_or(0, |d| d.as_secs().max(1));
    let pool = Sv2Pool::start(&peers, template_interval, block_interval).await?;
    let result = sv2_phases(config, &peers, &pool).await;
    pool.stop().await;
    result
}

async fn sv2_phases(
    config: &CompareConfig,
    peers: &Sv2Peers,
    pool: &Sv2Pool,
) -> Result<CompareReport, CompareError> {
    let load = LoadConfig {
        suggest_difficulty: None,
        ..config.load.clone()
    };
    let (hashgate, translator) = if config.translator_first {
        let translator = sv2_translator_phase(config, peers, pool, &load).await?;
        (sv2_hashgate_phase(config, pool, &load).await?, translator)
    } else {
        let hashgate = sv2_hashgate_phase(config, pool, &load).await?;
        (
            hashgate,
            sv2_translator_phase(config, peers, pool, &load).await?,
        )
    };
    let other = OtherProxy {
        kind: ProxyKind::TranslatorSv2,
        label: "translator_sv2".into(),
        program: peers.translator.clone(),
        pid: translator.pid,
        addr: translator.addr,
        added_latency: None,
        versus_hashgate: Ratios::between(&hashgate.measured.load, &translator.measured.load),
        load: translator.measured.load,
        pool: translator.measured.pool,
        cpu: translator.measured.cpu,
        exit: translator.exit,
    };
    Ok(CompareReport {
        pool: pool.addr,
        pool_name: "pool_sv2".into(),
        pool_difficulty: None,
        miner_difficulty: TRANSLATOR_MINER_DIFFICULTY,
        proxy_pid: hashgate.pid,
        proxy_addr: hashgate.addr,
        direct: None,
        direct_pool: None,
        added_latency: None,
        proxied: hashgate.measured.load,
        proxied_pool: hashgate.measured.pool,
        proxy_cpu: hashgate.measured.cpu,
        proxy_exit: hashgate.exit,
        others: vec![other],
    })
}

/// One SV2 phase's figures and how its proxy ended.
struct Sv2Phase {
    measured: Measured,
    pid: u32,
    addr: SocketAddr,
    exit: ProxyExit,
}

async fn sv2_hashgate_phase(
    config: &CompareConfig,
    pool: &Sv2Pool,
    load: &LoadConfig,
) -> Result<Sv2Phase, CompareError> {
    let settings = ProxySettings {
        pool_url: format!("stratum2+tcp://{}/{AUTHORITY_PUBLIC}", pool.addr),
        miner_difficulty: TRANSLATOR_MINER_DIFFICULTY,
        account: SV2_HASHGATE_USER.into(),
    };
    let file = TempConfig::write(&settings.toml(), "toml")?;
    let binary = &config.proxy_binary;
    let command = hashgate_command(binary, file.path(), &config.proxy_log);
    let child = ProxyChild::start(
        command,
        binary,
        HASHGATE_ADDR_PREFIX,
        config.proxy_start_timeout,
    )
    .await?;
    sv2_measure(child, pool, load, SV2_HASHGATE_USER, "through hashgate").await
}

async fn sv2_translator_phase(
    config: &CompareConfig,
    peers: &Sv2Peers,
    pool: &Sv2Pool,
    load: &LoadConfig,
) -> Result<Sv2Phase, CompareError> {
    let settings = TranslatorSettings {
        listen: SocketAddr::from(([127, 0, 0, 1], sv2peers::free_port()?)),
        monitoring: SocketAddr::from(([127, 0, 0, 1], sv2peers::free_port()?)),
        pool: pool.addr,
        authority: AUTHORITY_PUBLIC.into(),
        user: SV2_TRANSLATOR_USER.into(),
        miner_hashrate: TRANSLATOR_MINER_HASHRATE,
    };
    let file = TempConfig::write(&settings.toml(), "toml")?;
    let command = sv2peers::translator_command(&peers.translator, file.path());
    let child = ProxyChild::start_at(
        command,
        &peers.translator,
        settings.listen,
        config.proxy_start_timeout,
    )
    .await?
    .stop_with_sigint();
    sv2_measure(
        child,
        pool,
        load,
        SV2_TRANSLATOR_USER,
        "through translator_sv2",
    )
    .await
}

async fn sv2_measure(
    child: ProxyChild,
    pool: &Sv2Pool,
    load: &LoadConfig,
    user: &str,
    phase: &'static str,
) -> Result<Sv2Phase, CompareError> {
    tokio::time::sleep(SV2_CHANNEL_SETTLE).await;
    let before = pool.counts(user).await;
    let measured = measure_with(&child, load, phase).await;
    // The pool's metrics are a cache refreshed every POOL_METRICS_REFRESH_S, and its
    // channel's counts vanish with the proxy: read them before the stop.
    tokio::time::sleep(Duration::from_secs(
        2 * sv2peers::POOL_METRICS_REFRESH_S + 1,
    ))
    .await;
    let after = pool.counts(user).await;
    let (pid, addr) = (child.pid, child.miner_addr);
    let exit = child.stop(STOP_GRACE).await;
    let (load, cpu) = measured?;
    Ok(Sv2Phase {
        measured: Measured {
            load,
            pool: PoolPhase {
                accepted: after.accepted.saturating_sub(before.accepted),
                rejected: after.rejected.saturating_sub(before.rejected),
                ..PoolPhase::default()
            },
            cpu,
        },
        pid,
        addr,
        exit,
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
