//! `hashgate demo`: the real proxy against an in-process simulated site.

mod sim_site;

pub use sim_site::{SimMiner, SimSite};

/// The demo's site configuration (see `config/demo.toml`).
pub const DEMO_TOML: &str = include_str!("../../config/demo.toml");

#[cfg(test)]
mod tests;
