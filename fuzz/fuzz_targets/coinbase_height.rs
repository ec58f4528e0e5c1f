#![no_main]
//! A pool's coinb1 bytes → BIP34 height (the economics' block subsidy): never panics, and
//! reads the same bytes the same way.
use hashgate_protocol::work::coinbase_height;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(height) = coinbase_height(data) {
        // Re-reading the same bytes gives the same height: the reader keeps no state.
        assert_eq!(coinbase_height(data), Ok(height));
    }
});
