//! The result of a load run: figures for people ([`std::fmt::Display`]) and scripts (JSON).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use serde::Serialize;

use super::fanout::FanoutSummary;
use super::latency::LatencySummary;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The endpoint under test.
    pub target: SocketAddr,
    /// Open files this process may hold (soft limit after raising it).
    pub open_files_limit: Option<u64>,
    /// Opening and holding connections.
    pub connections: ConnectionReport,
    /// Submits and their answers.
    pub shares: ShareReport,
    /// Submit → answer latency.
    pub latency: LatencySummary,
    /// Job fan-out during the submit window.
    pub fanout: FanoutSummary,
    /// The reconnect storm after the window, when asked for.
    pub reconnect: Option<ReconnectReport>,
    /// The difficulty the target set and the hashing it cost the generator.
    pub work: WorkReport,
    /// Memory and CPU of the target process, when its pid was given.
    pub target_process: Option<ProcessReport>,
    /// CPU this load generator used during the submit window (includes an in-process
    /// simulated pool when there is one).
    pub loadgen_cpu_percent: Option<f64>,
    /// Distinct errors with counts, most frequent first.
    pub errors: Vec<(String, u64)>,
}

/// Opening and holding connections.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConnectionReport {
    /// Connections asked for.
    pub requested: usize,
    /// Connections opened all at once (a reconnect storm) rather than paced.
    pub storm: bool,
    /// TCP connects that failed (refused, timed out, no file descriptors).
    pub connect_failures: usize,
    /// Connections that failed after connecting, before ready (refused subscribe or
    /// authorize, no job, setup timeout).
    pub setup_failures: usize,
    /// Subscribed, authorized and holding a job when the submit window opened.
    pub ready: usize,
    /// Ready connections still open when the run ended.
    pub held_at_end: usize,
    /// Distinct local IP addresses the ready connections used.
    pub source_addresses: usize,
    /// First connect attempt to the last connection ready, in milliseconds.
    pub all_ready_ms: Option<f64>,
    /// Per connection, connect attempt to ready: median, in milliseconds.
    pub setup_p50_ms: Option<f64>,
    /// Per connection, connect attempt to ready: slowest, in milliseconds.
    pub setup_max_ms: Option<f64>,
}

/// Submits and their answers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShareReport {
    /// Shares per second asked for.
    pub target_rate: f64,
    /// Submit window in seconds.
    pub duration_s: f64,
    /// Shares the schedule held for the window.
    pub scheduled: u64,
    /// Submits written.
    pub sent: u64,
    /// Answered `result:true`.
    pub accepted: u64,
    /// Rejected, by Stratum error code (0: no code in the answer).
    pub rejected_by_code: BTreeMap<i64, u64>,
    /// No answer within the answer timeout.
    pub timeouts: u64,
    /// In flight on a connection that was lost.
    pub lost_in_flight: u64,
    /// Answers matching no pending submit (late after timeout, or unknown id).
    pub unmatched_answers: u64,
    /// Owed by the schedule but not sent: no valid share could be made.
    pub not_sent: u64,
    /// `sent / duration`.
    pub sent_per_s: f64,
    /// `accepted / duration`.
    pub accepted_per_s: f64,
    /// Sends more than 2 ms behind schedule (beyond the timer's 1 ms granularity: the
    /// generator or the machine could not keep up).
    pub late_sends: u64,
    /// How far behind its due time each send went.
    pub send_lag: LatencySummary,
    /// Lines from the target that did not parse.
    pub bad_lines: u64,
    /// `client.reconnect` requests received (counted, not followed).
    pub reconnect_requests: u64,
}

impl LoadReport {
    /// A report of nothing against `target`: every count 0, no figure.
    pub fn empty(target: SocketAddr) -> Self {
        LoadReport {
            target,
            open_files_limit: None,
            connections: ConnectionReport::default(),
            shares: ShareReport::default(),
            latency: LatencySummary::default(),
            fanout: FanoutSummary::default(),
            reconnect: None,
            work: WorkReport::default(),
            target_process: None,
            loadgen_cpu_percent: None,
            errors: Vec::new(),
        }
    }
}

impl ShareReport {
    /// All rejected shares.
    pub fn rejected(&self) -> u64 {
        self.rejected_by_code.values().sum()
    }
}

/// Every held connection closing and connecting again at once.
#[derive(Debug, Clone, Serialize)]
pub struct ReconnectReport {
    /// Connections told to reconnect.
    pub connections: usize,
    /// Set up again (subscribed, authorized, holding a job).
    pub ready: usize,
    /// Not set up again (refused, no answer, setup timeout).
    pub failures: usize,
    /// Storm start to the last connection set up again, in milliseconds.
    pub all_ready_ms: Option<f64>,
    /// Per connection, reconnect attempt to ready: median, in milliseconds.
    pub setup_p50_ms: Option<f64>,
    /// Per connection, reconnect attempt to ready: slowest, in milliseconds.
    pub setup_max_ms: Option<f64>,
}

