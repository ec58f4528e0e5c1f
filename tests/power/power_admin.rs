//! The admin API over HTTP on 127.0.0.1, served by a running site's status server against
//! its driver and simulated miners: bearer auth, 404s naming the unknown miner or
//! container, pins honoured, demand response (cut and raise), and writes refused when no
//! token is configured.

use std::time::Duration;

use crate::support::power_driver::{GatedSite, def, start_site, wait_for};
use hashgate_site::power::api::Family;
use serde_json::{Value, json};

const TOKEN: &str = "test-token-0123456789";
const FAST: &str = "[controller]\nsleep_confirm_timeout_secs = 5\nwake_ramp_secs = 1\n";
const CONTAINER: &str = "budget_kw = 20.0\nmin_dwell_secs = 1\nwake_stagger_secs = 1";
const LIMIT: Duration = Duration::from_secs(5);

struct Admin {
    site: GatedSite,
    base: String,
    http: reqwest::Client,
}

async fn start(token: Option<&str>) -> Admin {
    let miners = vec![
        def("eff", Family::Braiins, 3000.0, 150.0),
        def("bad", Family::Whatsminer, 3400.0, 85.0),
        def("worst", Family::Luxos, 3000.0, 60.0),
    ];
    let site = start_site(FAST, CONTAINER, &miners, Duration::from_millis(100), token).await;
    let base = format!("http://{}", site.http);
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    Admin { site, base, http }
}

