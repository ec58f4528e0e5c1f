//! What `loadgen compare` reports: every phase side by side, what each proxy added to
//! the direct latency, and each other proxy's figures as ratios to hashgate's.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Serialize;

use super::proxy_child::ProxyExit;
use super::{LatencySummary, LoadReport};
use hashgate_lab::sim::pool::SimPoolStats;

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
    /// What changed from `before` to `after`.
    pub fn between(before: &SimPoolStats, after: &SimPoolStats) -> Self {
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

/// A proxy's CPU over its phase (set-up, window and answers), split user / kernel.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuSplit {
    /// Seconds in its own code.
    pub user_s: f64,
    /// Seconds in the kernel (socket reads and writes, mostly).
    pub system_s: f64,
}

/// Which proxy a phase ran through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyKind {
    /// A `hashgate` binary (`--proxy-binary-b`).
    Hashgate,
    /// aiostratum-proxy through `tools/aiostratum/run.py`.
    Aiostratum,
    /// SRI's translator_sv2 (SV1 miners, SV2 pool).
    TranslatorSv2,
}

/// One figure of another proxy next to hashgate's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Versus {
    /// hashgate's (phase b).
    pub hashgate: f64,
    /// The other proxy's.
    pub other: f64,
    /// `other / hashgate`; absent when hashgate's is not positive.
    pub ratio: Option<f64>,
}

impl Versus {
    fn of(hashgate: f64, other: f64) -> Self {
        Versus {
            hashgate,
            other,
            ratio: (hashgate > 0.0 && other.is_finite()).then(|| other / hashgate),
        }
    }
}

/// Another proxy's figures as ratios to hashgate's under the same load (each absent
/// where either side lacks the figure).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Ratios {
    /// Proxy CPU (user + system) from the window's start to the last answer, per
    /// accepted share, µs.
    pub cpu_us_per_share: Option<Versus>,
    /// Median answer latency, µs.
    pub p50_us: Option<Versus>,
    /// 99th percentile answer latency, µs.
    pub p99_us: Option<Versus>,
    /// Proxy memory per idle connection, bytes.
    pub bytes_per_connection: Option<Versus>,
    /// Shares answered `true` per second of the window.
    pub accepted_per_s: Option<Versus>,
}

/// A proxy's CPU per accepted share in µs, from its `/proc` figures.
pub fn cpu_us_per_share(r: &LoadReport) -> Option<f64> {
    let cpu_s = r.target_process.as_ref()?.cpu_s?;
    (r.shares.accepted > 0).then(|| cpu_s * 1e6 / r.shares.accepted as f64)
}

impl Ratios {
    /// `other` against `hashgate`, figure by figure.
    pub fn between(hashgate: &LoadReport, other: &LoadReport) -> Self {
        let both = |get: &dyn Fn(&LoadReport) -> Option<f64>| {
            Some(Versus::of(get(hashgate)?, get(other)?))
        };
        fn answered(r: &LoadReport) -> Option<&LoadReport> {
            (r.latency.count > 0).then_some(r)
        }
        Ratios {
            cpu_us_per_share: both(&cpu_us_per_share),
            p50_us: both(&|r| answered(r).map(|r| r.latency.p50_us)),
            p99_us: both(&|r| answered(r).map(|r| r.latency.p99_us)),
            bytes_per_connection: both(&|r| r.target_process.as_ref()?.bytes_per_connection),
            accepted_per_s: both(&|r| Some(r.shares.accepted_per_s)),
        }
    }
}

/// A phase through another proxy than the first hashgate: a second hashgate build, or
/// aiostratum-proxy.
#[derive(Debug, Clone, Serialize)]
pub struct OtherProxy {
    /// What it is.
    pub kind: ProxyKind,
    /// Its column title.
    pub label: String,
    /// The binary (or Python interpreter) run.
    pub program: PathBuf,
    /// Its pid.
    pub pid: u32,
    /// Where the miners connected to it.
    pub addr: SocketAddr,
    /// The load through it (its `target_process` is the proxy).
    pub load: LoadReport,
    /// The pool's counters over its phase: what it forwarded.
    pub pool: PoolPhase,
    /// Its latency minus the direct phase's.
    pub added_latency: Option<AddedLatency>,
    /// Its CPU over its phase.
    pub cpu: Option<CpuSplit>,
    /// How it ended.
    pub exit: ProxyExit,
    /// Its figures against hashgate's (phase b).
    pub versus_hashgate: Ratios,
}

