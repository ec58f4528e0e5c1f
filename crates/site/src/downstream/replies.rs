//! Encoding the proxy's lines to a miner: answers, difficulty, extranonce, reconnect.

use bytes::Bytes;

use hashgate_protocol::stratum::{
    Id, Message, Method, Reconnect, Request, Response, ResultValue, RpcError, SetExtranonce,
};
use hashgate_protocol::work::ShareReject;

/// `{"id":..,"result":<result>,"error":null}`.
pub(super) fn result(id: Id, result: ResultValue) -> Bytes {
    Message::Response(Response {
        id,
        result,
        error: None,
        reject_reason: None,
    })
    .to_bytes()
}

/// `{"id":..,"result":true,"error":null}`.
pub(super) fn accepted(id: Id) -> Bytes {
    result(id, ResultValue::Bool(true))
}

/// `{"id":..,"result":false,"error":[code,"reason",null]}` for a refused share.
pub(super) fn rejected(id: Id, reason: ShareReject) -> Bytes {
    refused(id, i64::from(reason.code()), reason.reason())
}

/// `{"id":..,"result":false,"error":[code,"message",null]}` for a refused request.
pub(super) fn refused(id: Id, code: i64, message: &str) -> Bytes {
    answer_error(id, ResultValue::Bool(false), code, message)
}

/// `{"id":..,"result":null,"error":[code,"message",null]}` for a request that could not be
/// carried out at all (unknown method, malformed line).
pub(super) fn failed(id: Id, code: i64, message: &str) -> Bytes {
    answer_error(id, ResultValue::Null, code, message)
}

fn answer_error(id: Id, result: ResultValue, code: i64, message: &str) -> Bytes {
    Message::Response(Response {
        id,
        result,
        error: Some(RpcError::Array {
            code,
            message: message.to_owned(),
            data: None,
        }),
        reject_reason: None,
    })
    .to_bytes()
}

fn notification(method: Method) -> Bytes {
    Message::Request(Request {
        id: Id::Null,
        method,
    })
    .to_bytes()
}

/// `mining.set_difficulty`.
pub(super) fn set_difficulty(difficulty: f64) -> Bytes {
    notification(Method::SetDifficulty(difficulty))
}

/// `mining.set_extranonce`.
pub(super) fn set_extranonce(extranonce1: &[u8], extranonce2_size: usize) -> Bytes {
    notification(Method::SetExtranonce(SetExtranonce {
        extranonce1: extranonce1.to_vec(),
        extranonce2_size,
    }))
}

/// `mining.set_version_mask`.
pub(super) fn set_version_mask(mask: u32) -> Bytes {
    notification(Method::SetVersionMask(mask))
}

/// `client.reconnect` with no params: come back to the same address.
pub(super) fn reconnect() -> Bytes {
    notification(Method::Reconnect(Reconnect::default()))
}
