//! The demo's script: start the simulated site and the real proxy, print status, and play a
//! few events an operator meets on a real site (demand response, a pool outage).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::sim::pool::PoolFault;
use hashgate_site::config::{ConfigError, RawConfig};
use hashgate_site::power::PowerStatus;
use hashgate_site::site::{MinerClients, Site, SiteError, SiteOptions};

use super::{DEMO_TOML, SimSite, status};

/// Something that happens during the demo.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// The utility asks the site to cut a container's draw (demand response).
    CutBudget {
        /// Container name.
        container: String,
        /// The new budget, kW.
        budget_kw: f64,
    },
    /// Demand response over: back to the configured budget.
    RestoreBudget {
        /// Container name.
        container: String,
    },
    /// The pool at this index drops every connection and refuses new ones.
    PoolDown(usize),
    /// That pool serves again.
    PoolUp(usize),
    /// The utility's critical peak: electricity at `per_kwh` for every container, so the
    /// least efficient models stop paying their power and sleep for economic reasons.
    TariffPeak {
        /// Price per kWh during the peak, in the economics currency.
        per_kwh: f64,
    },
    /// The peak is over: back to the configured tariffs.
    TariffPeakOver,
}

/// An event and when it happens after the start.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Time after the demo starts.
    pub at: Duration,
    /// What happens.
    pub kind: EventKind,
}

/// The default script: a budget cut at 20 s, restored at 40 s; the primary pool down from
/// 55 s to 70 s; a tariff peak from 80 s to 95 s.
pub fn default_events() -> Vec<Event> {
    let at = Duration::from_secs;
    vec![
        Event {
            at: at(20),
            kind: EventKind::CutBudget {
                container: "c01".into(),
                budget_kw: 18.0,
            },
        },
        Event {
            at: at(40),
            kind: EventKind::RestoreBudget {
                container: "c01".into(),
            },
        },
        Event {
            at: at(55),
            kind: EventKind::PoolDown(0),
        },
        Event {
            at: at(70),
            kind: EventKind::PoolUp(0),
        },
        Event {
            at: at(80),
            kind: EventKind::TariffPeak { per_kwh: 0.10 },
        },
        Event {
            at: at(95),
            kind: EventKind::TariffPeakOver,
        },
    ]
}

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Stop after this long; `None` runs until the shutdown token is cancelled.
    pub duration: Option<Duration>,
    /// Time between status lines.
    pub status_interval: Duration,
    /// Real hashes per second of each simulated ASIC.
    pub asic_hashrate: f64,
    /// The script of events.
    pub events: Vec<Event>,
    /// The process-wide metrics recorder, when the caller installed one.
    pub prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Where the demo's ledger goes (a new file in the temporary directory by default);
    /// `None` runs without one.
    pub ledger: Option<PathBuf>,
}

