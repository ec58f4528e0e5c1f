//! Stratum hot paths: parsing a miner's `mining.submit`, encoding a pool's `mining.notify`.
//!
//! Run: `cargo bench --bench stratum -- --warm-up-time 1 --measurement-time 3`.

// The workspace lints hold library code; a test or bench crate exports nothing and
// unwraps by design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hashgate_protocol::stratum::{Message, Method, Request};

/// A real cpuminer submit from the captured session.
const SUBMIT: &[u8] = br#"{"method": "mining.submit", "params": ["labuser.worker1", "6b052edf00000001", "0000000000000000", "6b052edf", "e35e4300"], "id":4}"#;

/// A real ckpool notify from the captured session, 2 merkle steps.
const NOTIFY: &[u8] = br#"{"params":["6b052edf00000001","47d6610a400f8febd608dce0fa881fdb2b5af88c7a17104a11ef28ecc0b3a553","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff3702c9000004df2e056b04edee20040c","0a636b706f6f6c2d6c6872102f6c61622d636b706f6f6c2d6c68722fffffffff02bb040395000000001600148ef1526d3ea699928d3507c9a7eac171d79311f10000000000000000266a24aa21a9ed802a63c6dd28ef12704538f7cba3175492c2e4f3def8bad3ec08d673795465e000000000",["2d5623f6e5e9d382a589a1a98e653255e467110ee03a96c37a36bd7dbf0b3735","7f5dc5513e5164718815cf0978adcde521421a332e0c0255e6f9c6787a30cd19"],"20000000","1b00ffff","6b052edf",true],"id":null,"method":"mining.notify"}"#;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("stratum");
    group.throughput(Throughput::Elements(1));

    group.bench_function("parse_submit", |b| {
        b.iter(|| Message::parse(black_box(SUBMIT)).expect("valid submit"));
    });

    // A mainnet-sized job: the captured coinbase with a 12-step merkle branch.
    let mut notify = match Message::parse(NOTIFY) {
        Ok(Message::Request(Request {
            id,
            method: Method::Notify(n),
        })) => (id, n),
        other => panic!("fixture notify did not parse: {other:?}"),
    };
    notify.1.merkle_branch = (0u8..12).map(|i| [i; 32]).collect();
    let notify = Message::Request(Request {
        id: notify.0,
        method: Method::Notify(notify.1),
    });
    group.bench_function("encode_notify", |b| {
        b.iter(|| black_box(&notify).to_bytes());
    });

    group.bench_function("parse_notify", |b| {
        b.iter(|| Message::parse(black_box(NOTIFY)).expect("valid notify"));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
