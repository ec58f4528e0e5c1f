//! The difficulty asked of the pool follows the channel's hashrate.

use super::*;

/// Runs the clock to `to` ms after the start while the channel's miners are credited
/// `per_tick` difficulty every tick and the pool sends a job every 30 s.
fn mine(h: &mut Harness, to: u64, per_tick: f64) {
    let start = u64::try_from(h.now.duration_since(h.t0).as_millis()).unwrap();
    for ms in (start..to).step_by(100) {
        h.hashrate.record(h.now, per_tick);
        if ms % 30_000 == 0 && ms > 0 {
            h.pool(&notify(&format!("j{ms}"), false)).unwrap();
        }
        h.run_to(ms + 100).unwrap();
    }
}

#[test]
fn the_fitting_difficulty_is_asked_once_the_rate_is_known_and_followed_when_set() {
    let mut h = Harness::new("upstream_shares_per_sec = 0.5", "");
    h.ready();
    // 1,000 diff-1 shares a second: at 0.5 shares/s the fitting difficulty is 2,000.
    mine(&mut h, 14_900, 100.0);
    assert!(
        h.sent("mining.suggest_difficulty").is_empty(),
        "no rate in the meter's first 15 s"
    );
    mine(&mut h, 16_000, 100.0);
    let asked = h.sent("mining.suggest_difficulty");
    assert_eq!(asked.len(), 1);
    let d = asked[0]["params"][0].as_f64().unwrap();
    assert!((1_900.0..=2_100.0).contains(&d), "suggested {d}");
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, SessionEvent::Suggested(x) if (x - d).abs() < d * 1e-9))
    );
    h.pool(&format!(
        r#"{{"id":null,"method":"mining.set_difficulty","params":[{d}]}}"#
    ))
    .unwrap();
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, SessionEvent::Difficulty(x) if *x == d))
    );
    // The job handed over after it carries the new difficulty.
    h.pool(&notify("j1", false)).unwrap();
    let Some(SessionEvent::Work(work)) = h
        .events
        .iter()
        .rev()
        .find(|e| matches!(e, SessionEvent::Work(_)))
    else {
        panic!("no work");
    };
    assert_eq!(
        work.target,
        hashgate_protocol::work::Difficulty::new(d)
            .unwrap()
            .to_target()
    );
    mine(&mut h, 60_000, 100.0);
    assert_eq!(
        h.sent("mining.suggest_difficulty").len(),
        1,
        "the pool fits now"
    );
}

#[test]
fn a_pool_that_keeps_its_own_difficulty_hears_again_only_after_a_four_times_move() {
    let mut h = Harness::new("upstream_shares_per_sec = 0.5", "");
    h.ready();
    mine(&mut h, 60_000, 100.0);
    assert_eq!(h.sent("mining.suggest_difficulty").len(), 1);
    // The channel grows tenfold; the meter's minute window follows within a minute.
    mine(&mut h, 180_000, 1_000.0);
    let asked = h.sent("mining.suggest_difficulty");
    assert_eq!(asked.len(), 2, "{asked:?}");
    let d = asked[1]["params"][0].as_f64().unwrap();
    assert!(d > 8_000.0, "suggested {d}");
}

#[test]
fn zero_shares_per_second_never_suggests() {
    let mut h = Harness::new("upstream_shares_per_sec = 0", "");
    h.ready();
    mine(&mut h, 30_000, 100.0);
    assert!(h.sent("mining.suggest_difficulty").is_empty());
}
