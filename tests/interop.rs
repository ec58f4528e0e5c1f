//! Interop stage: hashgate between real peers (issue #10).
//!
//! hashgate's own simulators share hashgate's assumptions, so these tests put it between
//! programs other people wrote and real sites run: the ckpool pool (a fork that allows
//! difficulty below 1) and pooler's cpuminer, on 127.0.0.1, and take every count from the
//! peers' own logs, never from hashgate.
//!
//! Every test is `#[ignore]`d so a plain `cargo test` stays self-contained: the peers live
//! outside the repository, and these tests read nothing but the two directories named
//! below. `.ci/run` builds the peers (when the workspace provides their sources) and runs
//! the stage with both variables set; see the interop stage there and docs/INTEROP.md.
//!
//! `HASHGATE_PEERS` holds `ckpool/src/ckpool` and `cpuminer/minerd`; `HASHGATE_PEERS_SRC`
//! holds `fake_bitcoind.py`. Each test leaves its processes' logs under
//! `target/tmp/interop/<test>/` and names that directory in its failure message.

// The workspace lints hold library code; a test crate exports nothing and unwraps by
// design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

#[path = "interop/accounting.rs"]
mod accounting;
#[path = "interop/bitcoind.rs"]
mod bitcoind;
#[path = "interop/checks.rs"]
mod checks;
#[path = "interop/ckpool.rs"]
mod ckpool;
#[path = "interop/ckpool_log.rs"]
mod ckpool_log;
#[path = "interop/cpuminer.rs"]
mod cpuminer;
#[path = "interop/cpuminer_log.rs"]
mod cpuminer_log;
#[path = "interop/excerpt.rs"]
mod excerpt;
#[path = "interop/hashgate_log.rs"]
mod hashgate_log;
#[path = "interop/hashgate.rs"]
mod hashgate_proc;
#[path = "interop/lab.rs"]
mod lab;
#[path = "interop/peers.rs"]
mod peers;
#[path = "interop/ports.rs"]
mod ports;
#[path = "interop/process.rs"]
mod process;
#[path = "interop/status.rs"]
mod status;
#[path = "interop/stunnel.rs"]
mod stunnel;
#[path = "interop/tap.rs"]
mod tap;
#[path = "interop/throttle.rs"]
mod throttle;
#[path = "interop/wait.rs"]
mod wait;

#[path = "interop/scenario_cpuminer.rs"]
mod scenario_cpuminer;
#[path = "interop/scenario_failover.rs"]
mod scenario_failover;
#[path = "interop/scenario_sigterm.rs"]
mod scenario_sigterm;
#[path = "interop/scenario_sim_asic.rs"]
mod scenario_sim_asic;
#[path = "interop/scenario_split.rs"]
mod scenario_split;
#[path = "interop/scenario_tls.rs"]
mod scenario_tls;
