//! A recording relay between a proxy and a pool: what the pool really answered, on the
//! wire, for failure messages that quote the pool instead of the proxy.
//!
//! Each connection accepted is relayed to the pool over a connection of its own (so the
//! pool's connection count is unchanged) and every line is appended to a file as
//! `<unix time> <connection #> <C->S | S->C> <JSON line>`, the format of
//! the captured sessions in `tests/fixtures/stratum/session-*.txt`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// A running relay; stops accepting when dropped (relayed connections end with their peers).
#[derive(Debug)]
pub struct Tap {
    /// Where the proxy connects instead of the pool.
    pub addr: SocketAddr,
    log: PathBuf,
    stop: Arc<AtomicBool>,
}

/// Starts relaying connections on a free 127.0.0.1 port to `pool`, recording into `log`.
pub fn start(pool: SocketAddr, log: PathBuf) -> Tap {
    let listener = TcpListener::bind("127.0.0.1:0").expect("tap: bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("tap: local address");
    let file = Arc::new(Mutex::new(File::create(&log).expect("tap: log file")));
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let conns = AtomicUsize::new(0);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            if stopping.load(Ordering::Relaxed) {
                return;
            }
            let Ok(client) = client else { continue };
            let n = conns.fetch_add(1, Ordering::Relaxed) + 1;
            // A pool that is down refuses the proxy here as it would directly: the
            // proxy sees its connection end at once.
            let Ok(server) = TcpStream::connect(pool) else {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            };
            relay(n, &client, &server, "C->S", &file);
            relay(n, &server, &client, "S->C", &file);
        }
    });
    Tap { addr, log, stop }
}

/// Copies `from` to `to` line by line on a thread of its own, recording each line; closes
/// both directions when `from` ends, as a pool's or proxy's close would.
fn relay(
    conn: usize,
    from: &TcpStream,
    to: &TcpStream,
    dir: &'static str,
    file: &Arc<Mutex<File>>,
) {
    let (Ok(from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let file = Arc::clone(file);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(&from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            // Recorded before it is passed on, so a request is always in the file before
            // the answer it provokes.
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let text = String::from_utf8_lossy(&line);
            {
                let mut f = file
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let _ = writeln!(f, "{now:.3} {conn} {dir} {}", text.trim_end());
            }
            if to.write_all(&line).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// What the pool did with the requests it was sent, read back from the recording.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WireFacts {
    /// `false` answers to `mining.submit`, by the pool's `error` value as written.
    pub submit_rejects: BTreeMap<String, usize>,
    /// `true` answers to `mining.submit`.
    pub submit_accepts: usize,
    /// `mining.submit` requests sent.
    pub submits: usize,
    /// Of those, the ones carrying non-zero version bits (BIP310's sixth parameter).
    pub submits_rolled: usize,
    /// Requests the pool never answered before the connection ended, by method.
    pub unanswered: BTreeMap<String, usize>,
}

impl Tap {
    /// Reads the recording so far.
    pub fn facts(&self) -> WireFacts {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut facts = WireFacts::default();
        // (connection, request id) -> method, until answered.
        let mut asked: HashMap<(String, String), String> = HashMap::new();
        for line in text.lines() {
            let mut parts = line.splitn(4, ' ');
            let (Some(_time), Some(conn), Some(dir), Some(json)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(msg) = serde_json::from_str::<Value>(json) else {
                continue;
            };
            let key = (conn.to_owned(), msg["id"].to_string());
            match (dir, msg["method"].as_str()) {
                ("C->S", Some(method)) => {
                    if method == "mining.submit" {
                        facts.submits += 1;
                        let bits = msg["params"][5]
                            .as_str()
                            .and_then(|hex| u32::from_str_radix(hex, 16).ok());
                        if bits.is_some_and(|b| b != 0) {
                            facts.submits_rolled += 1;
                        }
                    }
                    asked.insert(key, method.to_owned());
                }
                ("S->C", None) => {
                    // Every answer leaves `asked`; only submit answers are tallied.
                    if asked.remove(&key).as_deref() != Some("mining.submit") {
                        continue;
                    }
                    if msg["result"] == Value::Bool(true) {
                        facts.submit_accepts += 1;
                    } else {
                        *facts
                            .submit_rejects
                            .entry(msg["error"].to_string())
                            .or_default() += 1;
                    }
                }
                _ => {}
            }
        }
        for method in asked.into_values() {
            *facts.unanswered.entry(method).or_default() += 1;
        }
        facts
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}
