//! Difficulty in simulated time: vardiff retargets ride on the next job (or the tick),
//! shares at the previous difficulty count for a grace, suggestions and BIP310 minimums.

use std::time::Duration;

use serde_json::json;

use super::super::harness::{Harness, START, config};
use super::super::session::RETARGET_GRACE;
use hashgate_protocol::work::Target;

fn code(answer: &serde_json::Value) -> Option<i64> {
    answer["error"][0].as_i64()
}

/// Sixty shares in 0.6 s, far above one per 5 s target interval.
fn flood(h: &mut Harness, job: &str) {
    for _ in 0..60 {
        h.advance(Duration::from_millis(10));
        let (e2, nonce) = h.find_share(job, START, f64::MAX);
        assert_eq!(h.submit("rig1", job, &e2, nonce)["result"], json!(true));
    }
}

#[test]
fn a_vardiff_raise_goes_out_right_before_the_next_notify() {
    let mut h = Harness::new(&config());
    let job = h.publish(true, Target::ZERO).id.to_string();
    h.setup("rig1");
    flood(&mut h, &job);
    assert!(h.try_recv().is_none(), "nothing but answers before a job");
    let next = h.publish(false, Target::ZERO);
    assert_eq!(
        h.drain_methods(),
        ["mining.set_difficulty", "mining.notify"]
    );
    assert_eq!(
        h.miner.difficulty,
        Some(START * 4.0),
        "one step of max_step"
    );
    assert_eq!(h.miner.job.as_deref(), Some(&*next.id));
    assert_eq!(h.snapshot().difficulty, START * 4.0);
}

#[test]
fn without_a_new_job_a_retarget_goes_out_on_the_tick_with_the_job_under_a_new_id() {
    let mut h = Harness::new(&config());
    let job = h.publish(true, Target::ZERO).id.to_string();
    h.setup("rig1");
    flood(&mut h, &job);
    let tick = h.next_tick().expect("authorized: a tick is due");
    h.advance_to(tick - Duration::from_millis(1));
    assert!(h.try_recv().is_none(), "nothing before the tick");
    h.advance(Duration::from_millis(1));
    assert_eq!(
        h.drain_methods(),
        ["mining.set_difficulty", "mining.notify"]
    );
    assert_eq!(h.miner.difficulty, Some(START * 4.0));
    // The same work under a new id: cpuminer builds new work (at the new difficulty)
    // only when the id changes.
    assert_eq!(
        h.miner.job.as_deref(),
        Some(format!("{job}.1").as_str()),
        "the same job under its first alias"
    );
}

#[test]
fn shares_at_the_previous_difficulty_count_for_the_grace_after_a_retarget() {
    let mut h = Harness::new(&config());
    let old = h.publish(true, Target::ZERO).id.to_string();
    h.setup("rig1");
    let raised = START * 64.0;
    h.send("mining.suggest_difficulty", json!([raised]));
    assert_eq!(h.recv()["result"], json!(true));
    let new = h.publish(false, Target::ZERO).id.to_string();
    assert_eq!(
        h.drain_methods(),
        ["mining.set_difficulty", "mining.notify"]
    );
    let retarget = h.now();

    // In flight at the old difficulty: accepted and credited at it, on either job.
    h.advance(RETARGET_GRACE - Duration::from_millis(1));
    for job in [&old, &new] {
        let (e2, nonce) = h.find_share(job, START, raised);
        assert_eq!(h.submit("rig1", job, &e2, nonce)["result"], json!(true));
    }
    assert_eq!(h.snapshot().totals.accepted_difficulty, 2.0 * START);
    // One that meets the new difficulty is credited at it.
    let (e2, nonce) = h.find_share(&old, raised, f64::MAX);
    assert_eq!(h.submit("rig1", &old, &e2, nonce)["result"], json!(true));
    assert_eq!(
        h.snapshot().totals.accepted_difficulty,
        2.0 * START + raised
    );

    // The grace is over exactly RETARGET_GRACE after the retarget.
    h.advance_to(retarget + RETARGET_GRACE);
    let (e2, nonce) = h.find_share(&new, START, raised);
    assert_eq!(code(&h.submit("rig1", &new, &e2, nonce)), Some(23));
}

