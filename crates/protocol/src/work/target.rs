//! 256-bit targets: from and to pool difficulty, and from and to the compact `nbits` form.
//!
//! A hash meets a target when the hash, read as a little-endian 256-bit integer (the raw
//! SHA-256d output), is less than or equal to the target.

use std::cmp::Ordering;
use std::fmt;

use super::difficulty::Difficulty;
use super::hash::Hash256;

/// Difficulty 1 as a float: 0xFFFF · 2²⁰⁸, exact in an f64.
pub(crate) const DIFF1_F64: f64 = 65535.0 * f64::from_bits((1023 + 208) << 52);

/// 2⁴⁸: a scaled difficulty quotient at or above it overflows 256 bits.
const TWO_POW_48: f64 = 281_474_976_710_656.0;

/// A 256-bit share or block target.
///
/// Stored as four 64-bit limbs, least significant first, so a hash compares with four
/// integer comparisons.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// Limbs of the 256-bit value, least significant first.
    limbs: [u64; 4],
}

/// Why a compact `nbits` value does not encode a usable target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The sign bit is set with a non-zero mantissa: a negative target.
    #[error("nbits {0:08x} encodes a negative target")]
    Negative(u32),
    /// The exponent shifts the mantissa past 256 bits.
    #[error("nbits {0:08x} encodes a target above 2^256")]
    Overflow(u32),
}

impl Target {
    /// The zero target: only an all-zero hash meets it.
    pub const ZERO: Target = Target { limbs: [0; 4] };
    /// The largest target: every hash meets it.
    pub const MAX: Target = Target {
        limbs: [u64::MAX; 4],
    };
    /// The difficulty-1 target of the pool convention, 0x00000000FFFF0000…0000.
    pub const DIFF1: Target = Target {
        limbs: [0, 0, 0, 0x0000_0000_FFFF_0000],
    };

    /// Reads a target from 32 little-endian bytes (the byte order of a raw hash).
    pub fn from_le_bytes(bytes: [u8; 32]) -> Self {
        let mut limbs = [0u64; 4];
        for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(b);
        }
        Target { limbs }
    }

    /// Reads a target from 32 big-endian bytes (the order targets are written in hex).
    pub fn from_be_bytes(mut bytes: [u8; 32]) -> Self {
        bytes.reverse();
        Self::from_le_bytes(bytes)
    }

    /// The target as 32 little-endian bytes.
    pub fn to_le_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(self.limbs) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// The target as 32 big-endian bytes.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        let mut b = self.to_le_bytes();
        b.reverse();
        b
    }

    /// Whether `hash` meets this target (hash ≤ target as little-endian integers).
    #[inline]
    pub fn is_met_by(&self, hash: &Hash256) -> bool {
        Target::from_le_bytes(*hash.as_bytes()) <= *self
    }

    /// The target for a pool difficulty: ⌊diff1 / difficulty⌋, saturating at [`Target::MAX`].
    pub fn from_difficulty(difficulty: Difficulty) -> Self {
        // 0xFFFF / d computed in f64 then scaled by 2^208 exactly: relative error ≤ 2^-53.
        let q = 65535.0 / difficulty.get();
        if q >= TWO_POW_48 {
            return Target::MAX;
        }
        from_scaled_f64(q, 208)
    }

    /// The pool difficulty this target stands for (diff1 / target); infinite for zero.
    pub fn difficulty(&self) -> f64 {
        DIFF1_F64 / self.to_f64()
    }

    /// The target as an f64, rounded; monotonic in the target.
    pub fn to_f64(&self) -> f64 {
        let bits = self.bit_len();
        if bits <= 64 {
            return self.limbs[0] as f64;
        }
        // Keep the top 64 significant bits so the conversion stays monotonic.
        let shift = bits - 64;
        let top = self.shr(shift).limbs[0];
        top as f64 * 2f64.powi(shift as i32)
    }

    /// Decodes the compact `nbits` form of a block header.
    ///
    /// # Errors
    /// [`CompactError::Negative`] or [`CompactError::Overflow`] for encodings that do not
    /// name a target in 0..2²⁵⁶. A zero mantissa gives [`Target::ZERO`].
    pub fn from_compact(nbits: u32) -> Result<Self, CompactError> {
        let size = nbits >> 24;
        let word = nbits & 0x007f_ffff;
        if word == 0 {
            return Ok(Target::ZERO);
        }
        if nbits & 0x0080_0000 != 0 {
            return Err(CompactError::Negative(nbits));
        }
        if size <= 3 {
            let w = u64::from(word >> (8 * (3 - size)));
            return Ok(Target {
                limbs: [w, 0, 0, 0],
            });
        }
        let shift = 8 * (size - 3);
        let bits = 32 - word.leading_zeros();
        if shift + bits > 256 {
            return Err(CompactError::Overflow(nbits));
        }
        Ok(Target {
            limbs: [u64::from(word), 0, 0, 0],
        }
        .shl(shift))
    }

    /// Encodes the target in compact `nbits` form (truncated to its top 3 bytes).
    pub fn to_compact(&self) -> u32 {
        let mut size = self.bit_len().div_ceil(8);
        let mut compact = if size <= 3 {
            // Fits in 24 bits, the shift is at most 24.
            (self.limbs[0] << (8 * (3 - size))) as u32
        } else {
            self.shr(8 * (size - 3)).limbs[0] as u32
        };
        // The mantissa's top bit is the sign: move it out of the way.
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        compact | (size << 24)
    }

    /// Number of significant bits (0 for zero).
    fn bit_len(&self) -> u32 {
        for i in (0..4).rev() {
            if self.limbs[i] != 0 {
                return 64 * i as u32 + (64 - self.limbs[i].leading_zeros());
            }
        }
        0
    }

    /// Logical shift right by `n` bits (n ≥ 256 gives zero).
    fn shr(&self, n: u32) -> Target {
        let mut out = [0u64; 4];
        let (limb, bit) = ((n / 64) as usize, n % 64);
        for (i, o) in out.iter_mut().enumerate() {
            let lo = self.limbs.get(i + limb).copied().unwrap_or(0);
            let hi = self.limbs.get(i + limb + 1).copied().unwrap_or(0);
            *o = if bit == 0 {
                lo
            } else {
                (lo >> bit) | (hi << (64 - bit))
            };
        }
        Target { limbs: out }
    }

    /// Shift left by `n` bits, dropping bits past 2²⁵⁶.
    fn shl(&self, n: u32) -> Target {
        let mut out = [0u64; 4];
        let (limb, bit) = ((n / 64) as usize, n % 64);
        for (i, o) in out.iter_mut().enumerate() {
            let Some(src) = i.checked_sub(limb) else {
                continue;
            };
            let lo = self.limbs[src];
            let below = src.checked_sub(1).map(|j| self.limbs[j]).unwrap_or(0);
            *o = if bit == 0 {
                lo
            } else {
                (lo << bit) | (below >> (64 - bit))
            };
        }
        Target { limbs: out }
    }
}