/// A ledger file of its own for each demo run, in the temporary directory.
pub fn temp_ledger_path() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!(
        "hashgate-demo-ledger-{}-{nanos:09}.sqlite",
        std::process::id()
    ))
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            duration: None,
            status_interval: Duration::from_secs(3),
            asic_hashrate: 4_000.0,
            events: default_events(),
            prometheus: None,
            ledger: Some(temp_ledger_path()),
        }
    }
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded configuration did not validate (a bug in `config/demo.toml`).
    #[error("demo configuration: {0}")]
    Config(#[from] ConfigError),
    /// A loopback port could not be bound.
    #[error("cannot start the simulated site: {0}")]
    Io(#[from] std::io::Error),
    /// The proxy did not start (or did not stop cleanly).
    #[error("proxy: {0}")]
    Site(#[from] SiteError),
}

/// What the demo saw, for its last line and for tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DemoSummary {
    /// Shares the proxy accepted.
    pub accepted: u64,
    /// Shares the pools accepted.
    pub pool_accepted: u64,
    /// Shares the proxy rejected.
    pub rejected: u64,
    /// Shares sent to a pool that got no verdict (pool gone, queue full, no answer).
    pub undelivered: u64,
    /// Of those, the ones rejected for a reason other than a stale job (expected at a pool
    /// switch); anything here is a fault.
    pub rejected_not_stale: u64,
    /// Sleep commands the power controller issued.
    pub sleeps: usize,
    /// Wake commands the power controller issued.
    pub wakes: usize,
    /// Highest real draw of the simulated miners over the container budget at a status line
    /// (once the budget had been in force for an interval), W; 0 when always inside.
    pub worst_overshoot_watts: f64,
    /// Miners connected at the end.
    pub miners: usize,
    /// Most fan banks running at a status line.
    pub max_fans: usize,
    /// The curtain pump was on at some status line.
    pub pump_seen: bool,
    /// Each pool group's share of the work the simulated pools accepted from the
    /// balancer's first figures to the end (the whole run if it never had any; empty with
    /// one group).
    pub split: Vec<status::GroupSplit>,
    /// Each pool group's share of the share-proven hashrate at the balancer's last run
    /// (empty with one group, or before any hashrate was proven).
    pub balancer_split: Vec<status::GroupSplit>,
}

fn fans_running(status: &PowerStatus, container: &str) -> usize {
    status
        .containers
        .iter()
        .find(|c| c.name == container)
        .and_then(|c| c.climate.as_ref())
        .map_or(0, |c| c.fans_running)
}

/// Runs the demo, handing each line of output to `print`.
///
/// # Errors
/// See [`DemoError`].
pub async fn run(
    options: DemoOptions,
    shutdown: CancellationToken,
    mut print: impl FnMut(String),
) -> Result<DemoSummary, DemoError> {
    let mut raw = RawConfig::parse(DEMO_TOML)?;
    let account = raw.proxy.account.clone().unwrap_or_default();
    let mut sim = SimSite::start(&mut raw, options.asic_hashrate, 1e-6).await?;
    if let Some(path) = &options.ledger {
        raw.ledger = Some(hashgate_site::ledger::LedgerConfigRaw {
            path: Some(path.display().to_string()),
            retention_days: None,
            // Often enough to watch the export move during a short demo.
            flush_secs: Some(10.0),
        });
    }
    let config = raw.validate()?;
    let (split_config, pool_configs) = (config.split.clone(), config.pools.clone());
    // The simulators' own clients: a simulated stock Antminer takes its web writes on a
    // port of its own, which an inventory address cannot name.
    let clients = match &config.power {
        Some(power) => sim.clients(&raw, power.driver.timeouts),
        None => Vec::new(),
    };
    let site = Site::start(
        SiteOptions::new(config)
            .miner_clients(MinerClients::Given(clients))
            .metrics(options.prometheus.clone()),
    )
    .await?;
    let registry = site.registry.clone();
    let hub = site.hub.clone();
    let power = site.power.clone();
    let economics = site.economics.clone();
    print(format!(
        "hashgate demo: proxy on {} | {} simulated pools | {} simulated ASICs ({} real hashes/s each) with management APIs",
        site.miner_addr,
        sim.pools.len(),
        sim.miners.len(),
        options.asic_hashrate
    ));
    sim.start_asics(site.miner_addr, &account);
    if let Some(ledger) = &site.ledger {
        print(format!(
            "hashgate demo: ledger in {}",
            ledger.path().display()
        ));
        print(
            "hashgate demo: ledger read with: hashgate ledger export --file <that file> --by container|customer"
                .to_owned(),
        );
    }
    let ledger_path = site.ledger.as_ref().map(|l| l.path().to_owned());
    if let Some(http_addr) = site.http_addr {
        print(format!(
            "hashgate demo: metrics on http://{http_addr}/metrics | status API http://{http_addr}/api/v1/miners | power view http://{http_addr}/api/v1/power"
        ));
        if economics.is_some() {
            print(format!(
                "hashgate demo: economics (hashprice, shutdown prices, tariff) on http://{http_addr}/api/v1/economics"
            ));
        }
    }

    let start = Instant::now();
    let mut events = options.events.clone();
    events.sort_by_key(|e| e.at);
    let mut events = events.into_iter().peekable();
    let mut seen_decisions = 0usize;
    let mut summary = DemoSummary::default();
    let mut last_budgets: Vec<f64> = Vec::new();
    let mut ticker = tokio::time::interval(options.status_interval);
    ticker.tick().await;
    // The pools' work when the balancer first had figures: before that, miners sit where
    // they were placed by count, and sleeping ones skew a short run's totals.
    let mut split_baseline: Option<(Duration, Vec<f64>)> = None;
    loop {
        // Events fire at their own time, not on the next status tick (up to an interval
        // late): a status line follows on the tick as usual.
        let next_event = events
            .peek()
            .map(|e| tokio::time::Instant::from_std(start + e.at));
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = sleep_until_some(next_event) => {
                let elapsed = start.elapsed();
                while let Some(event) = events.next_if(|e| e.at <= elapsed) {
                    print(format!(
                        "  >>> [{:>6.1}s] {}",
                        start.elapsed().as_secs_f64(),
                        play(&event.kind, &sim, power.as_ref(), economics.as_deref())
                    ));
                }
                continue;
            }
            _ = ticker.tick() => {}
        }
        let elapsed = start.elapsed();
        let status = power.as_ref().map(|h| h.status());
        if let Some(status) = &status {
            for d in status.recent_decisions.iter().skip(seen_decisions) {
                print(format!(
                    "         power: {} {} ({}) -> {}",
                    d.action,
                    d.miner.as_deref().unwrap_or(&d.container),
                    d.reason,
                    d.outcome
                ));
                match d.action {
                    "sleep" => summary.sleeps += 1,
                    "wake" => summary.wakes += 1,
                    _ => {}
                }
            }
            seen_decisions = status.recent_decisions.len().max(seen_decisions);
            track_overshoot(
                status,
                sim.power_watts(Instant::now()),
                &mut last_budgets,
                &mut summary,
            );
        }
        print(status::status_line(
            elapsed,
            &registry,
            status.as_ref(),
            Instant::now(),
        ));
        let groups = hub.split().status();
        if let Some(line) = status::split_line(&groups) {
            print(line);
        }
        if groups.len() > 1 && groups.iter().any(|g| g.hashrate > 0.0) {
            if split_baseline.is_none() {
                split_baseline = Some((elapsed, group_work(&sim, &split_config, &pool_configs)));
            }
            summary.balancer_split = groups
                .iter()
                .map(|g| status::GroupSplit {
                    name: g.name.clone(),
                    target: g.target_ratio,
                    achieved: g.achieved_ratio,
                })
                .collect();
        }
        if let Some(status) = &status {
            let now = Instant::now();
            for (name, air) in &sim.containers {
                let (outdoor, humidity) = air.weather(now);
                let line = status
                    .containers
                    .iter()
                    .find(|c| &c.name == name)
                    .and_then(|c| status::climate_line(c, air.hour(now), outdoor, humidity));
                if let Some(line) = line {
                    summary.max_fans = summary.max_fans.max(fans_running(status, name));
                    summary.pump_seen |= line.contains("| pump on |");
                    print(line);
                }
            }
        }
        if options.duration.is_some_and(|d| elapsed >= d) {
            break;
        }
    }

    let now = Instant::now();
    let miners = registry.miners(now);
    summary.accepted = miners.iter().map(|(_, s)| s.totals.accepted).sum();
    summary.pool_accepted = miners.iter().map(|(_, s)| s.totals.pool_accepted).sum();
    summary.undelivered = miners
        .iter()
        .map(|(_, s)| s.totals.undelivered_total())
        .sum();
    summary.rejected = miners.iter().map(|(_, s)| s.totals.rejected_total()).sum();
    let stale = hashgate_protocol::work::ShareReject::ALL
        .iter()
        .position(|r| *r == hashgate_protocol::work::ShareReject::Stale)
        .unwrap_or(0);
    summary.rejected_not_stale = miners
        .iter()
        .map(|(_, s)| {
            s.totals.rejected_total() - s.totals.rejected.get(stale).copied().unwrap_or(0)
        })
        .sum();
    summary.miners = miners.len();
    for miner in &sim.miners {
        if let Some(asic) = &miner.asic {
            asic.stop().await;
        }
    }
    let stopped = site.shutdown().await;
    if split_config.groups.len() > 1 {
        let (since, baseline) = match split_baseline {
            Some((at, work)) => (Some(at), work),
            None => (None, vec![0.0; split_config.groups.len()]),
        };
        let work: Vec<f64> = group_work(&sim, &split_config, &pool_configs)
            .iter()
            .zip(&baseline)
            .map(|(now, then)| now - then)
            .collect();
        summary.split = pool_split(&work, &split_config);
        print(status::final_split_line(&summary.split, since));
    }
    for pool in &sim.pools {
        pool.shutdown().await;
    }
    print(format!(
        "hashgate demo: done | shares ok {} rej {} | pool ok {} undelivered {} | power: {} sleeps, {} wakes, worst overshoot {:.1} kW",
        summary.accepted,
        summary.rejected,
        summary.pool_accepted,
        summary.undelivered,
        summary.sleeps,
        summary.wakes,
        summary.worst_overshoot_watts / 1000.0
    ));
    if let Some(path) = &ledger_path {
        for line in ledger_lines(path) {
            print(line);
        }
    }
    stopped?;
    Ok(summary)
}

