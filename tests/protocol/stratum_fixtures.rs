//! Every JSON line of the captured real sessions parses to the expected typed message.

use hashgate_protocol::stratum::{Id, Message, Method, Request, Response, ResultValue, RpcError};

use crate::support::fixtures::fixture;

/// Which way a captured line travelled.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Dir {
    ToPool,
    ToMiner,
}

/// Parses every JSON line of a capture; both the `<time> <conn> C->S {..}` and the
/// `>> {..}` / `<< {..}` formats occur. Fails the test on any line that does not parse.
fn parse_capture(name: &str) -> Vec<(Dir, Message)> {
    let mut out = Vec::new();
    for line in fixture(name).lines() {
        let Some(start) = line.find('{') else {
            continue;
        };
        if line.starts_with('#') {
            continue;
        }
        let dir = if line.contains("C->S") || line.starts_with(">>") {
            Dir::ToPool
        } else if line.contains("S->C") || line.starts_with("<<") {
            Dir::ToMiner
        } else {
            panic!("line without a direction: {line}");
        };
        let json = &line[start..];
        let msg = Message::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}: {json}"));
        out.push((dir, msg));
    }
    out
}

fn request(msg: &Message) -> Option<&Request> {
    match msg {
        Message::Request(r) => Some(r),
        Message::Response(_) => None,
    }
}

fn response(msg: &Message) -> Option<&Response> {
    match msg {
        Message::Response(r) => Some(r),
        Message::Request(_) => None,
    }
}

#[test]
fn cpuminer_session_parses_line_by_line() {
    let msgs = parse_capture("session-cpuminer-ckpool.txt");
    assert_eq!(msgs.len(), 29);
    for (dir, msg) in &msgs {
        // Miners only send requests here; pools send notifications and responses.
        if *dir == Dir::ToPool {
            assert!(request(msg).is_some(), "{msg:?}");
        }
    }

    let Some(Method::Subscribe(sub)) = request(&msgs[0].1).map(|r| &r.method) else {
        panic!("first line is not a subscribe: {:?}", msgs[0]);
    };
    assert_eq!(sub.user_agent.as_deref(), Some("cpuminer/2.5.1"));
    assert_eq!(sub.session_id, None);

    let answer = response(&msgs[1].1).expect("subscribe answer");
    assert_eq!(answer.id, Id::Int(1));
    let ResultValue::Subscribe(result) = &answer.result else {
        panic!("not a subscribe result: {answer:?}")
    };
    assert_eq!(
        result.subscriptions,
        vec![("mining.notify".to_owned(), "6b052ee0".to_owned())]
    );
    assert_eq!(result.extranonce1, vec![0xe0, 0x2e, 0x05, 0x6b]);
    assert_eq!(result.extranonce2_size, 8);
}

#[test]
fn ckpool_sends_difficulty_and_job_before_answering_authorize() {
    let msgs = parse_capture("session-cpuminer-ckpool.txt");
    let set_difficulty = request(&msgs[2].1).expect("notification");
    assert_eq!(set_difficulty.id, Id::Null);
    assert_eq!(set_difficulty.method, Method::SetDifficulty(0.001));
    assert!(matches!(
        request(&msgs[3].1).map(|r| &r.method),
        Some(Method::Notify(_))
    ));
    let authorize = request(&msgs[4].1).expect("authorize");
    let Method::Authorize(auth) = &authorize.method else {
        panic!("not authorize")
    };
    assert_eq!(auth.user, "labuser.worker1");
    assert_eq!(auth.password.as_deref(), Some("x"));
    let answer = response(&msgs[5].1).expect("authorize answer");
    assert_eq!(answer.id, Id::Int(2));
    assert!(answer.is_accepted());
}

#[test]
fn first_notify_decodes_every_field() {
    let msgs = parse_capture("session-cpuminer-ckpool.txt");
    let Some(Method::Notify(n)) = request(&msgs[3].1).map(|r| &r.method) else {
        panic!("not a notify")
    };
    assert_eq!(n.job_id, "6b052edf00000001");
    // The prevhash keeps Stratum's word-swapped byte order: bytes exactly as the hex reads.
    assert_eq!(n.prevhash[..4], [0x47, 0xd6, 0x61, 0x0a]);
    assert_eq!(n.prevhash[28..], [0xc0, 0xb3, 0xa5, 0x53]);
    assert_eq!(n.coinb1.len(), 57);
    assert_eq!(n.coinb1[..4], [0x01, 0, 0, 0]);
    assert_eq!(n.coinb2.len(), 115);
    assert_eq!(n.merkle_branch.len(), 2);
    assert_eq!(n.merkle_branch[0][..2], [0x2d, 0x56]);
    assert_eq!(n.merkle_branch[1][31], 0x19);
    assert_eq!(n.version, 0x2000_0000);
    assert_eq!(n.nbits, 0x1b00_ffff);
    assert_eq!(n.ntime, 0x6b05_2edf);
    assert!(n.clean_jobs);
}

