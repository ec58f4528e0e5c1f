//! The hub between upstream pool connections and downstream miner sessions.
//!
//! Upstream tasks turn each pool `mining.notify` into a [`MinerJob`] (the miner-facing job:
//! pool coinb1 ‖ pool extranonce1 ‖ padding, under a proxy-wide job id) and publish it on
//! the [`Channel`] they serve. Downstream sessions lease an extranonce prefix from a
//! channel through the [`Hub`], watch its work, validate shares against the `MinerJob`
//! and hand shares that meet the upstream target back through the job's [`UpstreamLink`].
//!
//! A channel is one slice of the proxy's extranonce space: up to 256^k miners, served by
//! one connection to whichever pool is active. More channels are opened when the prefix
//! space of the existing ones is used up.

mod channel;
mod channels;
mod job;
mod link;
mod split;

pub use channel::Channel;
pub(crate) use channels::JoinError;
pub use channels::{CHANNEL_IDLE_GRACE, Hub, MinerSizes};
pub use job::{MinerJob, MinerJobParts};
pub use link::{ChannelHashrate, MinerWorker, UpstreamLink, UpstreamSubmit};

pub use channel::ChannelControl;
pub use split::{GroupStatus, Placement, SplitBook, initial_group, state_label, target_ratios};

#[cfg(test)]
mod tests;
