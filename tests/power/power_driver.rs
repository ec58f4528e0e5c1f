//! The power driver against simulated management APIs of several families, with short
//! real ticks: budget shedding through the miners' APIs, demand response, staggered wake,
//! a silent miner counted at nameplate, and health alarms from share-proven data.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::support::power_driver::{MinerDef, def, start_site, wait_for};
use hashgate_lab::sim::mgmt::Fault;
use hashgate_site::power::api::Family;
use hashgate_site::power::driver::Observed;
use hashgate_site::stats::{MinerIdentity, MinerStats};
use metrics_exporter_prometheus::PrometheusHandle;

/// Timing short enough for tests: one-second dwell, stagger and ramp.
const FAST: &str = "[controller]\nsleep_confirm_timeout_secs = 5\nwake_ramp_secs = 1\n";
const FAST_CONTAINER: &str = "min_dwell_secs = 1\nwake_stagger_secs = 1";

/// Four families, four efficiencies: 20, 29.5, 40 and 50 J/TH; 12,650 W in all.
fn four() -> Vec<MinerDef> {
    vec![
        def("eff", Family::Braiins, 3000.0, 150.0),
        def("mid", Family::Luxos, 3250.0, 110.0),
        def("bad", Family::Whatsminer, 3400.0, 85.0),
        def("worst", Family::Avalon, 3000.0, 60.0),
    ]
}