/// Work (credited difficulty) each group's simulated pools have accepted so far.
fn group_work(
    sim: &SimSite,
    split: &hashgate_site::config::SplitConfig,
    pools: &[hashgate_site::config::PoolConfig],
) -> Vec<f64> {
    let work_of = |name: &str| -> f64 {
        sim.pool_names
            .iter()
            .position(|n| n == name)
            .and_then(|i| sim.pools.get(i))
            .map_or(0.0, |p| {
                p.stats()
                    .workers
                    .values()
                    .map(|w| w.accepted_difficulty)
                    .sum()
            })
    };
    split
        .groups
        .iter()
        .map(|g| g.pools_of(pools).iter().map(|p| work_of(&p.name)).sum())
        .collect()
}

/// Each group's share of `work` (one figure per group) against its weight's share.
fn pool_split(work: &[f64], split: &hashgate_site::config::SplitConfig) -> Vec<status::GroupSplit> {
    let total_work: f64 = work.iter().sum();
    let total_weight: f64 = split.groups.iter().map(|g| g.weight).sum();
    split
        .groups
        .iter()
        .zip(work)
        .map(|(g, w)| status::GroupSplit {
            name: g.name.to_string(),
            target: g.weight / total_weight,
            achieved: if total_work > 0.0 {
                w / total_work
            } else {
                0.0
            },
        })
        .collect()
}

