//! The status server as a hostile client sees it: half-sent requests, idle keep-alive
//! connections by the hundred, admin writes during shutdown. None may keep hashgate from
//! exiting or take the descriptors miners need.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hashgate_lab::sim::pool::{SimPool, SimPoolConfig};
use hashgate_site::config::Config;
use hashgate_site::exporter::Exporter;
use hashgate_site::http::{HttpConfig, HttpState};
use hashgate_site::site::{Site, SiteOptions};
use hashgate_site::stats::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::support::downstream::Miner;

const HALF_REQUEST: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: hashgate\r\nX-Slow: ";

async fn site(pool: &SimPool, http: &str) -> Site {
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"site\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n{http}\n\
         [[pools]]\nname = \"pool\"\nurl = \"stratum+tcp://{}\"\n",
        pool.addr()
    );
    let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Site::start(SiteOptions::new(config)).await.unwrap()
}

async fn pool() -> SimPool {
    SimPool::start(SimPoolConfig::default()).await.unwrap()
}

/// Opens `count` connections that each send `bytes` and then nothing.
async fn open(addr: SocketAddr, count: usize, bytes: &[u8]) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..count {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        if !bytes.is_empty() {
            // A refused connection may already be closed: that is fine.
            let _ = stream.write_all(bytes).await;
        }
        held.push(stream);
    }
    held
}

/// Those of `streams` the server has not closed after a short wait.
async fn still_open(streams: Vec<TcpStream>) -> Vec<TcpStream> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut kept = Vec::new();
    for stream in streams {
        let mut byte = [0u8; 1];
        match stream.try_read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => kept.push(stream),
            Ok(n) if n > 0 => kept.push(stream),
            // EOF or reset: the server closed it.
            _ => {}
        }
    }
    kept
}

/// Reads until EOF, failing after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_do_not_hold_shutdown_past_the_grace() {
    let pool = pool().await;
    // A long header timeout, so the shutdown deadline alone has to end them.
    let site = site(
        &pool,
        "header_read_timeout_secs = 60\nshutdown_grace_secs = 1\nmax_connections = 256",
    )
    .await;
    let http = site.http_addr.unwrap();
    let held = open(http, 200, HALF_REQUEST).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), site.shutdown())
        .await
        .expect("shutdown ends although 200 requests are half sent")
        .unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_and_idle_keep_alives_are_closed_by_the_header_timeout() {
    let pool = pool().await;
    let site = site(&pool, "header_read_timeout_secs = 0.5").await;
    let http = site.http_addr.unwrap();
    let mut half = TcpStream::connect(http).await.unwrap();
    half.write_all(HALF_REQUEST).await.unwrap();
    assert!(
        closed_within(&mut half, Duration::from_secs(5)).await,
        "a half-sent request is closed"
    );
    let mut idle = TcpStream::connect(http).await.unwrap();
    idle.write_all(b"GET /api/v1/summary HTTP/1.1\r\nHost: hashgate\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "an idle keep-alive connection is closed"
    );
    site.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_beyond_the_cap_are_closed_and_miners_still_connect() {
    let pool = pool().await;
    let site = site(&pool, "max_connections = 8\nheader_read_timeout_secs = 60").await;
    let held = still_open(open(site.http_addr.unwrap(), 40, b"").await).await;
    assert_eq!(held.len(), 8, "the status server holds at most its cap");
    let mut miner = Miner::connect(site.miner_addr).await;
    miner.setup("rig1", false).await;
    drop(held);
    site.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_descriptor_reserve_refuses_http_before_miners() {
    let pool = pool().await;
    // A reserve as large as any limit: every HTTP connection is past the ceiling.
    let site = site(&pool, "fd_reserve = 100000000").await;
    let held = still_open(open(site.http_addr.unwrap(), 5, b"").await).await;
    assert!(held.is_empty(), "HTTP refused inside the reserve");
    let mut miner = Miner::connect(site.miner_addr).await;
    miner.setup("rig1", false).await;
    site.shutdown().await.unwrap();
}

async fn status(base: &str, method: &str, path: &str) -> u16 {
    let mut stream = TcpStream::connect(base).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_writes_answer_503_once_shutdown_has_begun() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = listener.local_addr().unwrap().to_string();
    let exporter = Exporter::new(Registry::new(), 10);
    let closing = CancellationToken::new();
    let state = HttpState::new(std::sync::Arc::new(exporter), &HttpConfig::default())
        .closing_with(closing.clone());
    let admin =
        axum::Router::new().route("/api/v1/admin", axum::routing::post(|| async { "done" }));
    let stop = CancellationToken::new();
    let task = tokio::spawn(hashgate_site::http::serve_merged(
        listener,
        state,
        admin,
        stop.clone(),
    ));
    assert_eq!(status(&base, "POST", "/api/v1/admin").await, 200);
    closing.cancel();
    assert_eq!(status(&base, "POST", "/api/v1/admin").await, 503);
    assert_eq!(
        status(&base, "GET", "/api/v1/summary").await,
        200,
        "reads still served"
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// This host's address on its default route, if it has one (no packet is sent).
fn outside_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("198.51.100.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_writes_from_a_remote_peer_are_refused_unless_allowed() {
    let Some(ip) = outside_address() else {
        eprintln!("SKIPPED: this host has no address but loopback to connect from");
        return;
    };
    for (allow, expected) in [(false, 403), (true, 200)] {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let base = listener.local_addr().unwrap().to_string();
        let config = HttpConfig {
            allow_remote_admin: allow,
            ..HttpConfig::default()
        };
        let state = HttpState::new(
            std::sync::Arc::new(Exporter::new(Registry::new(), 10)),
            &config,
        );
        let admin =
            axum::Router::new().route("/api/v1/admin", axum::routing::post(|| async { "done" }));
        let stop = CancellationToken::new();
        let task = tokio::spawn(hashgate_site::http::serve_merged(
            listener,
            state,
            admin,
            stop.clone(),
        ));
        // Connecting to the host's own outside address comes from that address, not loopback.
        assert_eq!(
            status(&base, "POST", "/api/v1/admin").await,
            expected,
            "allow_remote_admin = {allow}"
        );
        assert_eq!(status(&base, "GET", "/api/v1/summary").await, 200);
        stop.cancel();
        task.await.unwrap().unwrap();
    }
}
