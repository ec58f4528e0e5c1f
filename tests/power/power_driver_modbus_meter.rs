//! The driver reads a container's feed meter over Modbus TCP (a simulated Eastron SDM630 on
//! `tokio-modbus`'s server): its figure drives shedding, and a silent meter falls back to
//! the miners' telemetry once stale.

use std::time::{Duration, Instant};

use crate::support::power_driver::{def, start_site, wait_for};
use hashgate_lab::sim::modbus::{DeviceFault, RegisterBank, spawn};
use hashgate_site::modbus::MeterModel;
use hashgate_site::power::api::Family;

/// Fans, pumps and PDU losses the miners' own telemetry never shows, W.
const AUX_WATTS: f64 = 1500.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_meter_drives_the_load_and_a_silent_one_falls_back_to_miners() {
    let device = spawn(RegisterBank::new()).await.expect("modbus device");
    let map = MeterModel::EastronSdm630.map(3);
    let head = "[controller]\nsleep_confirm_timeout_secs = 5\nwake_ramp_secs = 1\n";
    let container = format!(
        "budget_kw = 7.0\nmin_dwell_secs = 60\nwake_stagger_secs = 1\n\
         [containers.meter]\nkind = \"modbus\"\naddress = \"{}\"\nunit_id = 3\n\
         model = \"eastron_sdm630\"\nmax_age_secs = 1",
        device.addr
    );
    let miners = vec![
        def("eff", Family::Luxos, 3000.0, 120.0),
        def("ineff", Family::Braiins, 3000.0, 90.0),
    ];
    let site = start_site(head, &container, &miners, Duration::from_millis(100), None).await;
    // The meter follows the simulated miners plus the auxiliary load, as a feed meter does.
    let states: Vec<_> = site.sims.iter().map(|(_, s)| s.state.clone()).collect();
    let bank = device.bank.clone();
    let follower = tokio::spawn(async move {
        loop {
            let now = Instant::now();
            let miners: f64 = states.iter().map(|m| m.reading(now).power_watts).sum();
            bank.set_value(&map.power, AUX_WATTS + miners);
            for (i, phase) in map.phases.iter().flatten().enumerate() {
                bank.set_value(phase, (AUX_WATTS + miners) / 3.0 + i as f64);
            }
            if let Some(energy) = &map.energy {
                bank.set_value(energy, 1234.5);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    // 6 kW of miners fit 7 kW; the meter's 7.5 kW does not.
    wait_for(
        "the metered overload shed",
        Duration::from_secs(5),
        || async { !site.hashing("ineff") },
    )
    .await;
    assert!(site.hashing("eff"));
    let c = site.handle.status().containers[0].clone();
    assert_eq!(c.load_source, Some("meter"), "{c:?}");
    assert_eq!(c.meter_fallback, None);
    let load = c.load_watts.expect("ticked");
    assert!(
        load > 4000.0,
        "the meter's figure with the aux load, got {load}"
    );

    // The meter goes silent behind its gateway: the read times out, the reading ages out.
    device.bank.set_fault(DeviceFault::Silent);
    wait_for(
        "the stale-meter fallback",
        Duration::from_secs(10),
        || async { site.handle.status().containers[0].meter_fallback == Some("stale") },
    )
    .await;
    let c = site.handle.status().containers[0].clone();
    assert_eq!(c.load_source, Some("miners"), "{c:?}");

    // It answers again: the meter is back in use.
    device.bank.set_fault(DeviceFault::None);
    wait_for(
        "the meter in use again",
        Duration::from_secs(10),
        || async { site.handle.status().containers[0].load_source == Some("meter") },
    )
    .await;
    follower.abort();
    site.stop().await;
}
