//! What a mining site runs: the Stratum proxy (miner sessions, pool connections and the hub
//! between them), per-miner statistics with their Prometheus exporter and status API, the
//! configuration file, and power gating through the miners' management APIs.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`climate`] | container climate: fan-bank and curtain-pump staging on the inlet band, fail-safes, overrides (pure; the power driver runs it) |
//! | [`config`] | the site configuration file: raw TOML, validation into typed values |
//! | [`economics`] | revenue per hash from the pool's job (difficulty, height, subsidy), hashprice, energy cost, shutdown price, time-of-use tariffs |
//! | [`stats`] | per-miner and per-pool counters; share-proven hashrate over 1 m / 5 m / 15 m / 1 h |
//! | [`hub`] | the hub between pool connections and miner sessions: channels, miner-facing jobs, submit links |
//! | [`upstream`] | pool connections: handshake, job hand-over, submit forwarding, failover and back-off |
//! | [`downstream`] | the miner-facing accept loop and per-miner Stratum sessions |
//! | [`modbus`] | the Modbus TCP client (meters, sensors, relay coils) and the register points it reads |
//! | [`power`] | miner management APIs, the power/temperature budget controller, its driver and the admin API |
//! | [`exporter`] | Prometheus `/metrics`: recorder output plus per-miner, per-pool and site series read from [`stats`] at scrape time |
//! | [`http`] | the status server: `/metrics` and the JSON status API (`/api/v1/...`) |
//! | [`ratelog`] | rate limiting for repeating warnings, with a count of what was held back |
//! | [`tls`] | the TLS client side (pools over `stratum+ssl://`, an https price source): roots, CA file, SPKI pin, handshake errors by kind |
//! | [`site`] | the assembled site (registry, hub, upstream manager, miner listener, power driver, status server) and its shutdown order, as `run`, `demo` and the tests start it |

pub mod climate;
pub mod config;
pub mod downstream;
pub mod economics;
pub mod exporter;
pub mod http;
pub mod hub;
pub mod ledger;
pub mod modbus;
pub mod power;
pub mod ratelog;
pub mod site;
pub mod split;
pub mod stats;
pub mod tls;
pub mod upstream;
