//! hashgate: a Stratum V1 proxy for Bitcoin mining sites that validates every share
//! itself, keeps honest per-miner numbers and gates miners to a container's power budget.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`stratum`] | Stratum V1 wire messages and the bounded line codec |
//! | [`work`] | jobs, difficulty ↔ target, header building and SHA-256d share validation |
//! | [`power`] | miner management APIs, the power/temperature budget controller, its driver and the admin API |
//! | [`extranonce`] | extranonce splitting: per-miner prefixes leased from each upstream connection |
//! | [`vardiff`] | per-miner variable difficulty aiming at a steady share interval |
//! | [`stats`] | per-miner statistics: share-proven hashrate over 1 m / 5 m / 15 m / 1 h |
//! | [`proxy`] | the hub between pool connections and miner sessions: channels, miner-facing jobs, submit links |
//! | [`upstream`] | pool connections: handshake, job hand-over, submit forwarding, failover and back-off |
//! | [`downstream`] | the miner-facing accept loop and per-miner Stratum sessions |
//! | [`site`] | the assembled proxy (registry, hub, upstream manager, miner listener) as `run` and `demo` start it |
//! | [`config`] | the site configuration file: raw TOML, validation into typed values |
//! | [`exporter`] | Prometheus `/metrics`: recorder output plus per-miner, per-pool and site series read from [`stats`] at scrape time |
//! | [`http`] | the read-only HTTP server: `/metrics` and the JSON status API (`/api/v1/...`) |
//! | [`sim`] | simulated pool, ASICs (really hashing) and management APIs for the demo, tests and load |
//! | [`demo`] | the `demo` command: the real proxy against a simulated site (pools, ASICs, management APIs) |
//! | [`sim`] | simulated miners' management APIs (and later the Stratum side) for tests and demos |
//! | [`loadgen`] | the load generator: thousands of simulated miners submitting precomputed valid shares |
//! | [`cli`] | the command-line interface of the `hashgate` binary |

pub mod cli;
pub mod config;
pub mod demo;
pub mod downstream;
pub mod exporter;
pub mod extranonce;
pub mod http;
pub mod loadgen;
pub mod power;
pub mod proxy;
pub mod sim;
pub mod site;
pub mod stats;
pub mod stratum;
pub mod upstream;
pub mod vardiff;
pub mod work;
