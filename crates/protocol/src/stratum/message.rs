//! The typed Stratum V1 messages, both directions.

use super::hexfield::Extranonce2;
use super::id::Id;

/// One line of Stratum V1: a method call (request or notification) or a response.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A line with a `method`: a miner's request or a pool's notification (id `null`).
    Request(Request),
    /// A line with `result`/`error` and no `method`: the answer to a request.
    Response(Response),
}

/// A method call with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The id to echo in the answer; [`Id::Null`] for notifications.
    pub id: Id,
    /// The method and its decoded params.
    pub method: Method,
}

/// Every method a farm sees, with its params decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// `mining.subscribe` (miner → pool).
    Subscribe(Subscribe),
    /// `mining.authorize` (miner → pool).
    Authorize(Authorize),
    /// `mining.configure`, BIP310 (miner → pool).
    Configure(Configure),
    /// `mining.extranonce.subscribe`: the miner accepts `mining.set_extranonce` (miner → pool).
    ExtranonceSubscribe,
    /// `mining.suggest_difficulty` (miner → pool).
    SuggestDifficulty(f64),
    /// `mining.submit` (miner → pool), the hot path.
    Submit(Submit),
    /// `mining.notify` (pool → miner), the other hot path.
    Notify(Notify),
    /// `mining.set_difficulty` (pool → miner).
    SetDifficulty(f64),
    /// `mining.set_extranonce` (pool → miner).
    SetExtranonce(SetExtranonce),
    /// `mining.set_version_mask`, BIP310 (pool → miner).
    SetVersionMask(u32),
    /// `client.reconnect` (pool → miner).
    Reconnect(Reconnect),
    /// `client.get_version` (pool → miner).
    GetVersion,
    /// `client.show_message` (pool → miner).
    ShowMessage(String),
    /// Any other method: kept so the caller can answer with an error instead of hanging up.
    Unknown {
        /// The method name as sent.
        name: String,
        /// The params' raw JSON text (`[]` when absent), to forward or log.
        params: Box<str>,
    },
}

/// `mining.subscribe` params: `[user_agent?, session_id?, ...]`; host/port extras are ignored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Subscribe {
    /// Miner software and version, e.g. `cpuminer/2.5.1`; a per-miner stats label.
    pub user_agent: Option<String>,
    /// An extranonce1 the miner asks to resume (may be `null` on the wire).
    pub session_id: Option<String>,
}

/// `mining.authorize` params: `[user, password?]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Authorize {
    /// Worker name, usually `account.worker`.
    pub user: String,
    /// Password; most pools ignore it, some miners omit it or send `null`.
    pub password: Option<String>,
}

/// `mining.configure` params: `[[extension, ...], {extension.param: value, ...}]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Configure {
    /// `version-rolling` requested, with its optional mask and min-bit-count.
    pub version_rolling: Option<VersionRolling>,
    /// `minimum-difficulty` requested, with `minimum-difficulty.value`.
    pub minimum_difficulty: Option<f64>,
    /// `subscribe-extranonce` requested (the BIP310 spelling of extranonce.subscribe).
    pub subscribe_extranonce: bool,
    /// Extension names not understood here, kept so the answer can refuse each one.
    pub unknown: Vec<String>,
}

/// BIP310 version-rolling request params.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VersionRolling {
    /// `version-rolling.mask`: the bits the miner wants to roll.
    pub mask: Option<u32>,
    /// `version-rolling.min-bit-count`: the fewest bits it can live with.
    pub min_bit_count: Option<u32>,
}

/// `mining.submit` params: `[worker, job_id, extranonce2, ntime, nonce, version_bits?]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// Worker name as authorized.
    pub worker: String,
    /// The job id from the notify this share is for.
    pub job_id: String,
    /// The miner's extranonce2, inline.
    pub extranonce2: Extranonce2,
    /// Block header time, from big-endian hex.
    pub ntime: u32,
    /// Header nonce, from big-endian hex.
    pub nonce: u32,
    /// Rolled version bits (BIP310), from big-endian hex; `None` for 5-param submits.
    pub version_bits: Option<u32>,
}