/// One line per container of what this run's ledger holds (written at shutdown), or why it
/// could not be read.
fn ledger_lines(path: &std::path::Path) -> Vec<String> {
    use hashgate_site::ledger::{GroupBy, Reader, parse_time};
    let to = parse_time("now").unwrap_or(0) + 3600;
    let table =
        match Reader::open(path).and_then(|r| r.export(to - 3 * 3600, to, GroupBy::Container)) {
            Ok(table) => table,
            Err(error) => return vec![format!("hashgate demo: ledger unreadable: {error}")],
        };
    let column = |name: &str| table.columns.iter().position(|c| c == name);
    let mut totals: std::collections::BTreeMap<String, [f64; 4]> = Default::default();
    let mut priced: std::collections::BTreeMap<String, (Option<f64>, Option<f64>)> =
        Default::default();
    for row in &table.rows {
        let cell = |name: &str| column(name).and_then(|i| row.get(i));
        let value = |name: &str| match cell(name) {
            Some(hashgate_site::ledger::Cell::Real(v)) => Some(*v),
            Some(hashgate_site::ledger::Cell::Int(v)) => Some(*v as f64),
            _ => None,
        };
        let name = cell("container")
            .map(ToString::to_string)
            .unwrap_or_default();
        let t = totals.entry(name.clone()).or_default();
        t[0] += value("it_kwh").unwrap_or(0.0);
        t[1] += value("metered_kwh").unwrap_or(0.0);
        t[2] += value("work_th").unwrap_or(0.0);
        t[3] += value("accepted").unwrap_or(0.0);
        let p = priced.entry(name).or_default();
        let add = |acc: &mut Option<f64>, v: Option<f64>| {
            if let Some(v) = v {
                *acc.get_or_insert(0.0) += v;
            }
        };
        add(&mut p.0, value("revenue"));
        add(&mut p.1, value("cost"));
    }
    let mut lines = Vec::new();
    for (container, [it, metered, th, accepted]) in totals {
        lines.push(format!(
            "hashgate demo: ledger {container}: miners {it:.3} kWh, meter {metered:.3} kWh, \
             work {th:.3e} TH, {accepted:.0} shares"
        ));
        if let Some((revenue, cost)) = priced.get(&container)
            && (revenue.is_some() || cost.is_some())
        {
            let money = |v: &Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3e}"));
            lines.push(format!(
                "hashgate demo: ledger {container}: revenue {}, cost {} (the economics' currency)",
                money(revenue),
                money(cost)
            ));
        }
    }
    lines
}

