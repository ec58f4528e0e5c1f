//! Simulated ASICs straight against the simulated pool: shares found, judged and counted;
//! every reject code provoked on purpose; pool pushes and faults followed.
//!
//! Everything binds 127.0.0.1 port 0 and runs under a timeout.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashgate_lab::sim::asic::miner::Work;
use hashgate_lab::sim::asic::{BadShare, SimAsic, SimAsicConfig, SimAsicStats};
use hashgate_lab::sim::mgmt::{SimMinerSpec, SimMinerState};
use hashgate_lab::sim::pool::judge::{self, ShareParts};
use hashgate_lab::sim::pool::{AcceptedShare, PoolFault, SimPool, SimPoolConfig};
use hashgate_protocol::work::{Difficulty, Job, JobTemplate, ShareInput, SubmitPolicy, validate};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::fixtures::{fixture, hex_bytes, hex_u32, job_from_notify};

const MASK: u32 = 0x1fff_e000;

/// Runs a test body with an overall deadline.
async fn bounded<F: Future<Output = ()>>(secs: u64, body: F) {
    tokio::time::timeout(Duration::from_secs(secs), body)
        .await
        .expect("test exceeded its time limit");
}

/// Polls `check` until it holds, or fails naming `what`.
async fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pool_config() -> SimPoolConfig {
    SimPoolConfig {
        difficulty: 1e-6,
        ..SimPoolConfig::default()
    }
}

fn asic_config(addr: SocketAddr, worker: &str) -> SimAsicConfig {
    SimAsicConfig {
        // ~5 shares a second at 1e-6, cheap even in a debug build.
        hashrate: 20_000.0,
        reconnect_backoff: Duration::from_millis(50),
        reconnect_backoff_max: Duration::from_millis(300),
        ..SimAsicConfig::new(addr, worker)
    }
}

fn code(stats: &SimAsicStats, code: i64) -> u64 {
    stats.rejects_by_code.get(&code).copied().unwrap_or(0)
}

fn pool_code(pool: &SimPool, code: i64) -> u64 {
    pool.stats()
        .rejects_by_code
        .get(&code)
        .copied()
        .unwrap_or(0)
}

/// Re-verifies an accepted share without the pool's judge: the proxy-side validator
/// rebuilds the same header, and bitcoin_hashes' SHA-256d of it meets the credited target.
fn reverify(pool: &SimPool, share: &AcceptedShare, mask: u32) {
    let job = pool
        .known_job(&share.key.job_id)
        .unwrap_or_else(|| panic!("job {} remembered", share.key.job_id));
    let n = &job.notify;
    let job = Job::new(JobTemplate {
        id: n.job_id.clone(),
        prevhash: n.prevhash,
        coinb1: n.coinb1.clone(),
        coinb2: n.coinb2.clone(),
        merkle_branch: n.merkle_branch.clone(),
        version: n.version,
        nbits: n.nbits,
        ntime: n.ntime,
        clean_jobs: n.clean_jobs,
    })
    .expect("pool jobs have valid nbits");
    let target = Difficulty::new(share.difficulty)
        .expect("positive")
        .to_target();
    let policy = SubmitPolicy {
        version_mask: mask,
        ..SubmitPolicy::new(share.key.extranonce2.len(), target)
    };
    let submit = ShareInput {
        extranonce1: &share.key.extranonce1,
        extranonce2: &share.key.extranonce2,
        ntime: share.key.ntime,
        nonce: share.key.nonce,
        version_bits: Some(share.key.version & mask),
    };
    let checked = validate(&job, &submit, &policy).expect("accepted share is valid");
    assert_eq!(checked.header(), &share.header, "same header rebuilt");
    let hash = bitcoin_hashes::sha256d::Hash::hash(&share.header).to_byte_array();
    let got = judge::difficulty_of(&hash);
    assert!(
        got >= share.difficulty * (1.0 - 1e-9),
        "hash difficulty {got} below credited {}",
        share.difficulty
    );
}

