//! The fake bitcoind that ckpool needs for block templates.

use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::peers::Peers;
use crate::ports;
use crate::process::{Proc, Sink, Spawn};
use crate::wait;

/// RPC credentials the fake bitcoind expects (its defaults).
pub const RPC_USER: &str = "user";
/// See [`RPC_USER`].
pub const RPC_PASS: &str = "pass";

/// A running fake bitcoind.
#[derive(Debug)]
pub struct FakeBitcoind {
    /// Its RPC port on 127.0.0.1.
    pub port: u16,
    _proc: Proc,
}

/// Starts the fake bitcoind on a free port, logging into `dir/bitcoind.log`, and waits
/// until it accepts connections. It cannot report a port it chose, so a port is picked
/// here; a lost race for it is retried.
pub fn start(peers: &Peers, dir: &Path, lifetime: Duration) -> FakeBitcoind {
    let log = dir.join("bitcoind.log");
    for _ in 0..3 {
        let port = ports::any_free();
        let mut proc = Spawn::new("fake_bitcoind", "python3", lifetime)
            .args([peers.fake_bitcoind.as_os_str()])
            .args(["--port", &port.to_string()])
            .args(["--user", RPC_USER, "--password", RPC_PASS])
            .stdout(Sink::File(log.clone()))
            .stderr(Sink::File(log.clone()))
            .start()
            .unwrap_or_else(|e| panic!("{e}"));
        let up = wait::until_true(Duration::from_secs(10), || {
            proc.try_status().is_none()
                && TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
        });
        if up.is_some() {
            return FakeBitcoind { port, _proc: proc };
        }
    }
    panic!(
        "fake_bitcoind did not come up on 127.0.0.1 in three tries; see {}",
        log.display()
    );
}

/// A regtest payout address the fake bitcoind's `validateaddress` accepts.
pub fn payout_address(peers: &Peers) -> String {
    let out = Command::new("timeout")
        .args(["10s", "python3"])
        .arg(&peers.fake_bitcoind)
        .arg("--print-address")
        .output()
        .unwrap_or_else(|e| panic!("fake_bitcoind --print-address: {e}"));
    let address = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && !address.is_empty(),
        "fake_bitcoind --print-address failed: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    address
}
