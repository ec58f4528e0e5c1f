//! When a pool connection is given up, judged from what the pool earns: unanswered
//! shares, no new work, a run of rejects; and what must not count against it.

use super::*;

#[test]
fn an_idle_pool_that_sends_jobs_is_kept_for_as_long_as_it_sends_them() {
    let mut h = Harness::new("", "");
    h.ready();
    for n in 1..=20u64 {
        h.run_to(n * 30_000).unwrap();
        h.pool(&notify(&format!("j{n}"), false)).unwrap();
    }
    // Ten minutes, and nothing but the handshake was ever asked of the pool.
    assert_eq!(h.written.len(), 3, "{:?}", h.written);
}

#[test]
fn an_unanswered_share_ends_the_connection_within_three_seconds() {
    let mut h = Harness::new("", "");
    h.ready();
    h.run_to(10_000).unwrap();
    h.submit("site.rig1");
    let (at, end) = h.run_to(20_000).unwrap_err();
    assert!(
        (12_900..=13_100).contains(&at),
        "ended at {at} ms, the share went out at 10,000"
    );
    assert!(
        matches!(failure(&end), UpstreamError::Unanswered(_)),
        "{end:?}"
    );
}

#[test]
fn answered_shares_keep_a_pool_whatever_their_number() {
    let mut h = Harness::new("", "");
    h.ready();
    for n in 1..=100u64 {
        h.run_to(n * 500).unwrap();
        h.submit("site.rig1");
        let id = h.last_submit_id();
        h.answer(id, "true", "null").unwrap();
    }
    h.run_to(60_000).unwrap();
    assert!(
        h.events
            .iter()
            .filter(|e| matches!(e, SessionEvent::Verdict(true)))
            .count()
            == 100
    );
}

#[test]
fn no_new_job_past_the_floor_ends_a_fast_pool() {
    let mut h = Harness::new("", "job_timeout_floor_secs = 120");
    h.ready();
    // A job every 10 s for a minute: 4× the cadence is under the 120 s floor.
    for n in 1..=6u64 {
        h.run_to(n * 10_000).unwrap();
        h.pool(&notify(&format!("j{n}"), false)).unwrap();
    }
    let (at, end) = h.run_to(400_000).unwrap_err();
    assert!(
        (179_900..=180_200).contains(&at),
        "ended at {at} ms; the last job came at 60,000"
    );
    assert!(
        matches!(failure(&end), UpstreamError::NoNewJob(_)),
        "{end:?}"
    );
}

#[test]
fn the_job_bound_follows_a_slow_pool_cadence() {
    let mut h = Harness::new("", "job_timeout_floor_secs = 120");
    h.ready();
    // A job a minute: the bound becomes 4 minutes, not the 2-minute floor.
    for n in 1..=5u64 {
        h.run_to(n * 60_000).unwrap();
        h.pool(&notify(&format!("j{n}"), false)).unwrap();
    }
    let (at, end) = h.run_to(1_000_000).unwrap_err();
    assert!(
        (539_900..=540_200).contains(&at),
        "ended at {at} ms; the last job came at 300,000"
    );
    assert!(
        matches!(failure(&end), UpstreamError::NoNewJob(_)),
        "{end:?}"
    );
}

#[test]
fn a_run_of_rejects_ends_the_connection_and_one_accept_resets_it() {
    let mut h = Harness::new("", "reject_streak = 20");
    h.ready();
    let reject = |h: &mut Harness| {
        h.submit("site.rig1");
        let id = h.last_submit_id();
        h.answer(id, "false", r#"[23,"Above target",null]"#)
    };
    for _ in 0..19 {
        reject(&mut h).unwrap();
    }
    h.submit("site.rig1");
    let id = h.last_submit_id();
    h.answer(id, "true", "null").unwrap();
    for _ in 0..19 {
        reject(&mut h).unwrap();
    }
    let end = reject(&mut h).unwrap_err();
    assert!(
        matches!(failure(&end), UpstreamError::RejectingAll(20)),
        "{end:?}"
    );
    assert_eq!(h.miner.totals().pool_rejected_total(), 39);
}

#[test]
fn a_suggested_difficulty_left_unanswered_costs_the_pool_nothing() {
    let mut h = Harness::new("upstream_shares_per_sec = 0.5", "silence_timeout_secs = 3");
    h.ready();
    // Miners credited a thousand diff-1 shares a second of work.
    for ms in (0..20_000u64).step_by(100) {
        h.hashrate.record(h.now, 100.0);
        h.run_to(ms + 100).unwrap();
    }
    assert_eq!(h.sent("mining.suggest_difficulty").len(), 1);
    // ckpool never answers it: a minute on, with jobs coming, the connection stands.
    for n in 1..=4u64 {
        h.run_to(20_000 + n * 15_000).unwrap();
        h.pool(&notify(&format!("j{n}"), false)).unwrap();
    }
}

#[test]
fn a_handshake_the_pool_never_answers_ends_within_the_silence_timeout() {
    let mut h = Harness::new("", "silence_timeout_secs = 3");
    let (at, end) = h.run_to(20_000).unwrap_err();
    // The unanswered handshake is found first, by the answer rule.
    assert!((2_900..=3_100).contains(&at), "ended at {at} ms");
    assert!(
        matches!(failure(&end), UpstreamError::Unanswered(_)),
        "{end:?}"
    );
}

#[test]
fn a_stalled_proxy_does_not_blame_the_pool() {
    let mut h = Harness::new("", "");
    h.ready();
    h.run_to(10_000).unwrap();
    h.submit("site.rig1");
    // The task does not run for 5 s (no tick): the answer waiting in the socket is read
    // on the first tick after.
    h.now += Duration::from_secs(5);
    h.session.on_tick(h.now).unwrap();
    let id = h.last_submit_id();
    h.answer(id, "true", "null").unwrap();
    h.run_to(30_000).unwrap();
}