#[test]
fn pool_judge_agrees_with_real_share_vectors() {
    let doc: Value = serde_json::from_str(&fixture("share-vectors.json")).expect("json");
    let vectors = doc["vectors"].as_array().expect("vectors");
    assert_eq!(vectors.len(), 3);
    for v in vectors {
        let name = v["name"].as_str().expect("name");
        let p = v["notify"].as_array().expect("notify params");
        let prevhash: [u8; 32] = hex_bytes(&p[1]).try_into().expect("32 bytes");
        let branch: Vec<[u8; 32]> = p[4]
            .as_array()
            .expect("branch")
            .iter()
            .map(|b| hex_bytes(b).try_into().expect("32 bytes"))
            .collect();
        let (coinb1, coinb2) = (hex_bytes(&p[2]), hex_bytes(&p[3]));
        let (en1, en2) = (hex_bytes(&v["extranonce1"]), hex_bytes(&v["extranonce2"]));
        let version_bits = v["version_bits"]
            .as_str()
            .map(|_| hex_u32(&v["version_bits"]));
        let input = ShareParts {
            prevhash: &prevhash,
            coinb1: &coinb1,
            coinb2: &coinb2,
            branch: &branch,
            job_version: hex_u32(&p[5]),
            nbits: hex_u32(&p[6]),
            extranonce1: &en1,
            extranonce2: &en2,
            ntime: hex_u32(&v["ntime"]),
            nonce: hex_u32(&v["nonce"]),
            version_bits,
            version_mask: v["version_mask"]
                .as_str()
                .map_or(0, |_| hex_u32(&v["version_mask"])),
        };
        let header = judge::header(&input);
        let expected = &v["expected"];
        assert_eq!(
            hex::encode(header),
            expected["header"].as_str().expect("hex"),
            "{name}"
        );
        let hash = judge::sha256d(&header);
        let number = judge::hash_as_number(&hash);
        assert_eq!(
            hex::encode(number),
            expected["hash"].as_str().expect("hex"),
            "{name}"
        );
        let want = expected["difficulty"].as_f64().expect("difficulty");
        let got = judge::difficulty_of(&hash);
        assert!((got - want).abs() <= want * 1e-9, "{name}: {got} vs {want}");
        // The judge's own targets: the share meets a difficulty just below what it
        // reached and misses one just above.
        assert!(
            number <= judge::target_for_difficulty(want * 0.999),
            "{name}"
        );
        assert!(
            number > judge::target_for_difficulty(want * 1.001),
            "{name}"
        );
        let is_block = number <= judge::target_for_nbits(input.nbits).expect("valid nbits");
        assert_eq!(is_block, name.starts_with("mainnet-block"), "{name}");
    }
}

