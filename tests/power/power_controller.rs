//! Property test of the budget controller through its public API: random containers,
//! demand-response budget changes, pins, silent miners, noisy telemetry and heat, with the
//! safety rules checked on every tick.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hashgate_site::power::api::{MinerState, Telemetry};
use hashgate_site::power::controller::{Action, Controller, Reason, TickReport};
use hashgate_site::power::inventory::{Pin, PowerConfig};
use proptest::prelude::*;

const TICK: Duration = Duration::from_secs(10);
const DWELL: Duration = Duration::from_secs(120);
const STAGGER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct MinerDef {
    watts: u32,
    ths: u32,
    asleep_at_start: bool,
}

#[derive(Debug, Clone)]
enum Event {
    Budget(f64),
    Pin(usize, Option<Pin>),
    Silent(usize, bool),
    Inlet(f64),
}

fn event(miners: usize) -> impl Strategy<Value = Event> {
    prop_oneof![
        (0.1f64..1.4).prop_map(Event::Budget),
        (
            0..miners,
            prop_oneof![
                Just(None),
                Just(Some(Pin::KeepOn)),
                Just(Some(Pin::KeepOff)),
                Just(Some(Pin::Maintenance))
            ]
        )
            .prop_map(|(i, p)| Event::Pin(i, p)),
        (0..miners, any::<bool>()).prop_map(|(i, s)| Event::Silent(i, s)),
        (25.0f64..42.0).prop_map(Event::Inlet),
    ]
}

fn scenario() -> impl Strategy<Value = (Vec<MinerDef>, Vec<Option<Event>>)> {
    prop::collection::vec(
        (1000u32..4000, 20u32..200, any::<bool>()).prop_map(|(watts, ths, asleep_at_start)| {
            MinerDef {
                watts,
                ths,
                asleep_at_start,
            }
        }),
        2..30,
    )
    .prop_flat_map(|miners| {
        let n = miners.len();
        // Mostly quiet ticks, an event now and then.
        let events = prop::collection::vec(prop::option::weighted(0.15, event(n)), 150..300);
        (Just(miners), events)
    })
}

fn config(miners: &[MinerDef]) -> PowerConfig {
    let total: u32 = miners.iter().map(|m| m.watts).sum();
    let mut text = format!(
        "[controller]\nsleep_confirm_timeout_secs = 40\nwake_ramp_secs = 60\n\
         [[containers]]\nname = \"c\"\nbudget_kw = {}\nmargin_kw = 0.2\nhysteresis_kw = 0.5\n\
         min_dwell_secs = {}\nwake_stagger_secs = {}\ntemp_limit_c = 36\ntemp_hysteresis_c = 2\n\
         temp_shed_step_kw = 2\ntemp_shed_interval_secs = 60\n",
        f64::from(total) / 1000.0 * 0.7,
        DWELL.as_secs(),
        STAGGER.as_secs()
    );
    for (i, m) in miners.iter().enumerate() {
        text.push_str(&format!(
            "[[miners]]\nid = \"m{i}\"\ncontainer = \"c\"\naddress = \"10.0.0.{}\"\n\
             family = \"braiins\"\nmodel = \"x\"\nnominal_watts = {}\nnominal_ths = {}\n",
            i + 1,
            m.watts,
            m.ths
        ));
    }
    PowerConfig::from_toml_str(&text).expect("generated config is valid")
}

struct World {
    state: Vec<MinerState>,
    silent: Vec<bool>,
    pins: Vec<Option<Pin>>,
    last_toggle: HashMap<String, Instant>,
    last_wake: Option<Instant>,
}

