//! Controller policy tests on a simulated container with synthetic time: miners obey
//! commands on the next reading, telemetry may carry noise or go silent.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::power::api::{MinerState, Telemetry};
use crate::power::inventory::PowerConfig;

const SEC: Duration = Duration::from_secs(1);

/// `count` miners named m00.., each 3000 + 50·i W at 100 TH/s: higher index is less efficient.
fn miners_toml(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "[[miners]]\nid = \"m{i:02}\"\ncontainer = \"c1\"\naddress = \"10.0.{}.{}\"\n\
                 family = \"luxos\"\nmodel = \"S19\"\nnominal_watts = {}\nnominal_ths = 100\n",
                i / 200,
                i % 200 + 1,
                3000 + 50 * i
            )
        })
        .collect()
}

fn config(container: &str, count: usize) -> PowerConfig {
    let text = format!(
        "[controller]\ntelemetry_max_age_secs = 60\nsleep_confirm_timeout_secs = 60\n\
         wake_ramp_secs = 30\n[[containers]]\nname = \"c1\"\n{container}\n{}",
        miners_toml(count)
    );
    match PowerConfig::from_toml_str(&text) {
        Ok(c) => c,
        Err(e) => panic!("test config: {e}\n{text}"),
    }
}

struct SimMiner {
    id: String,
    nominal: f64,
    state: MinerState,
    answering: bool,
    /// A broken power sensor or firmware: maps the true draw to what the API reports.
    misreport: Option<fn(f64) -> f64>,
}

/// A container whose miners do what they are told and report it on the next poll.
struct Sim {
    ctl: Controller,
    now: Instant,
    miners: Vec<SimMiner>,
    rng: StdRng,
    /// Relative telemetry noise, e.g. 0.03 for ±3 %.
    noise: f64,
    inlet_c: f64,
    /// Every decision with the tick time it was made at.
    log: Vec<(Instant, Decision)>,
}

impl Sim {
    fn new(cfg: &PowerConfig) -> Self {
        Self {
            ctl: Controller::new(cfg),
            now: Instant::now(),
            miners: cfg
                .miners
                .iter()
                .map(|m| SimMiner {
                    id: m.id.to_string(),
                    nominal: m.nominal_watts,
                    state: MinerState::Mining,
                    answering: true,
                    misreport: None,
                })
                .collect(),
            rng: StdRng::seed_from_u64(7),
            noise: 0.0,
            inlet_c: 28.0,
            log: Vec::new(),
        }
    }

    fn miner(&mut self, id: &str) -> &mut SimMiner {
        match self.miners.iter_mut().find(|m| m.id == id) {
            Some(m) => m,
            None => panic!("no sim miner {id}"),
        }
    }

    fn poll(&mut self) {
        for m in &self.miners {
            if !m.answering {
                self.ctl.observe_no_answer(&m.id, self.now).expect("known");
                continue;
            }
            let jitter = 1.0 + self.rng.random_range(-self.noise..=self.noise);
            let power = match m.state {
                MinerState::Sleeping => 30.0,
                MinerState::Mining | MinerState::Idle => m.nominal * jitter,
            };
            let power = m.misreport.map_or(power, |f| f(power));
            let t = Telemetry {
                power_watts: Some(power),
                inlet_temp_c: Some(self.inlet_c),
                board_temps_c: vec![self.inlet_c + 35.0],
                hashrate_ths: Some(100.0),
                fan_rpm: vec![4000],
                state: m.state,
            };
            self.ctl
                .observe_telemetry(&m.id, self.now, t)
                .expect("known");
        }
    }

    /// Polls, ticks at the current time, applies the commands, then advances by `dt`.
    fn step(&mut self, dt: Duration) -> TickReport {
        self.poll();
        let report = self.ctl.tick(self.now);
        for d in &report.decisions {
            self.log.push((self.now, d.clone()));
            let Some(id) = d.miner.as_deref() else {
                continue;
            };
            let state = match d.action {
                Action::Sleep => MinerState::Sleeping,
                Action::Wake => MinerState::Mining,
                Action::Blocked => continue,
            };
            self.miner(id).state = state;
        }
        self.now += dt;
        report
    }

    fn run(&mut self, ticks: usize, dt: Duration) -> Vec<TickReport> {
        (0..ticks).map(|_| self.step(dt)).collect()
    }

    fn asleep(&self) -> Vec<&str> {
        self.miners
            .iter()
            .filter(|m| m.state == MinerState::Sleeping)
            .map(|m| m.id.as_str())
            .collect()
    }

    fn true_load(&self) -> f64 {
        self.miners
            .iter()
            .map(|m| match m.state {
                MinerState::Sleeping => 30.0,
                _ => m.nominal,
            })
            .sum()
    }
}

fn container(report: &TickReport) -> &ContainerReport {
    report.containers.first().expect("one container")
}

fn index_of(id: &str) -> usize {
    id.trim_start_matches('m').parse().expect("mNN")
}

