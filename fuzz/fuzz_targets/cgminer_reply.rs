#![no_main]
//! Raw 4028 reply bytes → frame scanner → sanitiser → parser → status check: never panics,
//! and the frame scanner never claims an end past the input.
use hashgate_protocol::cgminer::{FrameScanner, check_status, parse_reply, sanitize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut scanner = FrameScanner::default();
    if let Some(end) = scanner.feed(data) {
        assert!(end <= data.len());
    } else {
        let _ = scanner.at_close();
    }
    let _ = sanitize(data);
    if let Ok(value) = parse_reply(data) {
        let _ = check_status(&value);
        // What parsed once re-serialises to strict JSON that parses again. (Not always to
        // the same value: serde_json's fast float parsing may move a huge integer by an ulp.)
        let text = value.to_string();
        assert!(parse_reply(text.as_bytes()).is_ok(), "{text}");
    }
});
