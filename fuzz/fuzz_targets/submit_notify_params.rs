#![no_main]
//! Structured `mining.submit` / `mining.notify` params: arrays of mixed JSON values, often
//! almost right (hex of near-correct lengths), fed to the parser. Never panics; whatever
//! parses re-encodes to the same message.

use arbitrary::Arbitrary;
use hashgate_protocol::stratum::Message;
use libfuzzer_sys::fuzz_target;

/// A JSON value biased towards what submit/notify params look like.
#[derive(Arbitrary, Debug)]
enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// Hex of arbitrary bytes (lengths near 4 and 32 are the interesting ones).
    Hex(Vec<u8>),
    /// Hex of a 32-bit value, possibly with a case flip.
    Hex32(u32, bool),
    /// Hex of exactly 32 bytes.
    Hash([u8; 32]),
    /// One level of nesting (merkle branches), kept shallow on purpose.
    List(Vec<Leaf>),
}

/// A non-nesting value for inside lists.
#[derive(Arbitrary, Debug)]
enum Leaf {
    Null,
    Int(i64),
    Text(String),
    Hash([u8; 32]),
    Hex(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    notify: bool,
    id: Option<u64>,
    params: Vec<Value>,
}

fn push_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out.push('"');
}

fn push_leaf(out: &mut String, leaf: &Leaf) {
    match leaf {
        Leaf::Null => out.push_str("null"),
        Leaf::Int(n) => out.push_str(&n.to_string()),
        Leaf::Text(t) => push_str(out, t),
        Leaf::Hash(h) => push_hex(out, h),
        Leaf::Hex(b) => push_hex(out, b),
    }
}

fn push_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(n) => out.push_str(&n.to_string()),
        Value::Float(f) if f.is_finite() => out.push_str(&format!("{f:e}")),
        Value::Float(_) => out.push_str("1e999"),
        Value::Text(t) => push_str(out, t),
        Value::Hex(b) => push_hex(out, b),
        Value::Hex32(v, upper) if *upper => out.push_str(&format!("\"{v:08X}\"")),
        Value::Hex32(v, _) => out.push_str(&format!("\"{v:08x}\"")),
        Value::Hash(h) => push_hex(out, h),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_leaf(out, item);
            }
            out.push(']');
        }
    }
}

fuzz_target!(|input: Input| {
    let method = if input.notify { "mining.notify" } else { "mining.submit" };
    let mut line = String::from("{\"id\":");
    match input.id {
        Some(id) => line.push_str(&id.to_string()),
        None => line.push_str("null"),
    }
    line.push_str(",\"method\":\"");
    line.push_str(method);
    line.push_str("\",\"params\":[");
    for (i, value) in input.params.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        push_value(&mut line, value);
    }
    line.push_str("]}");
    if let Ok(msg) = Message::parse(line.as_bytes()) {
        let bytes = msg.to_bytes();
        let again = Message::parse(bytes.strip_suffix(b"\n").expect("newline")).expect("own output parses");
        assert_eq!(again, msg);
    }
});
