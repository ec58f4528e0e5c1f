//! Parsing one line into a [`Message`]: envelope first, then the method's params.
//!
//! The envelope is deserialised with serde into borrowed [`RawValue`] slices (no
//! `serde_json::Value` tree); params are then decoded field by field from those slices,
//! so `mining.submit` and `mining.notify` go straight from bytes to their typed structs.

use serde::Deserialize;
use serde::de::Deserializer;
use serde_json::value::RawValue;

use super::error::{ParseError, ParseErrorKind};
use super::hexfield::{Extranonce2, decode_array, decode_u32, decode_vec};
use super::id::Id;
use super::message::{
    Authorize, Configure, Message, Method, Notify, Reconnect, Request, SetExtranonce, Submit,
    Subscribe, VersionRolling, names,
};
use super::params::{
    Params, boolean, difficulty, is_null, number, opt_string, split_array, string, unsigned,
    unsigned_as,
};
use super::response::parse_response;

/// The members of a JSON-RPC object that Stratum uses; others (e.g. `jsonrpc`) are ignored.
#[derive(Deserialize)]
struct Envelope<'a> {
    /// Request id; `Some("null")` when sent as null, `None` when absent.
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    /// Method name; a non-string is a typed error, so it is kept raw here.
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    /// Params array.
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    /// Response result.
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    /// Response error.
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
    /// ckpool's reject reason.
    #[serde(
        borrow,
        default,
        rename = "reject-reason",
        deserialize_with = "present"
    )]
    reject_reason: Option<&'a RawValue>,
}

/// Keeps a member that is present as `Some`, even when its value is `null`, so that a
/// response with `"result":null` is still recognised as a response.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

impl Message {
    /// Parses one line (without its newline; surrounding whitespace is allowed).
    ///
    /// # Errors
    /// A [`ParseError`] naming the defect and, when it could be read, the request id.
    pub fn parse(line: &[u8]) -> Result<Message, ParseError> {
        let text = std::str::from_utf8(line).map_err(|_| ParseErrorKind::InvalidUtf8)?;
        // serde's derived struct would also accept an array as positional members.
        if !text.trim_start().starts_with('{') {
            return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => ParseErrorKind::NotAnObject(String::from("not an object")),
                Err(e) => ParseErrorKind::InvalidJson(e.to_string()),
            }
            .into());
        }
        let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| {
            if e.is_data() {
                ParseErrorKind::NotAnObject(e.to_string())
            } else {
                ParseErrorKind::InvalidJson(e.to_string())
            }
        })?;
        let id = match envelope.id {
            Some(raw) => Id::from_raw(raw)?,
            None => Id::Null,
        };
        let method = match envelope.method {
            Some(raw) if !is_null(raw.get()) => {
                Some(string(raw.get(), "method").map_err(|_| {
                    ParseError::new(Some(id.clone()), ParseErrorKind::MethodNotString)
                })?)
            }
            _ => None,
        };
        if let Some(name) = method {
            return match parse_method(&name, envelope.params.map(RawValue::get)) {
                Ok(method) => Ok(Message::Request(Request { id, method })),
                Err(kind) => Err(ParseError::new(Some(id), kind)),
            };
        }
        if envelope.result.is_none() && envelope.error.is_none() {
            return Err(ParseError::new(Some(id), ParseErrorKind::NotAMessage));
        }
        match parse_response(
            envelope.result.map(RawValue::get),
            envelope.error.map(RawValue::get),
            envelope.reject_reason.map(RawValue::get),
        ) {
            Ok((result, error, reject_reason)) => Ok(Message::Response(super::message::Response {
                id,
                result,
                error,
                reject_reason,
            })),
            Err(kind) => Err(ParseError::new(Some(id), kind)),
        }
    }
}

