//! encode -> parse is the identity for every message kind, and encoded lines look as pools
//! and miners write them.

use hashgate_protocol::stratum::{
    Authorize, Configure, ConfigureResult, Extranonce2, Id, Message, Method, Notify, Reconnect,
    Request, Response, ResultValue, RpcError, SetExtranonce, Submit, Subscribe, SubscribeResult,
    VersionRolling,
};
use proptest::prelude::*;

fn req(id: Id, method: Method) -> Message {
    Message::Request(Request { id, method })
}

fn resp(id: Id, result: ResultValue, error: Option<RpcError>) -> Message {
    Message::Response(Response {
        id,
        result,
        error,
        reject_reason: None,
    })
}

fn sample_submit(version_bits: Option<u32>) -> Submit {
    Submit {
        worker: "labuser.worker1".into(),
        job_id: "6b052edf00000001".into(),
        extranonce2: Extranonce2::new(&[0, 0, 0, 0, 0, 0, 0, 1]).expect("8 bytes"),
        ntime: 0x6b05_2edf,
        nonce: 0xe35e_4300,
        version_bits,
    }
}

fn sample_notify() -> Notify {
    Notify {
        job_id: "6b052edf00000001".into(),
        prevhash: [0x47; 32],
        coinb1: vec![1, 0, 0, 0, 1],
        coinb2: vec![0xff, 0xff, 0xff, 0xff],
        merkle_branch: vec![[0x2d; 32], [0x7f; 32]],
        version: 0x2000_0000,
        nbits: 0x1b00_ffff,
        ntime: 0x6b05_2edf,
        clean_jobs: true,
    }
}

fn every_kind() -> Vec<Message> {
    vec![
        req(
            Id::Int(1),
            Method::Subscribe(Subscribe {
                user_agent: Some("cpuminer/2.5.1".into()),
                session_id: None,
            }),
        ),
        req(
            Id::Int(1),
            Method::Subscribe(Subscribe {
                user_agent: Some("bmminer/2.0".into()),
                session_id: Some("e02e056b".into()),
            }),
        ),
        req(Id::Int(1), Method::Subscribe(Subscribe::default())),
        req(
            Id::Int(2),
            Method::Authorize(Authorize {
                user: "labuser.worker1".into(),
                password: Some("x".into()),
            }),
        ),
        req(
            Id::Int(2),
            Method::Authorize(Authorize {
                user: "a.b".into(),
                password: None,
            }),
        ),
        req(
            Id::Int(3),
            Method::Configure(Configure {
                version_rolling: Some(VersionRolling {
                    mask: Some(0x1fff_e000),
                    min_bit_count: Some(2),
                }),
                minimum_difficulty: Some(2048.0),
                subscribe_extranonce: true,
                unknown: vec!["info".into()],
            }),
        ),
        req(Id::Int(3), Method::Configure(Configure::default())),
        req(Id::Int(4), Method::ExtranonceSubscribe),
        req(Id::Int(5), Method::SuggestDifficulty(512.0)),
        req(Id::Int(4), Method::Submit(sample_submit(None))),
        req(
            Id::Str("abc".into()),
            Method::Submit(sample_submit(Some(0x0000_2000))),
        ),
        req(Id::Null, Method::Notify(sample_notify())),
        req(Id::Null, Method::SetDifficulty(0.001)),
        req(Id::Null, Method::SetDifficulty(65536.0)),
        req(
            Id::Null,
            Method::SetExtranonce(SetExtranonce {
                extranonce1: vec![0xe0, 0x2e, 0x05, 0x6b],
                extranonce2_size: 8,
            }),
        ),
        req(Id::Null, Method::SetVersionMask(0x1fff_e000)),
        req(Id::Null, Method::Reconnect(Reconnect::default())),
        req(
            Id::Null,
            Method::Reconnect(Reconnect {
                host: Some("pool.example".into()),
                port: Some(3333),
                wait_seconds: Some(5),
            }),
        ),
        req(
            Id::Null,
            Method::Reconnect(Reconnect {
                host: None,
                port: Some(3333),
                wait_seconds: None,
            }),
        ),
        req(Id::Int(9), Method::GetVersion),
        req(
            Id::Null,
            Method::ShowMessage("maintenance at 14:00 \"UTC\"\n".into()),
        ),
        req(
            Id::Number("-1".into()),
            Method::Unknown {
                name: "mining.get_transactions".into(),
                params: "[\"j\"]".into(),
            },
        ),
        resp(
            Id::Int(1),
            ResultValue::Subscribe(SubscribeResult {
                subscriptions: vec![
                    ("mining.set_difficulty".into(), "1".into()),
                    ("mining.notify".into(), "6b052ee0".into()),
                ],
                extranonce1: vec![0xe0, 0x2e, 0x05, 0x6b],
                extranonce2_size: 8,
            }),
            None,
        ),
        resp(
            Id::Int(3),
            ResultValue::Configure(ConfigureResult {
                version_rolling: Some(true),
                version_rolling_mask: Some(0x1fff_e000),
                version_rolling_min_bit_count: Some(2),
                minimum_difficulty: Some(false),
                subscribe_extranonce: Some(true),
            }),
            None,
        ),
        resp(Id::Int(4), ResultValue::Bool(true), None),
        resp(
            Id::Int(4),
            ResultValue::Bool(false),
            Some(RpcError::Array {
                code: 23,
                message: "Above target".into(),
                data: None,
            }),
        ),
        resp(
            Id::Int(4),
            ResultValue::Null,
            Some(RpcError::Array {
                code: 20,
                message: "Other".into(),
                data: Some("\"Traceback...\"".into()),
            }),
        ),
        resp(
            Id::Int(4),
            ResultValue::Null,
            Some(RpcError::Object {
                code: -32601,
                message: "Method not found".into(),
            }),
        ),
        resp(
            Id::Int(7),
            ResultValue::Bool(false),
            Some(RpcError::Text("Worker mismatch".into())),
        ),
        Message::Response(Response {
            id: Id::Int(3),
            result: ResultValue::Bool(false),
            error: None,
            reject_reason: Some("Above target".into()),
        }),
        resp(Id::Int(9), ResultValue::Text("hashgate/0.1.0".into()), None),
        resp(Id::Int(9), ResultValue::Other("[1,2]".into()), None),
        resp(Id::Null, ResultValue::Null, None),
    ]
}

