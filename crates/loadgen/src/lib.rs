//! `hashgate-loadgen`: thousands of simulated miners submitting precomputed valid shares
//! to any Stratum V1 endpoint (the proxy or a pool), measuring what the endpoint does.
//!
//! | module | owns |
//! |---|---|
//! | `config` | [`LoadConfig`] and [`LoadError`] |
//! | `conn` | one miner connection: handshake and loop (`conn`), reading and handling lines (`conn::inbound`), paced submits and timeouts (`conn::outbound`) |
//! | `shares` | precomputed valid shares pre-encoded as submit lines |
//! | `pacing` | each connection's evenly spaced submit schedule |
//! | `latency` | the striped HDR histogram of answer latencies |
//! | `fanout` | first-to-last arrival of each job across connections |
//! | `jobcache` | one parsed job per distinct notify line, shared by all connections |
//! | `procfs` | the open-files limit, and a process's RSS and CPU from `/proc` |
//! | `report` | [`LoadReport`], printed for people or as JSON |
//! | `compare` | [`compare()`]: the same load direct to a simulated pool and through the proxy (and a second build, and aiostratum-proxy), side by side |
//! | `compare_report` | [`CompareReport`]: the phases side by side, added latency, ratios to hashgate |
//! | `aiostratum` | aiostratum-proxy's YAML config, its launcher, the command that starts it |
//! | `sv2peers` | SRI's pool_sv2, sv2-minitp and translator_sv2 for `compare --sv2-peers`: configs, start, the pool's share counts |
//! | `proxy_child` | a proxy as a child process: temporary config, start, output drained, stop |
//! | `cli` | [`cli::LoadgenArgs`] and [`cli::run`], the binary's edge |
//!
//! # A run
//! 1. Raise the open-files soft limit to the hard limit; refuse a run that cannot fit.
//! 2. Open the connections, paced or all at once (`storm`), each from its own
//!    127.0.0.x when spreading; each configures (optional), suggests a difficulty
//!    (optional), subscribes, then authorizes as `<prefix>.w<i>`.
//! 3. When every connection is ready or has failed, read the target's RSS (idle
//!    connections), open the submit window, and let each connection send its share of
//!    the rate on its own phase-shifted schedule.
//! 4. After the window, wait for every answer or its timeout, read RSS again.
//! 5. With `reconnect_storm`, every held connection closes and connects again at once;
//!    time until all are set up again, read RSS once more (sessions freed?), stop.
//!
//! The generator is built to measure the target, not itself: one multi-thread runtime,
//! no read buffer held by an idle connection, submits pre-encoded in batches, accepted
//! answers recognised without a JSON parse. Run the target at a miner difficulty of
//! 1e-10 or below (every hash then meets the target and no hashing is needed); above
//! that, shares are searched for and the hashes reported.

mod aiostratum;
pub mod cli;
pub mod compare;
mod compare_report;
mod config;
mod conn;
mod errors;
mod fanout;
mod jobcache;
mod latency;
mod pacing;
pub mod procfs;
mod proxy_child;
mod report;
mod shares;
pub mod split;
mod sv2peers;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use compare::{
    AddedLatency, CompareConfig, CompareError, CompareReport, CpuSplit, OtherProxy, PoolPhase,
    ProxyKind, Ratios, Versus, compare,
};
pub use config::{LoadConfig, LoadError};
pub use fanout::{FanoutSummary, JobFanout};
pub use latency::LatencySummary;
pub use proxy_child::ProxyExit;
pub use report::{
    ConnectionReport, LoadReport, ProcessReport, ReconnectReport, ShareReport, WorkReport,
};
pub use shares::{MAX_EXPECTED_HASHES, ShareError};

use conn::{ConnOutcome, Event, Phase, RunContext};
use hashgate_lab::sim::pool::{SimPool, SimPoolConfig, SimPoolStats};

/// A miner difficulty at which every hash meets the share target (the target saturates
/// at ≤ 65535·2⁻⁴⁸ ≈ 2.3e-10), so the generator hashes nothing.
pub const LOADGEN_DIFFICULTY: f64 = 1e-10;

/// Files the process needs besides the connections (runtime, stdio, listeners).
const SPARE_FILES: u64 = 64;

/// Grace after the last answer timeout for the connections to report.
const REPORT_GRACE: Duration = Duration::from_secs(2);