fn play(
    kind: &EventKind,
    sim: &SimSite,
    power: Option<&hashgate_site::power::PowerHandle>,
    economics: Option<&hashgate_site::economics::Economics>,
) -> String {
    match kind {
        EventKind::TariffPeak { per_kwh } => match economics {
            Some(e) => {
                e.set_price_signal(Some(("peak", *per_kwh)));
                let snap = e.snapshot(Instant::now());
                let losing: Vec<&str> = snap
                    .models
                    .iter()
                    .filter(|m| m.break_even_tariff_per_kwh.is_some_and(|t| t < *per_kwh))
                    .map(|m| m.model.as_str())
                    .collect();
                format!(
                    "tariff peak: {per_kwh:.3} {}/kWh; losing money now: {}",
                    snap.currency,
                    if losing.is_empty() {
                        "none".to_owned()
                    } else {
                        losing.join(", ")
                    }
                )
            }
            None => "tariff peak: no [economics] configured".to_owned(),
        },
        EventKind::TariffPeakOver => match economics {
            Some(e) => {
                e.set_price_signal(None);
                "tariff peak over: back to the configured tariff; economic sleepers wake after their dwell"
                    .to_owned()
            }
            None => "tariff peak over: no [economics] configured".to_owned(),
        },
        EventKind::CutBudget {
            container,
            budget_kw,
        } => {
            let result = power.map(|h| h.set_budget(container, Some(budget_kw * 1000.0)));
            format!(
                "demand response: {container} budget cut to {budget_kw:.1} kW ({})",
                outcome(result)
            )
        }
        EventKind::RestoreBudget { container } => {
            let result = power.map(|h| h.set_budget(container, None));
            format!(
                "demand response over: {container} back to its configured budget ({})",
                outcome(result)
            )
        }
        EventKind::PoolDown(i) => match (sim.pools.get(*i), sim.pool_names.get(*i)) {
            (Some(pool), Some(name)) => {
                pool.set_fault(PoolFault::Disconnect);
                format!("pool {name} goes down: miners should keep mining on the backup")
            }
            _ => format!("no pool {i} to take down"),
        },
        EventKind::PoolUp(i) => match (sim.pools.get(*i), sim.pool_names.get(*i)) {
            (Some(pool), Some(name)) => {
                pool.set_fault(PoolFault::None);
                format!("pool {name} is back: miners return to it once it is healthy")
            }
            _ => format!("no pool {i} to bring up"),
        },
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn outcome<E: std::fmt::Display>(result: Option<Result<(), E>>) -> String {
    match result {
        Some(Ok(())) => "applied".into(),
        Some(Err(e)) => format!("refused: {e}"),
        None => "no power gating configured".into(),
    }
}

fn track_overshoot(
    status: &PowerStatus,
    drawn_watts: f64,
    last_budgets: &mut Vec<f64>,
    summary: &mut DemoSummary,
) {
    // Judge the budget on what the simulated miners really draw, not on the controller's
    // own estimate. A cut takes effect on the controller's next tick, so a container counts
    // only once its budget has been the same for a whole status interval. The demo has a
    // single container, so the site's draw is that container's.
    for (i, c) in status.containers.iter().enumerate() {
        let settled = last_budgets.get(i) == Some(&c.budget_watts);
        if settled && status.containers.len() == 1 {
            summary.worst_overshoot_watts = summary
                .worst_overshoot_watts
                .max(drawn_watts - c.budget_watts);
        }
    }
    *last_budgets = status.containers.iter().map(|c| c.budget_watts).collect();
}
