#![no_main]
//! Raw bytes -> `StratumCodec` -> typed messages. Never panics; every line that parses
//! re-encodes to a line that parses to the same message.

use bytes::BytesMut;
use hashgate_protocol::stratum::{CodecError, Message, StratumCodec};
use libfuzzer_sys::fuzz_target;

fn check(item: Result<Message, hashgate_protocol::stratum::ParseError>) {
    if let Ok(msg) = item {
        let bytes = msg.to_bytes();
        let line = bytes.strip_suffix(b"\n").expect("encoded lines end in a newline");
        assert!(!line.contains(&b'\n'), "encoded line holds a newline: {msg:?}");
        let again = Message::parse(line).expect("own output parses");
        assert_eq!(again, msg);
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks how the input is cut into reads, so partial frames are exercised.
    let Some((&step, data)) = data.split_first() else { return };
    let step = usize::from(step % 64) + 1;
    // A small cap so the over-long path is reached often.
    let mut codec = StratumCodec::new(4096);
    let mut buf = BytesMut::new();
    for chunk in data.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(item)) => check(item),
                Ok(None) => break,
                Err(CodecError::LineTooLong { .. }) => return,
                Err(CodecError::Io(e)) => panic!("no I/O here: {e}"),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(item)) => check(item),
            Ok(None) | Err(CodecError::LineTooLong { .. }) => break,
            Err(CodecError::Io(e)) => panic!("no I/O here: {e}"),
        }
    }
});
