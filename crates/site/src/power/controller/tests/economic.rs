//! The economic rule in simulated time: a tariff peak sleeps the miners that stop paying
//! their power, least efficient first; they wake after the peak with hysteresis and dwell;
//! power budget and economics together, the tighter wins.

use super::*;
use crate::economics::{EconomicRule, Network, Revenue, cost_ratio};

/// Block 881423 with 0.25 BTC fees and a 2 % pool fee at 100,000 USD: hashprice
/// 0.0615469 USD per TH/s per day (economics::revenue tests work it out by hand).
fn revenue() -> Revenue {
    Revenue {
        network: Network {
            difficulty: 108_105_433_845_147.16,
            height: 881_423,
        },
        fees_sats: 25_000_000.0,
        pool_fee: 0.02,
    }
}

const OFF_PEAK: f64 = 0.05;
/// At 0.0835 USD/kWh, cost / revenue = J/TH × 0.024 × 0.0835 / 0.0615469: 0.977 for m00
/// (30 J/TH), 0.993 for m01 (30.5), 1.009 for m02 (31), 1.026 for m03 (31.5).
const PEAK: f64 = 0.0835;

fn rule() -> EconomicRule {
    EconomicRule {
        margin: 0.0,
        hysteresis: 0.05,
        min_dwell: 300 * SEC,
    }
}

/// Feeds each miner's cost ratio at `per_kwh` from its nameplate J/TH.
fn feed(sim: &mut Sim, per_kwh: f64) {
    let r = revenue();
    for m in &sim.miners {
        let jth = m.nominal / 100.0;
        let ratio = cost_ratio(&r, 100_000.0, jth, per_kwh, 1.0);
        sim.ctl
            .observe_economics(&m.id, Some(ratio))
            .expect("known");
    }
}

fn economic_sim(container: &str) -> Sim {
    let cfg = config(container, 4);
    let mut sim = Sim::new(&cfg);
    sim.ctl.set_economic_rule(Some(rule()));
    sim
}

fn decisions_between(sim: &Sim, from: Instant) -> Vec<(String, Action, Reason)> {
    sim.log
        .iter()
        .filter(|(at, _)| *at >= from)
        .map(|(_, d)| {
            (
                d.miner.as_deref().unwrap_or("").to_owned(),
                d.action,
                d.reason,
            )
        })
        .collect()
}

#[test]
fn tariff_peak_sleeps_the_losing_miners_and_they_wake_after_it() {
    let mut sim = economic_sim("budget_kw = 100\nmin_dwell_secs = 60\nwake_stagger_secs = 30");
    feed(&mut sim, OFF_PEAK);
    let settle = sim.run(6, 10 * SEC);
    assert!(settle.iter().all(|r| r.decisions.is_empty()));

    // The peak starts: the two least efficient lose money and sleep at once, costliest first.
    feed(&mut sim, PEAK);
    let peak_start = sim.now;
    let r = sim.step(10 * SEC);
    let got: Vec<(&str, Action, Reason)> = r
        .decisions
        .iter()
        .map(|d| (d.miner.as_deref().unwrap_or(""), d.action, d.reason))
        .collect();
    assert_eq!(
        got,
        vec![
            ("m03", Action::Sleep, Reason::Uneconomic),
            ("m02", Action::Sleep, Reason::Uneconomic)
        ]
    );
    let kinds: Vec<Option<SleepKind>> = r.miners.iter().map(|m| m.asleep_reason).collect();
    assert_eq!(
        kinds,
        [
            None,
            None,
            Some(SleepKind::Economic),
            Some(SleepKind::Economic)
        ]
    );

    // Through the peak (100 s) nothing wakes, though the budget has room for both.
    sim.run(9, 10 * SEC);
    assert_eq!(sim.asleep(), ["m02", "m03"]);
    assert_eq!(decisions_between(&sim, peak_start + 10 * SEC), []);

    // The peak ends 100 s after the sleeps: still inside the economic dwell (300 s), so
    // they wait; then the most efficient wakes first, the other a stagger later.
    let slept_at = peak_start;
    feed(&mut sim, OFF_PEAK);
    let off_peak = sim.now;
    sim.run(60, 10 * SEC);
    let wakes = decisions_between(&sim, off_peak);
    assert_eq!(
        wakes,
        [
            ("m02".to_owned(), Action::Wake, Reason::Economic),
            ("m03".to_owned(), Action::Wake, Reason::Economic)
        ]
    );
    let woke_at: Vec<Instant> = sim
        .log
        .iter()
        .filter(|(at, d)| *at >= off_peak && d.action == Action::Wake)
        .map(|(at, _)| *at)
        .collect();
    assert!(
        woke_at[0] >= slept_at + 300 * SEC,
        "economic dwell respected"
    );
    assert!(
        woke_at[1] >= woke_at[0] + 30 * SEC,
        "wake stagger respected"
    );
    assert!(sim.asleep().is_empty());
}