/// Converts a non-negative finite `x` with x · 2^scale < 2²⁵⁶ into ⌊x · 2^scale⌋.
fn from_scaled_f64(x: f64, scale: i32) -> Target {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (mantissa, exp2) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    let shift = exp2 + scale;
    let base = Target {
        limbs: [mantissa, 0, 0, 0],
    };
    if shift >= 0 {
        base.shl(shift as u32)
    } else {
        base.shr(shift.unsigned_abs())
    }
}

impl Ord for Target {
    fn cmp(&self, other: &Self) -> Ordering {
        self.limbs.iter().rev().cmp(other.limbs.iter().rev())
    }
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}

/// Big-endian hex, the way targets are conventionally written.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for limb in self.limbs.iter().rev() {
            write!(f, "{limb:016x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: f64) -> Difficulty {
        Difficulty::new(x).unwrap()
    }

    #[test]
    fn diff1_is_the_pool_constant() {
        assert_eq!(
            Target::DIFF1.to_string(),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(Target::from_difficulty(d(1.0)), Target::DIFF1);
        assert_eq!(Target::DIFF1.difficulty(), 1.0);
    }

    #[test]
    fn fractional_difficulty_gives_a_larger_target() {
        let t = Target::from_difficulty(d(0.001));
        // 0xFFFF · 1000 = 0x3E7FC18, shifted by 208 bits; 0.001 is inexact in binary.
        assert!(t.to_string().starts_with("000003e7fc1"), "{t}");
        assert!((t.difficulty() - 0.001).abs() < 1e-15);
        let tiny = Target::from_difficulty(d(1e-6));
        assert!(tiny > t);
        assert!((tiny.difficulty() - 1e-6).abs() / 1e-6 < 1e-12);
        // Below 0xFFFF/2^48 the target saturates.
        assert_eq!(Target::from_difficulty(d(1e-12)), Target::MAX);
    }

    #[test]
    fn compact_known_values() {
        // Genesis nbits.
        assert_eq!(Target::from_compact(0x1d00ffff).unwrap(), Target::DIFF1);
        assert_eq!(Target::DIFF1.to_compact(), 0x1d00ffff);
        // Block 881423.
        let t = Target::from_compact(0x17029a8a).unwrap();
        assert_eq!(
            t.to_string(),
            "000000000000000000029a8a0000000000000000000000000000000000000000"
        );
        assert_eq!(t.to_compact(), 0x17029a8a);
        // Regtest-style small exponents.
        assert_eq!(Target::from_compact(0x01120000).unwrap().limbs[0], 0x12);
        assert_eq!(Target::from_compact(0x02123400).unwrap().limbs[0], 0x1234);
        assert_eq!(Target::from_compact(0x0), Ok(Target::ZERO));
        assert_eq!(Target::ZERO.to_compact(), 0);
    }

    #[test]
    fn compact_rejects_negative_and_overflow() {
        assert_eq!(
            Target::from_compact(0x04923456),
            Err(CompactError::Negative(0x04923456))
        );
        assert_eq!(
            Target::from_compact(0xff123456),
            Err(CompactError::Overflow(0xff123456))
        );
        assert_eq!(
            Target::from_compact(0x21010000),
            Err(CompactError::Overflow(0x21010000))
        );
        // Exactly at the edge: 0xff · 2^248 fits.
        assert!(Target::from_compact(0x220000ff).is_ok());
        assert!(Target::from_compact(0x22000100).is_err());
    }

    #[test]
    fn ordering_is_numeric() {
        let small = Target {
            limbs: [u64::MAX, 0, 0, 0],
        };
        let big = Target {
            limbs: [0, 1, 0, 0],
        };
        assert!(small < big);
        assert!(Target::ZERO < small && big < Target::MAX);
    }
}
