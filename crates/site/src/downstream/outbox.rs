//! The bounded queue of lines waiting to be written to one miner.

use std::collections::VecDeque;

use bytes::{Buf, Bytes};

use super::end::SessionEnd;

/// Lines for one miner, written in order; the head may be partly written.
#[derive(Debug)]
pub(super) struct Outbox {
    /// Queued lines; a notify is a shared `Bytes`, so queueing it costs a refcount.
    lines: VecDeque<Bytes>,
    /// Bound from `proxy.outbound_queue`: a miner that lets this many lines pile up is
    /// not reading, and holding more would let one dead miner eat memory without end.
    limit: usize,
}

impl Outbox {
    /// An empty queue of at most `limit` lines.
    pub(super) fn new(limit: usize) -> Outbox {
        Outbox {
            lines: VecDeque::new(),
            limit: limit.max(1),
        }
    }

    /// Queues a line.
    ///
    /// # Errors
    /// [`SessionEnd::SlowConsumer`] when the queue already holds `limit` lines.
    pub(super) fn push(&mut self, line: Bytes) -> Result<(), SessionEnd> {
        if self.lines.len() >= self.limit {
            return Err(SessionEnd::SlowConsumer { lines: self.limit });
        }
        self.lines.push_back(line);
        Ok(())
    }

    /// Whether half the bound is used: time to write before reading on.
    pub(super) fn half_full(&self) -> bool {
        self.lines.len() * 2 >= self.limit
    }

    /// Whether nothing waits to be written.
    pub(super) fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Up to `slices.len()` of the queued lines, for one vectored write.
    pub(super) fn chunks<'a>(&'a self, slices: &mut [std::io::IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, line) in slices.iter_mut().zip(self.lines.iter()) {
            *slot = std::io::IoSlice::new(line.chunk());
            n += 1;
        }
        n
    }

    /// Drops `written` bytes from the front after a write.
    pub(super) fn advance(&mut self, mut written: usize) {
        while written > 0 {
            let Some(head) = self.lines.front_mut() else {
                break;
            };
            if written >= head.len() {
                written -= head.len();
                self.lines.pop_front();
            } else {
                head.advance(written);
                written = 0;
            }
        }
        if self.lines.is_empty() && self.lines.capacity() > 0 {
            // An idle miner keeps no queue memory: re-allocating four slots on the next
            // answer costs tens of ns beside a syscall, keeping them costs 128 B a miner.
            self.lines = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_partial_writes_resume_mid_line() {
        let mut out = Outbox::new(2);
        out.push(Bytes::from_static(b"abc\n")).unwrap();
        out.push(Bytes::from_static(b"de\n")).unwrap();
        assert!(matches!(
            out.push(Bytes::from_static(b"x\n")),
            Err(SessionEnd::SlowConsumer { lines: 2 })
        ));
        out.advance(2);
        let mut slices = [std::io::IoSlice::new(&[]); 4];
        let n = out.chunks(&mut slices);
        assert_eq!(n, 2);
        assert_eq!(&*slices[0], b"c\n");
        assert_eq!(&*slices[1], b"de\n");
        out.advance(5);
        assert!(out.is_empty());
        assert_eq!(out.lines.capacity(), 0, "a drained queue keeps no memory");
    }
}
