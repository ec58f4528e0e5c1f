//! Stratum V2 pools: a `stratum2+tcp://host:port/<authority key>` pool in the list is
//! served by these instead of the SV1 session, producing the same work and taking the
//! same shares, so failover between SV1 and SV2 pools is the channel server's usual
//! switch (new work with `clean_jobs`).
//!
//! | file | owns | does I/O? |
//! |---|---|---|
//! | `connection.rs` | TCP, the Noise NX handshake (authority key checked), the reader task, the loop | TCP |
//! | `session.rs` | [`Sv2Session`](session::Sv2Session): setup, the extended channel, jobs to SV1 work, shares to `SubmitSharesExtended`, batched verdicts, health | no |
//! | `wire.rs` | the messages as owned values and their SRI wire types | no |
//!
//! Framing, Noise and the message types are SRI's crates (`codec_sv2`, `noise_sv2`,
//! `framing_sv2`, `binary_sv2`, `common_messages_sv2`, `mining_sv2`), at the versions
//! `pool_sv2` 0.7.0 is built with.

mod connection;
mod session;
#[cfg(test)]
mod session_tests;
mod wire;

pub(super) use connection::run;
