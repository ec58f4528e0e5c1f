//! `hashgate miner ...` against a simulated LuxOS management API, through the real binary.

use std::time::{Duration, Instant};

use hashgate_lab::sim::mgmt::{self, SimMinerSpec, SimMinerState};
use hashgate_site::power::api::{Credentials, Family};

fn hashgate(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args(args)
        .env("HASHGATE_MINER_PASSWORD", "secret")
        .output()
        .expect("run hashgate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_sleep_and_wake_print_what_the_miner_says() {
    let spec = SimMinerSpec {
        ramp: Duration::ZERO,
        thermal_tau: Duration::ZERO,
        credentials: Credentials {
            user: "root".into(),
            password: "secret".into(),
        },
        ..SimMinerSpec::default()
    };
    let state = SimMinerState::new(spec, 27.0, Instant::now());
    let server = mgmt::spawn(Family::Luxos, state.clone()).await.unwrap();
    let addr = server.addr.to_string();

    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            hashgate(&args)
        })
    };
    let out = run(vec![
        "miner".into(),
        "status".into(),
        "--family".into(),
        "luxos".into(),
        addr.clone(),
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status is JSON");
    assert_eq!(status["family"], "luxos");
    assert_eq!(status["telemetry"]["state"], "mining");

    let out = run(vec![
        "miner".into(),
        "sleep".into(),
        "--family".into(),
        "luxos".into(),
        addr.clone(),
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !state.is_hashing(Instant::now()),
        "the simulated miner is asleep"
    );

    let out = run(vec![
        "miner".into(),
        "wake".into(),
        "--family".into(),
        "luxos".into(),
        addr,
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        state.is_hashing(Instant::now()),
        "the simulated miner is awake"
    );
}

#[test]
fn unreachable_miner_is_a_clear_error() {
    // Port 9 on loopback: nothing listens there in a test sandbox.
    let out = hashgate(&[
        "miner",
        "status",
        "--family",
        "avalon",
        "--timeout",
        "1",
        "127.0.0.1:9",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("avalon 127.0.0.1:9"), "{stderr}");
}

#[test]
fn bad_address_is_refused() {
    let out = hashgate(&["miner", "status", "--family", "luxos", "not-an-ip"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an ip"));
}