/// A simulated pool set up for load: loadgen difficulty, no accepted-share log (it would
/// grow by every share), a new job every `job_interval` so fan-out can be seen.
pub fn sim_pool_config(job_interval: Option<Duration>) -> SimPoolConfig {
    SimPoolConfig {
        name: "loadgen-pool".into(),
        difficulty: LOADGEN_DIFFICULTY,
        honor_suggest_difficulty: true,
        job_interval,
        share_log_cap: 0,
        ..SimPoolConfig::default()
    }
}

/// Starts an in-process simulated pool on `127.0.0.1:0`, runs the load against it and
/// returns the report with the pool's own counters, so the two can be compared.
///
/// # Errors
/// As [`run`], and [`LoadError::SimPool`] when the pool cannot start.
pub async fn run_against_sim_pool(
    mut config: LoadConfig,
    pool: SimPoolConfig,
) -> Result<(LoadReport, SimPoolStats), LoadError> {
    // Both ends of every connection live in this process.
    check_files(config.connections.get(), 2)?;
    let pool = SimPool::start(pool).await.map_err(LoadError::SimPool)?;
    config.target = pool.addr();
    let report = run(config).await;
    let stats = pool.stats();
    pool.shutdown().await;
    Ok((report?, stats))
}

/// Raises the open-files limit and checks that `connections` fit, with
/// `files_per_connection` descriptors each.
fn check_files(connections: usize, files_per_connection: u64) -> Result<Option<u64>, LoadError> {
    let limit = match procfs::raise_nofile_limit() {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot read or raise the open-files limit");
            return Ok(None);
        }
    };
    let need = connections as u64 * files_per_connection + SPARE_FILES;
    if need > limit {
        return Err(LoadError::FileLimit {
            connections,
            need,
            limit,
        });
    }
    Ok(Some(limit))
}

