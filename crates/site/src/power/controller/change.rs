//! What a reloaded inventory changes: miners and containers added, removed or changed, so
//! the reload can say so in its log line and API answer, and the driver knows which
//! management clients to build and which metric series to retire.

use std::collections::HashMap;
use std::sync::Arc;

use crate::power::inventory::{ContainerSpec, MinerSpec, PowerConfig};

/// The difference between two inventories, by miner id and container name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryChange {
    /// Miners in the new inventory only.
    pub miners_added: Vec<Arc<str>>,
    /// Miners in the old inventory only.
    pub miners_removed: Vec<Arc<str>>,
    /// Miners in both whose entry differs (address, model, nameplate, container, pin, ...).
    pub miners_changed: Vec<Arc<str>>,
    /// Containers in the new inventory only.
    pub containers_added: Vec<Arc<str>>,
    /// Containers in the old inventory only.
    pub containers_removed: Vec<Arc<str>>,
}

impl InventoryChange {
    /// Compares the old containers and miners with `new`.
    pub fn between<'a>(
        old_containers: impl Iterator<Item = &'a ContainerSpec>,
        old_miners: impl Iterator<Item = &'a MinerSpec>,
        new: &PowerConfig,
    ) -> InventoryChange {
        let old_names: Vec<Arc<str>> = old_containers.map(|c| c.name.clone()).collect();
        let old_miners: Vec<&MinerSpec> = old_miners.collect();
        // A miner's container is an index into its own inventory's list: compare by name.
        let name_in = |names: &[Arc<str>], i: usize| names.get(i).cloned();
        let new_names: Vec<Arc<str>> = new.containers.iter().map(|c| c.name.clone()).collect();
        let old_by_id: HashMap<&str, &MinerSpec> =
            old_miners.iter().map(|m| (&*m.id, *m)).collect();
        let mut change = InventoryChange::default();
        for m in &new.miners {
            match old_by_id.get(&*m.id) {
                None => change.miners_added.push(m.id.clone()),
                Some(old) => {
                    let moved =
                        name_in(&old_names, old.container) != name_in(&new_names, m.container);
                    let mut same = (*old).clone();
                    same.container = m.container;
                    if moved || same != *m {
                        change.miners_changed.push(m.id.clone());
                    }
                }
            }
        }
        change.miners_removed = old_miners
            .iter()
            .filter(|old| !new.miners.iter().any(|m| m.id == old.id))
            .map(|old| old.id.clone())
            .collect();
        change.containers_added = new_names
            .iter()
            .filter(|n| !old_names.contains(n))
            .cloned()
            .collect();
        change.containers_removed = old_names
            .iter()
            .filter(|n| !new_names.contains(n))
            .cloned()
            .collect();
        change
    }

    /// Nothing was added, removed or changed.
    pub fn is_empty(&self) -> bool {
        self.miners_added.is_empty()
            && self.miners_removed.is_empty()
            && self.miners_changed.is_empty()
            && self.containers_added.is_empty()
            && self.containers_removed.is_empty()
    }

    /// One phrase per kind of change, e.g. `miners added: m5, m6`.
    pub fn describe(&self) -> Vec<String> {
        let parts = [
            ("containers added", &self.containers_added),
            ("containers removed", &self.containers_removed),
            ("miners added", &self.miners_added),
            ("miners removed", &self.miners_removed),
            ("miners changed", &self.miners_changed),
        ];
        parts
            .into_iter()
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(what, ids)| {
                let ids: Vec<&str> = ids.iter().map(|i| &**i).collect();
                format!("{what}: {}", ids.join(", "))
            })
            .collect()
    }
}
