//! The demo's status lines: what an operator would glance at on a site dashboard.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hashgate_site::power::PowerStatus;
use hashgate_site::stats::{Registry, UpstreamState};

/// Formats a hash rate with an SI prefix, e.g. `16.2 kH/s`.
pub fn format_hashrate(hashes_per_second: f64) -> String {
    const UNITS: [&str; 7] = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"];
    let mut value = hashes_per_second.max(0.0);
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// One status line: miners, share-proven hashrate, local and pool verdicts, active pool, and
/// each container's power against its budget.
pub fn status_line(
    elapsed: Duration,
    registry: &Registry,
    power: Option<&PowerStatus>,
    now: Instant,
) -> String {
    let miners = registry.miners(now);
    let rates: Vec<f64> = miners.iter().filter_map(|(_, s)| s.hashrate[0]).collect();
    // Hashrate windows report nothing for a miner's first seconds (too few shares to mean
    // anything); say so rather than print a misleading zero.
    let hashrate = if rates.is_empty() && !miners.is_empty() {
        "warming up".to_owned()
    } else {
        format_hashrate(rates.iter().sum())
    };
    let accepted: u64 = miners.iter().map(|(_, s)| s.totals.accepted).sum();
    let rejected: u64 = miners.iter().map(|(_, s)| s.totals.rejected_total()).sum();
    let pool_accepted: u64 = miners.iter().map(|(_, s)| s.totals.pool_accepted).sum();
    let pool_rejected: u64 = miners
        .iter()
        .map(|(_, s)| s.totals.pool_rejected_total())
        .sum();
    let undelivered: u64 = miners
        .iter()
        .map(|(_, s)| s.totals.undelivered_total())
        .sum();
    let active = registry
        .upstreams()
        .into_iter()
        .filter(|u| u.state == UpstreamState::Active)
        .map(|u| u.pool.to_string())
        .collect::<Vec<_>>();
    // Fits 120 columns with one container and a short pool name: a status line that wraps
    // is unreadable scrolling by.
    let mut line = format!(
        "[{:>4}s] {:>2} miners {:>10} | ok {:>5} rej {:>2} | pool {} ok {:>5} rej {:>2} undel {:>2}",
        elapsed.as_secs(),
        miners.len(),
        hashrate,
        accepted,
        rejected,
        if active.is_empty() {
            "-".to_owned()
        } else {
            active.join(",")
        },
        pool_accepted,
        pool_rejected,
        undelivered,
    );
    if let Some(power) = power {
        for c in &power.containers {
            let asleep = power
                .miners
                .iter()
                .filter(|m| {
                    m.container == c.name && matches!(m.intended, Some("asleep" | "falling_asleep"))
                })
                .count();
            let _ = write!(
                line,
                " | {} {:.1}/{:.1} kW {} asleep",
                c.name,
                c.load_watts.unwrap_or(0.0) / 1000.0,
                c.budget_watts / 1000.0,
                asleep
            );
        }
    }
    line
}

/// One container's climate line: simulated time and weather, the inlet hashgate follows,
/// fans and pump as switched, their load and the container's PUE. `None` before the first
/// climate tick.
pub fn climate_line(
    container: &hashgate_site::power::driver::ContainerStatus,
    hour: f64,
    outdoor_c: f64,
    humidity: f64,
) -> Option<String> {
    let c = container.climate.as_ref()?;
    let minutes = (hour * 60.0) as u32;
    // A bar shows which banks run (rotation); past six banks the count alone fits.
    let fans: String = if c.fans.len() <= 6 {
        c.fans
            .iter()
            .map(|f| if f.on { '#' } else { '.' })
            .chain(std::iter::once(' '))
            .collect()
    } else {
        String::new()
    };
    let pue = container
        .pue
        .pue
        .map_or_else(|| "-".to_owned(), |p| format!("{p:.3}"));
    let inlet = c
        .inlet_c
        .map_or_else(|| "lost".to_owned(), |t| format!("{t:.1}°C"));
    let mut line = format!(
        "  climate {} {:02}:{:02} out {:.1}°C {:.0}% | in {} | fans {}/{} {}| pump {} | aux {:.1}kW | PUE {}",
        container.name,
        minutes / 60,
        minutes % 60,
        outdoor_c,
        humidity,
        inlet,
        c.fans_running,
        c.fans.len(),
        fans,
        match &c.pump {
            Some(p) if p.on => "on",
            Some(_) => "off",
            None => "-",
        },
        c.aux_watts / 1000.0,
        pue,
    );
    // Short codes: every alarm at once must still fit 120 columns.
    let alarms: Vec<&str> = c
        .alarms
        .iter()
        .map(|a| match *a {
            "sensors_lost" => "SENS",
            "humidity_lost" => "RH",
            "control_lost" => "CTRL",
            "over_temperature_all_fans" => "HOT",
            other => other,
        })
        .collect();
    if !alarms.is_empty() {
        let _ = write!(line, " | ! {}", alarms.join(","));
    }
    // A long container name must not wrap the line.
    if line.chars().count() > 120 {
        line = line.chars().take(119).chain(std::iter::once('>')).collect();
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_status_line_fits_120_columns() {
        use hashgate_site::power::driver::ContainerStatus;
        let registry = Registry::new();
        registry
            .upstream(&std::sync::Arc::from("primary"))
            .set_state(UpstreamState::Active);
        let power = PowerStatus {
            ticks: 1,
            last_tick_unix_ms: None,
            containers: vec![ContainerStatus {
                name: "c01".into(),
                budget_watts: 26_000.0,
                configured_budget_watts: 26_000.0,
                load_watts: Some(25_999.0),
                projected_watts: None,
                load_source: None,
                meter_fallback: None,
                inlet_c: None,
                hot: false,
                stuck_over_budget: false,
                climate: None,
                pue: Default::default(),
            }],
            miners: Vec::new(),
            site_pue: Default::default(),
            recent_decisions: Vec::new(),
        };
        let line = status_line(
            Duration::from_secs(9_999),
            &registry,
            Some(&power),
            Instant::now(),
        );
        assert!(
            line.chars().count() <= 120,
            "{} chars: {line}",
            line.chars().count()
        );
    }

    #[test]
    fn a_climate_line_with_every_alarm_fits_120_columns() {
        use hashgate_site::power::driver::{ClimateStatus, ContainerStatus, FanStatus, PumpStatus};
        let fan = |name: &str| FanStatus {
            name: name.into(),
            on: true,
            mode: "auto",
            run_hours: 1.0,
        };
        let container = ContainerStatus {
            name: "c01".into(),
            budget_watts: 26_000.0,
            configured_budget_watts: 26_000.0,
            load_watts: None,
            projected_watts: None,
            load_source: None,
            meter_fallback: None,
            inlet_c: Some(31.2),
            hot: false,
            stuck_over_budget: false,
            climate: Some(ClimateStatus {
                band_low_c: 24.0,
                band_high_c: 29.0,
                inlet_c: Some(-31.2),
                inlet_source: Some("miners"),
                outlet_c: None,
                humidity_percent: None,
                outdoor_c: None,
                fans_running: 12,
                fans: (1..=12).map(|i| fan(&format!("fan{i}"))).collect(),
                pump: Some(PumpStatus {
                    on: true,
                    mode: "on",
                    run_hours: 1.0,
                }),
                aux_watts: 14_350.0,
                cooling_exhausted: true,
                fail_safe: true,
                alarms: vec![
                    "sensors_lost",
                    "humidity_lost",
                    "control_lost",
                    "over_temperature_all_fans",
                ],
            }),
            pue: Default::default(),
        };
        let line = climate_line(&container, 23.99, -10.5, 100.0).expect("climate");
        assert!(line.contains("! SENS,RH,CTRL,HOT"), "{line}");
        let six = ContainerStatus {
            climate: container.climate.clone().map(|mut c| {
                c.fans.truncate(6);
                c
            }),
            ..container.clone()
        };
        let line6 = climate_line(&six, 23.99, -10.5, 100.0).expect("climate");
        assert!(line6.contains("###### |"), "{line6}");
        assert!(line6.chars().count() <= 120, "{line6}");
        assert!(
            line.chars().count() <= 120,
            "{} chars: {line}",
            line.chars().count()
        );
    }

    #[test]
    fn hashrates_get_readable_units() {
        assert_eq!(format_hashrate(0.0), "0.0 H/s");
        assert_eq!(format_hashrate(16_200.0), "16.2 kH/s");
        assert_eq!(format_hashrate(104e12), "104.0 TH/s");
        assert_eq!(format_hashrate(2.5e21), "2500.0 EH/s");
    }
}

/// The split between pool groups as the balancer last measured it, e.g.
/// `         split: main 71.3 % (target 70 %) | second 28.7 % (target 30 %, donating)`;
/// `None` on a site with one group.
pub(super) fn split_line(groups: &[hashgate_site::hub::GroupStatus]) -> Option<String> {
    if groups.len() < 2 {
        return None;
    }
    // Before any hashrate is proven there is no share to show, only where miners are.
    let proven = groups.iter().any(|g| g.hashrate > 0.0);
    let parts: Vec<String> = groups
        .iter()
        .map(|g| {
            let achieved = if proven {
                format!("{:.1} %", g.achieved_ratio * 100.0)
            } else {
                "warming up".to_owned()
            };
            format!(
                "{} {achieved} (target {:.0} %{}, {} miners)",
                g.name,
                g.target_ratio * 100.0,
                if g.state == "ready" { "" } else { ", donating" },
                g.miners
            )
        })
        .collect();
    Some(format!("         split: {}", parts.join(" | ")))
}

/// One group's share of the work (or hashrate) against its target.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSplit {
    /// The group's name.
    pub name: String,
    /// Its configured share: weight over all weights.
    pub target: f64,
    /// Its pools' accepted work over all pools' accepted work.
    pub achieved: f64,
}

/// The closing split line from the pools' own counts, since the balancer's first figures
/// at `since` into the run (`None`: over the whole run).
pub(super) fn final_split_line(split: &[GroupSplit], since: Option<Duration>) -> String {
    let parts: Vec<String> = split
        .iter()
        .map(|g| {
            format!(
                "{} {:.1} % (target {:.0} %)",
                g.name,
                g.achieved * 100.0,
                g.target * 100.0
            )
        })
        .collect();
    let window = match since {
        Some(at) => format!(
            " from {:.0} s on (the balancer's first figures)",
            at.as_secs_f64()
        ),
        None => " over the whole run (the balancer never had figures)".to_owned(),
    };
    format!(
        "hashgate demo: split of the work the pools accepted{window}: {}",
        parts.join(" | ")
    )
}
