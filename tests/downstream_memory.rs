//! User-space heap held per idle miner connection, counted exactly.
//!
//! RSS figures (`hashgate-loadgen --target-pid`) are noisy and need a release build; this
//! test counts the bytes the proxy side keeps allocated per subscribed, authorized and
//! idle miner with a counting global allocator, so a regression (a buffer kept while idle,
//! a per-miner copy of something shareable) fails here first. The goal is 4 KiB
//! of RSS per idle miner; RSS adds the allocator's own overhead (about 8 bytes a chunk,
//! rounded to 16) to the bytes counted here, so the bound below leaves room for it.
//!
//! The miners are plain blocking `std` sockets driven from the test thread: they allocate
//! nothing while connecting and reading, so every byte counted after the baseline is the
//! proxy's.

// The workspace lints hold library code; a test or bench crate exports nothing and
// unwraps by design (a panic is its failure report).
#![allow(unreachable_pub, missing_docs, clippy::unwrap_used)]

#[path = "support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use hashgate_protocol::work::Target;
use support::downstream::*;

/// Bytes currently allocated by the whole test process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, with a running total of the bytes it has handed out.
struct Counting;

// SAFETY: every call is forwarded unchanged to `System`; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with this layout (the caller's contract).
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` is valid per the caller's contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Miners measured: enough that one-off growth (a map doubling) is a few bytes each, and
/// all on the harness's one channel (its 1-byte prefixes serve 256 miners).
const MINERS: usize = 250;

/// Heap bytes the proxy may keep per idle miner (3,581 measured in a debug build, where
/// futures are a little larger than in release, 62 of them since each kept job records
/// the difficulty it was sent at; see docs/BENCHES.md for the RSS per idle miner in
/// release with 10,000 of them).
const BOUND: isize = 3_600;

/// The setup lines every miner sends at once; the session answers them in order.
const SETUP: &[u8] =
    b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"cgminer/4.11.1\"]}\n\
{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"site.rig-0001\",\"x\"]}\n";

/// Lines a miner reads before it is idle: the two answers, set_difficulty and notify.
const SETUP_ANSWERS: usize = 4;

/// Connects one miner and reads until its first job: then its session is idle.
fn idle_miner(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream.write_all(SETUP).expect("send setup");
    let mut buf = [0u8; 4096];
    let mut lines = 0;
    while lines < SETUP_ANSWERS {
        let n = stream.read(&mut buf).expect("setup answers in time");
        assert!(n > 0, "the proxy closed a miner during setup");
        lines += buf.iter().take(n).filter(|b| **b == b'\n').count();
    }
    stream
}

/// The live byte count once it has stopped moving (sessions finish their last poll on
/// the runtime's threads after the miner has read its job).
fn settled_live() -> isize {
    let deadline = Instant::now() + WAIT;
    let mut last = LIVE.load(Ordering::Relaxed);
    let mut still = 0;
    while still < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let now = LIVE.load(Ordering::Relaxed);
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    last
}

#[test]
fn an_idle_miner_keeps_its_heap_under_the_bound() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let h = runtime.block_on(Harness::start(config()));
    h.publish(false, Target::MAX);
    // One miner first, so one-time allocations (maps, thread-locals, the metrics
    // recorder's keys) are in the baseline rather than the per-miner figure.
    let mut miners = Vec::with_capacity(MINERS + 1);
    miners.push(idle_miner(h.addr));
    let before = settled_live();
    for _ in 0..MINERS {
        miners.push(idle_miner(h.addr));
    }
    let after = settled_live();
    let per_miner = (after - before) / MINERS as isize;
    eprintln!("heap per idle miner: {per_miner} B ({before} -> {after} B for {MINERS})");
    assert_eq!(h.registry.miner_count(), MINERS + 1);
    assert!(
        per_miner <= BOUND,
        "{per_miner} B of heap per idle miner (bound {BOUND})"
    );
    h.shutdown.cancel();
    drop(miners);
    runtime.shutdown_timeout(WAIT);
}
