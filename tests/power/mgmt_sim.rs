//! Every family's client against its simulated management API: telemetry, sleep, wake,
//! power limit, and the shared state the Stratum-side miner will read.

use std::time::{Duration, Instant};

use hashgate_lab::sim::mgmt::{self, Ending, SimMgmtServer, SimMinerSpec, SimMinerState};
use hashgate_site::power::api::command::Target;
use hashgate_site::power::api::{
    ApiError, Credentials, Family, MinerCommand, MinerState, Timeouts, run_miner_command,
};

fn root() -> Credentials {
    Credentials {
        user: "root".into(),
        password: "root".into(),
    }
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        call: Duration::from_secs(5),
    }
}

/// A miner without ramp or thermal lag, so readings settle at once.
fn instant_spec() -> SimMinerSpec {
    SimMinerSpec {
        ramp: Duration::ZERO,
        thermal_tau: Duration::ZERO,
        ..SimMinerSpec::default()
    }
}

async fn start(family: Family) -> SimMgmtServer {
    let state = SimMinerState::new(instant_spec(), 27.0, Instant::now());
    mgmt::spawn(family, state).await.expect("bind simulator")
}

async fn sleep_wake_cycle(family: Family, reports_power: bool) {
    let sim = start(family).await;
    let client = sim.client(root(), timeouts());
    assert_eq!(client.family(), family);

    let t = client.telemetry().await.expect("telemetry awake");
    assert_eq!(t.state, MinerState::Mining, "{family}");
    assert!(
        (t.hashrate_ths.unwrap() - 110.0).abs() < 0.5,
        "{family}: {t:?}"
    );
    assert_eq!(t.board_temps_c.len(), 3, "{family}: {t:?}");
    assert!(t.board_temps_c[0] > 60.0, "{family}: {t:?}");
    assert!(!t.fan_rpm.is_empty(), "{family}");
    if reports_power {
        assert!(
            (t.power_watts.unwrap() - 3250.0).abs() < 1.0,
            "{family}: {t:?}"
        );
    } else {
        assert_eq!(t.power_watts, None);
    }

    client.sleep().await.expect("sleep");
    assert!(!sim.state.is_hashing(Instant::now()), "{family}");
    let t = client.telemetry().await.expect("telemetry asleep");
    assert_eq!(t.state, MinerState::Sleeping, "{family}");
    assert_eq!(t.hashrate_ths, Some(0.0), "{family}");
    if reports_power {
        assert!(t.power_watts.unwrap() < 50.0, "{family}: {t:?}");
    }

    client.wake().await.expect("wake");
    assert!(sim.state.is_hashing(Instant::now()), "{family}");
    let t = client.telemetry().await.expect("telemetry woken");
    assert_eq!(t.state, MinerState::Mining, "{family}");
    assert_eq!(sim.state.command_log(), vec!["sleep", "wake"], "{family}");
}

#[tokio::test]
async fn luxos_sleep_wake() {
    sleep_wake_cycle(Family::Luxos, true).await;
}

#[tokio::test]
async fn avalon_sleep_wake() {
    sleep_wake_cycle(Family::Avalon, true).await;
}

#[tokio::test]
async fn antminer_sleep_wake_through_digest_cgi() {
    sleep_wake_cycle(Family::Antminer, false).await;
}

#[tokio::test]
async fn braiins_sleep_wake() {
    sleep_wake_cycle(Family::Braiins, true).await;
}

#[tokio::test]
async fn whatsminer_sleep_wake_through_encrypted_envelope() {
    sleep_wake_cycle(Family::Whatsminer, true).await;
}

#[tokio::test]
async fn power_limits_where_supported() {
    for (family, ask, expect) in [
        (Family::Braiins, 2500, 2500.0),
        (Family::Whatsminer, 2800, 2800.0),
        // LuxOS picks the largest profile under the cap: 0.7 × 3250 W.
        (Family::Luxos, 2500, 2275.0),
    ] {
        let sim = start(family).await;
        let client = sim.client(root(), timeouts());
        client.set_power_limit(ask).await.expect("power limit");
        let t = client.telemetry().await.unwrap();
        assert!(
            (t.power_watts.unwrap() - expect).abs() < 1.0,
            "{family}: {t:?}"
        );
        assert!(t.hashrate_ths.unwrap() < 110.0, "{family}");
    }
    for family in [Family::Antminer, Family::Avalon] {
        let sim = start(family).await;
        let client = sim.client(root(), timeouts());
        assert!(matches!(
            client.set_power_limit(2000).await,
            Err(ApiError::Unsupported { family: f, .. }) if f == family
        ));
        assert!(sim.state.command_log().is_empty());
    }
}

#[tokio::test]
async fn expired_session_or_token_logs_on_again() {
    for family in [Family::Luxos, Family::Braiins] {
        let spec = SimMinerSpec {
            session_idle: Duration::from_millis(200),
            ..instant_spec()
        };
        let sim = mgmt::spawn(family, SimMinerState::new(spec, 25.0, Instant::now()))
            .await
            .unwrap();
        let client = sim.client(root(), timeouts());
        client.sleep().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The cached session / token is dead now; the client must log on again by itself.
        client.wake().await.unwrap();
        assert_eq!(sim.state.command_log(), vec!["sleep", "wake"], "{family}");
    }
}