/// `mining.notify` params:
/// `[job_id, prevhash, coinb1, coinb2, [branch...], version, nbits, ntime, clean_jobs]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Job id that submits refer to.
    pub job_id: String,
    /// The previous block hash exactly as the wire hex decodes: Stratum's order, which is
    /// the header's byte order with each 4-byte word reversed. The validator converts it.
    pub prevhash: [u8; 32],
    /// Coinbase transaction bytes before extranonce1 ‖ extranonce2.
    pub coinb1: Vec<u8>,
    /// Coinbase transaction bytes after the extranonces.
    pub coinb2: Vec<u8>,
    /// Merkle branch hashes, bytes as on the wire (internal byte order).
    pub merkle_branch: Vec<[u8; 32]>,
    /// Block version, from big-endian hex.
    pub version: u32,
    /// Compact network target, from big-endian hex.
    pub nbits: u32,
    /// Block time, from big-endian hex.
    pub ntime: u32,
    /// Whether earlier jobs are void (new prevhash or pool switch).
    pub clean_jobs: bool,
}

/// `mining.set_extranonce` params: `[extranonce1, extranonce2_size]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetExtranonce {
    /// The new extranonce1.
    pub extranonce1: Vec<u8>,
    /// The new extranonce2 size in bytes.
    pub extranonce2_size: usize,
}

/// `client.reconnect` params: `[host?, port?, wait_seconds?]`; empty means "same place".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reconnect {
    /// Host to reconnect to.
    pub host: Option<String>,
    /// Port (numbers and numeric strings both occur on the wire).
    pub port: Option<u16>,
    /// Seconds to wait before reconnecting.
    pub wait_seconds: Option<u64>,
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The id of the request answered, echoed verbatim.
    pub id: Id,
    /// The `result` member.
    pub result: ResultValue,
    /// The `error` member; `None` when it is `null` or absent.
    pub error: Option<RpcError>,
    /// ckpool's `reject-reason`, sent with `result:false` and `error:null`.
    pub reject_reason: Option<String>,
}

impl Response {
    /// An answer with a result and no error.
    pub fn ok(id: Id, result: ResultValue) -> Self {
        Self {
            id,
            result,
            error: None,
            reject_reason: None,
        }
    }

    /// `result:true`: an accepted share or authorization.
    pub fn accepted(id: Id) -> Self {
        Self::ok(id, ResultValue::Bool(true))
    }

    /// `result:false` with the classic `[code, "message", null]` error miners understand.
    pub fn rejected(id: Id, code: i64, message: impl Into<String>) -> Self {
        Self {
            id,
            result: ResultValue::Bool(false),
            error: Some(RpcError::Array {
                code,
                message: message.into(),
                data: None,
            }),
            reject_reason: None,
        }
    }

    /// Whether a submit or authorize was accepted: only `result:true` with no error counts;
    /// `result:false` is a reject whatever shape `error` has.
    pub fn is_accepted(&self) -> bool {
        self.error.is_none() && self.result == ResultValue::Bool(true)
    }

    /// The best reject reason available: the error's message, else `reject-reason`.
    pub fn reject_message(&self) -> Option<&str> {
        self.error
            .as_ref()
            .and_then(RpcError::message)
            .or(self.reject_reason.as_deref())
    }
}

/// A `result` value, recognised by its shape since a line alone does not say which request
/// it answers.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultValue {
    /// `null` (or absent).
    Null,
    /// `true` / `false`: authorize, submit, extranonce.subscribe answers.
    Bool(bool),
    /// The subscribe answer `[[["mining.notify","id"],...],"extranonce1",extranonce2_size]`.
    Subscribe(SubscribeResult),
    /// The BIP310 configure answer object.
    Configure(ConfigureResult),
    /// A string, e.g. the answer to `client.get_version`.
    Text(String),
    /// Any other shape, kept as raw JSON text.
    Other(Box<str>),
}

/// The subscribe answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeResult {
    /// `(method, subscription id)` pairs, e.g. `("mining.notify", "6b052ee0")`.
    pub subscriptions: Vec<(String, String)>,
    /// The extranonce1 the pool assigned.
    pub extranonce1: Vec<u8>,
    /// How many extranonce2 bytes the miner must send.
    pub extranonce2_size: usize,
}

/// The BIP310 configure answer: one entry per extension answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigureResult {
    /// `version-rolling`: accepted or not.
    pub version_rolling: Option<bool>,
    /// `version-rolling.mask`: the mask granted.
    pub version_rolling_mask: Option<u32>,
    /// `version-rolling.min-bit-count`, echoed by some pools.
    pub version_rolling_min_bit_count: Option<u32>,
    /// `minimum-difficulty`: accepted or not.
    pub minimum_difficulty: Option<bool>,
    /// `subscribe-extranonce`: accepted or not.
    pub subscribe_extranonce: Option<bool>,
}