/// Decodes a method's params by name; unknown names become [`Method::Unknown`].
fn parse_method(name: &str, raw: Option<&str>) -> Result<Method, ParseErrorKind> {
    // Hot methods first.
    match name {
        names::SUBMIT => parse_submit(raw).map(Method::Submit),
        names::NOTIFY => parse_notify(raw).map(Method::Notify),
        names::SET_DIFFICULTY => one(names::SET_DIFFICULTY, raw, |v| difficulty(v, "difficulty"))
            .map(Method::SetDifficulty),
        names::SUBSCRIBE => parse_subscribe(raw).map(Method::Subscribe),
        names::AUTHORIZE => parse_authorize(raw).map(Method::Authorize),
        names::CONFIGURE => parse_configure(raw).map(Method::Configure),
        names::EXTRANONCE_SUBSCRIBE => {
            none(names::EXTRANONCE_SUBSCRIBE, raw).map(|()| Method::ExtranonceSubscribe)
        }
        names::SUGGEST_DIFFICULTY => one(names::SUGGEST_DIFFICULTY, raw, |v| {
            difficulty(v, "difficulty")
        })
        .map(Method::SuggestDifficulty),
        names::SET_EXTRANONCE => parse_set_extranonce(raw).map(Method::SetExtranonce),
        names::SET_VERSION_MASK => one(names::SET_VERSION_MASK, raw, |v| {
            decode_u32("version_mask", &string(v, "version_mask")?)
        })
        .map(Method::SetVersionMask),
        names::RECONNECT => parse_reconnect(raw).map(Method::Reconnect),
        names::GET_VERSION => none(names::GET_VERSION, raw).map(|()| Method::GetVersion),
        names::SHOW_MESSAGE => one(names::SHOW_MESSAGE, raw, |v| {
            string(v, "message").map(String::from)
        })
        .map(Method::ShowMessage),
        other => Ok(Method::Unknown {
            name: other.to_owned(),
            params: raw.unwrap_or("[]").into(),
        }),
    }
}

/// A method without params; extra params are tolerated since they carry nothing.
fn none(method: &'static str, raw: Option<&str>) -> Result<(), ParseErrorKind> {
    Params::split(method, raw).map(|_| ())
}

/// A method with exactly one param.
fn one<T>(
    method: &'static str,
    raw: Option<&str>,
    decode: impl FnOnce(&str) -> Result<T, ParseErrorKind>,
) -> Result<T, ParseErrorKind> {
    let params = Params::split(method, raw)?;
    params.arity(method, 1, 1, "1")?;
    decode(params.at(0, method)?)
}

/// Decodes a hex string field into a big-endian `u32`.
fn hex_u32(raw: &str, field: &'static str) -> Result<u32, ParseErrorKind> {
    decode_u32(field, &string(raw, field)?)
}

fn parse_submit(raw: Option<&str>) -> Result<Submit, ParseErrorKind> {
    let p = Params::split(names::SUBMIT, raw)?;
    p.arity(names::SUBMIT, 5, 6, "5 or 6")?;
    let version_bits = match p.get(5) {
        Some(v) => Some(hex_u32(v, "version_bits")?),
        None => None,
    };
    Ok(Submit {
        worker: string(p.at(0, "worker")?, "worker")?.into_owned(),
        job_id: string(p.at(1, "job_id")?, "job_id")?.into_owned(),
        extranonce2: Extranonce2::from_hex(
            "extranonce2",
            &string(p.at(2, "extranonce2")?, "extranonce2")?,
        )?,
        ntime: hex_u32(p.at(3, "ntime")?, "ntime")?,
        nonce: hex_u32(p.at(4, "nonce")?, "nonce")?,
        version_bits,
    })
}

