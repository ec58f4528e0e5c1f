//! Why a power inventory was refused.

/// Why a power inventory was refused; every variant names the container or miner and field.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The TOML text itself did not parse (syntax, wrong type, unknown key).
    #[error("power inventory: {0}")]
    Toml(#[from] toml::de::Error),
    /// A controller-wide or alarm setting is out of range.
    #[error("power.{section}: {field} {problem}")]
    Setting {
        /// `controller` or `alarms`.
        section: &'static str,
        /// The offending key.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The admin API token is unusable.
    #[error("power.admin_token {0}")]
    AdminToken(String),
    /// A container setting is out of range.
    #[error("container \"{container}\": {field} {problem}")]
    Container {
        /// Container name as written in the config.
        container: String,
        /// The offending key.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A miner setting is out of range.
    #[error("miner \"{miner}\": {field} {problem}")]
    Miner {
        /// Miner id as written in the config.
        miner: String,
        /// The offending key.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A miner names a container that is not defined.
    #[error("miner \"{miner}\": container \"{container}\" is not defined")]
    UnknownContainer {
        /// Miner id.
        miner: String,
        /// The container it names.
        container: String,
    },
    /// Two containers share a name.
    #[error("container \"{0}\" is defined more than once")]
    DuplicateContainer(String),
    /// Two miners share an id.
    #[error("miner \"{0}\" is defined more than once")]
    DuplicateMiner(String),
    /// Two miners share a management address, which is almost always a copy-paste slip
    /// that would make the controller sleep the wrong machine.
    #[error("miner \"{miner}\": address {address} is already used by miner \"{other}\"")]
    DuplicateAddress {
        /// The later miner.
        miner: String,
        /// The earlier miner with the same address.
        other: String,
        /// The shared address.
        address: String,
    },
}
