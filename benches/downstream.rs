//! A miner session's cost per submit, end to end over loopback TCP: parse, look up the job,
//! validate (SHA-256d), count, answer. One client pipelines 64 submits and reads the 64
//! answers, so the figure is per submit with the socket round trip amortised.
//!
//! Run: `cargo bench --bench downstream -- --warm-up-time 1 --measurement-time 5`.

// The workspace lints hold library code; a test or bench crate exports nothing and
// unwraps by design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hashgate_protocol::extranonce::{SplitLimits, choose_split};
use hashgate_protocol::stratum::Notify;
use hashgate_protocol::work::Target;
use hashgate_site::config::Config;
use hashgate_site::downstream::Listener;
use hashgate_site::hub::{Hub, MinerJob, MinerJobParts, UpstreamLink};
use hashgate_site::stats::Registry;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Submits in flight per measured batch.
const BATCH: u64 = 64;

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn submit_roundtrip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = Config::from_toml(
        "[proxy]\nlisten = \"127.0.0.1:0\"\naccount = \"site\"\ninitial_difficulty = 1e-10\n\
         [[pools]]\nurl = \"stratum+tcp://127.0.0.1:1\"\n\
         [vardiff]\nmin_difficulty = 1e-10\nmax_difficulty = 1e-10\n",
    )
    .expect("config");
    config.proxy.idle_timeout = Duration::from_secs(3600);
    let (hub, _channels) = Hub::new(1);
    let plan = choose_split(8, 100, SplitLimits::default()).expect("split");
    hub.set_sizes(&plan);
    let (tx, _submits) = mpsc::channel(16);
    // A mainnet-sized job: 250-byte coinbase, 12-step merkle branch.
    let notify = Notify {
        job_id: "pool".into(),
        prevhash: [0x5a; 32],
        coinb1: bytes(86, 1),
        coinb2: bytes(148, 2),
        merkle_branch: (0..12u8).map(|i| [i; 32]).collect(),
        version: 0x2000_0000,
        nbits: 0x1702_9a8a,
        ntime: 0x679a_c169,
        clean_jobs: true,
    };
    let job = MinerJob::build(
        hub.job_ids.next(),
        MinerJobParts {
            notify: &notify,
            pool_extranonce1: &[1, 2, 3, 4],
            plan,
            // Nothing meets it: the figure is the miner-facing path alone.
            upstream_target: Target::ZERO,
            version_mask: 0x1fff_e000,
            link: UpstreamLink::new("pool".into(), 1, tx),
            clean_jobs: true,
        },
        Instant::now(),
    )
    .expect("job");
    let job_id = job.id.clone();
    hub.channels()
        .first()
        .expect("channel 0")
        .publish(Arc::new(job));

    let (mut reader, mut writer) = rt.block_on(async {
        let listener = Listener::bind(
            &config,
            hub.clone(),
            Registry::new(),
            CancellationToken::new(),
        )
        .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(listener.run());
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        w.write_all(
            b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n\
              {\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"rig\"]}\n",
        )
        .await
        .expect("setup");
        // subscribe answer, authorize answer, set_difficulty, notify
        let mut line = String::new();
        for _ in 0..4 {
            line.clear();
            r.read_line(&mut line).await.expect("setup line");
        }
        (r, w)
    });

    let mut nonce: u32 = 0;
    let mut batch = Vec::with_capacity(BATCH as usize * 128);
    let mut answers = vec![0u8; 64 * 1024];
    let mut group = c.benchmark_group("downstream");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("submit_roundtrip", |b| {
        b.iter(|| {
            batch.clear();
            for _ in 0..BATCH {
                nonce = nonce.wrapping_add(1);
                batch.extend_from_slice(
                    format!(
                        "{{\"id\":4,\"method\":\"mining.submit\",\"params\":[\"rig\",\"{job_id}\",\"00000000000000\",\"679ac169\",\"{nonce:08x}\"]}}\n"
                    )
                    .as_bytes(),
                );
            }
            rt.block_on(async {
                writer.write_all(&batch).await.expect("write");
                let mut lines = 0;
                while lines < BATCH {
                    let n = reader.read(&mut answers).await.expect("read");
                    assert!(n > 0, "proxy closed the bench connection");
                    lines += answers.iter().take(n).filter(|&&b| b == b'\n').count() as u64;
                }
            });
        });
    });
    group.finish();
}

criterion_group!(benches, submit_roundtrip);
criterion_main!(benches);