/// Every phase and the proxy processes.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    /// The pool.
    pub pool: SocketAddr,
    /// Which pool: `sim pool` (in this process) or `pool_sv2`.
    pub pool_name: String,
    /// The difficulty the sim pool gave the proxy (pool_sv2 sets each channel's target
    /// itself: none).
    pub pool_difficulty: Option<f64>,
    /// The miners' difficulty in every phase.
    pub miner_difficulty: f64,
    /// The hashgate proxy child's pid.
    pub proxy_pid: u32,
    /// Where the miners connected to it.
    pub proxy_addr: SocketAddr,
    /// Phase (a), straight to the pool (absent with `skip_direct`).
    pub direct: Option<LoadReport>,
    /// The pool's counters over phase (a).
    pub direct_pool: Option<PoolPhase>,
    /// Phase (b), through hashgate (its `target_process` is the proxy).
    pub proxied: LoadReport,
    /// The pool's counters over phase (b): what the proxy forwarded.
    pub proxied_pool: PoolPhase,
    /// Phase (b) latency minus phase (a).
    pub added_latency: Option<AddedLatency>,
    /// The proxy's CPU over phase (b).
    pub proxy_cpu: Option<CpuSplit>,
    /// How the proxy ended.
    pub proxy_exit: ProxyExit,
    /// Phases (c), (d): a second hashgate binary, aiostratum-proxy, in that order.
    pub others: Vec<OtherProxy>,
}

