//! aiostratum-proxy (PyPI, 1.1, a Python asyncio proxy from 2018) as the other proxy
//! under test in `loadgen compare`: its YAML config and the command that starts it.
//!
//! What it does, read from its source: one pool connection for all miners; each miner's
//! extranonce1 is the pool's plus a 1- or 2-byte tail (`max_workers` 256 or 65,536), so
//! the miner's extranonce2 is that much shorter; every submit is relayed to the pool
//! with nothing checked (no job, no duplicate, no target), and every pool difficulty and
//! job is relayed to every miner. It is started through the launcher
//! `tools/aiostratum/run.py` (shipped in this binary and written next to the config),
//! which supplies the `yaml.load` default its pinned PyYAML no longer gives and the
//! Bitcoin hooks the package leaves to its user; see that file.

use std::net::SocketAddr;
use std::path::Path;

use tokio::process::Command;

/// The launcher, as shipped in `tools/aiostratum/run.py`.
pub(crate) const LAUNCHER: &str = include_str!("../../../tools/aiostratum/run.py");

/// The line the launcher prints once listening, followed by the miner address.
pub(crate) const AIOSTRATUM_ADDR_PREFIX: &str = "aiostratum: miners connect to ";

/// Its widest nonce-space split: a 2-byte tail per miner, so up to 65,536 miners.
pub(crate) const MAX_WORKERS: usize = 65_536;

/// What aiostratum is told, written as its YAML config.
#[derive(Debug, Clone)]
pub(crate) struct AiostratumSettings {
    /// The pool it relays to.
    pub pool: SocketAddr,
    /// The difficulty its pool connection asks the pool for (and so every miner gets).
    pub miner_difficulty: f64,
    /// Its account on the pool; each miner's worker name is appended (`account.w17`).
    pub account: String,
}

impl AiostratumSettings {
    /// The YAML config: one proxy listening on `127.0.0.1:0`, the Bitcoin hook classes
    /// of the launcher, a 2-byte extranonce tail per miner.
    pub(crate) fn yaml(&self) -> String {
        format!(
            "# written by `hashgate-loadgen compare`\n\
             proxies:\n\
             - name: loadgen\n\
             \x20 max_workers: {MAX_WORKERS}\n\
             \x20 worker_class: __main__.BitcoinWorkerProtocol\n\
             \x20 pool_class: __main__.BitcoinPoolProtocol\n\
             \x20 suggest_difficulty: {difficulty}\n\
             \x20 listen:\n\
             \x20 - host: 127.0.0.1\n\
             \x20   port: 0\n\
             \x20 pools:\n\
             \x20 - name: sim\n\
             \x20   host: {host}\n\
             \x20   port: {port}\n\
             \x20   account_name: {account}\n\
             \x20   account_password: x\n",
            difficulty = yaml_float(self.miner_difficulty),
            host = self.pool.ip(),
            port = self.pool.port(),
            account = yaml_string(&self.account),
        )
    }
}

/// A float YAML 1.1 reads as a float: PyYAML's resolver wants a `.` in the mantissa, so
/// `1e-10` alone would be a string.
fn yaml_float(v: f64) -> String {
    let text = format!("{v:e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) if !mantissa.contains('.') => {
            format!("{mantissa}.0e{exponent}")
        }
        _ => text,
    }
}

/// A double-quoted YAML string (JSON's escaping is valid YAML).
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// `python launcher -c config -q`: quiet, since its per-connection info lines would cost
/// it CPU during the load (warnings still show).
pub(crate) fn command(python: &Path, launcher: &Path, config: &Path) -> Command {
    let mut command = Command::new(python);
    command
        .arg(launcher)
        .arg("-c")
        .arg(config)
        .arg("-q")
        // Its output is read line by line while it runs.
        .env("PYTHONUNBUFFERED", "1");
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AiostratumSettings {
        AiostratumSettings {
            pool: SocketAddr::from(([127, 0, 0, 1], 40123)),
            miner_difficulty: 1e-10,
            account: "loadgen".into(),
        }
    }

    #[test]
    fn floats_carry_a_dot_for_yaml() {
        assert_eq!(yaml_float(1e-10), "1.0e-10");
        assert_eq!(yaml_float(3.725290298461914e-9), "3.725290298461914e-9");
        assert_eq!(yaml_float(2.0), "2.0e0");
        assert_eq!(yaml_string("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn the_config_names_the_pool_the_hooks_and_a_free_port() {
        let yaml = settings().yaml();
        for line in [
            "proxies:",
            "- name: loadgen",
            "  max_workers: 65536",
            "  worker_class: __main__.BitcoinWorkerProtocol",
            "  pool_class: __main__.BitcoinPoolProtocol",
            "  suggest_difficulty: 1.0e-10",
            "  - host: 127.0.0.1",
            "    port: 0",
            "    host: 127.0.0.1",
            "    port: 40123",
            "    account_name: \"loadgen\"",
        ] {
            assert!(
                yaml.lines().any(|l| l == line),
                "{line:?} missing in\n{yaml}"
            );
        }
        // Every line indented by spaces only: YAML refuses tabs.
        assert!(!yaml.contains('\t'));
    }

    #[test]
    fn the_launcher_defines_what_the_config_names() {
        for needle in [
            "class BitcoinWorkerProtocol(",
            "class BitcoinPoolProtocol(",
            "yaml.SafeLoader",
            "signal.SIGTERM",
            "suggest_difficulty",
        ] {
            assert!(LAUNCHER.contains(needle), "{needle}");
        }
        assert!(LAUNCHER.contains(AIOSTRATUM_ADDR_PREFIX.trim_end()));
    }
}
