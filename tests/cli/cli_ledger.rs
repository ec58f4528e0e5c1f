//! The ledger across a crash: `hashgate run` killed with SIGKILL mid-hour and started again
//! on the same file keeps what it had flushed, adds the new boot's shares to the same hour,
//! and counts nothing twice; `hashgate ledger export` reads it back.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hashgate_lab::sim::asic::{SimAsic, SimAsicConfig};
use hashgate_lab::sim::pool::{SimPool, SimPoolConfig};
use hashgate_site::ledger::{GroupBy, Reader};

/// The flush interval the test configures: the most a crash may lose.
const FLUSH_SECS: f64 = 1.0;

struct Run {
    child: Child,
    miner_addr: SocketAddr,
}

fn config(dir: &Path, pool: SocketAddr) -> PathBuf {
    let file = dir.join("hashgate.toml");
    std::fs::write(
        &file,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"site\"\ninitial_difficulty = 1e-7\n\
             [vardiff]\nmin_difficulty = 1e-7\nmax_difficulty = 1e-7\n\
             [[pools]]\nurl = \"stratum+tcp://{pool}\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\
             [ledger]\npath = \"{}\"\nflush_secs = {FLUSH_SECS}\n",
            dir.join("ledger.sqlite").display()
        ),
    )
    .unwrap();
    file
}

async fn start(config: &Path) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let lines = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let done = line.starts_with("hashgate: ledger in");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    })
    .await
    .unwrap();
    assert!(
        lines.iter().any(|l| l.starts_with("hashgate: ledger in")),
        "no ledger line: {lines:?}"
    );
    let miner_addr = lines
        .iter()
        .find_map(|l| l.strip_prefix("hashgate: miners connect to "))
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no miner address in {lines:?}"));
    Run { child, miner_addr }
}

fn kill9(mut run: Run) {
    // `Child::kill` is SIGKILL on Unix: no shutdown sequence, no last flush.
    run.child.kill().unwrap();
    run.child.wait().unwrap();
}

async fn mine_until(asic: &SimAsic, accepted: u64) {
    let start = Instant::now();
    while asic.stats().accepted < accepted {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {} shares accepted",
            asic.stats().accepted
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ledger_accepted(path: &Path, from: i64) -> f64 {
    let table = Reader::open(path)
        .unwrap()
        .export(from, from + 3 * 3600, GroupBy::Miner)
        .unwrap();
    table.total("accepted").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_hour_loses_nothing_flushed_and_a_restart_adds_to_the_hour() {
    let pool = SimPool::start(SimPoolConfig {
        difficulty: 1e-7,
        ..SimPoolConfig::default()
    })
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!("hashgate-ledger-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = config(&dir, pool.addr());
    let ledger = dir.join("ledger.sqlite");
    let checked = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let checked = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.contains(&format!(
            "ledger {} (kept 400 days, flushed every 1 s)",
            ledger.display()
        )),
        "{checked}"
    );
    assert!(!ledger.exists(), "check-config must not create the ledger");
    let from = hashgate_site::ledger::parse_time("now").unwrap() - 3600;
    let asic = |addr| {
        let mut cfg = SimAsicConfig::new(addr, "site.rig1");
        cfg.hashrate = 2_000.0;
        SimAsic::start(cfg)
    };

    // Boot 1: mine, go quiet for more than a flush interval, then SIGKILL: everything the
    // miner was told was accepted is in the file.
    let run = start(&file).await;
    let first = asic(run.miner_addr);
    mine_until(&first, 30).await;
    first.stop().await;
    let boot1 = first.stats().accepted;
    tokio::time::sleep(Duration::from_secs_f64(FLUSH_SECS * 2.5)).await;
    kill9(run);
    assert_eq!(ledger_accepted(&ledger, from), boot1 as f64);

    // Boot 2 on the same file, killed while shares flow: its counters start from zero, and
    // they are added to the hour, not written over it; at most the last flush interval
    // is lost, and nothing is counted twice.
    let run = start(&file).await;
    let second = asic(run.miner_addr);
    mine_until(&second, 30).await;
    let settled = second.stats().accepted;
    // Past one flush after `settled`, plus a margin for a busy machine.
    tokio::time::sleep(Duration::from_secs_f64(FLUSH_SECS * 2.5)).await;
    kill9(run);
    let sent = second.stats().submitted;
    second.stop().await;
    let total = ledger_accepted(&ledger, from);
    assert!(
        total >= (boot1 + settled) as f64,
        "lost flushed shares: ledger {total}, boot 1 {boot1} + boot 2 by the last flush {settled}"
    );
    assert!(
        total <= (boot1 + sent) as f64,
        "counted twice: ledger {total} > boot 1 {boot1} + boot 2 sent {sent}"
    );
    assert!(
        total < (2 * boot1 + settled) as f64 || boot1 == 0,
        "boot 1 counted twice"
    );

    // Boot 3 exits cleanly with nothing new: the file still says the same, and the export
    // command reads it.
    let mut run = start(&file).await;
    // The signal handler is installed right after the last start-up line is printed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Command::new("kill")
        .args(["-TERM", &run.child.id().to_string()])
        .status()
        .unwrap();
    let status = run.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(ledger_accepted(&ledger, from), total);
    let out = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args(["ledger", "export", "--config"])
        .arg(&file)
        .args(["--from", &from.to_string(), "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let exported: f64 = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["accepted"].as_f64().unwrap())
        .sum();
    assert_eq!(exported, total);
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["miner"] == "site.rig1")
    );
    let csv = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args(["ledger", "export", "--by", "customer", "--file"])
        .arg(&ledger)
        .args(["--from", &from.to_string()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&csv.stdout).starts_with("hour,customer,miners,accepted,"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn export_names_what_is_missing() {
    let dir = std::env::temp_dir().join(format!("hashgate-ledger-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("site.toml");
    std::fs::write(
        &file,
        "[proxy]\naccount = \"site\"\n[[pools]]\nurl = \"stratum+tcp://127.0.0.1:1\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hashgate"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let config = file.to_str().unwrap();
    let (ok, err) = run(&["ledger", "export", "--config", config]);
    let summary = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args(["check-config", config])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&summary.stdout).contains("; ledger "));
    assert!(!ok && err.contains("no [ledger] section"), "{err}");
    let missing = dir.join("nothing.sqlite");
    let (ok, err) = run(&["ledger", "export", "--file", missing.to_str().unwrap()]);
    assert!(!ok && err.contains("cannot open"), "{err}");
    assert!(!missing.exists(), "a reader must not create the file");
    let (ok, err) = run(&["ledger", "export", "--file", "x", "--from", "yesterday"]);
    assert!(!ok && err.contains("--from"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