#[test]
fn cpuminer_reuses_id_4_for_every_submit() {
    let msgs = parse_capture("session-cpuminer-ckpool.txt");
    let submits: Vec<_> = msgs
        .iter()
        .filter_map(|(_, m)| request(m))
        .filter_map(|r| match &r.method {
            Method::Submit(s) => Some((&r.id, s)),
            _ => None,
        })
        .collect();
    assert_eq!(submits.len(), 12);
    assert!(submits.iter().all(|(id, _)| **id == Id::Int(4)));
    let (_, first) = submits[0];
    assert_eq!(first.worker, "labuser.worker1");
    assert_eq!(first.job_id, "6b052edf00000001");
    assert_eq!(first.extranonce2.as_bytes(), &[0u8; 8]);
    assert_eq!(first.ntime, 0x6b05_2edf);
    assert_eq!(first.nonce, 0xe35e_4300);
    assert_eq!(first.version_bits, None);
    let accepted = msgs
        .iter()
        .filter_map(|(_, m)| response(m))
        .filter(|r| r.id == Id::Int(4) && r.is_accepted())
        .count();
    assert_eq!(
        accepted, 11,
        "the last submit's answer is not in the capture"
    );
}

#[test]
fn extras_session_parses_and_keeps_clean_jobs_order() {
    let msgs = parse_capture("session-extras-ckpool.txt");
    assert_eq!(msgs.len(), 44);
    let notifies: Vec<_> = msgs
        .iter()
        .filter_map(|(_, m)| request(m))
        .filter_map(|r| match &r.method {
            Method::Notify(n) => Some(n),
            _ => None,
        })
        .collect();
    let flags: Vec<_> = notifies
        .iter()
        .map(|n| (n.job_id.as_str(), n.clean_jobs))
        .collect();
    assert_eq!(
        flags,
        vec![
            ("6b052edf00000002", false),
            ("6b052f1300000002", true),
            ("6b052f1300000003", false),
            ("6b052e5e00000001", true),
        ]
    );
    assert_eq!(notifies[1].nbits, 0x1d31_ffce);
    assert_eq!(
        request(&msgs[0].1).map(|r| &r.method),
        Some(&Method::SetDifficulty(0.01))
    );
    let diff_one = msgs
        .iter()
        .filter_map(|(_, m)| request(m))
        .any(|r| r.method == Method::SetDifficulty(1.0));
    assert!(diff_one);
}

#[test]
fn three_reject_shapes_are_all_rejects() {
    let msgs = parse_capture("session-extras-ckpool.txt");
    let rejects: Vec<_> = msgs
        .iter()
        .filter_map(|(_, m)| response(m))
        .filter(|r| r.result == ResultValue::Bool(false))
        .collect();
    // Section C: 5 array-shaped rejects; section D: 4 reject-reason rejects and 1 bare string.
    assert_eq!(rejects.len(), 10);
    for r in &rejects {
        assert!(!r.is_accepted(), "{r:?}");
        assert!(r.reject_message().is_some(), "{r:?}");
    }

    let duplicate = rejects
        .iter()
        .find(|r| r.id == Id::Int(4))
        .expect("duplicate reject");
    assert_eq!(
        duplicate.error,
        Some(RpcError::Array {
            code: 22,
            message: "Duplicate".into(),
            data: None
        })
    );
    let codes: Vec<_> = rejects
        .iter()
        .filter_map(|r| r.error.as_ref())
        .filter_map(RpcError::code)
        .collect();
    assert_eq!(codes, vec![22, 23, 21, 20, 22]);

    let reasons: Vec<_> = rejects
        .iter()
        .filter_map(|r| r.reject_reason.as_deref())
        .collect();
    assert_eq!(
        reasons,
        vec![
            "Above target",
            "Above target",
            "Invalid JobID",
            "Ntime out of range"
        ]
    );
    assert!(
        rejects
            .iter()
            .filter(|r| r.reject_reason.is_some())
            .all(|r| r.error.is_none())
    );

    let mismatch = rejects.last().expect("bare string reject");
    assert_eq!(
        mismatch.error,
        Some(RpcError::Text("Worker mismatch".into()))
    );
    assert_eq!(mismatch.reject_message(), Some("Worker mismatch"));
}

#[test]
fn captured_lines_survive_encode_and_parse() {
    for name in ["session-cpuminer-ckpool.txt", "session-extras-ckpool.txt"] {
        for (_, msg) in parse_capture(name) {
            let bytes = msg.to_bytes();
            assert_eq!(bytes.last(), Some(&b'\n'));
            let again = Message::parse(&bytes[..bytes.len() - 1]).expect("own output parses");
            assert_eq!(again, msg);
        }
    }
}
