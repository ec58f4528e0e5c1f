//! The 80-byte block header and Stratum's prevhash byte order.

/// The fields of a block header, in the byte orders the header uses.
///
/// | offset | size | field | encoding |
/// |---|---|---|---|
/// | 0 | 4 | version | little-endian u32 |
/// | 4 | 32 | previous block hash | raw hash order (see [`prevhash_to_header_order`]) |
/// | 36 | 32 | merkle root | raw SHA-256d output |
/// | 68 | 4 | time | little-endian u32 |
/// | 72 | 4 | nbits | little-endian u32 |
/// | 76 | 4 | nonce | little-endian u32 |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderFields {
    /// Block version after version rolling.
    pub version: u32,
    /// Previous block hash in header order.
    pub prev_blockhash: [u8; 32],
    /// Merkle root as SHA-256d returns it.
    pub merkle_root: [u8; 32],
    /// Block time (Stratum's ntime).
    pub time: u32,
    /// Compact network target.
    pub nbits: u32,
    /// The miner's nonce.
    pub nonce: u32,
}

impl HeaderFields {
    /// Serialises the 80-byte header.
    #[inline]
    pub fn to_bytes(&self) -> [u8; 80] {
        let mut h = [0u8; 80];
        h[0..4].copy_from_slice(&self.version.to_le_bytes());
        h[4..36].copy_from_slice(&self.prev_blockhash);
        h[36..68].copy_from_slice(&self.merkle_root);
        h[68..72].copy_from_slice(&self.time.to_le_bytes());
        h[72..76].copy_from_slice(&self.nbits.to_le_bytes());
        h[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        h
    }
}

/// Converts `mining.notify`'s prevhash (as its hex decodes) to header order.
///
/// Stratum sends the previous hash as eight 4-byte words each byte-reversed relative to
/// the header; reversing each word again gives the header bytes. The conversion is its own
/// inverse.
pub fn prevhash_to_header_order(stratum: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, s) in out.chunks_exact_mut(4).zip(stratum.chunks_exact(4)) {
        o.copy_from_slice(s);
        o.reverse();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prevhash_words_are_reversed() {
        let s: [u8; 32] = core::array::from_fn(|i| i as u8);
        let h = prevhash_to_header_order(&s);
        assert_eq!(&h[..8], &[3, 2, 1, 0, 7, 6, 5, 4]);
        assert_eq!(prevhash_to_header_order(&h), s);
    }

    #[test]
    fn layout_matches_the_table() {
        let f = HeaderFields {
            version: 0x2000_0000,
            prev_blockhash: [0x11; 32],
            merkle_root: [0x22; 32],
            time: 0x6453_1234,
            nbits: 0x1703_2a8a,
            nonce: 0xdead_beef,
        };
        let h = f.to_bytes();
        assert_eq!(&h[..4], &[0, 0, 0, 0x20]);
        assert_eq!(h[4], 0x11);
        assert_eq!(h[67], 0x22);
        assert_eq!(&h[68..72], &[0x34, 0x12, 0x53, 0x64]);
        assert_eq!(&h[76..], &[0xef, 0xbe, 0xad, 0xde]);
    }
}