/// Prints one line a second on stderr until aborted: connections ready, shares sent,
/// accepted and rejected so far, and the accepted rate over the last second.
async fn print_progress(shared: Arc<RunContext>, started: Instant) {
    use std::io::Write as _;
    let mut tick = tokio::time::interval_at(
        (started + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    let mut last_accepted = 0;
    loop {
        tick.tick().await;
        let p = &shared.progress;
        let accepted = p.accepted.load(Ordering::Relaxed);
        let line = format!(
            "loadgen: {:>4.0}s  ready {}/{}  sent {}  accepted {} ({}/s)  rejected {}",
            started.elapsed().as_secs_f64(),
            p.ready.load(Ordering::Relaxed),
            shared.config.connections,
            p.sent.load(Ordering::Relaxed),
            accepted,
            accepted.saturating_sub(last_accepted),
            p.rejected.load(Ordering::Relaxed),
        );
        last_accepted = accepted;
        // A closed stderr loses the line; the run goes on.
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// Runs one load: connect, submit for the configured window, report.
///
/// # Errors
/// [`LoadError`] for a bad config, too few open files, or no connection set up at all;
/// everything that goes wrong with individual connections or shares is in the report.
pub async fn run(config: LoadConfig) -> Result<LoadReport, LoadError> {
    config.validate()?;
    let n = config.connections.get();
    let open_files_limit = check_files(n, 1)?;
    let pid = config.target_pid;
    let rss_before = pid.and_then(|p| procfs::rss_kib(p).ok());

    // Each connection sends at most five events (see `conn::Event`): never full.
    let (events_tx, mut events) = mpsc::channel(5 * n + 1);
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let shared = Arc::new(RunContext {
        config,
        latency: latency::LatencyRecorder::new(),
        send_lag: latency::LatencyRecorder::new(),
        fanout: fanout::FanoutTracker::default(),
        jobs: jobcache::JobCache::default(),
        errors: errors::ErrorLog::default(),
        events: events_tx,
        progress: conn::Progress::default(),
    });
    let cfg = &shared.config;
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let mut pacing_span = Duration::ZERO;
    for i in 0..n {
        let offset = cfg
            .connect_rate
            .and_then(|r| Duration::try_from_secs_f64(i as f64 / r).ok())
            .unwrap_or(Duration::ZERO);
        pacing_span = pacing_span.max(offset);
        tasks.spawn(conn::run(
            i,
            started + offset,
            Arc::clone(&shared),
            phase_rx.clone(),
            cancel.child_token(),
        ));
    }
    drop(phase_rx);
    let progress = shared
        .config
        .progress
        .then(|| tokio::spawn(print_progress(Arc::clone(&shared), started)));

    // Setup: every connection reports ready or failed by its own setup deadline.
    let settle_by = started + pacing_span + cfg.setup_timeout + REPORT_GRACE;
    let (mut ready, mut failed, mut finished, mut lost) = (0usize, 0usize, 0usize, 0usize);
    let mut setups: Vec<Duration> = Vec::with_capacity(n);
    let mut last_ready: Option<Instant> = None;
    while ready + failed < n {
        match tokio::time::timeout_at(settle_by.into(), events.recv()).await {
            Ok(Some(Event::Ready { setup, at })) => {
                ready += 1;
                shared.progress.ready.fetch_add(1, Ordering::Relaxed);
                setups.push(setup);
                last_ready = Some(last_ready.map_or(at, |l: Instant| l.max(at)));
            }
            Ok(Some(Event::SetupFailed)) => failed += 1,
            Ok(Some(Event::Finished)) => finished += 1,
            Ok(Some(Event::Lost)) => lost += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    if ready == 0 {
        cancel.cancel();
        if let Some(progress) = &progress {
            progress.abort();
        }
        let outcomes = join_all(&mut tasks).await;
        let errors = shared.errors.snapshot();
        return Err(LoadError::NoConnection {
            failures: outcomes.iter().filter(|o| !o.ready).count(),
            first_error: errors
                .first()
                .map_or_else(|| "none recorded".into(), |(m, c)| format!("{m} ({c}×)")),
        });
    }
    // Let the last answers of the handshake settle before measuring idle memory.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_connected = pid.and_then(|p| procfs::rss_kib(p).ok());

    // Submit window.
    let t0 = Instant::now() + Duration::from_millis(20);
    let end = t0 + cfg.duration;
    let own_cpu_before = procfs::cpu_ticks(std::process::id()).ok();
    let target_cpu_before = pid.and_then(|p| procfs::cpu_ticks(p).ok());
    let _ = phase_tx.send(Phase::Submit { t0, end });
    let drain_by = end + cfg.answer_timeout + REPORT_GRACE;
    while finished < ready {
        match tokio::time::timeout_at(drain_by.into(), events.recv()).await {
            Ok(Some(Event::Finished)) => finished += 1,
            Ok(Some(Event::Lost)) => lost += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let window = Instant::now().saturating_duration_since(t0).as_secs_f64();
    let cpu_percent = |before: Option<u64>, after: Option<u64>| -> Option<f64> {
        let used = after?.checked_sub(before?)? as f64 / procfs::TICKS_PER_SEC;
        (window > 0.0).then(|| 100.0 * used / window)
    };
    let loadgen_cpu_percent =
        cpu_percent(own_cpu_before, procfs::cpu_ticks(std::process::id()).ok());
    let target_cpu_after = pid.and_then(|p| procfs::cpu_ticks(p).ok());
    let target_cpu = cpu_percent(target_cpu_before, target_cpu_after);
    let target_cpu_s = target_cpu_after
        .zip(target_cpu_before)
        .and_then(|(after, before)| after.checked_sub(before))
        .map(|ticks| ticks as f64 / procfs::TICKS_PER_SEC);
    let rss_after = pid.and_then(|p| procfs::rss_kib(p).ok());

    let reconnect = if cfg.reconnect_storm {
        Some(reconnect_storm(cfg, &phase_tx, &mut events, ready.saturating_sub(lost)).await)
    } else {
        None
    };
    let rss_after_reconnect = if cfg.reconnect_storm {
        pid.and_then(|p| procfs::rss_kib(p).ok())
    } else {
        None
    };

    cancel.cancel();
    if let Some(progress) = progress {
        progress.abort();
    }
    let outcomes = join_all(&mut tasks).await;

    setups.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let connections = ConnectionReport {
        requested: n,
        storm: cfg.connect_rate.is_none(),
        connect_failures: outcomes.iter().filter(|o| !o.connected).count(),
        setup_failures: outcomes.iter().filter(|o| o.connected && !o.ready).count(),
        ready,
        held_at_end: outcomes.iter().filter(|o| o.ready && !o.lost).count(),
        source_addresses: outcomes
            .iter()
            .filter(|o| o.ready)
            .filter_map(|o| o.local_ip)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        all_ready_ms: last_ready.map(|l| ms(&l.saturating_duration_since(started))),
        setup_p50_ms: setups.get(setups.len() / 2).map(ms),
        setup_max_ms: setups.last().map(ms),
    };
    let mut shares = ShareReport {
        target_rate: cfg.rate,
        duration_s: cfg.duration.as_secs_f64(),
        scheduled: (0..n)
            .map(|i| {
                let s = pacing::Schedule::new(i, n, cfg.rate, t0, end);
                s.owed(end)
            })
            .sum(),
        sent: 0,
        accepted: 0,
        rejected_by_code: Default::default(),
        timeouts: 0,
        lost_in_flight: 0,
        unmatched_answers: 0,
        not_sent: 0,
        sent_per_s: 0.0,
        accepted_per_s: 0.0,
        late_sends: 0,
        send_lag: shared.send_lag.summary(),
        bad_lines: 0,
        reconnect_requests: 0,
    };
    let mut work = WorkReport {
        difficulty_min: None,
        difficulty_max: None,
        shares_searched: 0,
        hashes: 0,
    };
    for o in &outcomes {
        shares.sent += o.sent;
        shares.accepted += o.accepted;
        for (code, k) in &o.rejected {
            *shares.rejected_by_code.entry(*code).or_default() += k;
        }
        shares.timeouts += o.timeouts;
        shares.lost_in_flight += o.lost_in_flight;
        shares.unmatched_answers += o.unmatched;
        shares.not_sent += o.not_sent;
        shares.late_sends += o.late_sends;
        shares.bad_lines += o.bad_lines;
        shares.reconnect_requests += o.reconnect_requests;
        if let Some((lo, hi)) = o.difficulty_range {
            work.difficulty_min = Some(work.difficulty_min.map_or(lo, |m: f64| m.min(lo)));
            work.difficulty_max = Some(work.difficulty_max.map_or(hi, |m: f64| m.max(hi)));
        }
        work.shares_searched += o.searched;
        work.hashes += o.hashes;
    }
    let secs = cfg.duration.as_secs_f64();
    shares.sent_per_s = shares.sent as f64 / secs;
    shares.accepted_per_s = shares.accepted as f64 / secs;

    let target_process = match (pid, rss_before, rss_connected) {
        (Some(pid), Some(before), Some(connected)) => Some(ProcessReport {
            pid,
            rss_before_kib: before,
            rss_connected_kib: connected,
            rss_after_kib: rss_after.unwrap_or(0),
            bytes_per_connection: (ready > 0)
                .then(|| (connected as f64 - before as f64) * 1024.0 / ready as f64),
            cpu_percent: target_cpu,
            cpu_s: target_cpu_s,
            rss_after_reconnect_kib: rss_after_reconnect,
        }),
        _ => None,
    };
    Ok(LoadReport {
        target: cfg.target,
        open_files_limit,
        connections,
        shares,
        latency: shared.latency.summary(),
        fanout: shared.fanout.summary(ready),
        reconnect,
        work,
        target_process,
        loadgen_cpu_percent,
        errors: shared.errors.snapshot(),
    })
}

/// Tells every held connection to close and connect again at once, and times how long
/// until they are all set up again.
async fn reconnect_storm(
    cfg: &LoadConfig,
    phase_tx: &watch::Sender<Phase>,
    events: &mut mpsc::Receiver<Event>,
    held: usize,
) -> ReconnectReport {
    let start = Instant::now();
    let _ = phase_tx.send(Phase::Reconnect);
    let by = start + cfg.setup_timeout + REPORT_GRACE;
    let mut expected = held;
    let (mut rejoined, mut failed) = (0usize, 0usize);
    let mut setups: Vec<Duration> = Vec::with_capacity(held);
    let mut last: Option<Instant> = None;
    while rejoined + failed < expected {
        match tokio::time::timeout_at(by.into(), events.recv()).await {
            Ok(Some(Event::Rejoined { setup, at })) => {
                rejoined += 1;
                setups.push(setup);
                last = Some(last.map_or(at, |l: Instant| l.max(at)));
            }
            Ok(Some(Event::RejoinFailed)) => failed += 1,
            // Lost just before it could be told: it will not reconnect.
            Ok(Some(Event::Lost)) => expected = expected.saturating_sub(1),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    setups.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    ReconnectReport {
        connections: expected,
        ready: rejoined,
        failures: failed,
        all_ready_ms: last.map(|l| ms(&l.saturating_duration_since(start))),
        setup_p50_ms: setups.get(setups.len() / 2).map(ms),
        setup_max_ms: setups.last().map(ms),
    }
}

/// Waits for every connection task; a task that panicked counts as a connection that
/// never connected.
async fn join_all(tasks: &mut JoinSet<ConnOutcome>) -> Vec<ConnOutcome> {
    let mut outcomes = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(o) => outcomes.push(o),
            Err(error) => {
                tracing::error!(%error, "loadgen connection task failed");
                outcomes.push(ConnOutcome::default());
            }
        }
    }
    outcomes
}