#[test]
fn budget_cut_to_half_is_met_within_one_tick_least_efficient_first() {
    let cfg = config("budget_kw = 80\nmin_dwell_secs = 60", 20);
    let mut sim = Sim::new(&cfg);
    let settle = sim.run(3, 10 * SEC);
    assert!(
        settle.iter().all(|r| r.decisions.is_empty()),
        "69.5 kW fits 80 kW"
    );

    sim.ctl.set_budget("c1", Some(40_000.0)).expect("valid");
    let r = sim.step(10 * SEC);
    let c = container(&r);
    assert!(c.load_watts > 40_000.0);
    assert!(c.projected_watts <= 40_000.0 - 400.0, "{c:?}");
    assert!(
        r.decisions
            .iter()
            .all(|d| d.action == Action::Sleep && d.reason == Reason::OverBudget)
    );
    // The sleepers are exactly the least efficient: a suffix of the index order.
    let asleep: Vec<usize> = sim.asleep().iter().map(|id| index_of(id)).collect();
    let first = 20 - asleep.len();
    assert_eq!(asleep, (first..20).collect::<Vec<_>>());
    assert!(sim.true_load() <= 40_000.0);

    // Until confirmed, the sleepers still count at nominal; nothing more is shed meanwhile.
    let r = sim.step(10 * SEC);
    assert!(r.decisions.is_empty(), "{:?}", r.decisions);
    assert!(
        container(&r).load_watts <= 40_000.0,
        "confirmed by telemetry"
    );
}

#[test]
fn budget_restored_wakes_one_per_stagger_most_efficient_first() {
    let cfg = config(
        "budget_kw = 80\nmin_dwell_secs = 60\nwake_stagger_secs = 30",
        20,
    );
    let mut sim = Sim::new(&cfg);
    sim.ctl.set_budget("c1", Some(40_000.0)).expect("valid");
    let cut_at = sim.now;
    sim.run(2, 10 * SEC);
    let slept = sim.asleep().len();
    assert!(slept >= 8);

    sim.ctl.set_budget("c1", None).expect("valid");
    sim.run(200, 5 * SEC);
    let wakes: Vec<(Instant, usize)> = sim
        .log
        .iter()
        .filter(|(t, d)| *t >= cut_at && d.action == Action::Wake)
        .map(|(t, d)| (*t, index_of(d.miner.as_deref().expect("miner"))))
        .collect();
    assert_eq!(wakes.len(), slept, "all fit 80 kW again");
    assert!(sim.asleep().is_empty());
    assert!(
        wakes.windows(2).all(|w| w[1].1 > w[0].1),
        "most efficient first: {wakes:?}"
    );
    assert!(
        wakes.windows(2).all(|w| w[1].0 - w[0].0 >= 30 * SEC),
        "staggered: {wakes:?}"
    );
    assert!(
        wakes.iter().all(|w| w.0 - cut_at >= 60 * SEC),
        "dwell before first wake"
    );
}

#[test]
fn temperature_spike_sheds_stepwise_and_recovers() {
    let cfg = config(
        "budget_kw = 80\nmin_dwell_secs = 60\nwake_stagger_secs = 10\ntemp_limit_c = 35\n\
         temp_hysteresis_c = 2\ntemp_shed_step_kw = 7\ntemp_shed_interval_secs = 60",
        20,
    );
    let mut sim = Sim::new(&cfg);
    sim.run(2, 10 * SEC);
    sim.inlet_c = 37.0;
    let r = sim.step(10 * SEC);
    assert!(container(&r).hot);
    let first: Vec<usize> = r
        .decisions
        .iter()
        .map(|d| {
            assert_eq!(
                (d.action, d.reason),
                (Action::Sleep, Reason::OverTemperature)
            );
            index_of(d.miner.as_deref().expect("miner"))
        })
        .collect();
    assert_eq!(first, vec![19, 18], "one 7 kW step, least efficient first");

    // Next step only after the interval; still hot inside the band (34 °C) keeps shedding.
    let r = sim.run(5, 10 * SEC);
    assert!(r.iter().all(|r| r.decisions.is_empty()));
    sim.inlet_c = 34.0;
    let r = sim.step(10 * SEC);
    assert_eq!(r.decisions.len(), 2);
    assert!(container(&r).hot);

    // Below limit − hysteresis: the latch opens and miners come back, staggered.
    sim.inlet_c = 32.0;
    let r = sim.run(60, 10 * SEC);
    assert!(!container(&r[0]).hot);
    assert!(
        sim.asleep().is_empty(),
        "all woken again: {:?}",
        sim.asleep()
    );
}

#[test]
fn noisy_telemetry_does_not_flap_over_an_hour() {
    // 100 miners (~548 kW nominal) on a 300 kW feed; ±3 % noise on every reading.
    let cfg = config(
        "budget_kw = 300\nmargin_kw = 6\nhysteresis_kw = 12\nmin_dwell_secs = 300\n\
         wake_stagger_secs = 30",
        100,
    );
    let mut sim = Sim::new(&cfg);
    sim.noise = 0.03;
    // Half an hour to settle: the first shed assumes nameplate standby for sleepers, the
    // real (lower) standby then frees room for a wake or two after the dwell.
    let settle = sim.run(180, 10 * SEC);
    assert!(
        settle
            .iter()
            .all(|r| container(r).projected_watts <= 300_000.0)
    );
    let toggles_before = sim.log.len();
    assert!(toggles_before > 0, "initial shed happened");
    let hour = sim.run(360, 10 * SEC);
    assert_eq!(
        sim.log.len(),
        toggles_before,
        "flapping: {:?}",
        &sim.log[toggles_before..]
    );
    assert!(
        hour.iter()
            .all(|r| container(r).load_watts <= 300_000.0 * 1.03)
    );
    assert!(sim.true_load() <= 300_000.0);
}

