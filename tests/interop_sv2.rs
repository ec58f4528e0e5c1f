//! Interop stage, Stratum V2 (issue #16): SV1 miners (cpuminer and hashgate's simulated
//! ASIC, which rolls version bits) → hashgate → the SRI reference pool `pool_sv2`, fed by
//! `sv2-minitp`, a Template Provider stand-in that checks every block it is handed.
//! Every count is the peers' own: the pool's metrics endpoint for shares, the stand-in's
//! log for blocks, ckpool's and cpuminer's logs for the failover.
//!
//! `#[ignore]`d like `tests/interop.rs`: `.ci/run` builds the peers and runs this with
//! `HASHGATE_SV2_PEERS` (`bin/pool_sv2`, `bin/sv2-minitp`) and, for cpuminer, ckpool and
//! the fake bitcoind, `HASHGATE_PEERS` and `HASHGATE_PEERS_SRC`. Logs are left under
//! `target/tmp/interop/<test>/`.

// A test crate: unwraps are its failure reports, and it shares the SV1 interop modules,
// not all of which every scenario here uses.
#![allow(unreachable_pub, missing_docs, dead_code, clippy::unwrap_used)]

#[path = "interop/accounting.rs"]
mod accounting;
#[path = "interop/bitcoind.rs"]
mod bitcoind;
#[path = "interop/checks.rs"]
mod checks;
#[path = "interop/ckpool.rs"]
mod ckpool;
#[path = "interop/ckpool_log.rs"]
mod ckpool_log;
#[path = "interop/cpuminer.rs"]
mod cpuminer;
#[path = "interop/cpuminer_log.rs"]
mod cpuminer_log;
#[path = "interop/excerpt.rs"]
mod excerpt;
#[path = "interop/hashgate_log.rs"]
mod hashgate_log;
#[path = "interop/hashgate.rs"]
mod hashgate_proc;
#[path = "interop/lab.rs"]
mod lab;
#[path = "interop/peers.rs"]
mod peers;
#[path = "interop/ports.rs"]
mod ports;
#[path = "interop/process.rs"]
mod process;
#[path = "interop/status.rs"]
mod status;
#[path = "interop/tap.rs"]
mod tap;
#[path = "interop/throttle.rs"]
mod throttle;
#[path = "interop/wait.rs"]
mod wait;

#[path = "interop_sv2/pool_sv2.rs"]
mod pool_sv2;

use std::time::{Duration, Instant};

use hashgate_lab::sim::asic::{SimAsic, SimAsicConfig};

use checks::Checks;
use lab::{ACCOUNT, LIFETIME, Lab};
use pool_sv2::{AUTHORITY_PUBLIC, Minitp, OTHER_AUTHORITY, PoolSv2, Sv2Peers};

/// What a CPU miner needs (as `lab::CPU_MINER_SETTINGS`), with one name per connection.
const SETTINGS: &str = "[proxy]\nupstream_worker = \"account\"\ninitial_difficulty = 0.001\n\n\
                        [vardiff]\nmin_difficulty = 0.001\n";

/// [`SETTINGS`] with the miners' difficulty pinned at the pool's first one, so each CPU
/// miner sends about a share a second instead of vardiff's one per 5 s.
const PINNED: &str = "[proxy]\nupstream_worker = \"account\"\ninitial_difficulty = 0.001\n\n\
                      [vardiff]\nmin_difficulty = 0.001\nmax_difficulty = 0.001\n";

/// Network target of the stand-in's chain: difficulty ≈ 0.02, a block about every 15 s
/// from one cpuminer thread and the simulated ASIC, while the pool's share target (set
/// from the channel's first announced hashrate) is a hundred times easier.
const BITS: &str = "1d31ffce";

/// The simulated ASIC's hash rate (as the SV1 interop's rolling scenario).
const ASIC_HASHRATE: f64 = 2e6;

