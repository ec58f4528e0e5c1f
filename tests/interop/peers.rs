//! Where the real peers are: the built binaries and the fake bitcoind's source.

use std::path::{Path, PathBuf};

/// Directory holding `ckpool/src/ckpool` and `cpuminer/minerd` (`build.sh OUT` builds it).
pub const PEERS_VAR: &str = "HASHGATE_PEERS";
/// The peers' source directory (the one with `build.sh`), for `fake_bitcoind.py`.
pub const PEERS_SRC_VAR: &str = "HASHGATE_PEERS_SRC";

/// The peer programs one test runs.
#[derive(Debug, Clone)]
pub struct Peers {
    /// ckpool-lhr's `ckpool` binary.
    pub ckpool: PathBuf,
    /// cpuminer's `minerd` binary.
    pub minerd: PathBuf,
    /// `fake_bitcoind.py`, run with `python3`.
    pub fake_bitcoind: PathBuf,
}

/// Why the peers cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum PeersError {
    /// The variable is not set.
    #[error(
        "{var} is not set: these tests need the real peers; build them with the peers' \
         `build.sh target/peers` and set HASHGATE_PEERS=target/peers and \
         HASHGATE_PEERS_SRC=<the peers' source directory>, as .ci/run's interop stage does"
    )]
    Unset {
        /// The variable's name.
        var: &'static str,
    },
    /// The variable is set but a program is not where it says.
    #[error("{var}: {} does not exist (did `build.sh` finish?)", path.display())]
    Missing {
        /// The variable that pointed there.
        var: &'static str,
        /// The missing file.
        path: PathBuf,
    },
}

impl Peers {
    /// Reads [`PEERS_VAR`] and [`PEERS_SRC_VAR`] and checks every program is there.
    pub fn from_env() -> Result<Peers, PeersError> {
        let built = dir_from(PEERS_VAR)?;
        let src = dir_from(PEERS_SRC_VAR)?;
        Ok(Peers {
            ckpool: existing(PEERS_VAR, built.join("ckpool/src/ckpool"))?,
            minerd: existing(PEERS_VAR, built.join("cpuminer/minerd"))?,
            fake_bitcoind: existing(PEERS_SRC_VAR, src.join("fake_bitcoind.py"))?,
        })
    }
}

fn dir_from(var: &'static str) -> Result<PathBuf, PeersError> {
    let value = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .ok_or(PeersError::Unset { var })?;
    // Relative paths are meant from where `cargo test` was started (the repository root),
    // but test binaries run in the package root; they are the same here, so make it absolute
    // once so later `current_dir` changes of children cannot move it.
    let path = PathBuf::from(value);
    Ok(if path.is_absolute() {
        path
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    })
}

fn existing(var: &'static str, path: PathBuf) -> Result<PathBuf, PeersError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(PeersError::Missing { var, path })
    }
}