#[test]
fn unreachable_or_stale_miner_counts_at_nominal() {
    let cfg = config("budget_kw = 80", 3);
    let mut sim = Sim::new(&cfg);
    sim.miner("m01").answering = false;
    let r = sim.step(10 * SEC);
    let m = &r.miners[1];
    assert_eq!(
        (m.counted, m.counted_watts),
        (Counted::NameplateNoAnswer, 3050.0)
    );

    // A reading older than telemetry_max_age is as good as none.
    let t = Telemetry {
        power_watts: Some(100.0),
        inlet_temp_c: None,
        board_temps_c: vec![],
        hashrate_ths: None,
        fan_rpm: vec![],
        state: MinerState::Sleeping,
    };
    let old = sim.now;
    sim.ctl.observe_telemetry("m01", old, t).expect("known");
    assert_eq!(sim.ctl.tick(old).miners[1].counted_watts, 100.0);
    let r = sim.ctl.tick(old + 61 * SEC);
    assert_eq!(r.miners[1].counted, Counted::NameplateNoAnswer);
}

#[test]
fn unreachable_miner_pushes_the_container_over_budget() {
    // Two miners report low power, but one stops answering: counted at nominal, the
    // budget is exceeded, and the least efficient answering miner goes to sleep.
    let cfg = config("budget_kw = 9.2\nmargin_kw = 0.1", 3);
    let mut sim = Sim::new(&cfg);
    let r = sim.step(10 * SEC);
    assert!(r.decisions.is_empty(), "{:?}", container(&r));
    sim.miner("m02").answering = false;
    let r = sim.step(10 * SEC);
    assert!(r.decisions.is_empty(), "9150 W fits: {:?}", container(&r));
    sim.ctl.set_budget("c1", Some(9_000.0)).expect("valid");
    let r = sim.step(10 * SEC);
    let d = r.decisions.first().expect("a shed");
    assert_eq!(d.miner.as_deref(), Some("m01"), "answering before silent");
}

#[test]
fn pins_are_respected() {
    let cfg = config("budget_kw = 80\nmin_dwell_secs = 60", 6);
    let mut sim = Sim::new(&cfg);
    sim.ctl.set_pin("m05", Some(Pin::KeepOn)).expect("known");
    sim.ctl
        .set_pin("m04", Some(Pin::Maintenance))
        .expect("known");
    sim.ctl.set_pin("m00", Some(Pin::KeepOff)).expect("known");
    let r = sim.step(10 * SEC);
    assert_eq!(r.decisions.len(), 1);
    assert_eq!(r.decisions[0].reason, Reason::PinnedOff);
    assert_eq!(sim.asleep(), vec!["m00"]);

    // Budget cut: m05 (keep on) and m04 (maintenance) are skipped; m03 goes first.
    sim.ctl.set_budget("c1", Some(15_000.0)).expect("valid");
    let r = sim.step(10 * SEC);
    let slept: Vec<&str> = r
        .decisions
        .iter()
        .filter_map(|d| d.miner.as_deref())
        .collect();
    assert_eq!(slept, vec!["m03"]);

    // Cut below what the pinned miners draw: one blocked decision, not one per tick.
    sim.ctl.set_budget("c1", Some(5_000.0)).expect("valid");
    let reports = sim.run(5, 10 * SEC);
    let blocked: Vec<&Decision> = reports
        .iter()
        .flat_map(|r| &r.decisions)
        .filter(|d| d.action == Action::Blocked)
        .collect();
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].reason, Reason::NothingSleepable);
    assert!(
        reports
            .last()
            .is_some_and(|r| container(r).stuck_over_budget)
    );
    assert_eq!(
        sim.miner("m04").state,
        MinerState::Mining,
        "maintenance untouched"
    );
    assert_eq!(
        sim.miner("m05").state,
        MinerState::Mining,
        "keep-on untouched"
    );

    // Budget back: keep-off stays asleep, the rest return.
    sim.ctl.set_budget("c1", None).expect("valid");
    sim.run(100, 10 * SEC);
    assert_eq!(sim.asleep(), vec!["m00"]);
}

#[test]
fn keep_on_miner_is_woken_first() {
    // m01 + m02 awake (6150 W) under 7 kW: neither m00 nor m03 fits.
    let cfg = config(
        "budget_kw = 7\nmin_dwell_secs = 600\nwake_stagger_secs = 10",
        4,
    );
    let mut sim = Sim::new(&cfg);
    sim.miner("m03").state = MinerState::Sleeping;
    sim.miner("m00").state = MinerState::Sleeping;
    let r = sim.run(3, 10 * SEC);
    assert!(
        r.iter().all(|r| r.decisions.is_empty()),
        "adopted as asleep, nothing fits"
    );
    sim.ctl.set_pin("m03", Some(Pin::KeepOn)).expect("known");
    let r = sim.step(10 * SEC);
    assert!(
        r.decisions.is_empty(),
        "keep-on still has to fit the budget"
    );
    sim.ctl.set_budget("c1", Some(10_000.0)).expect("valid");
    let r = sim.step(10 * SEC);
    assert_eq!(r.decisions[0].miner.as_deref(), Some("m03"));
    assert_eq!(r.decisions[0].reason, Reason::PinnedOn);
}

