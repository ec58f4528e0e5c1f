//! Writing messages as newline-terminated JSON lines straight into a `BytesMut`.
//!
//! Output is compact JSON in a fixed member order (`id`, `method`, `params` for calls;
//! `id`, `result`, `error` and `reject-reason` when set, for responses). Hex is lowercase;
//! 32-bit fields are 8 big-endian hex digits. A notify meant for thousands of miners is
//! encoded once with [`Message::to_bytes`] and the `Bytes` shared.

use bytes::{BufMut, Bytes, BytesMut};

use super::hexfield::{put_hex, put_hex_u32};
use super::message::{
    ConfigureResult, Message, Method, Notify, Request, Response, ResultValue, RpcError, Submit,
    SubscribeResult,
};

impl Message {
    /// Appends the message as one JSON line ending in `\n`.
    pub fn encode_into(&self, buf: &mut BytesMut) {
        match self {
            Message::Request(request) => request.encode_into(buf),
            Message::Response(response) => response.encode_into(buf),
        }
        buf.put_u8(b'\n');
    }

    /// Encodes the message once into shareable bytes (cloning `Bytes` is a refcount bump).
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len_hint());
        self.encode_into(&mut buf);
        buf.freeze()
    }

    /// A capacity guess that avoids regrowth for the large messages (notify).
    fn encoded_len_hint(&self) -> usize {
        match self {
            Message::Request(Request {
                method: Method::Notify(n),
                ..
            }) => {
                256 + 2 * (n.coinb1.len() + n.coinb2.len() + n.job_id.len())
                    + 67 * n.merkle_branch.len()
            }
            _ => 256,
        }
    }
}

impl Request {
    fn encode_into(&self, buf: &mut BytesMut) {
        buf.put_slice(b"{\"id\":");
        self.id.encode_into(buf);
        buf.put_slice(b",\"method\":");
        put_str(buf, self.method.name());
        buf.put_slice(b",\"params\":");
        encode_params(&self.method, buf);
        buf.put_u8(b'}');
    }
}

fn encode_params(method: &Method, buf: &mut BytesMut) {
    match method {
        Method::Submit(submit) => encode_submit(submit, buf),
        Method::Notify(notify) => encode_notify(notify, buf),
        Method::SetDifficulty(d) | Method::SuggestDifficulty(d) => {
            buf.put_u8(b'[');
            put_f64(buf, *d);
            buf.put_u8(b']');
        }
        Method::Subscribe(s) => {
            buf.put_u8(b'[');
            // A session id needs a user agent before it; write null if the agent is unknown.
            match (&s.user_agent, &s.session_id) {
                (None, None) => {}
                (agent, None) => put_opt_str(buf, agent.as_deref()),
                (agent, Some(session)) => {
                    put_opt_str(buf, agent.as_deref());
                    buf.put_u8(b',');
                    put_str(buf, session);
                }
            }
            buf.put_u8(b']');
        }
        Method::Authorize(a) => {
            buf.put_u8(b'[');
            put_str(buf, &a.user);
            if let Some(password) = &a.password {
                buf.put_u8(b',');
                put_str(buf, password);
            }
            buf.put_u8(b']');
        }
        Method::Configure(c) => {
            let mut names: Vec<&str> = Vec::with_capacity(3 + c.unknown.len());
            if c.version_rolling.is_some() {
                names.push("version-rolling");
            }
            if c.minimum_difficulty.is_some() {
                names.push("minimum-difficulty");
            }
            if c.subscribe_extranonce {
                names.push("subscribe-extranonce");
            }
            names.extend(c.unknown.iter().map(String::as_str));
            buf.put_u8(b'[');
            put_array(buf, names, put_str);
            buf.put_slice(b",{");
            let mut members = Members::default();
            if let Some(vr) = &c.version_rolling {
                if let Some(mask) = vr.mask {
                    members.key(buf, "version-rolling.mask");
                    put_hex_str_u32(buf, mask);
                }
                if let Some(bits) = vr.min_bit_count {
                    members.key(buf, "version-rolling.min-bit-count");
                    put_u64(buf, u64::from(bits));
                }
            }
            if let Some(d) = c.minimum_difficulty {
                members.key(buf, "minimum-difficulty.value");
                put_f64(buf, d);
            }
            buf.put_slice(b"}]");
        }
        Method::SetExtranonce(s) => {
            buf.put_u8(b'[');
            put_hex_str(buf, &s.extranonce1);
            buf.put_u8(b',');
            put_u64(buf, s.extranonce2_size as u64);
            buf.put_u8(b']');
        }
        Method::SetVersionMask(mask) => {
            buf.put_u8(b'[');
            put_hex_str_u32(buf, *mask);
            buf.put_u8(b']');
        }
        Method::Reconnect(r) => {
            buf.put_u8(b'[');
            // Positional params: a later one forces the earlier ones out as null.
            let last = if r.wait_seconds.is_some() {
                3
            } else if r.port.is_some() {
                2
            } else {
                usize::from(r.host.is_some())
            };
            if last >= 1 {
                put_opt_str(buf, r.host.as_deref());
            }
            if last >= 2 {
                buf.put_u8(b',');
                match r.port {
                    Some(port) => put_u64(buf, u64::from(port)),
                    None => buf.put_slice(b"null"),
                }
            }
            if let Some(wait) = r.wait_seconds {
                buf.put_u8(b',');
                put_u64(buf, wait);
            }
            buf.put_u8(b']');
        }
        Method::ShowMessage(text) => {
            buf.put_u8(b'[');
            put_str(buf, text);
            buf.put_u8(b']');
        }
        Method::ExtranonceSubscribe | Method::GetVersion => buf.put_slice(b"[]"),
        Method::Unknown { params, .. } => buf.put_slice(params.as_bytes()),
    }
}

