//! Free TCP ports on 127.0.0.1 for peers that cannot report the port they bound.

use std::net::{Ipv4Addr, TcpListener};
use std::time::{SystemTime, UNIX_EPOCH};

/// ckpool treats a `serverurl` port above 4000 as a high-difficulty port, so its ports
/// come from below that.
const CKPOOL_PORTS: std::ops::Range<u16> = 3000..4000;

/// A port the kernel says is free now (another process may still take it before the
/// caller binds it; callers that can, retry).
pub fn any_free() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 must work on a test machine")
}

/// A free port below 4000 for ckpool. Starts at a varying offset so that engineers running
/// the stage at once on one machine rarely race for the same port.
pub fn free_for_ckpool() -> u16 {
    let span = CKPOOL_PORTS.end - CKPOOL_PORTS.start;
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id();
    let start = (seed % u32::from(span)) as u16;
    (0..span)
        .map(|i| CKPOOL_PORTS.start + (start + i) % span)
        .find(|&port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok())
        .expect("no free port in 3000..4000 on 127.0.0.1")
}
