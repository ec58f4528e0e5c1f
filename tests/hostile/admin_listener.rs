//! Issue #11, "admin writes share the listener of /metrics": with `http.admin_listen` the
//! admin routes leave the status listener, so a Prometheus allowed to scrape `/metrics`
//! reaches nothing that writes; token guessing is refused, counted and not a log flood.

use hashgate_lab::sim::pool::{SimPool, SimPoolConfig};
use hashgate_site::config::Config;
use hashgate_site::site::{Site, SiteOptions};

const TOKEN: &str = "admin-listener-token-0123456789";

async fn site(pool: &SimPool, admin_listen: &str) -> Site {
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"site\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n{admin_listen}\n\
         [power]\nadmin_token = \"{TOKEN}\"\n[[power.containers]]\nname = \"c1\"\nbudget_kw = 10\n\
         [[pools]]\nname = \"pool\"\nurl = \"stratum+tcp://{}\"\n",
        pool.addr()
    );
    let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Site::start(SiteOptions::new(config)).await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_move_to_their_own_listener() {
    let pool = SimPool::start(SimPoolConfig::default()).await.unwrap();
    let site = site(&pool, "admin_listen = \"127.0.0.1:0\"").await;
    let status = site.http_addr.unwrap();
    let admin = site.admin_addr.expect("an admin listener");
    assert_ne!(status, admin);
    let http = client();
    let budget = |at| format!("http://{at}/api/v1/containers/c1/budget");

    // The status listener: reads as before, writes say where they went, even with the token.
    let resp = http
        .put(budget(status))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "budget_watts": 5000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("http.admin_listen") && error.contains(&admin.to_string()),
        "{body}"
    );
    let power = http
        .get(format!("http://{status}/api/v1/power"))
        .send()
        .await
        .unwrap();
    assert_eq!(power.status().as_u16(), 200);
    assert_eq!(
        power.json::<serde_json::Value>().await.unwrap()["containers"][0]["budget_watts"],
        10_000.0
    );
    let metrics = http
        .get(format!("http://{status}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 200);

    // The admin listener: writes with the token; no metrics, no status API.
    let resp = http
        .put(budget(admin))
        .json(&serde_json::json!({ "budget_watts": 5000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401, "the token is still needed");
    let resp = http
        .put(budget(admin))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "budget_watts": 5000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        site.power.as_ref().unwrap().status().containers[0].budget_watts,
        5_000.0
    );
    for path in ["/metrics", "/api/v1/summary"] {
        let resp = http
            .get(format!("http://{admin}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 404, "{path} on the admin listener");
    }
    site.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_admin_listen_the_admin_routes_stay_on_the_status_listener() {
    let pool = SimPool::start(SimPoolConfig::default()).await.unwrap();
    let site = site(&pool, "").await;
    assert_eq!(site.admin_addr, None);
    let resp = client()
        .put(format!(
            "http://{}/api/v1/containers/c1/budget",
            site.http_addr.unwrap()
        ))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "budget_watts": 5000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    site.shutdown().await.unwrap();
}
