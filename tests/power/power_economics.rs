//! Economic curtailment end to end: a site whose pool sends mainnet-like jobs, a price
//! polled from a local HTTP source, a tariff; the driver sleeps the miner that loses money,
//! holds while the price is stale, and wakes it once a fresh price says it pays again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::power_driver::{def, start_site_economics, wait_for};
use hashgate_site::power::api::Family;

const FAST: &str = "[controller]\nsleep_confirm_timeout_secs = 5\nwake_ramp_secs = 1\n";
const CONTAINER: &str = "budget_kw = 50.0\nmin_dwell_secs = 1\nwake_stagger_secs = 1";
const LIMIT: Duration = Duration::from_secs(10);

/// A price source on 127.0.0.1:0 answering `{"btc":{"usd":<price>}}`, or HTTP 503 while
/// the price is 0.
async fn price_source(price: Arc<AtomicU64>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).await;
            let p = price.load(Ordering::Relaxed);
            let (status, body) = if p == 0 {
                ("503 Busy", String::new())
            } else {
                ("200 OK", format!("{{\"btc\":{{\"usd\":{p}}}}}"))
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    format!("http://{addr}/price")
}

async fn get(url: &str) -> Value {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_miner_sleeps_holds_on_a_stale_price_and_wakes_when_it_pays() {
    let price = Arc::new(AtomicU64::new(100_000));
    let url = price_source(price.clone()).await;
    // Hashprice ≈ 0.0615 USD per TH/s per day (mainnet nbits, height 880,000+, 0.25 BTC
    // fees, 2 % pool fee). At 0.06 USD/kWh a 50 J/TH miner costs 50 × 0.024 × 0.06 = 0.072
    // USD per TH/s per day (ratio 1.17): it sleeps. The 20 J/TH one costs 0.029 (0.47).
    let economics = format!(
        "price_url = \"{url}\"\nprice_pointer = \"/btc/usd\"\nprice_poll_secs = 0.1\n\
         price_max_age_secs = 1\nfees_per_block_btc = 0.25\npool_fee_percent = 2\n\
         min_dwell_secs = 1\n[[tariffs]]\nname = \"grid\"\nper_kwh = 0.06\n"
    );
    let miners = vec![
        def("eff", Family::Braiins, 3000.0, 150.0),
        def("worst", Family::Avalon, 3000.0, 60.0),
    ];
    let site = start_site_economics(
        FAST,
        CONTAINER,
        &miners,
        Duration::from_millis(100),
        &economics,
    )
    .await;
    let base = format!("http://{}", site.http);

    wait_for("the 50 J/TH miner asleep", LIMIT, || async {
        !site.hashing("worst")
    })
    .await;
    assert!(site.hashing("eff"));
    let status = site.handle.status();
    let worst = status.miners.iter().find(|m| m.id == "worst").unwrap();
    assert_eq!(worst.asleep_reason, Some("economic"));
    let eff = status.miners.iter().find(|m| m.id == "eff").unwrap();
    assert_eq!(eff.asleep_reason, None);
    assert!(
        status
            .recent_decisions
            .iter()
            .any(|d| d.miner.as_deref() == Some("worst") && d.reason == "uneconomic")
    );

    let e = get(&format!("{base}/api/v1/economics")).await;
    assert_eq!(e["price"], 100_000.0, "{e}");
    assert_eq!(e["price_source"], "http");
    assert!(e["hold"].is_null(), "{e}");
    assert!(e["height"].as_u64().is_some_and(|h| h >= 880_000), "{e}");
    assert_eq!(e["subsidy_btc"], 3.125, "{e}");
    let hashprice = e["hashprice_per_th_day"].as_f64().unwrap();
    assert!((0.06..0.063).contains(&hashprice), "{e}");
    assert_eq!(e["containers"][0]["per_kwh"], 0.06, "{e}");
    let models = e["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "both miners are model \"sim\": {e}");

    // The source fails: past the 1 s limit the price is stale and the rule holds. A cheap
    // real-time tariff would make the sleeper pay, but it stays asleep while held.
    price.store(0, Ordering::Relaxed);
    wait_for("the price stale", LIMIT, || async {
        get(&format!("{base}/api/v1/economics")).await["hold"] == "price_stale"
    })
    .await;
    site.site
        .economics
        .as_ref()
        .unwrap()
        .set_price_signal(Some(("cheap", 0.01)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!site.hashing("worst"), "held while the price is stale");
    let e = get(&format!("{base}/api/v1/economics")).await;
    assert!(e["price_failures"].as_u64().is_some_and(|n| n > 0), "{e}");

    // A fresh price releases the rule: at 0.01 USD/kWh the sleeper pays and wakes.
    price.store(100_000, Ordering::Relaxed);
    wait_for("the sleeper woken", LIMIT, || async {
        site.hashing("worst")
    })
    .await;
    assert!(
        site.handle
            .recent_decisions()
            .iter()
            .any(|d| d.miner.as_deref() == Some("worst")
                && d.action == "wake"
                && d.reason == "economic")
    );
    site.stop().await;
}

/// An https price source is polled over hashgate's own TLS client: with its CA in
/// `price_ca_file` the price arrives; without it (bundled roots only) every poll fails and
/// no price is taken, rather than the check being skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_price_source_is_verified_with_the_configured_ca() {
    use crate::support::tls::{TestCa, serve_https};
    use hashgate_site::economics::{EconomicsConfigRaw, PriceBook, run_price_poller};
    use std::time::Instant;

    let ca = TestCa::new("price");
    let leaf = ca.leaf(&["localhost"], -1, 90);
    let addr = serve_https(&leaf, r#"{"btc":{"usd":101000}}"#).await;
    let book = |ca_line: &str| {
        let raw: EconomicsConfigRaw = toml::from_str(&format!(
            "price_url = \"https://localhost:{}/price\"\nprice_pointer = \"/btc/usd\"\n{ca_line}",
            addr.port()
        ))
        .unwrap();
        Arc::new(PriceBook::new(&raw.validate(&[]).unwrap()))
    };
    let trusted = book(&format!("price_ca_file = \"{}\"", ca.file.display()));
    let untrusted = book("");
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(run_price_poller(trusted.clone(), shutdown.clone()));
    tokio::spawn(run_price_poller(untrusted.clone(), shutdown.clone()));
    let start = Instant::now();
    while trusted.reading(Instant::now()).is_none() || untrusted.failures().0 == 0 {
        assert!(start.elapsed() < LIMIT, "no poll result within {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    assert_eq!(
        trusted.reading(Instant::now()).map(|r| r.price),
        Some(101_000.0)
    );
    assert_eq!(untrusted.reading(Instant::now()), None);
}
