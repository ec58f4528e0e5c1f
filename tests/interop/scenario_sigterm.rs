//! Scenario 4: SIGTERM to hashgate mid-run, as a service manager stops it.
//!
//! hashgate promises (README) to stop taking miners, deliver pending shares within a grace
//! period, count what it could not deliver, and exit. The ledger must still balance:
//! every share the miner was told `true` is accepted by ckpool or counted undelivered.
//!
//! hashgate's status server stops at the signal, so its count of undelivered shares is
//! read as late as it answers (polled until it stops), plus the shares its log says were
//! still unanswered when its pool connections closed (`shares left without a pool verdict`,
//! `reason=shutdown`): the only record of them that survives the exit.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::accounting;
use crate::checks::{Checks, secs};
use crate::lab::{self, Lab};
use crate::status::{self, ShareSummary};
use crate::wait;

const POOL_DIFFICULTY: f64 = 0.001;
/// Mining before the signal: long enough for hashgate's vardiff to have spaced the shares
/// out and for its pool connection to have seen quiet stretches...
const MIN_BEFORE_SIGNAL: Duration = Duration::from_secs(15);
/// ...and at least this many answers to the miner...
const YAY_BEFORE_SIGNAL: usize = 10;
/// ...waited for at most this long.
const MAX_BEFORE_SIGNAL: Duration = Duration::from_secs(40);
/// The signal goes out right after the miner is told `true` for a share, when that share is
/// most likely still on its way to ckpool; polled this often, waited for this long.
const YAY_POLL: Duration = Duration::from_millis(2);
/// See [`YAY_POLL`].
const MAX_WAIT_FOR_YAY: Duration = Duration::from_secs(20);
/// hashgate's shutdown grace is min(submit timeout, 5 s); a second more to exit.
const EXIT_LIMIT: Duration = Duration::from_secs(6);

/// Worker names stay the site account: the per-miner naming fault is scenario 1's.
fn settings() -> String {
    lab::CPU_MINER_SETTINGS.replace("[proxy]\n", "[proxy]\nupstream_worker = \"account\"\n")
}

#[test]
#[ignore = "interop: needs the real peers (HASHGATE_PEERS, HASHGATE_PEERS_SRC; run by .ci/run)"]
fn sigterm_to_hashgate_mid_run() {
    let lab = Lab::new("sigterm");
    let pool = lab.ckpool("pool", POOL_DIFFICULTY);
    let mut hashgate = lab.hashgate(&settings(), &[pool.port]);
    let mut miner = lab.cpuminer("cpu1", hashgate.miner_addr);
    let mining = Instant::now();
    std::thread::sleep(MIN_BEFORE_SIGNAL);
    let _ = wait::until_true(MAX_BEFORE_SIGNAL.saturating_sub(mining.elapsed()), || {
        miner.log.counts().yay >= YAY_BEFORE_SIGNAL
    });
    // The last summary the status server gives, polled from before the signal until it
    // stops answering.
    let http = hashgate.http_addr;
    let (tx, rx) = mpsc::channel::<ShareSummary>();
    let poller = std::thread::spawn(move || {
        while let Ok(s) = status::summary(http) {
            if tx.send(s).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let yay_then = miner.log.counts().yay;
    let fresh = Instant::now();
    while miner.log.counts().yay == yay_then && fresh.elapsed() < MAX_WAIT_FOR_YAY {
        std::thread::sleep(YAY_POLL);
    }
    hashgate.terminate();
    let signalled = Instant::now();
    let status = hashgate.wait_for_exit(EXIT_LIMIT);
    let exit_time = status.map(|_| signalled.elapsed());
    if status.is_none() {
        // Ends the poller too: a server that keeps answering would keep it going.
        hashgate.kill();
    }
    let _ = poller.join();
    let last_summary = rx.try_iter().last();
    miner.stop();
    pool.settle(Duration::from_secs(2));

    let mut checks = Checks::new("sigterm", lab.dir.clone());
    let c = pool.log.counts();
    let m = miner.log.counts();
    let left_at_shutdown = hashgate.log.shares_left_without_verdict("shutdown");
    checks.note(format!(
        "SIGTERM -> exit: {} (status {status:?})",
        secs(exit_time)
    ));
    checks.note(format!("ckpool: {c}"));
    checks.note(format!("cpuminer: {m}"));
    checks.note(format!(
        "hashgate: last summary before its status server closed: {}; shares its log says \
         were left without a verdict at shutdown: {left_at_shutdown}",
        last_summary
            .as_ref()
            .map_or_else(|| "none".to_owned(), ToString::to_string)
    ));
    checks.expect(status.is_some_and(|s| s.success()), || {
        format!(
            "hashgate did not exit cleanly within {} s of SIGTERM: {status:?}; log tail:\n{}",
            EXIT_LIMIT.as_secs(),
            hashgate.log.tail(8)
        )
    });
    checks.expect(c.rejected + c.invalid == 0, || {
        format!(
            "ckpool refused shares: {c}; first:\n{}\n{}",
            pool.log.excerpt("] Rejected client ", 2),
            pool.log.excerpt("] Invalid share from client ", 2)
        )
    });
    match last_summary {
        Some(s) => accounting::expect_every_yay_accounted(
            &mut checks,
            &m,
            &[("ckpool", c)],
            s.undelivered + left_at_shutdown,
        ),
        None => checks.expect(false, || {
            "hashgate's status server never answered: no undelivered count".to_owned()
        }),
    }
    checks.finish();
}