#[test]
fn dwell_blocks_early_wake_and_heat_shed_but_not_the_budget() {
    let cfg = config(
        "budget_kw = 80\nmin_dwell_secs = 600\nwake_stagger_secs = 10\ntemp_limit_c = 35\n\
         temp_shed_step_kw = 3",
        6,
    );
    let mut sim = Sim::new(&cfg);
    sim.ctl.set_budget("c1", Some(12_000.0)).expect("valid");
    let r = sim.step(10 * SEC);
    assert_eq!(r.decisions.len(), 3, "{:?}", r.decisions);
    sim.ctl.set_budget("c1", None).expect("valid");
    let r = sim.run(59, 10 * SEC);
    assert!(
        r.iter().all(|r| r.decisions.is_empty()),
        "no wake inside 600 s of dwell"
    );
    let r = sim.step(10 * SEC);
    assert_eq!(r.decisions.first().map(|d| d.action), Some(Action::Wake));
    let woken = r.decisions[0].miner.clone().expect("miner");

    // Hot right after the wake: the just-woken miner is in dwell, so heat skips it.
    sim.inlet_c = 40.0;
    let r = sim.step(10 * SEC);
    let heat: Vec<&str> = r
        .decisions
        .iter()
        .filter_map(|d| d.miner.as_deref())
        .collect();
    assert_eq!(heat.len(), 1);
    assert_ne!(Some(heat[0]), woken.as_ref().into());

    // Only in-dwell miners left awake: the budget still gets its way.
    sim.inlet_c = 28.0;
    sim.ctl.set_budget("c1", Some(1_000.0)).expect("valid");
    let r = sim.step(10 * SEC);
    assert!(r.decisions.iter().any(|d| d.miner.as_ref() == Some(&woken)));
}

#[test]
fn unconfirmed_sleep_counts_at_nominal_and_is_retried() {
    let cfg = config("budget_kw = 17\nmargin_kw = 0.1", 6);
    let mut sim = Sim::new(&cfg);
    let r = sim.step(10 * SEC);
    let slept = r.decisions[0].miner.clone().expect("miner");
    // The miner ignores the command.
    sim.miner(&slept).state = MinerState::Mining;
    for _ in 0..5 {
        let r = sim.step(10 * SEC);
        assert!(
            r.decisions.is_empty(),
            "pending sleep is credited, no double shed"
        );
        let m = r.miners.iter().find(|m| m.id == slept).expect("listed");
        assert_eq!(m.counted, Counted::NameplateSleepPending);
        assert_eq!(m.state, PowerState::FallingAsleep);
    }
    let r = sim.step(10 * SEC);
    assert_eq!(
        r.decisions.first().map(|d| (d.miner.clone(), d.reason)),
        Some((Some(slept), Reason::SleepNotConfirmed))
    );
}

#[test]
fn a_woken_miner_counts_at_nominal_until_its_ramp_ends() {
    // The meter reading predates the wakes (meters lag); without counting each woken
    // miner at nominal, all four (12.3 kW) would be woken into a 10 kW budget.
    let cfg = config(
        "budget_kw = 10\nmargin_kw = 0.1\nhysteresis_kw = 0.2\nmin_dwell_secs = 10\n\
         wake_stagger_secs = 10\nmeter = { address = \"10.9.0.1:502\", max_age_secs = 30 }",
        4,
    );
    let mut sim = Sim::new(&cfg);
    for m in &mut sim.miners {
        m.state = MinerState::Sleeping;
    }
    sim.ctl.observe_meter("c1", sim.now, 120.0).expect("known");
    let reports = sim.run(4, 10 * SEC);
    assert!(
        reports
            .iter()
            .all(|r| container(r).source == LoadSource::Meter)
    );
    let loads: Vec<f64> = reports.iter().map(|r| container(r).load_watts).collect();
    assert!(loads[1] >= 3000.0 && loads[2] >= 5_900.0, "{loads:?}");
    let woken = sim
        .log
        .iter()
        .filter(|(_, d)| d.action == Action::Wake)
        .count();
    assert_eq!(woken, 3);
    assert!(sim.true_load() <= 10_000.0);
}

#[test]
fn stale_or_missing_meter_falls_back_with_reason() {
    let cfg = config(
        "budget_kw = 80\nmeter = { address = \"10.9.0.1:502\", max_age_secs = 30 }",
        2,
    );
    let mut sim = Sim::new(&cfg);
    let r = sim.step(10 * SEC);
    let c = container(&r);
    assert_eq!(
        (c.source, c.meter_fallback),
        (LoadSource::Miners, Some(MeterFallback::Missing))
    );
    assert!(c.meter_fallback_changed);
    sim.ctl
        .observe_meter("c1", sim.now, 6_500.0)
        .expect("known");
    let r = sim.step(10 * SEC);
    let c = container(&r);
    assert_eq!((c.source, c.load_watts), (LoadSource::Meter, 6_500.0));
    assert!(c.meter_fallback_changed);
    let r = sim.run(4, 10 * SEC);
    let c = container(&r[3]);
    assert_eq!(
        (c.source, c.meter_fallback),
        (LoadSource::Miners, Some(MeterFallback::Stale))
    );
    assert_eq!(c.load_watts, 6_050.0);
    sim.ctl
        .observe_meter("c1", sim.now, f64::NAN)
        .expect("known");
    let r = sim.step(10 * SEC);
    assert_eq!(container(&r).meter_fallback, Some(MeterFallback::Invalid));
}

#[test]
fn miner_woken_from_outside_is_sheddable_again() {
    let cfg = config("budget_kw = 9.2\nmargin_kw = 0.1\nmin_dwell_secs = 60", 3);
    let mut sim = Sim::new(&cfg);
    sim.miner("m02").state = MinerState::Sleeping;
    let r = sim.run(3, 10 * SEC);
    assert!(r.iter().all(|r| r.decisions.is_empty()));
    assert_eq!(sim.ctl.intended_state("m02"), Some(IntendedState::Asleep));
    // A technician wakes it from the web UI: 9150 W fits, nothing to do but follow it.
    sim.miner("m02").state = MinerState::Mining;
    let r = sim.step(10 * SEC);
    assert!(r.decisions.is_empty());
    assert_eq!(sim.ctl.intended_state("m02"), Some(IntendedState::Awake));
    // A budget cut must be able to put it back to sleep.
    sim.ctl.set_budget("c1", Some(6_500.0)).expect("valid");
    let r = sim.step(10 * SEC);
    let slept: Vec<&str> = r
        .decisions
        .iter()
        .filter_map(|d| d.miner.as_deref())
        .collect();
    assert_eq!(slept, vec!["m02"]);
}

