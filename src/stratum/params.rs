//! Typed access to raw JSON values: the building blocks of the method parsers.
//!
//! Params are split into borrowed [`RawValue`]s first, then each is checked by its first
//! byte and decoded straight into its field type, so no `serde_json::Value` tree is built
//! and every defect maps to a [`ParseErrorKind`] naming the field.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::error::ParseErrorKind;

/// The most params any known method takes (`mining.notify` has 9).
pub const MAX_PARAMS: usize = 9;

/// A params array split into up to [`MAX_PARAMS`] raw values, plus the true count.
pub struct Params<'a> {
    /// The first [`MAX_PARAMS`] values.
    items: [Option<&'a RawValue>; MAX_PARAMS],
    /// How many values the array held, including any beyond [`MAX_PARAMS`].
    count: usize,
}

impl<'a> Params<'a> {
    /// An empty params list (for a missing or `null` `params` member).
    pub fn empty() -> Self {
        Self {
            items: [None; MAX_PARAMS],
            count: 0,
        }
    }

    /// Splits a raw params value, which must be an array (or `null`, read as empty).
    ///
    /// # Errors
    /// [`ParseErrorKind::ParamsNotArray`].
    pub fn split(method: &'static str, raw: Option<&'a RawValue>) -> Result<Self, ParseErrorKind> {
        let Some(raw) = raw else {
            return Ok(Self::empty());
        };
        match raw.get().as_bytes().first() {
            Some(b'n') => Ok(Self::empty()),
            Some(b'[') => serde_json::from_str(raw.get())
                .map_err(|_| ParseErrorKind::ParamsNotArray { method }),
            _ => Err(ParseErrorKind::ParamsNotArray { method }),
        }
    }

    /// Checks that the count lies in `min..=max`.
    ///
    /// # Errors
    /// [`ParseErrorKind::Arity`].
    pub fn arity(
        &self,
        method: &'static str,
        min: usize,
        max: usize,
        expected: &'static str,
    ) -> Result<(), ParseErrorKind> {
        if (min..=max).contains(&self.count) {
            Ok(())
        } else {
            Err(ParseErrorKind::Arity {
                method,
                expected,
                got: self.count,
            })
        }
    }

    /// The raw value at `index`, `None` past the end.
    pub fn get(&self, index: usize) -> Option<&'a RawValue> {
        self.items.get(index).copied().flatten()
    }

    /// The value at `index`, which the arity check guaranteed.
    ///
    /// # Errors
    /// [`ParseErrorKind::WrongType`] if absent (only when called without an arity check).
    pub fn at(&self, index: usize, field: &'static str) -> Result<&'a RawValue, ParseErrorKind> {
        self.get(index).ok_or(ParseErrorKind::WrongType {
            field,
            expected: "a value",
        })
    }
}

impl<'de> Deserialize<'de> for Params<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(ParamsVisitor)
    }
}

/// Collects the first [`MAX_PARAMS`] elements and counts (but skips) the rest, so an
/// over-long array becomes an arity error rather than a generic one.
struct ParamsVisitor;

impl<'de> Visitor<'de> for ParamsVisitor {
    type Value = Params<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a params array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut params = Params::empty();
        loop {
            if let Some(slot) = params.items.get_mut(params.count) {
                match seq.next_element::<&'de RawValue>()? {
                    Some(value) => *slot = Some(value),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            params.count += 1;
        }
        Ok(params)
    }
}

/// Whether a raw value is `null`.
pub fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// A JSON string, borrowed when it holds no escapes.
///
/// # Errors
/// [`ParseErrorKind::WrongType`] for non-strings.
pub fn string<'a>(raw: &'a RawValue, field: &'static str) -> Result<Cow<'a, str>, ParseErrorKind> {
    let text = raw.get();
    let wrong = ParseErrorKind::WrongType {
        field,
        expected: "a string",
    };
    let inner = text
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or(wrong.clone())?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(text)
            .map(Cow::Owned)
            .map_err(|_| wrong)
    } else {
        Ok(Cow::Borrowed(inner))
    }
}

/// A string or `null` (`None`).
///
/// # Errors
/// [`ParseErrorKind::WrongType`] for other types.
pub fn opt_string<'a>(
    raw: Option<&'a RawValue>,
    field: &'static str,
) -> Result<Option<Cow<'a, str>>, ParseErrorKind> {
    match raw {
        None => Ok(None),
        Some(raw) if is_null(raw) => Ok(None),
        Some(raw) => string(raw, field).map(Some),
    }
}

