//! ckpool: its configuration file and the running pool.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::bitcoind::{RPC_PASS, RPC_USER};
use crate::ckpool_log::CkpoolLog;
use crate::peers::Peers;
use crate::process::{Proc, Sink, Spawn};
use crate::wait;

/// What one ckpool instance is told.
#[derive(Debug, Clone)]
pub struct CkpoolConfig {
    /// The fake bitcoind's RPC port.
    pub bitcoind_port: u16,
    /// Where block rewards would go (must pass the fake bitcoind's `validateaddress`).
    pub payout_address: String,
    /// The Stratum port (below 4000, see [`crate::ports::free_for_ckpool`]).
    pub port: u16,
    /// Every client's difficulty. ckpool's vardiff is pinned to it (`mindiff` = `startdiff`
    /// = `maxdiff`) so that a proxy's miners, held at or above it, never find a share the
    /// pool would call low: every share a miner is told `true` must then reach the pool.
    pub difficulty: f64,
    /// ckpool's `logdir`: its log and the `-L` share logs.
    pub logdir: PathBuf,
}

impl CkpoolConfig {
    /// The JSON file ckpool reads with `-c`.
    pub fn to_json(&self) -> String {
        let config = json!({
            "btcd": [{
                "url": format!("127.0.0.1:{}", self.bitcoind_port),
                "auth": RPC_USER,
                "pass": RPC_PASS,
                "notify": false,
            }],
            "btcaddress": self.payout_address,
            "serverurl": [format!("127.0.0.1:{}", self.port)],
            "mindiff": self.difficulty,
            "startdiff": self.difficulty,
            "maxdiff": self.difficulty,
            "allow_low_diff": true,
            // Jobs every 30 s, as a real pool: a proxy must stay connected through the
            // quiet between them.
            "update_interval": 30,
            "blockpoll": 100,
            "logdir": self.logdir,
        });
        serde_json::to_string_pretty(&config).expect("a JSON value always serialises")
    }
}

/// A running ckpool.
#[derive(Debug)]
pub struct Ckpool {
    /// The Stratum port on 127.0.0.1.
    pub port: u16,
    /// Its log and share logs.
    pub log: CkpoolLog,
    proc: Proc,
}

/// Starts ckpool `name` with `config` (files under `dir/name/`) and waits until it has a
/// job to hand out. Logs at level 6 (info), the level of its per-share and per-connection
/// lines, and writes the `-L` share log.
pub fn start(
    peers: &Peers,
    dir: &Path,
    name: &str,
    config: &CkpoolConfig,
    lifetime: Duration,
) -> Ckpool {
    let home = dir.join(name);
    std::fs::create_dir_all(&config.logdir).expect("ckpool log directory");
    std::fs::create_dir_all(&home).expect("ckpool directory");
    let conf = home.join("ckpool.conf");
    std::fs::write(&conf, config.to_json()).expect("ckpool.conf");
    let proc = Spawn::new(name, &peers.ckpool, lifetime)
        .args(["-c".as_ref(), conf.as_os_str()])
        .args(["-s".as_ref(), home.join("sock").as_os_str()])
        .args(["-n", name, "-l", "6", "-L"])
        // stdout is a redrawn status line; the log file holds everything that counts.
        .stdout(Sink::File(home.join("stdout")))
        .stderr(Sink::File(home.join("stderr")))
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut pool = Ckpool {
        port: config.port,
        log: CkpoolLog::new(config.logdir.join(format!("{name}.log")), &config.logdir),
        proc,
    };
    // The first job exists once the stratifier has broadcast a base; a client connecting
    // earlier would wait for it, but a connect here to probe the port would show up in
    // the connection count the tests take.
    let ready = wait::until_true(Duration::from_secs(20), || {
        pool.proc.try_status().is_none() && pool.log.contains("Broadcast updated stratum base")
    });
    assert!(
        ready.is_some(),
        "ckpool {name} on port {} did not get ready within 20 s (status {:?}); log tail:\n{}",
        config.port,
        pool.proc.try_status(),
        pool.log.tail(15)
    );
    pool
}

impl Ckpool {
    /// Its Stratum address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Waits until its verdict count has not moved for half a second (at most `within`),
    /// so the last forwarded shares' verdicts are in its log.
    pub fn settle(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let mut last = self.log.counts().verdicts();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            let now = self.log.counts().verdicts();
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// Kills it at once (SIGKILL), as a crash or a pulled cable would.
    pub fn kill(&mut self) {
        self.proc.kill();
    }
}
