//! The bounded line codec: bytes ↔ [`Message`]s. It works on a plain `BytesMut` so this
//! crate needs no async runtime; the connection tasks feed it what they read.
//!
//! Decoding yields `Result<Message, ParseError>` per line: a malformed line is an item,
//! not a stream error, so the caller can answer it (with [`ParseError::id`]) and read on.
//! Only an over-long line or an I/O failure is a [`CodecError`], after which the
//! connection should be dropped. `\r\n` endings and blank lines are accepted.

use bytes::{Bytes, BytesMut};

use super::error::{CodecError, ParseError};
use super::message::Message;

/// The default maximum line length: 64 KiB, far above the largest real notify (~2 KB
/// plus 67 bytes per merkle branch step) yet small enough to cap a hostile peer's memory.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// Splits a byte stream into lines of at most `max_line` bytes and parses each.
#[derive(Debug, Clone)]
pub struct StratumCodec {
    /// Longest line accepted, newline excluded.
    max_line: usize,
    /// How far the buffer was already searched for `\n`, so a slowly arriving long
    /// line is scanned once rather than from the start on every read.
    scanned: usize,
}

impl Default for StratumCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE)
    }
}

impl StratumCodec {
    /// A codec that refuses lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line,
            scanned: 0,
        }
    }

    /// The configured maximum line length.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Takes the next complete non-blank line out of `src`, without its line ending.
    ///
    /// # Errors
    /// [`CodecError::LineTooLong`] as soon as a line is known to exceed the maximum.
    pub fn next_line(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        loop {
            let from = self.scanned.min(src.len());
            let found = src
                .get(from..)
                .and_then(|rest| rest.iter().position(|&b| b == b'\n'));
            let Some(offset) = found else {
                self.scanned = src.len();
                // Allow one byte for a `\r` that may precede the coming `\n`.
                if src.len() > self.max_line.saturating_add(1) {
                    return Err(CodecError::LineTooLong { max: self.max_line });
                }
                return Ok(None);
            };
            let newline = from + offset;
            self.scanned = 0;
            let mut line = src.split_to(newline + 1).freeze();
            line.truncate(newline);
            if line.last() == Some(&b'\r') {
                line.truncate(newline - 1);
            }
            if line.len() > self.max_line {
                return Err(CodecError::LineTooLong { max: self.max_line });
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(line));
        }
    }
}

impl StratumCodec {
    /// The next complete line, parsed: `Ok(None)` until a whole line has arrived. A line
    /// that does not parse is an `Err` item, not a codec error, so the stream goes on.
    ///
    /// # Errors
    /// [`CodecError::LineTooLong`] as soon as a line is known to exceed the maximum.
    pub fn decode(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<Result<Message, ParseError>>, CodecError> {
        Ok(self.next_line(src)?.map(|line| Message::parse(&line)))
    }

    /// Like [`StratumCodec::decode`] at end of stream: a last line without its newline
    /// still counts.
    ///
    /// # Errors
    /// [`CodecError::LineTooLong`] when the remaining bytes exceed the maximum.
    pub fn decode_eof(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<Result<Message, ParseError>>, CodecError> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        // A last line without its newline still counts, as with tokio's LinesCodec.
        self.scanned = 0;
        let rest = src.split().freeze();
        if rest.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if rest.len() > self.max_line {
            return Err(CodecError::LineTooLong { max: self.max_line });
        }
        Ok(Some(Message::parse(&rest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stratum::{Method, ParseErrorKind};

    const SUBMIT: &[u8] = br#"{"method": "mining.submit", "params": ["w", "j", "00", "6b052edf", "e35e4300"], "id":4}"#;

    fn decode_all(
        codec: &mut StratumCodec,
        buf: &mut BytesMut,
    ) -> Vec<Result<Message, ParseError>> {
        let mut out = Vec::new();
        while let Some(item) = codec.decode(buf).expect("no codec error") {
            out.push(item);
        }
        out
    }

    #[test]
    fn incomplete_frame_is_none_until_newline() {
        let mut codec = StratumCodec::default();
        let mut buf = BytesMut::from(&SUBMIT[..20]);
        assert!(codec.decode(&mut buf).expect("no error").is_none());
        buf.extend_from_slice(&SUBMIT[20..]);
        assert!(codec.decode(&mut buf).expect("no error").is_none());
        buf.extend_from_slice(b"\r\n");
        let item = codec.decode(&mut buf).expect("no error").expect("a line");
        assert!(matches!(item, Ok(Message::Request(r)) if matches!(r.method, Method::Submit(_))));
        assert!(buf.is_empty());
    }

    #[test]
    fn blank_lines_are_skipped_and_bad_lines_do_not_end_the_stream() {
        let mut codec = StratumCodec::default();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"\n\r\n  \n");
        buf.extend_from_slice(b"{not json\n");
        buf.extend_from_slice(SUBMIT);
        buf.extend_from_slice(b"\n");
        let items = decode_all(&mut codec, &mut buf);
        assert_eq!(items.len(), 2);
        assert!(matches!(
            items[0].as_ref().map_err(ParseError::kind),
            Err(ParseErrorKind::InvalidJson(_))
        ));
        assert!(items[1].is_ok());
    }

    #[test]
    fn over_long_line_is_an_error_before_its_newline_arrives() {
        let mut codec = StratumCodec::new(16);
        let mut buf = BytesMut::from(&[b'x'; 18][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::LineTooLong { max: 16 })
        ));
        let mut codec = StratumCodec::new(16);
        let mut buf = BytesMut::from(&b"{\"id\":1,\"result\":true}\n"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::LineTooLong { max: 16 })
        ));
    }

    #[test]
    fn line_at_the_limit_passes_with_crlf() {
        let line = br#"{"result":true}"#;
        let mut codec = StratumCodec::new(line.len());
        let mut buf = BytesMut::from(&line[..]);
        buf.extend_from_slice(b"\r");
        assert!(codec.decode(&mut buf).expect("within limit").is_none());
        buf.extend_from_slice(b"\n");
        assert!(matches!(
            codec.decode(&mut buf),
            Ok(Some(Ok(Message::Response(_))))
        ));
    }

    #[test]
    fn last_line_without_newline_is_decoded_at_eof() {
        let mut codec = StratumCodec::default();
        let mut buf = BytesMut::from(SUBMIT);
        assert!(matches!(codec.decode_eof(&mut buf), Ok(Some(Ok(_)))));
        assert!(matches!(codec.decode_eof(&mut buf), Ok(None)));
    }

    #[test]
    fn encoded_messages_and_shared_bytes_decode_back() {
        let mut codec = StratumCodec::default();
        let msg = Message::parse(SUBMIT).expect("valid");
        let shared = msg.to_bytes();
        let mut out = BytesMut::new();
        msg.encode_into(&mut out);
        out.extend_from_slice(&shared);
        let items = decode_all(&mut codec, &mut out);
        assert_eq!(items, vec![Ok(msg.clone()), Ok(msg)]);
    }
}