/// A latency row: its label and how to read it off a summary.
type Quantile = (&'static str, fn(&LatencySummary) -> f64);

/// An added-latency row: its label and how to read it off the difference.
type AddedRow = (&'static str, fn(&AddedLatency) -> f64);

/// Column width of every figure cell.
const CELL: usize = 18;

/// One table row: a label and its cells.
fn row(f: &mut fmt::Formatter<'_>, label: &str, cells: &[String]) -> fmt::Result {
    write!(f, "  {label:<28}")?;
    for cell in cells {
        write!(f, " {cell:>CELL$}")?;
    }
    writeln!(f)
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

fn opt_fixed(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// One column of the table: a load report (absent for a skipped direct phase), the
/// pool's counters over it, and what it added to the direct latency.
struct Column<'a> {
    title: String,
    load: Option<&'a LoadReport>,
    pool: Option<&'a PoolPhase>,
    added: Option<AddedLatency>,
}

impl CompareReport {
    fn columns(&self) -> Vec<Column<'_>> {
        let mut columns = vec![
            Column {
                title: "direct".into(),
                load: self.direct.as_ref(),
                pool: self.direct_pool.as_ref(),
                added: None,
            },
            Column {
                title: if self.others.is_empty() {
                    "through proxy".into()
                } else {
                    "hashgate".into()
                },
                load: Some(&self.proxied),
                pool: Some(&self.proxied_pool),
                added: self.added_latency,
            },
        ];
        columns.extend(self.others.iter().map(|o| Column {
            title: o.label.clone(),
            load: Some(&o.load),
            pool: Some(&o.pool),
            added: o.added_latency,
        }));
        columns
    }
}

impl fmt::Display for CompareReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.proxied;
        writeln!(
            f,
            "hashgate-loadgen compare: {} connections, {:.0} shares/s for {:.1} s per phase",
            p.connections.requested, p.shares.target_rate, p.shares.duration_s
        )?;
        match self.pool_difficulty {
            Some(d) => writeln!(
                f,
                "  {} {} (difficulty {d:e} to hashgate, miners at {:e}); hashgate pid {} on {}",
                self.pool_name, self.pool, self.miner_difficulty, self.proxy_pid, self.proxy_addr
            )?,
            None => writeln!(
                f,
                "  {} {} (sets each channel's target; miners at {:e}); hashgate pid {} on {}",
                self.pool_name, self.pool, self.miner_difficulty, self.proxy_pid, self.proxy_addr
            )?,
        }
        for o in &self.others {
            writeln!(
                f,
                "  {}: {} pid {} on {}",
                o.label,
                o.program.display(),
                o.pid,
                o.addr
            )?;
        }
        let columns = self.columns();
        let cells = |get: &dyn Fn(&Column<'_>) -> Option<String>| -> Vec<String> {
            columns
                .iter()
                .map(|c| get(c).unwrap_or_else(|| "-".into()))
                .collect()
        };
        let load = |get: &dyn Fn(&LoadReport) -> String| cells(&|c| c.load.map(get));
        row(f, "", &cells(&|c| Some(c.title.clone())))?;
        row(
            f,
            "ready / held at end",
            &load(&|r| format!("{} / {}", r.connections.ready, r.connections.held_at_end)),
        )?;
        row(
            f,
            "sent / accepted",
            &load(&|r| format!("{} / {}", r.shares.sent, r.shares.accepted)),
        )?;
        row(
            f,
            "accepted per s",
            &load(&|r| format!("{:.0}", r.shares.accepted_per_s)),
        )?;
        row(
            f,
            "rejected / timeouts / lost",
            &load(&|r| {
                format!(
                    "{} / {} / {}",
                    r.shares.rejected(),
                    r.shares.timeouts,
                    r.shares.lost_in_flight
                )
            }),
        )?;
        row(
            f,
            "pool accepted / rejected",
            &cells(&|c| {
                c.pool
                    .map(|pp| format!("{} / {}", pp.accepted, pp.rejected))
            }),
        )?;
        let quantiles: [Quantile; 6] = [
            ("latency p50 (µs)", |l| l.p50_us),
            ("latency p90 (µs)", |l| l.p90_us),
            ("latency p99 (µs)", |l| l.p99_us),
            ("latency p99.9 (µs)", |l| l.p999_us),
            ("latency max (µs)", |l| l.max_us),
            ("latency mean (µs)", |l| l.mean_us),
        ];
        for (label, get) in quantiles {
            row(f, label, &load(&|r| us(get(&r.latency))))?;
        }
        let added: [AddedRow; 3] = [
            ("added p50 (µs)", |a| a.p50_us),
            ("added p90 (µs)", |a| a.p90_us),
            ("added p99 (µs)", |a| a.p99_us),
        ];
        if self.added_latency.is_some() {
            for (label, get) in added {
                row(
                    f,
                    label,
                    &cells(&|c| c.added.as_ref().map(|a| signed_us(get(a)))),
                )?;
            }
        }
        row(
            f,
            "send lag p99 (µs)",
            &load(&|r| us(r.shares.send_lag.p99_us)),
        )?;
        row(
            f,
            "all ready / setup p50 (ms)",
            &load(&|r| {
                format!(
                    "{} / {}",
                    opt_ms(r.connections.all_ready_ms),
                    opt_ms(r.connections.setup_p50_ms)
                )
            }),
        )?;
        row(
            f,
            "fan-out widest spread (ms)",
            &load(&|r| opt_ms(r.fanout.max_spread_us.map(|us| us / 1000.0))),
        )?;
        if p.reconnect.is_some() {
            row(
                f,
                "reconnect storm (ms)",
                &load(&|r| {
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
                }),
            )?;
        }
        row(
            f,
            "loadgen + pool CPU (%)",
            &load(&|r| opt_ms(r.loadgen_cpu_percent)),
        )?;
        let proc = |get: &dyn Fn(&super::ProcessReport) -> String| {
            cells(&|c| c.load?.target_process.as_ref().map(get))
        };
        row(
            f,
            "proxy CPU in window (%)",
            &proc(&|t| opt_ms(t.cpu_percent)),
        )?;
        row(
            f,
            "proxy CPU per share (µs)",
            &cells(&|c| c.load.and_then(cpu_us_per_share).map(|v| format!("{v:.1}"))),
        )?;
        row(
            f,
            "proxy RSS idle (KiB)",
            &proc(&|t| format!("{} → {}", t.rss_before_kib, t.rss_connected_kib)),
        )?;
        row(
            f,
            "proxy bytes per idle conn",
            &proc(&|t| opt_fixed(t.bytes_per_connection, 0)),
        )?;
        let cpu_cell = |c: &CpuSplit| format!("{:.2} / {:.2}", c.user_s, c.system_s);
        let mut phase_cpu = vec!["-".to_string(), opt_cell(self.proxy_cpu.as_ref(), cpu_cell)];
        phase_cpu.extend(
            self.others
                .iter()
                .map(|o| opt_cell(o.cpu.as_ref(), cpu_cell)),
        );
        row(f, "proxy CPU user / sys (s)", &phase_cpu)?;
        if let Some(t) = &p.target_process
            && let Some(kib) = t.rss_after_reconnect_kib
        {
            writeln!(f, "  hashgate RSS after the reconnect storm: {kib} KiB")?;
        }
        for o in &self.others {
            ratios(f, &o.label, &o.versus_hashgate)?;
        }
        exit(f, "hashgate", &self.proxy_exit)?;
        for o in &self.others {
            exit(f, &o.label, &o.exit)?;
        }
        for c in &columns {
            for (message, n) in c.load.map(|r| r.errors.as_slice()).unwrap_or_default() {
                writeln!(f, "  ! {}: {n}× {message}", c.title)?;
            }
        }
        Ok(())
    }
}

fn opt_cell<T>(v: Option<&T>, show: impl Fn(&T) -> String) -> String {
    v.map_or_else(|| "-".into(), show)
}

