//! Hex fields as Stratum writes them, decoded without a detour through `String`.
//!
//! Stratum V1 writes every binary field as lowercase hex (uppercase is accepted on input).
//! 32-bit fields (`version`, `nbits`, `ntime`, `nonce`, version bits and masks) are
//! big-endian hex of the number: `"6b052edf"` is `0x6b05_2edf`.

use bytes::{BufMut, BytesMut};

use super::error::ParseErrorKind;

/// The largest extranonce2 accepted, in bytes; real pools use 4 to 8.
pub const EXTRANONCE2_MAX: usize = 32;

/// A miner's extranonce2: up to [`EXTRANONCE2_MAX`] bytes stored inline, so a submit
/// carries it without a heap allocation.
#[derive(Clone, Copy)]
pub struct Extranonce2 {
    /// How many bytes of `bytes` are used.
    len: u8,
    /// The bytes, zero past `len` so that the derived `Hash` would agree with `Eq`.
    bytes: [u8; EXTRANONCE2_MAX],
}

impl Extranonce2 {
    /// Copies `bytes` into an extranonce2.
    ///
    /// # Errors
    /// [`ParseErrorKind::TooLong`] above [`EXTRANONCE2_MAX`] bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, ParseErrorKind> {
        let mut out = Self {
            len: 0,
            bytes: [0; EXTRANONCE2_MAX],
        };
        let slot = out
            .bytes
            .get_mut(..bytes.len())
            .ok_or(ParseErrorKind::TooLong {
                field: "extranonce2",
                max: EXTRANONCE2_MAX,
                got: bytes.len(),
            })?;
        slot.copy_from_slice(bytes);
        // Cannot truncate: bytes.len() <= EXTRANONCE2_MAX = 32 was just checked.
        out.len = bytes.len() as u8;
        Ok(out)
    }

    /// Decodes an extranonce2 from its hex text.
    ///
    /// # Errors
    /// [`ParseErrorKind::BadHex`] or [`ParseErrorKind::TooLong`].
    pub fn from_hex(field: &'static str, hex: &str) -> Result<Self, ParseErrorKind> {
        if hex.len() % 2 != 0 {
            return Err(ParseErrorKind::BadHex { field });
        }
        let got = hex.len() / 2;
        if got > EXTRANONCE2_MAX {
            return Err(ParseErrorKind::TooLong {
                field,
                max: EXTRANONCE2_MAX,
                got,
            });
        }
        let mut out = Self {
            len: 0,
            bytes: [0; EXTRANONCE2_MAX],
        };
        let slot = out
            .bytes
            .get_mut(..got)
            .ok_or(ParseErrorKind::BadHex { field })?;
        hex::decode_to_slice(hex, slot).map_err(|_| ParseErrorKind::BadHex { field })?;
        out.len = got as u8;
        Ok(out)
    }

    /// The bytes of the extranonce2.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether it is empty (a pool may set extranonce2_size 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl PartialEq for Extranonce2 {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Extranonce2 {}

impl std::hash::Hash for Extranonce2 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::fmt::Debug for Extranonce2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Extranonce2({})", hex::encode(self.as_bytes()))
    }
}

/// Decodes 8 hex digits as a big-endian `u32`.
///
/// # Errors
/// [`ParseErrorKind::BadLength`] unless exactly 4 bytes, [`ParseErrorKind::BadHex`].
pub(super) fn decode_u32(field: &'static str, hex: &str) -> Result<u32, ParseErrorKind> {
    decode_array::<4>(field, hex).map(u32::from_be_bytes)
}

/// Decodes exactly `N` bytes of hex.
///
/// # Errors
/// [`ParseErrorKind::BadLength`] or [`ParseErrorKind::BadHex`].
pub(super) fn decode_array<const N: usize>(
    field: &'static str,
    hex: &str,
) -> Result<[u8; N], ParseErrorKind> {
    if hex.len() != 2 * N {
        if hex.len() % 2 != 0 {
            return Err(ParseErrorKind::BadHex { field });
        }
        return Err(ParseErrorKind::BadLength {
            field,
            expected: N,
            got: hex.len() / 2,
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(hex, &mut out).map_err(|_| ParseErrorKind::BadHex { field })?;
    Ok(out)
}

/// Decodes hex of any even length into bytes.
///
/// # Errors
/// [`ParseErrorKind::BadHex`].
pub(super) fn decode_vec(field: &'static str, hex: &str) -> Result<Vec<u8>, ParseErrorKind> {
    hex::decode(hex).map_err(|_| ParseErrorKind::BadHex { field })
}

/// Appends `bytes` as lowercase hex.
pub(super) fn put_hex(buf: &mut BytesMut, bytes: &[u8]) {
    let start = buf.len();
    buf.put_bytes(0, 2 * bytes.len());
    if let Some(slot) = buf.get_mut(start..) {
        // Cannot fail: the slot was sized to exactly twice the input just above.
        let _ = hex::encode_to_slice(bytes, slot);
    }
}

/// Appends a `u32` as 8 big-endian lowercase hex digits.
pub(super) fn put_hex_u32(buf: &mut BytesMut, value: u32) {
    put_hex(buf, &value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u32_fields_are_big_endian_hex() {
        assert_eq!(decode_u32("ntime", "6b052edf"), Ok(0x6b05_2edf));
        assert_eq!(decode_u32("ntime", "6B052EDF"), Ok(0x6b05_2edf));
        let mut buf = BytesMut::new();
        put_hex_u32(&mut buf, 0x6b05_2edf);
        assert_eq!(&buf[..], b"6b052edf");
    }

    #[test]
    fn wrong_lengths_and_digits_are_typed() {
        assert_eq!(
            decode_u32("nonce", "00"),
            Err(ParseErrorKind::BadLength {
                field: "nonce",
                expected: 4,
                got: 1
            })
        );
        assert_eq!(
            decode_u32("nonce", "0000000"),
            Err(ParseErrorKind::BadHex { field: "nonce" })
        );
        assert_eq!(
            decode_u32("nonce", "0000000g"),
            Err(ParseErrorKind::BadHex { field: "nonce" })
        );
        assert_eq!(
            decode_vec("coinb1", "abc"),
            Err(ParseErrorKind::BadHex { field: "coinb1" })
        );
    }

    #[test]
    fn extranonce2_is_bounded_and_compares_by_content() {
        let a = Extranonce2::from_hex("extranonce2", "0000000000000001").expect("valid");
        assert_eq!(a.as_bytes(), &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            a,
            Extranonce2::new(&[0, 0, 0, 0, 0, 0, 0, 1]).expect("valid")
        );
        assert_ne!(a, Extranonce2::new(&[0, 0, 0, 0, 0, 0, 1]).expect("valid"));
        let long = "00".repeat(33);
        assert_eq!(
            Extranonce2::from_hex("extranonce2", &long),
            Err(ParseErrorKind::TooLong {
                field: "extranonce2",
                max: 32,
                got: 33
            })
        );
        assert!(
            Extranonce2::from_hex("extranonce2", "")
                .expect("empty is valid")
                .is_empty()
        );
    }
}
