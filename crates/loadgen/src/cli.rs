//! `hashgate-loadgen ...`: the command-line edge of the load generator.

use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use hashgate_site::config::parse_duration;
use serde::Serialize;

use super::compare::{CompareConfig, CompareReport, DEFAULT_POOL_DIFFICULTY, compare};
use super::{LoadConfig, LoadReport, procfs, run_against_sim_pool, sim_pool_config};

/// hashgate-loadgen: simulated miners submitting precomputed valid shares to a Stratum V1
/// endpoint.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "hashgate-loadgen",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct LoadgenArgs {
    /// `compare`: direct to a simulated pool vs through the proxy, in one run.
    #[command(subcommand)]
    pub command: Option<LoadgenCommand>,
    /// The endpoint under test, `host:port` (the proxy or a pool).
    #[arg(
        long,
        required_unless_present = "sim_pool",
        conflicts_with = "sim_pool"
    )]
    pub target: Option<String>,
    /// More ports of the same proxy (its `[[listeners]]`), `host:port`, repeatable:
    /// connections go to `--target` and these in turn.
    #[arg(long, requires = "target")]
    pub also_target: Vec<String>,
    /// Start a simulated pool in this process on 127.0.0.1:0 (difficulty 1e-10) and
    /// target it directly.
    #[arg(long)]
    pub sim_pool: bool,
    /// Time between the simulated pool's new jobs (for fan-out figures), e.g. `5s`.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub sim_pool_job_interval: Duration,
    /// Report this process's memory (RSS per idle connection) and CPU: the proxy's pid.
    #[arg(long)]
    pub target_pid: Option<u32>,
    /// The load itself.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// What `hashgate-loadgen` can do besides a plain run.
#[derive(Debug, Clone, Subcommand)]
pub enum LoadgenCommand {
    /// Run the same load directly against an in-process simulated pool, then through a
    /// `hashgate run` child process mining on that pool; print both side by side with the
    /// proxy's added latency, CPU and memory per connection.
    Compare(Box<CompareArgs>),
    /// Run the load through an in-process hashgate with two pool groups (a simulated pool
    /// each) and report the split of the work the pools accepted against the weights.
    Split(Box<SplitArgs>),
}

/// `hashgate-loadgen split`.
#[derive(Debug, Clone, Args)]
pub struct SplitArgs {
    /// The load.
    #[command(flatten)]
    pub load: LoadArgs,
    /// Weights of the groups `main` and `second`, e.g. `70,30`.
    #[arg(long, value_delimiter = ',', default_values_t = [70.0, 30.0])]
    pub weights: Vec<f64>,
    /// Shortest time between two moves of one miner by the balancer, e.g. `5s`.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub min_move: Duration,
}

/// `hashgate-loadgen compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The load of each phase.
    #[command(flatten)]
    pub load: LoadArgs,
    /// Difficulty the simulated pool gives the proxy; 2^-28 (the default) makes one
    /// share in 16 meet it and be forwarded.
    #[arg(long, default_value_t = DEFAULT_POOL_DIFFICULTY)]
    pub pool_difficulty: f64,
    /// Time between the simulated pool's new jobs (for fan-out figures), e.g. `5s`.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub job_interval: Duration,
    /// Only the through-the-proxy phase (for more connections than this process can hold
    /// both ends of).
    #[arg(long)]
    pub skip_direct: bool,
    /// The hashgate binary to run as the proxy (default: this one).
    #[arg(long)]
    pub proxy_binary: Option<PathBuf>,
    /// RUST_LOG for the proxy (its log lines cost it CPU under load).
    #[arg(long, default_value = "warn")]
    pub proxy_log: String,
    /// A second hashgate binary, measured after the first under the same load (phase c),
    /// e.g. a `--features stats-off` build; ratios to the first are reported.
    #[arg(long, value_name = "PATH")]
    pub proxy_binary_b: Option<PathBuf>,
    /// Also measure aiostratum-proxy (phase d): the Python interpreter of its venv, e.g.
    /// /work/venvs/aiostratum/bin/python (docs/LOADGEN.md says how to make it).
    #[arg(long, value_name = "PYTHON")]
    pub aiostratum: Option<PathBuf>,
    /// hashgate vs SRI's translator_sv2 on one SRI pool_sv2 instead of the sim pool: a
    /// directory with bin/pool_sv2, bin/sv2-minitp and bin/translator_sv2 (the SV2 peers'
    /// build.sh DIR). --job-interval becomes the template interval (whole seconds).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["aiostratum", "proxy_binary_b", "skip_direct"])]
    pub sv2_peers: Option<PathBuf>,
    /// With --sv2-peers: measure translator_sv2 first, then hashgate.
    #[arg(long, requires = "sv2_peers")]
    pub translator_first: bool,
    /// With --sv2-peers: a new block (chain tip) this often, e.g. `5s` (whole seconds;
    /// default none). pool_sv2 closes a channel past 72,000 accepted shares in one tip.
    #[arg(long, value_parser = parse_duration, requires = "sv2_peers")]
    pub sv2_block_interval: Option<Duration>,
}

