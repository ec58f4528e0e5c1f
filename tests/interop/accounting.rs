//! The share ledger across peers: every share a miner was told `true` must be accepted by
//! a pool or counted undelivered by the proxy; nothing may vanish in between.

use std::fmt::Write as _;

use crate::checks::Checks;
use crate::ckpool_log::PoolCounts;
use crate::cpuminer_log::MinerCounts;

/// A share the miner submits just before it is stopped can be accepted by the pool while
/// the miner never prints the answer: one share of slack on the pools' side only.
const IN_FLIGHT_AT_STOP: usize = 1;

/// Checks `miner`'s yay count against the `pools`' accepted counts (from their logs) plus
/// `undelivered` (the proxy's own count, the only place such shares are recorded).
pub fn expect_every_yay_accounted(
    checks: &mut Checks,
    miner: &MinerCounts,
    pools: &[(&str, PoolCounts)],
    undelivered: u64,
) {
    let accepted: usize = pools.iter().map(|(_, c)| c.accepted).sum();
    let undelivered = usize::try_from(undelivered).unwrap_or(usize::MAX);
    let explained = accepted.saturating_add(undelivered);
    let mut breakdown = String::new();
    for (name, c) in pools {
        let _ = write!(
            breakdown,
            "{name}: {} accepted, {} rejected, {} invalid; ",
            c.accepted, c.rejected, c.invalid
        );
    }
    let _ = write!(breakdown, "undelivered by the proxy: {undelivered}");
    checks.note(format!(
        "ledger: miner told yay {} time(s); {breakdown}",
        miner.yay
    ));
    checks.expect(miner.yay <= explained, || {
        format!(
            "{} share(s) the miner was told `true` were neither accepted by a pool nor \
             counted undelivered: miner yay {}, pools accepted {accepted} ({breakdown})",
            miner.yay - explained,
            miner.yay
        )
    });
    checks.expect(explained <= miner.yay + IN_FLIGHT_AT_STOP, || {
        format!(
            "pools accepted plus undelivered ({explained}) exceed what the miner was told \
             `true` ({}) by more than one in-flight share: shares counted twice? ({breakdown})",
            miner.yay
        )
    });
}
