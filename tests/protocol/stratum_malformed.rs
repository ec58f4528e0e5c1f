//! One row per kind of garbage: each line must give its specific typed error, never a panic.

use hashgate_protocol::stratum::{Id, Message, ParseErrorKind as K};

const SUBMIT_OK: &str =
    r#"{"id":1,"method":"mining.submit","params":["w","j","00000000","6b052edf","e35e4300"]}"#;

fn submit(params: &str) -> String {
    format!(r#"{{"id":1,"method":"mining.submit","params":{params}}}"#)
}

fn notify(params: &str) -> String {
    format!(r#"{{"id":null,"method":"mining.notify","params":{params}}}"#)
}

const PREV: &str = "47d6610a400f8febd608dce0fa881fdb2b5af88c7a17104a11ef28ecc0b3a553";

fn notify_with(prevhash: &str, branch: &str, version: &str, clean: &str) -> String {
    notify(&format!(
        r#"["j","{prevhash}","01","02",{branch},"{version}","1b00ffff","6b052edf",{clean}]"#
    ))
}

#[test]
fn malformed_lines_give_their_specific_error() {
    let long_en2 = "00".repeat(33);
    let rows: Vec<(&str, Vec<u8>, K)> = vec![
        ("invalid utf-8", b"{\"id\":1,\"method\":\"mining.submit\xff\"}".to_vec(), K::InvalidUtf8),
        ("truncated json", br#"{"id":1,"method":"mining.sub"#.to_vec(), K::InvalidJson(String::new())),
        ("trailing garbage", br#"{"id":1,"result":true} x"#.to_vec(), K::InvalidJson(String::new())),
        ("top-level array", br#"[1,2,3]"#.to_vec(), K::NotAnObject(String::new())),
        ("top-level number", b"42".to_vec(), K::NotAnObject(String::new())),
        ("duplicate key", br#"{"id":1,"id":2,"result":true}"#.to_vec(), K::NotAnObject(String::new())),
        ("empty object", b"{}".to_vec(), K::NotAMessage),
        ("method is a number", br#"{"id":1,"method":5,"params":[]}"#.to_vec(), K::MethodNotString),
        ("id is a boolean", br#"{"id":true,"method":"mining.subscribe","params":[]}"#.to_vec(), K::BadId),
        ("id is an object", br#"{"id":{},"result":true}"#.to_vec(), K::BadId),
        ("params is an object", submit("{}").into_bytes(), K::ParamsNotArray { method: "mining.submit" }),
        ("params is a string", submit(r#""x""#).into_bytes(), K::ParamsNotArray { method: "mining.submit" }),
        (
            "submit with 4 params",
            submit(r#"["w","j","00","6b052edf"]"#).into_bytes(),
            K::Arity { method: "mining.submit", expected: "5 or 6", got: 4 },
        ),
        (
            "submit with 7 params",
            submit(r#"["w","j","00","6b052edf","00000000","00000000","x"]"#).into_bytes(),
            K::Arity { method: "mining.submit", expected: "5 or 6", got: 7 },
        ),
        (
            "submit with 100 params",
            submit(&format!("[{}]", vec!["1"; 100].join(","))).into_bytes(),
            K::Arity { method: "mining.submit", expected: "5 or 6", got: 100 },
        ),
        (
            "worker is a number",
            submit(r#"[1,"j","00","6b052edf","00000000"]"#).into_bytes(),
            K::WrongType { field: "worker", expected: "a string" },
        ),
        (
            "nonce is a number",
            submit(r#"["w","j","00","6b052edf",12345]"#).into_bytes(),
            K::WrongType { field: "nonce", expected: "a string" },
        ),
        (
            "extranonce2 not hex",
            submit(r#"["w","j","zz","6b052edf","00000000"]"#).into_bytes(),
            K::BadHex { field: "extranonce2" },
        ),
        (
            "extranonce2 odd length",
            submit(r#"["w","j","000","6b052edf","00000000"]"#).into_bytes(),
            K::BadHex { field: "extranonce2" },
        ),
        (
            "extranonce2 over 32 bytes",
            submit(&format!(r#"["w","j","{long_en2}","6b052edf","00000000"]"#)).into_bytes(),
            K::TooLong { field: "extranonce2", max: 32, got: 33 },
        ),
        (
            "ntime 3 bytes",
            submit(r#"["w","j","00","6b052e","00000000"]"#).into_bytes(),
            K::BadLength { field: "ntime", expected: 4, got: 3 },
        ),
        (
            "nonce 5 bytes",
            submit(r#"["w","j","00","6b052edf","0000000000"]"#).into_bytes(),
            K::BadLength { field: "nonce", expected: 4, got: 5 },
        ),
        (
            "nonce with 0x prefix",
            submit(r#"["w","j","00","6b052edf","0x000000"]"#).into_bytes(),
            K::BadHex { field: "nonce" },
        ),
        (
            "version bits not hex",
            submit(r#"["w","j","00","6b052edf","00000000","1fffe00g"]"#).into_bytes(),
            K::BadHex { field: "version_bits" },
        ),
        (
            "notify with 8 params",
            notify(r#"["j","00","01","02",[],"20000000","1b00ffff","6b052edf"]"#).into_bytes(),
            K::Arity { method: "mining.notify", expected: "9", got: 8 },
        ),
        (
            "prevhash 31 bytes",
            notify_with(&PREV[2..], "[]", "20000000", "true").into_bytes(),
            K::BadLength { field: "prevhash", expected: 32, got: 31 },
        ),
        (
            "merkle branch 31 bytes",
            notify_with(PREV, &format!(r#"["{}"]"#, &PREV[2..]), "20000000", "true").into_bytes(),
            K::BadLength { field: "merkle_branch", expected: 32, got: 31 },
        ),
        (
            "merkle branch not an array",
            notify_with(PREV, r#""00""#, "20000000", "true").into_bytes(),
            K::WrongType { field: "merkle_branch", expected: "an array of strings" },
        ),
        (
            "merkle branch holds a number",
            notify_with(PREV, "[1]", "20000000", "true").into_bytes(),
            K::WrongType { field: "merkle_branch", expected: "a string" },
        ),
        (
            "version 2 bytes",
            notify_with(PREV, "[]", "2000", "true").into_bytes(),
            K::BadLength { field: "version", expected: 4, got: 2 },
        ),
        (
            "clean_jobs a string",
            notify_with(PREV, "[]", "20000000", r#""true""#).into_bytes(),
            K::WrongType { field: "clean_jobs", expected: "a boolean" },
        ),
        (
            "difficulty overflows f64",
            br#"{"id":null,"method":"mining.set_difficulty","params":[1e400]}"#.to_vec(),
            K::NumberOutOfRange { field: "difficulty" },
        ),
        (
            "difficulty is zero",
            br#"{"id":null,"method":"mining.set_difficulty","params":[0]}"#.to_vec(),
            K::InvalidValue { field: "difficulty", reason: "difficulty must be positive" },
        ),
        (
            "difficulty is a string",
            br#"{"id":null,"method":"mining.set_difficulty","params":["1"]}"#.to_vec(),
            K::WrongType { field: "difficulty", expected: "a number" },
        ),
        (
            "extranonce2_size overflows u64",
            br#"{"id":null,"method":"mining.set_extranonce","params":["00",18446744073709551616]}"#.to_vec(),
            K::NumberOutOfRange { field: "extranonce2_size" },
        ),
        (
            "extranonce2_size negative",
            br#"{"id":null,"method":"mining.set_extranonce","params":["00",-1]}"#.to_vec(),
            K::WrongType { field: "extranonce2_size", expected: "a non-negative integer" },
        ),
        (
            "reconnect port too large",
            br#"{"id":null,"method":"client.reconnect","params":["h",70000]}"#.to_vec(),
            K::NumberOutOfRange { field: "port" },
        ),
        (
            "version mask 8 bytes",
            br#"{"id":null,"method":"mining.set_version_mask","params":["1fffe0001fffe000"]}"#.to_vec(),
            K::BadLength { field: "version_mask", expected: 4, got: 8 },
        ),
        (
            "authorize without params",
            br#"{"id":2,"method":"mining.authorize","params":[]}"#.to_vec(),
            K::Arity { method: "mining.authorize", expected: "1 or 2", got: 0 },
        ),
        (
            "configure mask not hex",
            br#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"xyz"}]}"#
                .to_vec(),
            K::BadHex { field: "version-rolling.mask" },
        ),
        (
            "configure extensions not a list",
            br#"{"id":1,"method":"mining.configure","params":["version-rolling",{}]}"#.to_vec(),
            K::WrongType { field: "extensions", expected: "an array of strings" },
        ),
        (
            "minimum-difficulty without value",
            br#"{"id":1,"method":"mining.configure","params":[["minimum-difficulty"],{}]}"#.to_vec(),
            K::WrongType { field: "minimum-difficulty.value", expected: "a number" },
        ),
        (
            "reject-reason a number",
            br#"{"id":3,"result":false,"error":null,"reject-reason":5}"#.to_vec(),
            K::WrongType { field: "reject-reason", expected: "a string" },
        ),
    ];

    for (name, line, expected) in rows {
        let err = match Message::parse(&line) {
            Ok(msg) => panic!("{name}: parsed as {msg:?}"),
            Err(err) => err,
        };
        // Messages from serde vary by version; compare those variants by kind only.
        let same = match (err.kind(), &expected) {
            (K::InvalidJson(_), K::InvalidJson(_)) | (K::NotAnObject(_), K::NotAnObject(_)) => true,
            (got, want) => got == want,
        };
        assert!(same, "{name}: got {:?}, want {expected:?}", err.kind());
        assert!(!err.to_string().is_empty(), "{name}: empty message");
    }
}

#[test]
fn the_baseline_submit_is_valid() {
    // Guards the table: its rows differ from this line in one defect each.
    assert!(Message::parse(SUBMIT_OK.as_bytes()).is_ok());
}

#[test]
fn errors_after_the_envelope_keep_the_id() {
    let err = Message::parse(submit(r#"["w","j","00","6b052e","00000000"]"#).as_bytes())
        .expect_err("bad ntime");
    assert_eq!(err.id(), Some(&Id::Int(1)));
    let err = Message::parse(b"{\"id\":1").expect_err("truncated");
    assert_eq!(err.id(), None);
}