fn round_trip(msg: &Message) -> Message {
    let bytes = msg.to_bytes();
    assert_eq!(bytes.last(), Some(&b'\n'), "{msg:?}");
    assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1, "{msg:?}");
    Message::parse(&bytes[..bytes.len() - 1])
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
}

#[test]
fn every_message_kind_round_trips() {
    let all = every_kind();
    let kinds: std::collections::BTreeSet<_> = all
        .iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r.method.name().to_owned()),
            Message::Response(_) => None,
        })
        .collect();
    assert_eq!(
        kinds.len(),
        14,
        "one of each method plus an unknown one: {kinds:?}"
    );
    for msg in &all {
        assert_eq!(&round_trip(msg), msg);
    }
}

#[test]
fn encoded_lines_match_the_wire_format() {
    let line = |m: &Message| String::from_utf8(m.to_bytes().to_vec()).expect("utf-8");
    assert_eq!(
        line(&req(
            Id::Int(4),
            Method::Submit(sample_submit(Some(0x2000)))
        )),
        "{\"id\":4,\"method\":\"mining.submit\",\"params\":[\"labuser.worker1\",\"6b052edf00000001\",\"0000000000000001\",\"6b052edf\",\"e35e4300\",\"00002000\"]}\n"
    );
    assert_eq!(
        line(&req(Id::Null, Method::SetDifficulty(1.0))),
        "{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[1]}\n"
    );
    assert_eq!(
        line(&resp(
            Id::Str("abc".into()),
            ResultValue::Bool(false),
            Some(RpcError::Array {
                code: 22,
                message: "Duplicate".into(),
                data: None
            })
        )),
        "{\"id\":\"abc\",\"result\":false,\"error\":[22,\"Duplicate\",null]}\n"
    );
}