fn encode_submit(s: &Submit, buf: &mut BytesMut) {
    buf.put_u8(b'[');
    put_str(buf, &s.worker);
    buf.put_u8(b',');
    put_str(buf, &s.job_id);
    buf.put_u8(b',');
    put_hex_str(buf, s.extranonce2.as_bytes());
    buf.put_u8(b',');
    put_hex_str_u32(buf, s.ntime);
    buf.put_u8(b',');
    put_hex_str_u32(buf, s.nonce);
    if let Some(bits) = s.version_bits {
        buf.put_u8(b',');
        put_hex_str_u32(buf, bits);
    }
    buf.put_u8(b']');
}

fn encode_notify(n: &Notify, buf: &mut BytesMut) {
    buf.put_u8(b'[');
    put_str(buf, &n.job_id);
    buf.put_u8(b',');
    put_hex_str(buf, &n.prevhash);
    buf.put_u8(b',');
    put_hex_str(buf, &n.coinb1);
    buf.put_u8(b',');
    put_hex_str(buf, &n.coinb2);
    buf.put_u8(b',');
    put_array(buf, &n.merkle_branch, |buf, hash| put_hex_str(buf, hash));
    buf.put_u8(b',');
    put_hex_str_u32(buf, n.version);
    buf.put_u8(b',');
    put_hex_str_u32(buf, n.nbits);
    buf.put_u8(b',');
    put_hex_str_u32(buf, n.ntime);
    buf.put_slice(if n.clean_jobs { b",true]" } else { b",false]" });
}

impl Response {
    fn encode_into(&self, buf: &mut BytesMut) {
        buf.put_slice(b"{\"id\":");
        self.id.encode_into(buf);
        buf.put_slice(b",\"result\":");
        encode_result(&self.result, buf);
        buf.put_slice(b",\"error\":");
        match &self.error {
            Some(error) => encode_error(error, buf),
            None => buf.put_slice(b"null"),
        }
        if let Some(reason) = &self.reject_reason {
            buf.put_slice(b",\"reject-reason\":");
            put_str(buf, reason);
        }
        buf.put_u8(b'}');
    }
}

