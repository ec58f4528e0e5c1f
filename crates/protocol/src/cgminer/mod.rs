//! The cgminer-style management API's reply format (TCP 4028: Antminer, Avalon, LuxOS,
//! Whatsminer): finding where a reply ends, repairing what real firmware sends, parsing it
//! and reading its STATUS and sections. Pure, so the fuzzers reach it without a runtime;
//! the TCP client lives in the site crate (`power::api::cgminer`).
//!
//! Real firmware ends a reply in one of three ways, all accepted:
//!
//! | ending | seen on |
//! |---|---|
//! | a NUL byte (`\0`) after the JSON | cgminer, bmminer, btminer |
//! | a newline after the JSON | some LuxOS and Avalon builds |
//! | nothing: the miner just closes | older bmminer |
//!
//! The body itself is not always JSON either: `}{` between sections (bmminer `stats`),
//! trailing commas, bare `inf` / `nan`. [`parse_reply`] repairs those before parsing and
//! reports a truncated reply as [`ReplyError::Unreadable`].

mod error;
pub mod reading;

use serde_json::Value;

pub use error::ReplyError;

/// Finds where a reply ends while it streams in, without parsing it.
///
/// Tracks bracket depth outside strings: a newline at depth 0 (after some JSON) ends the
/// reply, while the newlines of a pretty-printed body (depth > 0) do not.
#[derive(Debug, Default, Clone)]
pub struct FrameScanner {
    /// `{`/`[` nesting outside strings.
    depth: usize,
    /// Inside a JSON string, where brackets and newlines mean nothing.
    in_string: bool,
    /// The previous byte was a backslash inside a string.
    escaped: bool,
    /// At least one non-blank byte was seen, so a newline can end the reply.
    started: bool,
}

impl FrameScanner {
    /// Feeds bytes; returns the offset just past the terminator when the reply ended.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                0 => return Some(i + 1),
                b'\n' if self.started && self.depth == 0 => return Some(i + 1),
                b'"' => {
                    self.in_string = true;
                    self.started = true;
                }
                b'{' | b'[' => {
                    self.depth += 1;
                    self.started = true;
                }
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ => self.started = true,
            }
        }
        None
    }

    /// Judges a reply the peer ended by closing: complete, or truncated.
    ///
    /// # Errors
    /// [`ReplyError::Protocol`] when the close came inside a string or an open bracket.
    pub fn at_close(&self) -> Result<(), ReplyError> {
        if !self.started {
            return Err(ReplyError::Unreadable("empty reply".into()));
        }
        if self.in_string || self.depth > 0 {
            return Err(ReplyError::Unreadable("truncated reply".into()));
        }
        Ok(())
    }
}

/// Repairs the known firmware quirks into strict JSON text.
///
/// - NUL bytes outside strings are dropped;
/// - a comma before `}` / `]` is dropped (trailing commas);
/// - `}` followed by `{` inside an array or object gets a comma (`}{` between sections);
/// - bare `inf`, `-inf`, `infinity`, `nan`, `-nan` (any case) become `null`.
///
/// Two top-level values (`{..}{..}` at depth 0) are left apart for [`parse_reply`] to merge.
pub fn sanitize(raw: &[u8]) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len() + 16);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match b {
            0 => {}
            b'"' => {
                in_string = true;
                out.push(b);
            }
            b',' => {
                let next = next_non_blank(raw, i + 1);
                if !matches!(next, Some(b'}') | Some(b']') | None) {
                    out.push(b);
                }
            }
            b'{' | b'[' => {
                depth += 1;
                out.push(b);
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                out.push(b);
                if b == b'}' && depth > 0 && next_non_blank(raw, i + 1) == Some(b'{') {
                    out.push(b',');
                }
            }
            b'-' if raw.get(i + 1).is_some_and(u8::is_ascii_alphabetic) => {
                let word_end = word_end(raw, i + 1);
                let word = raw.get(i + 1..word_end).unwrap_or_default();
                if is_non_finite(word) {
                    out.extend_from_slice(b"null");
                } else {
                    out.extend_from_slice(raw.get(i..word_end).unwrap_or_default());
                }
                i = word_end;
                continue;
            }
            c if c.is_ascii_alphabetic() => {
                let word_end = word_end(raw, i);
                let word = raw.get(i..word_end).unwrap_or_default();
                if is_non_finite(word) {
                    out.extend_from_slice(b"null");
                } else {
                    out.extend_from_slice(word);
                }
                i = word_end;
                continue;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn next_non_blank(raw: &[u8], from: usize) -> Option<u8> {
    raw.get(from..)?
        .iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0))
}

