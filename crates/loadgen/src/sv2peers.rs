//! SRI's Stratum V2 reference peers for `loadgen compare --sv2-peers DIR`: `pool_sv2`
//! fed by `sv2-minitp` as the pool both proxies mine on, and `translator_sv2` (SRI's
//! SV1→SV2 translator) as the other proxy; their configs, their start, the pool's share
//! counts from its metrics endpoint.
//!
//! The programs come from `DIR/bin` (the SV2 peers' `build.sh DIR`); nothing here builds
//! them. Every port is a free loopback port chosen at start, so runs do not collide with
//! the peers' example configs or with each other.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::compare::CompareError;
use super::compare_report::PoolPhase;
use super::proxy_child::{ProxyChild, ProxyExit, TempConfig};

/// SRI's published example authority key pair (loopback only): the pool signs its Noise
/// certificate with it and `sv2-minitp` answers with the same key.
pub(crate) const AUTHORITY_PUBLIC: &str = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";
const AUTHORITY_SECRET: &str = "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n";

/// The translator's per-miner hashrate floor, H/s: with vardiff off it fixes each SV1
/// miner's difficulty at [`TRANSLATOR_MINER_DIFFICULTY`].
pub(crate) const TRANSLATOR_MINER_HASHRATE: f64 = 1.0;

/// The SV1 difficulty translator_sv2 0.6.0 gives a miner of 1 H/s at 60 shares a minute
/// (measured: 4.6565e-10, i.e. 2⁻³¹); hashgate's miners are pinned at the same value so
/// both proxies validate against the same target and the load costs the same.
pub(crate) const TRANSLATOR_MINER_DIFFICULTY: f64 = 4.656_541_818_803_816_6e-10;

/// How long the pool and the template provider have to listen.
const PEER_START: Duration = Duration::from_secs(20);

/// How often the pool refreshes its metrics (seconds); counts are read after twice that.
pub(crate) const POOL_METRICS_REFRESH_S: u64 = 1;

/// The three SV2 programs.
#[derive(Debug, Clone)]
pub(crate) struct Sv2Peers {
    /// `pool_sv2`.
    pub pool: PathBuf,
    /// `sv2-minitp`.
    pub minitp: PathBuf,
    /// `translator_sv2`.
    pub translator: PathBuf,
}

impl Sv2Peers {
    /// The programs in `dir/bin`.
    ///
    /// # Errors
    /// [`CompareError::Sv2Peer`] naming the first one missing.
    pub(crate) fn find(dir: &Path) -> Result<Sv2Peers, CompareError> {
        let find = |name: &str| {
            let path = dir.join("bin").join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(CompareError::Sv2Peer(format!(
                    "{} does not exist (build the SV2 peers with their build.sh {})",
                    path.display(),
                    dir.display()
                )))
            }
        };
        Ok(Sv2Peers {
            pool: find("pool_sv2")?,
            minitp: find("sv2-minitp")?,
            translator: find("translator_sv2")?,
        })
    }
}

/// A free loopback port (bound and released: another process could take it in between,
/// which the peer's start then reports).
pub(crate) fn free_port() -> Result<u16, CompareError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| CompareError::Sv2Peer(format!("no free loopback port: {e}")))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// `pool_sv2`'s config: loopback only, the example authority keys, batches of
/// `batch` acknowledgements, metrics refreshed every second.
pub(crate) fn pool_toml(
    listen: SocketAddr,
    monitoring: SocketAddr,
    tp: SocketAddr,
    batch: u32,
) -> String {
    format!(
        "# written by `hashgate-loadgen compare --sv2-peers`\n\
         authority_public_key = \"{AUTHORITY_PUBLIC}\"\n\
         authority_secret_key = \"{AUTHORITY_SECRET}\"\n\
         cert_validity_sec = 3600\n\
         listen_address = \"{listen}\"\n\
         coinbase_reward_script = \"addr(tb1qa0sm0hxzj0x25rh8gw5xlzwlsfvvyz8u96w3p8)\"\n\
         server_id = 1\n\
         pool_signature = \"hashgate loadgen\"\n\
         shares_per_minute = 60.0\n\
         share_batch_size = {batch}\n\
         monitoring_address = \"{monitoring}\"\n\
         monitoring_cache_refresh_secs = {POOL_METRICS_REFRESH_S}\n\n\
         [template_provider_type.Sv2Tp]\n\
         address = \"{tp}\"\n\
         public_key = \"{AUTHORITY_PUBLIC}\"\n"
    )
}