fn encode_result(result: &ResultValue, buf: &mut BytesMut) {
    match result {
        ResultValue::Null => buf.put_slice(b"null"),
        ResultValue::Bool(true) => buf.put_slice(b"true"),
        ResultValue::Bool(false) => buf.put_slice(b"false"),
        ResultValue::Subscribe(s) => encode_subscribe_result(s, buf),
        ResultValue::Configure(c) => encode_configure_result(c, buf),
        ResultValue::Text(text) => put_str(buf, text),
        ResultValue::Other(raw) => buf.put_slice(raw.as_bytes()),
    }
}

fn encode_subscribe_result(s: &SubscribeResult, buf: &mut BytesMut) {
    buf.put_u8(b'[');
    put_array(buf, &s.subscriptions, |buf, (method, id)| {
        put_array(buf, [method, id], |buf, text| put_str(buf, text));
    });
    buf.put_u8(b',');
    put_hex_str(buf, &s.extranonce1);
    buf.put_u8(b',');
    put_u64(buf, s.extranonce2_size as u64);
    buf.put_u8(b']');
}

fn encode_configure_result(c: &ConfigureResult, buf: &mut BytesMut) {
    buf.put_u8(b'{');
    let mut members = Members::default();
    if let Some(v) = c.version_rolling {
        members.key(buf, "version-rolling");
        put_bool(buf, v);
    }
    if let Some(mask) = c.version_rolling_mask {
        members.key(buf, "version-rolling.mask");
        put_hex_str_u32(buf, mask);
    }
    if let Some(bits) = c.version_rolling_min_bit_count {
        members.key(buf, "version-rolling.min-bit-count");
        put_u64(buf, u64::from(bits));
    }
    if let Some(v) = c.minimum_difficulty {
        members.key(buf, "minimum-difficulty");
        put_bool(buf, v);
    }
    if let Some(v) = c.subscribe_extranonce {
        members.key(buf, "subscribe-extranonce");
        put_bool(buf, v);
    }
    buf.put_u8(b'}');
}

fn encode_error(error: &RpcError, buf: &mut BytesMut) {
    match error {
        RpcError::Array {
            code,
            message,
            data,
        } => {
            buf.put_u8(b'[');
            put_i64(buf, *code);
            buf.put_u8(b',');
            put_str(buf, message);
            buf.put_u8(b',');
            buf.put_slice(data.as_deref().unwrap_or("null").as_bytes());
            buf.put_u8(b']');
        }
        RpcError::Object { code, message } => {
            buf.put_slice(b"{\"code\":");
            put_i64(buf, *code);
            buf.put_slice(b",\"message\":");
            put_str(buf, message);
            buf.put_u8(b'}');
        }
        RpcError::Text(text) => put_str(buf, text),
        RpcError::Other(raw) => buf.put_slice(raw.as_bytes()),
    }
}

/// Appends a JSON string, escaping only what JSON requires.
pub(crate) fn put_str(buf: &mut BytesMut, text: &str) {
    buf.put_u8(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        buf.put_slice(bytes.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            buf.put_slice(b"\\u00");
            put_hex(buf, &[b]);
        } else {
            buf.put_slice(escape);
        }
        start = i + 1;
    }
    buf.put_slice(bytes.get(start..).unwrap_or_default());
    buf.put_u8(b'"');
}

/// Appends `[a,b,…]`, each item written by `put`.
fn put_array<I: IntoIterator>(
    buf: &mut BytesMut,
    items: I,
    mut put: impl FnMut(&mut BytesMut, I::Item),
) {
    buf.put_u8(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        put(buf, item);
    }
    buf.put_u8(b']');
}

/// The members of one JSON object being written: a comma goes before every key but the
/// first, wherever optional members are left out.
#[derive(Default)]
struct Members {
    /// Whether a member has been written.
    started: bool,
}

impl Members {
    /// Appends the next member's `"name":` (its value follows).
    fn key(&mut self, buf: &mut BytesMut, name: &str) {
        if std::mem::replace(&mut self.started, true) {
            buf.put_u8(b',');
        }
        put_str(buf, name);
        buf.put_u8(b':');
    }
}

