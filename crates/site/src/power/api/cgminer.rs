//! cgminer-style JSON over TCP 4028, shared by Antminer, Avalon, LuxOS and Whatsminer.
//!
//! One request per connection: connect, write one JSON object, read the reply until the
//! miner ends it. Real firmware ends a reply in one of three ways, all accepted here:
//!
//! | ending | seen on |
//! |---|---|
//! | a NUL byte (`\0`) after the JSON | cgminer, bmminer, btminer |
//! | a newline after the JSON | some LuxOS and Avalon builds |
//! | nothing: the miner just closes | older bmminer |
//!
//! The body itself is not always JSON either: `}{` between sections (bmminer `stats`),
//! trailing commas, bare `inf` / `nan`. [`parse_reply`] (from the protocol crate's
//! `cgminer` module) repairs those before parsing; a truncated reply is an
//! [`ApiError::Protocol`].

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ApiError;

// The reply format is pure and lives in the protocol crate (the fuzzers reach it there);
// this module is its TCP client.
pub use hashgate_protocol::cgminer::{
    FrameScanner, check_status, field, number, parse_reply, sanitize, section, section_list,
    status_of,
};

/// Largest reply accepted from a miner; LuxOS `healthchipget` is ~30 KB, so 1 MiB leaves
/// room for any real reply while bounding what a broken miner can make us buffer.
pub const MAX_REPLY_BYTES: usize = 1 << 20;

/// Deadlines for one management API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Deadline for the TCP connect alone, so a dead host fails fast.
    pub connect: Duration,
    /// Deadline for the whole call (connect, request, reply; every round trip of it).
    pub call: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        // Miners answer within a second when healthy; 5 s tolerates a busy control board.
        Timeouts {
            connect: Duration::from_secs(2),
            call: Duration::from_secs(5),
        }
    }
}

/// Runs `fut` under the call deadline, turning an expiry into [`ApiError::Timeout`].
///
/// # Errors
/// [`ApiError::Timeout`] when `limit` passes first, else whatever `fut` returns.
pub async fn with_deadline<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::Timeout(limit)),
    }
}

/// Opens a TCP connection under the connect deadline.
///
/// # Errors
/// [`ApiError::Timeout`] past `timeouts.connect`, [`ApiError::Io`] when refused.
pub async fn connect(addr: SocketAddr, timeouts: Timeouts) -> Result<TcpStream, ApiError> {
    match tokio::time::timeout(timeouts.connect, TcpStream::connect(addr)).await {
        Ok(stream) => Ok(stream?),
        Err(_) => Err(ApiError::Timeout(timeouts.connect)),
    }
}

/// Sends one raw request line and returns the raw reply bytes (no parsing).
///
/// # Errors
/// Timeout, I/O, or [`ApiError::Protocol`] for a truncated or oversize reply.
pub async fn exchange_raw(
    addr: SocketAddr,
    request: &[u8],
    timeouts: Timeouts,
) -> Result<Vec<u8>, ApiError> {
    with_deadline(timeouts.call, async {
        let mut stream = connect(addr, timeouts).await?;
        stream.write_all(request).await?;
        read_reply(&mut stream).await
    })
    .await
}

/// Sends a cgminer command (`{"command":..,"parameter":..}`) and parses the reply.
///
/// The STATUS section is not checked here; see [`check_status`].
///
/// # Errors
/// Timeout, I/O, or [`ApiError::Protocol`] for an unreadable reply.
pub async fn command(
    addr: SocketAddr,
    command: &str,
    parameter: Option<&str>,
    timeouts: Timeouts,
) -> Result<Value, ApiError> {
    let mut request = Map::new();
    request.insert("command".into(), Value::String(command.into()));
    if let Some(parameter) = parameter {
        request.insert("parameter".into(), Value::String(parameter.into()));
    }
    request_json(addr, &Value::Object(request), timeouts).await
}

/// Sends a read-only cgminer command and refuses a reply whose STATUS is an error.
///
/// # Errors
/// As [`command`], and [`check_status`]'s refusals.
pub async fn read(addr: SocketAddr, name: &str, timeouts: Timeouts) -> Result<Value, ApiError> {
    let reply = command(addr, name, None, timeouts).await?;
    check_status(&reply)?;
    Ok(reply)
}

/// Reads each of `names` in turn within one call deadline, as `{name: reply, ...}` (the
/// raw status `miner status` prints and telemetry parsing starts from).
///
/// # Errors
/// [`ApiError::Timeout`] past `timeouts.call`, or the first failed [`read`].
pub async fn read_sections(
    addr: SocketAddr,
    names: &[&str],
    timeouts: Timeouts,
) -> Result<Value, ApiError> {
    with_deadline(timeouts.call, async {
        let mut all = Map::new();
        for name in names {
            all.insert((*name).into(), read(addr, name, timeouts).await?);
        }
        Ok(Value::Object(all))
    })
    .await
}

/// Sends any JSON request object and parses the reply (Whatsminer uses `cmd`, not `command`).
///
/// # Errors
/// Timeout, I/O, or [`ApiError::Protocol`] for an unreadable reply.
pub async fn request_json(
    addr: SocketAddr,
    request: &Value,
    timeouts: Timeouts,
) -> Result<Value, ApiError> {
    let body = request.to_string();
    let raw = exchange_raw(addr, body.as_bytes(), timeouts).await?;
    Ok(parse_reply(&raw)?)
}

/// Reads one reply: until a NUL, a newline outside the JSON value, or the peer's close.
async fn read_reply(stream: &mut TcpStream) -> Result<Vec<u8>, ApiError> {
    let mut buf = Vec::with_capacity(4096);
    let mut scanner = FrameScanner::default();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await?;
        let Some(read) = chunk.get(..n) else {
            return Err(ApiError::Protocol("read past buffer".into()));
        };
        if n == 0 {
            return match scanner.at_close() {
                Ok(()) => Ok(buf),
                Err(e) => Err(e.into()),
            };
        }
        let end = scanner.feed(read);
        let take = read.get(..end.unwrap_or(n)).unwrap_or(read);
        if buf.len() + take.len() > MAX_REPLY_BYTES {
            return Err(ApiError::Protocol(format!(
                "reply exceeds {MAX_REPLY_BYTES} bytes"
            )));
        }
        buf.extend_from_slice(take);
        if end.is_some() {
            return Ok(buf);
        }
    }
}