/// What translator_sv2 is told, written as its TOML config.
#[derive(Debug, Clone)]
pub(crate) struct TranslatorSettings {
    /// Where its SV1 miners connect (loopback).
    pub listen: SocketAddr,
    /// Its own metrics endpoint (loopback; it refuses to start without one in 0.6.0's
    /// example configs, and an explicit one keeps it off the default port).
    pub monitoring: SocketAddr,
    /// The pool_sv2 it mines on.
    pub pool: SocketAddr,
    /// The pool's authority key.
    pub authority: String,
    /// Its user identity on the pool.
    pub user: String,
    /// Each miner's hashrate floor, H/s (with vardiff off: each miner's difficulty).
    pub miner_hashrate: f64,
}

impl TranslatorSettings {
    /// The TOML config: one aggregated channel upstream (as hashgate's one channel per
    /// pool connection), vardiff off so the miners' difficulty stays where the load can
    /// meet it without hashing, a 4-byte extranonce2 as hashgate gives, and no miner
    /// telemetry section (its example configs scan a network range).
    pub(crate) fn toml(&self) -> String {
        format!(
            "# written by `hashgate-loadgen compare --sv2-peers`\n\
             downstream_address = \"{listen_ip}\"\n\
             downstream_port = {listen_port}\n\
             max_supported_version = 2\n\
             min_supported_version = 2\n\
             downstream_extranonce2_size = 4\n\
             verify_payout = false\n\
             aggregate_channels = true\n\
             supported_extensions = [0x0002]\n\
             monitoring_address = \"{monitoring}\"\n\
             monitoring_cache_refresh_secs = 5\n\n\
             [downstream_difficulty_config]\n\
             min_individual_miner_hashrate = {hashrate:?}\n\
             shares_per_minute = 60.0\n\
             enable_vardiff = false\n\
             job_keepalive_interval_secs = 60\n\n\
             [[upstreams]]\n\
             address = \"{pool_ip}\"\n\
             port = {pool_port}\n\
             authority_pubkey = \"{authority}\"\n\
             user_identity = {user}\n",
            listen_ip = self.listen.ip(),
            listen_port = self.listen.port(),
            monitoring = self.monitoring,
            hashrate = self.miner_hashrate,
            pool_ip = self.pool.ip(),
            pool_port = self.pool.port(),
            authority = self.authority,
            user = toml_string(&self.user),
        )
    }
}

/// A TOML basic string (JSON's escaping is valid TOML for what a user name holds).
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// `translator_sv2 -c config` logging warnings only (at info it logs every share).
pub(crate) fn translator_command(binary: &Path, config: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("-c")
        .arg(config)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1");
    command
}

/// A running `sv2-minitp` and `pool_sv2`, stopped together.
pub(crate) struct Sv2Pool {
    /// Where proxies connect.
    pub addr: SocketAddr,
    /// Its metrics endpoint.
    monitoring: SocketAddr,
    pool: ProxyChild,
    minitp: ProxyChild,
    _files: Vec<TempConfig>,
}

impl Sv2Pool {
    /// Starts the template provider (difficulty-1 network target, a new template every
    /// `template_interval_s`, a new block every `block_interval_s` when not 0), then the
    /// pool on it.
    ///
    /// # Errors
    /// [`CompareError`] when a port, a config file or a program cannot be had.
    pub(crate) async fn start(
        peers: &Sv2Peers,
        template_interval_s: u64,
        block_interval_s: u64,
    ) -> Result<Sv2Pool, CompareError> {
        let tp = loopback(free_port()?);
        let mut minitp = Command::new(&peers.minitp);
        minitp
            .arg("--listen")
            .arg(tp.to_string())
            .args(["--bits", "1d00ffff", "--template-interval"])
            .arg(template_interval_s.to_string())
            .arg("--block-interval")
            .arg(block_interval_s.to_string())
            // It exits by itself after this; a comparison is over long before.
            .args(["--duration", "86400"]);
        let minitp = ProxyChild::start_at(minitp, &peers.minitp, tp, PEER_START).await?;
        let addr = loopback(free_port()?);
        let monitoring = loopback(free_port()?);
        let file = TempConfig::write(&pool_toml(addr, monitoring, tp, 10), "toml")?;
        let mut pool = Command::new(&peers.pool);
        pool.arg("-c")
            .arg(file.path())
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1");
        let pool = ProxyChild::start_at(pool, &peers.pool, addr, PEER_START).await?;
        Ok(Sv2Pool {
            addr,
            monitoring,
            pool,
            minitp,
            _files: vec![file],
        })
    }

    /// The pool's share counts for the user identities starting with `user`, summed
    /// over channels (zero when it has none or its endpoint does not answer).
    pub(crate) async fn counts(&self, user: &str) -> PoolPhase {
        let text = http_get(self.monitoring, "/metrics")
            .await
            .unwrap_or_default();
        pool_counts(&text, user)
    }

