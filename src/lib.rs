//! hashgate: a Stratum V1 proxy for Bitcoin mining sites that validates every share
//! itself, keeps honest per-miner numbers and gates miners to a container's power budget.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`stratum`] | Stratum V1 wire messages and the bounded line codec |
//! | [`work`] | jobs, difficulty ↔ target, header building and SHA-256d share validation |
//! | [`power`] | miner management APIs and the power/temperature budget controller |
//! | [`sim`] | simulated miners' management APIs (and later the Stratum side) for tests and demos |
//! | [`cli`] | the command-line interface of the `hashgate` binary |

pub mod cli;
pub mod power;
pub mod sim;
pub mod stratum;
pub mod work;
