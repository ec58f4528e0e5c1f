//! The driver reads a container's feed meter over HTTP (Prometheus text, kW): the meter's
//! figure drives shedding, and a dead meter falls back to the miners' telemetry once stale.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::power_driver::{def, start_site, wait_for};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use hashgate_lab::sim::mgmt::SimMinerState;
use hashgate_site::power::api::Family;

/// What the fake feed meter measures: the simulated miners plus a fixed auxiliary load.
#[derive(Clone, Default)]
struct Feed {
    miners: Arc<Mutex<Vec<SimMinerState>>>,
    broken: Arc<AtomicBool>,
}

/// Fans, pumps and PDU losses the miners' own telemetry never shows, W.
const AUX_WATTS: f64 = 1500.0;

async fn metrics(State(feed): State<Feed>) -> (StatusCode, String) {
    if feed.broken.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "meter bus error".into());
    }
    let now = Instant::now();
    let miners: f64 = feed
        .miners
        .lock()
        .expect("lock")
        .iter()
        .map(|m| m.reading(now).power_watts)
        .sum();
    let kw = (AUX_WATTS + miners) / 1e3;
    let body = format!(
        "# HELP feed_power_kw Active power of the feed\n# TYPE feed_power_kw gauge\n\
         feed_power_kw_total 0\nfeed_power_kw{{phase=\"sum\"}} {kw}\n"
    );
    (StatusCode::OK, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meter_drives_the_load_and_a_dead_meter_falls_back_to_miners() {
    let feed = Feed::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(feed.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let head = "[controller]\nsleep_confirm_timeout_secs = 5\nwake_ramp_secs = 1\n";
    let container = format!(
        "budget_kw = 7.0\nmin_dwell_secs = 60\nwake_stagger_secs = 1\n\
         [containers.meter]\naddress = \"{addr}\"\npath = \"/metrics\"\n\
         metric = \"feed_power_kw\"\nunit = \"kw\"\nmax_age_secs = 1"
    );
    // The miners alone draw 6 kW, inside 7 kW; the meter also sees 1.5 kW of fans and pumps.
    let miners = vec![
        def("eff", Family::Luxos, 3000.0, 120.0),
        def("ineff", Family::Braiins, 3000.0, 90.0),
    ];
    let site = start_site(head, &container, &miners, Duration::from_millis(100), None).await;
    *feed.miners.lock().expect("lock") = site.sims.iter().map(|(_, s)| s.state.clone()).collect();

    wait_for(
        "the metered overload shed",
        Duration::from_secs(5),
        || async { !site.hashing("ineff") },
    )
    .await;
    // Held: eff + ineff's standby + aux ≈ 4.5 kW on the meter, so eff stays on.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(site.hashing("eff"));
    assert_eq!(site.sim("ineff").command_log(), vec!["sleep"]);
    let c = site.handle.status().containers[0].clone();
    assert_eq!(c.load_source, Some("meter"), "{c:?}");
    assert_eq!(c.meter_fallback, None);

    // The meter breaks: once its last reading is older than 1 s, load comes from miners.
    feed.broken.store(true, Ordering::SeqCst);
    wait_for(
        "the stale-meter fallback",
        Duration::from_secs(5),
        || async { site.handle.status().containers[0].meter_fallback == Some("stale") },
    )
    .await;
    let c = site.handle.status().containers[0].clone();
    assert_eq!(c.load_source, Some("miners"), "{c:?}");
    let load = c.load_watts.expect("ticked");
    assert!(load < 3200.0, "eff's 3 kW plus ineff's standby, got {load}");
    site.stop().await;
    server.abort();
}