    /// Stops the pool, then the template provider.
    pub(crate) async fn stop(self) -> ProxyExit {
        let exit = self.pool.stop(Duration::from_secs(5)).await;
        self.minitp.stop(Duration::from_secs(5)).await;
        exit
    }
}

/// Sums `sv2_client_shares_accepted_total` and `_rejected_total` over the lines whose
/// `user_identity` starts with `user`.
pub(crate) fn pool_counts(metrics: &str, user: &str) -> PoolPhase {
    let label = format!("user_identity=\"{user}");
    let sum = |family: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(family) && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    };
    PoolPhase {
        accepted: sum("sv2_client_shares_accepted_total{"),
        rejected: sum("sv2_client_shares_rejected_total{"),
        ..PoolPhase::default()
    }
}

/// A plain HTTP/1.0 GET, body only; `None` on any failure.
async fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response).into_owned();
        Some(text.split_once("\r\n\r\n")?.1.to_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> TranslatorSettings {
        TranslatorSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 40001)),
            monitoring: SocketAddr::from(([127, 0, 0, 1], 40002)),
            pool: SocketAddr::from(([127, 0, 0, 1], 40003)),
            authority: AUTHORITY_PUBLIC.into(),
            user: "translator-compare".into(),
            miner_hashrate: TRANSLATOR_MINER_HASHRATE,
        }
    }

    #[test]
    fn the_translator_config_names_its_ports_the_pool_and_a_fixed_difficulty() {
        let toml = settings().toml();
        for line in [
            "downstream_address = \"127.0.0.1\"",
            "downstream_port = 40001",
            "monitoring_address = \"127.0.0.1:40002\"",
            "aggregate_channels = true",
            "downstream_extranonce2_size = 4",
            "min_individual_miner_hashrate = 1.0",
            "enable_vardiff = false",
            "[[upstreams]]",
            "address = \"127.0.0.1\"",
            "port = 40003",
            "authority_pubkey = \"9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72\"",
            "user_identity = \"translator-compare\"",
        ] {
            assert!(
                toml.lines().any(|l| l == line),
                "{line:?} missing in\n{toml}"
            );
        }
        // Its example configs scan a network for miner telemetry: never here.
        assert!(!toml.contains("telemetry"));
        assert!(!toml.contains("cidrs"));
    }

    #[test]
    fn pool_counts_sum_the_named_users_channels_only() {
        let metrics = "\
# TYPE sv2_client_shares_accepted_total gauge
sv2_client_shares_accepted_total{channel_id=\"2\",client_id=\"1\",user_identity=\"translator-compare.translator-proxy\"} 999
sv2_client_shares_accepted_total{channel_id=\"3\",client_id=\"2\",user_identity=\"hashgate-compare\"} 12
sv2_client_shares_rejected_total{channel_id=\"2\",client_id=\"1\",error_code=\"duplicate-share\",user_identity=\"translator-compare.translator-proxy\"} 2
sv2_client_shares_rejected_total{channel_id=\"2\",client_id=\"1\",error_code=\"invalid-job-id\",user_identity=\"translator-compare.translator-proxy\"} 3
sv2_client_shares_rejected_total{channel_id=\"3\",client_id=\"2\",error_code=\"invalid-job-id\",user_identity=\"hashgate-compare\"} 1
";
        let t = pool_counts(metrics, "translator-compare");
        assert_eq!((t.accepted, t.rejected), (999, 5));
        let h = pool_counts(metrics, "hashgate-compare");
        assert_eq!((h.accepted, h.rejected), (12, 1));
        assert_eq!(pool_counts("", "x").accepted, 0);
    }

    #[test]
    fn the_pool_config_is_loopback_with_the_chosen_ports() {
        let toml = pool_toml(
            SocketAddr::from(([127, 0, 0, 1], 1)),
            SocketAddr::from(([127, 0, 0, 1], 2)),
            SocketAddr::from(([127, 0, 0, 1], 3)),
            10,
        );
        for line in [
            "listen_address = \"127.0.0.1:1\"",
            "monitoring_address = \"127.0.0.1:2\"",
            "address = \"127.0.0.1:3\"",
            "share_batch_size = 10",
            "monitoring_cache_refresh_secs = 1",
        ] {
            assert!(toml.lines().any(|l| l == line), "{line:?} in\n{toml}");
        }
    }

    #[test]
    fn missing_peers_are_named() {
        let err = Sv2Peers::find(Path::new("/nonexistent-sv2-peers")).expect_err("missing");
        assert!(err.to_string().contains("bin/pool_sv2"), "{err}");
    }
}
