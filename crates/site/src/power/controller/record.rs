//! Publishes a tick's decisions and figures: `metrics` gauges and counters, `tracing` events.
//!
//! Kept apart from the policy so the policy stays pure; the driver calls [`record_tick`]
//! once per tick with whatever [`Controller::tick`](super::Controller::tick) returned.
//! Per-miner series are bounded by the inventory the operator wrote, not by who connects.

use metrics::{counter, gauge};

use super::decision::{Action, PowerState, SleepKind, TickReport};

/// Records one tick: every decision is counted and logged with container, miner, action and
/// reason; container load, budget and temperature and each miner's power state are set.
pub fn record_tick(report: &TickReport) {
    for d in &report.decisions {
        counter!(
            "hashgate_power_actions_total",
            "action" => d.action.label(),
            "reason" => d.reason.label()
        )
        .increment(1);
        let miner = d.miner.as_deref().unwrap_or("");
        match d.action {
            Action::Blocked => tracing::warn!(
                container = %d.container,
                miner,
                action = d.action.label(),
                reason = d.reason.label(),
                "power action needed but no miner can take it"
            ),
            Action::Sleep | Action::Wake => tracing::info!(
                container = %d.container,
                miner,
                action = d.action.label(),
                reason = d.reason.label(),
                "power decision"
            ),
        }
    }
    for c in &report.containers {
        let name = c.name.clone();
        gauge!("hashgate_container_power_watts", "container" => name.clone()).set(c.load_watts);
        gauge!("hashgate_container_budget_watts", "container" => name.clone()).set(c.budget_watts);
        gauge!("hashgate_container_projected_power_watts", "container" => name.clone())
            .set(c.projected_watts);
        gauge!("hashgate_container_hot", "container" => name.clone())
            .set(f64::from(u8::from(c.hot)));
        gauge!("hashgate_container_stuck_over_budget", "container" => name.clone())
            .set(f64::from(u8::from(c.stuck_over_budget)));
        if let Some(t) = c.temperature_c {
            gauge!("hashgate_container_inlet_celsius", "container" => name.clone()).set(t);
        }
        if let Some(why) = c.meter_fallback {
            counter!(
                "hashgate_power_meter_fallback_ticks_total",
                "container" => name.clone(),
                "reason" => why.label()
            )
            .increment(1);
        }
        if c.meter_fallback_changed {
            match c.meter_fallback {
                Some(why) => tracing::warn!(
                    container = %c.name,
                    reason = why.label(),
                    "power meter unusable; load estimated from miner telemetry and nameplate"
                ),
                None => tracing::info!(container = %c.name, "power meter reading in use again"),
            }
        }
    }
    for c in &report.containers {
        for kind in SleepKind::ALL {
            let n = report
                .miners
                .iter()
                .filter(|m| m.container == c.name && m.asleep_reason == Some(kind))
                .count();
            gauge!(
                "hashgate_container_miners_asleep",
                "container" => c.name.clone(),
                "reason" => kind.label()
            )
            .set(n as f64);
        }
    }
    for m in &report.miners {
        // One 0/1 series per state (a state set), like `hashgate_upstream_state`, so
        // `== 1` selects and `sum by (state)` counts without decoding numbers.
        for state in PowerState::ALL {
            gauge!(
                "hashgate_miner_power_state",
                "container" => m.container.clone(),
                "miner" => m.id.clone(),
                "state" => state.label()
            )
            .set(f64::from(u8::from(m.state == state)));
        }
        gauge!(
            "hashgate_miner_counted_power_watts",
            "container" => m.container.clone(),
            "miner" => m.id.clone()
        )
        .set(m.counted_watts);
    }
}

/// Sets a miner's series to 0 (every power state, counted power) once a reload removed it
/// or moved it: the recorder cannot delete a series, and one left at its last value would
/// count a departed miner as asleep or drawing power.
pub fn retire_miner(id: &std::sync::Arc<str>, container: &std::sync::Arc<str>) {
    for state in PowerState::ALL {
        gauge!(
            "hashgate_miner_power_state",
            "container" => container.clone(),
            "miner" => id.clone(),
            "state" => state.label()
        )
        .set(0.0);
    }
    gauge!(
        "hashgate_miner_counted_power_watts",
        "container" => container.clone(),
        "miner" => id.clone()
    )
    .set(0.0);
}

