//! The proxy under test as a child process: its temporary config file, its start (the
//! address read off its first stdout line), its output drained, and its stop.
//!
//! A child process rather than an in-process proxy so that its CPU and memory are its
//! own in `/proc`, and the generator's scheduling cannot hide inside its figures.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use super::compare::CompareError;

/// The line `hashgate run` prints first, followed by the miner address.
pub(crate) const HASHGATE_ADDR_PREFIX: &str = "hashgate: miners connect to ";

/// `binary run --config FILE --listen 127.0.0.1:0 --http-listen 127.0.0.1:0` with
/// `RUST_LOG=log`: the hashgate proxy under test.
pub(crate) fn hashgate_command(binary: &Path, config: &Path, log: &str) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("run")
        .arg("--config")
        .arg(config)
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .env("RUST_LOG", log)
        // The flags above win over these, but a stray pool list would not.
        .env_remove("HASHGATE_POOLS")
        .env_remove("HASHGATE_USER");
    command
}

/// Log lines of the child kept for the report and for errors.
const TAIL_LINES: usize = 12;

/// What the proxy is told, written as its config file.
#[derive(Debug, Clone)]
pub(crate) struct ProxySettings {
    /// The pool it mines through, as a hashgate pool URL (`stratum+tcp://host:port`,
    /// `stratum2+tcp://host:port/<authority key>`).
    pub pool_url: String,
    /// Miner difficulty, fixed: initial, vardiff minimum and maximum.
    pub miner_difficulty: f64,
    /// Its site account on the pool.
    pub account: String,
}

impl ProxySettings {
    /// The TOML config. Listen addresses come from the command line (`127.0.0.1:0`).
    pub(crate) fn toml(&self) -> String {
        let d = self.miner_difficulty;
        let mut text = String::new();
        // `{:e}` keeps tiny difficulties exact and is valid TOML float syntax.
        let _ = write!(
            text,
            "# written by `hashgate-loadgen compare`\n\
             [proxy]\n\
             account = \"{account}\"\n\
             initial_difficulty = {d:e}\n\
             \n\
             [[pools]]\n\
             name = \"pool\"\n\
             url = \"{pool_url}\"\n\
             \n\
             [vardiff]\n\
             min_difficulty = {d:e}\n\
             max_difficulty = {d:e}\n",
            account = self.account,
            pool_url = self.pool_url,
        );
        text
    }
}

/// A file removed when dropped: the proxy's config lives only as long as the run.
#[derive(Debug)]
pub(crate) struct TempConfig {
    /// Where it was written.
    path: PathBuf,
}

impl TempConfig {
    /// Writes `text` to a new file named `*.{extension}` in the temporary directory.
    ///
    /// # Errors
    /// [`CompareError::ConfigFile`] when it cannot be created or written.
    pub(crate) fn write(text: &str, extension: &str) -> Result<TempConfig, CompareError> {
        let nonce: u64 = rand::random();
        let path = std::env::temp_dir().join(format!(
            "hashgate-compare-{}-{nonce:016x}.{extension}",
            std::process::id()
        ));
        // `create_new`: never overwrite a file someone else owns.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| CompareError::ConfigFile {
                path: path.clone(),
                source,
            })?;
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(|source| {
            let _ = std::fs::remove_file(&path);
            CompareError::ConfigFile {
                path: path.clone(),
                source,
            }
        })?;
        Ok(TempConfig { path })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How the proxy process ended.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyExit {
    /// It exited on its own after SIGTERM, within the grace period.
    pub graceful: bool,
    /// Its exit code, when it exited with one.
    pub code: Option<i32>,
    /// The exit status as the OS reports it.
    pub status: String,
    /// Lines it logged to stderr during the whole run.
    pub log_lines: u64,
    /// The last of them.
    pub log_tail: Vec<String>,
}

/// Last lines of a stream, and how many there were.
#[derive(Debug, Default)]
struct Tail {
    /// Lines seen.
    count: u64,
    /// The newest [`TAIL_LINES`].
    lines: VecDeque<String>,
}

/// A running proxy child; killed if dropped before [`ProxyChild::stop`].
#[derive(Debug)]
pub(crate) struct ProxyChild {
    /// The process (spawned with `kill_on_drop`).
    child: Child,
    /// Its pid, for `/proc` figures.
    pub pid: u32,
    /// Where miners connect.
    pub miner_addr: SocketAddr,
    /// Its stderr's last lines.
    stderr: Arc<Mutex<Tail>>,
    /// What [`ProxyChild::stop`] sends: SIGTERM unless the program only handles Ctrl-C.
    stop_signal: rustix::process::Signal,
}

