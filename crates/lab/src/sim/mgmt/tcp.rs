//! The simulated 4028 listener: one JSON request per connection, one reply, close.
//!
//! Fault switches apply here, before the family's handler sees the request.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::state::{Fault, SimMinerState};

/// Largest request the simulator reads; real requests are under 1 KiB.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// How a reply ends on the wire (real firmware differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A NUL byte after the JSON (cgminer, bmminer, btminer).
    Nul,
    /// A newline after the JSON.
    Newline,
    /// Nothing: the server closes.
    Close,
}

/// A family's request handler: request JSON and the clock in, reply text out.
pub(crate) type Handler = Arc<dyn Fn(&Value, Instant) -> String + Send + Sync>;

/// Accepts connections until `cancel` fires; one task per connection.
pub(crate) async fn serve(
    listener: TcpListener,
    state: SimMinerState,
    ending: Ending,
    handler: Handler,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _peer)) = accepted else {
            // EMFILE and friends: the simulator backs off rather than spinning.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let state = state.clone();
        let handler = handler.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = connection(stream, state, ending, handler) => {}
            }
        });
    }
}

async fn connection(mut stream: TcpStream, state: SimMinerState, ending: Ending, handler: Handler) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    match state.fault() {
        Fault::NoAnswer => {
            // Hold the socket open and silent until the client gives up.
            let mut sink = [0u8; 256];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        Fault::Slow(delay) => tokio::time::sleep(delay).await,
        Fault::Garbage => {
            let _ = stream.write_all(b"\x16\x03\x01\x02garbage{{[\"").await;
            let _ = stream.shutdown().await;
            return;
        }
        Fault::None | Fault::WrongCredentials => {}
    }
    let mut reply = handler(&request, Instant::now()).into_bytes();
    match ending {
        Ending::Nul => reply.push(0),
        Ending::Newline => reply.push(b'\n'),
        Ending::Close => {}
    }
    let _ = stream.write_all(&reply).await;
    let _ = stream.shutdown().await;
}

/// Reads until the bytes form one JSON value (clients do not close their write side).
async fn read_request(stream: &mut TcpStream) -> Option<Value> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return serde_json::from_slice(&buf).ok();
        }
        buf.extend_from_slice(chunk.get(..n)?);
        if let Ok(value) = serde_json::from_slice(&buf) {
            return Some(value);
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return None;
        }
    }
}

/// The cgminer STATUS section: `[{"STATUS":code,"When":..,"Code":..,"Msg":..,"Description":..}]`.
pub(crate) fn status(code: &str, num: u32, msg: &str, description: &str) -> Value {
    let when = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    serde_json::json!([{
        "STATUS": code,
        "When": when,
        "Code": num,
        "Msg": msg,
        "Description": description,
    }])
}

/// A full cgminer reply: one section plus STATUS and id.
pub(crate) fn reply(section: &str, body: Value, msg: &str, num: u32, description: &str) -> Value {
    serde_json::json!({
        section: body,
        "STATUS": status("S", num, msg, description),
        "id": 1,
    })
}

/// A cgminer error reply.
pub(crate) fn error(num: u32, msg: &str, description: &str) -> String {
    serde_json::json!({ "STATUS": status("E", num, msg, description), "id": 1 }).to_string()
}

/// The `command` and `parameter` of a cgminer request.
pub(crate) fn command_of(request: &Value) -> (&str, &str) {
    let cmd = request
        .get("command")
        .or_else(|| request.get("cmd"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let param = request
        .get("parameter")
        .and_then(Value::as_str)
        .unwrap_or("");
    (cmd, param)
}
