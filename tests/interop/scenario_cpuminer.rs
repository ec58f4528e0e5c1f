//! Scenario 1: cpuminer → hashgate → ckpool, and the two runs that prove its harness.
//!
//! | test | path | expected today |
//! |---|---|---|
//! | `cpuminer_direct_to_ckpool_is_clean` | cpuminer → ckpool | passes: the harness counts right |
//! | `cpuminer_through_hashgate_default_settings` | cpuminer → hashgate → ckpool | fails (issue #10) |
//! | `cpuminer_through_hashgate_account_worker` | same, `upstream_worker = "account"` | isolates the worker-name fault from the connection fault |

use std::time::{Duration, Instant};

use crate::accounting;
use crate::checks::Checks;
use crate::ckpool::Ckpool;
use crate::cpuminer::Cpuminer;
use crate::lab::{self, Lab};
use crate::status;
use crate::tap;
use crate::wait;

/// The pool's difficulty: cpuminer finds a share about every 0.5 s at it.
const POOL_DIFFICULTY: f64 = 0.001;
/// Shares ckpool must accept (issue #10).
const MIN_ACCEPTED: usize = 20;
/// A proxy starts before its miners (a restart, a site powering up) and must hold its
/// pool connection while nothing is submitted: this long with no miner at all.
const IDLE_BEFORE_MINERS: Duration = Duration::from_secs(5);
/// The run (the idle start included) lasts at least this long, so hashgate's vardiff has
/// slowed the miner to gaps of seconds between shares (quiet stretches a pool connection
/// must also survive)...
const MIN_RUN: Duration = Duration::from_secs(30);
/// ...and stops once the miner has had this many answers, or at the latest after
/// [`MAX_RUN`] (a loaded CI machine hashes slower).
const ENOUGH_YAY: usize = MIN_ACCEPTED + 5;
/// See [`ENOUGH_YAY`].
const MAX_RUN: Duration = Duration::from_secs(90);
/// Time for the last forwarded shares' verdicts to reach ckpool's log.
const SETTLE: Duration = Duration::from_secs(2);

#[test]
#[ignore = "interop: needs the real peers (HASHGATE_PEERS, HASHGATE_PEERS_SRC; run by .ci/run)"]
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

#[test]
#[ignore = "interop: needs the real peers (HASHGATE_PEERS, HASHGATE_PEERS_SRC; run by .ci/run)"]
fn cpuminer_through_hashgate_default_settings() {
    through_hashgate("cpuminer_default", lab::CPU_MINER_SETTINGS);
}

#[test]
#[ignore = "interop: needs the real peers (HASHGATE_PEERS, HASHGATE_PEERS_SRC; run by .ci/run)"]
fn cpuminer_through_hashgate_account_worker() {
    let settings =
        lab::CPU_MINER_SETTINGS.replace("[proxy]\n", "[proxy]\nupstream_worker = \"account\"\n");
    through_hashgate("cpuminer_account", &settings);
}

/// cpuminer through hashgate (configured by `settings`) to one ckpool, with a recording
/// relay in front of ckpool so failures can quote its answers.
fn through_hashgate(scenario: &'static str, settings: &str) {
    let lab = Lab::new(scenario);
    let pool = lab.ckpool("pool", POOL_DIFFICULTY);
    let relay = tap::start(pool.addr(), lab.dir.join("wire.txt"));
    let hashgate = lab.hashgate(settings, &[relay.addr.port()]);
    let connected = wait::until_true(Duration::from_secs(10), || pool.log.counts().authorised > 0);
    assert!(
        connected.is_some(),
        "{scenario}: hashgate never authorized at ckpool within 10 s; hashgate log tail:\n{}",
        hashgate.log.tail(15)
    );
    let started = Instant::now();
    std::thread::sleep(IDLE_BEFORE_MINERS);
    let mut miner = lab.cpuminer("cpu1", hashgate.miner_addr);
    mine(&miner, MIN_RUN, started);
    miner.stop();
    pool.settle(SETTLE);

    let mut checks = Checks::new(scenario, lab.dir.clone());
    let counts = pool.log.counts();
    let m = miner.log.counts();
    let wire = relay.facts();
    let summary = status::summary(hashgate.http_addr);
    checks.note(format!(
        "{:.1} s run ({} s idle, then mining)",
        started.elapsed().as_secs_f64(),
        IDLE_BEFORE_MINERS.as_secs()
    ));
    checks.note(format!("ckpool: {counts}"));
    checks.note(format!("ckpool share log: {}", pool.log.share_tally()));
    checks.note(format!("cpuminer: {m}"));
    checks.note(format!(
        "on the wire, ckpool answered {} submit(s) true, rejected {:?}; never answered {:?}",
        wire.submit_accepts, wire.submit_rejects, wire.unanswered
    ));
    checks.note(format!(
        "hashgate: {} pool connection(s) lost; its summary: {}",
        hashgate.log.count("pool connection lost"),
        summary
            .as_ref()
            .map_or_else(|e| e.to_string(), ToString::to_string)
    ));

    let refused_on_wire = format!(
        "ckpool's answers to the refused submits, on the wire: {:?}",
        wire.submit_rejects
    );
    let why_reconnects = format!(
        "why hashgate reconnected, from its log:\n{}\n  requests ckpool left unanswered \
         (wire): {:?}",
        hashgate.log.excerpt("pool connection lost", 3),
        wire.unanswered
    );
    expect_clean_pool(&mut checks, &pool, &refused_on_wire, &why_reconnects);
    checks.expect(m.interrupted == 0 && m.boo == 0, || {
        format!(
            "cpuminer saw {m}; hashgate's refusals as it received them:\n{}",
            miner.log.excerpt("\"result\":false", 3)
        )
    });
    match &summary {
        Ok(s) => accounting::expect_every_yay_accounted(
            &mut checks,
            &m,
            &[("ckpool", counts)],
            s.undelivered,
        ),
        Err(e) => checks.expect(false, || format!("hashgate's summary unreadable: {e}")),
    }
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
