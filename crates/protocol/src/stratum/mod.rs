//! Stratum V1 wire messages and the bounded line codec.
//!
//! One JSON object per `\n`-terminated line. [`Message::parse`] turns a line into a typed
//! [`Message`]; [`Message::encode_into`] / [`Message::to_bytes`] write one back;
//! [`StratumCodec`] frames a byte stream with a hard line-length cap and yields
//! `Result<Message, ParseError>` per line, so a bad line never ends the stream.
//!
//! # Message shapes
//!
//! | method | direction | params | typed as |
//! |---|---|---|---|
//! | `mining.subscribe` | miner → pool | `[agent?, session?]` | [`Subscribe`] |
//! | `mining.authorize` | miner → pool | `[user, password?]` | [`Authorize`] |
//! | `mining.configure` | miner → pool | `[[ext...], {"version-rolling.mask": hex, ...}]` | [`Configure`] |
//! | `mining.extranonce.subscribe` | miner → pool | `[]` | [`Method::ExtranonceSubscribe`] |
//! | `mining.suggest_difficulty` | miner → pool | `[diff]` | [`Method::SuggestDifficulty`] |
//! | `mining.submit` | miner → pool | `[worker, job, en2 hex, ntime hex, nonce hex, vbits hex?]` | [`Submit`] |
//! | `mining.notify` | pool → miner | `[job, prevhash, coinb1, coinb2, [branch], version, nbits, ntime, clean]` | [`Notify`] |
//! | `mining.set_difficulty` | pool → miner | `[diff]` | [`Method::SetDifficulty`] |
//! | `mining.set_extranonce` | pool → miner | `[en1 hex, en2 size]` | [`SetExtranonce`] |
//! | `mining.set_version_mask` | pool → miner | `[mask hex]` | [`Method::SetVersionMask`] |
//! | `client.reconnect` | pool → miner | `[host?, port?, wait?]` | [`Reconnect`] |
//! | `client.get_version` | pool → miner | `[]` | [`Method::GetVersion`] |
//! | `client.show_message` | pool → miner | `[text]` | [`Method::ShowMessage`] |
//! | anything else | either | kept raw | [`Method::Unknown`] |
//!
//! | response member | shapes accepted | typed as |
//! |---|---|---|
//! | `result` | `null`, `true`/`false`, subscribe `[[["mining.notify","id"],...],"en1",size]`, configure object, string | [`ResultValue`] |
//! | `error` | `null`, `[code,"msg",data]`, `{"code":..,"message":..}`, `"bare string"` | [`RpcError`] |
//! | `reject-reason` | string (ckpool, with `error:null`) | [`Response::reject_reason`] |
//!
//! Byte orders: 32-bit fields are big-endian hex (`"6b052edf"` = `0x6b052edf`).
//! `prevhash` is kept exactly as its hex decodes, which is Stratum's word-swapped order
//! (each 4-byte word of the header's prevhash reversed); the share validator converts it.
//! Ids are echoed verbatim (see [`Id`]).

mod codec;
mod encode;
mod error;
mod hexfield;
mod id;
mod message;
mod params;
mod parse;
mod response;

pub use codec::{DEFAULT_MAX_LINE, StratumCodec};
pub use error::{CodecError, ParseError, ParseErrorKind};
pub use hexfield::{EXTRANONCE2_MAX, Extranonce2};
pub use id::Id;
pub use message::{
    Authorize, Configure, ConfigureResult, Message, Method, Notify, Reconnect, Request, Response,
    ResultValue, RpcError, SetExtranonce, Submit, Subscribe, SubscribeResult, VersionRolling,
};
