//! hashgate itself, as the release binary a site runs (`hashgate run`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rustix::process::Signal;

use crate::hashgate_log::HashgateLog;
use crate::process::{Proc, Sink, Spawn};

/// The binary under test: Cargo builds the package's bin for its integration tests, in the
/// test's profile (`--release` in `.ci/run`).
pub const BINARY: &str = env!("CARGO_BIN_EXE_hashgate");

/// The name hashgate gives the `index`th `--pool` (its log's `pool=` field).
pub fn cli_pool_name(index: usize) -> String {
    format!("pool{index}")
}

/// A running `hashgate run`.
#[derive(Debug)]
pub struct Hashgate {
    /// Where miners connect (read back from its stdout).
    pub miner_addr: SocketAddr,
    /// Its status server (`/metrics`, `/api/v1/summary`).
    pub http_addr: SocketAddr,
    /// Its log (stderr, `RUST_LOG=info`).
    pub log: HashgateLog,
    proc: Proc,
}

/// Starts `hashgate run` with `config_toml` as its file and, as flags, the listen addresses
/// (port 0: it prints the ports it bound), the pools in failover order and the account.
pub fn start(
    dir: &Path,
    config_toml: &str,
    pools: &[u16],
    account: &str,
    lifetime: Duration,
) -> Hashgate {
    let urls: Vec<String> = pools
        .iter()
        .map(|port| format!("stratum+tcp://127.0.0.1:{port}"))
        .collect();
    start_urls(dir, config_toml, &urls, account, lifetime)
}

/// [`start`] with the pools as URLs (a Stratum V2 pool's carries its authority key).
pub fn start_urls(
    dir: &Path,
    config_toml: &str,
    pools: &[String],
    account: &str,
    lifetime: Duration,
) -> Hashgate {
    let config = dir.join("hashgate.toml");
    std::fs::write(&config, config_toml).expect("hashgate.toml");
    let log = dir.join("hashgate.log");
    let mut spawn = Spawn::new("hashgate", BINARY, lifetime)
        .args(["run".as_ref(), "--config".as_ref(), config.as_os_str()])
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--user", account]);
    for url in pools {
        spawn = spawn.args(["--pool", url.as_str()]);
    }
    let mut proc = spawn
        // Fixed here so the caller's environment cannot change what the log scraper reads.
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Sink::Piped)
        .stderr(Sink::File(log.clone()))
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = proc.take_stdout().expect("stdout was piped");
    let (tx, rx) = mpsc::channel();
    // Keeps reading after the two address lines so a full pipe never blocks hashgate.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let log = HashgateLog::new(log);
    let mut miner_addr = None;
    let mut http_addr = None;
    while miner_addr.is_none() || http_addr.is_none() {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
            panic!(
                "hashgate printed no listen addresses within 20 s (status {:?}); log tail:\n{}",
                proc.try_status(),
                log.tail(15)
            );
        };
        if let Some(rest) = line.strip_prefix("hashgate: miners connect to ") {
            miner_addr = rest.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("hashgate: metrics on http://") {
            http_addr = rest.split('/').next().and_then(|a| a.parse().ok());
        }
    }
    Hashgate {
        miner_addr: miner_addr.expect("loop ends only with both"),
        http_addr: http_addr.expect("loop ends only with both"),
        log,
        proc,
    }
}

impl Hashgate {
    /// Sends SIGTERM, as a service manager stops it.
    pub fn terminate(&self) {
        self.proc
            .signal(Signal::TERM)
            .unwrap_or_else(|e| panic!("SIGTERM to hashgate: {e}"));
    }

    /// Kills it (SIGKILL), for a hashgate that would not stop.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Waits up to `within` for it to exit; its status if it did.
    pub fn wait_for_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        self.proc.wait_for_exit(within)
    }
}