#[test]
fn captured_notify_re_encodes_byte_for_byte_params() {
    let captured = r#"["6b052edf00000001","47d6610a400f8febd608dce0fa881fdb2b5af88c7a17104a11ef28ecc0b3a553","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff3702c9000004df2e056b04edee20040c","0a636b706f6f6c2d6c6872102f6c61622d636b706f6f6c2d6c68722fffffffff02bb040395000000001600148ef1526d3ea699928d3507c9a7eac171d79311f10000000000000000266a24aa21a9ed802a63c6dd28ef12704538f7cba3175492c2e4f3def8bad3ec08d673795465e000000000",["2d5623f6e5e9d382a589a1a98e653255e467110ee03a96c37a36bd7dbf0b3735","7f5dc5513e5164718815cf0978adcde521421a332e0c0255e6f9c6787a30cd19"],"20000000","1b00ffff","6b052edf",true]"#;
    let line = format!(r#"{{"params":{captured},"id":null,"method":"mining.notify"}}"#);
    let msg = Message::parse(line.as_bytes()).expect("captured notify parses");
    let encoded = String::from_utf8(msg.to_bytes().to_vec()).expect("utf-8");
    assert_eq!(
        encoded,
        format!("{{\"id\":null,\"method\":\"mining.notify\",\"params\":{captured}}}\n")
    );
}

#[test]
fn string_ids_echo_verbatim_including_escapes() {
    let line = br#"{"id":"a\u0041","method":"mining.extranonce.subscribe","params":[]}"#;
    let Ok(Message::Request(r)) = Message::parse(line) else {
        panic!("not a request")
    };
    let answer = resp(r.id, ResultValue::Bool(true), None);
    assert_eq!(
        &answer.to_bytes()[..],
        b"{\"id\":\"a\\u0041\",\"result\":true,\"error\":null}\n"
    );
}

fn arb_submit() -> impl Strategy<Value = Submit> {
    (
        ".{0,40}",
        "[0-9a-f]{1,16}",
        proptest::collection::vec(any::<u8>(), 0..=32),
        any::<u32>(),
        any::<u32>(),
        any::<Option<u32>>(),
    )
        .prop_map(|(worker, job_id, en2, ntime, nonce, version_bits)| Submit {
            worker,
            job_id,
            extranonce2: Extranonce2::new(&en2).expect("at most 32 bytes"),
            ntime,
            nonce,
            version_bits,
        })
}

fn arb_notify() -> impl Strategy<Value = Notify> {
    (
        "[0-9a-f]{1,16}",
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(any::<[u8; 32]>(), 0..14),
        any::<(u32, u32, u32, bool)>(),
    )
        .prop_map(
            |(
                job_id,
                prevhash,
                coinb1,
                coinb2,
                merkle_branch,
                (version, nbits, ntime, clean_jobs),
            )| Notify {
                job_id,
                prevhash,
                coinb1,
                coinb2,
                merkle_branch,
                version,
                nbits,
                ntime,
                clean_jobs,
            },
        )
}

proptest! {
    #[test]
    fn submits_round_trip(submit in arb_submit(), id in any::<u64>()) {
        let msg = req(Id::Int(id), Method::Submit(submit));
        prop_assert_eq!(round_trip(&msg), msg);
    }

    #[test]
    fn notifies_round_trip(notify in arb_notify()) {
        let msg = req(Id::Null, Method::Notify(notify));
        prop_assert_eq!(round_trip(&msg), msg);
    }

    #[test]
    fn difficulties_round_trip_exactly(d in (1e-12f64..1e15)) {
        let msg = req(Id::Null, Method::SetDifficulty(d));
        prop_assert_eq!(round_trip(&msg), msg);
    }

    #[test]
    fn arbitrary_lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Message::parse(&line);
    }
}

#[test]
fn answer_constructors_write_the_classic_shapes() {
    let ok = Message::Response(Response::accepted(Id::Int(4)));
    assert_eq!(
        &ok.to_bytes()[..],
        b"{\"id\":4,\"result\":true,\"error\":null}\n"
    );
    let reject = Response::rejected(Id::Int(4), 23, "Low difficulty share");
    assert!(!reject.is_accepted());
    assert_eq!(reject.reject_message(), Some("Low difficulty share"));
    assert_eq!(
        &Message::Response(reject).to_bytes()[..],
        b"{\"id\":4,\"result\":false,\"error\":[23,\"Low difficulty share\",null]}\n"
    );
}
