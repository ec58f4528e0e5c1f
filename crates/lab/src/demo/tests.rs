use std::time::{Duration, Instant};

use super::*;
use hashgate_site::config::RawConfig;
use hashgate_site::power::api::Timeouts;

#[tokio::test]
async fn the_demo_site_starts_and_its_config_validates() {
    let mut raw = RawConfig::parse(DEMO_TOML).unwrap();
    let site = SimSite::start(&mut raw, 2_000.0, 1e-6).await.unwrap();
    let config = raw
        .validate()
        .expect("demo config validates once pointed at the simulators");
    assert_eq!(config.pools.len(), site.pools.len());
    assert_eq!(config.pools[0].url.port, site.pools[0].addr().port());
    let power = config.power.expect("demo has a power section");
    assert_eq!(power.miners.len(), site.miners.len());
    let total: f64 = power.miners.iter().map(|m| m.nominal_watts).sum();
    assert!(
        total > power.containers[0].budget_watts,
        "the demo must need gating: {total} W of miners on a {} W budget",
        power.containers[0].budget_watts
    );

    // Every simulated management API answers its family's client.
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        call: Duration::from_secs(5),
    };
    for (id, client) in site.clients(&raw, timeouts) {
        let telemetry = client
            .telemetry()
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            telemetry.state,
            hashgate_site::power::api::MinerState::Mining,
            "{id}"
        );
    }
    assert_eq!(site.hashing(Instant::now()), site.miners.len());
}
