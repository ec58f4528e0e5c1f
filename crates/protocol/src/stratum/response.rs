//! Parsing `result` and `error` members by their shape.
//!
//! A response line does not say which request it answers, so results are recognised by
//! shape; anything unexpected is kept as raw JSON ([`ResultValue::Other`],
//! [`RpcError::Other`]) rather than refused, because a pool's odd answer must not cost
//! the connection.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::ParseErrorKind;
use super::hexfield::{decode_u32, decode_vec};
use super::message::{ConfigureResult, ResultValue, RpcError, SubscribeResult};
use super::params::{boolean, is_null, opt_string, string, unsigned_as};

/// The decoded `result`, `error` and `reject-reason` of a response.
pub(crate) type ResponseParts = (ResultValue, Option<RpcError>, Option<String>);

/// Decodes the three response members.
///
/// # Errors
/// [`ParseErrorKind::WrongType`] when `reject-reason` is neither a string nor null.
pub(crate) fn parse_response(
    result: Option<&str>,
    error: Option<&str>,
    reject_reason: Option<&str>,
) -> Result<ResponseParts, ParseErrorKind> {
    let result = result.map_or(ResultValue::Null, parse_result);
    let error = error.and_then(parse_error);
    let reject_reason = opt_string(reject_reason, "reject-reason")?.map(String::from);
    Ok((result, error, reject_reason))
}

fn parse_result(raw: &str) -> ResultValue {
    let text = raw;
    let other = || ResultValue::Other(text.into());
    match text.as_bytes().first() {
        Some(b'n') => ResultValue::Null,
        Some(b't' | b'f') => boolean(raw, "result").map_or_else(|_| other(), ResultValue::Bool),
        Some(b'"') => {
            string(raw, "result").map_or_else(|_| other(), |s| ResultValue::Text(s.into_owned()))
        }
        Some(b'[') => parse_subscribe_result(raw).map_or_else(other, ResultValue::Subscribe),
        Some(b'{') => parse_configure_result(raw).map_or_else(other, ResultValue::Configure),
        _ => other(),
    }
}

/// `[subscriptions, extranonce1, extranonce2_size]`, where subscriptions is a list of
/// `[method, id]` pairs, (older pools) a single pair, or `null` (pools that do not offer
/// resuming a subscription; the extranonce is all a proxy needs from the answer).
fn parse_subscribe_result(raw: &str) -> Option<SubscribeResult> {
    let (subs, extranonce1, size): (&RawValue, &RawValue, &RawValue) =
        serde_json::from_str(raw).ok()?;
    let (subs, extranonce1, size) = (subs.get(), extranonce1.get(), size.get());
    let pairs: Vec<&RawValue> = if is_null(subs) {
        Vec::new()
    } else {
        serde_json::from_str(subs).ok()?
    };
    let pair = |p: &str| -> Option<(String, String)> {
        let (method, id): (&RawValue, &RawValue) = serde_json::from_str(p).ok()?;
        let (method, id) = (method.get(), id.get());
        Some((
            string(method, "subscription").ok()?.into_owned(),
            string(id, "subscription").ok()?.into_owned(),
        ))
    };
    let subscriptions = if pairs.first().is_some_and(|p| p.get().starts_with('"')) {
        vec![pair(subs)?]
    } else {
        pairs
            .into_iter()
            .map(|p| pair(p.get()))
            .collect::<Option<Vec<_>>>()?
    };
    Some(SubscribeResult {
        subscriptions,
        extranonce1: decode_vec("extranonce1", &string(extranonce1, "extranonce1").ok()?).ok()?,
        extranonce2_size: unsigned_as::<usize>(size, "extranonce2_size").ok()?,
    })
}

/// The BIP310 answer members this proxy understands; others are ignored.
#[derive(Deserialize)]
struct RawConfigureResult<'a> {
    #[serde(default, rename = "version-rolling")]
    version_rolling: Option<bool>,
    #[serde(borrow, default, rename = "version-rolling.mask")]
    mask: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "version-rolling.min-bit-count")]
    min_bit_count: Option<&'a RawValue>,
    #[serde(default, rename = "minimum-difficulty")]
    minimum_difficulty: Option<bool>,
    #[serde(default, rename = "subscribe-extranonce")]
    subscribe_extranonce: Option<bool>,
}

