#![no_main]
//! Untrusted register words from a Modbus device → every data type in both word orders:
//! decoding never panics, a wrong word count is an error, whatever decodes is finite and
//! encodes back to the same words (the decoder loses no bit, but for u64 past 2^53), and a point's scale never
//! turns a number into an infinity silently.
use hashgate_protocol::modbus::{
    DataType, DecodeError, Function, Point, Unit, WordOrder, decode, encode,
};
use libfuzzer_sys::fuzz_target;

const TYPES: [DataType; 7] = [
    DataType::U16,
    DataType::I16,
    DataType::U32,
    DataType::I32,
    DataType::U64,
    DataType::F32,
    DataType::F64,
];

fuzz_target!(|data: &[u8]| {
    let Some((&scale_byte, rest)) = data.split_first() else {
        return;
    };
    let words: Vec<u16> = rest
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    for data_type in TYPES {
        for order in [WordOrder::Big, WordOrder::Little] {
            match decode(&words, data_type, order) {
                Ok(value) => {
                    assert!(value.is_finite());
                    assert_eq!(words.len(), usize::from(data_type.words()));
                    // A u64 past 2^53 is rounded to the nearest double: exact only below.
                    if data_type != DataType::U64 || value < 9_007_199_254_740_992.0 {
                        assert_eq!(encode(value, data_type, order), words, "{data_type:?}");
                    }
                }
                Err(DecodeError::WordCount { expected, got, .. }) => {
                    assert_eq!(expected, data_type.words());
                    assert_eq!(got, words.len());
                    assert_ne!(got, usize::from(expected));
                }
                Err(DecodeError::NotFinite) => {
                    assert!(matches!(data_type, DataType::F32 | DataType::F64));
                }
            }
            let point = Point {
                function: Function::Holding,
                unit_id: 1,
                address: 0,
                data_type,
                word_order: order,
                // From 1e-38 to 1e38, negative for odd bytes.
                scale: 10f64.powi(i32::from(scale_byte % 77) - 38)
                    * if scale_byte & 1 == 1 { -1.0 } else { 1.0 },
                unit: Unit::Kw,
            };
            if let Ok(v) = point.value_in_base(&words) {
                assert!(v.is_finite());
            }
        }
    }
});
