//! `hashgate run` as a process: flags instead of a file, a real share through it, and a
//! clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hashgate_lab::sim::asic::{SimAsic, SimAsicConfig};
use hashgate_lab::sim::pool::{SimPool, SimPoolConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_from_flags_mines_and_stops_on_sigterm() {
    let pool = SimPool::start(SimPoolConfig {
        difficulty: 1e-7,
        ..SimPoolConfig::default()
    })
    .await
    .unwrap();
    // Difficulty comes from the file (through HASHGATE_CONFIG), everything else from flags.
    let dir = std::env::temp_dir().join(format!("hashgate-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hashgate.toml");
    std::fs::write(
        &file,
        "[proxy]\ninitial_difficulty = 1e-7\n[vardiff]\nmin_difficulty = 1e-7\nmax_difficulty = 1e-7\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--user",
            "site",
            "--pool",
        ])
        .arg(format!("stratum+tcp://{}", pool.addr()))
        .env("HASHGATE_CONFIG", &file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read the first line, then keep draining stdout so the child never writes to a closed pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (line, rx) =
        tokio::task::spawn_blocking(move || (rx.recv_timeout(Duration::from_secs(30)), rx))
            .await
            .unwrap();
    let line = line.expect("hashgate run printed its listen address");
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no listen address in {line:?}"));

    let mut cfg = SimAsicConfig::new(addr, "site.rig1");
    cfg.hashrate = 2_000.0;
    let asic = SimAsic::start(cfg);
    let start = Instant::now();
    while pool.stats().accepted < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no shares reached the pool through the proxy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The default upstream identity: the account, whatever the miner calls itself.
    assert!(
        pool.stats().workers.contains_key("site"),
        "{:?}",
        pool.stats().workers.keys()
    );
    // SIGHUP reloads: a file that does not validate is refused and the running settings
    // kept, a valid one is applied; the miner stays connected and keeps mining throughout.
    let hangup = |pid: u32| {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    };
    let next_line = |rx: std::sync::mpsc::Receiver<String>, wanted: &'static str| async move {
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                if line.starts_with(wanted) {
                    return (line, rx);
                }
            }
            panic!("no line starting {wanted:?}");
        })
        .await
        .unwrap()
    };
    std::fs::write(
        &file,
        "[proxy]
initial_difficulty = -1
",
    )
    .unwrap();
    hangup(child.id());
    let (refused, rx) = next_line(rx, "hashgate: reload refused").await;
    assert!(refused.contains("running settings kept"), "{refused}");
    std::fs::write(
        &file,
        "[proxy]
initial_difficulty = 1e-7
[vardiff]
min_difficulty = 1e-7
max_difficulty = 1e-7
",
    )
    .unwrap();
    hangup(child.id());
    let (_, rx) = next_line(rx, "hashgate: reloaded").await;
    let before = pool.stats().accepted;
    let start = Instant::now();
    while pool.stats().accepted < before + 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no shares after the reload"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(asic.stats().connects, 1, "the miner never reconnected");
    asic.stop().await;

    // SIGTERM, as a service manager stops it.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(status.success(), "hashgate run exited with {status}");
    // Its last word says where the shares went, since the status API is gone by then.
    // The reader thread ends (and drops its sender) at the child's EOF.
    let rest: Vec<String> =
        std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(10)).ok()).collect();
    let ledger = rest
        .iter()
        .find(|l| l.starts_with("hashgate: stopped; shares sent to pools"))
        .unwrap_or_else(|| panic!("no final ledger line in {rest:?}"));
    let accepted: u64 = ledger
        .split("accepted ")
        .nth(1)
        .and_then(|a| a.split(',').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no accepted count in {ledger:?}"));
    assert!(accepted >= 3, "{ledger}");
}

#[test]
fn run_with_a_bad_config_exits_64() {
    let out = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args([
            "run",
            "--listen",
            "nowhere",
            "--user",
            "site",
            "--pool",
            "127.0.0.1:3333",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("proxy.listen"));
}
