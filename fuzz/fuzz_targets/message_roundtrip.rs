#![no_main]
//! Arbitrary well-formed messages: `parse(encode(m)) == m` for every kind.

use arbitrary::{Result, Unstructured};
use hashgate_protocol::stratum::{
    Authorize, Configure, ConfigureResult, Extranonce2, Id, Message, Method, Notify, Reconnect, Request, Response,
    ResultValue, RpcError, SetExtranonce, Submit, Subscribe, SubscribeResult, VersionRolling,
};
use libfuzzer_sys::fuzz_target;

const KNOWN_EXTENSIONS: [&str; 3] = ["version-rolling", "minimum-difficulty", "subscribe-extranonce"];

fn id(u: &mut Unstructured<'_>) -> Result<Id> {
    Ok(match u.int_in_range(0..=3)? {
        0 => Id::Null,
        1 => Id::Int(u.arbitrary()?),
        // A negative number keeps its source text.
        2 => Id::Number(format!("-{}", u.arbitrary::<u32>()?).into()),
        _ => Id::from_text(&u.arbitrary::<String>()?),
    })
}

/// A positive finite difficulty.
fn difficulty(u: &mut Unstructured<'_>) -> Result<f64> {
    let d: f64 = u.arbitrary()?;
    Ok(if d.is_finite() && d > 0.0 { d } else { 1.0 })
}

fn finite(u: &mut Unstructured<'_>) -> Result<f64> {
    let d: f64 = u.arbitrary()?;
    Ok(if d.is_finite() { d } else { 0.5 })
}

fn method(u: &mut Unstructured<'_>) -> Result<Method> {
    Ok(match u.int_in_range(0..=13)? {
        0 => Method::Subscribe(Subscribe { user_agent: u.arbitrary()?, session_id: u.arbitrary()? }),
        1 => Method::Authorize(Authorize { user: u.arbitrary()?, password: u.arbitrary()? }),
        2 => Method::Configure(Configure {
            version_rolling: if u.arbitrary()? {
                Some(VersionRolling { mask: u.arbitrary()?, min_bit_count: u.arbitrary()? })
            } else {
                None
            },
            minimum_difficulty: if u.arbitrary()? { Some(finite(u)?) } else { None },
            subscribe_extranonce: u.arbitrary()?,
            unknown: u
                .arbitrary::<Vec<String>>()?
                .into_iter()
                .filter(|name| !KNOWN_EXTENSIONS.contains(&name.as_str()))
                .collect(),
        }),
        3 => Method::ExtranonceSubscribe,
        4 => Method::SuggestDifficulty(difficulty(u)?),
        5 => {
            let len = u.int_in_range(0..=32)?;
            Method::Submit(Submit {
                worker: u.arbitrary()?,
                job_id: u.arbitrary()?,
                extranonce2: Extranonce2::new(u.bytes(len)?).expect("at most 32 bytes"),
                ntime: u.arbitrary()?,
                nonce: u.arbitrary()?,
                version_bits: u.arbitrary()?,
            })
        }
        6 => Method::Notify(Notify {
            job_id: u.arbitrary()?,
            prevhash: u.arbitrary()?,
            coinb1: u.arbitrary()?,
            coinb2: u.arbitrary()?,
            merkle_branch: u.arbitrary()?,
            version: u.arbitrary()?,
            nbits: u.arbitrary()?,
            ntime: u.arbitrary()?,
            clean_jobs: u.arbitrary()?,
        }),
        7 => Method::SetDifficulty(difficulty(u)?),
        8 => Method::SetExtranonce(SetExtranonce {
            extranonce1: u.arbitrary()?,
            extranonce2_size: u.arbitrary::<u32>()? as usize,
        }),
        9 => Method::SetVersionMask(u.arbitrary()?),
        10 => Method::Reconnect(Reconnect { host: u.arbitrary()?, port: u.arbitrary()?, wait_seconds: u.arbitrary()? }),
        11 => Method::GetVersion,
        12 => Method::ShowMessage(u.arbitrary()?),
        _ => {
            let name: String = u.arbitrary()?;
            // Names of known methods would parse as those methods.
            if name.starts_with("mining.") || name.starts_with("client.") {
                return Ok(Method::GetVersion);
            }
            let numbers: Vec<i32> = u.arbitrary()?;
            let params = format!("[{}]", numbers.iter().map(i32::to_string).collect::<Vec<_>>().join(","));
            Method::Unknown { name, params: params.into() }
        }
    })
}

fn result(u: &mut Unstructured<'_>) -> Result<ResultValue> {
    Ok(match u.int_in_range(0..=5)? {
        0 => ResultValue::Null,
        1 => ResultValue::Bool(u.arbitrary()?),
        2 => ResultValue::Subscribe(SubscribeResult {
            subscriptions: u.arbitrary()?,
            extranonce1: u.arbitrary()?,
            extranonce2_size: u.arbitrary::<u32>()? as usize,
        }),
        3 => ResultValue::Configure(ConfigureResult {
            version_rolling: u.arbitrary()?,
            version_rolling_mask: u.arbitrary()?,
            version_rolling_min_bit_count: u.arbitrary()?,
            minimum_difficulty: u.arbitrary()?,
            subscribe_extranonce: u.arbitrary()?,
        }),
        4 => ResultValue::Text(u.arbitrary()?),
        _ => ResultValue::Other(format!("[{},{}]", u.arbitrary::<i32>()?, u.arbitrary::<i32>()?).into()),
    })
}

fn error(u: &mut Unstructured<'_>) -> Result<Option<RpcError>> {
    Ok(match u.int_in_range(0..=3)? {
        0 => None,
        1 => Some(RpcError::Array {
            code: u.arbitrary()?,
            message: u.arbitrary()?,
            data: if u.arbitrary()? { Some(u.arbitrary::<i32>()?.to_string().into()) } else { None },
        }),
        2 => Some(RpcError::Object { code: u.arbitrary()?, message: u.arbitrary()? }),
        _ => Some(RpcError::Text(u.arbitrary()?)),
    })
}

fn message(u: &mut Unstructured<'_>) -> Result<Message> {
    Ok(if u.arbitrary()? {
        Message::Request(Request { id: id(u)?, method: method(u)? })
    } else {
        Message::Response(Response { id: id(u)?, result: result(u)?, error: error(u)?, reject_reason: u.arbitrary()? })
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(msg) = message(&mut u) else { return };
    let bytes = msg.to_bytes();
    let line = bytes.strip_suffix(b"\n").expect("encoded lines end in a newline");
    assert!(!line.contains(&b'\n'));
    let again = Message::parse(line).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)));
    assert_eq!(again, msg);
});
