//! `hashgate demo`: the real proxy against an in-process simulated site.

pub mod container;
mod run;
mod sim_site;
mod status;

pub use run::{
    DemoError, DemoOptions, DemoSummary, Event, EventKind, default_events, run, temp_ledger_path,
};
pub use sim_site::{SimMiner, SimSite};
pub use status::{GroupSplit, climate_line, format_hashrate, status_line};

/// The demo's site configuration (see `config/demo.toml`).
pub const DEMO_TOML: &str = include_str!("../../../../config/demo.toml");

#[cfg(test)]
mod tests;
