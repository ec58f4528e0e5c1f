//! The miner-facing side: the accept loop and one session task per miner.
//!
//! | module | owns |
//! |---|---|
//! | `listener` | [`Listener`]: every miner port (`[[listeners]]`), each on `SO_REUSEPORT` sockets whose queues hold a storm, with its own cap and settings under the site's cap, fd back-off, shutdown |
//! | `connection` | the task per miner: socket readiness, timeouts, job and control feeds |
//! | `session` | the session state machine: subscribe, authorize, configure, submit, vardiff |
//! | `jobs` | the few jobs a miner may submit for, with duplicate detection |
//! | `outbox` | the bounded queue of lines to a miner |
//! | `replies` | encoding the proxy's answers and notifications |
//! | `worker` | checking a miner's worker name and splitting it into parts ([`crate::hub::MinerWorker`]) |
//! | `settings` | the session settings of each listener, derived from the configuration |
//! | `tls` | Stratum over TLS for a listener (`tokio-rustls`), and `MinerIo`, the socket interface a connection is served through |
//! | `end` | [`SessionEnd`]: why a connection closed |
//! | `harness` (tests) | the session in memory: a real hub, a fake pool link, a clock the test moves |
//! | `session_tests` (tests) | the session's rules in simulated time, one concern per file |
//!
//! Shares are answered from local validation at once; those meeting the upstream target
//! are handed to the issuing pool connection through the job's
//! [`UpstreamLink`](crate::hub::UpstreamLink).

mod admission;
mod agent;
mod connection;
mod end;
#[cfg(test)]
mod harness;
mod jobs;
mod listener;
mod outbox;
mod replies;
mod session;
#[cfg(test)]
mod session_tests;
mod settings;
mod tls;
mod worker;

pub use listener::{LISTEN_BACKLOG, Listener, ListenerCounters, ListenerStatus, REFUSAL_LABELS};
pub use session::{MAX_MALFORMED_IN_ROW, RETARGET_GRACE};