/// A JSON boolean.
///
/// # Errors
/// [`ParseErrorKind::WrongType`].
pub fn boolean(raw: &RawValue, field: &'static str) -> Result<bool, ParseErrorKind> {
    match raw.get() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ParseErrorKind::WrongType {
            field,
            expected: "a boolean",
        }),
    }
}

/// A JSON number as a finite `f64`.
///
/// # Errors
/// [`ParseErrorKind::WrongType`] for non-numbers, [`ParseErrorKind::NumberOutOfRange`]
/// when it overflows `f64`.
pub fn number(raw: &RawValue, field: &'static str) -> Result<f64, ParseErrorKind> {
    let text = raw.get();
    if !matches!(text.as_bytes().first(), Some(b'-' | b'0'..=b'9')) {
        return Err(ParseErrorKind::WrongType {
            field,
            expected: "a number",
        });
    }
    // std's parser rounds correctly (serde_json's default float parsing is best-effort),
    // so an encoded difficulty reads back bit-identical; the raw text is already valid JSON.
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(ParseErrorKind::NumberOutOfRange { field }),
    }
}

/// A positive difficulty.
///
/// # Errors
/// As [`number`], plus [`ParseErrorKind::InvalidValue`] for zero or negative values.
pub fn difficulty(raw: &RawValue, field: &'static str) -> Result<f64, ParseErrorKind> {
    let value = number(raw, field)?;
    if value > 0.0 {
        Ok(value)
    } else {
        Err(ParseErrorKind::InvalidValue {
            field,
            reason: "difficulty must be positive",
        })
    }
}

/// A non-negative JSON integer.
///
/// # Errors
/// [`ParseErrorKind::WrongType`] for non-integers, [`ParseErrorKind::NumberOutOfRange`]
/// beyond `u64`.
pub fn unsigned(raw: &RawValue, field: &'static str) -> Result<u64, ParseErrorKind> {
    let text = raw.get();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseErrorKind::WrongType {
            field,
            expected: "a non-negative integer",
        });
    }
    text.parse::<u64>()
        .map_err(|_| ParseErrorKind::NumberOutOfRange { field })
}

/// A non-negative integer narrowed to `T`.
///
/// # Errors
/// As [`unsigned`], plus [`ParseErrorKind::NumberOutOfRange`] when it does not fit `T`.
pub fn unsigned_as<T: TryFrom<u64>>(
    raw: &RawValue,
    field: &'static str,
) -> Result<T, ParseErrorKind> {
    T::try_from(unsigned(raw, field)?).map_err(|_| ParseErrorKind::NumberOutOfRange { field })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Result<usize, ParseErrorKind> {
        let raw = RawValue::from_string(text.to_owned()).expect("valid JSON in test");
        Params::split("m", Some(&raw)).map(|p| p.count)
    }

    #[test]
    fn params_count_past_the_stored_maximum() {
        assert_eq!(split("[]"), Ok(0));
        assert_eq!(split("null"), Ok(0));
        assert_eq!(split("[1,2,3,4,5,6,7,8,9,10,11]"), Ok(11));
        assert_eq!(
            split("{}"),
            Err(ParseErrorKind::ParamsNotArray { method: "m" })
        );
        assert_eq!(
            split("\"x\""),
            Err(ParseErrorKind::ParamsNotArray { method: "m" })
        );
    }

    #[test]
    fn scalars_are_typed() {
        let raw = |t: &str| RawValue::from_string(t.to_owned()).expect("valid JSON in test");
        assert_eq!(string(&raw("\"a\\\"b\""), "f").as_deref(), Ok("a\"b"));
        assert!(matches!(
            string(&raw("\"ab\""), "f"),
            Ok(Cow::Borrowed("ab"))
        ));
        assert_eq!(
            number(&raw("1e400"), "d"),
            Err(ParseErrorKind::NumberOutOfRange { field: "d" })
        );
        assert_eq!(
            unsigned(&raw("18446744073709551616"), "n"),
            Err(ParseErrorKind::NumberOutOfRange { field: "n" })
        );
        assert_eq!(
            unsigned_as::<u16>(&raw("65536"), "p"),
            Err(ParseErrorKind::NumberOutOfRange { field: "p" })
        );
        assert_eq!(
            boolean(&raw("1"), "b"),
            Err(ParseErrorKind::WrongType {
                field: "b",
                expected: "a boolean"
            })
        );
    }
}