fn parse_configure_result(raw: &str) -> Option<ConfigureResult> {
    let r: RawConfigureResult<'_> = serde_json::from_str(raw).ok()?;
    let mask = match r.mask {
        Some(v) => Some(
            decode_u32(
                "version-rolling.mask",
                &string(v.get(), "version-rolling.mask").ok()?,
            )
            .ok()?,
        ),
        None => None,
    };
    let min_bit_count = match r.min_bit_count {
        Some(v) => Some(unsigned_as::<u32>(v.get(), "version-rolling.min-bit-count").ok()?),
        None => None,
    };
    Some(ConfigureResult {
        version_rolling: r.version_rolling,
        version_rolling_mask: mask,
        version_rolling_min_bit_count: min_bit_count,
        minimum_difficulty: r.minimum_difficulty,
        subscribe_extranonce: r.subscribe_extranonce,
    })
}

/// `None` for `null`; otherwise the error in whichever shape the pool used.
fn parse_error(raw: &str) -> Option<RpcError> {
    if is_null(raw) {
        return None;
    }
    let text = raw;
    let other = || RpcError::Other(text.into());
    Some(match text.as_bytes().first() {
        Some(b'"') => {
            string(raw, "error").map_or_else(|_| other(), |s| RpcError::Text(s.into_owned()))
        }
        Some(b'[') => parse_array_error(raw).unwrap_or_else(other),
        Some(b'{') => parse_object_error(raw).unwrap_or_else(other),
        _ => other(),
    })
}

fn parse_array_error(raw: &str) -> Option<RpcError> {
    let items: Vec<&RawValue> = serde_json::from_str(raw).ok()?;
    let [code, message, rest @ ..] = items.as_slice() else {
        return None;
    };
    let data = match rest {
        [] => None,
        [data] if is_null(data.get()) => None,
        [data] => Some(data.get().into()),
        _ => return None,
    };
    Some(RpcError::Array {
        code: serde_json::from_str(code.get()).ok()?,
        message: string(message.get(), "error").ok()?.into_owned(),
        data,
    })
}

#[derive(Deserialize)]
struct RawObjectError<'a> {
    code: i64,
    #[serde(borrow)]
    message: &'a RawValue,
}

fn parse_object_error(raw: &str) -> Option<RpcError> {
    let e: RawObjectError<'_> = serde_json::from_str(raw).ok()?;
    Some(RpcError::Object {
        code: e.code,
        message: string(e.message.get(), "error").ok()?.into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscribe_answer_with_null_subscriptions_still_gives_the_extranonce() {
        let parsed = parse_result(r#"[null,"08000002",4]"#);
        let ResultValue::Subscribe(result) = parsed else {
            panic!("not a subscribe result: {parsed:?}");
        };
        assert!(result.subscriptions.is_empty());
        assert_eq!(result.extranonce1, vec![8, 0, 0, 2]);
        assert_eq!(result.extranonce2_size, 4);
    }

    #[test]
    fn subscriptions_as_pairs_or_one_pair_and_odd_shapes_stay_raw() {
        let ResultValue::Subscribe(many) =
            parse_result(r#"[[["mining.set_difficulty","a"],["mining.notify","b"]],"ff",8]"#)
        else {
            panic!("pairs");
        };
        assert_eq!(many.subscriptions.len(), 2);
        let ResultValue::Subscribe(one) = parse_result(r#"[["mining.notify","b"],"ff",8]"#) else {
            panic!("one pair");
        };
        assert_eq!(
            one.subscriptions,
            vec![("mining.notify".into(), "b".into())]
        );
        assert!(matches!(
            parse_result(r#"[1,"ff",8]"#),
            ResultValue::Other(_)
        ));
        assert!(matches!(
            parse_result(r#"[null,"zz",8]"#),
            ResultValue::Other(_)
        ));
    }
}