#[test]
fn hysteresis_and_a_held_rule_keep_economic_sleepers_asleep() {
    let mut sim = economic_sim("budget_kw = 100\nmin_dwell_secs = 60\nwake_stagger_secs = 30");
    feed(&mut sim, PEAK);
    let start = sim.now;
    sim.run(2, 10 * SEC);
    assert_eq!(sim.asleep(), ["m02", "m03"]);

    // Just under break-even is not enough to wake: 1 − hysteresis is the bar. At 0.081
    // m02 costs 0.979 and m03 0.995 of what they earn.
    feed(&mut sim, 0.081);
    sim.run(60, 10 * SEC);
    assert_eq!(
        sim.asleep(),
        ["m02", "m03"],
        "{:?}",
        decisions_between(&sim, start)
    );

    // The price goes stale: the rule holds, nothing slept for economics wakes...
    sim.ctl.hold_economics(true);
    feed(&mut sim, OFF_PEAK);
    sim.run(60, 10 * SEC);
    assert_eq!(sim.asleep(), ["m02", "m03"]);
    // ...and nothing new is slept for economics either.
    feed(&mut sim, 1.0);
    sim.run(3, 10 * SEC);
    assert_eq!(sim.asleep(), ["m02", "m03"]);

    // Released with a fresh price, the off-peak sleepers wake.
    feed(&mut sim, OFF_PEAK);
    sim.ctl.hold_economics(false);
    sim.run(10, 10 * SEC);
    assert!(sim.asleep().is_empty());
}

#[test]
fn the_tighter_rule_wins_and_the_reason_is_kept() {
    // 9 kW holds three miners (3000 + 3050 + 3100 = 9150 W does not; 2 fit with margin).
    let mut sim = economic_sim("budget_kw = 9.2\nmin_dwell_secs = 60\nwake_stagger_secs = 30");
    feed(&mut sim, OFF_PEAK);
    let r = sim.step(10 * SEC);
    // The budget sheds the least efficient for power, economics has nothing to add.
    assert!(r.decisions.iter().all(|d| d.reason == Reason::OverBudget));
    assert_eq!(sim.asleep(), ["m02", "m03"]);
    sim.run(3, 10 * SEC);
    let r = sim.step(10 * SEC);
    let reason = |r: &TickReport, id: &str| {
        r.miners
            .iter()
            .find(|m| &*m.id == id)
            .and_then(|m| m.asleep_reason)
    };
    assert_eq!(reason(&r, "m03"), Some(SleepKind::Power));

    // The peak: m01 still pays, nobody else is awake to lose money. Budget raised: the
    // power sleepers would fit, but they lose money at the peak, so they stay asleep.
    feed(&mut sim, PEAK);
    sim.ctl.set_budget("c1", Some(100_000.0)).expect("valid");
    sim.run(60, 10 * SEC);
    assert_eq!(sim.asleep(), ["m02", "m03"]);
    // Off-peak they pay again and wake for headroom (they were slept for power).
    feed(&mut sim, OFF_PEAK);
    let off = sim.now;
    sim.run(10, 10 * SEC);
    assert!(sim.asleep().is_empty());
    assert!(
        decisions_between(&sim, off)
            .iter()
            .all(|(_, a, r)| *a == Action::Wake && *r == Reason::Headroom)
    );
}

#[test]
fn a_miner_found_asleep_is_manual_and_no_rule_means_no_economic_decisions() {
    // 9.3 kW: the three awake (9250 W) fit, the sleeper does not.
    let cfg = config("budget_kw = 9.3\nmin_dwell_secs = 60", 4);
    let mut sim = Sim::new(&cfg);
    sim.miner("m01").state = MinerState::Sleeping;
    // Cost ratios fed without a rule change nothing, however costly the power.
    feed(&mut sim, 1.0);
    let reports = sim.run(10, 10 * SEC);
    assert!(sim.log.is_empty(), "{:?}", sim.log);
    for r in &reports {
        let m01 = r.miners.iter().find(|m| &*m.id == "m01").expect("m01");
        assert_eq!(m01.asleep_reason, Some(SleepKind::Manual));
        let m00 = r.miners.iter().find(|m| &*m.id == "m00").expect("m00");
        assert_eq!(m00.asleep_reason, None);
    }
}
