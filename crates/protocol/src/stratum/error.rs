//! Typed errors of the Stratum layer: one line that failed to parse, and codec failures.

use super::id::Id;

/// Why one line could not be turned into a [`Message`](super::Message).
///
/// A parse error concerns one line only: the stream stays usable and the caller chooses
/// between an error answer (echoing [`ParseError::id`] when it is known) and a disconnect.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    /// The request id, when the line got far enough for it to be read, so an answer can echo it.
    id: Option<Id>,
    /// What exactly was wrong.
    kind: ParseErrorKind,
}

impl ParseError {
    /// Builds an error for a line whose id is known (or `None` when it is not).
    pub fn new(id: Option<Id>, kind: ParseErrorKind) -> Self {
        Self { id, kind }
    }

    /// The id of the offending request, when it could be read: answer with it.
    pub fn id(&self) -> Option<&Id> {
        self.id.as_ref()
    }

    /// What was wrong with the line.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }
}

impl From<ParseErrorKind> for ParseError {
    fn from(kind: ParseErrorKind) -> Self {
        Self { id: None, kind }
    }
}

/// The specific defect of a line. Field and method names are the Stratum names.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The line is not UTF-8, so it cannot be JSON.
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    /// The line is not well-formed JSON.
    #[error("line is not valid JSON: {0}")]
    InvalidJson(String),
    /// The line is JSON but not a JSON-RPC object (an array, a number, a duplicate key...).
    #[error("line is not a JSON-RPC object: {0}")]
    NotAnObject(String),
    /// The object has neither `method` nor `result`/`error`.
    #[error("object has neither a method nor a result or error")]
    NotAMessage,
    /// `method` is present but not a string.
    #[error("method is not a string")]
    MethodNotString,
    /// `id` is not a number, a string or null.
    #[error("id must be a number, a string or null")]
    BadId,
    /// `params` is present but not an array.
    #[error("{method}: params must be an array")]
    ParamsNotArray {
        /// The Stratum method name.
        method: &'static str,
    },
    /// The number of params does not fit the method.
    #[error("{method}: expected {expected} params, got {got}")]
    Arity {
        /// The Stratum method name.
        method: &'static str,
        /// What the method accepts, e.g. `"5 or 6"`.
        expected: &'static str,
        /// How many params the line had.
        got: usize,
    },
    /// A field has the wrong JSON type.
    #[error("{field}: expected {expected}")]
    WrongType {
        /// The field name.
        field: &'static str,
        /// The JSON type wanted, e.g. `"string"`.
        expected: &'static str,
    },
    /// A hex field holds a non-hex character or an odd number of digits.
    #[error("{field}: invalid hex")]
    BadHex {
        /// The field name.
        field: &'static str,
    },
    /// A fixed-size hex field decodes to the wrong number of bytes.
    #[error("{field}: expected {expected} bytes, got {got}")]
    BadLength {
        /// The field name.
        field: &'static str,
        /// The exact size required.
        expected: usize,
        /// The decoded size.
        got: usize,
    },
    /// A variable-size field is longer than allowed.
    #[error("{field}: at most {max} bytes allowed, got {got}")]
    TooLong {
        /// The field name.
        field: &'static str,
        /// The largest size accepted.
        max: usize,
        /// The size found.
        got: usize,
    },
    /// A number does not fit the field's type (or is infinite).
    #[error("{field}: number out of range")]
    NumberOutOfRange {
        /// The field name.
        field: &'static str,
    },
    /// A value has the right type but makes no sense, e.g. a difficulty of zero.
    #[error("{field}: {reason}")]
    InvalidValue {
        /// The field name.
        field: &'static str,
        /// Why the value is refused.
        reason: &'static str,
    },
}

/// A failure of the line codec itself; unlike [`ParseError`] it ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A line exceeded the configured maximum length: the peer is broken or hostile.
    #[error("line longer than {max} bytes")]
    LineTooLong {
        /// The configured maximum line length in bytes.
        max: usize,
    },
    /// The underlying transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