#[tokio::test]
async fn every_reply_ending_works() {
    for ending in [Ending::Nul, Ending::Newline, Ending::Close] {
        for family in [
            Family::Luxos,
            Family::Avalon,
            Family::Whatsminer,
            Family::Antminer,
        ] {
            let state = SimMinerState::new(instant_spec(), 25.0, Instant::now());
            let sim = mgmt::spawn_with_ending(family, state, ending)
                .await
                .unwrap();
            let t = sim.client(root(), timeouts()).telemetry().await;
            assert!(t.is_ok(), "{family} {ending:?}: {t:?}");
        }
    }
}

#[tokio::test]
async fn temperature_follows_inlet_through_the_api() {
    let sim = start(Family::Whatsminer).await;
    let client = sim.client(root(), timeouts());
    let before = client.telemetry().await.unwrap();
    sim.state.set_inlet(35.0, Instant::now());
    let after = client.telemetry().await.unwrap();
    assert_eq!(before.inlet_temp_c, Some(27.0));
    assert_eq!(after.inlet_temp_c, Some(35.0));
    assert!((after.board_temps_c[0] - before.board_temps_c[0] - 8.0).abs() < 0.01);
}

#[tokio::test]
async fn run_miner_command_status_sleep_wake() {
    let sim = start(Family::Luxos).await;
    let target = Target {
        family: Family::Luxos,
        addr: sim.addr,
        web: None,
        credentials: root(),
        timeouts: timeouts(),
    };
    let status = run_miner_command(&target, MinerCommand::Status)
        .await
        .unwrap();
    assert_eq!(status["family"], "luxos");
    assert_eq!(status["address"], sim.addr.to_string());
    assert_eq!(status["telemetry"]["state"], "mining");
    assert_eq!(status["raw"]["power"]["POWER"][0]["Watts"], 3250.0);

    let slept = run_miner_command(&target, MinerCommand::Sleep)
        .await
        .unwrap();
    assert_eq!(slept["ok"], true);
    let status = run_miner_command(&target, MinerCommand::Status)
        .await
        .unwrap();
    assert_eq!(status["telemetry"]["state"], "sleeping");
    run_miner_command(&target, MinerCommand::Wake)
        .await
        .unwrap();
    assert!(sim.state.is_hashing(Instant::now()));

    let antminer = start(Family::Antminer).await;
    let target = Target {
        family: Family::Antminer,
        addr: antminer.addr,
        web: antminer.web_addr,
        credentials: root(),
        timeouts: timeouts(),
    };
    let status = run_miner_command(&target, MinerCommand::Status)
        .await
        .unwrap();
    assert_eq!(status["telemetry"]["state"], "mining");
    let err = run_miner_command(&target, MinerCommand::PowerLimit(2000)).await;
    assert!(matches!(err, Err(ApiError::Unsupported { .. })));
}

#[tokio::test]
async fn antminer_sleep_keeps_the_pool_configuration() {
    let sim = start(Family::Antminer).await;
    let client = sim.client(root(), timeouts());
    client.sleep().await.unwrap();
    client.wake().await.unwrap();
    // Read the stored configuration back through the same Digest-protected page.
    let target = Target {
        family: Family::Antminer,
        addr: sim.addr,
        web: sim.web_addr,
        credentials: root(),
        timeouts: timeouts(),
    };
    let status = run_miner_command(&target, MinerCommand::Status)
        .await
        .unwrap();
    assert_eq!(status["telemetry"]["state"], "mining");
    let conf = reqwest_free_get_conf(&sim).await;
    assert_eq!(conf["pools"][0]["url"], "stratum+tcp://pool.example:3333");
    assert_eq!(conf["bitmain-work-mode"], "0");
}

/// Fetches get_miner_conf.cgi with Digest auth using the library's own primitives.
async fn reqwest_free_get_conf(sim: &SimMgmtServer) -> serde_json::Value {
    use hashgate_site::power::api::digest::Challenge;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let web = sim.web_addr.unwrap();
    let path = "/cgi-bin/get_miner_conf.cgi";
    let get = |auth: Option<String>| async move {
        let mut s = tokio::net::TcpStream::connect(web).await.unwrap();
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let first = get(None).await;
    let header = first
        .lines()
        .find_map(|l| l.strip_prefix("www-authenticate: "))
        .expect("challenge");
    let challenge = Challenge::parse(header).unwrap();
    let auth = challenge.authorization("root", "root", "GET", path, "abc", 1);
    let second = get(Some(auth)).await;
    let body = second.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn whatsminer_client_reuses_its_token_under_the_32_token_limit() {
    let sim = start(Family::Whatsminer).await;
    let client = sim.client(root(), timeouts());
    // 40 writes: a client fetching a token per write would be refused (code 136) at 33.
    for _ in 0..20 {
        client.sleep().await.unwrap();
        client.wake().await.unwrap();
    }
    assert_eq!(sim.state.command_log().len(), 40);
    // Another client (another process) still gets its own token.
    let other = sim.client(root(), timeouts());
    other.set_power_limit(3000).await.unwrap();
}
