//! The simulated pool's own share judge, written apart from `hashgate_protocol::work` on purpose.
//!
//! The pool is the referee in tests of the proxy's validator, so it must not share that
//! validator's code or its shortcuts (midstates, fixed-shape compression). Everything
//! here is the textbook recipe with `Vec`s and `sha2::Sha256`; speed does not matter.
//!
//! | step | recipe |
//! |---|---|
//! | coinbase | `coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2` |
//! | merkle root | `r = sha256d(coinbase)`, then `r = sha256d(r ‖ b)` for each branch `b` |
//! | version | `(job_version & !mask) | (bits & mask)` |
//! | header | `LE(version) ‖ prevhash (each 4-byte word reversed) ‖ r ‖ LE(ntime) ‖ LE(nbits) ‖ LE(nonce)` |
//! | verdict | `sha256d(header)` read as a little-endian 256-bit integer, compared with the target |

use sha2::{Digest, Sha256};

/// Bitcoin's double SHA-256.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    let once = Sha256::digest(data);
    Sha256::digest(once).into()
}

/// What a share is made of: the job's notify fields plus the miner's values.
#[derive(Debug, Clone, Copy)]
pub struct ShareParts<'a> {
    /// Stratum prevhash exactly as its hex decodes (word-swapped).
    pub prevhash: &'a [u8; 32],
    /// Coinbase part before the extranonces.
    pub coinb1: &'a [u8],
    /// Coinbase part after the extranonces.
    pub coinb2: &'a [u8],
    /// Merkle branch, leaf level first.
    pub branch: &'a [[u8; 32]],
    /// Block version as the job sent it.
    pub job_version: u32,
    /// Compact network target.
    pub nbits: u32,
    /// The connection's extranonce1.
    pub extranonce1: &'a [u8],
    /// The miner's extranonce2.
    pub extranonce2: &'a [u8],
    /// The miner's ntime.
    pub ntime: u32,
    /// The miner's nonce.
    pub nonce: u32,
    /// The rolled version bits, already checked against the mask.
    pub version_bits: Option<u32>,
    /// The negotiated version-rolling mask (0 when none).
    pub version_mask: u32,
}

/// The 80-byte header a share describes.
pub fn header(input: &ShareParts<'_>) -> [u8; 80] {
    let mut coinbase = Vec::new();
    coinbase.extend_from_slice(input.coinb1);
    coinbase.extend_from_slice(input.extranonce1);
    coinbase.extend_from_slice(input.extranonce2);
    coinbase.extend_from_slice(input.coinb2);
    let mut root = sha256d(&coinbase);
    for step in input.branch {
        let mut pair = Vec::with_capacity(64);
        pair.extend_from_slice(&root);
        pair.extend_from_slice(step);
        root = sha256d(&pair);
    }
    let version = match input.version_bits {
        Some(bits) => (input.job_version & !input.version_mask) | (bits & input.version_mask),
        None => input.job_version,
    };
    let mut out = Vec::with_capacity(80);
    out.extend_from_slice(&version.to_le_bytes());
    for word in input.prevhash.chunks(4) {
        out.extend(word.iter().rev());
    }
    out.extend_from_slice(&root);
    out.extend_from_slice(&input.ntime.to_le_bytes());
    out.extend_from_slice(&input.nbits.to_le_bytes());
    out.extend_from_slice(&input.nonce.to_le_bytes());
    let mut header = [0u8; 80];
    header.copy_from_slice(&out);
    header
}

/// A 256-bit number as 32 big-endian bytes, so `<=` on arrays is `<=` on numbers.
pub type BigEndian256 = [u8; 32];

/// A header hash turned into a big-endian number (SHA-256d output is little-endian).
pub fn hash_as_number(hash: &[u8; 32]) -> BigEndian256 {
    let mut n = *hash;
    n.reverse();
    n
}

/// The share target for a pool difficulty: `floor(0xFFFF·2^208 / difficulty)`, computed in
/// f64 (53 significant bits is plenty for a simulator) and laid out bit by bit.
///
/// A difficulty so small that the target passes 2^256 saturates to all ones (every hash
/// passes); a non-positive or NaN difficulty also does, since nothing can be below it.
pub fn target_for_difficulty(difficulty: f64) -> BigEndian256 {
    let diff1 = 65535.0 * 2f64.powi(208);
    let target = diff1 / difficulty;
    if !(target.is_finite() && difficulty > 0.0) || target >= 2f64.powi(256) {
        return [0xff; 32];
    }
    from_f64(target)
}

