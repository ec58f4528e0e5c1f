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

/// Every file shipped under `config/` is an example operators copy: each must pass
/// `check-config` as it stands.
#[test]
fn every_shipped_config_file_checks_ok() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let (code, stdout, stderr) = check_config(&path);
            assert_eq!(code, 0, "{}: {stderr}", path.display());
            assert!(stdout.contains(": ok ("), "{stdout}");
            checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    checked.sort();
    // The directory listing is the test's input: a wrong path must not pass with nothing read.
    assert!(
        checked.iter().any(|f| f == "hashgate.toml") && checked.len() >= 3,
        "{checked:?}"
    );
}

#[test]
fn a_malformed_pool_url_is_refused_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("hashgate-cc-url-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("typo.toml");
    std::fs::write(
        &path,
        "[proxy]\naccount = \"a\"\n[[pools]]\nurl = \"stratum+tcp//pool.example:3333\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = check_config(&path);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(code, 64, "{stdout}");
    assert!(stderr.contains("pools[0].url"), "{stderr}");
    assert!(!stdout.contains("stratum+tcp://stratum+tcp"), "{stdout}");
}

#[test]
fn a_wrong_type_reads_plainly_with_path_given_and_expected() {
    let dir = std::env::temp_dir().join(format!("hashgate-cc-type-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("negative.toml");
    std::fs::write(
        &path,
        "[proxy]\naccount = \"a\"\nmax_connections = -5\n[[pools]]\nurl = \"h:1\"\n",
    )
    .unwrap();
    let (code, _, stderr) = check_config(&path);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(code, 64);
    assert!(
        stderr.contains("proxy.max_connections: -5 was given; expected a whole number"),
        "{stderr}"
    );
    assert!(stderr.contains("(line 3)"), "{stderr}");
    assert!(!stderr.contains("usize"), "{stderr}");
}

#[test]
fn economics_is_summarised_and_its_errors_name_the_field() {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml");
    let (code, stdout, _) = check_config(&demo);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("economics: fixed price, 1 tariff(s), curtailment on"),
        "{stdout}"
    );

    let dir = std::env::temp_dir().join(format!("hashgate-cc-econ-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[proxy]\naccount = \"a\"\n[[pools]]\nurl = \"stratum+tcp://pool:3333\"\n\
         [economics]\nprice_url = \"ftp://prices.example/btc\"\n",
    )
    .unwrap();
    let (code, _, stderr) = check_config(&path);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(code, 64);
    assert!(
        stderr.contains("economics.price_url") && stderr.contains("not an http:// or https:// URL"),
        "{stderr}"
    );
}

#[test]
fn listeners_are_named_with_their_addresses_and_a_proxy_listen_beside_them_is_refused() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cc-listeners");
    std::fs::create_dir_all(&dir).unwrap();
    let listeners = "[[listeners]]\nname = \"home\"\nlisten = \"0.0.0.0:3333\"\n\
                     [[listeners]]\nname = \"s21\"\nlisten = \"0.0.0.0:3334\"\n\
                     tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n";
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        format!("[proxy]\naccount = \"a\"\n[[pools]]\nurl = \"pool:3333\"\n{listeners}"),
    )
    .unwrap();
    let (code, stdout, stderr) = check_config(&good);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("listen home 0.0.0.0:3333, s21 0.0.0.0:3334 tls,"),
        "{stdout}"
    );
    let both = dir.join("both.toml");
    std::fs::write(
        &both,
        format!(
            "[proxy]\naccount = \"a\"\nlisten = \"0.0.0.0:3333\"\n[[pools]]\nurl = \"pool:3333\"\n{listeners}"
        ),
    )
    .unwrap();
    let (code, _, stderr) = check_config(&both);
    assert_eq!(code, 64);
    assert!(
        stderr.contains("proxy.listen") && stderr.contains("[[listeners]]"),
        "{stderr}"
    );
}
