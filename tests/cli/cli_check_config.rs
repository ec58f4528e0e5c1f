//! `hashgate check-config`: exit 0 on a good file, 64 naming the field on a bad one.

use std::process::Command;

fn check_config(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .arg("check-config")
        .arg(path)
        .output()
        .expect("run hashgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_config_checks_ok() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/hashgate.toml");
    let (code, stdout, _) = check_config(&path);
    assert_eq!(code, 0);
    assert!(stdout.contains("ok"), "{stdout}");
}

#[test]
fn bad_config_exits_64_and_names_the_field() {
    let dir = std::env::temp_dir().join(format!("hashgate-cc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[proxy]\naccount = \"a\"\n[[pools]]\nurl = \"pool:99999\"\n",
    )
    .unwrap();
    let (code, _, stderr) = check_config(&path);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(code, 64);
    assert!(stderr.contains("pools[0].url"), "{stderr}");
}

#[test]
fn missing_file_exits_64() {
    let (code, _, stderr) = check_config(std::path::Path::new("/nonexistent/hashgate.toml"));
    assert_eq!(code, 64);
    assert!(stderr.contains("cannot read"), "{stderr}");
}