/// Writes a non-negative f64 below 2^256 as a 256-bit integer (fraction dropped).
fn from_f64(value: f64) -> BigEndian256 {
    let mut out = [0u8; 32];
    if value < 1.0 {
        return out;
    }
    // value = mantissa · 2^shift with a 53-bit integer mantissa.
    let exponent = value.log2().floor() as i32;
    let shift = exponent - 52;
    let mantissa = if shift >= 0 {
        (value / 2f64.powi(shift)) as u64
    } else {
        value as u64
    };
    let shift = shift.max(0) as u32;
    for bit in 0..64u32 {
        if (mantissa >> bit) & 1 == 1 {
            set_bit(&mut out, bit + shift);
        }
    }
    out
}

/// Sets bit `index` (0 = least significant) of a big-endian 256-bit number.
fn set_bit(number: &mut BigEndian256, index: u32) {
    let byte = 31usize.checked_sub((index / 8) as usize);
    if let Some(slot) = byte.and_then(|b| number.get_mut(b)) {
        *slot |= 1 << (index % 8);
    }
}

/// The network target a compact `nbits` stands for: `mantissa · 256^(exponent − 3)`.
///
/// Returns `None` for a negative mantissa or one that does not fit in 256 bits.
pub fn target_for_nbits(nbits: u32) -> Option<BigEndian256> {
    let exponent = (nbits >> 24) as usize;
    let mantissa = nbits & 0x007f_ffff;
    if nbits & 0x0080_0000 != 0 && mantissa != 0 {
        return None;
    }
    let mut out = [0u8; 32];
    let bytes = mantissa.to_be_bytes();
    // The three mantissa bytes end at byte position `exponent` counted from the right.
    for (i, &b) in bytes.iter().skip(1).enumerate() {
        let from_right = exponent as isize - 1 - i as isize;
        if from_right < 0 {
            continue;
        }
        if from_right >= 32 {
            if b != 0 {
                return None;
            }
            continue;
        }
        out[31 - from_right as usize] = b;
    }
    Some(out)
}

/// The difficulty a hash achieved: `0xFFFF·2^208 / hash`, for counters and logs.
pub fn difficulty_of(hash: &[u8; 32]) -> f64 {
    let value = hash
        .iter()
        .rev()
        .fold(0f64, |acc, &b| acc * 256.0 + f64::from(b));
    if value == 0.0 {
        return f64::INFINITY;
    }
    65535.0 * 2f64.powi(208) / value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be_hex(n: &BigEndian256) -> String {
        hex::encode(n)
    }

    #[test]
    fn difficulty_one_is_the_classic_target() {
        assert_eq!(
            be_hex(&target_for_difficulty(1.0)),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(
            be_hex(&target_for_difficulty(2.0)),
            "000000007fff8000000000000000000000000000000000000000000000000000"
        );
    }

    #[test]
    fn tiny_difficulties_saturate_and_fractions_scale_up() {
        assert_eq!(target_for_difficulty(1e-80), [0xff; 32]);
        assert_eq!(target_for_difficulty(0.0), [0xff; 32]);
        // 1/65536 of diff 1: 0xffff shifted up 16 bits.
        assert_eq!(
            be_hex(&target_for_difficulty(1.0 / 65536.0)),
            "0000ffff00000000000000000000000000000000000000000000000000000000"
        );
    }

    #[test]
    fn nbits_expand_as_bitcoin_defines() {
        let genesis = target_for_nbits(0x1d00ffff).expect("valid");
        assert_eq!(genesis, target_for_difficulty(1.0));
        let regtest = target_for_nbits(0x207fffff).expect("valid");
        assert_eq!(
            be_hex(&regtest),
            "7fffff0000000000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(target_for_nbits(0x04923456), None);
        assert_eq!(target_for_nbits(0x23123456), None);
    }

    #[test]
    fn genesis_header_hashes_to_the_genesis_hash() {
        let header = hex::decode(
            "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
        )
        .expect("hex");
        let hash = sha256d(&header);
        assert_eq!(
            be_hex(&hash_as_number(&hash)),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
        assert!(hash_as_number(&hash) <= target_for_nbits(0x1d00ffff).expect("valid"));
    }
}
