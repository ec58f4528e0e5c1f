//! cpuminer (`minerd`): a real Stratum V1 miner, one thread.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rustix::process::Signal;

use crate::cpuminer_log::MinerLog;
use crate::peers::Peers;
use crate::process::{Proc, Sink, Spawn};
use crate::throttle::Throttle;

/// A running cpuminer.
#[derive(Debug)]
pub struct Cpuminer {
    /// Its log (stdout and stderr together, with the protocol dump).
    pub log: MinerLog,
    proc: Proc,
    throttle: Option<Throttle>,
}

/// Starts cpuminer against `server` as `worker` with one hashing thread (the machine is
/// shared; one thread finds a share at difficulty 0.001 about every 0.5 s). `-P` dumps
/// the protocol, so a failure message can quote the pool's answers as the miner saw them.
pub fn start(
    peers: &Peers,
    dir: &Path,
    name: &str,
    server: SocketAddr,
    worker: &str,
    lifetime: Duration,
) -> Cpuminer {
    let log = dir.join(format!("{name}.log"));
    let proc = Spawn::new(name, &peers.minerd, lifetime)
        .args(["-a", "sha256d", "-t", "1", "-P", "-p", "x", "-u", worker])
        .args(["-o".to_owned(), format!("stratum+tcp://{server}")])
        .stdout(Sink::File(log.clone()))
        .stderr(Sink::File(log.clone()))
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    Cpuminer {
        log: MinerLog::new(log),
        proc,
        throttle: None,
    }
}

impl Cpuminer {
    /// Holds it to `duty` (0–1) of its free-running rate until it stops.
    pub fn throttle(&mut self, duty: f64) {
        self.throttle = Some(Throttle::start(self.proc.pid(), duty));
    }

    /// Stops it (SIGTERM, as an operator would) so its counts stop moving; SIGKILL if it
    /// lingers.
    pub fn stop(&mut self) {
        self.throttle = None;
        let _ = self.proc.signal(Signal::TERM);
        if self.proc.wait_for_exit(Duration::from_secs(3)).is_none() {
            self.proc.kill();
        }
    }
}
