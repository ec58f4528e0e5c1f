//! The connection's outbound side: the authorize after subscribe, answer timeouts, and
//! writing the submits the schedule owes from pre-encoded batches.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{AUTHORIZE_ID, Conn, Event, LATE, MAX_BURST};
use crate::pacing::Schedule;
use crate::shares::WorkContext;
use hashgate_protocol::stratum::{Id, Message, Method, Request};

impl Conn<'_> {
    /// After every wake: setup deadline, timeouts, owed submits, the finished signal.
    pub(super) async fn service(&mut self, stream: &mut TcpStream) -> Result<(), String> {
        let cfg = &self.shared.config;
        if self.authorize_due {
            self.authorize_due = false;
            let mut out = bytes::BytesMut::with_capacity(128);
            Message::Request(Request {
                id: Id::Int(AUTHORIZE_ID),
                method: Method::Authorize(hashgate_protocol::stratum::Authorize {
                    user: format!("{}.w{}", cfg.worker_prefix, self.index),
                    password: Some(cfg.password.clone()),
                }),
            })
            .encode_into(&mut out);
            write(stream, &out, cfg.setup_timeout).await?;
        }
        let now = Instant::now();
        if !self.ready {
            if now >= self.setup_deadline {
                return Err(self.setup_timeout_reason());
            }
            return Ok(());
        }
        let timeout = cfg.answer_timeout;
        while let Some(&(_, sent)) = self.pending.front() {
            if now.saturating_duration_since(sent) < timeout {
                break;
            }
            self.pending.pop_front();
            self.out.timeouts += 1;
        }
        self.send_owed(stream, now).await?;
        if self.schedule.as_ref().is_some_and(Schedule::done) && self.pending.is_empty() {
            self.finish();
        }
        Ok(())
    }

    fn setup_timeout_reason(&self) -> String {
        let step = if self.extranonce1.is_none() {
            "no subscribe answer"
        } else if !self.authorized {
            "no authorize answer"
        } else {
            "no job"
        };
        format!("setup timed out ({step})")
    }

    pub(super) fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            let _ = self.shared.events.try_send(Event::Finished);
        }
    }

    /// Writes every share the schedule owes by `now`, up to [`MAX_BURST`].
    async fn send_owed(&mut self, stream: &mut TcpStream, now: Instant) -> Result<(), String> {
        let Some(schedule) = self.schedule else {
            return Ok(());
        };
        let mut left = schedule.owed(now).min(MAX_BURST);
        while left > 0 {
            if self.batch.as_ref().is_none_or(|b| b.remaining() == 0) && !self.refill() {
                self.out.not_sent += left;
                self.advance(left, now);
                return Ok(());
            }
            let Some((bytes, first_id, count)) =
                self.batch.as_mut().and_then(|b| b.take(left as usize))
            else {
                return Ok(());
            };
            write(stream, &bytes, self.shared.config.answer_timeout).await?;
            for id in first_id..first_id + count as u64 {
                self.pending.push_back((id, now));
            }
            self.out.sent += count as u64;
            self.shared
                .progress
                .sent
                .fetch_add(count as u64, std::sync::atomic::Ordering::Relaxed);
            self.advance(count as u64, now);
            left -= count as u64;
        }
        Ok(())
    }

    /// Marks `n` scheduled shares done, noting how late the first of them went.
    fn advance(&mut self, n: u64, now: Instant) {
        if let Some(s) = self.schedule.as_mut() {
            // Each share's own lag: a burst after a stall is late by different amounts.
            for k in s.sent..s.sent + n {
                let Some(due) = s.due_at(k) else { break };
                let lag = now.saturating_duration_since(due);
                if lag > LATE {
                    self.out.late_sends += 1;
                }
                self.shared.send_lag.record(self.index, lag);
            }
            s.sent += n;
        }
    }

    /// Makes a new batch for the current work; `false` (and the reason noted) if it
    /// cannot be made.
    fn refill(&mut self) -> bool {
        let (Some(cached), Some(extranonce1)) = (&self.job, &self.extranonce1) else {
            return false;
        };
        let ctx = WorkContext {
            job: &cached.job,
            job_id_json: &cached.id_json,
            extranonce1,
            extranonce2_size: self.extranonce2_size,
            version_mask: self.version_mask,
            difficulty: self.difficulty,
        };
        let first = self.next_id;
        match self
            .maker
            .batch(&ctx, &self.worker_json, first, self.per_batch)
        {
            Ok(batch) => {
                self.next_id += batch.remaining() as u64;
                self.batch = Some(batch);
                true
            }
            Err(error) => {
                self.shared.errors.note(format!("no share made: {error}"));
                self.batch = None;
                false
            }
        }
    }
}

/// Writes all of `bytes` or fails after `limit`.
pub(super) async fn write(
    stream: &mut TcpStream,
    bytes: &[u8],
    limit: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(limit, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(_) => Err("write: timed out (target not reading)".into()),
    }
}