#[test]
fn keep_off_miner_woken_from_outside_is_slept_again() {
    let cfg = config("budget_kw = 80", 2);
    let mut sim = Sim::new(&cfg);
    sim.ctl.set_pin("m01", Some(Pin::KeepOff)).expect("known");
    sim.run(3, 10 * SEC);
    assert_eq!(sim.asleep(), vec!["m01"]);
    sim.miner("m01").state = MinerState::Mining;
    let r = sim.step(10 * SEC);
    assert_eq!(
        r.decisions.first().map(|d| (d.miner.as_deref(), d.reason)),
        Some((Some("m01"), Reason::PinnedOff))
    );
}

#[test]
fn failed_sleep_command_moves_on_to_another_miner() {
    let cfg = config("budget_kw = 80\nmargin_kw = 0.1", 4);
    let mut sim = Sim::new(&cfg);
    sim.step(10 * SEC);
    sim.ctl.set_budget("c1", Some(9_500.0)).expect("valid");
    sim.poll();
    let r = sim.ctl.tick(sim.now);
    assert_eq!(r.decisions[0].miner.as_deref(), Some("m03"));
    sim.ctl
        .command_failed("m03", Action::Sleep, sim.now)
        .expect("known");
    sim.now += 10 * SEC;
    sim.poll();
    let r = sim.ctl.tick(sim.now);
    assert_eq!(r.decisions[0].miner.as_deref(), Some("m02"));
}

#[test]
fn control_requests_name_what_is_unknown_or_invalid() {
    let mut ctl = Controller::new(&config("budget_kw = 80", 1));
    assert_eq!(
        ctl.set_budget("c9", Some(1.0)),
        Err(ControlError::UnknownContainer("c9".into()))
    );
    assert!(matches!(
        ctl.set_budget("c1", Some(-1.0)),
        Err(ControlError::InvalidBudget { .. })
    ));
    assert!(ctl.set_budget("c1", Some(f64::NAN)).is_err());
    assert_eq!(
        ctl.set_pin("zz", None),
        Err(ControlError::UnknownMiner("zz".into()))
    );
    assert_eq!(ctl.budget_watts("c1"), Some(80_000.0));
    assert_eq!(ctl.intended_state("m00"), Some(IntendedState::Awake));
}

#[test]
fn heat_sheds_the_hottest_among_equally_efficient_miners() {
    let miners: String = (0..3)
        .map(|i| {
            format!(
                "[[miners]]\nid = \"s{i}\"\ncontainer = \"c1\"\naddress = \"10.0.0.{}\"\n\
                 family = \"braiins\"\nmodel = \"S19 XP\"\nnominal_watts = 3010\nnominal_ths = 141\n",
                i + 1
            )
        })
        .collect();
    let text = format!(
        "[[containers]]\nname = \"c1\"\nbudget_kw = 20\ntemp_limit_c = 35\ntemp_shed_step_kw = 1\n{miners}"
    );
    let cfg = PowerConfig::from_toml_str(&text).expect("valid");
    let mut ctl = Controller::new(&cfg);
    let now = Instant::now();
    for (id, board) in [("s0", 70.0), ("s1", 84.0), ("s2", 77.0)] {
        let t = Telemetry {
            power_watts: Some(3000.0),
            inlet_temp_c: Some(36.0),
            board_temps_c: vec![board - 5.0, board],
            hashrate_ths: Some(141.0),
            fan_rpm: vec![],
            state: MinerState::Mining,
        };
        ctl.observe_telemetry(id, now, t).expect("known");
    }
    let r = ctl.tick(now);
    let slept: Vec<(&str, Reason)> = r
        .decisions
        .iter()
        .filter_map(|d| Some((d.miner.as_deref()?, d.reason)))
        .collect();
    assert_eq!(slept, vec![("s1", Reason::OverTemperature)]);
}

/// Runs a 10-miner container (32.25 kW nameplate, 40 kW budget) where `m03` reports its
/// power through `misreport`; returns the last tick's report.
fn one_miner_misreporting(misreport: fn(f64) -> f64) -> (Sim, TickReport) {
    let cfg = config("budget_kw = 40\nmin_dwell_secs = 60", 10);
    let mut sim = Sim::new(&cfg);
    sim.miner("m03").misreport = Some(misreport);
    let reports = sim.run(4, 10 * SEC);
    assert!(
        reports.iter().all(|r| r.decisions.is_empty()),
        "one broken reading must not shed anyone: {:?}",
        reports
            .iter()
            .flat_map(|r| &r.decisions)
            .collect::<Vec<_>>()
    );
    let last = reports.into_iter().last().expect("ticks ran");
    (sim, last)
}

fn counted(report: &TickReport, id: &str) -> (f64, Counted) {
    let m = report
        .miners
        .iter()
        .find(|m| &*m.id == id)
        .expect("miner reported");
    (m.counted_watts, m.counted)
}

