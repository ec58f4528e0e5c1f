//! Inventory reload: a reloaded `[power]` section is checked and its new management
//! clients built on the caller's thread (a host name that does not resolve refuses the
//! whole reload, nothing changed), then handed to the driver, which swaps it in at the
//! start of its next tick (poked at once).
//!
//! The swap happens between ticks, never during one: a tick zips the controller's miners,
//! the driver's clients and the status rows by position, so all three change together.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use crate::power::api::{self, MinerApi};
use crate::power::controller::InventoryChange;
use crate::power::inventory::{Address, MinerSpec, PowerConfig};

use super::DriverError;

/// Where the management clients of miners added by a reload come from.
pub(super) enum ClientFactory {
    /// Built from the miner's family, address and credentials, as at start.
    Inventory,
    /// Taken from the clients given at start (tests, the demo): a reload can add only
    /// miners one was given for.
    Given(HashMap<Arc<str>, Arc<dyn MinerApi>>),
}

/// The inventory last accepted (applied, or waiting for the driver) and its clients.
pub(super) struct ClientBook {
    pub config: PowerConfig,
    pub clients: HashMap<Arc<str>, Arc<dyn MinerApi>>,
    pub factory: ClientFactory,
}

/// A reloaded inventory waiting for the driver's next tick.
pub(super) struct Swap {
    pub config: PowerConfig,
    /// One client per miner of `config`.
    pub clients: HashMap<Arc<str>, Arc<dyn MinerApi>>,
}

impl std::fmt::Debug for ClientBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBook")
            .field("miners", &self.config.miners.len())
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Swap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swap")
            .field("miners", &self.config.miners.len())
            .finish_non_exhaustive()
    }
}

/// Whether a miner's client must be rebuilt: it is reached another way.
fn reached_differently(old: &MinerSpec, new: &MinerSpec) -> bool {
    old.address != new.address || old.family != new.family || old.credentials != new.credentials
}

impl ClientBook {
    /// Checks `config` against the book and builds the clients it needs, without changing
    /// anything; [`ClientBook::accept`] then records it.
    ///
    /// # Errors
    /// [`DriverError::Resolve`] for a new address that does not resolve,
    /// [`DriverError::MissingClient`] for a new miner when clients were given at start.
    pub(super) fn prepare(
        &self,
        config: &PowerConfig,
    ) -> Result<(InventoryChange, Swap), DriverError> {
        let change = InventoryChange::between(
            self.config.containers.iter(),
            self.config.miners.iter(),
            config,
        );
        let mut clients = HashMap::with_capacity(config.miners.len());
        for m in &config.miners {
            let old = self.config.miners.iter().find(|o| o.id == m.id);
            let kept = old
                .filter(|old| !reached_differently(old, m))
                .and_then(|_| self.clients.get(&m.id).cloned());
            let client = match kept {
                Some(client) => client,
                None => self.build(m, config)?,
            };
            clients.insert(m.id.clone(), client);
        }
        let swap = Swap {
            config: config.clone(),
            clients,
        };
        Ok((change, swap))
    }

    fn build(&self, m: &MinerSpec, config: &PowerConfig) -> Result<Arc<dyn MinerApi>, DriverError> {
        match &self.factory {
            ClientFactory::Given(given) => given
                .get(&m.id)
                .cloned()
                .ok_or_else(|| DriverError::MissingClient(m.id.to_string())),
            ClientFactory::Inventory => {
                let addr =
                    resolve_blocking(&m.address).map_err(|problem| DriverError::Resolve {
                        miner: m.id.to_string(),
                        address: m.address.to_string(),
                        problem,
                    })?;
                Ok(Arc::from(api::client(
                    m.family,
                    addr,
                    m.credentials.clone(),
                    config.driver.timeouts,
                )))
            }
        }
    }

    /// Records `swap` as the inventory last accepted.
    pub(super) fn accept(&mut self, swap: &Swap) {
        self.config = swap.config.clone();
        self.clients.clone_from(&swap.clients);
    }
}

/// Resolves a management address on the calling thread: reloads run on a blocking thread
/// (the admin route and SIGHUP move them there), as they also read the file.
fn resolve_blocking(address: &Address) -> Result<SocketAddr, String> {
    match address {
        Address::Socket(addr) => Ok(*addr),
        Address::Host { host, port } => (host.as_str(), *port)
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or_else(|| "no address".to_owned()),
    }
}