impl ProxyChild {
    /// Starts `command` (stdio piped, killed if dropped) and waits for the line
    /// `addr_prefix ADDR` on its stdout. `program` names it in errors.
    ///
    /// # Errors
    /// [`CompareError::Spawn`] when it cannot be started; [`CompareError::ProxyStart`]
    /// when it exits or stays silent for `timeout` before naming its address.
    pub(crate) async fn start(
        command: Command,
        program: &Path,
        addr_prefix: &str,
        timeout: Duration,
    ) -> Result<ProxyChild, CompareError> {
        let (mut child, pid, stderr) = spawn(command, program)?;
        let Some(stdout) = child.stdout.take() else {
            let reason = "its stdout was not captured";
            return Err(start_failed(&mut child, &stderr, program, reason).await);
        };
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(timeout, find_addr(&mut lines, addr_prefix)).await;
        let miner_addr = match found {
            Ok(Ok(addr)) => addr,
            Ok(Err(reason)) => {
                return Err(start_failed(&mut child, &stderr, program, &reason).await);
            }
            Err(_) => {
                let reason = format!("no {addr_prefix:?} line within {timeout:?}");
                return Err(start_failed(&mut child, &stderr, program, &reason).await);
            }
        };
        // A full pipe would block the proxy's next stdout write: keep reading.
        tokio::spawn(drain_lines(lines));
        Ok(ProxyChild {
            child,
            pid,
            miner_addr,
            stderr,
            stop_signal: rustix::process::Signal::TERM,
        })
    }

    /// Starts `command` like [`ProxyChild::start`] for a proxy that prints no address:
    /// it was told to listen on `addr`, and is started once a TCP connect there succeeds.
    ///
    /// # Errors
    /// As [`ProxyChild::start`].
    pub(crate) async fn start_at(
        command: Command,
        program: &Path,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<ProxyChild, CompareError> {
        let (mut child, pid, stderr) = spawn(command, program)?;
        // Such a proxy (translator_sv2) logs to stdout: its lines join the stderr tail.
        if let Some(out) = child.stdout.take() {
            tokio::spawn(drain(out, Some(Arc::clone(&stderr))));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            if let Ok(Some(_)) = child.try_wait() {
                let reason = format!("it exited before listening on {addr}");
                return Err(start_failed(&mut child, &stderr, program, &reason).await);
            }
            if tokio::time::Instant::now() >= deadline {
                let reason = format!("not listening on {addr} within {timeout:?}");
                return Err(start_failed(&mut child, &stderr, program, &reason).await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(ProxyChild {
            child,
            pid,
            miner_addr: addr,
            stderr,
            stop_signal: rustix::process::Signal::TERM,
        })
    }

    /// Stops it with SIGINT instead of SIGTERM: for a program that waits for Ctrl-C
    /// (translator_sv2 0.6.0) and would otherwise die of SIGTERM without its shutdown.
    pub(crate) fn stop_with_sigint(mut self) -> Self {
        self.stop_signal = rustix::process::Signal::INT;
        self
    }

    /// Sends SIGTERM (as a service manager does; see [`ProxyChild::stop_with_sigint`]), waits up to `grace` for the exit, then
    /// kills it.
    pub(crate) async fn stop(mut self, grace: Duration) -> ProxyExit {
        let terminated = rustix::process::Pid::from_raw(self.pid as i32)
            .map(|pid| rustix::process::kill_process(pid, self.stop_signal))
            .is_some_and(|r| r.is_ok());
        let status = if terminated {
            tokio::time::timeout(grace, self.child.wait()).await.ok()
        } else {
            None
        };
        let (graceful, status) = match status {
            Some(status) => (true, status),
            None => {
                let _ = self.child.start_kill();
                (false, self.child.wait().await)
            }
        };
        // Let the stderr drain pick up the last lines before reading the tail.
        tokio::time::sleep(Duration::from_millis(50)).await;
        exit_report(graceful, status, &self.stderr)
    }
}

/// Spawns `command` with stdio piped and killed if dropped; its stderr is drained into
/// the returned tail.
fn spawn(
    mut command: Command,
    program: &Path,
) -> Result<(Child, u32, Arc<Mutex<Tail>>), CompareError> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| CompareError::Spawn {
            binary: program.to_owned(),
            source,
        })?;
    let pid = child.id().unwrap_or(0);
    let stderr = Arc::new(Mutex::new(Tail::default()));
    if let Some(err) = child.stderr.take() {
        tokio::spawn(drain(err, Some(Arc::clone(&stderr))));
    }
    Ok((child, pid, stderr))
}

fn exit_report(
    graceful: bool,
    status: std::io::Result<ExitStatus>,
    stderr: &Mutex<Tail>,
) -> ProxyExit {
    let (code, status) = match status {
        Ok(s) => (s.code(), s.to_string()),
        Err(e) => (None, format!("unknown ({e})")),
    };
    let tail = stderr
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    ProxyExit {
        graceful: graceful && code == Some(0),
        code,
        status,
        log_lines: tail.count,
        log_tail: tail.lines.iter().cloned().collect(),
    }
}

/// Kills a child that failed to start and builds the error with its last words.
async fn start_failed(
    child: &mut Child,
    stderr: &Arc<Mutex<Tail>>,
    program: &Path,
    reason: &str,
) -> CompareError {
    let _ = child.start_kill();
    let status = child.wait().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let exit = exit_report(false, status, stderr);
    CompareError::ProxyStart {
        program: program.to_owned(),
        reason: reason.to_owned(),
        status: exit.status,
        stderr: exit.log_tail.join("\n"),
    }
}

/// Reads stdout until the address line; anything before it is skipped.
async fn find_addr(
    lines: &mut tokio::io::Lines<BufReader<ChildStdout>>,
    prefix: &str,
) -> Result<SocketAddr, String> {
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                if let Some(rest) = line.trim().strip_prefix(prefix) {
                    return rest
                        .trim()
                        .parse()
                        .map_err(|_| format!("{line:?} does not end in an address:port"));
                }
            }
            Ok(None) => return Err("it closed its stdout (exited?)".into()),
            Err(e) => return Err(format!("reading its stdout: {e}")),
        }
    }
}