#[test]
fn an_absurd_power_reading_counts_at_nameplate_and_sheds_nobody() {
    let (sim, r) = one_miner_misreporting(|_| 1e12);
    assert_eq!(counted(&r, "m03"), (3150.0, Counted::NameplateImplausible));
    let load = container(&r).load_watts;
    assert!(
        (load - sim.true_load()).abs() < 1.0,
        "{load} vs {}",
        sim.true_load()
    );
    assert_eq!(sim.ctl.implausible_watts("m03", sim.now), Some(1e12));
    assert_eq!(sim.ctl.implausible_watts("m02", sim.now), None);
}

#[test]
fn milliwatts_read_as_watts_are_not_believed() {
    let (_, r) = one_miner_misreporting(|w| w * 1000.0);
    assert_eq!(counted(&r, "m03"), (3150.0, Counted::NameplateImplausible));
}

#[test]
fn kilowatts_read_as_watts_do_not_hide_a_mining_miner() {
    // 3.15 "W" from a miner that says it is mining would let the controller wake others
    // into a breaker trip; it counts at nameplate instead.
    let (_, r) = one_miner_misreporting(|w| w / 1000.0);
    assert_eq!(counted(&r, "m03"), (3150.0, Counted::NameplateImplausible));
}

#[test]
fn overclocked_but_believable_readings_are_used() {
    let (_, r) = one_miner_misreporting(|w| w * 1.3);
    let (watts, how) = counted(&r, "m03");
    assert_eq!(how, Counted::Telemetry);
    assert!((watts - 3150.0 * 1.3).abs() < 1e-6, "{watts}");
}

#[test]
fn reload_applies_budgets_and_inventory_keeping_what_stays() {
    let mut sim = Sim::new(&config("budget_kw = 20", 4));
    sim.run(2, 10 * SEC);
    sim.ctl
        .set_budget("c1", Some(7_000.0))
        .expect("known container");
    sim.run(3, 10 * SEC);
    let asleep: Vec<String> = sim.asleep().iter().map(|s| s.to_string()).collect();
    assert_eq!(asleep, ["m02", "m03"], "the two least efficient");

    // One miner more and a new configured budget: the override, the sleepers and their
    // confirmed state stay; the newcomer is known at once.
    let change = sim.ctl.reconfigure(&config("budget_kw = 12", 5));
    assert_eq!(change.miners_added, [Arc::<str>::from("m04")]);
    assert!(change.miners_removed.is_empty() && change.miners_changed.is_empty());
    assert_eq!(sim.ctl.budget_watts("c1"), Some(7_000.0));
    assert_eq!(
        sim.ctl.intended_state("m03"),
        Some(IntendedState::Asleep),
        "runtime state survived"
    );
    sim.miners.push(SimMiner {
        id: "m04".into(),
        nominal: 3200.0,
        state: MinerState::Mining,
        answering: true,
        misreport: None,
    });
    let r = sim.step(10 * SEC);
    assert!(
        r.decisions.iter().all(|d| d.action != Action::Wake),
        "a reload wakes no sleeper: {:?}",
        r.decisions
    );
    assert!(r.miners.iter().any(|m| &*m.id == "m04"));
    sim.run(3, 10 * SEC);
    assert!(sim.asleep().contains(&"m04"), "the newcomer is governed");
    sim.ctl.set_budget("c1", None).expect("known container");
    assert_eq!(sim.ctl.budget_watts("c1"), Some(12_000.0));

    // Two miners fewer: forgotten, never ordered again.
    let change = sim.ctl.reconfigure(&config("budget_kw = 30", 3));
    let removed: Vec<&str> = change.miners_removed.iter().map(|m| &**m).collect();
    assert_eq!(removed, ["m03", "m04"]);
    assert_eq!(
        sim.ctl.observe_no_answer("m04", sim.now),
        Err(ControlError::UnknownMiner("m04".into()))
    );
    sim.miners.retain(|m| m.id != "m03" && m.id != "m04");
    // 700 s: past the 600 s minimum dwell of the last sleep order.
    let reports = sim.run(70, 10 * SEC);
    for r in &reports {
        assert_eq!(r.miners.len(), 3);
        assert!(
            r.decisions
                .iter()
                .all(|d| !matches!(d.miner.as_deref(), Some("m03" | "m04"))),
            "{:?}",
            r.decisions
        );
    }
    assert!(
        sim.asleep().is_empty(),
        "the headroom woke m02: {:?}",
        sim.asleep()
    );
}