fn start_asic(runtime: &tokio::runtime::Runtime, addr: std::net::SocketAddr) -> SimAsic {
    let _in_runtime = runtime.enter();
    SimAsic::start(SimAsicConfig {
        hashrate: ASIC_HASHRATE,
        ..SimAsicConfig::new(addr, format!("{ACCOUNT}.asic1"))
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Submits in the pool's log whose header version is not the template's plain one.
fn rolled_submits(pool: &PoolSv2) -> usize {
    std::fs::read_to_string(&pool.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.contains("Received SubmitSharesExtended") && !l.contains("version=0x20000000")
        })
        .count()
}

#[test]
#[ignore = "interop: needs the real SV2 peers (HASHGATE_SV2_PEERS, HASHGATE_PEERS, HASHGATE_PEERS_SRC; run by .ci/run)"]
fn pool_sv2_accepts_shares_of_sv1_miners_and_a_block_is_found() {
    const MIN_ACCEPTED: u64 = 20;
    const MAX_MINING: Duration = Duration::from_secs(180);
    let lab = Lab::new("sv2_mining");
    let sv2 = Sv2Peers::from_env();
    let tp = Minitp::start(&sv2, &lab.dir, BITS, 280);
    let pool = PoolSv2::start(&sv2, &lab.dir, "pool_sv2", None, &tp, 10);
    let hashgate = hashgate_proc::start_urls(
        &lab.dir,
        PINNED,
        &[pool.url(AUTHORITY_PUBLIC)],
        ACCOUNT,
        LIFETIME,
    );
    let mut cpu = lab.cpuminer("cpu1", hashgate.miner_addr);
    let rt = runtime();
    let asic = start_asic(&rt, hashgate.miner_addr);
    let started = Instant::now();
    let _ = wait::until_true(MAX_MINING, || {
        pool.counts().accepted >= MIN_ACCEPTED
            && tp.valid_blocks() >= 1
            && rolled_submits(&pool) >= 3
    });
    rt.block_on(asic.stop());
    cpu.stop();
    // The pool acknowledges in batches and its metrics refresh every second.
    std::thread::sleep(Duration::from_secs(3));
    let counts = pool.counts();
    let asic_stats = asic.stats();
    let miner = cpu.log.counts();
    let summary = status::summary(hashgate.http_addr);

    let mut checks = Checks::new("sv2_mining", lab.dir.clone());
    checks.note(format!(
        "{:.1} s of mining",
        started.elapsed().as_secs_f64()
    ));
    checks.note(format!(
        "pool_sv2 (its metrics): {} accepted, {} rejected; {} submits with rolled versions in its log",
        counts.accepted,
        counts.rejected,
        rolled_submits(&pool)
    ));
    checks.note(format!(
        "sv2-minitp: {} valid block(s), {} refused",
        tp.valid_blocks(),
        tp.refused_blocks()
    ));
    checks.note(format!(
        "cpuminer: {} yay, {} boo; sim ASIC: {} accepted, {} rejected, mask {:?}",
        miner.yay, miner.boo, asic_stats.accepted, asic_stats.rejected, asic_stats.version_mask
    ));
    match &summary {
        Ok(s) => checks.note(format!("hashgate: {s}")),
        Err(e) => checks.note(format!("hashgate summary unreadable: {e}")),
    }
    checks.expect(counts.accepted >= MIN_ACCEPTED, || {
        format!(
            "pool_sv2 counted {} accepted shares, expected at least {MIN_ACCEPTED}",
            counts.accepted
        )
    });
    checks.expect(counts.rejected == 0, || {
        format!(
            "pool_sv2 rejected {} share(s): every share is checked by hashgate first",
            counts.rejected
        )
    });
    checks.expect(tp.valid_blocks() >= 1, || {
        "no block reached sv2-minitp".to_owned()
    });
    checks.expect(tp.refused_blocks() == 0, || {
        format!(
            "sv2-minitp refused {} block(s) the pool passed on",
            tp.refused_blocks()
        )
    });
    checks.expect(asic_stats.version_mask.is_some_and(|m| m != 0), || {
        "hashgate granted the simulated ASIC no version rolling".to_owned()
    });
    checks.expect(rolled_submits(&pool) >= 3, || {
        "no share with rolled version bits reached pool_sv2".to_owned()
    });
    checks.expect(miner.boo == 0 && asic_stats.rejected == 0, || {
        format!(
            "miners were refused shares: cpuminer {} boo, ASIC {}",
            miner.boo, asic_stats.rejected
        )
    });
    checks.expect(summary.as_ref().is_ok_and(|s| s.pool_rejected == 0), || {
        "hashgate counted pool rejects".to_owned()
    });
    checks.finish();
}

#[test]
#[ignore = "interop: needs the real SV2 peers (HASHGATE_SV2_PEERS, HASHGATE_PEERS, HASHGATE_PEERS_SRC; run by .ci/run)"]
fn a_wrong_authority_key_is_refused_with_a_clear_error() {
    let lab = Lab::new("sv2_wrong_key");
    let sv2 = Sv2Peers::from_env();
    let tp = Minitp::start(&sv2, &lab.dir, BITS, 60);
    let pool = PoolSv2::start(&sv2, &lab.dir, "pool_sv2", None, &tp, 10);
    let hashgate = hashgate_proc::start_urls(
        &lab.dir,
        SETTINGS,
        &[pool.url(OTHER_AUTHORITY)],
        ACCOUNT,
        LIFETIME,
    );
    const NEEDLE: &str = "the pool's certificate is not signed by the configured authority key";
    let refused = wait::until_true(Duration::from_secs(10), || hashgate.log.count(NEEDLE) >= 2);
    let metrics = status::get(hashgate.http_addr, "/metrics").unwrap_or_default();
    let failures: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("hashgate_upstream_sv2_handshake_failures_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    let mut checks = Checks::new("sv2_wrong_key", lab.dir.clone());
    checks.note(format!(
        "hashgate: {} refusal line(s), handshake failures counted {failures}",
        hashgate.log.count(NEEDLE)
    ));
    checks.expect(refused.is_some(), || {
        format!(
            "hashgate did not refuse the pool twice in 10 s; log tail:\n{}",
            hashgate.log.tail(10)
        )
    });
    checks.expect(failures >= 2, || {
        format!("handshake failures counted: {failures}")
    });
    checks.expect(pool.log_count("OpenExtendedMiningChannel") == 0, || {
        "a channel was opened on a pool whose key did not match".to_owned()
    });
    checks.finish();
}

#[test]
#[ignore = "interop: needs the real SV2 peers (HASHGATE_SV2_PEERS, HASHGATE_PEERS, HASHGATE_PEERS_SRC; run by .ci/run)"]
fn failover_from_pool_sv2_to_ckpool_and_back_without_a_miner_disconnect() {
    const BEFORE_KILL: u64 = 5;
    const DOWN: Duration = Duration::from_secs(8);
    let lab = Lab::new("sv2_failover");
    let sv2 = Sv2Peers::from_env();
    let tp = Minitp::start(&sv2, &lab.dir, BITS, 280);
    let mut pool = PoolSv2::start(&sv2, &lab.dir, "pool_sv2", None, &tp, 1);
    let port = pool.port;
    let ckpool = lab.ckpool("ckpool", 1e-4);
    let hashgate = hashgate_proc::start_urls(
        &lab.dir,
        SETTINGS,
        &[
            pool.url(AUTHORITY_PUBLIC),
            format!("stratum+tcp://{}", ckpool.addr()),
        ],
        ACCOUNT,
        LIFETIME,
    );
    let mut cpu = lab.cpuminer("cpu1", hashgate.miner_addr);
    let mut checks = Checks::new("sv2_failover", lab.dir.clone());
    let before = wait::until_true(Duration::from_secs(40), || {
        pool.counts().accepted >= BEFORE_KILL
    });
    checks.expect(before.is_some(), || {
        format!(
            "pool_sv2 accepted {} share(s) before the kill",
            pool.counts().accepted
        )
    });
    let ck_before = ckpool.log.counts().accepted;
    pool.kill();
    let killed = Instant::now();
    let to_ckpool = wait::until_true(Duration::from_secs(15), || {
        ckpool.log.counts().accepted > ck_before
    });
    checks.note(format!(
        "ckpool's first accept {} after pool_sv2 was killed",
        checks::secs(to_ckpool.map(|t| t - killed))
    ));
    checks.expect(to_ckpool.is_some(), || {
        "ckpool accepted nothing after the kill".to_owned()
    });
    std::thread::sleep(DOWN.saturating_sub(killed.elapsed()));
    let restarted = PoolSv2::start(&sv2, &lab.dir, "pool_sv2_again", Some(port), &tp, 1);
    let back_at = Instant::now();
    let back = wait::until_true(Duration::from_secs(45), || restarted.counts().accepted >= 3);
    checks.note(format!(
        "restarted pool_sv2's third accept {} after it came back",
        checks::secs(back.map(|t| t - back_at))
    ));
    checks.expect(back.is_some(), || {
        format!(
            "the restarted pool_sv2 accepted {} share(s)",
            restarted.counts().accepted
        )
    });
    cpu.stop();
    let miner = cpu.log.counts();
    checks.note(format!(
        "cpuminer: {} yay, {} boo ({} low difficulty), {} interrupted",
        miner.yay, miner.boo, miner.low_difficulty, miner.interrupted
    ));
    checks.expect(miner.interrupted == 0, || {
        format!("cpuminer lost its connection {} time(s)", miner.interrupted)
    });
    // Stale answers are fair across a failover; a share refused as too easy is not (it was
    // judged by a difficulty the miner was not working at).
    checks.expect(miner.low_difficulty == 0, || {
        format!(
            "cpuminer was told {} share(s) were below the difficulty:\n{}",
            miner.low_difficulty,
            cpu.log.excerpt("\"error\":[23,", 3)
        )
    });
    checks.expect(restarted.counts().rejected == 0, || {
        "pool_sv2 rejected shares after the failback".to_owned()
    });
    checks.finish();
}