async fn drain_lines(mut lines: tokio::io::Lines<BufReader<ChildStdout>>) {
    while let Ok(Some(_)) = lines.next_line().await {}
}

/// Reads a stream to its end, keeping the last lines in `tail` when given.
async fn drain<R: AsyncRead + Unpin>(stream: R, tail: Option<Arc<Mutex<Tail>>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(tail) = &tail {
            let mut t = tail
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            t.count += 1;
            if t.lines.len() == TAIL_LINES {
                t.lines.pop_front();
            }
            t.lines.push_back(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_file_is_a_valid_hashgate_config_with_a_fixed_difficulty() {
        let settings = ProxySettings {
            pool_url: "stratum+tcp://127.0.0.1:40123".into(),
            miner_difficulty: 1e-10,
            account: "loadgen".into(),
        };
        let cfg = hashgate_site::config::RawConfig::parse(&settings.toml())
            .expect("parses")
            .validate()
            .expect("validates");
        assert_eq!(cfg.proxy.initial_difficulty, 1e-10);
        assert_eq!(cfg.vardiff.min_difficulty, 1e-10);
        assert_eq!(cfg.vardiff.max_difficulty, 1e-10);
        assert_eq!(cfg.pools.len(), 1);
        assert_eq!(cfg.pools[0].url.port, 40123);
        assert_eq!(cfg.proxy.account, "loadgen");
    }

    #[test]
    fn an_sv2_pool_url_gives_a_valid_config() {
        let settings = ProxySettings {
            pool_url:
                "stratum2+tcp://127.0.0.1:40124/9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"
                    .into(),
            miner_difficulty: 4.656_541_818_803_816_6e-10,
            account: "hashgate-compare".into(),
        };
        let cfg = hashgate_site::config::RawConfig::parse(&settings.toml())
            .expect("parses")
            .validate()
            .expect("validates");
        assert_eq!(cfg.pools[0].url.port, 40124);
        assert_eq!(cfg.vardiff.max_difficulty, 4.656_541_818_803_816_6e-10);
    }

    #[test]
    fn the_temp_config_is_removed_on_drop() {
        let file = TempConfig::write("x = 1\n", "toml").expect("temp dir is writable");
        let path = file.path().to_owned();
        assert_eq!(std::fs::read_to_string(&path).expect("written"), "x = 1\n");
        drop(file);
        assert!(!path.exists());
    }
}