#[test]
fn reload_reads_changed_miners_again_and_keeps_admin_pins() {
    let text = |m01_address: &str, m02_pin: &str| {
        format!(
            "[[containers]]\nname = \"c1\"\nbudget_kw = 20\n\
             [[miners]]\nid = \"m00\"\ncontainer = \"c1\"\naddress = \"10.0.0.1\"\n\
             family = \"luxos\"\nmodel = \"S19\"\nnominal_watts = 3000\nnominal_ths = 100\n\
             [[miners]]\nid = \"m01\"\ncontainer = \"c1\"\naddress = \"{m01_address}\"\n\
             family = \"luxos\"\nmodel = \"S19\"\nnominal_watts = 3000\nnominal_ths = 100\n\
             [[miners]]\nid = \"m02\"\ncontainer = \"c1\"\naddress = \"10.0.0.3\"\n\
             family = \"luxos\"\nmodel = \"S19\"\nnominal_watts = 3000\nnominal_ths = 100\n\
             {m02_pin}"
        )
    };
    let parse = |t: String| PowerConfig::from_toml_str(&t).expect("valid");
    let mut ctl = Controller::new(&parse(text("10.0.0.2", "")));
    let now = Instant::now();
    let sleeping = Telemetry {
        power_watts: Some(30.0),
        inlet_temp_c: None,
        board_temps_c: Vec::new(),
        hashrate_ths: None,
        fan_rpm: Vec::new(),
        state: MinerState::Sleeping,
    };
    for id in ["m00", "m01", "m02"] {
        ctl.observe_telemetry(id, now, sleeping.clone())
            .expect("known");
    }
    let _ = ctl.tick(now);
    ctl.set_pin("m00", Some(Pin::KeepOff)).expect("known");
    // m01 moved to another address: maybe another machine, learnt again; m02 gets a pin
    // in the file; m00's admin pin is not the file's to lift.
    let change = ctl.reconfigure(&parse(text("10.0.0.9", "pin = \"keep_on\"\n")));
    let changed: Vec<&str> = change.miners_changed.iter().map(|m| &**m).collect();
    assert_eq!(changed, ["m01", "m02"]);
    assert_eq!(
        change.describe(),
        ["miners changed: m01, m02"],
        "{change:?}"
    );
    assert_eq!(ctl.pin("m00"), Some(Pin::KeepOff));
    assert_eq!(ctl.pin("m02"), Some(Pin::KeepOn));
    let m01 = ctl
        .miners
        .iter()
        .find(|m| &*m.spec.id == "m01")
        .expect("kept");
    assert!(!m01.adopted && m01.telemetry.is_none(), "{m01:?}");
    let m02 = ctl
        .miners
        .iter()
        .find(|m| &*m.spec.id == "m02")
        .expect("kept");
    assert!(
        m02.adopted && m02.telemetry.is_some(),
        "same machine: {m02:?}"
    );
    // The same file again changes nothing.
    let again = ctl.reconfigure(&parse(text("10.0.0.9", "pin = \"keep_on\"\n")));
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn reload_adds_and_removes_containers() {
    let two = PowerConfig::from_toml_str(
        "[[containers]]\nname = \"c1\"\nbudget_kw = 20\n\
         [[containers]]\nname = \"c2\"\nbudget_kw = 5\n\
         [[miners]]\nid = \"m00\"\ncontainer = \"c2\"\naddress = \"10.0.0.1\"\n\
         family = \"luxos\"\nmodel = \"S19\"\nnominal_watts = 3000\nnominal_ths = 100\n",
    )
    .expect("valid");
    let mut ctl = Controller::new(&config("budget_kw = 20", 1));
    ctl.set_budget("c1", Some(9_000.0)).expect("known");
    let change = ctl.reconfigure(&two);
    assert_eq!(change.containers_added, [Arc::<str>::from("c2")]);
    // m00 moved from c1 to c2: changed, though its entry's container index is the same.
    assert_eq!(change.miners_changed, [Arc::<str>::from("m00")]);
    assert_eq!(ctl.budget_watts("c2"), Some(5_000.0));
    assert_eq!(ctl.budget_watts("c1"), Some(9_000.0), "override kept");
    let r = ctl.tick(Instant::now());
    assert_eq!(r.containers.len(), 2);
    assert_eq!(&*r.miners[0].container, "c2");
    let change = ctl.reconfigure(&config("budget_kw = 20", 1));
    assert_eq!(change.containers_removed, [Arc::<str>::from("c2")]);
    assert_eq!(ctl.budget_watts("c2"), None);
    assert_eq!(
        ctl.set_budget("c2", Some(1.0)),
        Err(ControlError::UnknownContainer("c2".into()))
    );
}

fn heat_config() -> PowerConfig {
    config(
        "budget_kw = 80\nmin_dwell_secs = 60\nwake_stagger_secs = 10\ntemp_limit_c = 35\n\
         temp_hysteresis_c = 2\ntemp_shed_step_kw = 7\ntemp_shed_interval_secs = 60",
        20,
    )
}

#[test]
fn with_climate_heat_sheds_only_once_every_fan_is_on() {
    let mut sim = Sim::new(&heat_config());
    sim.run(2, 10 * SEC);
    // The miners read 37 °C, but the climate's inlet says 36 and fans can still be added.
    sim.inlet_c = 37.0;
    for _ in 0..12 {
        sim.ctl
            .observe_climate("c1", sim.now, Some(36.0), false)
            .expect("c1");
        let r = sim.step(10 * SEC);
        assert!(r.decisions.is_empty(), "{:?}", r.decisions);
        assert!(!container(&r).hot);
        assert_eq!(
            container(&r).temperature_c,
            Some(36.0),
            "the climate's inlet"
        );
    }
    // Every fan on and still over the limit: the heat rule sheds as it always did.
    sim.ctl
        .observe_climate("c1", sim.now, Some(36.0), true)
        .expect("c1");
    let r = sim.step(10 * SEC);
    assert!(container(&r).hot);
    assert_eq!(r.decisions.len(), 2, "{:?}", r.decisions);
    assert!(
        r.decisions
            .iter()
            .all(|d| d.reason == Reason::OverTemperature)
    );
}

#[test]
fn a_stale_climate_view_leaves_the_heat_rule_as_without_climate() {
    let mut sim = Sim::new(&heat_config());
    sim.ctl
        .observe_climate("c1", sim.now, Some(30.0), false)
        .expect("c1");
    // telemetry_max_age is 60 s: after that the miners' own inlet rules again.
    sim.run(7, 10 * SEC);
    sim.inlet_c = 37.0;
    let r = sim.step(10 * SEC);
    assert!(container(&r).hot);
    assert_eq!(r.decisions.len(), 2);
    assert_eq!(sim.ctl.miners_inlet_c("c1", sim.now), Some(37.0));
    assert!(sim.ctl.observe_climate("c9", sim.now, None, true).is_err());
}

#[test]
fn pue_inputs_follow_meters_miners_and_auxiliary_load() {
    use crate::power::pue::{FacilitySource, ItSource, PueUnknown};
    // Three miners of 3000, 3050, 3100 W: 9150 W of IT load from their telemetry.
    let mut sim = Sim::new(&config("budget_kw = 100", 3));
    let r = sim.step(SEC);
    let pue = container(&r).pue;
    assert_eq!(pue.it, Ok((9150.0, ItSource::Miners)));
    assert_eq!(pue.ratio(), Err(PueUnknown::NoFacilityPower));
    sim.ctl
        .set_auxiliary_watts("c1", Some(850.0))
        .expect("known");
    let r = sim.step(SEC);
    let pue = container(&r).pue;
    assert_eq!(
        pue.facility,
        Ok((10_000.0, FacilitySource::ItPlusAuxiliary))
    );
    assert!((pue.ratio().unwrap_or(0.0) - 10_000.0 / 9150.0).abs() < 1e-12);
    // One miner stops answering: its counted nameplate keeps the budget safe, but IT power
    // is no longer known, so neither is PUE.
    sim.miner("m01").answering = false;
    let r = sim.step(SEC);
    assert_eq!(
        container(&r).pue.ratio(),
        Err(PueUnknown::MinerPowerUnreported)
    );
    assert!(sim.ctl.set_auxiliary_watts("c1", Some(-1.0)).is_err());
    assert!(sim.ctl.set_auxiliary_watts("c9", Some(1.0)).is_err());
}

#[test]
fn pue_uses_a_fresh_feed_meter_and_an_it_meter_only_while_fresh() {
    use crate::power::pue::{FacilitySource, ItSource, PueUnknown};
    let cfg = config(
        "budget_kw = 100\n[containers.meter]\naddress = \"10.9.0.1:80\"\nmax_age_secs = 30\n\
         [containers.it_meter]\nkind = \"modbus\"\naddress = \"10.9.0.2\"\nmodel = \"eastron_sdm630\"\nmax_age_secs = 30",
        2,
    );
    let mut sim = Sim::new(&cfg);
    let r = sim.step(SEC);
    assert_eq!(
        container(&r).pue.it,
        Err(PueUnknown::ItMeterStale),
        "no reading yet"
    );
    let at = sim.now;
    sim.ctl.observe_meter("c1", at, 6600.0).expect("known");
    sim.ctl.observe_it_meter("c1", at, 6000.0).expect("known");
    let r = sim.step(SEC);
    let pue = container(&r).pue;
    assert_eq!(pue.facility, Ok((6600.0, FacilitySource::Meter)));
    assert_eq!(pue.it, Ok((6000.0, ItSource::ItMeter)));
    assert!((pue.ratio().unwrap_or(0.0) - 1.1).abs() < 1e-12);
    // 31 s later both readings are stale: unknown, not the old ratio.
    sim.now = at + Duration::from_secs(31);
    let r = sim.step(SEC);
    assert_eq!(container(&r).pue.ratio(), Err(PueUnknown::ItMeterStale));
}

#[test]
fn reload_with_a_new_meter_forgets_the_old_meters_reading() {
    let meter = |addr: &str| {
        format!("budget_kw = 80\nmeter = {{ address = \"{addr}:502\", max_age_secs = 30 }}")
    };
    let mut sim = Sim::new(&config(&meter("10.9.0.1"), 2));
    sim.ctl
        .observe_meter("c1", sim.now, 6_500.0)
        .expect("known");
    let r = sim.step(SEC);
    assert_eq!(container(&r).source, LoadSource::Meter);
    // The same meter again: its fresh reading still counts.
    sim.ctl.reconfigure(&config(&meter("10.9.0.1"), 2));
    let r = sim.step(SEC);
    assert_eq!(container(&r).source, LoadSource::Meter);
    // Another meter: the old one's watts say nothing of it.
    sim.ctl.reconfigure(&config(&meter("10.9.0.7"), 2));
    let r = sim.step(SEC);
    assert_eq!(
        (container(&r).source, container(&r).meter_fallback),
        (LoadSource::Miners, Some(MeterFallback::Missing))
    );
}

#[test]
fn reload_refuses_a_changed_climate_section() {
    let climate = |high: f64| {
        format!(
            "budget_kw = 20\n[containers.climate]\ndevice = \"10.9.0.3\"\nband_low_c = 24\n\
             band_high_c = {high}\nfans = [ {{ name = \"f1\", watts = 1000, coil = 0 }} ]"
        )
    };
    let ctl = Controller::new(&config(&climate(29.0), 2));
    let err = ctl
        .check_reload(&config(&climate(30.0), 2))
        .expect_err("a band the running climate controller would not see");
    assert!(
        err.to_string().contains("climate section changed") && err.to_string().contains("restart"),
        "{err}"
    );
    let err = ctl
        .check_reload(&config("budget_kw = 20", 2))
        .expect_err("a climate section taken away");
    assert!(err.to_string().contains("climate section changed"), "{err}");
    ctl.check_reload(&config(
        &climate(29.0).replace("budget_kw = 20", "budget_kw = 12"),
        2,
    ))
    .expect("same climate, new budget");
    let plain = Controller::new(&config("budget_kw = 20", 2));
    let err = plain
        .check_reload(&config(&climate(29.0), 2))
        .expect_err("a climate section added to a running container");
    assert!(err.to_string().contains("restart"), "{err}");
}

mod economic;