fn word_end(raw: &[u8], from: usize) -> usize {
    let len = raw
        .get(from..)
        .map(|rest| rest.iter().take_while(|b| b.is_ascii_alphabetic()).count())
        .unwrap_or(0);
    from + len
}

fn is_non_finite(word: &[u8]) -> bool {
    word.eq_ignore_ascii_case(b"inf")
        || word.eq_ignore_ascii_case(b"infinity")
        || word.eq_ignore_ascii_case(b"nan")
}

/// Parses a raw reply into JSON after [`sanitize`]; several top-level objects are merged
/// into one (their keys side by side), as a multi-section reply means.
///
/// # Errors
/// [`ReplyError::Protocol`] for an empty, truncated or non-JSON reply.
pub fn parse_reply(raw: &[u8]) -> Result<Value, ReplyError> {
    let text = sanitize(raw);
    let mut values = Vec::new();
    for value in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
        match value {
            Ok(v) => values.push(v),
            Err(e) if e.is_eof() => {
                return Err(ReplyError::Unreadable(format!("truncated reply: {e}")));
            }
            Err(e) => return Err(ReplyError::Unreadable(format!("not JSON: {e}"))),
        }
    }
    let mut values = values.into_iter();
    let Some(first) = values.next() else {
        return Err(ReplyError::Unreadable("empty reply".into()));
    };
    let mut merged = match first {
        Value::Object(map) => map,
        other if values.len() == 0 => return Ok(other),
        _ => return Err(ReplyError::Unreadable("several top-level values".into())),
    };
    for value in values {
        let Value::Object(map) = value else {
            return Err(ReplyError::Unreadable("several top-level values".into()));
        };
        merged.extend(map);
    }
    Ok(Value::Object(merged))
}

/// Checks the cgminer STATUS of a reply: `E` (error) or `F` (fatal) become
/// [`ReplyError::Refused`] with the miner's message; `S`, `I`, `W` pass.
///
/// Accepts the array form (`"STATUS":[{"STATUS":"S",..}]`), Whatsminer's string form
/// (`"STATUS":"S","Msg":..`) and multi-command replies (`{"summary":[{"STATUS":..}],..}`).
///
/// # Errors
/// [`ReplyError::Refused`] on an error status; [`ReplyError::Protocol`] when there is none.
pub fn check_status(reply: &Value) -> Result<(), ReplyError> {
    match status_of(reply) {
        Some((code, msg)) if code == "E" || code == "F" => Err(ReplyError::Refused(msg)),
        Some(_) => Ok(()),
        None => {
            // A multi-command reply nests one full reply per command.
            let sections: Vec<&Value> = reply
                .as_object()
                .map(|m| m.values().filter_map(|v| v.as_array()?.first()).collect())
                .unwrap_or_default();
            let mut found = false;
            for section in sections {
                if let Some((code, msg)) = status_of(section) {
                    found = true;
                    if code == "E" || code == "F" {
                        return Err(ReplyError::Refused(msg));
                    }
                }
            }
            if found {
                Ok(())
            } else {
                Err(ReplyError::Unreadable("reply has no STATUS".into()))
            }
        }
    }
}

/// The STATUS letter and message of one reply, in either form.
pub fn status_of(reply: &Value) -> Option<(String, String)> {
    let status = reply.get("STATUS")?;
    let (code, holder) = match status {
        Value::String(s) => (s.clone(), reply),
        Value::Array(items) => {
            let first = items.first()?;
            (first.get("STATUS")?.as_str()?.to_string(), first)
        }
        _ => return None,
    };
    let msg = match holder.get("Msg") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    Some((code, msg))
}

