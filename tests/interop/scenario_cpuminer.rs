//! Scenario 1's harness, proven on a run without a proxy.
//!
//! | test | path | expected today |
//! |---|---|---|
//! | `cpuminer_direct_to_ckpool_is_clean` | cpuminer → ckpool | passes: the harness counts right |

use std::time::{Duration, Instant};

use crate::accounting;
use crate::checks::Checks;
use crate::ckpool::Ckpool;
use crate::cpuminer::Cpuminer;
use crate::lab::Lab;
use crate::wait;

/// The pool's difficulty: cpuminer finds a share about every 0.5 s at it.
const POOL_DIFFICULTY: f64 = 0.001;
/// Shares ckpool must accept (issue #10).
const MIN_ACCEPTED: usize = 20;
/// Mining stops once the miner has had this many answers, or at the latest after
/// [`MAX_RUN`] (a loaded CI machine hashes slower).
const ENOUGH_YAY: usize = MIN_ACCEPTED + 5;
/// See [`ENOUGH_YAY`].
const MAX_RUN: Duration = Duration::from_secs(90);
/// Time for the last forwarded shares' verdicts to reach ckpool's log.
const SETTLE: Duration = Duration::from_secs(2);

#[test]
#[ignore = "interop: needs the real peers built from ../shared/peers (run by .ci/run)"]
fn cpuminer_direct_to_ckpool_is_clean() {
    let lab = Lab::new("cpuminer_direct");
    let pool = lab.ckpool("direct", POOL_DIFFICULTY);
    let mut miner = lab.cpuminer("cpu1", pool.addr());
    let started = Instant::now();
    mine(&miner, Duration::ZERO, started);
    miner.stop();
    pool.settle(SETTLE);

    let mut checks = Checks::new("cpuminer_direct", lab.dir.clone());
    let counts = pool.log.counts();
    let m = miner.log.counts();
    checks.note(format!(
        "{:.1} s of mining",
        started.elapsed().as_secs_f64()
    ));
    let tally = pool.log.share_tally();
    checks.note(format!("ckpool: {counts}"));
    checks.note(format!("ckpool share log: {tally}"));
    checks.note(format!("cpuminer: {m}"));
    expect_clean_pool(&mut checks, &pool, "", "");
    checks.expect(tally.accepted == counts.accepted, || {
        format!(
            "ckpool's share log has {} accepted record(s) but its log {} `Accepted client` \
             line(s): the harness reads one of them wrong",
            tally.accepted, counts.accepted
        )
    });
    // Nothing sits between them, so nothing can be undelivered.
    accounting::expect_every_yay_accounted(&mut checks, &m, &[("ckpool", counts)], 0);
    checks.finish();
}

/// Waits while `miner` mines: at least `min` since `since`, then until it has had
/// [`ENOUGH_YAY`] answers or [`MAX_RUN`] has passed.
fn mine(miner: &Cpuminer, min: Duration, since: Instant) {
    let left = min.saturating_sub(since.elapsed());
    std::thread::sleep(left);
    let _ = wait::until_true(MAX_RUN.saturating_sub(since.elapsed()), || {
        miner.log.counts().yay >= ENOUGH_YAY
    });
}

/// Issue #10's expectations of the pool: enough accepted, nothing refused, one connection;
/// `refused` and `reconnected` explain a broken one where the caller knows more.
fn expect_clean_pool(checks: &mut Checks, pool: &Ckpool, refused: &str, reconnected: &str) {
    let c = pool.log.counts();
    checks.expect(c.accepted >= MIN_ACCEPTED, || {
        format!(
            "ckpool accepted {} share(s), expected at least {MIN_ACCEPTED}",
            c.accepted
        )
    });
    checks.expect(c.rejected == 0 && c.invalid == 0, || {
        let seen = format!(
            "ckpool refused shares: {} `Rejected client`, {} `Invalid share` line(s); first:\n{}\n{}",
            c.rejected,
            c.invalid,
            pool.log.excerpt("] Rejected client ", 2),
            pool.log.excerpt("] Invalid share from client ", 2)
        );
        explained(seen, refused)
    });
    checks.expect(c.connections == 1, || {
        let seen = format!(
            "ckpool logged {} connection(s) over the run, expected exactly 1:\n{}",
            c.connections,
            pool.log.excerpt("] Connected new client ", 4)
        );
        explained(seen, reconnected)
    });
}

fn explained(seen: String, why: &str) -> String {
    if why.is_empty() {
        seen
    } else {
        format!("{seen}\n  {why}")
    }
}
