//! Set-up of the power driver tests: simulated miners of several families behind their
//! management APIs, an inventory naming them, and a running site (`Site::start`, as
//! `hashgate run` starts it) whose power driver commands them.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashgate_lab::sim::mgmt::{self, SimMgmtServer, SimMinerSpec, SimMinerState};
use hashgate_lab::sim::pool::{SimPool, SimPoolConfig};
use hashgate_site::config::{Config, RawConfig};
use hashgate_site::power::PowerHandle;
use hashgate_site::power::api::{Credentials, Family, MinerApi, Timeouts};
use hashgate_site::power::inventory::PowerConfig;
use hashgate_site::site::{MinerClients, Site, SiteOptions};
use hashgate_site::stats::Registry;
use metrics_exporter_prometheus::PrometheusHandle;

/// One simulated miner to start.
pub struct MinerDef {
    pub id: &'static str,
    pub family: Family,
    pub watts: f64,
    pub ths: f64,
    /// Extra inventory lines (pin, worker).
    pub extra: &'static str,
}

pub fn def(id: &'static str, family: Family, watts: f64, ths: f64) -> MinerDef {
    MinerDef {
        id,
        family,
        watts,
        ths,
        extra: "",
    }
}

/// A running site whose power driver commands simulated miners.
pub struct GatedSite {
    pub sims: Vec<(&'static str, SimMgmtServer)>,
    pub handle: PowerHandle,
    pub registry: Arc<Registry>,
    /// Where `/metrics`, `/api/v1` and the admin routes answer.
    pub http: SocketAddr,
    pub site: Site,
    /// The site's pool; nobody mines through it.
    pub pool: SimPool,
}

impl GatedSite {
    pub fn sim(&self, id: &str) -> &SimMinerState {
        &self
            .sims
            .iter()
            .find(|(i, _)| *i == id)
            .unwrap_or_else(|| panic!("no sim {id}"))
            .1
            .state
    }

    pub fn hashing(&self, id: &str) -> bool {
        self.sim(id).is_hashing(Instant::now())
    }

    pub async fn stop(self) {
        tokio::time::timeout(Duration::from_secs(5), self.site.shutdown())
            .await
            .expect("driver stops on shutdown")
            .expect("driver task");
    }
}

/// The site configuration around `power`: miners and the status server on loopback ports
/// the system picks, one pool at `pool`.
pub fn site_config(pool: SocketAddr, power: PowerConfig) -> Config {
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"site\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\
         [[pools]]\nname = \"pool\"\nurl = \"stratum+tcp://{pool}\"\n"
    );
    let mut config = RawConfig::parse(&text)
        .and_then(|raw| raw.validate())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    config.power = Some(power);
    config
}

/// A pool for a site whose tests are about power.
pub async fn idle_pool() -> SimPool {
    SimPool::start(SimPoolConfig::default())
        .await
        .expect("bind pool")
}

pub fn root() -> Credentials {
    Credentials {
        user: "root".into(),
        password: "root".into(),
    }
}

pub fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_millis(300),
        call: Duration::from_millis(500),
    }
}

/// Starts the sims, writes the inventory (`container` holds the container's TOML keys after
/// its name, `head` goes before it), and starts a site with it whose driver ticks every
/// `tick` through the sims' own clients.
pub async fn start_site(
    head: &str,
    container: &str,
    miners: &[MinerDef],
    tick: Duration,
    admin_token: Option<&str>,
) -> GatedSite {
    start_site_recording(head, container, miners, tick, admin_token, None).await
}

/// [`start_site`] whose `/metrics` leads with `prometheus`'s series (the recorder the
/// power controller and the listener record into), as `hashgate run` serves it.
pub async fn start_site_recording(
    head: &str,
    container: &str,
    miners: &[MinerDef],
    tick: Duration,
    admin_token: Option<&str>,
    prometheus: Option<PrometheusHandle>,
) -> GatedSite {
    start_site_full(
        head,
        container,
        miners,
        tick,
        admin_token,
        prometheus,
        None,
        None,
    )
    .await
}

/// [`start_site`] with an `[economics]` section (its keys as TOML, tariffs may name `c1`).
pub async fn start_site_economics(
    head: &str,
    container: &str,
    miners: &[MinerDef],
    tick: Duration,
    economics: &str,
) -> GatedSite {
    start_site_full(
        head,
        container,
        miners,
        tick,
        None,
        None,
        Some(economics),
        None,
    )
    .await
}

/// [`start_site_recording`] with an optional `[economics]` section and a ledger at `ledger`
/// (flushed on demand through `site.ledger`).
#[allow(clippy::too_many_arguments)]
pub async fn start_site_full(
    head: &str,
    container: &str,
    miners: &[MinerDef],
    tick: Duration,
    admin_token: Option<&str>,
    prometheus: Option<PrometheusHandle>,
    economics: Option<&str>,
    ledger: Option<&std::path::Path>,
) -> GatedSite {
    let now = Instant::now();
    let mut sims = Vec::new();
    let mut text = String::new();
    if let Some(t) = admin_token {
        text.push_str(&format!("admin_token = \"{t}\"\n"));
    }
    text.push_str(head);
    text.push_str(&format!("\n[[containers]]\nname = \"c1\"\n{container}\n"));
    for m in miners {
        let spec = SimMinerSpec {
            nominal_watts: m.watts,
            nominal_ths: m.ths,
            ramp: Duration::ZERO,
            thermal_tau: Duration::ZERO,
            ..SimMinerSpec::default()
        };
        let sim = mgmt::spawn(m.family, SimMinerState::new(spec, 27.0, now))
            .await
            .expect("bind simulator");
        text.push_str(&format!(
            "\n[[miners]]\nid = \"{}\"\ncontainer = \"c1\"\naddress = \"{}\"\nfamily = \"{}\"\n\
             model = \"sim\"\nnominal_watts = {}\nnominal_ths = {}\n\
             credentials = {{ user = \"root\", password = \"root\" }}\n{}\n",
            m.id, sim.addr, m.family, m.watts, m.ths, m.extra
        ));
        sims.push((m.id, sim));
    }
    let mut config = PowerConfig::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    config.driver.tick = tick;
    config.driver.timeouts = timeouts();
    let clients: Vec<(Arc<str>, Arc<dyn MinerApi>)> = sims
        .iter()
        .map(|(id, sim)| (Arc::from(*id), Arc::from(sim.client(root(), timeouts()))))
        .collect();
    let pool = idle_pool().await;
    let mut site_config = site_config(pool.addr(), config);
    site_config.ledger = ledger.map(|path| hashgate_site::ledger::LedgerConfig {
        path: path.to_owned(),
        retention_days: 1,
        flush: Duration::from_secs(3600),
    });
    if let Some(text) = economics {
        let raw: hashgate_site::economics::EconomicsConfigRaw =
            toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        site_config.economics = Some(
            raw.validate(&[Arc::from("c1")])
                .unwrap_or_else(|e| panic!("{e}\n{text}")),
        );
    }
    let site = Site::start(
        SiteOptions::new(site_config)
            .miner_clients(MinerClients::Given(clients))
            .metrics(prometheus),
    )
    .await
    .expect("driver builds");
    GatedSite {
        sims,
        handle: site.power.clone().expect("power is configured"),
        registry: site.registry.clone(),
        http: site.http_addr.expect("the status server is served"),
        site,
        pool,
    }
}

/// Polls `check` every 20 ms until it holds; panics with `what` after `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
