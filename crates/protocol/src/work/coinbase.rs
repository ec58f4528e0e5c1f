//! The block height a pool's coinbase commits to (BIP34), read from coinb1.
//!
//! coinb1 as a pool sends it (non-witness serialization) starts:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | transaction version |
//! | 2, optional | segwit marker `00` and flag `01` (a few pools send them) |
//! | varint | input count, 1 for a coinbase |
//! | 32 + 4 | previous output: all zero hash, index `ffffffff` |
//! | varint | scriptSig length |
//! | … | scriptSig; BIP34 makes its first push the height, a little-endian script number |
//!
//! The extranonces come later in the scriptSig, so the height is always inside coinb1.

/// Why coinb1 does not yield a block height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeightError {
    /// coinb1 ends before the height push does.
    #[error("coinb1 is too short to hold a coinbase height")]
    Truncated,
    /// The transaction has other than one input, so it is not a coinbase.
    #[error("coinb1 has {0} inputs; a coinbase has one")]
    NotCoinbase(u64),
    /// The scriptSig does not start with a push of a positive number (pre-BIP34 or made up).
    #[error("coinbase scriptSig does not start with a height push (opcode {0:#04x})")]
    NoHeightPush(u8),
}

/// The BIP34 block height in a coinbase's first part.
///
/// # Errors
/// [`HeightError`] when coinb1 is cut short, is not a coinbase, or its scriptSig does not
/// open with a height.
pub fn coinbase_height(coinb1: &[u8]) -> Result<u64, HeightError> {
    let mut r = Reader { bytes: coinb1 };
    r.take(4)?;
    if r.bytes.starts_with(&[0x00, 0x01]) {
        r.take(2)?;
    }
    let inputs = r.varint()?;
    if inputs != 1 {
        return Err(HeightError::NotCoinbase(inputs));
    }
    r.take(36)?;
    let _script_len = r.varint()?;
    let opcode = *r.take(1)?.first().ok_or(HeightError::Truncated)?;
    match opcode {
        // OP_0: height 0 (a regtest genesis child never has it, but the encoding is valid).
        0x00 => Ok(0),
        // A direct push; heights take at most 5 bytes as script numbers, 8 bounds the sum.
        0x01..=0x08 => {
            let push = r.take(usize::from(opcode))?;
            let negative = push.last().is_some_and(|b| b & 0x80 != 0);
            if negative {
                return Err(HeightError::NoHeightPush(opcode));
            }
            Ok(push
                .iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
        }
        // OP_1..OP_16: Bitcoin Core writes heights 1 to 16 as small-number opcodes.
        0x51..=0x60 => Ok(u64::from(opcode - 0x50)),
        other => Err(HeightError::NoHeightPush(other)),
    }
}

/// A cursor over coinb1 that fails with [`HeightError::Truncated`] instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HeightError> {
        if self.bytes.len() < n {
            return Err(HeightError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn varint(&mut self) -> Result<u64, HeightError> {
        let first = *self.take(1)?.first().ok_or(HeightError::Truncated)?;
        let width = match first {
            0xfd => 2,
            0xfe => 4,
            0xff => 8,
            small => return Ok(u64::from(small)),
        };
        Ok(self
            .take(width)?
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// coinb1 of mainnet block 881423 as its pool sent it (tests/fixtures/stratum/share-vectors.json).
    const BLOCK_881423: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff3d030f730d000469c19a67";

    #[test]
    fn mainnet_block_881423() {
        // scriptSig starts 03 0f 73 0d: push 3 bytes, 0x0d730f little-endian = 881423.
        let coinb1 = hex::decode(BLOCK_881423).unwrap();
        assert_eq!(coinbase_height(&coinb1), Ok(881_423));
    }

    #[test]
    fn testnet_share_vector_and_segwit_marker() {
        // The testnet vector: 03 c9 43 25 → 0x2543c9 = 2_442_185.
        let plain = hex::decode("02000000010000000000000000000000000000000000000000000000000000000000000000ffffffff1903c94325").unwrap();
        assert_eq!(coinbase_height(&plain), Ok(2_442_185));
        let mut marked = plain[..4].to_vec();
        marked.extend_from_slice(&[0x00, 0x01]);
        marked.extend_from_slice(&plain[4..]);
        assert_eq!(coinbase_height(&marked), Ok(2_442_185));
    }

    #[test]
    fn small_heights_and_bad_inputs() {
        let base = hex::decode(&BLOCK_881423[..82]).unwrap();
        let with = |script: &[u8]| {
            let mut v = base.clone();
            v.push(script.len() as u8);
            v.extend_from_slice(script);
            v
        };
        assert_eq!(coinbase_height(&with(&[0x51, 0x00])), Ok(1));
        assert_eq!(coinbase_height(&with(&[0x60])), Ok(16));
        assert_eq!(coinbase_height(&with(&[0x01, 0x11])), Ok(17));
        assert_eq!(
            coinbase_height(&with(&[0x02, 0x00, 0x80])),
            Err(HeightError::NoHeightPush(0x02))
        );
        assert_eq!(
            coinbase_height(&with(&[0x4c, 0x01, 0x01])),
            Err(HeightError::NoHeightPush(0x4c))
        );
        assert_eq!(
            coinbase_height(&with(&[0x03, 0x0f])),
            Err(HeightError::Truncated)
        );
        assert_eq!(coinbase_height(&[]), Err(HeightError::Truncated));
        let mut two_inputs = base.clone();
        two_inputs[4] = 2;
        assert_eq!(
            coinbase_height(&two_inputs),
            Err(HeightError::NotCoinbase(2))
        );
    }

    proptest::proptest! {
        /// coinb1 comes from the pool: any bytes give a height or a typed error, never a
        /// panic; and every height written the way Bitcoin Core writes it reads back.
        #[test]
        fn never_panics_and_round_trips(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120), height in 17u64..0x7fff_ffff) {
            let _ = coinbase_height(&bytes);
            let mut push: Vec<u8> = height.to_le_bytes().into_iter().collect();
            while push.len() > 1 && push.last() == Some(&0) && push[push.len() - 2] & 0x80 == 0 {
                push.pop();
            }
            let base = hex::decode(&BLOCK_881423[..82]).unwrap();
            let mut coinb1 = base;
            coinb1.push(push.len() as u8 + 1);
            coinb1.push(push.len() as u8);
            coinb1.extend_from_slice(&push);
            proptest::prop_assert_eq!(coinbase_height(&coinb1), Ok(height));
        }
    }
}
