//! Under which name shares go: the account by default; with per-miner names, a miner's
//! own name only once the pool has taken it, and the account for good on that connection
//! once the pool refuses or ignores one.

use super::*;
use crate::upstream::session::Fallback;

const PER_MINER: &str = "upstream_worker = \"per-miner\"";

/// The worker names of the submits written, in order.
fn submitted_as(h: &Harness) -> Vec<String> {
    h.sent("mining.submit")
        .iter()
        .map(|v| v["params"][0].as_str().unwrap().to_owned())
        .collect()
}

/// The names authorized after the handshake, in order.
fn worker_authorizes(h: &Harness) -> Vec<(u64, String)> {
    h.sent("mining.authorize")
        .iter()
        .skip(1)
        .map(|v| {
            (
                v["id"].as_u64().unwrap(),
                v["params"][0].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_default_submits_every_share_as_the_account_and_asks_for_no_name() {
    let mut h = Harness::new("", "");
    h.ready();
    h.submit("site.rig1");
    h.submit("other.rig2");
    assert_eq!(submitted_as(&h), ["site", "site"]);
    assert!(worker_authorizes(&h).is_empty());
}

#[test]
fn a_per_miner_name_is_used_once_the_pool_answers_its_authorize_true() {
    let mut h = Harness::new(PER_MINER, "");
    h.ready();
    h.submit("site.rig1");
    let asked = worker_authorizes(&h);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].1, "site.rig1");
    // A second miner waits until the pool has taken one name: a strict pool ignores
    // every authorize after the first.
    h.submit("site.rig2");
    assert_eq!(worker_authorizes(&h).len(), 1);
    h.answer(asked[0].0, "true", "null").unwrap();
    h.submit("site.rig1");
    h.submit("site.rig2");
    assert_eq!(worker_authorizes(&h).len(), 2, "now asked side by side");
    assert_eq!(
        submitted_as(&h),
        ["site", "site", "site.rig1", "site"],
        "a name goes on shares only once the pool said true"
    );
}

#[test]
fn a_refused_name_falls_back_to_the_account_for_good() {
    let mut h = Harness::new(PER_MINER, "");
    h.ready();
    h.submit("site.rig1");
    let (id, _) = worker_authorizes(&h)[0].clone();
    h.answer(id, "false", r#"[24,"Unauthorized worker",null]"#)
        .unwrap();
    for rig in ["site.rig1", "site.rig2", "site.rig3"] {
        h.submit(rig);
    }
    assert_eq!(worker_authorizes(&h).len(), 1, "nothing more is asked");
    assert!(submitted_as(&h).iter().all(|w| w == "site"));
    let fallbacks: Vec<_> = h
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::WorkerFallback(why) => Some(*why),
            _ => None,
        })
        .collect();
    assert_eq!(fallbacks, [Fallback::Refused]);
}

#[test]
fn an_ignored_name_falls_back_after_the_silence_timeout_and_the_pool_is_kept() {
    let mut h = Harness::new(PER_MINER, "silence_timeout_secs = 3");
    h.ready();
    h.run_to(1_000).unwrap();
    h.submit("site.rig1");
    let share = h.last_submit_id();
    h.answer(share, "true", "null").unwrap();
    // ckpool never answers a second authorize. It is not a dead pool: it answers shares.
    let mut fell_back_at = None;
    for ms in (1_100..=10_000).step_by(100) {
        h.run_to(ms).unwrap();
        if fell_back_at.is_none()
            && h.events
                .iter()
                .any(|e| matches!(e, SessionEvent::WorkerFallback(Fallback::Unanswered)))
        {
            fell_back_at = Some(ms);
        }
    }
    let at = fell_back_at.expect("fell back");
    assert!((3_900..=4_100).contains(&at), "fell back at {at} ms");
    h.submit("site.rig2");
    assert_eq!(worker_authorizes(&h).len(), 1);
    assert!(submitted_as(&h).iter().all(|w| w == "site"));
}

#[test]
fn the_worker_book_is_bounded() {
    let mut h = Harness::new(PER_MINER, "");
    h.ready();
    h.submit("site.first");
    let (id, _) = worker_authorizes(&h)[0].clone();
    h.answer(id, "true", "null").unwrap();
    let bound = super::super::submit::MAX_POOL_WORKERS;
    for n in 0..bound + 100 {
        h.submit(&format!("site.m{n}"));
    }
    assert_eq!(
        worker_authorizes(&h).len(),
        bound,
        "past the bound, new miners go under the account unasked"
    );
    assert_eq!(submitted_as(&h).last().unwrap(), "site");
}
