//! The SRI reference pool (`pool_sv2`) fed by `sv2-minitp`, the Template Provider stand-in
//! that checks every block it is handed, both from `HASHGATE_SV2_PEERS/bin`.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ports;
use crate::process::{Proc, Sink, Spawn};
use crate::status;
use crate::wait;

/// Directory holding `bin/pool_sv2` and `bin/sv2-minitp` (the SV2 peers' `build.sh OUT`).
pub const SV2_PEERS_VAR: &str = "HASHGATE_SV2_PEERS";

/// SRI's published example authority key pair (loopback only), which `sv2-minitp` also
/// uses for its own Noise responder.
pub const AUTHORITY_PUBLIC: &str = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";
const AUTHORITY_SECRET: &str = "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n";

/// A well-formed authority key that is not the pool's: the x coordinate of secp256k1's
/// generator, version 1, base58check.
pub const OTHER_AUTHORITY: &str = "9bZBweHhn6px2Quf1hADVUTrWxX65vtRBweWHP66kfkKGFTQRHs";

/// The two SV2 programs.
#[derive(Debug, Clone)]
pub struct Sv2Peers {
    pool: PathBuf,
    minitp: PathBuf,
}

impl Sv2Peers {
    /// Reads [`SV2_PEERS_VAR`]; panics with how to build the peers when absent.
    pub fn from_env() -> Sv2Peers {
        let dir = std::env::var_os(SV2_PEERS_VAR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                panic!(
                    "{SV2_PEERS_VAR} is not set: build the SV2 peers with the peers' sv2/build.sh \
                     target/peers/sv2 and set {SV2_PEERS_VAR}=target/peers/sv2, as .ci/run does"
                )
            });
        let dir = if dir.is_absolute() {
            dir
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
        };
        let find = |name: &str| {
            let path = dir.join("bin").join(name);
            assert!(
                path.is_file(),
                "{SV2_PEERS_VAR}: {} does not exist",
                path.display()
            );
            path
        };
        Sv2Peers {
            pool: find("pool_sv2"),
            minitp: find("sv2-minitp"),
        }
    }
}

/// A running `sv2-minitp`.
#[derive(Debug)]
pub struct Minitp {
    /// Its Template Distribution port.
    pub port: u16,
    log: PathBuf,
    _proc: Proc,
}

impl Minitp {
    /// Starts it on a free port with network target `bits`, for `secs` seconds.
    pub fn start(peers: &Sv2Peers, dir: &Path, bits: &str, secs: u64) -> Minitp {
        let port = ports::any_free();
        let log = dir.join("minitp.log");
        let proc = Spawn::new("sv2-minitp", &peers.minitp, Duration::from_secs(secs + 10))
            .args(["--listen".to_owned(), format!("127.0.0.1:{port}")])
            .args(["--bits", bits, "--template-interval", "10"])
            .args(["--duration".to_owned(), secs.to_string()])
            .stdout(Sink::File(log.clone()))
            .stderr(Sink::File(log.clone()))
            .start()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            wait::until_true(Duration::from_secs(10), || listening(port)).is_some(),
            "sv2-minitp did not listen on {port}; log:\n{}",
            read(&log)
        );
        Minitp {
            port,
            log,
            _proc: proc,
        }
    }

    /// Blocks it checked and found valid.
    pub fn valid_blocks(&self) -> usize {
        read(&self.log).matches("VALID BLOCK").count()
    }

    /// Solutions it refused.
    pub fn refused_blocks(&self) -> usize {
        read(&self.log).matches("ABOVE TARGET (rejected)").count()
    }
}

/// A running `pool_sv2`.
#[derive(Debug)]
pub struct PoolSv2 {
    /// Where miners (hashgate) connect.
    pub port: u16,
    monitoring: SocketAddr,
    /// Its log.
    pub log: PathBuf,
    proc: Proc,
}

/// The pool's own share counts for the site account, from its metrics endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// `sv2_client_shares_accepted_total`, summed over channels.
    pub accepted: u64,
    /// `sv2_client_shares_rejected_total`, summed over channels and error codes.
    pub rejected: u64,
}

impl PoolSv2 {
    /// Starts it on `port` (a free one when `None`), fed by `tp`, acknowledging shares in
    /// batches of `batch`.
    pub fn start(
        peers: &Sv2Peers,
        dir: &Path,
        name: &str,
        port: Option<u16>,
        tp: &Minitp,
        batch: u32,
    ) -> PoolSv2 {
        let port = port.unwrap_or_else(ports::any_free);
        let monitoring = SocketAddr::from((Ipv4Addr::LOCALHOST, ports::any_free()));
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "authority_public_key = \"{AUTHORITY_PUBLIC}\"\n\
                 authority_secret_key = \"{AUTHORITY_SECRET}\"\n\
                 cert_validity_sec = 3600\n\
                 listen_address = \"127.0.0.1:{port}\"\n\
                 coinbase_reward_script = \"addr(tb1qa0sm0hxzj0x25rh8gw5xlzwlsfvvyz8u96w3p8)\"\n\
                 server_id = 1\n\
                 pool_signature = \"hashgate interop\"\n\
                 shares_per_minute = 60.0\n\
                 share_batch_size = {batch}\n\
                 monitoring_address = \"{monitoring}\"\n\
                 monitoring_cache_refresh_secs = 1\n\n\
                 [template_provider_type.Sv2Tp]\n\
                 address = \"127.0.0.1:{tp}\"\n\
                 public_key = \"{AUTHORITY_PUBLIC}\"\n",
                tp = tp.port
            ),
        )
        .expect("pool config");
        let log = dir.join(format!("{name}.log"));
        let proc = Spawn::new(name, &peers.pool, crate::lab::LIFETIME)
            .args(["-c".as_ref(), config.as_os_str()])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Sink::File(log.clone()))
            .stderr(Sink::File(log.clone()))
            .start()
            .unwrap_or_else(|e| panic!("{e}"));
        let ready = wait::until_true(Duration::from_secs(15), || {
            listening(port) && read(&log).contains("ready to accept connections")
        });
        assert!(
            ready.is_some(),
            "pool_sv2 was not ready on {port} within 15 s; log:\n{}",
            read(&log)
        );
        PoolSv2 {
            port,
            monitoring,
            log,
            proc,
        }
    }

    /// `stratum2+tcp://` URL of this pool with authority key `key`.
    pub fn url(&self, key: &str) -> String {
        format!("stratum2+tcp://127.0.0.1:{}/{key}", self.port)
    }

    /// The pool's counts from its metrics endpoint (zero before its first channel).
    pub fn counts(&self) -> PoolCounts {
        let Ok(text) = status::get(self.monitoring, "/metrics") else {
            return PoolCounts::default();
        };
        let sum = |family: &str| -> u64 {
            text.lines()
                .filter(|l| l.starts_with(family) && l.contains("user_identity=\"site\""))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .map(|v| v as u64)
                .sum()
        };
        PoolCounts {
            accepted: sum("sv2_client_shares_accepted_total{"),
            rejected: sum("sv2_client_shares_rejected_total{"),
        }
    }

    /// Lines of its log containing `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        read(&self.log).matches(needle).count()
    }

    /// Kills it (a pool that dies).
    pub fn kill(&mut self) {
        self.proc.kill();
    }
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