/// An `error` value in each shape pools send.
#[derive(Debug, Clone, PartialEq)]
pub enum RpcError {
    /// `[code, "message", data]` (the classic Stratum shape); `data` raw JSON, `None` if null.
    Array {
        /// Stratum error code (20 other, 21 stale job, 22 duplicate, 23 low difficulty, ...).
        code: i64,
        /// Human-readable message.
        message: String,
        /// Extra data as raw JSON text (often a traceback), `None` when `null`.
        data: Option<Box<str>>,
    },
    /// `{"code": .., "message": ..}` (JSON-RPC 2.0 style).
    Object {
        /// Error code.
        code: i64,
        /// Human-readable message.
        message: String,
    },
    /// A bare string, e.g. ckpool's `"Worker mismatch"`.
    Text(String),
    /// Any other shape, kept as raw JSON text.
    Other(Box<str>),
}

impl RpcError {
    /// The numeric code, when the shape has one.
    pub fn code(&self) -> Option<i64> {
        match self {
            RpcError::Array { code, .. } | RpcError::Object { code, .. } => Some(*code),
            RpcError::Text(_) | RpcError::Other(_) => None,
        }
    }

    /// The message, when the shape has one.
    pub fn message(&self) -> Option<&str> {
        match self {
            RpcError::Array { message, .. } | RpcError::Object { message, .. } => Some(message),
            RpcError::Text(text) => Some(text),
            RpcError::Other(_) => None,
        }
    }
}

/// Stratum method names, shared by parser and encoder.
pub(crate) mod names {
    pub(crate) const SUBSCRIBE: &str = "mining.subscribe";
    pub(crate) const AUTHORIZE: &str = "mining.authorize";
    pub(crate) const CONFIGURE: &str = "mining.configure";
    pub(crate) const EXTRANONCE_SUBSCRIBE: &str = "mining.extranonce.subscribe";
    pub(crate) const SUGGEST_DIFFICULTY: &str = "mining.suggest_difficulty";
    pub(crate) const SUBMIT: &str = "mining.submit";
    pub(crate) const NOTIFY: &str = "mining.notify";
    pub(crate) const SET_DIFFICULTY: &str = "mining.set_difficulty";
    pub(crate) const SET_EXTRANONCE: &str = "mining.set_extranonce";
    pub(crate) const SET_VERSION_MASK: &str = "mining.set_version_mask";
    pub(crate) const RECONNECT: &str = "client.reconnect";
    pub(crate) const GET_VERSION: &str = "client.get_version";
    pub(crate) const SHOW_MESSAGE: &str = "client.show_message";
}

impl Method {
    /// The Stratum method name.
    pub fn name(&self) -> &str {
        match self {
            Method::Subscribe(_) => names::SUBSCRIBE,
            Method::Authorize(_) => names::AUTHORIZE,
            Method::Configure(_) => names::CONFIGURE,
            Method::ExtranonceSubscribe => names::EXTRANONCE_SUBSCRIBE,
            Method::SuggestDifficulty(_) => names::SUGGEST_DIFFICULTY,
            Method::Submit(_) => names::SUBMIT,
            Method::Notify(_) => names::NOTIFY,
            Method::SetDifficulty(_) => names::SET_DIFFICULTY,
            Method::SetExtranonce(_) => names::SET_EXTRANONCE,
            Method::SetVersionMask(_) => names::SET_VERSION_MASK,
            Method::Reconnect(_) => names::RECONNECT,
            Method::GetVersion => names::GET_VERSION,
            Method::ShowMessage(_) => names::SHOW_MESSAGE,
            Method::Unknown { name, .. } => name,
        }
    }
}

/// A pool's job as the validator takes it: the same fields, named for the job.
impl From<Notify> for crate::work::JobTemplate {
    fn from(n: Notify) -> Self {
        crate::work::JobTemplate {
            id: n.job_id,
            prevhash: n.prevhash,
            coinb1: n.coinb1,
            coinb2: n.coinb2,
            merkle_branch: n.merkle_branch,
            version: n.version,
            nbits: n.nbits,
            ntime: n.ntime,
            clean_jobs: n.clean_jobs,
        }
    }
}
