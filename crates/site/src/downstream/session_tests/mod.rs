//! The miner session in simulated time, through [`super::harness::Harness`]: one concern
//! per file.

mod codes;
mod difficulty;
mod first_share;
mod resize;
mod setup;
mod shares;
mod split;
mod version;
