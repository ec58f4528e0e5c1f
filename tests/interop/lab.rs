//! One scenario's set of peers: a directory for their files, a fake bitcoind, and
//! constructors for pools, proxies and miners wired to them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::bitcoind::{self, FakeBitcoind};
use crate::ckpool::{self, Ckpool, CkpoolConfig};
use crate::cpuminer::{self, Cpuminer};
use crate::hashgate_proc::{self, Hashgate};
use crate::peers::Peers;
use crate::ports;
use crate::throttle;

/// Longest life of any process a scenario starts: well past the longest scenario, so
/// only a test that hangs or dies ever meets it.
pub const LIFETIME: Duration = Duration::from_secs(300);

/// The site account every scenario mines for.
pub const ACCOUNT: &str = "site";

/// hashgate's defaults with what a CPU miner needs (it is about a million times slower
/// than an ASIC): a new miner starts at difficulty 0.001, the pools' difficulty, instead
/// of 1,024, and vardiff's floor is that too (already its default, written out so the two
/// visibly agree: a miner below the pools' difficulty would find shares hashgate accepts
/// but may not forward).
pub const CPU_MINER_SETTINGS: &str =
    "[proxy]\ninitial_difficulty = 0.001\n\n[vardiff]\nmin_difficulty = 0.001\n";

/// A scenario's peers; every process is killed when it drops.
#[derive(Debug)]
pub struct Lab {
    /// The peer programs.
    pub peers: Peers,
    /// This scenario's directory (wiped at start, kept after for reading).
    pub dir: PathBuf,
    payout_address: String,
    bitcoind: FakeBitcoind,
}

impl Lab {
    /// Finds the peers (panics with how to build them if absent), makes the directory
    /// `target/tmp/interop/<scenario>` and starts the fake bitcoind.
    pub fn new(scenario: &str) -> Lab {
        let peers = Peers::from_env().unwrap_or_else(|e| panic!("{e}"));
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("interop")
            .join(scenario);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scenario directory");
        let payout_address = bitcoind::payout_address(&peers);
        let bitcoind = bitcoind::start(&peers, &dir, LIFETIME);
        Lab {
            peers,
            dir,
            payout_address,
            bitcoind,
        }
    }

    /// Starts ckpool `name` at `difficulty` on a free port.
    pub fn ckpool(&self, name: &str, difficulty: f64) -> Ckpool {
        self.ckpool_on(name, ports::free_for_ckpool(), difficulty)
    }

    /// Starts ckpool `name` on `port` (a restart takes its predecessor's port), with a log
    /// directory of its own so each instance's counts stand apart.
    pub fn ckpool_on(&self, name: &str, port: u16, difficulty: f64) -> Ckpool {
        let config = CkpoolConfig {
            bitcoind_port: self.bitcoind.port,
            payout_address: self.payout_address.clone(),
            port,
            difficulty,
            logdir: self.dir.join(name).join("logs"),
        };
        ckpool::start(&self.peers, &self.dir, name, &config, LIFETIME)
    }

    /// Starts hashgate with `config_toml`, mining for [`ACCOUNT`] through `pools` (ports on
    /// 127.0.0.1, in failover order).
    pub fn hashgate(&self, config_toml: &str, pools: &[u16]) -> Hashgate {
        hashgate_proc::start(&self.dir, config_toml, pools, ACCOUNT, LIFETIME)
    }

    /// Starts cpuminer `name` against `server` as `ACCOUNT.<name>`.
    pub fn cpuminer(&self, name: &str, server: SocketAddr) -> Cpuminer {
        let worker = format!("{ACCOUNT}.{name}");
        cpuminer::start(&self.peers, &self.dir, name, server, &worker, LIFETIME)
    }

    /// cpuminer's one-thread rate on this machine now, H/s (its own `--benchmark`).
    pub fn cpuminer_benchmark(&self) -> Option<f64> {
        throttle::benchmark(&self.peers.minerd, &self.dir)
    }
}
