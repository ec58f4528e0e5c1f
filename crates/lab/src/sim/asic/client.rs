//! The simulated ASIC's task: connect, serve a connection, reconnect with back-off.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::session::{Connection, Outcome};
use super::{AsicState, SimAsicConfig, SimAsicTls, lock};

/// Runs the miner until cancelled: connect, serve, reconnect with back-off.
pub(super) async fn run(config: SimAsicConfig, shared: Arc<AsicState>, cancel: CancellationToken) {
    let mut server = config.server;
    let mut backoff = config.reconnect_backoff;
    let mut connected_before = false;
    loop {
        let connect = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            c = tokio::time::timeout(config.connect_timeout, TcpStream::connect(server)) => c,
        };
        match connect {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let stream: Box<dyn Stream> = match &config.tls {
                    None => Box::new(stream),
                    Some(tls) => match tls_connect(tls, stream, config.connect_timeout).await {
                        Ok(stream) => Box::new(stream),
                        Err(error) => {
                            tracing::debug!(worker = %config.worker, %server, %error, "sim asic TLS handshake failed");
                            lock(&shared.stats).connect_failures += 1;
                            tokio::select! {
                                biased;
                                () = cancel.cancelled() => return,
                                () = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(config.reconnect_backoff_max);
                            continue;
                        }
                    },
                };
                {
                    let mut s = lock(&shared.stats);
                    s.connects += 1;
                    if connected_before {
                        s.reconnects += 1;
                    }
                    s.connected = true;
                    s.server = Some(server);
                }
                connected_before = true;
                let outcome = Connection::new(&config, &shared)
                    .serve(stream, &cancel)
                    .await;
                {
                    let mut s = lock(&shared.stats);
                    s.connected = false;
                    s.authorized = false;
                }
                match outcome {
                    Outcome::Cancelled => return,
                    Outcome::Reconnect { host, port, wait } => {
                        lock(&shared.stats).reconnect_requests += 1;
                        tokio::select! {
                            biased;
                            () = cancel.cancelled() => return,
                            () = tokio::time::sleep(wait) => {}
                        }
                        server = resolve(server, host, port).await;
                        backoff = config.reconnect_backoff;
                        continue;
                    }
                    Outcome::Lost { was_set_up } => {
                        if was_set_up {
                            backoff = config.reconnect_backoff;
                        }
                    }
                }
            }
            Ok(Err(error)) => {
                tracing::debug!(worker = %config.worker, %server, %error, "sim asic connect failed");
                lock(&shared.stats).connect_failures += 1;
            }
            Err(_) => {
                tracing::debug!(worker = %config.worker, %server, "sim asic connect timed out");
                lock(&shared.stats).connect_failures += 1;
            }
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(config.reconnect_backoff_max);
    }
}

/// A byte stream to the proxy: plain TCP or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Stream for S {}

/// The TLS handshake as a miner, within `limit`.
async fn tls_connect(
    tls: &SimAsicTls,
    stream: TcpStream,
    limit: Duration,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let connector = tokio_rustls::TlsConnector::from(tls.client.clone());
    match tokio::time::timeout(limit, connector.connect(tls.server_name.clone(), stream)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("not done within {limit:?}")),
    }
}

/// Where `client.reconnect` points: host and port default to the current server's.
async fn resolve(current: SocketAddr, host: Option<String>, port: Option<u16>) -> SocketAddr {
    let port = port.filter(|&p| p != 0).unwrap_or(current.port());
    let Some(host) = host.filter(|h| !h.trim().is_empty()) else {
        return SocketAddr::new(current.ip(), port);
    };
    let lookup = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await;
    match lookup {
        Ok(Ok(mut addrs)) => addrs.next().unwrap_or(current),
        _ => {
            tracing::warn!(%host, port, "sim asic cannot resolve reconnect target; staying");
            current
        }
    }
}
