//! For the `hashgate miner` commands: one inventory miner as a [`Target`], so an operator
//! can name a miner by its id instead of typing its family, address and password.

use crate::power::api::Timeouts;
use crate::power::api::command::Target;
use crate::power::inventory::PowerConfig;

use super::{DriverError, resolve};

/// The management target of inventory miner `id`: its family, address (host names
/// resolved now), credentials, and the driver's deadlines unless `timeouts` overrides them.
///
/// # Errors
/// [`DriverError::NoSuchMiner`] when no miner has this id, [`DriverError::Resolve`] when
/// its host name does not resolve.
pub async fn miner_target(
    config: &PowerConfig,
    id: &str,
    timeouts: Option<Timeouts>,
) -> Result<Target, DriverError> {
    let m = config
        .miners
        .iter()
        .find(|m| &*m.id == id)
        .ok_or_else(|| DriverError::NoSuchMiner(id.to_owned()))?;
    let addr = resolve(&m.address)
        .await
        .map_err(|problem| DriverError::Resolve {
            miner: id.to_owned(),
            address: m.address.to_string(),
            problem,
        })?;
    Ok(Target {
        family: m.family,
        addr,
        web: None,
        credentials: m.credentials.clone(),
        timeouts: timeouts.unwrap_or(config.driver.timeouts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::api::Family;

    const INVENTORY: &str = r#"
        [[containers]]
        name = "c1"
        budget_kw = 100
        [[miners]]
        id = "c1-r1-01"
        container = "c1"
        address = "10.0.0.7"
        family = "whatsminer"
        model = "M50S"
        nominal_watts = 3300
        nominal_ths = 126
        credentials = { user = "admin", password = "pw" }
    "#;

    #[tokio::test]
    async fn inventory_miner_becomes_a_target() {
        let cfg = PowerConfig::from_toml_str(INVENTORY).expect("valid");
        let t = miner_target(&cfg, "c1-r1-01", None).await.expect("known");
        assert_eq!(t.family, Family::Whatsminer);
        assert_eq!(t.addr.to_string(), "10.0.0.7:4028");
        assert_eq!(t.credentials.user, "admin");
        assert_eq!(t.timeouts.call, cfg.driver.timeouts.call);
        let err = miner_target(&cfg, "c1-r1-02", None).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "no miner \"c1-r1-02\" in the power inventory"
        );
    }
}
