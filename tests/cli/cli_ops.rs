//! What an operator meets first: `--version`, bind errors that name the setting, the log
//! format and colour.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `hashgate` with `args` and waits for it to exit on its own (bounded: a hang fails).
fn hashgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hashgate"));
    command
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("HASHGATE_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("start hashgate");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("hashgate {args:?} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn version_names_the_git_commit() {
    let out = hashgate(&["--version"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let prefix = concat!("hashgate ", env!("CARGO_PKG_VERSION"), " (commit ");
    let commit = text
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{text:?}"));
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(head) => assert_eq!(commit, head),
        // Built from a tarball without .git.
        None => assert_eq!(commit, "unknown"),
    }
}

fn run_args<'a>(listen: &'a str, http: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--listen",
        listen,
        "--http-listen",
        http,
        "--user",
        "site",
        "--pool",
        "stratum+tcp://127.0.0.1:1",
    ]
}

#[test]
fn a_taken_port_names_the_setting_and_address_and_nothing_is_announced() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for (args, setting) in [
        (run_args("127.0.0.1:0", &addr), "http.listen"),
        (run_args(&addr, "127.0.0.1:0"), "proxy.listen"),
    ] {
        let out = hashgate(&args, &[]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
        assert!(
            stderr.contains(setting) && stderr.contains(&addr),
            "{setting} {addr}: {stderr}"
        );
        assert!(
            !stdout.contains("connect to"),
            "announced before binding: {stdout}"
        );
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    // A bad pool URL: the error is logged, then the process exits 64.
    let args = ["run", "--user", "site", "--pool", "stratum+tcp//x:1"];
    for env in [
        vec![("HASHGATE_LOG_FORMAT", "json")],
        vec![("HASHGATE_LOG_FORMAT", "text")],
    ] {
        let mut args = args.to_vec();
        if env.is_empty() {
            args.extend(["--log-format", "json"]);
        }
        let out = hashgate(&args, &env);
        assert_eq!(out.status.code(), Some(64));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.lines().find(|l| l.contains("bad configuration"));
        let line = line.unwrap_or_else(|| panic!("{stderr}"));
        if env[0].1 == "json" {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["level"], "ERROR", "{line}");
            assert_eq!(value["message"], "bad configuration", "{line}");
            assert!(
                value["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("pools[0].url:"),
                "{line}"
            );
        } else {
            assert!(line.contains("pools[0].url:"), "{line}");
            assert!(serde_json::from_str::<serde_json::Value>(line).is_err());
        }
    }
    // A start failure is a log line too, so a JSON log stays JSON to its last line.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = hashgate(
        &run_args(&addr, "127.0.0.1:0"),
        &[("HASHGATE_LOG_FORMAT", "json")],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut reported = false;
    for line in stderr.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if value["message"] == "cannot start" {
            assert!(value["error"].as_str().unwrap().contains(&addr), "{line}");
            reported = true;
        }
    }
    assert!(reported, "{stderr}");
    let flag = hashgate(
        &[
            "--log-format",
            "json",
            "run",
            "--user",
            "s",
            "--pool",
            "h:0",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&flag.stderr);
    let line = stderr.lines().find(|l| l.contains("bad configuration"));
    serde_json::from_str::<serde_json::Value>(line.unwrap_or_else(|| panic!("{stderr}"))).unwrap();
}

#[test]
fn text_logs_to_a_pipe_have_no_colour_codes() {
    let out = hashgate(&["run", "--user", "site", "--pool", "h:0"], &[]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad configuration"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI escape in piped logs: {stderr:?}"
    );
}
