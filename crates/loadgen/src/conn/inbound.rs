//! The connection's inbound side: reading the socket, splitting lines, and handling
//! answers, jobs, difficulty and extranonce changes from the target.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;

use super::{
    AUTHORIZE_ID, CONFIGURE_ID, Conn, Event, FIRST_SUBMIT_ID, READ_CHUNK, SUBSCRIBE_ID, SUGGEST_ID,
};
use crate::fanout::Arrivals;
use crate::jobcache::CachedJob;
use crate::shares::json_string;
use hashgate_protocol::stratum::{
    DEFAULT_MAX_LINE, Id, Message, Method, Notify, Request, Response, ResultValue,
};
use hashgate_protocol::work::{Difficulty, Job, JobTemplate};

impl Conn<'_> {
    /// Reads whatever is buffered in the socket and handles every complete line.
    ///
    /// Reads through `poll_read` with a no-op waker rather than `try_read`: tokio clears
    /// the socket's readiness on a short read there, so draining the socket costs one
    /// `recv` instead of a second one that only returns `WouldBlock`. The task is woken
    /// by the `readable()` it waits on in its loop, never by this waker.
    pub(super) fn read_available(&mut self, stream: &mut TcpStream) -> Result<(), String> {
        // Left uninitialised: zeroing 16 KiB before every read was a visible share of a
        // 10,000-connection notify burst, and `ReadBuf` tracks what the read filled.
        let mut buf = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            let mut rb = ReadBuf::uninit(&mut buf);
            match Pin::new(&mut *stream).poll_read(&mut cx, &mut rb) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Err(e)) => return Err(format!("read: {e}")),
                Poll::Ready(Ok(())) => {}
            }
            let data = rb.filled();
            let len = data.len();
            if len == 0 {
                return Err("closed by the target".into());
            }
            let now = Instant::now();
            self.ingest(data, now)?;
            if len < READ_CHUNK {
                return Ok(());
            }
        }
    }

    /// Splits `data` (after any carried partial line) into lines and handles them.
    fn ingest(&mut self, data: &[u8], now: Instant) -> Result<(), String> {
        if self.partial.is_empty() {
            let used = self.lines(data, now)?;
            self.carry(data.get(used..).unwrap_or(&[]))
        } else {
            let mut joined = std::mem::take(&mut self.partial);
            joined.extend_from_slice(data);
            let used = self.lines(&joined, now)?;
            self.carry(joined.get(used..).unwrap_or(&[]))
        }
    }

    /// Keeps an incomplete line, refusing one longer than the protocol cap.
    fn carry(&mut self, rest: &[u8]) -> Result<(), String> {
        if rest.len() > DEFAULT_MAX_LINE {
            return Err(format!("line longer than {DEFAULT_MAX_LINE} bytes"));
        }
        self.partial.clear();
        if self.partial.capacity() > 2 * READ_CHUNK {
            self.partial = Vec::new();
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// Handles each complete line of `data`; returns how many bytes were consumed.
    fn lines(&mut self, data: &[u8], now: Instant) -> Result<usize, String> {
        let mut used = 0;
        while let Some(pos) = data
            .get(used..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        {
            let mut line = data.get(used..used + pos).unwrap_or(&[]);
            used += pos + 1;
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.line(line, now)?;
        }
        if !self.ready && self.extranonce1.is_some() && self.authorized && self.job.is_some() {
            self.ready = true;
            let setup = now.saturating_duration_since(self.attempt);
            if self.rejoin {
                self.out.rejoined = true;
                let _ = self
                    .shared
                    .events
                    .try_send(Event::Rejoined { setup, at: now });
            } else {
                self.out.ready = true;
                let _ = self.shared.events.try_send(Event::Ready { setup, at: now });
            }
            self.start_schedule();
        }
        Ok(used)
    }

    /// Handles one line.
    fn line(&mut self, line: &[u8], now: Instant) -> Result<(), String> {
        // Handshake answers share the accepted shape; they take the full path.
        if let Some(id) = fast_accept(line).filter(|&id| id >= FIRST_SUBMIT_ID) {
            self.answer(id, true, 0, now);
            return Ok(());
        }
        if let Some(job) = self.shared.jobs.get(line) {
            self.use_job(job, now);
            return Ok(());
        }
        match Message::parse(line) {
            Ok(Message::Response(r)) => self.response(r, now),
            Ok(Message::Request(r)) => {
                self.request(r, line, now);
                Ok(())
            }
            Err(error) => {
                self.out.bad_lines += 1;
                self.shared
                    .errors
                    .note(format!("bad line from target: {error}"));
                Ok(())
            }
        }
    }

    fn response(&mut self, r: Response, now: Instant) -> Result<(), String> {
        let Id::Int(id) = r.id else {
            self.out.unmatched += 1;
            return Ok(());
        };
        match id {
            CONFIGURE_ID => {
                if let ResultValue::Configure(c) = r.result
                    && c.version_rolling == Some(true)
                {
                    self.version_mask = c.version_rolling_mask.unwrap_or(0);
                    self.batch = None;
                }
            }
            SUGGEST_ID => {}
            SUBSCRIBE_ID => match r.result {
                ResultValue::Subscribe(s) => {
                    self.extranonce1 = Some(s.extranonce1);
                    self.extranonce2_size = s.extranonce2_size;
                    self.authorize_due = true;
                }
                _ => {
                    return Err(format!(
                        "subscribe refused: {}",
                        r.reject_message().unwrap_or("no reason given")
                    ));
                }
            },
            AUTHORIZE_ID => {
                if !r.is_accepted() {
                    return Err(format!(
                        "authorize refused: {}",
                        r.reject_message().unwrap_or("no reason given")
                    ));
                }
                self.authorized = true;
            }
            id => {
                let code = r.error.as_ref().and_then(|e| e.code()).unwrap_or(0);
                if !r.is_accepted() {
                    self.shared.errors.note(format!(
                        "share rejected ({code}): {}",
                        r.reject_message().unwrap_or("no reason given")
                    ));
                }
                self.answer(id, r.is_accepted(), code, now);
            }
        }
        Ok(())
    }

    /// Matches a submit answer to its pending entry and counts it.
    fn answer(&mut self, id: u64, accepted: bool, code: i64, now: Instant) {
        // Answers come in order from any sane target, so the front almost always matches.
        let pos = match self.pending.front() {
            Some(&(front, _)) if front == id => Some(0),
            _ => self.pending.iter().position(|&(p, _)| p == id),
        };
        let Some((_, sent)) = pos.and_then(|p| self.pending.remove(p)) else {
            self.out.unmatched += 1;
            return;
        };
        self.shared
            .latency
            .record(self.index, now.saturating_duration_since(sent));
        self.out.last_answer = Some(now);
        let total = if accepted {
            self.out.accepted += 1;
            &self.shared.progress.accepted
        } else {
            *self.out.rejected.entry(code).or_default() += 1;
            &self.shared.progress.rejected
        };
        total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn request(&mut self, r: Request, line: &[u8], now: Instant) {
        match r.method {
            Method::Notify(n) => self.notify(n, line, now),
            Method::SetDifficulty(d) => match Difficulty::new(d) {
                Ok(d) => {
                    self.difficulty = d;
                    self.batch = None;
                    let v = d.get();
                    self.out.difficulty_range = Some(
                        self.out
                            .difficulty_range
                            .map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))),
                    );
                }
                Err(e) => self
                    .shared
                    .errors
                    .note(format!("set_difficulty ignored: {e}")),
            },
            Method::SetExtranonce(s) => {
                self.extranonce1 = Some(s.extranonce1);
                self.extranonce2_size = s.extranonce2_size;
                self.batch = None;
            }
            Method::Reconnect(_) => self.out.reconnect_requests += 1,
            _ => {}
        }
    }

    /// A job arrived: count it for fan-out and make it the current work.
    fn use_job(&mut self, job: Arc<CachedJob>, now: Instant) {
        self.out.notifies += 1;
        if self.window.is_some() {
            self.shared.fanout.record(&job.arrivals, now);
        }
        self.job = Some(job);
        self.batch = None;
    }

    /// A notify line not seen before: build its job and share it.
    fn notify(&mut self, n: Notify, line: &[u8], now: Instant) {
        match Job::new(JobTemplate::from(n)) {
            Ok(job) => {
                let cached = Arc::new(CachedJob {
                    id_json: json_string(job.id()),
                    arrivals: Arc::new(Arrivals::new(job.id())),
                    job,
                });
                self.shared.jobs.insert(line, &cached);
                self.use_job(cached, now);
            }
            Err(e) => {
                self.out.notifies += 1;
                self.shared.errors.note(format!("unusable job: {e}"));
            }
        }
    }
}