/// The shape of a load, shared by a plain run and `compare`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Miner connections to open and hold.
    #[arg(long, short = 'n', default_value_t = NonZeroUsize::new(100).unwrap_or(NonZeroUsize::MIN))]
    pub connections: NonZeroUsize,
    /// Total shares per second over all connections.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// How long to submit, e.g. `10s`, `2m` (a bare number is seconds).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Spread source addresses over 127.0.0.2..=127.0.0.(1+K) (0: one address).
    #[arg(long, default_value_t = 0)]
    pub source_ips: u8,
    /// Connections opened per second.
    #[arg(long, default_value_t = 2000.0)]
    pub connect_rate: f64,
    /// Open every connection at once (a reconnect storm) instead of pacing them.
    #[arg(long)]
    pub storm: bool,
    /// After the submit window, close every connection and reopen them all at once,
    /// timing how long until all are set up again.
    #[arg(long)]
    pub reconnect_storm: bool,
    /// Send mining.configure (version rolling) first, as modern firmware does.
    #[arg(long)]
    pub configure: bool,
    /// Send mining.suggest_difficulty with this value before subscribing.
    #[arg(long)]
    pub suggest_difficulty: Option<f64>,
    /// Worker names are `<prefix>.w<index>`.
    #[arg(long, default_value = "loadgen")]
    pub worker_prefix: String,
    /// Milliseconds before an unanswered submit counts as timed out.
    #[arg(long, default_value_t = 5000)]
    pub answer_timeout_ms: u64,
    /// Time each connection has to be subscribed, authorized and hold a job, e.g. `10s`.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub setup_timeout: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn resolve(target: &str) -> anyhow::Result<SocketAddr> {
    let mut addrs = target
        .to_socket_addrs()
        .with_context(|| format!("--target {target}: not a host:port that resolves"))?;
    let all: Vec<SocketAddr> = addrs.by_ref().collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or_else(|| all.first())
        .copied()
        .with_context(|| format!("--target {target}: resolves to no address"))
}

impl LoadgenArgs {
    /// The library config these arguments describe (target 127.0.0.1:0 for `--sim-pool`,
    /// replaced by the pool's address when it starts).
    ///
    /// # Errors
    /// A target that does not resolve, or a non-positive duration.
    pub fn to_config(&self) -> anyhow::Result<LoadConfig> {
        let target = match &self.target {
            Some(t) => resolve(t)?,
            None => SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        // The binary's plain run reports progress each second; `compare` stays quiet.
        let also_targets = self
            .also_target
            .iter()
            .map(|t| resolve(t))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let config = LoadConfig {
            target_pid: self.target_pid,
            also_targets,
            progress: true,
            ..self.load.to_config(target)?
        };
        config.validate()?;
        Ok(config)
    }
}

impl LoadArgs {
    /// The library config for this load against `target`.
    ///
    /// # Errors
    /// A non-positive duration or timeout, or a setting [`LoadConfig::validate`] refuses.
    pub fn to_config(&self, target: SocketAddr) -> anyhow::Result<LoadConfig> {
        let config = LoadConfig {
            connections: self.connections,
            rate: self.rate,
            duration: self.duration,
            source_ips: self.source_ips,
            connect_rate: (!self.storm).then_some(self.connect_rate),
            configure: self.configure,
            suggest_difficulty: self.suggest_difficulty,
            worker_prefix: self.worker_prefix.clone(),
            answer_timeout: Duration::from_millis(self.answer_timeout_ms),
            setup_timeout: self.setup_timeout,
            reconnect_storm: self.reconnect_storm,
            ..LoadConfig::new(target)
        };
        config.validate()?;
        Ok(config)
    }
}

/// A progress line on stderr; a closed stderr loses it rather than panicking.
fn note(line: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Prints the report (as JSON with `json`) to stdout. A reader that went away (`| head`)
/// is not a failure of the run: the rest of the report is dropped and a note goes to
/// stderr; any other write error is.
///
/// # Errors
/// Stdout cannot be written for another reason than a broken pipe.
fn print_report<R: Serialize + fmt::Display>(report: &R, json: bool) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    let written = if json {
        let text = serde_json::to_string_pretty(report)?;
        writeln!(out, "{text}")
    } else {
        write!(out, "{report}")
    }
    .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            note(format_args!("loadgen: stdout closed; report not printed"));
            Ok(())
        }
        other => other.context("cannot write the report to stdout"),
    }
}

