//! Checks shared by the load-generator tests.

use std::fmt::Display;

use hashgate_loadgen::LoadReport;

/// Every connection ready and held, every scheduled share sent and accepted, nothing
/// timed out, lost, unmatched or unsent, no error, and a latency sample per answer;
/// `context` is printed with any failure.
pub fn assert_every_share_accepted(r: &LoadReport, connections: usize, context: &dyn Display) {
    let s = &r.shares;
    assert_eq!(r.connections.ready, connections, "{context}");
    assert_eq!(r.connections.held_at_end, connections, "{context}");
    assert!(s.scheduled > 0, "{context}");
    assert_eq!(s.sent, s.scheduled, "{context}");
    assert_eq!(s.accepted, s.sent, "{context}");
    assert_eq!(s.rejected(), 0, "{context}");
    assert_eq!(
        (
            s.timeouts,
            s.lost_in_flight,
            s.unmatched_answers,
            s.not_sent,
            s.bad_lines
        ),
        (0, 0, 0, 0, 0),
        "{context}"
    );
    assert!(r.errors.is_empty(), "{context}");
    assert_eq!(r.latency.count, s.accepted, "{context}");
}