/// `label / hashgate: CPU per share 16.0 → 210.3 µs (×13.1); ...`
fn ratios(f: &mut fmt::Formatter<'_>, label: &str, r: &Ratios) -> fmt::Result {
    let items: [(&str, Option<Versus>, &str); 5] = [
        ("CPU per share", r.cpu_us_per_share, "µs"),
        ("p50", r.p50_us, "µs"),
        ("p99", r.p99_us, "µs"),
        ("memory per connection", r.bytes_per_connection, "B"),
        ("accepted/s", r.accepted_per_s, ""),
    ];
    let parts: Vec<String> = items
        .iter()
        .filter_map(|(name, v, unit)| {
            let v = (*v)?;
            let ratio = v.ratio.map_or_else(|| "-".into(), |x| format!("×{x:.2}"));
            Some(format!(
                "{name} {:.1} → {:.1}{}{unit} ({ratio})",
                v.hashgate,
                v.other,
                if unit.is_empty() { "" } else { " " }
            ))
        })
        .collect();
    writeln!(f, "  {label} / hashgate: {}", parts.join("; "))
}

fn exit(f: &mut fmt::Formatter<'_>, label: &str, e: &ProxyExit) -> fmt::Result {
    writeln!(
        f,
        "  {label} exit: {} ({}), {} log lines",
        e.status,
        if e.graceful {
            "clean after SIGTERM"
        } else {
            "NOT clean"
        },
        e.log_lines
    )?;
    for line in &e.log_tail {
        writeln!(f, "  {label}| {line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProcessReport, ShareReport};

    fn summary(p50: f64, p99: f64) -> LatencySummary {
        LatencySummary {
            count: 10,
            mean_us: p50,
            p50_us: p50,
            p90_us: p50,
            p99_us: p99,
            p999_us: p99,
            max_us: p99,
        }
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

    fn report(
        accepted: u64,
        cpu_s: Option<f64>,
        bytes: Option<f64>,
        l: LatencySummary,
    ) -> LoadReport {
        let mut r = LoadReport::empty(SocketAddr::from(([127, 0, 0, 1], 3333)));
        r.shares = ShareReport {
            accepted,
            accepted_per_s: accepted as f64 / 10.0,
            ..r.shares
        };
        r.latency = l;
        r.target_process = Some(ProcessReport {
            pid: 1,
            rss_before_kib: 1000,
            rss_connected_kib: 2000,
            rss_after_kib: 2000,
            bytes_per_connection: bytes,
            cpu_percent: cpu_s.map(|s| s * 10.0),
            cpu_s,
            rss_after_reconnect_kib: None,
        });
        r
    }

    #[test]
    fn cpu_per_share_is_window_cpu_over_accepted_shares() {
        let r = report(50_000, Some(1.0), None, summary(100.0, 900.0));
        assert_eq!(cpu_us_per_share(&r), Some(20.0));
        assert_eq!(
            cpu_us_per_share(&report(0, Some(1.0), None, summary(0.0, 0.0))),
            None
        );
        assert_eq!(
            cpu_us_per_share(&report(10, None, None, summary(0.0, 0.0))),
            None
        );
    }

    #[test]
    fn ratios_are_the_other_proxy_over_hashgate() {
        let hashgate = report(50_000, Some(1.0), Some(8_000.0), summary(200.0, 3_000.0));
        let other = report(
            40_000,
            Some(8.0),
            Some(20_000.0),
            summary(1_000.0, 30_000.0),
        );
        let r = Ratios::between(&hashgate, &other);
        let cpu = r.cpu_us_per_share.expect("both have CPU");
        assert_eq!((cpu.hashgate, cpu.other), (20.0, 200.0));
        assert_eq!(cpu.ratio, Some(10.0));
        assert_eq!(r.p50_us.and_then(|v| v.ratio), Some(5.0));
        assert_eq!(r.p99_us.and_then(|v| v.ratio), Some(10.0));
        assert_eq!(r.bytes_per_connection.and_then(|v| v.ratio), Some(2.5));
        assert_eq!(r.accepted_per_s.and_then(|v| v.ratio), Some(0.8));
    }

    #[test]
    fn a_missing_or_zero_figure_gives_no_ratio() {
        let hashgate = report(50_000, None, Some(8_000.0), summary(200.0, 3_000.0));
        let mut other = report(40_000, Some(8.0), None, summary(0.0, 0.0));
        other.latency.count = 0;
        let r = Ratios::between(&hashgate, &other);
        assert_eq!(r.cpu_us_per_share, None);
        assert_eq!(r.bytes_per_connection, None);
        assert_eq!(r.p50_us, None, "no answer timed, no latency");
        let zero = Versus::of(0.0, 5.0);
        assert_eq!(zero.ratio, None);
    }
}
