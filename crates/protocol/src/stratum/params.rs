//! Typed access to raw JSON values: the building blocks of the method parsers.
//!
//! The envelope parser hands over each member as the exact text of one valid JSON value
//! (a borrowed `RawValue`). A params array is split into its elements' texts by a scan
//! that only tracks strings and nesting (the text is already known to be valid JSON, so
//! nothing else can happen), then each element is checked by its first byte and decoded
//! straight into its field type. No `serde_json::Value` tree is built and every defect
//! maps to a [`ParseErrorKind`] naming the field.

use std::borrow::Cow;

use super::error::ParseErrorKind;

/// The most params any known method takes (`mining.notify` has 9).
pub(super) const MAX_PARAMS: usize = 9;

/// A params array split into up to [`MAX_PARAMS`] element texts, plus the true count.
pub(super) struct Params<'a> {
    /// The first [`MAX_PARAMS`] elements, each the text of one JSON value.
    items: [&'a str; MAX_PARAMS],
    /// How many values the array held, including any beyond [`MAX_PARAMS`].
    count: usize,
}

impl<'a> Params<'a> {
    /// An empty params list (for a missing or `null` `params` member).
    pub(super) fn empty() -> Self {
        Self {
            items: [""; MAX_PARAMS],
            count: 0,
        }
    }

    /// Splits a raw params value, which must be an array (or `null`, read as empty).
    /// `raw` must be the text of one valid JSON value, as taken from a `RawValue`.
    ///
    /// # Errors
    /// [`ParseErrorKind::ParamsNotArray`].
    pub(super) fn split(
        method: &'static str,
        raw: Option<&'a str>,
    ) -> Result<Self, ParseErrorKind> {
        let Some(raw) = raw else {
            return Ok(Self::empty());
        };
        let text = raw;
        if text == "null" {
            return Ok(Self::empty());
        }
        let mut params = Self::empty();
        let all = split_array(text, |i, item| {
            if let Some(slot) = params.items.get_mut(i) {
                *slot = item;
            }
        })
        .ok_or(ParseErrorKind::ParamsNotArray { method })?;
        params.count = all;
        Ok(params)
    }

    /// Checks that the count lies in `min..=max`.
    ///
    /// # Errors
    /// [`ParseErrorKind::Arity`].
    pub(super) fn arity(
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

    /// The element text at `index`, `None` past the end.
    pub(super) fn get(&self, index: usize) -> Option<&'a str> {
        if index < self.count {
            self.items.get(index).copied()
        } else {
            None
        }
    }

    /// The value at `index`, which the arity check guaranteed.
    ///
    /// # Errors
    /// [`ParseErrorKind::WrongType`] if absent (only when called without an arity check).
    pub(super) fn at(&self, index: usize, field: &'static str) -> Result<&'a str, ParseErrorKind> {
        self.get(index).ok_or(ParseErrorKind::WrongType {
            field,
            expected: "a value",
        })
    }
}

/// Calls `each(index, element_text)` for every element of the JSON array `text` and
/// returns the element count, or `None` if `text` is not an array.
///
/// `text` must be one valid JSON value (as a `RawValue` guarantees): the scan then only
/// needs to know whether it is inside a string and how deep it is nested to find the
/// commas that separate elements.
pub(super) fn split_array<'a>(
    text: &'a str,
    mut each: impl FnMut(usize, &'a str),
) -> Option<usize> {
    let inner = text
        .trim_matches(is_json_space)
        .strip_prefix('[')?
        .strip_suffix(']')?;
    if inner.trim_matches(is_json_space).is_empty() {
        return Some(0);
    }
    let bytes = inner.as_bytes();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let (mut start, mut count) = (0usize, 0usize);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                each(count, inner.get(start..i)?.trim_matches(is_json_space));
                count += 1;
                start = i + 1;
            }
            _ => {}
        }
    }
    each(count, inner.get(start..)?.trim_matches(is_json_space));
    Some(count + 1)
}

/// JSON's four whitespace characters.
fn is_json_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Whether a raw value is `null`.
pub(super) fn is_null(raw: &str) -> bool {
    raw == "null"
}

/// A JSON string, borrowed when it holds no escapes.
///
/// # Errors
/// [`ParseErrorKind::WrongType`] for non-strings.
pub(super) fn string<'a>(
    raw: &'a str,
    field: &'static str,
) -> Result<Cow<'a, str>, ParseErrorKind> {
    let text = raw;
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
pub(super) fn opt_string<'a>(
    raw: Option<&'a str>,
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
pub(super) fn boolean(raw: &str, field: &'static str) -> Result<bool, ParseErrorKind> {
    match raw {
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
pub(super) fn number(raw: &str, field: &'static str) -> Result<f64, ParseErrorKind> {
    let text = raw;
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
pub(super) fn difficulty(raw: &str, field: &'static str) -> Result<f64, ParseErrorKind> {
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
pub(super) fn unsigned(raw: &str, field: &'static str) -> Result<u64, ParseErrorKind> {
    let text = raw;
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
pub(super) fn unsigned_as<T: TryFrom<u64>>(
    raw: &str,
    field: &'static str,
) -> Result<T, ParseErrorKind> {
    T::try_from(unsigned(raw, field)?).map_err(|_| ParseErrorKind::NumberOutOfRange { field })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn split(text: &str) -> Result<usize, ParseErrorKind> {
        let raw = RawValue::from_string(text.to_owned()).expect("valid JSON in test");
        Params::split("m", Some(raw.get())).map(|p| p.count)
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
        let raw = |t: &str| t.to_owned();
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

#[cfg(test)]
mod split_tests {
    use super::*;

    fn items(text: &str) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let n = split_array(text, |_, item| out.push(item.to_owned()))?;
        assert_eq!(n, out.len());
        Some(out)
    }

    #[test]
    fn commas_inside_strings_and_nesting_do_not_split() {
        assert_eq!(
            items(r#"[ "a,b" , ["c",{"d":[1,2]}], "e\"]," ,null ]"#),
            Some(vec![
                r#""a,b""#.to_owned(),
                r#"["c",{"d":[1,2]}]"#.to_owned(),
                r#""e\"],""#.to_owned(),
                "null".to_owned(),
            ])
        );
        assert_eq!(
            items(r#"["\\",1]"#),
            Some(vec![r#""\\""#.to_owned(), "1".to_owned()])
        );
        assert_eq!(items(" [ ] "), Some(vec![]));
        assert_eq!(items(r#"{"a":1}"#), None);
        assert_eq!(items("\"[1]\""), None);
    }
}
