//! The status server end to end: a real listener on 127.0.0.1:0, real HTTP requests.

use std::time::Duration;

use hashgate_site::http::{HttpConfig, HttpState, serve};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::metrics::populated;

struct Server {
    base: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _populated: crate::support::metrics::Populated,
}

async fn start() -> Server {
    let populated = populated(2_000);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = HttpState::new(populated.exporter.clone(), &HttpConfig::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, state, shutdown.clone()));
    Server {
        base,
        shutdown,
        task,
        _populated: populated,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn get(server: &Server, path: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

impl Server {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("server stops on shutdown")
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_counts_every_connection_live_and_departed() {
    let server = start().await;
    let (status, body) = get(&server, "/api/v1/summary").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["miners"]["connected"], 7);
    assert_eq!(body["miners"]["unauthorized"], 1);
    assert_eq!(body["miners"]["active"], 6);
    // 23 shares of the live rack1-01, 4 × 23 of rack1-02..05, 6 + 11 of rack2-01.
    assert_eq!(body["shares"]["accepted"], 23 + 4 * 23 + 6 + 11);
    assert_eq!(body["shares"]["rejected"], 3);
    assert_eq!(body["shares"]["rejected_by_reason"]["not_subscribed"], 1);
    assert_eq!(body["shares"]["blocks"], 1);
    assert!(body["hashrate"]["1m"].as_f64().unwrap() > 0.0);
    assert_eq!(body["pools"][1]["pool"], "primary");
    assert_eq!(body["pools"][1]["state"], "active");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miners_filter_sort_and_limit() {
    let server = start().await;
    let (status, body) = get(
        &server,
        "/api/v1/miners?worker=RACK1&sort=hashrate&window=5m&limit=2",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["matched"], 5);
    let miners = body["miners"].as_array().unwrap();
    assert_eq!(miners.len(), 2);
    assert_eq!(
        miners[0]["worker"], "site.rack1-01",
        "difficulty 1024 is the fastest"
    );
    assert_eq!(miners[0]["extranonce_prefix"], "0001");
    assert_eq!(miners[0]["user_agent"], "bmminer/2.0.0");
    assert_eq!(miners[0]["shares"]["rejected_by_reason"]["stale"], 1);
    assert_eq!(
        miners[0]["shares"]["pool_rejected_by_reason"]["low_difficulty"],
        1
    );
    let (_, body) = get(&server, "/api/v1/miners?state=unauthorized").await;
    assert_eq!(body["matched"], 1);
    assert_eq!(body["miners"][0]["worker"], Value::Null);
    let (_, body) = get(&server, "/api/v1/miners?sort=rejects").await;
    assert_eq!(body["miners"][0]["worker"], "site.rack1-01");
    let (status, body) = get(&server, "/api/v1/miners?sort=power").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("sort"), "{body}");
    let (status, body) = get(&server, "/api/v1/miners?limit=lots").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    // No [ledger] section: the route says so rather than answering an empty window.
    let (status, body) = get(&server, "/api/v1/ledger").await;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("[ledger]"),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_shows_reconnects_and_departed_totals() {
    let server = start().await;
    let (status, body) = get(&server, "/api/v1/miners/site.rack2-01").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reconnects"], 1);
    assert_eq!(body["connections"].as_array().unwrap().len(), 1);
    assert_eq!(body["connections"][0]["reconnects"], 1);
    assert_eq!(body["departed"]["connections"], 1);
    assert_eq!(body["departed"]["shares"]["accepted"], 6);
    let (status, body) = get(&server, "/api/v1/miners/nobody").await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("nobody"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_and_metrics() {
    let server = start().await;
    let (status, body) = get(&server, "/api/v1/pools").await;
    assert_eq!(status, 200, "{body}");
    let primary = &body["pools"][1];
    assert_eq!(primary["pool"], "primary");
    assert_eq!(primary["submitted"], 2);
    assert_eq!(primary["blocks"], 1);
    assert_eq!(primary["rejected_by_reason"]["stale"], 1);
    assert_eq!(primary["undelivered_by_reason"]["no_answer"], 1);
    assert_eq!(primary["submit_latency"]["last_ms"], 42.0);
    assert_eq!(body["pools"][0]["state"], "backup");
    assert_eq!(body["channels"][0]["prefixes_used"], 1);
    assert_eq!(body["channels"][0]["prefixes_capacity"], 256);

    let response = client()
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("hashgate_miners_connected 7\n"), "{text}");
    assert!(text.contains("hashgate_upstream_state{pool=\"primary\",state=\"active\"} 1\n"));
    assert!(text.contains("hashgate_miner_reconnects_total{worker=\"site.rack2-01\"} 1\n"));
    assert!(text.contains("hashgate_shares_total{worker=\"_unauthorized\",result=\"rejected\",reason=\"not_subscribed\"} 1\n"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_routes_are_served_alongside() {
    let populated = populated(2_000);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = HttpState::new(populated.exporter.clone(), &HttpConfig::default());
    let shutdown = CancellationToken::new();
    let extra =
        axum::Router::new().route("/api/v1/extra", axum::routing::post(|| async { "merged" }));
    let task = tokio::spawn(hashgate_site::http::serve_merged(
        listener,
        state,
        extra,
        shutdown.clone(),
    ));
    let c = client();
    let body = c
        .post(format!("{base}/api/v1/extra"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "merged");
    let status = c
        .get(format!("{base}/api/v1/summary"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
