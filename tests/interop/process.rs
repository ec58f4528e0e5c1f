//! Child processes with a bounded lifetime, signalled and killed by PID.
//!
//! Every program runs under `timeout`, so it ends by itself even when the test process
//! dies without running its destructors (a SIGKILLed `cargo test`). The guard signals the
//! program itself, found as `timeout`'s only child, never by name.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// How long `timeout` waits after its own SIGTERM before it sends SIGKILL.
const KILL_AFTER: &str = "5s";

/// Where a child's output stream goes.
#[derive(Debug, Clone)]
pub enum Sink {
    /// Discarded.
    Null,
    /// Appended to this file (so stdout and stderr can share one file without overwriting).
    File(PathBuf),
    /// A pipe the caller reads with [`Proc::take_stdout`] (stdout only).
    Piped,
}

/// A program to start, built up by its methods.
#[derive(Debug)]
pub struct Spawn {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    lifetime: Duration,
    stdout: Sink,
    stderr: Sink,
}

/// A program could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// `timeout` (coreutils) or an output file failed.
    #[error("{name}: cannot start {program}: {source}")]
    Start {
        /// The process's name in the test.
        name: String,
        /// The program.
        program: String,
        /// What failed.
        source: io::Error,
    },
    /// `timeout` ran but its child never appeared (the program could not be executed).
    #[error("{name}: {program} did not start under timeout (exit status {status:?})")]
    NoChild {
        /// The process's name in the test.
        name: String,
        /// The program.
        program: String,
        /// `timeout`'s exit status if it already ended.
        status: Option<ExitStatus>,
    },
}

impl Spawn {
    /// `program`, called `name` in messages, living at most `lifetime`, output discarded.
    pub fn new(name: &str, program: impl Into<PathBuf>, lifetime: Duration) -> Spawn {
        Spawn {
            name: name.to_owned(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            lifetime,
            stdout: Sink::Null,
            stderr: Sink::Null,
        }
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Spawn
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the program.
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Spawn {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Where stdout goes.
    pub fn stdout(mut self, sink: Sink) -> Spawn {
        self.stdout = sink;
        self
    }

    /// Where stderr goes.
    pub fn stderr(mut self, sink: Sink) -> Spawn {
        self.stderr = sink;
        self
    }

    /// Starts the program under `timeout` and finds its PID.
    pub fn start(self) -> Result<Proc, SpawnError> {
        let fail = |source: io::Error| SpawnError::Start {
            name: self.name.clone(),
            program: self.program.display().to_string(),
            source,
        };
        let mut cmd = Command::new("timeout");
        cmd.arg(format!("--kill-after={KILL_AFTER}"))
            .arg(format!("{}s", self.lifetime.as_secs().max(1)))
            .arg(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdio(&self.stdout).map_err(fail)?)
            .stderr(stdio(&self.stderr).map_err(fail)?);
        let mut timeout = cmd.spawn().map_err(fail)?;
        let Some(pid) = child_of(&mut timeout) else {
            let status = timeout.try_wait().ok().flatten();
            let _ = timeout.kill();
            let _ = timeout.wait();
            return Err(SpawnError::NoChild {
                name: self.name,
                program: self.program.display().to_string(),
                status,
            });
        };
        Ok(Proc {
            timeout,
            pid,
            status: None,
        })
    }
}

fn stdio(sink: &Sink) -> io::Result<Stdio> {
    Ok(match sink {
        Sink::Null => Stdio::null(),
        Sink::Piped => Stdio::piped(),
        Sink::File(path) => Stdio::from(append(path)?),
    })
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `timeout`'s child, which appears right after `timeout` forks; `None` if `timeout` ended
/// or never forked within 2 s.
fn child_of(timeout: &mut Child) -> Option<Pid> {
    let tpid = timeout.id();
    let path = format!("/proc/{tpid}/task/{tpid}/children");
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let first = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse::<i32>().ok());
        if let Some(pid) = first {
            return Pid::from_raw(pid);
        }
        if timeout.try_wait().ok().flatten().is_some() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// A running program; killed (SIGKILL to its PID) when dropped.
#[derive(Debug)]
pub struct Proc {
    /// The `timeout` process; it exits with the program's status.
    timeout: Child,
    /// The program itself.
    pid: Pid,
    status: Option<ExitStatus>,
}

impl Proc {
    /// The program's stdout, when started with [`Sink::Piped`].
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.timeout.stdout.take()
    }

    /// The program's PID (not `timeout`'s).
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Sends `signal` to the program (not to `timeout`).
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        rustix::process::kill_process(self.pid, signal).map_err(io::Error::from)
    }

    /// The exit status if the program has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.timeout.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `within` for the program to end.
    pub fn wait_for_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL to the program, then to `timeout` if it lingers; waits for both.
    pub fn kill(&mut self) {
        if self.try_status().is_some() {
            return;
        }
        let _ = self.signal(Signal::KILL);
        if self.wait_for_exit(Duration::from_secs(3)).is_none() {
            let _ = self.timeout.kill();
            self.status = self.timeout.wait().ok();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
