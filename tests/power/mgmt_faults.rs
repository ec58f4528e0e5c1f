//! Fault switches: a silent miner is a Timeout within the deadline, garbage is a Protocol
//! error, a changed password is an Auth error, a slow but timely miner still works.

use std::time::{Duration, Instant};

use hashgate_lab::sim::mgmt::{self, Fault, SimMgmtServer, SimMinerSpec, SimMinerState};
use hashgate_site::power::api::{ApiError, Credentials, Family, MinerApi, Timeouts};

const ALL: [Family; 5] = [
    Family::Antminer,
    Family::Avalon,
    Family::Luxos,
    Family::Braiins,
    Family::Whatsminer,
];

fn root() -> Credentials {
    Credentials {
        user: "root".into(),
        password: "root".into(),
    }
}

fn short() -> Timeouts {
    Timeouts {
        connect: Duration::from_millis(300),
        call: Duration::from_millis(400),
    }
}

async fn start(family: Family, fault: Fault) -> (SimMgmtServer, Box<dyn MinerApi>) {
    let spec = SimMinerSpec {
        ramp: Duration::ZERO,
        thermal_tau: Duration::ZERO,
        ..SimMinerSpec::default()
    };
    let sim = mgmt::spawn(family, SimMinerState::new(spec, 25.0, Instant::now()))
        .await
        .unwrap();
    sim.state.set_fault(fault);
    let client = sim.client(root(), short());
    (sim, client)
}

#[tokio::test]
async fn no_answer_is_a_timeout_within_the_deadline() {
    for family in ALL {
        let (_sim, client) = start(family, Fault::NoAnswer).await;
        for op in ["telemetry", "sleep"] {
            let began = Instant::now();
            let result = match op {
                "telemetry" => client.telemetry().await.map(drop),
                _ => client.sleep().await,
            };
            let took = began.elapsed();
            assert!(
                matches!(result, Err(ApiError::Timeout(d)) if d == short().call),
                "{family} {op}: {result:?}"
            );
            // One deadline for the whole call, not one per round trip (telemetry makes up
            // to five): the slack is for a loaded 2-core machine.
            assert!(
                took < Duration::from_millis(1200),
                "{family} {op}: {took:?}"
            );
        }
    }
}

#[tokio::test]
async fn slower_than_the_deadline_is_a_timeout_and_faster_is_fine() {
    for family in ALL {
        let (sim, client) = start(family, Fault::Slow(Duration::from_millis(600))).await;
        let result = client.telemetry().await;
        assert!(
            matches!(result, Err(ApiError::Timeout(_))),
            "{family}: {result:?}"
        );
        sim.state.set_fault(Fault::Slow(Duration::from_millis(20)));
        let patient = sim.client(
            root(),
            Timeouts {
                connect: Duration::from_secs(1),
                call: Duration::from_secs(3),
            },
        );
        assert!(patient.telemetry().await.is_ok(), "{family}");
    }
}

#[tokio::test]
async fn garbage_is_a_protocol_error() {
    for family in ALL {
        let (_sim, client) = start(family, Fault::Garbage).await;
        let result = client.telemetry().await;
        // Braiins logs in first, so its garbage arrives as the login reply.
        assert!(
            matches!(result, Err(ApiError::Protocol(_))),
            "{family}: {result:?}"
        );
    }
}

#[tokio::test]
async fn wrong_credentials_are_an_auth_error() {
    // Avalon's API has no login, so it has no credentials to get wrong.
    for family in [
        Family::Antminer,
        Family::Luxos,
        Family::Braiins,
        Family::Whatsminer,
    ] {
        let (sim, client) = start(family, Fault::WrongCredentials).await;
        let result = client.sleep().await;
        assert!(
            matches!(result, Err(ApiError::Auth(_))),
            "{family}: {result:?}"
        );
        assert!(
            sim.state.is_hashing(Instant::now()),
            "{family} slept anyway"
        );
        assert!(sim.state.command_log().is_empty(), "{family}");
    }
}

#[tokio::test]
async fn wrong_password_from_the_operator_is_an_auth_error() {
    for family in [Family::Antminer, Family::Braiins, Family::Whatsminer] {
        let (sim, _) = start(family, Fault::None).await;
        let wrong = Credentials {
            user: "root".into(),
            password: "hunter2".into(),
        };
        let client = sim.client(wrong, short());
        let result = client.sleep().await;
        assert!(
            matches!(result, Err(ApiError::Auth(_))),
            "{family}: {result:?}"
        );
        assert!(sim.state.is_hashing(Instant::now()), "{family}");
    }
}

#[tokio::test]
async fn refused_connection_is_io_and_fast() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    for family in ALL {
        let client = hashgate_site::power::api::client(family, addr, root(), short());
        let began = Instant::now();
        let result = client.telemetry().await;
        assert!(
            matches!(result, Err(ApiError::Io(_))),
            "{family}: {result:?}"
        );
        assert!(began.elapsed() < Duration::from_millis(1200));
    }
}

#[tokio::test]
async fn bounded_fan_out_over_mixed_families_with_faults() {
    use std::num::NonZeroUsize;
    use std::sync::Arc;

    let mut sims = Vec::new();
    let mut clients: Vec<Arc<dyn MinerApi>> = Vec::new();
    for (i, family) in ALL.iter().cycle().take(15).enumerate() {
        let fault = if i % 5 == 3 {
            Fault::NoAnswer
        } else {
            Fault::None
        };
        let (sim, client) = start(*family, fault).await;
        clients.push(Arc::from(client));
        sims.push(sim);
    }
    let results =
        hashgate_site::power::api::fanout::telemetry_all(&clients, NonZeroUsize::new(4).unwrap())
            .await;
    assert_eq!(results.len(), 15);
    for (i, r) in results.iter().enumerate() {
        if i % 5 == 3 {
            assert!(matches!(r, Err(ApiError::Timeout(_))), "{i}: {r:?}");
        } else {
            assert!(r.is_ok(), "{i}: {r:?}");
        }
    }
}