/// The value a reply holds under section `name`, found however the firmware spelled it.
///
/// Exact spelling first, then any case or spacing (`"SUMMARY"`, `"Summary"`). A
/// multi-command reply nests one whole reply per command (`{"summary":[{"STATUS":..,
/// "SUMMARY":[..]}]}`), so a match whose first entry itself holds the section is opened.
fn section_value<'a>(reply: &'a Value, name: &str) -> Option<&'a Value> {
    let found = reading::get(reply, &[name])?;
    if let Some(inner) = found.as_array().and_then(|items| items.first())
        && inner.get("STATUS").is_some()
        && reading::get(inner, &[name]).is_some_and(|v| v.is_array() || v.is_object())
    {
        return section_value(inner, name);
    }
    Some(found)
}

/// The first object of a named section (`"SUMMARY":[{..}]`, or `"SUMMARY":{..}` as some
/// firmware writes it), if present; the name matches in any case.
pub fn section<'a>(reply: &'a Value, name: &str) -> Option<&'a Value> {
    match section_value(reply, name)? {
        Value::Array(items) => items.first().filter(|v| v.is_object()),
        obj @ Value::Object(_) => Some(obj),
        _ => None,
    }
}

/// A named section's list of objects (`"FANS":[{..},{..}]`); empty when absent. A section
/// written as one object is a list of one.
pub fn section_list<'a>(reply: &'a Value, name: &str) -> &'a [Value] {
    match section_value(reply, name) {
        Some(Value::Array(items)) => items,
        Some(obj @ Value::Object(_)) => std::slice::from_ref(obj),
        _ => &[],
    }
}

