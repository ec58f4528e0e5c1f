//! The 4028 reader against a raw TCP peer that writes exactly the bytes real firmware does.

use std::net::SocketAddr;
use std::time::Duration;

use hashgate_protocol::cgminer::ReplyError;
use hashgate_site::power::api::cgminer::{self, MAX_REPLY_BYTES};
use hashgate_site::power::api::{ApiError, Timeouts};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(1),
        call: Duration::from_secs(2),
    }
}

/// Serves one connection: reads the request, writes `reply`, then closes or (when
/// `hold` is set) keeps the socket open so only the reply's own ending can end it.
async fn peer(reply: Vec<u8>, hold: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await;
        // Written in small pieces, as a slow control board does.
        for piece in reply.chunks(7) {
            if stream.write_all(piece).await.is_err() {
                return;
            }
        }
        if hold {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    });
    addr
}

async fn ask(reply: &[u8], hold: bool) -> Result<Value, ApiError> {
    let addr = peer(reply.to_vec(), hold).await;
    cgminer::command(addr, "summary", None, timeouts()).await
}

const SUMMARY: &str =
    r#"{"STATUS":[{"STATUS":"S","Msg":"Summary"}],"SUMMARY":[{"GHS 5s":110566.89}],"id":1}"#;

fn expected() -> Value {
    json!({"STATUS":[{"STATUS":"S","Msg":"Summary"}],"SUMMARY":[{"GHS 5s":110566.89}],"id":1})
}

#[tokio::test]
async fn nul_terminator_without_close() {
    let reply = format!("{SUMMARY}\0");
    assert_eq!(ask(reply.as_bytes(), true).await.unwrap(), expected());
}

#[tokio::test]
async fn newline_terminator_without_close() {
    let reply = format!("{SUMMARY}\n");
    assert_eq!(ask(reply.as_bytes(), true).await.unwrap(), expected());
}

#[tokio::test]
async fn pretty_printed_reply_ended_by_newline() {
    let pretty = serde_json::to_string_pretty(&expected()).unwrap() + "\n";
    assert_eq!(ask(pretty.as_bytes(), true).await.unwrap(), expected());
}

#[tokio::test]
async fn close_only() {
    assert_eq!(ask(SUMMARY.as_bytes(), false).await.unwrap(), expected());
}

#[tokio::test]
async fn multi_section_brace_join() {
    let reply =
        br#"{"STATUS":[{"STATUS":"S"}],"STATS":[{"Type":"S19"}{"fan1":6000}],"id":1}"#.to_vec();
    let v = ask(&reply, false).await.unwrap();
    assert_eq!(v["STATS"], json!([{"Type":"S19"},{"fan1":6000}]));
    let top = b"{\"STATUS\":[{\"STATUS\":\"S\"}]}{\"SUMMARY\":[{\"a\":1}]}\0".to_vec();
    let v = ask(&top, true).await.unwrap();
    assert_eq!(v["SUMMARY"], json!([{"a":1}]));
}

#[tokio::test]
async fn trailing_commas_and_non_finite_numbers() {
    let reply = b"{\"STATUS\":[{\"STATUS\":\"S\",},],\"SUMMARY\":[{\"Temp\":inf,\"Dev\":nan,\"Low\":-inf,\"GHS 5s\":1.5,}],}\0";
    let v = ask(reply, true).await.unwrap();
    assert_eq!(
        v["SUMMARY"],
        json!([{"Temp":null,"Dev":null,"Low":null,"GHS 5s":1.5}])
    );
    cgminer::check_status(&v).unwrap();
}

#[tokio::test]
async fn whatsminer_status_string() {
    let reply = br#"{"STATUS":"E","When":1,"Code":135,"Msg":"check token error","Description":""}"#;
    let v = ask(reply, false).await.unwrap();
    assert!(
        matches!(cgminer::check_status(&v), Err(ReplyError::Refused(m)) if m == "check token error")
    );
}

#[tokio::test]
async fn truncated_reply_is_an_error() {
    let cut = &SUMMARY.as_bytes()[..SUMMARY.len() - 9];
    let result = ask(cut, false).await;
    assert!(
        matches!(result, Err(ApiError::Protocol(ref m)) if m.contains("truncated")),
        "{result:?}"
    );
}

#[tokio::test]
async fn empty_reply_is_an_error() {
    assert!(matches!(ask(b"", false).await, Err(ApiError::Protocol(_))));
}

#[tokio::test]
async fn oversize_reply_is_capped() {
    let mut huge = b"{\"STATUS\":[{\"STATUS\":\"S\"}],\"X\":\"".to_vec();
    huge.resize(MAX_REPLY_BYTES + 10_000, b'a');
    huge.extend_from_slice(b"\"}\0");
    let result = ask(&huge, true).await;
    assert!(
        matches!(result, Err(ApiError::Protocol(ref m)) if m.contains("exceeds")),
        "{result:?}"
    );
}

#[tokio::test]
async fn silent_peer_is_a_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (_stream, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let t = Timeouts {
        connect: Duration::from_millis(200),
        call: Duration::from_millis(300),
    };
    let result = cgminer::command(addr, "summary", None, t).await;
    assert!(
        matches!(result, Err(ApiError::Timeout(d)) if d == t.call),
        "{result:?}"
    );
}