const TICK: Duration = Duration::from_millis(100);
const LIMIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_below_total_sleeps_least_efficient_holds_and_wakes_staggered() {
    let container = format!("budget_kw = 7.0\n{FAST_CONTAINER}");
    let site = start_site(FAST, &container, &four(), TICK, None).await;

    // 12,650 W against 7,000 W (shed to 6,930): worst (50 J/TH) then bad (40 J/TH).
    wait_for("the two least efficient asleep", LIMIT, || async {
        !site.hashing("worst") && !site.hashing("bad")
    })
    .await;
    assert!(site.hashing("eff") && site.hashing("mid"));

    // Held for ten more ticks: no more commands, load under budget, sleeps confirmed.
    tokio::time::sleep(10 * TICK).await;
    for (id, log) in [
        ("eff", vec![]),
        ("mid", vec![]),
        ("bad", vec!["sleep"]),
        ("worst", vec!["sleep"]),
    ] {
        assert_eq!(site.sim(id).command_log(), log, "{id}");
    }
    let status = site.handle.status();
    let c = &status.containers[0];
    let load = c.load_watts.expect("ticked");
    assert!(load <= 7000.0, "load {load} W over the 7 kW budget");
    assert!(load > 6000.0, "eff + mid + 2 × standby, got {load}");
    for m in &status.miners {
        let asleep = m.id == "bad" || m.id == "worst";
        let (intended, observed) = if asleep {
            ("asleep", Observed::Sleeping)
        } else {
            ("awake", Observed::Mining)
        };
        assert_eq!(
            (m.intended, m.observed),
            (Some(intended), observed),
            "{m:?}"
        );
    }
    let sleeps: Vec<_> = status
        .recent_decisions
        .iter()
        .map(|d| (d.miner.as_deref(), d.action, d.reason, d.outcome.as_str()))
        .collect();
    assert_eq!(
        sleeps,
        vec![
            (Some("worst"), "sleep", "over_budget", "ok"),
            (Some("bad"), "sleep", "over_budget", "ok"),
        ]
    );

    // Budget raised: wake the most efficient sleeper first, one per stagger.
    site.handle
        .set_budget("c1", Some(20_000.0))
        .expect("known container");
    wait_for("both woken", LIMIT, || async {
        site.hashing("worst") && site.hashing("bad")
    })
    .await;
    let wakes: Vec<_> = site
        .handle
        .recent_decisions()
        .into_iter()
        .filter(|d| d.action == "wake")
        .collect();
    let order: Vec<_> = wakes.iter().map(|d| d.miner.as_deref()).collect();
    assert_eq!(order, vec![Some("bad"), Some("worst")]);
    assert!(wakes.iter().all(|d| d.reason == "headroom"));
    let gap = wakes[1].at_unix_ms - wakes[0].at_unix_ms;
    assert!(gap >= 900, "wakes {gap} ms apart, stagger is 1 s");
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demand_response_is_honoured_before_the_next_tick() {
    let container = format!("budget_kw = 20.0\n{FAST_CONTAINER}");
    // A tick far longer than the test waits: only the handle's poke can make it in time.
    let site = start_site(FAST, &container, &four(), Duration::from_secs(30), None).await;
    wait_for("the first tick", LIMIT, || async {
        site.handle.status().ticks >= 1
    })
    .await;
    assert!(site.handle.recent_decisions().is_empty(), "inside 20 kW");

    let cut = Instant::now();
    site.handle
        .set_budget("c1", Some(7_000.0))
        .expect("known container");
    wait_for("shedding after the cut", Duration::from_secs(3), || async {
        !site.hashing("worst") && !site.hashing("bad")
    })
    .await;
    assert!(cut.elapsed() < Duration::from_secs(3));
    assert_eq!(site.handle.status().containers[0].budget_watts, 7_000.0);

    assert!(site.handle.set_budget("c9", Some(1.0)).is_err());
    assert!(site.handle.set_budget("c1", Some(-1.0)).is_err());
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_miner_counts_at_nameplate_and_the_answering_one_is_shed() {
    let miners = vec![
        def("silent", Family::Luxos, 3000.0, 100.0),
        def("talks", Family::Braiins, 3000.0, 100.0),
    ];
    // 5.5 kW: over budget only if the silent miner counts at its 3 kW nameplate.
    let container = format!("budget_kw = 5.5\n{FAST_CONTAINER}");
    let site = start_site(FAST, &container, &miners, TICK, None).await;
    site.sim("silent").set_fault(Fault::NoAnswer);

    // Answering miners are shed first: a command to a silent one would likely fail.
    wait_for("the answering miner asleep", LIMIT, || async {
        !site.hashing("talks")
    })
    .await;
    wait_for("a tick that saw the silence", LIMIT, || async {
        let s = site.handle.status();
        s.miners[0].observed == Observed::NoAnswer
    })
    .await;
    let status = site.handle.status();
    let silent = &status.miners[0];
    assert_eq!(silent.counted_watts, Some(3000.0), "{silent:?}");
    assert_eq!(silent.counted, Some("nameplate_no_answer"));
    assert!(site.hashing("silent"), "never commanded");
    assert!(site.sim("silent").command_log().is_empty());
    site.stop().await;
}

fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).expect("first recorder");
        handle
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mining_without_shares_alarms_but_proven_and_asleep_miners_do_not() {
    let metrics = metrics();
    let miners = vec![
        def("no-shares", Family::Luxos, 3000.0, 100.0),
        MinerDef {
            extra: "worker = \"acct.rack7\"",
            ..def("proven", Family::Braiins, 3000.0, 100.0)
        },
        MinerDef {
            extra: "pin = \"keep_off\"\nworker = \"acct.parked\"",
            ..def("parked", Family::Whatsminer, 3000.0, 100.0)
        },
    ];
    let head = format!("{FAST}[alarms]\nno_shares_after_secs = 1\n");
    let container = format!("budget_kw = 50.0\n{FAST_CONTAINER}");
    let site = start_site(&head, &container, &miners, TICK, None).await;

    // The "proven" miner's Stratum connection: a share every 100 ms.
    let t0 = Instant::now();
    let stats = Arc::new(MinerStats::new(t0, SystemTime::now(), 1.0));
    stats.set_identity(MinerIdentity {
        worker: "acct.rack7".into(),
        remote: "192.0.2.7:3333".parse().expect("addr"),
        user_agent: "sim".into(),
        prefix_hex: "01".into(),
    });
    let _listed = site.registry.add_miner(stats.clone());
    // The parked miner keeps a Stratum connection open without hashing.
    let parked = Arc::new(MinerStats::new(t0, SystemTime::now(), 1.0));
    parked.set_identity(MinerIdentity {
        worker: "acct.parked".into(),
        remote: "192.0.2.8:3333".parse().expect("addr"),
        user_agent: "sim".into(),
        prefix_hex: "02".into(),
    });
    let _parked = site.registry.add_miner(parked);
    let feeder = tokio::spawn(async move {
        loop {
            stats.record_accepted(Instant::now(), SystemTime::now(), 1.0, 1.0);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    wait_for("the no_shares alarm", LIMIT, || async {
        site.handle.status().miners[0].alarms == vec!["no_shares"]
    })
    .await;
    let status = site.handle.status();
    assert!(status.miners[1].alarms.is_empty(), "{:?}", status.miners[1]);
    assert_eq!(status.miners[2].pin, Some("keep_off"));
    assert_eq!(status.miners[2].intended, Some("asleep"));
    assert!(status.miners[2].alarms.is_empty(), "asleep on purpose");
    assert!(!site.hashing("parked"));
    let text = metrics.render();
    let has = |miner: &str, alarm: &str, value: &str| {
        text.lines().any(|l| {
            l.starts_with("hashgate_miner_alarm{")
                && l.contains(&format!("miner=\"{miner}\""))
                && l.contains(&format!("alarm=\"{alarm}\""))
                && l.ends_with(&format!(" {value}"))
        })
    };
    assert!(has("no-shares", "no_shares", "1"), "{text}");
    assert!(has("proven", "no_shares", "0"), "{text}");
    assert!(has("parked", "no_shares", "0"), "{text}");
    // The join from power series to share series: by the inventory's worker name.
    assert!(
        text.contains(
            "hashgate_miner_power_info{container=\"c1\",miner=\"proven\",worker=\"acct.rack7\"} 1"
        ),
        "{text}"
    );
    // The status API says the parked miner sleeps, not that it is starting.
    let api: serde_json::Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{}/api/v1/miners?state=sleeping", site.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["matched"], 1, "{api}");
    assert_eq!(api["miners"][0]["worker"], "acct.parked", "{api}");
    assert_eq!(api["miners"][0]["state"], "sleeping", "{api}");
    feeder.abort();
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_inventory_builds_real_clients_from_family_address_and_credentials() {
    use crate::support::power_driver::{idle_pool, site_config};
    use hashgate_lab::sim::mgmt::{self, SimMinerSpec, SimMinerState};
    use hashgate_site::power::PowerDriver;
    use hashgate_site::power::inventory::PowerConfig;
    use hashgate_site::site::{Site, SiteOptions};
    use hashgate_site::stats::Registry;

    let now = Instant::now();
    let mut sims = Vec::new();
    let mut text = String::from("[[containers]]\nname = \"c1\"\nbudget_kw = 50\n");
    for (id, family) in [
        ("lux", Family::Luxos),
        ("bos", Family::Braiins),
        ("wm", Family::Whatsminer),
    ] {
        let sim = mgmt::spawn(
            family,
            SimMinerState::new(SimMinerSpec::default(), 25.0, now),
        )
        .await
        .expect("bind");
        text.push_str(&format!(
            "[[miners]]\nid = \"{id}\"\ncontainer = \"c1\"\naddress = \"{}\"\nfamily = \"{family}\"\n\
             model = \"S19 Pro\"\nnominal_watts = 3250\nnominal_ths = 110\n\
             credentials = {{ user = \"root\", password = \"root\" }}\n",
            sim.addr
        ));
        sims.push(sim);
    }
    let mut config = PowerConfig::from_toml_str(&text).expect("valid");
    config.driver.tick = TICK;
    let pool = idle_pool().await;
    // No clients given: the site builds them from the inventory, as `hashgate run` does.
    let site = Site::start(SiteOptions::new(site_config(pool.addr(), config.clone())))
        .await
        .expect("clients");
    let handle = site.power.clone().expect("power is configured");
    wait_for("every miner answering", LIMIT, || async {
        handle
            .status()
            .miners
            .iter()
            .all(|m| m.observed == Observed::Mining && m.reported_watts.is_some())
    })
    .await;
    // A pin through the handle reaches the miner through the client built from the
    // inventory (Whatsminer: encrypted write with the configured password).
    handle
        .set_pin("wm", Some(hashgate_site::power::inventory::Pin::KeepOff))
        .expect("known miner");
    wait_for("wm asleep", LIMIT, || async {
        !sims[2].state.is_hashing(Instant::now())
    })
    .await;
    tokio::time::timeout(LIMIT, site.shutdown())
        .await
        .expect("stops")
        .expect("task");

    // Every inventory miner needs a client, and no client may name a stranger.
    let err = PowerDriver::new(config.clone(), Vec::new(), Registry::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no management API client for miner \"lux\""
    );
    let stranger = sims[0].client(
        crate::support::power_driver::root(),
        crate::support::power_driver::timeouts(),
    );
    let err = PowerDriver::new(
        config,
        vec![(Arc::from("nobody"), Arc::from(stranger))],
        Registry::new(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "client for miner \"nobody\" which is not in the inventory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_new_budget_keeps_the_old_on_error_and_keeps_miners() {
    use crate::support::power_driver::{idle_pool, root, site_config, timeouts};
    use hashgate_lab::sim::mgmt::{self, SimMinerSpec, SimMinerState};
    use hashgate_site::config::Config;
    use hashgate_site::power::api::MinerApi;
    use hashgate_site::power::inventory::PowerConfig;
    use hashgate_site::site::{MinerClients, Site, SiteOptions};
    use std::sync::Mutex;

    const TOKEN: &str = "reload-token-0123456789";
    let sim = mgmt::spawn(
        Family::Luxos,
        SimMinerState::new(SimMinerSpec::default(), 25.0, Instant::now()),
    )
    .await
    .expect("bind");
    let inventory = |budget: &str| {
        format!(
            "admin_token = \"{TOKEN}\"\n[[containers]]\nname = \"c1\"\nbudget_kw = {budget}\n\
             [[miners]]\nid = \"m1\"\ncontainer = \"c1\"\naddress = \"{}\"\nfamily = \"luxos\"\n\
             model = \"S19\"\nnominal_watts = 3000\nnominal_ths = 100\n\
             credentials = {{ user = \"root\", password = \"root\" }}\n",
            sim.addr
        )
    };
    let pool = idle_pool().await;
    let pool_addr = pool.addr();
    // The "file": what a reload reads.
    let file = Arc::new(Mutex::new(inventory("50")));
    let read = {
        let file = file.clone();
        move || -> Result<Config, String> {
            let text = file.lock().unwrap().clone();
            let mut power = PowerConfig::from_toml_str(&text).map_err(|e| e.to_string())?;
            power.driver.tick = TICK;
            Ok(site_config(pool_addr, power))
        }
    };
    let config = read().unwrap();
    let client: Arc<dyn MinerApi> = Arc::from(sim.client(root(), timeouts()));
    let site = Site::start(
        SiteOptions::new(config)
            .miner_clients(MinerClients::Given(vec![(Arc::from("m1"), client)]))
            .reload_from(Arc::new(read)),
    )
    .await
    .expect("starts");
    let handle = site.power.clone().expect("power");
    let miner = tokio::net::TcpStream::connect(site.miner_addr)
        .await
        .unwrap();
    wait_for("the miner connected", LIMIT, || async {
        site.listener.open() == 1
    })
    .await;
    let budget = || handle.status().containers[0].budget_watts;
    assert_eq!(budget(), 50_000.0);

    // SIGHUP's path: a changed budget applies.
    *file.lock().unwrap() = inventory("40");
    let report = site.reload().expect("valid file");
    assert_eq!(report.applied, ["power: budgets and policy"]);
    assert_eq!(budget(), 40_000.0);
    assert_eq!(
        handle.status().containers[0].configured_budget_watts,
        40_000.0
    );

    // The admin API's path: an invalid file is reported and the old settings kept.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{}/api/v1/reload", site.http_addr.unwrap());
    *file.lock().unwrap() = inventory("-3");
    let resp = http.post(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("running settings kept"),
        "{body}"
    );
    assert_eq!(budget(), 40_000.0);
    // Without the token nothing is reloaded.
    *file.lock().unwrap() = inventory("30");
    let resp = http.post(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(budget(), 40_000.0);
    let resp = http.post(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["applied"][0], "power: budgets and policy", "{body}");
    assert_eq!(
        body["needs_restart"].as_array().map(Vec::len),
        Some(0),
        "{body}"
    );
    assert_eq!(budget(), 30_000.0);

    // The miner's connection was never touched.
    assert_eq!(site.listener.open(), 1);
    assert_eq!(site.listener.accepted(), 1);
    drop(miner);
    tokio::time::timeout(LIMIT, site.shutdown())
        .await
        .expect("stops")
        .expect("task");
}