/// Reads a number that firmware may send as a JSON number or as a numeric string.
pub fn number(value: Option<&Value>) -> Option<f64> {
    let n = match value? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().trim_matches('\'').parse::<f64>().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// [`number`] of `obj[key]`.
pub fn field(obj: &Value, key: &str) -> Option<f64> {
    number(obj.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scan_all(bytes: &[u8]) -> Option<usize> {
        FrameScanner::default().feed(bytes)
    }

    #[test]
    fn nul_terminator_ends_the_frame() {
        assert_eq!(scan_all(b"{\"a\":1}\0garbage"), Some(8));
    }

    #[test]
    fn newline_inside_pretty_json_does_not_end_the_frame() {
        let mut s = FrameScanner::default();
        assert_eq!(s.feed(b"{\n  \"a\": \"x\n\",\n"), None);
        assert_eq!(s.feed(b"  \"b\": [1,\n2]\n}\n"), Some(16));
    }

    #[test]
    fn close_after_complete_json_is_fine_but_truncated_is_not() {
        let mut s = FrameScanner::default();
        assert_eq!(s.feed(b"{\"a\":1}"), None);
        assert!(s.at_close().is_ok());
        let mut t = FrameScanner::default();
        t.feed(b"{\"a\":[1,");
        assert!(matches!(t.at_close(), Err(ReplyError::Unreadable(_))));
        let mut u = FrameScanner::default();
        u.feed(b"{\"a\":\"unterminated");
        assert!(matches!(u.at_close(), Err(ReplyError::Unreadable(_))));
        assert!(FrameScanner::default().at_close().is_err());
    }

    #[test]
    fn brace_in_string_does_not_confuse_depth() {
        assert_eq!(scan_all(b"{\"m\":\"}}\\\"{\"}\n"), Some(14));
    }

    #[test]
    fn sanitize_trailing_commas() {
        let v = parse_reply(b"{\"A\":[1,2,],\"B\":{\"c\":1,},}").unwrap();
        assert_eq!(v, json!({"A":[1,2],"B":{"c":1}}));
    }

    #[test]
    fn sanitize_section_join() {
        let v = parse_reply(b"{\"STATS\":[{\"a\":1}{\"b\":2}  {\"c\":3}]}").unwrap();
        assert_eq!(v, json!({"STATS":[{"a":1},{"b":2},{"c":3}]}));
    }

    #[test]
    fn top_level_sections_are_merged() {
        let v =
            parse_reply(b"{\"STATUS\":[{\"STATUS\":\"S\"}]}{\"SUMMARY\":[{\"x\":1}]}\0").unwrap();
        assert_eq!(v, json!({"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"x":1}]}));
    }

    #[test]
    fn sanitize_non_finite_numbers() {
        let v = parse_reply(b"{\"a\":inf,\"b\":-inf,\"c\":nan,\"d\":-NaN,\"e\":Infinity,\"f\":\"inf\",\"g\":true,\"h\":null}").unwrap();
        assert_eq!(
            v,
            json!({"a":null,"b":null,"c":null,"d":null,"e":null,"f":"inf","g":true,"h":null})
        );
    }

    #[test]
    fn strings_keep_their_commas_and_nuls() {
        let v = parse_reply(b"{\"m\":\"a,}b,]\"}\0").unwrap();
        assert_eq!(v, json!({"m":"a,}b,]"}));
    }

    #[test]
    fn truncated_and_garbage_are_protocol_errors() {
        assert!(matches!(
            parse_reply(b"{\"STATUS\":[{\"STATUS\":\"S\""),
            Err(ReplyError::Unreadable(m)) if m.contains("truncated")
        ));
        assert!(matches!(
            parse_reply(b"\x16\x03\x01garbage"),
            Err(ReplyError::Unreadable(_))
        ));
        assert!(matches!(
            parse_reply(b"\0\n"),
            Err(ReplyError::Unreadable(_))
        ));
    }

    #[test]
    fn status_forms() {
        assert!(check_status(&json!({"STATUS":[{"STATUS":"S","Msg":"ok"}]})).is_ok());
        assert!(check_status(&json!({"STATUS":"S","Msg":{"a":1}})).is_ok());
        assert!(matches!(
            check_status(&json!({"STATUS":[{"STATUS":"E","Msg":"Invalid command"}]})),
            Err(ReplyError::Refused(m)) if m == "Invalid command"
        ));
        assert!(matches!(
            check_status(&json!({"STATUS":"E","Msg":"token error"})),
            Err(ReplyError::Refused(_))
        ));
        assert!(matches!(
            check_status(
                &json!({"summary":[{"STATUS":[{"STATUS":"S"}]}],"stats":[{"STATUS":[{"STATUS":"F","Msg":"x"}]}]})
            ),
            Err(ReplyError::Refused(_))
        ));
        assert!(matches!(
            check_status(&json!({"a":1})),
            Err(ReplyError::Unreadable(_))
        ));
    }

    #[test]
    fn sections_in_any_case_object_form_or_nested_per_command() {
        let plain = json!({"SUMMARY":[{"a":1}]});
        assert_eq!(section(&plain, "SUMMARY"), Some(&json!({"a":1})));
        let lower = json!({"Summary":[{"a":2}]});
        assert_eq!(section(&lower, "SUMMARY"), Some(&json!({"a":2})));
        let object = json!({"SUMMARY":{"a":3}});
        assert_eq!(section(&object, "SUMMARY"), Some(&json!({"a":3})));
        assert_eq!(section_list(&object, "SUMMARY").len(), 1);
        let nested = json!({"summary":[{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"a":4}]}],
            "stats":[{"STATUS":[{"STATUS":"S"}],"STATS":[{"STATS":0},{"STATS":1}]}]});
        assert_eq!(section(&nested, "SUMMARY"), Some(&json!({"a":4})));
        assert_eq!(section_list(&nested, "STATS").len(), 2);
        // An entry's own `STATS` counter is not a nested reply.
        let stats = json!({"STATS":[{"STATS":0,"ID":"AVA100"}]});
        assert_eq!(
            section(&stats, "STATS"),
            Some(&json!({"STATS":0,"ID":"AVA100"}))
        );
        assert_eq!(section(&json!({"SUMMARY":[]}), "SUMMARY"), None);
        assert_eq!(section(&json!({"SUMMARY":[1]}), "SUMMARY"), None);
        assert!(section_list(&json!({"FANS":"none"}), "FANS").is_empty());
    }

    #[test]
    fn numbers_from_strings_and_numbers() {
        let v = json!({"a":"37603.30","b":12,"c":"'3600'","d":"x","e":null});
        assert_eq!(field(&v, "a"), Some(37603.30));
        assert_eq!(field(&v, "b"), Some(12.0));
        assert_eq!(field(&v, "c"), Some(3600.0));
        assert_eq!(field(&v, "d"), None);
        assert_eq!(field(&v, "e"), None);
        assert_eq!(field(&v, "missing"), None);
    }
}