#[test]
fn work_under_the_id_sent_before_a_retarget_counts_at_its_difficulty_past_the_grace() {
    // cpuminer 2.5 in the interop stage: after a retarget on the tick, the alias's work
    // had the same header as its own, so it kept hashing the old id at the old target
    // until the pool's next job, 11 s and more after the retarget.
    let mut h = Harness::new(&config());
    let job = h.publish(true, Target::ZERO).id.to_string();
    h.setup("rig1");
    flood(&mut h, &job);
    let before = h.snapshot().totals.accepted_difficulty;
    let tick = h.next_tick().expect("authorized: a tick is due");
    h.advance_to(tick);
    assert_eq!(
        h.drain_methods(),
        ["mining.set_difficulty", "mining.notify"]
    );
    let raised = START * 4.0;
    assert_eq!(h.miner.difficulty, Some(raised));
    h.advance(RETARGET_GRACE * 3);

    // Under the old id: work at the difficulty that id was sent with, credited at it.
    let (e2, nonce) = h.find_share(&job, START, raised);
    assert_eq!(h.submit("rig1", &job, &e2, nonce)["result"], json!(true));
    assert_eq!(h.snapshot().totals.accepted_difficulty, before + START);
    // Meeting the new difficulty under the old id is credited at the new one.
    let (e2, nonce) = h.find_share(&job, raised, f64::MAX);
    assert_eq!(h.submit("rig1", &job, &e2, nonce)["result"], json!(true));
    assert_eq!(
        h.snapshot().totals.accepted_difficulty,
        before + START + raised
    );
    // Under the alias, sent at the new difficulty, the old one is too low.
    let alias = format!("{job}.1");
    let (e2, nonce) = h.find_share(&job, START, raised);
    assert_eq!(code(&h.submit("rig1", &alias, &e2, nonce)), Some(23));
}

#[test]
fn a_lowering_retarget_takes_effect_at_once() {
    let mut h = Harness::new(&config());
    let job = h.publish(true, Target::ZERO).id.to_string();
    h.setup("rig1");
    let lowered = START / 16.0;
    h.send("mining.suggest_difficulty", json!([lowered]));
    h.drain();
    h.publish(false, Target::ZERO);
    assert_eq!(
        h.drain_methods(),
        ["mining.set_difficulty", "mining.notify"]
    );
    assert_eq!(h.miner.difficulty, Some(lowered));
    let (e2, nonce) = h.find_share(&job, lowered, START);
    assert_eq!(h.submit("rig1", &job, &e2, nonce)["result"], json!(true));
    assert_eq!(h.snapshot().totals.accepted_difficulty, lowered);
}

#[test]
fn a_silent_new_miner_is_probed_down_on_its_ticks_with_the_job_again() {
    let mut h = Harness::new(&config());
    let job = h.publish(true, Target::ZERO).id.to_string();
    h.setup("rig1");
    let t = h.target_interval();
    h.advance(t - Duration::from_millis(1));
    assert!(h.try_recv().is_none(), "{:?}", h.drain());
    // A whole interval without a share: halved, with the job again so it applies now.
    h.advance(Duration::from_millis(1));
    assert_eq!(
        h.drain_methods(),
        ["mining.set_difficulty", "mining.notify"]
    );
    assert_eq!(h.miner.difficulty, Some(START / 2.0));
    assert_eq!(h.miner.job.as_deref(), Some(format!("{job}.1").as_str()));
    h.advance(t);
    assert_eq!(
        h.drain_methods(),
        ["mining.set_difficulty", "mining.notify"]
    );
    assert_eq!(h.miner.difficulty, Some(START / 8.0), "then by 4");
    // A job in between does not postpone the next step.
    h.advance(t / 2);
    h.publish(false, Target::ZERO);
    assert_eq!(h.drain_methods(), ["mining.notify"]);
    h.advance(t / 2);
    assert_eq!(
        h.drain_methods(),
        ["mining.set_difficulty", "mining.notify"]
    );
    assert_eq!(h.miner.difficulty, Some(START / 64.0));
}

