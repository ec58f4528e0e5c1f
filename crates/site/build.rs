//! Records the compiler's version for `hashgate_build_info`; the commit comes from
//! `HASHGATE_COMMIT` when the packager sets it (a source tarball has no git).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HASHGATE_COMMIT");
    println!("cargo:rerun-if-env-changed=RUSTC");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=HASHGATE_RUSTC_VERSION={version}");
}
