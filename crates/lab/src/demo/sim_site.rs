//! The simulated site behind `hashgate demo`: pools and miners on 127.0.0.1, started from a
//! normal hashgate configuration whose addresses they then replace.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::container::{self, SimContainer};
use crate::sim::asic::{SimAsic, SimAsicConfig};
use crate::sim::mgmt::{self, SimMgmtServer, SimMinerSpec, SimMinerState};
use crate::sim::pool::{SimPool, SimPoolConfig};
use hashgate_site::config::RawConfig;
use hashgate_site::power::api::{MinerApi, Timeouts};

/// Inlet air temperature of the simulated container, °C (a working evaporative wall).
const INLET_C: f64 = 26.0;

/// One simulated miner: its management API (the power side) and, once the proxy is up,
/// its Stratum side.
pub struct SimMiner {
    /// Inventory id.
    pub id: String,
    /// Nameplate watts, for the status output.
    pub nominal_watts: f64,
    /// The management API server.
    pub mgmt: SimMgmtServer,
    /// The hashing Stratum client, started by [`SimSite::start_asics`].
    pub asic: Option<SimAsic>,
}

/// Pools and miners of the demo.
pub struct SimSite {
    /// One simulated pool per configured pool, in the same order.
    pub pools: Vec<SimPool>,
    /// The configured name of each pool (as status lines and `/metrics` name it).
    pub pool_names: Vec<String>,
    /// One simulated miner per inventory entry, in the same order.
    pub miners: Vec<SimMiner>,
    /// Real hashes per second each simulated ASIC performs.
    pub asic_hashrate: f64,
    /// The air of each container with `[climate]`, by name, behind its Modbus device.
    pub containers: Vec<(String, SimContainer)>,
}

impl SimSite {
    /// Starts a simulated pool for every `[[pools]]` entry and a simulated management API for
    /// every `[[power.miners]]` entry, and points the configuration at them.
    ///
    /// # Errors
    /// Binding a loopback port failed.
    pub async fn start(
        raw: &mut RawConfig,
        asic_hashrate: f64,
        pool_difficulty: f64,
    ) -> io::Result<SimSite> {
        let mut pools = Vec::with_capacity(raw.pools.len());
        let mut pool_names = Vec::with_capacity(raw.pools.len());
        for (i, entry) in raw.pools.iter_mut().enumerate() {
            let name = entry.name.clone().unwrap_or_else(|| format!("pool{i}"));
            pool_names.push(name.clone());
            let pool = SimPool::start(SimPoolConfig {
                name,
                difficulty: pool_difficulty,
                job_interval: Some(Duration::from_secs(15)),
                ..SimPoolConfig::default()
            })
            .await?;
            entry.url = Some(format!("stratum+tcp://{}", pool.addr()));
            pools.push(pool);
        }
        let mut miners = Vec::new();
        let now = Instant::now();
        if let Some(power) = raw.power.as_mut() {
            for entry in power.miners.iter_mut() {
                let spec = SimMinerSpec {
                    nominal_watts: entry.nominal_watts,
                    sleep_watts: entry.standby_watts.unwrap_or(20.0),
                    // The API reports what the simulated ASIC really hashes, so the
                    // "claims more than its shares prove" alarm stays honest.
                    nominal_ths: asic_hashrate / 1e12,
                    ramp: Duration::from_secs(2),
                    thermal_tau: Duration::from_secs(10),
                    credentials: entry.credentials.clone(),
                    ..SimMinerSpec::default()
                };
                let state = SimMinerState::new(spec, INLET_C, now);
                let server = mgmt::spawn(entry.family, state).await?;
                entry.address = server.addr.to_string();
                miners.push(SimMiner {
                    id: entry.id.clone(),
                    nominal_watts: entry.nominal_watts,
                    mgmt: server,
                    asic: None,
                });
            }
        }
        let mut containers = Vec::new();
        if let Some(power) = raw.power.as_mut() {
            for c in power.containers.iter_mut() {
                let Some(climate) = c.climate.as_mut() else {
                    continue;
                };
                let states = power
                    .miners
                    .iter()
                    .zip(&miners)
                    .filter(|(m, _)| m.container == c.name)
                    .map(|(_, sim)| sim.mgmt.state.clone())
                    .collect();
                let air = container::start(climate, states).await?;
                if let Some(meter) = c.it_meter.as_mut() {
                    meter.address = air.device.addr.to_string();
                }
                containers.push((c.name.clone(), air));
            }
        }
        Ok(SimSite {
            pools,
            pool_names,
            miners,
            asic_hashrate,
            containers,
        })
    }

    /// Starts each miner's Stratum side against the proxy, as `<account>.<miner id>`.
    pub fn start_asics(&mut self, proxy: SocketAddr, account: &str) {
        for miner in &mut self.miners {
            let mut config = SimAsicConfig::new(proxy, format!("{account}.{}", miner.id));
            config.hashrate = self.asic_hashrate;
            config.power = Some(miner.mgmt.state.clone());
            miner.asic = Some(SimAsic::start(config));
        }
    }

    /// Management API clients for the power driver, built for each simulator's ports.
    pub fn clients(
        &self,
        raw: &RawConfig,
        timeouts: Timeouts,
    ) -> Vec<(Arc<str>, Arc<dyn MinerApi>)> {
        let credentials = |id: &str| {
            raw.power
                .as_ref()
                .and_then(|p| p.miners.iter().find(|m| m.id == id))
                .map(|m| m.credentials.clone())
                .unwrap_or_default()
        };
        self.miners
            .iter()
            .map(|m| {
                let client: Arc<dyn MinerApi> =
                    Arc::from(m.mgmt.client(credentials(&m.id), timeouts));
                (Arc::from(m.id.as_str()), client)
            })
            .collect()
    }

    /// Total wall power the simulated miners draw now, W.
    pub fn power_watts(&self, now: Instant) -> f64 {
        self.miners
            .iter()
            .map(|m| m.mgmt.state.reading(now).power_watts)
            .sum()
    }

    /// Miners hashing now.
    pub fn hashing(&self, now: Instant) -> usize {
        self.miners
            .iter()
            .filter(|m| m.mgmt.state.is_hashing(now))
            .count()
    }
}