/// Runs `hashgate-loadgen` on its own multi-thread runtime and prints the report.
///
/// # Errors
/// Bad arguments, a target that cannot be reached at all, or a failed simulated pool.
pub fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    match args.command {
        Some(LoadgenCommand::Compare(compare)) => return run_compare(*compare),
        Some(LoadgenCommand::Split(split)) => return run_split(*split),
        None => {}
    }
    let config = args.to_config()?;
    match procfs::raise_nofile_limit() {
        Ok(limit) => note(format_args!("loadgen: may open {limit} files")),
        Err(error) => note(format_args!(
            "loadgen: cannot raise the open-files limit: {error}"
        )),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let report: LoadReport = runtime.block_on(async {
        if args.sim_pool {
            let interval = args.sim_pool_job_interval;
            let (report, pool) =
                run_against_sim_pool(config, sim_pool_config(Some(interval))).await?;
            note(format_args!(
                "sim pool: {} accepted, {} rejected {:?}, {} jobs, {} connections",
                pool.accepted,
                pool.rejected,
                pool.rejects_by_code,
                pool.jobs_created,
                pool.connections_total
            ));
            Ok::<_, anyhow::Error>(report)
        } else {
            Ok(super::run(config).await?)
        }
    })?;
    print_report(&report, args.load.json)?;
    if report.connections.ready == 0 {
        bail!("no connection was set up");
    }
    Ok(())
}