fn parse_notify(raw: Option<&str>) -> Result<Notify, ParseErrorKind> {
    let p = Params::split(names::NOTIFY, raw)?;
    p.arity(names::NOTIFY, 9, 9, "9")?;
    let branch_raw = p.at(4, "merkle_branch")?;
    let mut merkle_branch = Vec::with_capacity(16);
    let mut bad = None;
    split_array(branch_raw, |_, h| {
        if bad.is_none() {
            match string(h, "merkle_branch").and_then(|h| decode_array::<32>("merkle_branch", &h)) {
                Ok(hash) => merkle_branch.push(hash),
                Err(e) => bad = Some(e),
            }
        }
    })
    .ok_or(ParseErrorKind::WrongType {
        field: "merkle_branch",
        expected: "an array of strings",
    })?;
    if let Some(e) = bad {
        return Err(e);
    }
    Ok(Notify {
        job_id: string(p.at(0, "job_id")?, "job_id")?.into_owned(),
        prevhash: decode_array::<32>("prevhash", &string(p.at(1, "prevhash")?, "prevhash")?)?,
        coinb1: decode_vec("coinb1", &string(p.at(2, "coinb1")?, "coinb1")?)?,
        coinb2: decode_vec("coinb2", &string(p.at(3, "coinb2")?, "coinb2")?)?,
        merkle_branch,
        version: hex_u32(p.at(5, "version")?, "version")?,
        nbits: hex_u32(p.at(6, "nbits")?, "nbits")?,
        ntime: hex_u32(p.at(7, "ntime")?, "ntime")?,
        clean_jobs: boolean(p.at(8, "clean_jobs")?, "clean_jobs")?,
    })
}

fn parse_subscribe(raw: Option<&str>) -> Result<Subscribe, ParseErrorKind> {
    let p = Params::split(names::SUBSCRIBE, raw)?;
    Ok(Subscribe {
        user_agent: opt_string(p.get(0), "user_agent")?.map(String::from),
        session_id: opt_string(p.get(1), "session_id")?.map(String::from),
    })
}

fn parse_authorize(raw: Option<&str>) -> Result<Authorize, ParseErrorKind> {
    let p = Params::split(names::AUTHORIZE, raw)?;
    p.arity(names::AUTHORIZE, 1, 2, "1 or 2")?;
    Ok(Authorize {
        user: string(p.at(0, "user")?, "user")?.into_owned(),
        password: opt_string(p.get(1), "password")?.map(String::from),
    })
}

/// The BIP310 params object; members are kept raw and typed one by one.
#[derive(Deserialize)]
struct ConfigureParams<'a> {
    #[serde(borrow, default, rename = "version-rolling.mask")]
    mask: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "version-rolling.min-bit-count")]
    min_bit_count: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "minimum-difficulty.value")]
    minimum_difficulty: Option<&'a RawValue>,
}

fn parse_configure(raw: Option<&str>) -> Result<Configure, ParseErrorKind> {
    let p = Params::split(names::CONFIGURE, raw)?;
    p.arity(names::CONFIGURE, 1, 2, "1 or 2")?;
    let extensions: Vec<std::borrow::Cow<'_, str>> = serde_json::from_str(p.at(0, "extensions")?)
        .map_err(|_| ParseErrorKind::WrongType {
        field: "extensions",
        expected: "an array of strings",
    })?;
    let values: ConfigureParams<'_> = match p.get(1) {
        Some(obj) if !is_null(obj) => {
            serde_json::from_str(obj).map_err(|_| ParseErrorKind::WrongType {
                field: "extension params",
                expected: "an object",
            })?
        }
        _ => ConfigureParams {
            mask: None,
            min_bit_count: None,
            minimum_difficulty: None,
        },
    };
    let mut out = Configure::default();
    for name in extensions {
        match &*name {
            "version-rolling" => {
                let mask = match values.mask {
                    Some(v) => Some(hex_u32(v.get(), "version-rolling.mask")?),
                    None => None,
                };
                let min_bit_count = match values.min_bit_count {
                    Some(v) => Some(unsigned_as::<u32>(
                        v.get(),
                        "version-rolling.min-bit-count",
                    )?),
                    None => None,
                };
                out.version_rolling = Some(VersionRolling {
                    mask,
                    min_bit_count,
                });
            }
            "minimum-difficulty" => {
                let value = values.minimum_difficulty.ok_or(ParseErrorKind::WrongType {
                    field: "minimum-difficulty.value",
                    expected: "a number",
                })?;
                out.minimum_difficulty = Some(number(value.get(), "minimum-difficulty.value")?);
            }
            "subscribe-extranonce" => out.subscribe_extranonce = true,
            _ => out.unknown.push(name.into_owned()),
        }
    }
    Ok(out)
}

