//! Real captured replies served over loopback TCP 4028-style, read by the clients and by
//! `hashgate miner status` exactly as a miner on the network would be.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use hashgate_site::power::api::avalon::AvalonClient;
use hashgate_site::power::api::{MinerApi, MinerState, Timeouts};
use serde_json::Value;

fn fixture_bytes(rel: &str) -> Vec<u8> {
    let path = crate::support::fixtures::fixtures_dir()
        .join("miner-api")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// cgminer's answer to a command it does not know, as Avalon firmware writes it.
const INVALID_COMMAND: &[u8] = br#"{"STATUS":[{"STATUS":"E","When":1753431516,"Code":14,"Msg":"Invalid command","Description":"cgminer 4.11.1"}],"id":1}"#;

/// Serves `replies[command]` (NUL-terminated, as cgminer ends a reply) to each connection
/// until the test process ends; unknown commands get cgminer's error.
fn serve(replies: HashMap<&'static str, Vec<u8>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request: Value = serde_json::from_slice(&buf[..n]).unwrap_or(Value::Null);
            let command = request["command"].as_str().unwrap_or_default();
            let body = replies.get(command).map_or(INVALID_COMMAND, Vec::as_slice);
            let _ = stream.write_all(body);
            let _ = stream.write_all(b"\0");
        }
    });
    addr
}

fn avalon_q(stats: Vec<u8>) -> SocketAddr {
    serve(HashMap::from([
        ("summary", fixture_bytes("avalon/q_25052801/summary.json")),
        ("stats", stats),
        (
            "litestats",
            fixture_bytes("avalon/q_25052801/litestats.json"),
        ),
    ]))
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        call: Duration::from_secs(5),
    }
}

#[test]
fn miner_status_reads_a_real_avalon_q() {
    let addr = avalon_q(fixture_bytes("avalon/q_25052801/stats.json"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args(["miner", "status", "--family", "avalon", &addr.to_string()])
        .output()
        .expect("run hashgate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).expect("status is JSON");
    assert_eq!(status["family"], "avalon");
    let t = &status["telemetry"];
    assert_eq!(t["state"], "sleeping");
    assert_eq!(t["hashrate_ths"], 0.0);
    assert_eq!(t["inlet_temp_c"], 26.0);
    assert_eq!(t["power_watts"], 146.0);
    assert_eq!(
        status["raw"]["stats"]["STATS"][0]["ID"], "AVALON0",
        "the miner's own reply is shown"
    );
    assert!(status["raw"].get("litestats").is_none(), "stats sufficed");
}

#[tokio::test]
async fn empty_stats_string_falls_back_to_litestats() {
    let stats = String::from_utf8(fixture_bytes("avalon/q_25052801/stats.json")).unwrap();
    let mut doc: Value = serde_json::from_str(&stats).unwrap();
    doc["STATS"][0]["MM ID0:Summary"] = Value::String(String::new());
    let addr = avalon_q(doc.to_string().into_bytes());
    let client = AvalonClient::new(addr, timeouts());
    let t = client.telemetry().await.expect("telemetry");
    assert_eq!(t.state, MinerState::Sleeping);
    assert_eq!(t.inlet_temp_c, Some(26.0));
    assert_eq!(t.power_watts, Some(146.0));
    // `estats` is refused by this miner and skipped; `litestats` answers.
    let raw = client.raw_status().await.unwrap();
    assert!(raw.get("estats").is_none());
    assert!(raw.get("litestats").is_some());
}

#[tokio::test]
async fn stats_refused_fails_the_call() {
    let addr = serve(HashMap::from([(
        "summary",
        fixture_bytes("avalon/q_25052801/summary.json"),
    )]));
    let client = AvalonClient::new(addr, timeouts());
    let err = client.telemetry().await.unwrap_err();
    assert!(err.to_string().contains("Invalid command"), "{err}");
}