/// Sets a removed container's gauges to 0, for the same reason as [`retire_miner`].
pub fn retire_container(name: &std::sync::Arc<str>) {
    for family in [
        "hashgate_container_power_watts",
        "hashgate_container_budget_watts",
        "hashgate_container_projected_power_watts",
        "hashgate_container_hot",
        "hashgate_container_stuck_over_budget",
    ] {
        gauge!(family, "container" => name.clone()).set(0.0);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::*;
    use crate::power::controller::decision::{
        ContainerReport, Counted, Decision, LoadSource, MeterFallback, MinerReport, PowerState,
        Reason,
    };

    /// Collects formatted log lines so the test can read the fields back.
    #[derive(Clone, Default)]
    struct LogBuffer(Arc<Mutex<Vec<u8>>>);

    impl LogBuffer {
        fn text(&self) -> String {
            let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }

    impl std::io::Write for LogBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
        type Writer = LogBuffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn tick_is_rendered_with_stable_names_and_labels() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let c1: Arc<str> = Arc::from("c1");
        let report = TickReport {
            decisions: vec![
                Decision {
                    container: c1.clone(),
                    miner: Some(Arc::from("c1-r1-01")),
                    action: Action::Sleep,
                    reason: Reason::OverBudget,
                },
                Decision {
                    container: c1.clone(),
                    miner: None,
                    action: Action::Blocked,
                    reason: Reason::NothingSleepable,
                },
            ],
            containers: vec![ContainerReport {
                name: c1.clone(),
                budget_watts: 1_500_000.0,
                load_watts: 1_510_000.0,
                projected_watts: 1_480_000.0,
                source: LoadSource::Miners,
                meter_fallback: Some(MeterFallback::Stale),
                meter_fallback_changed: true,
                temperature_c: Some(31.5),
                hot: false,
                stuck_over_budget: true,
                pue: crate::power::pue::PueInputs::from_parts(
                    None,
                    None,
                    Err(crate::power::pue::PueUnknown::NoFacilityPower),
                ),
            }],
            miners: vec![MinerReport {
                id: Arc::from("c1-r1-01"),
                container: c1,
                state: PowerState::FallingAsleep,
                asleep_reason: None,
                counted_watts: 3250.0,
                counted: Counted::NameplateSleepPending,
            }],
        };
        let logs = LogBuffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            metrics::with_local_recorder(&recorder, || record_tick(&report));
        });
        let logged = logs.text();
        for field in [
            "container=c1 miner=\"c1-r1-01\" action=\"sleep\" reason=\"over_budget\"",
            "WARN",
            "reason=\"nothing_sleepable\"",
            "reason=\"stale\"",
        ] {
            assert!(logged.contains(field), "missing {field} in\n{logged}");
        }
        let text = handle.render();
        for line in [
            "hashgate_power_actions_total{action=\"sleep\",reason=\"over_budget\"} 1",
            "hashgate_power_actions_total{action=\"blocked\",reason=\"nothing_sleepable\"} 1",
            "hashgate_container_power_watts{container=\"c1\"} 1510000",
            "hashgate_container_budget_watts{container=\"c1\"} 1500000",
            "hashgate_container_stuck_over_budget{container=\"c1\"} 1",
            "hashgate_container_inlet_celsius{container=\"c1\"} 31.5",
            "hashgate_power_meter_fallback_ticks_total{container=\"c1\",reason=\"stale\"} 1",
            "hashgate_miner_power_state{container=\"c1\",miner=\"c1-r1-01\",state=\"falling_asleep\"} 1",
            "hashgate_miner_power_state{container=\"c1\",miner=\"c1-r1-01\",state=\"awake\"} 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn retired_miners_and_containers_read_zero() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let (miner, container): (Arc<str>, Arc<str>) = (Arc::from("m1"), Arc::from("c1"));
        metrics::with_local_recorder(&recorder, || {
            gauge!("hashgate_miner_counted_power_watts", "container" => "c1", "miner" => "m1")
                .set(3000.0);
            gauge!("hashgate_container_hot", "container" => "c1").set(1.0);
            retire_miner(&miner, &container);
            retire_container(&container);
        });
        let text = handle.render();
        for line in [
            "hashgate_miner_counted_power_watts{container=\"c1\",miner=\"m1\"} 0",
            "hashgate_miner_power_state{container=\"c1\",miner=\"m1\",state=\"asleep\"} 0",
            "hashgate_container_hot{container=\"c1\"} 0",
            "hashgate_container_budget_watts{container=\"c1\"} 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
