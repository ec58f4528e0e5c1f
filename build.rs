//! Build facts the binary and its tests need: the git commit for `hashgate --version`, and
//! whether promtool / prometheus are on PATH, so tests that need them are `#[ignore]`d
//! (shown as ignored, not as a silent pass) where they are absent.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(hashgate_has_promtool)");
    println!("cargo::rustc-check-cfg=cfg(hashgate_has_prometheus)");
    println!("cargo::rerun-if-env-changed=PATH");
    for tool in ["promtool", "prometheus"] {
        if let Some(path) = on_path(tool) {
            println!("cargo::rustc-cfg=hashgate_has_{tool}");
            println!("cargo::rerun-if-changed={}", path.display());
        }
    }

    // A source tarball has no .git: the commit is then "unknown", never a build failure. A
    // build without .git that knows its commit (the Dockerfile's build argument) says so.
    println!("cargo::rerun-if-env-changed=HASHGATE_GIT_COMMIT");
    let commit = std::env::var("HASHGATE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo::rustc-env=HASHGATE_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself (a branch switch), the branch's ref file (a
    // commit), loose or packed, and the HEAD reflog, which every commit appends to (in a
    // fresh clone the branch is packed and its loose ref file appears only later).
    for name in ["HEAD", "packed-refs", "logs/HEAD"] {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            rerun_if_exists(Path::new(&path));
        }
    }
    if let Some(path) = git(&["symbolic-ref", "-q", "HEAD"])
        .and_then(|branch| git(&["rev-parse", "--git-path", &branch]))
    {
        rerun_if_exists(Path::new(&path));
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_owned())
}

/// A missing path given to rerun-if-changed would rerun this script on every build.
fn rerun_if_exists(path: &Path) {
    if path.exists() {
        println!("cargo::rerun-if-changed={}", path.display());
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
