//! Configuration errors, each naming the file or field at fault.

use std::path::PathBuf;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file asked for.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax error, a wrong type or an unknown field.
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    /// The `[power]` section is invalid; the inner error names the miner or container.
    #[error("power: {0}")]
    Power(Box<crate::power::inventory::InventoryError>),
    /// A value is out of range or inconsistent; `field` is its dotted path.
    #[error("{field}: {reason}")]
    Invalid {
        /// Dotted path of the field, e.g. `pools[0].url`.
        field: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
}

impl ConfigError {
    /// Builds an [`ConfigError::Invalid`] for a field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