impl Admin {
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "POST" => self.http.post(url),
            "PUT" => self.http.put(url),
            _ => self.http.get(url),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("admin API answers");
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.expect("JSON body");
        (status, body)
    }

    async fn stop(self) {
        self.site.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_bearer_token() {
    let a = start(Some(TOKEN)).await;
    let path = "/api/v1/containers/c1/budget";
    let body = json!({ "budget_watts": 15000.0 });
    let (status, err) = a.send("PUT", path, None, body.clone()).await;
    assert_eq!(status, 401);
    assert!(
        err["error"].as_str().unwrap_or("").contains("bearer token"),
        "{err}"
    );
    let (status, _) = a
        .send("PUT", path, Some("test-token-0123456788"), body.clone())
        .await;
    assert_eq!(status, 401);
    let (status, _) = a
        .send(
            "POST",
            "/api/v1/miners/eff/pin",
            Some("nope"),
            json!({"pin": "off"}),
        )
        .await;
    assert_eq!(status, 401);
    assert!(a.site.hashing("eff"), "a refused pin changes nothing");

    let (status, ok) = a.send("PUT", path, Some(TOKEN), body).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["budget_watts"], json!(15_000.0));
    assert_eq!(ok["configured_budget_watts"], json!(20_000.0));
    let (status, view) = a.send("GET", "/api/v1/power", None, Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(view["containers"][0]["budget_watts"], json!(15_000.0));
    // The scheme is case-insensitive; a Basic header with the right secret is not a bearer.
    for (header, expected) in [
        (format!("bearer {TOKEN}"), 200),
        (format!("Basic {TOKEN}"), 401),
    ] {
        let resp = a
            .http
            .put(format!("{}{path}", a.base))
            .header("authorization", header)
            .json(&json!({ "budget_watts": 15000.0 }))
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status().as_u16(), expected);
    }
    let (status, ok) = a
        .send("PUT", path, Some(TOKEN), json!({ "budget_watts": null }))
        .await;
    assert_eq!((status, ok["budget_watts"].clone()), (200, json!(20_000.0)));
    // Kilowatts are refused with a message saying what the API takes.
    let (status, err) = a
        .send("PUT", path, Some(TOKEN), json!({ "budget_kw": 15.0 }))
        .await;
    assert_eq!(status, 400);
    assert!(
        err["error"].as_str().unwrap_or("").contains("budget_watts"),
        "{err}"
    );
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_are_404_and_bad_bodies_400() {
    let a = start(Some(TOKEN)).await;
    let (status, err) = a
        .send(
            "POST",
            "/api/v1/miners/c1-r9-99/pin",
            Some(TOKEN),
            json!({"pin": "off"}),
        )
        .await;
    assert_eq!(status, 404);
    assert!(
        err["error"].as_str().unwrap_or("").contains("c1-r9-99"),
        "{err}"
    );
    let (status, err) = a
        .send(
            "PUT",
            "/api/v1/containers/c7/budget",
            Some(TOKEN),
            json!({"budget_watts": 1000.0}),
        )
        .await;
    assert_eq!(status, 404);
    assert!(
        err["error"].as_str().unwrap_or("").contains("\"c7\""),
        "{err}"
    );

    for (path, body) in [
        ("/api/v1/miners/eff/pin", json!({"pin": "sideways"})),
        ("/api/v1/miners/eff/pin", json!({})),
        (
            "/api/v1/containers/c1/budget",
            json!({"budget_watts": -3000.0}),
        ),
        ("/api/v1/containers/c1/budget", json!({"budget": 3.0})),
        ("/api/v1/containers/c1/budget", json!({})),
    ] {
        let method = if path.ends_with("pin") { "POST" } else { "PUT" };
        let (status, err) = a.send(method, path, Some(TOKEN), body.clone()).await;
        assert_eq!(status, 400, "{body} → {err}");
        assert!(err["error"].is_string(), "{err}");
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_are_honoured_and_lifted() {
    let a = start(Some(TOKEN)).await;
    let (status, ok) = a
        .send(
            "POST",
            "/api/v1/miners/eff/pin",
            Some(TOKEN),
            json!({"pin": "off"}),
        )
        .await;
    assert_eq!((status, ok["pin"].clone()), (200, json!("keep_off")));
    wait_for("eff asleep by its pin", LIMIT, || async {
        !a.site.hashing("eff")
    })
    .await;
    let (_, view) = a.send("GET", "/api/v1/power", None, Value::Null).await;
    let eff = &view["miners"][0];
    assert_eq!(
        (eff["id"].clone(), eff["pin"].clone()),
        (json!("eff"), json!("keep_off"))
    );
    let reasons: Vec<&str> = view["recent_decisions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["reason"].as_str())
        .collect();
    assert_eq!(reasons, vec!["pinned_off"]);

    // Lifted: inside its budget, the normal wake path brings it back after its dwell.
    let (status, ok) = a
        .send(
            "POST",
            "/api/v1/miners/eff/pin",
            Some(TOKEN),
            json!({"pin": "auto"}),
        )
        .await;
    assert_eq!((status, ok["pin"].clone()), (200, json!("auto")));
    wait_for("eff woken after the pin is lifted", LIMIT, || async {
        a.site.hashing("eff")
    })
    .await;

    // Maintenance: never commanded, even when over budget.
    let (status, _) = a
        .send(
            "POST",
            "/api/v1/miners/worst/pin",
            Some(TOKEN),
            json!({"pin": "maintenance"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = a
        .send(
            "PUT",
            "/api/v1/containers/c1/budget",
            Some(TOKEN),
            json!({"budget_watts": 6500.0}),
        )
        .await;
    assert_eq!(status, 200);
    // 9,400 W against 6.5 kW: worst (50 J/TH) is in maintenance, so bad (40 J/TH) goes,
    // which is enough.
    wait_for("bad asleep", LIMIT, || async { !a.site.hashing("bad") }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(a.site.hashing("eff"));
    assert!(
        a.site.sim("worst").command_log().is_empty(),
        "maintenance is never commanded"
    );
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demand_response_over_http_cuts_then_wakes_most_efficient_first() {
    let a = start(Some(TOKEN)).await;
    let path = "/api/v1/containers/c1/budget";
    let (status, _) = a
        .send("PUT", path, Some(TOKEN), json!({"budget_watts": 3500.0}))
        .await;
    assert_eq!(status, 200);
    wait_for("worst and bad asleep", LIMIT, || async {
        !a.site.hashing("worst") && !a.site.hashing("bad")
    })
    .await;
    assert!(a.site.hashing("eff"));
    let (status, _) = a
        .send("PUT", path, Some(TOKEN), json!({"budget_watts": null}))
        .await;
    assert_eq!(status, 200);
    wait_for("both woken", LIMIT, || async {
        a.site.hashing("worst") && a.site.hashing("bad")
    })
    .await;
    let (_, view) = a.send("GET", "/api/v1/power", None, Value::Null).await;
    let wakes: Vec<(String, u64)> = view["recent_decisions"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|d| d["action"] == "wake")
        .map(|d| {
            (
                d["miner"].as_str().unwrap_or("").to_owned(),
                (d["at_unix_seconds"].as_f64().unwrap_or(0.0) * 1000.0).round() as u64,
            )
        })
        .collect();
    assert_eq!(
        wakes.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
        vec!["bad", "worst"],
        "most efficient (40 J/TH) before least (50 J/TH)"
    );
    assert!(
        wakes[1].1 - wakes[0].1 >= 900,
        "staggered by 1 s: {wakes:?}"
    );
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_writes_are_refused_and_reads_served() {
    let a = start(None).await;
    let (status, err) = a
        .send(
            "PUT",
            "/api/v1/containers/c1/budget",
            Some(TOKEN),
            json!({"budget_watts": 1000.0}),
        )
        .await;
    assert_eq!(status, 403);
    assert!(
        err["error"].as_str().unwrap_or("").contains("admin_token"),
        "{err}"
    );
    let (status, _) = a
        .send(
            "POST",
            "/api/v1/miners/eff/pin",
            None,
            json!({"pin": "off"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, view) = a.send("GET", "/api/v1/power", None, Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(view["containers"][0]["budget_watts"], json!(20_000.0));
    assert_eq!(view["miners"].as_array().map(Vec::len), Some(3));
    a.stop().await;
}