/// Difficulty set by the target and hashing cost.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkReport {
    /// Lowest difficulty any connection was set to.
    pub difficulty_min: Option<f64>,
    /// Highest difficulty any connection was set to.
    pub difficulty_max: Option<f64>,
    /// Shares that needed a nonce search (target difficulty above ≈ 2⁻³²).
    pub shares_searched: u64,
    /// Hashes computed for those searches.
    pub hashes: u64,
}

/// The target process, from `/proc/<pid>`.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    /// Its pid.
    pub pid: u32,
    /// Resident memory before any connection, KiB.
    pub rss_before_kib: u64,
    /// Resident memory with every connection set up and idle, KiB.
    pub rss_connected_kib: u64,
    /// Resident memory after the submit window, KiB.
    pub rss_after_kib: u64,
    /// `(rss_connected − rss_before) / ready connections`, bytes: user-space memory per
    /// idle miner connection.
    pub bytes_per_connection: Option<f64>,
    /// Its CPU use during the submit window, percent of one core.
    pub cpu_percent: Option<f64>,
    /// Its CPU seconds (user + system) from the window's start to the last answer: over
    /// the shares answered, its CPU per share.
    pub cpu_s: Option<f64>,
    /// Resident memory after the reconnect storm, KiB (the old sessions should be gone).
    pub rss_after_reconnect_kib: Option<u64>,
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1} {unit}"))
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.connections;
        let s = &self.shares;
        let l = &self.latency;
        writeln!(f, "hashgate-loadgen → {}", self.target)?;
        if let Some(limit) = self.open_files_limit {
            writeln!(f, "  open files allowed: {limit}")?;
        }
        writeln!(
            f,
            "  connections: {} ready of {} requested ({}, from {} source addresses), {} connect failures, {} setup failures, {} held at end",
            c.ready,
            c.requested,
            if c.storm { "all at once" } else { "paced" },
            c.source_addresses,
            c.connect_failures,
            c.setup_failures,
            c.held_at_end
        )?;
        writeln!(
            f,
            "  setup: all ready in {}; per connection p50 {}, max {}",
            opt(c.all_ready_ms, "ms"),
            opt(c.setup_p50_ms, "ms"),
            opt(c.setup_max_ms, "ms")
        )?;
        writeln!(
            f,
            "  shares: {} sent of {} scheduled over {:.1} s ({:.0}/s, target {:.0}/s); {} accepted ({:.0}/s)",
            s.sent,
            s.scheduled,
            s.duration_s,
            s.sent_per_s,
            s.target_rate,
            s.accepted,
            s.accepted_per_s
        )?;
        let rejects: Vec<String> = s
            .rejected_by_code
            .iter()
            .map(|(code, n)| format!("{n}×{code}"))
            .collect();
        writeln!(
            f,
            "  errors: {} rejected [{}], {} timeouts, {} lost in flight, {} unmatched, {} not sent, {} bad lines",
            s.rejected(),
            rejects.join(", "),
            s.timeouts,
            s.lost_in_flight,
            s.unmatched_answers,
            s.not_sent,
            s.bad_lines
        )?;
        writeln!(
            f,
            "  latency (µs): p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  mean {:.1}  (n={})",
            l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, l.mean_us, l.count
        )?;
        writeln!(
            f,
            "  pacing (µs behind schedule): p50 {:.0}  p99 {:.0}  max {:.0}; {} sends >2 ms late",
            s.send_lag.p50_us, s.send_lag.p99_us, s.send_lag.max_us, s.late_sends
        )?;
        let fo = &self.fanout;
        writeln!(
            f,
            "  fan-out: {} jobs seen, {} reached every connection, widest spread {}",
            fo.jobs_seen,
            fo.jobs_complete,
            opt(fo.max_spread_us.map(|us| us / 1000.0), "ms")
        )?;
        if let Some(r) = &self.reconnect {
            writeln!(
                f,
                "  reconnect storm: {} of {} set up again in {} ({} failed); per connection p50 {}, max {}",
                r.ready,
                r.connections,
                opt(r.all_ready_ms, "ms"),
                r.failures,
                opt(r.setup_p50_ms, "ms"),
                opt(r.setup_max_ms, "ms")
            )?;
        }
        let w = &self.work;
        writeln!(
            f,
            "  work: difficulty {}..{}, {} shares searched ({} hashes)",
            w.difficulty_min.map_or("-".into(), |d| format!("{d:e}")),
            w.difficulty_max.map_or("-".into(), |d| format!("{d:e}")),
            w.shares_searched,
            w.hashes
        )?;
        if let Some(cpu) = self.loadgen_cpu_percent {
            writeln!(f, "  loadgen CPU during window: {cpu:.0}% of a core")?;
        }
        if let Some(p) = &self.target_process {
            writeln!(
                f,
                "  target pid {}: RSS {} → {} → {} KiB; {} per idle connection; CPU {}",
                p.pid,
                p.rss_before_kib,
                p.rss_connected_kib,
                p.rss_after_kib,
                opt(p.bytes_per_connection, "B"),
                opt(p.cpu_percent, "%")
            )?;
            if let Some(kib) = p.rss_after_reconnect_kib {
                writeln!(f, "  target RSS after the reconnect storm: {kib} KiB")?;
            }
        }
        for (message, n) in &self.errors {
            writeln!(f, "  ! {n}× {message}")?;
        }
        Ok(())
    }
}