fn put_opt_str(buf: &mut BytesMut, text: Option<&str>) {
    match text {
        Some(text) => put_str(buf, text),
        None => buf.put_slice(b"null"),
    }
}

fn put_bool(buf: &mut BytesMut, value: bool) {
    buf.put_slice(if value { b"true" } else { b"false" });
}

fn put_hex_str(buf: &mut BytesMut, bytes: &[u8]) {
    buf.put_u8(b'"');
    put_hex(buf, bytes);
    buf.put_u8(b'"');
}

fn put_hex_str_u32(buf: &mut BytesMut, value: u32) {
    buf.put_u8(b'"');
    put_hex_u32(buf, value);
    buf.put_u8(b'"');
}

/// Appends a `u64` in decimal without going through `fmt`.
pub(crate) fn put_u64(buf: &mut BytesMut, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            // Cannot truncate: a decimal digit is below 10.
            *d = b'0' + (value % 10) as u8;
        }
        value /= 10;
        if value == 0 || at == 0 {
            break;
        }
    }
    buf.put_slice(digits.get(at..).unwrap_or_default());
}

fn put_i64(buf: &mut BytesMut, value: i64) {
    if value < 0 {
        buf.put_u8(b'-');
    }
    put_u64(buf, value.unsigned_abs());
}

/// Appends a difficulty: whole values without a fraction (`1`, not `1.0`), because some
/// miner firmware reads `set_difficulty` as an integer; others in shortest round-trip form.
fn put_f64(buf: &mut BytesMut, value: f64) {
    if !value.is_finite() {
        // JSON has no infinity or NaN; parsing never yields them, so only a caller's bug lands here.
        buf.put_slice(b"null");
    } else if value.fract() == 0.0 && value.abs() < 9.007_199_254_740_992e15 {
        // Exact: |value| < 2^53 and whole.
        put_i64(buf, value as i64);
    } else {
        let text = serde_json::to_string(&value).unwrap_or_else(|_| String::from("null"));
        buf.put_slice(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut BytesMut)) -> String {
        let mut buf = BytesMut::new();
        f(&mut buf);
        String::from_utf8(buf.to_vec()).expect("encoder writes UTF-8")
    }

    #[test]
    fn strings_escape_what_json_requires() {
        assert_eq!(
            text(|b| put_str(b, "a\"b\\c\n\u{1}é")),
            r#""a\"b\\c\n\u0001é""#
        );
        let decoded: String =
            serde_json::from_str(&text(|b| put_str(b, "x\u{1f}\t\r"))).expect("valid JSON");
        assert_eq!(decoded, "x\u{1f}\t\r");
    }

    #[test]
    fn integers_cover_their_extremes() {
        assert_eq!(text(|b| put_u64(b, 0)), "0");
        assert_eq!(text(|b| put_u64(b, u64::MAX)), u64::MAX.to_string());
        assert_eq!(text(|b| put_i64(b, i64::MIN)), i64::MIN.to_string());
    }

    #[test]
    fn arrays_and_objects_put_commas_only_between() {
        assert_eq!(text(|b| put_array(b, [0u64; 0], put_u64)), "[]");
        assert_eq!(text(|b| put_array(b, [7u64], put_u64)), "[7]");
        assert_eq!(text(|b| put_array(b, ["a", "b"], put_str)), r#"["a","b"]"#);
        let object = text(|b| {
            let mut members = Members::default();
            members.key(b, "x");
            put_bool(b, true);
            members.key(b, "y");
            put_u64(b, 2);
        });
        assert_eq!(object, r#""x":true,"y":2"#);
    }

    #[test]
    fn whole_difficulties_have_no_fraction() {
        assert_eq!(text(|b| put_f64(b, 1.0)), "1");
        assert_eq!(text(|b| put_f64(b, 0.001)), "0.001");
        assert_eq!(text(|b| put_f64(b, 1e20)), "1e+20");
        assert_eq!(text(|b| put_f64(b, f64::NAN)), "null");
    }
}
