//! Inventory reload end to end: simulated miners addressed like real ones (clients built
//! from the inventory, as `hashgate run` does), miners added and removed by reloading the
//! file while a Stratum connection stays up.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::power_driver::{idle_pool, site_config, wait_for};
use hashgate_lab::sim::mgmt::{self, SimMinerSpec, SimMinerState};
use hashgate_site::config::Config;
use hashgate_site::power::api::Family;
use hashgate_site::power::driver::Observed;
use hashgate_site::power::inventory::PowerConfig;
use hashgate_site::site::{Site, SiteOptions};

const TICK: Duration = Duration::from_millis(100);
const LIMIT: Duration = Duration::from_secs(10);

fn miner(id: &str, addr: std::net::SocketAddr) -> String {
    format!(
        "[[miners]]\nid = \"{id}\"\ncontainer = \"c1\"\naddress = \"{addr}\"\nfamily = \"luxos\"\n\
         model = \"S19\"\nnominal_watts = 3000\nnominal_ths = 100\n\
         credentials = {{ user = \"root\", password = \"root\" }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_governs_and_forgets_miners_without_touching_connections() {
    let now = Instant::now();
    let a = mgmt::spawn(
        Family::Luxos,
        SimMinerState::new(SimMinerSpec::default(), 25.0, now),
    )
    .await
    .expect("bind");
    let b = mgmt::spawn(
        Family::Luxos,
        SimMinerState::new(SimMinerSpec::default(), 25.0, now),
    )
    .await
    .expect("bind");
    let head = "[controller]\nsleep_confirm_timeout_secs = 5\nwake_ramp_secs = 1\n\
                [[containers]]\nname = \"c1\"\nmin_dwell_secs = 1\nwake_stagger_secs = 1\n";
    let pool = idle_pool().await;
    let pool_addr = pool.addr();
    let file = Arc::new(Mutex::new(format!(
        "{head}budget_kw = 50\n{}",
        miner("a", a.addr)
    )));
    let read = {
        let file = file.clone();
        move || -> Result<Config, String> {
            let text = file.lock().unwrap().clone();
            let mut power = PowerConfig::from_toml_str(&text).map_err(|e| e.to_string())?;
            power.driver.tick = TICK;
            Ok(site_config(pool_addr, power))
        }
    };
    let site = Site::start(SiteOptions::new(read().unwrap()).reload_from(Arc::new(read)))
        .await
        .expect("starts");
    let handle = site.power.clone().expect("power");
    let stratum = tokio::net::TcpStream::connect(site.miner_addr)
        .await
        .unwrap();
    wait_for("a answering", LIMIT, || async {
        handle
            .status()
            .miners
            .iter()
            .any(|m| m.id == "a" && m.observed == Observed::Mining)
    })
    .await;

    // A host name that does not resolve refuses the whole reload: nothing changes.
    *file.lock().unwrap() = format!(
        "{head}budget_kw = 50\n{}{}",
        miner("a", a.addr),
        miner("b", a.addr).replace(&a.addr.to_string(), "nowhere.invalid:4028")
    );
    let err = site.reload().expect_err("b does not resolve");
    assert!(err.contains("nowhere.invalid"), "{err}");
    assert_eq!(handle.status().miners.len(), 1);

    // b is added: polled, then governed (a budget for one miner sleeps one of the two).
    *file.lock().unwrap() = format!(
        "{head}budget_kw = 50\n{}{}",
        miner("a", a.addr),
        miner("b", b.addr)
    );
    site.reload().expect("valid file");
    wait_for("b polled", LIMIT, || async {
        handle
            .status()
            .miners
            .iter()
            .any(|m| m.id == "b" && m.observed == Observed::Mining)
    })
    .await;
    handle.set_budget("c1", Some(4_000.0)).expect("known");
    wait_for("one of the two asleep", LIMIT, || async {
        a.state.is_hashing(Instant::now()) != b.state.is_hashing(Instant::now())
    })
    .await;
    handle.set_budget("c1", None).expect("known");
    wait_for("both awake again", LIMIT, || async {
        a.state.is_hashing(Instant::now()) && b.state.is_hashing(Instant::now())
    })
    .await;

    // a is removed: forgotten, and never ordered again, even under a budget that would
    // sleep every miner the controller knows.
    *file.lock().unwrap() = format!("{head}budget_kw = 50\n{}", miner("b", b.addr));
    site.reload().expect("valid file");
    wait_for("a forgotten", LIMIT, || async {
        let s = handle.status();
        s.miners.len() == 1 && s.miners[0].id == "b"
    })
    .await;
    handle.set_budget("c1", Some(100.0)).expect("known");
    wait_for("b asleep", LIMIT, || async {
        !b.state.is_hashing(Instant::now())
    })
    .await;
    tokio::time::sleep(TICK * 5).await;
    assert!(
        a.state.is_hashing(Instant::now()),
        "a removed miner was ordered"
    );
    assert!(handle.set_pin("a", None).is_err(), "a is unknown now");

    // b's entry now points at another machine: its client is rebuilt and the new machine
    // is the one governed (pinned off here), the old one is left alone.
    let c = mgmt::spawn(
        Family::Luxos,
        SimMinerState::new(SimMinerSpec::default(), 25.0, Instant::now()),
    )
    .await
    .expect("bind");
    handle.set_budget("c1", None).expect("known");
    wait_for("b awake again", LIMIT, || async {
        b.state.is_hashing(Instant::now())
    })
    .await;
    *file.lock().unwrap() = format!(
        "{head}budget_kw = 50\n{}pin = \"keep_off\"\n",
        miner("b", c.addr)
    );
    site.reload().expect("valid file");
    wait_for("the machine now at b's address asleep", LIMIT, || async {
        !c.state.is_hashing(Instant::now())
    })
    .await;
    tokio::time::sleep(TICK * 5).await;
    assert!(
        b.state.is_hashing(Instant::now()),
        "the machine b used to name was ordered"
    );

    // The Stratum connection never noticed.
    assert_eq!(site.listener.open(), 1);
    assert_eq!(site.listener.accepted(), 1);
    drop(stratum);
    tokio::time::timeout(LIMIT, site.shutdown())
        .await
        .expect("stops")
        .expect("task");
}