/// Runs `hashgate-loadgen split` and prints the load's report and the split.
///
/// # Errors
/// Bad arguments or weights, a proxy or pool that does not start, no connection set up.
fn run_split(args: SplitArgs) -> anyhow::Result<()> {
    let load = args.load.to_config(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let [main, second] = args.weights[..] else {
        bail!("--weights takes two numbers, e.g. 70,30");
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let report = runtime.block_on(super::split::run_split(load, (main, second), args.min_move))?;
    print_report(&report, args.load.json)?;
    if report.load.connections.ready == 0 {
        bail!("no connection was set up");
    }
    Ok(())
}

/// Runs `hashgate-loadgen compare` and prints the side-by-side report.
///
/// # Errors
/// Bad arguments, a proxy that does not start, or a phase with no connection at all.
fn run_compare(args: CompareArgs) -> anyhow::Result<()> {
    let load = args.load.to_config(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let proxy_binary = match args.proxy_binary {
        Some(path) => path,
        // Built side by side in one target directory, so `hashgate` sits next to us.
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join("hashgate")))
            .filter(|path| path.is_file())
            .context(
                "no `hashgate` binary beside this one to run as the proxy; pass --proxy-binary",
            )?,
    };
    let config = CompareConfig {
        pool_difficulty: args.pool_difficulty,
        job_interval: Some(args.job_interval),
        skip_direct: args.skip_direct,
        proxy_log: args.proxy_log,
        proxy_binary_b: args.proxy_binary_b,
        aiostratum: args.aiostratum,
        sv2_peers: args.sv2_peers,
        translator_first: args.translator_first,
        sv2_block_interval: args.sv2_block_interval,
        ..CompareConfig::new(load, proxy_binary)
    };
    match procfs::raise_nofile_limit() {
        // Raised before the proxy starts, so the child inherits the same limit.
        Ok(limit) => note(format_args!(
            "loadgen: may open {limit} files (the proxy child too)"
        )),
        Err(error) => note(format_args!(
            "loadgen: cannot raise the open-files limit: {error}"
        )),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let report: CompareReport = runtime.block_on(compare(config))?;
    print_report(&report, args.load.json)?;
    if !report.proxy_exit.graceful {
        bail!(
            "the proxy did not shut down cleanly: {}",
            report.proxy_exit.status
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `hashgate-loadgen ...` as the binary parses it.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        loadgen: LoadgenArgs,
    }

    fn compare_args(args: &[&str]) -> CompareArgs {
        let cli = Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied()))
            .expect("parses");
        match cli.loadgen.command {
            Some(LoadgenCommand::Compare(c)) => *c,
            _ => panic!("no compare subcommand in {args:?}"),
        }
    }

    #[test]
    fn split_takes_weights_and_a_move_interval() {
        let cli = Cli::try_parse_from(["loadgen", "split", "-n", "50", "--weights", "60,40"])
            .expect("parses");
        let Some(LoadgenCommand::Split(s)) = cli.loadgen.command else {
            panic!("no split subcommand");
        };
        assert_eq!(s.weights, [60.0, 40.0]);
        assert_eq!(s.min_move, Duration::from_secs(5));
        assert_eq!(s.load.connections.get(), 50);
        let default = Cli::try_parse_from(["loadgen", "split"]).expect("parses");
        let Some(LoadgenCommand::Split(d)) = default.loadgen.command else {
            panic!("no split subcommand");
        };
        assert_eq!(d.weights, [70.0, 30.0]);
    }

    #[test]
    fn compare_takes_a_second_binary_and_aiostratum() {
        let c = compare_args(&[
            "compare",
            "-n",
            "2000",
            "--rate",
            "5000",
            "--proxy-binary-b",
            "/tmp/hashgate-stats-off",
            "--aiostratum",
            "/work/venvs/aiostratum/bin/python",
        ]);
        assert_eq!(c.load.connections.get(), 2000);
        assert_eq!(c.load.rate, 5000.0);
        assert_eq!(
            c.proxy_binary_b.as_deref(),
            Some(std::path::Path::new("/tmp/hashgate-stats-off"))
        );
        assert_eq!(
            c.aiostratum.as_deref(),
            Some(std::path::Path::new("/work/venvs/aiostratum/bin/python"))
        );
    }

    #[test]
    fn compare_takes_the_sv2_peers_and_the_order() {
        let c = compare_args(&[
            "compare",
            "--sv2-peers",
            "/p/sv2",
            "--translator-first",
            "--sv2-block-interval",
            "5s",
        ]);
        assert_eq!(c.sv2_peers.as_deref(), Some(std::path::Path::new("/p/sv2")));
        assert!(c.translator_first);
        assert_eq!(c.sv2_block_interval, Some(Duration::from_secs(5)));
        let err = Cli::try_parse_from(["loadgen", "compare", "--translator-first"])
            .expect_err("the order needs the peers");
        assert!(err.to_string().contains("--sv2-peers"), "{err}");
        let err = Cli::try_parse_from(["loadgen", "compare", "--sv2-peers", "/p", "--skip-direct"])
            .expect_err("no direct phase to skip with pool_sv2");
        assert!(err.to_string().contains("cannot be used with"), "{err}");
    }

    #[test]
    fn compare_runs_only_hashgate_by_default() {
        let c = compare_args(&["compare"]);
        assert_eq!(c.proxy_binary_b, None);
        assert_eq!(c.aiostratum, None);
        assert_eq!(c.pool_difficulty, DEFAULT_POOL_DIFFICULTY);
    }

    #[test]
    fn aiostratum_needs_its_interpreter_path() {
        let err = Cli::try_parse_from(["loadgen", "compare", "--aiostratum"])
            .expect_err("a path is required");
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue, "{err}");
    }

    #[test]
    fn durations_take_the_same_syntax_as_every_flag() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "--sim-pool",
            "--duration",
            "2s",
            "--setup-timeout",
            "500ms",
            "--sim-pool-job-interval",
            "1m",
        ])
        .expect("parses");
        assert_eq!(cli.loadgen.load.duration, Duration::from_secs(2));
        assert_eq!(cli.loadgen.load.setup_timeout, Duration::from_millis(500));
        assert_eq!(cli.loadgen.sim_pool_job_interval, Duration::from_secs(60));
        let bare =
            Cli::try_parse_from(["loadgen", "--sim-pool", "--duration", "3"]).expect("parses");
        assert_eq!(bare.loadgen.load.duration, Duration::from_secs(3));
        for bad in ["0s", "-1", "2d"] {
            assert!(
                Cli::try_parse_from(["loadgen", "--sim-pool", "--duration", bad]).is_err(),
                "{bad}"
            );
        }
    }
}