fn parse_set_extranonce(raw: Option<&str>) -> Result<SetExtranonce, ParseErrorKind> {
    let p = Params::split(names::SET_EXTRANONCE, raw)?;
    p.arity(names::SET_EXTRANONCE, 2, 2, "2")?;
    Ok(SetExtranonce {
        extranonce1: decode_vec(
            "extranonce1",
            &string(p.at(0, "extranonce1")?, "extranonce1")?,
        )?,
        extranonce2_size: unsigned_as::<usize>(p.at(1, "extranonce2_size")?, "extranonce2_size")?,
    })
}

fn parse_reconnect(raw: Option<&str>) -> Result<Reconnect, ParseErrorKind> {
    let p = Params::split(names::RECONNECT, raw)?;
    p.arity(names::RECONNECT, 0, 3, "0 to 3")?;
    let port =
        match p.get(1) {
            None => None,
            Some(v) if is_null(v) => None,
            // Pools write the port either as a number or as a numeric string.
            Some(v) if v.starts_with('"') => {
                Some(string(v, "port")?.parse::<u16>().map_err(|_| {
                    ParseErrorKind::InvalidValue {
                        field: "port",
                        reason: "not a port number",
                    }
                })?)
            }
            Some(v) => Some(unsigned_as::<u16>(v, "port")?),
        };
    let wait_seconds = match p.get(2) {
        None => None,
        Some(v) if is_null(v) => None,
        Some(v) => Some(unsigned(v, "wait_seconds")?),
    };
    Ok(Reconnect {
        host: opt_string(p.get(0), "host")?.map(String::from),
        port,
        wait_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stratum::{ResultValue, RpcError};

    fn request(line: &str) -> Request {
        match Message::parse(line.as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn submit_fields_decode_big_endian() {
        let r = request(
            r#"{"method": "mining.submit", "params": ["labuser.worker1", "6b052edf00000001", "0000000000000000", "6b052edf", "e35e4300", "1fffe000"], "id":4}"#,
        );
        assert_eq!(r.id, Id::Int(4));
        let Method::Submit(s) = r.method else {
            panic!("not a submit")
        };
        assert_eq!(s.worker, "labuser.worker1");
        assert_eq!(s.job_id, "6b052edf00000001");
        assert_eq!(s.extranonce2.as_bytes(), &[0; 8]);
        assert_eq!(s.ntime, 0x6b05_2edf);
        assert_eq!(s.nonce, 0xe35e_4300);
        assert_eq!(s.version_bits, Some(0x1fff_e000));
    }

    #[test]
    fn unknown_method_keeps_name_and_id() {
        let r = request(r#"{"id":"x1","method":"mining.frobnicate","params":[1,{"a":2}]}"#);
        assert_eq!(r.id, Id::Str("x1".into()));
        assert_eq!(
            r.method,
            Method::Unknown {
                name: "mining.frobnicate".into(),
                params: "[1,{\"a\":2}]".into()
            }
        );
    }

    #[test]
    fn errors_carry_the_id_when_known() {
        let err = Message::parse(
            br#"{"id":7,"method":"mining.submit","params":["w","j","zz","6b052edf","00000000"]}"#,
        )
        .expect_err("bad hex");
        assert_eq!(err.id(), Some(&Id::Int(7)));
        assert_eq!(
            err.kind(),
            &ParseErrorKind::BadHex {
                field: "extranonce2"
            }
        );
    }

    #[test]
    fn null_result_is_still_a_response() {
        let Ok(Message::Response(r)) =
            Message::parse(br#"{"id":3,"result":null,"error":[21,"Job not found",null]}"#)
        else {
            panic!("not a response")
        };
        assert_eq!(r.result, ResultValue::Null);
        assert_eq!(
            r.error,
            Some(RpcError::Array {
                code: 21,
                message: "Job not found".into(),
                data: None
            })
        );
        assert!(!r.is_accepted());
    }
}
