//! JSON-RPC request ids, kept so they are written back exactly as received.

use std::fmt;

use bytes::{BufMut, BytesMut};
use serde_json::value::RawValue;

use super::error::ParseErrorKind;

/// A JSON-RPC id as it appeared on the wire.
///
/// Miners match answers by id, and some compare the raw token, so the id is echoed
/// byte-for-byte: plain non-negative integers are kept as `u64` (the common case, cheap to
/// compare and to issue), any other number and every string keep their source text.
/// Ids are not unique per connection (cpuminer sends every submit with id 4), so never
/// use one alone to find a pending request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    /// `null`, also used when the id is absent (server notifications).
    Null,
    /// A non-negative integer that fits in `u64`, e.g. `4`.
    Int(u64),
    /// Any other JSON number (`-1`, `4.0`, `1e3`), kept as its source text.
    Number(Box<str>),
    /// A string id; holds the JSON text between the quotes, escapes untouched.
    Str(Box<str>),
}

impl Id {
    /// Builds a string id from plain text, escaping it as JSON requires.
    pub fn from_text(text: &str) -> Self {
        let quoted = serde_json::to_string(text).unwrap_or_else(|_| String::from("\"\""));
        let inner = quoted
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or("");
        Id::Str(inner.into())
    }

    /// Reads an id from its raw JSON value.
    ///
    /// # Errors
    /// [`ParseErrorKind::BadId`] for booleans, arrays and objects.
    pub fn from_raw(raw: &RawValue) -> Result<Self, ParseErrorKind> {
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'n') => Ok(Id::Null),
            Some(b'"') => {
                let inner = text
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .ok_or(ParseErrorKind::BadId)?;
                Ok(Id::Str(inner.into()))
            }
            Some(b'-' | b'0'..=b'9') => {
                if text.bytes().all(|b| b.is_ascii_digit())
                    && let Ok(n) = text.parse::<u64>()
                {
                    return Ok(Id::Int(n));
                }
                Ok(Id::Number(text.into()))
            }
            _ => Err(ParseErrorKind::BadId),
        }
    }

    /// Appends the id's JSON text to `buf`.
    pub fn encode_into(&self, buf: &mut BytesMut) {
        match self {
            Id::Null => buf.put_slice(b"null"),
            Id::Int(n) => super::encode::put_u64(buf, *n),
            Id::Number(text) => buf.put_slice(text.as_bytes()),
            Id::Str(inner) => {
                buf.put_u8(b'"');
                buf.put_slice(inner.as_bytes());
                buf.put_u8(b'"');
            }
        }
    }
}

impl fmt::Display for Id {
    /// Writes the JSON text of the id, as it goes on the wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Null => f.write_str("null"),
            Id::Int(n) => write!(f, "{n}"),
            Id::Number(text) => f.write_str(text),
            Id::Str(inner) => write!(f, "\"{inner}\""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).expect("valid JSON in test")
    }

    #[test]
    fn ids_keep_their_source_text() {
        for text in [
            "4",
            "null",
            "\"abc\"",
            "-1",
            "4.0",
            "1e3",
            "\"a\\u0041\"",
            "18446744073709551616",
        ] {
            let id = Id::from_raw(&raw(text)).expect("valid id");
            let mut buf = BytesMut::new();
            id.encode_into(&mut buf);
            assert_eq!(&buf[..], text.as_bytes(), "id {text}");
            assert_eq!(id.to_string(), text);
        }
    }

    #[test]
    fn small_integers_are_ints() {
        assert_eq!(Id::from_raw(&raw("4")), Ok(Id::Int(4)));
        assert_eq!(Id::from_raw(&raw("-4")), Ok(Id::Number("-4".into())));
    }

    #[test]
    fn non_scalar_ids_are_refused() {
        for text in ["true", "[1]", "{}"] {
            assert_eq!(Id::from_raw(&raw(text)), Err(ParseErrorKind::BadId));
        }
    }

    #[test]
    fn text_ids_are_escaped() {
        assert_eq!(Id::from_text("a\"b"), Id::Str("a\\\"b".into()));
    }
}