#[test]
fn a_working_miner_that_goes_quiet_is_lowered_only_after_quiet_intervals() {
    let mut h = Harness::new(&config());
    let job = h.publish(true, Target::ZERO).id.to_string();
    h.setup("rig1");
    let (e2, nonce) = h.find_share(&job, START, f64::MAX);
    assert_eq!(h.submit("rig1", &job, &e2, nonce)["result"], json!(true));
    // One share in: silence is judged over (1 + 1) · 12 target intervals, not one.
    let quiet = h.target_interval() * 24;
    h.advance(quiet - Duration::from_millis(1));
    assert!(h.try_recv().is_none(), "{:?}", h.drain());
    h.advance(Duration::from_millis(1));
    assert_eq!(
        h.drain_methods(),
        ["mining.set_difficulty", "mining.notify"]
    );
    assert_eq!(
        h.miner.difficulty,
        Some(START / 4.0),
        "one step of max_step"
    );
    assert_eq!(h.miner.job.as_deref(), Some(format!("{job}.1").as_str()));
}

#[test]
fn a_suggestion_is_honoured_within_the_site_bounds() {
    let mut cfg = config();
    cfg.vardiff.min_difficulty = START / 1024.0;
    cfg.vardiff.max_difficulty = START * 1024.0;
    // Before subscribe: it is the first difficulty the miner gets.
    let mut h = Harness::new(&cfg);
    h.publish(true, Target::ZERO);
    h.send_raw(r#"{"id":null,"method":"mining.suggest_difficulty","params":[1e30]}"#);
    h.setup("rig1");
    assert_eq!(
        h.miner.difficulty,
        Some(START * 1024.0),
        "clamped to the maximum"
    );
    // After authorize: it goes out with the next job, clamped to the minimum.
    let a = h.call("mining.suggest_difficulty", json!([1e-30]));
    assert_eq!(a["result"], json!(true));
    assert!(h.try_recv().is_none(), "nothing until a job");
    h.publish(false, Target::ZERO);
    assert_eq!(
        h.drain_methods(),
        ["mining.set_difficulty", "mining.notify"]
    );
    assert_eq!(h.miner.difficulty, Some(START / 1024.0));
    // Not a difficulty at all: refused as malformed, nothing changes.
    let a = h.call("mining.suggest_difficulty", json!([-1]));
    assert_eq!(a["error"][0], json!(20), "{a}");
    h.publish(false, Target::ZERO);
    assert_eq!(h.drain_methods(), ["mining.notify"]);
}

#[test]
fn configure_answers_each_extension_and_a_minimum_difficulty_is_a_floor() {
    let mut h = Harness::new(&config());
    let a = h.call(
        "mining.configure",
        json!([
            ["version-rolling", "minimum-difficulty", "subscribe-extranonce", "frob"],
            {"version-rolling.mask": "00ffe000", "minimum-difficulty.value": 2048}
        ]),
    );
    assert_eq!(
        a["result"],
        json!({
            "version-rolling": true,
            "version-rolling.mask": "00ffe000",
            "minimum-difficulty": true,
            "subscribe-extranonce": true,
            "frob": false
        })
    );
    h.publish(true, Target::ZERO);
    h.setup("rig1");
    assert_eq!(h.miner.difficulty, Some(2048.0));
    // Vardiff never goes below it, however quiet the miner is ...
    h.advance(Duration::from_secs(3600));
    assert!(
        h.drain()
            .iter()
            .all(|l| l["method"] != json!("mining.set_difficulty")),
        "lowered below the miner's minimum"
    );
    // ... nor does a suggestion.
    h.call("mining.suggest_difficulty", json!([1]));
    h.publish(false, Target::ZERO);
    assert_eq!(
        h.drain_methods(),
        ["mining.set_difficulty", "mining.notify"]
    );
    assert_eq!(h.miner.difficulty, Some(2048.0));
}

#[test]
fn a_minimum_difficulty_after_authorize_raises_the_miner_with_the_next_job() {
    let mut h = Harness::new(&config());
    h.publish(true, Target::ZERO);
    h.setup("rig1");
    let a = h.call(
        "mining.configure",
        json!([["minimum-difficulty"], {"minimum-difficulty.value": 64}]),
    );
    assert_eq!(a["result"], json!({"minimum-difficulty": true}));
    assert!(h.try_recv().is_none());
    h.publish(false, Target::ZERO);
    assert_eq!(
        h.drain_methods(),
        ["mining.set_difficulty", "mining.notify"]
    );
    assert_eq!(h.miner.difficulty, Some(64.0));
}

#[test]
fn a_suggested_difficulty_is_not_probed_down_after_one_silent_interval() {
    let mut h = Harness::new(&config());
    h.publish(true, Target::ZERO);
    h.send_raw(r#"{"id":null,"method":"mining.suggest_difficulty","params":[64]}"#);
    h.setup("rig1");
    assert_eq!(h.miner.difficulty, Some(64.0));
    // The miner named its difficulty: only the quiet rule (12 intervals) lowers it.
    h.advance(h.target_interval() * 12 - Duration::from_millis(1));
    assert!(h.try_recv().is_none(), "{:?}", h.drain());
    h.advance(Duration::from_millis(1));
    assert_eq!(
        h.drain_methods(),
        ["mining.set_difficulty", "mining.notify"]
    );
    assert_eq!(h.miner.difficulty, Some(16.0));
}

#[test]
fn a_minimum_of_zero_is_honoured_as_the_site_floor() {
    let mut h = Harness::new(&config());
    let a = h.call(
        "mining.configure",
        json!([["minimum-difficulty"], {"minimum-difficulty.value": 0}]),
    );
    assert_eq!(a["result"], json!({"minimum-difficulty": true}));
    h.publish(true, Target::ZERO);
    h.setup("rig1");
    assert_eq!(h.miner.difficulty, Some(START));
}

#[test]
fn a_share_under_a_retarget_alias_counts_once_for_its_job() {
    let mut h = Harness::new(&config());
    let job = h.publish(true, Target::ZERO).id.to_string();
    h.setup("rig1");
    let t = h.target_interval();
    h.advance(t);
    h.drain();
    let alias = format!("{job}.1");
    assert_eq!(h.miner.job.as_deref(), Some(alias.as_str()));
    let now = h.miner.difficulty.expect("told a difficulty");
    let (extranonce2, nonce) = h.find_share(&job, now, f64::INFINITY);
    let first = h.submit("rig1", &alias, &extranonce2, nonce);
    assert_eq!(first["result"], serde_json::json!(true), "{first}");
    // The same share under the job's original id is the same work: a duplicate.
    let again = h.submit("rig1", &job, &extranonce2, nonce);
    assert_eq!(code(&again), Some(22), "{again}");
    assert_eq!(h.snapshot().totals.accepted, 1);
}

/// A harness configuration whose one listener narrows the site's wide range to
/// `[START / 2, START * 2]`.
fn narrow_listener() -> crate::config::Config {
    let text = format!(
        "[proxy]\naccount = \"site\"\n[[pools]]\nurl = \"stratum+tcp://127.0.0.1:1\"\n\
         [vardiff]\nmin_difficulty = {:e}\nmax_difficulty = {:e}\n\
         [[listeners]]\nname = \"home\"\nlisten = \"127.0.0.1:0\"\n\
         min_difficulty = {:e}\nmax_difficulty = {:e}\ninitial_difficulty = {START:e}\n",
        2f64.powi(-40),
        2f64.powi(40),
        START / 2.0,
        START * 2.0,
    );
    crate::config::Config::from_toml(&text).expect("valid")
}

#[test]
fn vardiff_raises_only_to_the_listeners_ceiling() {
    let mut h = Harness::new(&narrow_listener());
    let job = h.publish(true, Target::ZERO).id.to_string();
    h.setup("rig1");
    assert_eq!(h.miner.difficulty, Some(START), "the listener's start");
    // A flood asks for 4× (as above, where the site's range allows it); the port stops it
    // at its ceiling.
    flood(&mut h, &job);
    h.publish(false, Target::ZERO);
    assert_eq!(
        h.drain_methods(),
        ["mining.set_difficulty", "mining.notify"]
    );
    assert_eq!(h.miner.difficulty, Some(START * 2.0));
}

#[test]
fn a_silent_miner_is_probed_down_only_to_the_listeners_floor() {
    let mut h = Harness::new(&narrow_listener());
    h.publish(true, Target::ZERO);
    h.setup("rig1");
    for _ in 0..8 {
        let tick = h.next_tick().expect("a tick is due");
        h.advance_to(tick);
        h.drain();
    }
    assert_eq!(h.miner.difficulty, Some(START / 2.0));
}