fn check_tick(
    cfg: &PowerConfig,
    w: &mut World,
    report: &TickReport,
    now: Instant,
) -> Result<(), TestCaseError> {
    let c = &report.containers[0];
    let spec = &cfg.containers[0];
    prop_assert!(
        c.projected_watts <= c.budget_watts + 1e-6 || c.stuck_over_budget,
        "projected over budget without the stuck flag: {c:?}"
    );
    for d in &report.decisions {
        let Some(id) = d.miner.as_deref() else {
            prop_assert_eq!(d.action, Action::Blocked);
            continue;
        };
        let i: usize = id.trim_start_matches('m').parse().expect("mN");
        let m = &cfg.miners[i];
        let pin = w.pins[i];
        prop_assert_ne!(pin, Some(Pin::Maintenance), "commanded a maintenance miner");
        let in_dwell = w
            .last_toggle
            .get(id)
            .is_some_and(|t| now.duration_since(*t) < DWELL);
        match d.action {
            Action::Wake => {
                prop_assert_ne!(pin, Some(Pin::KeepOff));
                prop_assert!(
                    c.load_watts + m.nominal_watts <= c.budget_watts - spec.margin_watts + 1e-6,
                    "wake does not fit: {c:?} + {}",
                    m.nominal_watts
                );
                if pin != Some(Pin::KeepOn) {
                    prop_assert!(!in_dwell, "woke {id} inside its dwell");
                }
                prop_assert!(
                    w.last_wake.is_none_or(|t| now.duration_since(t) >= STAGGER),
                    "two wakes inside the stagger"
                );
                w.last_wake = Some(now);
            }
            Action::Sleep => {
                prop_assert_ne!(pin, Some(Pin::KeepOn), "slept a keep-on miner");
                if d.reason == Reason::OverTemperature {
                    prop_assert!(!in_dwell, "heat shed {id} inside its dwell");
                }
            }
            Action::Blocked => prop_assert!(false, "blocked decision names a miner"),
        }
        w.last_toggle.insert(id.to_owned(), now);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn safety_rules_hold_on_every_tick((miners, events) in scenario()) {
        let cfg = config(&miners);
        let mut ctl = Controller::new(&cfg);
        let total: f64 = cfg.miners.iter().map(|m| m.nominal_watts).sum();
        let mut w = World {
            state: miners
                .iter()
                .map(|m| if m.asleep_at_start { MinerState::Sleeping } else { MinerState::Mining })
                .collect(),
            silent: vec![false; miners.len()],
            pins: vec![None; miners.len()],
            last_toggle: HashMap::new(),
            last_wake: None,
        };
        let mut inlet = 30.0;
        let mut now = Instant::now();
        let mut noise = 0u64;
        for ev in &events {
            match ev {
                Some(Event::Budget(f)) => ctl.set_budget("c", Some(total * f)).expect("valid"),
                Some(Event::Pin(i, p)) => {
                    ctl.set_pin(&cfg.miners[*i].id, *p).expect("known");
                    w.pins[*i] = *p;
                }
                Some(Event::Silent(i, s)) => w.silent[*i] = *s,
                Some(Event::Inlet(t)) => inlet = *t,
                None => {}
            }
            for (i, m) in cfg.miners.iter().enumerate() {
                if w.silent[i] {
                    ctl.observe_no_answer(&m.id, now).expect("known");
                    continue;
                }
                // Deterministic ±3 % wobble, different per miner and tick.
                noise = noise.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let wobble = 1.0 + ((noise >> 33) as f64 / f64::from(1u32 << 31) - 0.5) * 0.06;
                let t = Telemetry {
                    power_watts: Some(match w.state[i] {
                        MinerState::Sleeping => 25.0,
                        _ => m.nominal_watts * wobble,
                    }),
                    inlet_temp_c: Some(inlet),
                    board_temps_c: vec![inlet + 30.0],
                    hashrate_ths: None,
                    fan_rpm: vec![],
                    state: w.state[i],
                };
                ctl.observe_telemetry(&m.id, now, t).expect("known");
            }
            let report = ctl.tick(now);
            check_tick(&cfg, &mut w, &report, now)?;
            for d in &report.decisions {
                let Some(id) = d.miner.as_deref() else { continue };
                let i: usize = id.trim_start_matches('m').parse().expect("mN");
                if w.silent[i] {
                    // The driver cannot reach it: the command fails and is reported.
                    ctl.command_failed(id, d.action, now).expect("known");
                    continue;
                }
                w.state[i] = match d.action {
                    Action::Sleep => MinerState::Sleeping,
                    Action::Wake => MinerState::Mining,
                    Action::Blocked => w.state[i],
                };
            }
            now += TICK;
        }
    }
}
