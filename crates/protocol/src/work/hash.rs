//! A 32-byte SHA-256d result in its raw byte order.

use std::fmt;

use super::target::{DIFF1_F64, Target};

/// A SHA-256d output exactly as the hash function returns it ("internal" byte order).
///
/// Read as a little-endian integer it is what targets compare against; [`fmt::Display`]
/// shows it byte-reversed, the way block explorers and pools print hashes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hash256([u8; 32]);

impl Hash256 {
    /// Wraps raw hash bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Hash256(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The bytes in display order (reversed).
    pub fn to_display_bytes(&self) -> [u8; 32] {
        let mut b = self.0;
        b.reverse();
        b
    }

    /// The difficulty this hash achieves: diff1 / hash; infinite for an all-zero hash.
    pub fn difficulty(&self) -> f64 {
        DIFF1_F64 / Target::from_le_bytes(self.0).to_f64()
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.iter().rev() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash256({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_reversed_and_rates_difficulty() {
        let mut raw = [0u8; 32];
        raw[0] = 0xab;
        raw[28] = 0x01;
        let h = Hash256::from_bytes(raw);
        let s = h.to_string();
        assert!(s.starts_with("00000001") && s.ends_with("ab"), "{s}");
        // 2^224 + 0xab vs diff1 = 0xFFFF·2^208: difficulty ≈ 0xFFFF / 2^16.
        assert!((h.difficulty() - 65535.0 / 65536.0).abs() < 1e-12);
        assert_eq!(Hash256::from_bytes([0; 32]).difficulty(), f64::INFINITY);
    }
}