/// Recognises the common accepted-share answer `{"id":N,"result":true,"error":null}`
/// without a JSON parse; anything else goes through the full parser.
fn fast_accept(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"id\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let (number, tail) = rest.split_at(digits);
    if tail != b",\"result\":true,\"error\":null}" {
        return None;
    }
    std::str::from_utf8(number).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_takes_only_the_exact_accept_shape() {
        assert_eq!(
            fast_accept(br#"{"id":123,"result":true,"error":null}"#),
            Some(123)
        );
        assert_eq!(
            fast_accept(br#"{"id":1,"result":false,"error":null}"#),
            None
        );
        assert_eq!(
            fast_accept(br#"{"id":"1","result":true,"error":null}"#),
            None
        );
        assert_eq!(fast_accept(br#"{"result":true,"error":null,"id":1}"#), None);
        assert_eq!(
            fast_accept(br#"{"id":99999999999999999999,"result":true,"error":null}"#),
            None
        );
    }

    #[test]
    fn fast_path_agrees_with_the_parser() {
        let line = br#"{"id":77,"result":true,"error":null}"#;
        match Message::parse(line) {
            Ok(Message::Response(r)) => {
                assert!(r.is_accepted());
                assert_eq!(r.id, Id::Int(77));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fast_accept(line), Some(77));
    }
}