#[tokio::test]
async fn asics_mine_and_every_accepted_share_verifies_exactly_once() {
    bounded(15, async {
        let pool = SimPool::start(pool_config()).await.expect("pool starts");
        let rolling = SimAsic::start(asic_config(pool.addr(), "acct.roll"));
        let plain = SimAsic::start(SimAsicConfig {
            version_rolling: None,
            extranonce_subscribe: false,
            ..asic_config(pool.addr(), "acct.plain")
        });
        let narrow = SimAsic::start(SimAsicConfig {
            version_rolling: Some(0x0000_6000),
            ..asic_config(pool.addr(), "acct.narrow")
        });
        let asics = [&rolling, &plain, &narrow];
        until(
            "5 accepted shares from each ASIC",
            Duration::from_secs(10),
            || asics.iter().all(|a| a.stats().accepted >= 5),
        )
        .await;
        for a in asics {
            a.stop().await;
        }
        let stats = pool.stats();
        let log = pool.accepted_shares();
        assert_eq!(stats.accepted, log.len() as u64);
        assert_eq!(stats.rejected, 0, "no rejects: {:?}", stats.rejects_by_code);
        assert_eq!(stats.connections_total, 3);
        let keys: HashSet<_> = log.iter().map(|s| &s.key).collect();
        assert_eq!(keys.len(), log.len(), "each share accepted exactly once");

        for (asic, worker) in [
            (&rolling, "acct.roll"),
            (&plain, "acct.plain"),
            (&narrow, "acct.narrow"),
        ] {
            let s = asic.stats();
            let w = &stats.workers[worker];
            // The ASIC may have a submit in flight when stopped; never more accepts
            // at the pool than the ASIC submitted.
            assert!(
                w.accepted >= s.accepted && w.accepted <= s.submitted,
                "{worker}"
            );
            assert!((w.accepted_difficulty - w.accepted as f64 * 1e-6).abs() < 1e-12);
            assert_eq!(s.extranonce2_size, 8);
            assert_eq!(s.extranonce1.len(), 4);
            assert!(s.hashes > 0 && s.jobs_received >= 1);
        }
        assert_eq!(rolling.stats().version_mask, Some(MASK));
        assert_eq!(narrow.stats().version_mask, Some(0x6000));
        assert_eq!(plain.stats().version_mask, None);
        let en1s: HashSet<_> = asics.iter().map(|a| a.stats().extranonce1).collect();
        assert_eq!(en1s.len(), 3, "extranonce1 unique per connection");

        let job_version = 0x2000_0000;
        let mut rolled = 0;
        for share in &log {
            reverify(&pool, share, MASK);
            let bits = share.key.version ^ job_version;
            match share.worker.as_str() {
                "acct.plain" => assert_eq!(bits, 0),
                "acct.narrow" => assert_eq!(bits & !0x6000, 0),
                _ => assert_eq!(bits & !MASK, 0),
            }
            if bits != 0 {
                rolled += 1;
            }
        }
        assert!(rolled > 0, "some shares carry rolled version bits");
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn every_bad_share_gets_its_reject_code() {
    bounded(15, async {
        let pool = SimPool::start(pool_config()).await.expect("pool starts");
        let asic = SimAsic::start(asic_config(pool.addr(), "acct.bad"));
        until("a first accepted share", Duration::from_secs(5), || {
            asic.stats().accepted >= 1
        })
        .await;

        let cases = [
            (BadShare::WrongNonce, 23),
            (BadShare::Duplicate, 22),
            (BadShare::OutsideVersionMask, 20),
            (BadShare::WrongExtranonce2Size, 20),
            (BadShare::NtimeOutOfRange, 20),
            // Another worker than the connection's one: ckpool's "Worker mismatch".
            (BadShare::UnauthorizedWorker, 20),
        ];
        for (kind, expect) in cases {
            let before = asic.stats();
            asic.bad_share(kind);
            until(
                &format!("{kind:?} answered"),
                Duration::from_secs(3),
                || code(&asic.stats(), expect) == code(&before, expect) + 1,
            )
            .await;
            assert_eq!(asic.stats().bad_submitted, before.bad_submitted + 1);
        }

        // Stale: after a new block the old job id answers 21.
        let block = pool.new_block();
        until(
            "the clean job reaches the ASIC",
            Duration::from_secs(3),
            || asic.stats().last_job_id.as_deref() == Some(block.notify.job_id.as_str()),
        )
        .await;
        let before = code(&asic.stats(), 21);
        asic.bad_share(BadShare::StaleJob);
        until("stale share answered 21", Duration::from_secs(3), || {
            code(&asic.stats(), 21) > before
        })
        .await;
        asic.stop().await;

        // The pool's counters agree with the miner's, code by code.
        let s = asic.stats();
        let p = pool.stats();
        for c in [20, 21, 22, 23, 24] {
            assert_eq!(
                p.rejects_by_code.get(&c).copied().unwrap_or(0),
                code(&s, c),
                "code {c}"
            );
        }
        assert_eq!(code(&s, 20), 4);
        assert_eq!(p.workers["acct.bad-x"].rejects_by_code[&20], 1);
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn set_difficulty_and_set_extranonce_are_followed() {
    bounded(15, async {
        let pool = SimPool::start(pool_config()).await.expect("pool starts");
        let asic = SimAsic::start(asic_config(pool.addr(), "acct.follow"));
        let deaf = SimAsic::start(SimAsicConfig {
            extranonce_subscribe: false,
            ..asic_config(pool.addr(), "acct.deaf")
        });
        until("shares from both", Duration::from_secs(5), || {
            asic.stats().accepted >= 1 && deaf.stats().accepted >= 1
        })
        .await;

        pool.set_difficulty(3e-6);
        until("difficulty followed", Duration::from_secs(3), || {
            asic.stats().difficulty == 3e-6 && deaf.stats().difficulty == 3e-6
        })
        .await;
        let job = pool.new_job();
        let old_en1 = asic.stats().extranonce1;
        let deaf_en1 = deaf.stats().extranonce1;
        until(
            "shares on the job sent after the change",
            Duration::from_secs(8),
            || {
                pool.accepted_shares()
                    .iter()
                    .filter(|s| s.key.job_id == job.notify.job_id)
                    .count()
                    >= 2
            },
        )
        .await;
        for s in pool
            .accepted_shares()
            .iter()
            .filter(|s| s.key.job_id == job.notify.job_id)
        {
            assert_eq!(s.difficulty, 3e-6, "credited at the new difficulty");
            assert!(s.hash_difficulty >= 3e-6);
        }

        pool.set_extranonce(None);
        until("new extranonce1 taken", Duration::from_secs(3), || {
            let s = asic.stats();
            s.extranonce_changes == 1 && s.extranonce1 != old_en1
        })
        .await;
        let new_en1 = asic.stats().extranonce1;
        let accepted = pool.stats().accepted;
        until(
            "shares with the new extranonce1",
            Duration::from_secs(8),
            || {
                pool.accepted_shares()
                    .iter()
                    .skip(accepted as usize)
                    .any(|s| s.key.extranonce1 == new_en1)
            },
        )
        .await;
        let d = deaf.stats();
        assert_eq!(
            d.extranonce_changes, 0,
            "not subscribed to extranonce changes"
        );
        assert_eq!(d.extranonce1, deaf_en1);
        asic.stop().await;
        deaf.stop().await;
        assert_eq!(
            pool_code(&pool, 23),
            0,
            "no low-difficulty rejects across the changes"
        );
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn disconnect_fault_then_the_asic_reconnects_and_mines_again() {
    bounded(15, async {
        let pool = SimPool::start(pool_config()).await.expect("pool starts");
        let asic = SimAsic::start(asic_config(pool.addr(), "acct.dc"));
        until("a share", Duration::from_secs(5), || {
            asic.stats().accepted >= 1
        })
        .await;

        pool.set_fault(PoolFault::Disconnect);
        until("connection dropped", Duration::from_secs(3), || {
            pool.stats().connections_open == 0 && asic.stats().connects >= 2
        })
        .await;
        // While the fault is on, every new connection is dropped at once.
        let total = pool.stats().connections_total;
        until("refused reconnect attempts", Duration::from_secs(3), || {
            pool.stats().connections_total > total
        })
        .await;
        assert_eq!(pool.stats().connections_open, 0);

        pool.set_fault(PoolFault::None);
        let accepted = asic.stats().accepted;
        until("mining again", Duration::from_secs(5), || {
            asic.stats().accepted > accepted
        })
        .await;
        let s = asic.stats();
        assert!(s.reconnects >= 1 && s.connected);
        assert_eq!(pool.stats().connections_open, 1);
        asic.stop().await;
        pool.shutdown().await;
    })
    .await;
}

/// A raw line client for checks the ASIC cannot make.
struct Raw {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    wr: tokio::net::tcp::OwnedWriteHalf,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        let (rd, wr) = TcpStream::connect(addr)
            .await
            .expect("connect")
            .into_split();
        Raw {
            lines: BufReader::new(rd).lines(),
            wr,
        }
    }

    async fn send(&mut self, line: &str) {
        self.wr
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
    }

    /// The next line within `wait`, or `None`.
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        let line = tokio::time::timeout(wait, self.lines.next_line())
            .await
            .ok()?;
        let line = line.expect("read").expect("open connection");
        Some(serde_json::from_str(&line).expect("json line"))
    }

    /// Reads until the answer to `id`, returning it and the calls seen before it.
    async fn answer(&mut self, id: u64) -> (Value, Vec<Value>) {
        let mut calls = Vec::new();
        loop {
            let v = self.next(Duration::from_secs(3)).await.expect("an answer");
            if v["id"] == id && v.get("method").is_none() {
                return (v, calls);
            }
            calls.push(v);
        }
    }
}

#[tokio::test]
async fn handshake_is_ckpool_like_and_workers_are_checked_per_connection() {
    bounded(10, async {
        let pool = SimPool::start(pool_config()).await.expect("pool starts");
        let mut raw = Raw::connect(pool.addr()).await;
        raw.send(r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff","version-rolling.min-bit-count":2}]}"#).await;
        let (conf, _) = raw.answer(1).await;
        assert_eq!(conf["result"]["version-rolling"], true);
        assert_eq!(conf["result"]["version-rolling.mask"], "1fffe000");

        raw.send(r#"{"id":2,"method":"mining.subscribe","params":["raw/1"]}"#).await;
        let (sub, _) = raw.answer(2).await;
        assert_eq!(sub["result"][1].as_str().map(str::len), Some(8));
        assert_eq!(sub["result"][2], 8);
        raw.send(r#"{"id":3,"method":"mining.authorize","params":["acct.a","x"]}"#).await;
        let (auth, before) = raw.answer(3).await;
        assert_eq!(auth["result"], true);
        // set_difficulty and the first job come before the authorize answer.
        let methods: Vec<_> = before.iter().map(|v| v["method"].as_str().unwrap_or("")).collect();
        assert_eq!(methods, ["mining.set_difficulty", "mining.notify"]);
        assert_eq!(before[1]["params"][8], true);
        let job_id = before[1]["params"][0].as_str().expect("job id").to_owned();

        // As ckpool: a second authorize on the connection is never answered, and a
        // submit under any name but the authorized one is a worker mismatch.
        raw.send(r#"{"id":4,"method":"mining.authorize","params":["acct.b","x"]}"#).await;
        let submit = |id: u64, worker: &str, job: &str| {
            format!(r#"{{"id":{id},"method":"mining.submit","params":["{worker}","{job}","0000000000000000","{ntime}","00000000"]}}"#,
                ntime = before[1]["params"][7].as_str().unwrap_or("00000000"))
        };
        raw.send(&submit(5, "acct.b", &job_id)).await;
        let (mismatch, between) = raw.answer(5).await;
        assert!(between.iter().all(|v| v["id"] != 4), "second authorize answered: {between:?}");
        assert_eq!(mismatch["error"], json!([20, "Worker mismatch", null]));
        assert_eq!(pool.stats().authorizes_ignored, 1);
        raw.send(&submit(6, "acct.a", "deadbeef")).await;
        let (stale, _) = raw.answer(6).await;
        assert_eq!(stale["result"], false);
        assert_eq!(stale["error"][0], 21);
        raw.send(r#"{"id":7,"method":"mining.foo","params":[]}"#).await;
        assert_eq!(raw.answer(7).await.0["error"][0], 20);
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_lenient_pool_takes_several_workers_on_one_connection() {
    bounded(15, async {
        let pool = SimPool::start(SimPoolConfig {
            authorizes_per_connection: 2,
            ..pool_config()
        })
        .await
        .expect("pool starts");
        let mut raw = Raw::connect(pool.addr()).await;
        raw.send(r#"{"id":1,"method":"mining.subscribe","params":["raw/1"]}"#)
            .await;
        raw.answer(1).await;
        for (id, worker) in [(2, "acct.a"), (3, "acct.b")] {
            raw.send(&format!(
                r#"{{"id":{id},"method":"mining.authorize","params":["{worker}","x"]}}"#
            ))
            .await;
            assert_eq!(raw.answer(id).await.0["result"], true, "{worker}");
        }
        // The third is past the limit: read, never answered, counted.
        raw.send(r#"{"id":4,"method":"mining.authorize","params":["acct.c","x"]}"#)
            .await;
        assert_eq!(raw.next(Duration::from_millis(300)).await, None);
        assert_eq!(pool.stats().authorizes_ignored, 1);
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn silence_fault_answers_nothing_but_keeps_the_socket() {
    bounded(10, async {
        let pool = SimPool::start(pool_config()).await.expect("pool starts");
        let asic = SimAsic::start(asic_config(pool.addr(), "acct.quiet"));
        until("a share", Duration::from_secs(5), || {
            asic.stats().accepted >= 1
        })
        .await;

        pool.set_fault(PoolFault::Silence);
        let mut raw = Raw::connect(pool.addr()).await;
        raw.send(r#"{"id":1,"method":"mining.subscribe","params":[]}"#)
            .await;
        assert!(
            raw.next(Duration::from_millis(400)).await.is_none(),
            "silent pool answered"
        );
        pool.new_job();
        assert!(
            raw.next(Duration::from_millis(200)).await.is_none(),
            "silent pool pushed a job"
        );
        let quiet = asic.stats();
        until("the ASIC keeps submitting", Duration::from_secs(5), || {
            asic.stats().submitted >= quiet.submitted + 3
        })
        .await;
        let later = asic.stats();
        assert!(
            later.accepted <= quiet.accepted + 1,
            "at most one answer was in flight"
        );
        assert!(pool.stats().lines_ignored >= 2);
        assert!(later.connected, "the socket stays open");

        pool.set_fault(PoolFault::None);
        raw.send(r#"{"id":2,"method":"mining.subscribe","params":[]}"#)
            .await;
        let (sub, _) = raw.answer(2).await;
        assert_eq!(sub["result"][2], 8, "the same socket is served again");
        asic.stop().await;
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn reject_all_fault_is_counted_on_both_sides() {
    bounded(10, async {
        let pool = SimPool::start(pool_config()).await.expect("pool starts");
        let asic = SimAsic::start(asic_config(pool.addr(), "acct.rej"));
        until("a share", Duration::from_secs(5), || {
            asic.stats().accepted >= 1
        })
        .await;
        pool.set_fault(PoolFault::RejectAll);
        until("rejects", Duration::from_secs(5), || {
            code(&asic.stats(), 23) >= 3
        })
        .await;
        pool.set_fault(PoolFault::None);
        let accepted = asic.stats().accepted;
        until("accepted again", Duration::from_secs(5), || {
            asic.stats().accepted > accepted
        })
        .await;
        asic.stop().await;
        assert_eq!(pool_code(&pool, 23), code(&asic.stats(), 23));
        assert_eq!(
            pool.stats().workers["acct.rej"].rejects_by_code[&23],
            code(&asic.stats(), 23)
        );
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn client_reconnect_moves_the_asic_to_another_pool() {
    bounded(10, async {
        let a = SimPool::start(SimPoolConfig {
            name: "a".into(),
            ..pool_config()
        })
        .await
        .expect("pool a");
        let b = SimPool::start(SimPoolConfig {
            name: "b".into(),
            ..pool_config()
        })
        .await
        .expect("pool b");
        let asic = SimAsic::start(asic_config(a.addr(), "acct.move"));
        until("a share at a", Duration::from_secs(5), || {
            asic.stats().accepted >= 1
        })
        .await;
        a.reconnect(Some("127.0.0.1".into()), Some(b.addr().port()), Some(0));
        until("shares at b", Duration::from_secs(5), || {
            b.stats().accepted >= 1
        })
        .await;
        let s = asic.stats();
        assert_eq!(s.server, Some(b.addr()));
        assert_eq!(s.reconnect_requests, 1);
        until("the old connection closed", Duration::from_secs(3), || {
            a.stats().connections_open == 0
        })
        .await;
        asic.stop().await;
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_sleeping_asic_keeps_its_connection_but_does_not_hash() {
    bounded(10, async {
        let pool = SimPool::start(pool_config()).await.expect("pool starts");
        let power = SimMinerState::new(SimMinerSpec::default(), 25.0, Instant::now());
        power.set_awake(false, Instant::now());
        let asic = SimAsic::start(SimAsicConfig {
            power: Some(power.clone()),
            ..asic_config(pool.addr(), "acct.gate")
        });
        until("authorized", Duration::from_secs(3), || {
            asic.stats().authorized
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let asleep = asic.stats();
        assert_eq!((asleep.hashes, asleep.submitted), (0, 0));
        assert!(asleep.connected);
        power.set_awake(true, Instant::now());
        until("shares after waking", Duration::from_secs(5), || {
            asic.stats().accepted >= 1
        })
        .await;
        asic.stop().await;
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_easy_network_target_finds_blocks() {
    bounded(10, async {
        let pool = SimPool::start(SimPoolConfig {
            nbits: hashgate_lab::sim::pool::REGTEST_NBITS,
            ..pool_config()
        })
        .await
        .expect("pool starts");
        let asic = SimAsic::start(asic_config(pool.addr(), "acct.lucky"));
        until("accepted shares", Duration::from_secs(5), || {
            pool.stats().accepted >= 3
        })
        .await;
        asic.stop().await;
        let stats = pool.stats();
        // Regtest's target is above the share target: every share is a block.
        assert_eq!(stats.blocks_found, stats.accepted);
        assert!(pool.accepted_shares().iter().all(|s| s.block));
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn bad_config_is_refused_before_binding() {
    for config in [
        SimPoolConfig {
            extranonce1_size: 0,
            ..pool_config()
        },
        SimPoolConfig {
            extranonce2_size: 17,
            ..pool_config()
        },
        SimPoolConfig {
            difficulty: -1.0,
            ..pool_config()
        },
        SimPoolConfig {
            nbits: 0x2300_0001,
            ..pool_config()
        },
        SimPoolConfig {
            job_interval: Some(Duration::ZERO),
            ..pool_config()
        },
    ] {
        let err = SimPool::start(config).await.expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("sim pool"), "{err}");
    }
}

/// Whether this share meets difficulty 1e-6 (checked by the proxy-side validator).
fn meets(job: &Job, en1: &[u8], en2: &[u8], nonce: u32) -> bool {
    let policy = SubmitPolicy::new(en2.len(), Difficulty::new(1e-6).expect("ok").to_target());
    let submit = ShareInput {
        extranonce1: en1,
        extranonce2: en2,
        ntime: job.ntime(),
        nonce,
        version_bits: None,
    };
    validate(job, &submit, &policy).is_ok()
}

/// A share at difficulty 1e-6 on `job` for `en1`, found by the sim ASIC's hashing core
/// (extranonce2 of 8 bytes, no rolling); returns its extranonce2 and nonce.
fn find_share(job: &Job, en1: &[u8]) -> (Vec<u8>, u32) {
    let target = Difficulty::new(1e-6).expect("ok").to_target();
    let mut work = Work::new(Arc::new(job.clone()), en1.to_vec(), 8, 0, 0);
    let share = (0..1000)
        .find_map(|_| work.hash(1000, &target).0.into_iter().next())
        .expect("a share in a million hashes");
    assert!(meets(job, en1, &share.extranonce2, share.nonce));
    (share.extranonce2, share.nonce)
}

#[tokio::test]
async fn raw_submits_are_judged_strictly_and_survive_set_extranonce() {
    bounded(10, async {
        let pool = SimPool::start(pool_config()).await.expect("pool starts");
        let mut raw = Raw::connect(pool.addr()).await;
        raw.send(r#"{"id":1,"method":"mining.subscribe","params":["raw/1"]}"#).await;
        let (sub, _) = raw.answer(1).await;
        let en1_a = hex_bytes(&sub["result"][1]);
        raw.send(r#"{"id":2,"method":"mining.extranonce.subscribe","params":[]}"#).await;
        raw.send(r#"{"id":3,"method":"mining.authorize","params":["acct.raw","x"]}"#).await;
        let (_, calls) = raw.answer(3).await;
        let notify = calls
            .iter()
            .find(|v| v["method"] == "mining.notify")
            .expect("first job");
        let job = job_from_notify(&notify["params"]);
        let ntime = format!("{:08x}", job.ntime());
        let submit = |id: u64, en2: &str, ntime: &str, nonce: u32, extra: &str| {
            format!(
                r#"{{"id":{id},"method":"mining.submit","params":["acct.raw","{}","{en2}","{ntime}","{nonce:08x}"{extra}]}}"#,
                job.id()
            )
        };
        let (en2, good) = find_share(&job, &en1_a);
        let en2_hex = hex::encode(&en2);
        let bad = (1..)
            .map(|d| good.wrapping_add(d))
            .find(|&n| !meets(&job, &en1_a, &en2, n))
            .expect("a failing nonce");

        raw.send(&submit(10, &en2_hex, &ntime, bad, "")).await;
        assert_eq!(raw.answer(10).await.0["error"][0], 23, "tampered nonce");
        raw.send(&submit(11, "00", &ntime, good, "")).await;
        assert_eq!(raw.answer(11).await.0["error"][0], 20, "short extranonce2");
        let late = format!("{:08x}", job.ntime() + 7200);
        raw.send(&submit(12, &en2_hex, &late, good, "")).await;
        assert_eq!(raw.answer(12).await.0["error"][0], 20, "ntime +2 h");
        raw.send(&submit(13, &en2_hex, &ntime, good, r#","00002000""#)).await;
        assert_eq!(raw.answer(13).await.0["error"][0], 20, "version bits never negotiated");

        // A share found on extranonce1 A, submitted after the pool moved to B: honest work.
        pool.set_extranonce(None);
        let mut en1_b = None;
        while en1_b.is_none() {
            let v = raw.next(Duration::from_secs(3)).await.expect("set_extranonce");
            if v["method"] == "mining.set_extranonce" {
                en1_b = Some(hex_bytes(&v["params"][0]));
            }
        }
        assert_ne!(en1_b.as_deref(), Some(en1_a.as_slice()), "a fresh extranonce1");
        raw.send(&submit(14, &en2_hex, &ntime, good, "")).await;
        let (ok, _) = raw.answer(14).await;
        assert_eq!(ok["result"], true, "{ok}");
        raw.send(&submit(15, &en2_hex, &ntime, good, "")).await;
        assert_eq!(raw.answer(15).await.0["error"][0], 22, "duplicate");
        // Work on an extranonce1 this connection never had is worthless here.
        let (foreign_en2, foreign) = find_share(&job, &[9, 9, 9, 9]);
        let en1_b = en1_b.unwrap_or_default();
        if !meets(&job, &en1_a, &foreign_en2, foreign) && !meets(&job, &en1_b, &foreign_en2, foreign)
        {
            let en2 = hex::encode(&foreign_en2);
            raw.send(&submit(16, &en2, &ntime, foreign, "")).await;
            assert_eq!(raw.answer(16).await.0["error"][0], 23, "foreign extranonce1");
        }
        let stats = pool.stats();
        assert_eq!(stats.accepted, 1);
        assert_eq!(pool.accepted_shares()[0].key.extranonce1, en1_a);
        pool.shutdown().await;
    })
    .await;
}

/// A share for `job` on `en1` meeting difficulty 1e-6 but not `above`.
fn find_share_below(job: &Job, en1: &[u8], above: f64) -> (Vec<u8>, u32) {
    let target = Difficulty::new(1e-6).expect("ok").to_target();
    let mut work = Work::new(Arc::new(job.clone()), en1.to_vec(), 8, 0, 0);
    (0..1000)
        .find_map(|_| {
            let (found, _) = work.hash(1000, &target);
            found.into_iter().find(|s| {
                let policy = SubmitPolicy::new(8, Difficulty::new(above).expect("ok").to_target());
                let submit = ShareInput {
                    extranonce1: en1,
                    extranonce2: &s.extranonce2,
                    ntime: s.ntime,
                    nonce: s.nonce,
                    version_bits: None,
                };
                validate(job, &submit, &policy).is_err()
            })
        })
        .map(|s| (s.extranonce2, s.nonce))
        .expect("a share in a million hashes")
}

#[tokio::test]
async fn a_raised_difficulty_spares_jobs_sent_before_it() {
    bounded(10, async {
        let pool = SimPool::start(pool_config()).await.expect("pool starts");
        let mut raw = Raw::connect(pool.addr()).await;
        raw.send(r#"{"id":1,"method":"mining.subscribe","params":[]}"#).await;
        let (sub, _) = raw.answer(1).await;
        let en1 = hex_bytes(&sub["result"][1]);
        raw.send(r#"{"id":2,"method":"mining.authorize","params":["acct.d","x"]}"#).await;
        let (_, calls) = raw.answer(2).await;
        let first = job_from_notify(
            &calls
                .iter()
                .find(|v| v["method"] == "mining.notify")
                .expect("first job")["params"],
        );
        let submit = |id: u64, job: &Job, en2: &[u8], nonce: u32| {
            format!(
                r#"{{"id":{id},"method":"mining.submit","params":["acct.d","{}","{}","{:08x}","{nonce:08x}"]}}"#,
                job.id(),
                hex::encode(en2),
                job.ntime()
            )
        };
        let (en2, nonce) = find_share_below(&first, &en1, 1e-5);

        pool.set_difficulty(1e-5);
        let v = raw.next(Duration::from_secs(3)).await.expect("set_difficulty");
        assert_eq!(v["method"], "mining.set_difficulty");
        raw.send(&submit(3, &first, &en2, nonce)).await;
        assert_eq!(raw.answer(3).await.0["result"], true, "old job, old difficulty");

        pool.new_job();
        let v = raw.next(Duration::from_secs(3)).await.expect("notify");
        let second = job_from_notify(&v["params"]);
        let (en2, nonce) = find_share_below(&second, &en1, 1e-5);
        raw.send(&submit(4, &second, &en2, nonce)).await;
        assert_eq!(raw.answer(4).await.0["error"][0], 23, "new job, new difficulty");
        let log = pool.accepted_shares();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].difficulty, 1e-6, "credited at the difficulty it was mined at");
        pool.shutdown().await;
    })
    .await;
}
