//! SHA-256 and SHA-256d over the fixed shapes a share needs, on the raw compression function.
//!
//! A share costs about 45 compressions; the generic `Digest` API adds buffering, padding
//! and finalisation work around each one. Here every message shape that recurs per share
//! (a 64-byte merkle pair, the 80-byte header, a 32-byte digest for the second pass) is
//! padded by hand into stack blocks, and the coinbase is hashed from a per-job midstate.
//! `sha2::compress256` picks the SHA-NI backend at run time when the CPU has it.

use sha2::compress256;
use sha2::digest::generic_array::GenericArray;
use sha2::digest::typenum::U64;

/// One 64-byte SHA-256 block in the layout `compress256` takes.
type Block = GenericArray<u8, U64>;

/// SHA-256 initial hash value (FIPS 180-4 §5.3.3).
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The padding block that follows any message of exactly 64 bytes: it is the same for
/// every merkle step, so it is a constant rather than rebuilt per step.
const PAD_64: [u8; 64] = {
    let mut b = [0u8; 64];
    b[0] = 0x80;
    // Message length 512 bits, big-endian in the last 8 bytes.
    b[62] = 0x02;
    b
};

/// Serialises a SHA-256 state as the digest bytes (big-endian words).
#[inline]
fn state_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// Compresses one block into `state`.
#[inline]
fn compress_one(state: &mut [u32; 8], block: &[u8; 64]) {
    let block: &Block = block.into();
    compress256(state, core::slice::from_ref(block));
}

/// Compresses one block into `state` (the single-stream path, `sha2`'s own SHA-NI backend
/// when the CPU has it): the reference [`compress_x2`] must agree with.
pub fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    compress_one(state, block);
}

/// Whether [`compress_x2`] runs the interleaved SHA-NI kernel on this CPU.
///
/// Detected once and cached: the hot path pays one load and a branch.
pub fn interleaved_sha_ni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(super::sha_ni::supported)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Compresses `block_a` into `a` and `block_b` into `b`: two independent compressions
/// whose dependency chains overlap on the SHA-NI unit, or two single-stream calls where
/// the CPU has no SHA extensions. Results are identical to two [`compress`] calls.
#[inline]
pub fn compress_x2(a: &mut [u32; 8], block_a: &[u8; 64], b: &mut [u32; 8], block_b: &[u8; 64]) {
    #[cfg(target_arch = "x86_64")]
    if interleaved_sha_ni() {
        // SAFETY: `interleaved_sha_ni` confirmed SHA, SSE2, SSSE3 and SSE4.1 on this CPU.
        unsafe { super::sha_ni::compress_x2(a, block_a, b, block_b) };
        return;
    }
    compress_x2_portable(a, block_a, b, block_b);
}

/// The fallback of [`compress_x2`]: one after the other on the single-stream path.
#[inline]
pub(crate) fn compress_x2_portable(
    a: &mut [u32; 8],
    block_a: &[u8; 64],
    b: &mut [u32; 8],
    block_b: &[u8; 64],
) {
    compress_one(a, block_a);
    compress_one(b, block_b);
}

/// SHA-256 of a 32-byte digest: the second half of every SHA-256d, a single block.
#[inline]
pub fn sha256_of_digest(digest: &[u8; 32]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(digest);
    block[32] = 0x80;
    // Message length 256 bits.
    block[62] = 0x01;
    let mut state = IV;
    compress_one(&mut state, &block);
    state_bytes(&state)
}

/// The second SHA-256 of a SHA-256d, straight from the first pass's chaining state: the
/// digest words go into the padded block without an intermediate digest array.
#[inline]
fn second_pass(first: &[u32; 8]) -> [u8; 32] {
    let mut state = IV;
    compress_one(&mut state, &second_pass_block(first));
    state_bytes(&state)
}

/// The padded second-pass block for a first-pass chaining state.
#[inline]
fn second_pass_block(first: &[u32; 8]) -> [u8; 64] {
    let mut block = [0u8; 64];
    for (chunk, word) in block[..32].chunks_exact_mut(4).zip(first) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    block[32] = 0x80;
    // Message length 256 bits.
    block[62] = 0x01;
    block
}

/// [`second_pass`] for two first-pass states at once.
#[inline]
pub(crate) fn second_pass_x2(first_a: &[u32; 8], first_b: &[u32; 8]) -> [[u8; 32]; 2] {
    let (mut a, mut b) = (IV, IV);
    compress_x2(
        &mut a,
        &second_pass_block(first_a),
        &mut b,
        &second_pass_block(first_b),
    );
    [state_bytes(&a), state_bytes(&b)]
}

/// [`sha256d_64`] of two messages at once (two merkle steps of different shares).
#[inline]
pub fn sha256d_64_x2(data_a: &[u8; 64], data_b: &[u8; 64]) -> [[u8; 32]; 2] {
    let (mut a, mut b) = (IV, IV);
    compress_x2(&mut a, data_a, &mut b, data_b);
    compress_x2(&mut a, &PAD_64, &mut b, &PAD_64);
    second_pass_x2(&a, &b)
}

/// The second block of an 80-byte header: its last 16 bytes and the padding.
#[inline]
fn header_tail_block(header: &[u8; 80]) -> [u8; 64] {
    let mut second = [0u8; 64];
    second[..16].copy_from_slice(&header[64..]);
    second[16] = 0x80;
    // Message length 640 bits = 0x0280.
    second[62] = 0x02;
    second[63] = 0x80;
    second
}

/// [`sha256d_80`] of two headers at once.
#[inline]
pub fn sha256d_80_x2(header_a: &[u8; 80], header_b: &[u8; 80]) -> [[u8; 32]; 2] {
    let (mut a, mut b) = (IV, IV);
    let first = |h: &[u8; 80]| {
        let mut block = [0u8; 64];
        block.copy_from_slice(&h[..64]);
        block
    };
    compress_x2(&mut a, &first(header_a), &mut b, &first(header_b));
    compress_x2(
        &mut a,
        &header_tail_block(header_a),
        &mut b,
        &header_tail_block(header_b),
    );
    second_pass_x2(&a, &b)
}

/// SHA-256d of a 64-byte message (one merkle step: left ‖ right), three compressions.
#[inline]
pub fn sha256d_64(data: &[u8; 64]) -> [u8; 32] {
    let blocks: [Block; 2] = [(*data).into(), PAD_64.into()];
    let mut state = IV;
    compress256(&mut state, &blocks);
    second_pass(&state)
}

/// SHA-256d of an 80-byte block header, three compressions.
#[inline]
pub fn sha256d_80(header: &[u8; 80]) -> [u8; 32] {
    let mut first = [0u8; 64];
    first.copy_from_slice(&header[..64]);
    let blocks: [Block; 2] = [first.into(), header_tail_block(header).into()];
    let mut state = IV;
    compress256(&mut state, &blocks);
    second_pass(&state)
}

/// An incremental SHA-256 on a stack buffer that can start from a saved midstate.
///
/// Used for the coinbase: the job saves the state after coinb1's whole blocks, and each
/// share only hashes coinb1's tail ‖ extranonce1 ‖ extranonce2 ‖ coinb2.
#[derive(Clone, Debug)]
pub struct Sha256Stream {
    /// Chaining state after all whole blocks absorbed so far.
    state: [u32; 8],
    /// Bytes not yet forming a whole block.
    buf: [u8; 64],
    /// How many bytes of `buf` are filled (always < 64 between calls).
    buf_len: usize,
    /// Total message bytes absorbed, for the length field of the padding.
    total_len: u64,
}

impl Default for Sha256Stream {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256Stream {
    /// A fresh hasher at the SHA-256 initial value.
    pub fn new() -> Self {
        Self {
            state: IV,
            buf: [0u8; 64],
            buf_len: 0,
            total_len: 0,
        }
    }

    /// Absorbs `data`; compresses whole blocks straight from the input when it can.
    pub fn update(&mut self, mut data: &[u8]) {
        self.total_len = self.total_len.wrapping_add(data.len() as u64);
        if self.buf_len > 0 {
            let take = (64 - self.buf_len).min(data.len());
            let (head, rest) = data.split_at(take);
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(head);
            self.buf_len += take;
            data = rest;
            if self.buf_len < 64 {
                return;
            }
            compress_one(&mut self.state, &self.buf);
            self.buf_len = 0;
        }
        let mut chunks = data.chunks_exact(64);
        for chunk in &mut chunks {
            let block: &Block = GenericArray::from_slice(chunk);
            compress256(&mut self.state, core::slice::from_ref(block));
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// The chaining state and the unabsorbed tail: what a job keeps as its midstate.
    pub fn midstate(&self) -> ([u32; 8], &[u8]) {
        (self.state, &self.buf[..self.buf_len])
    }

    /// Rebuilds a hasher from a chaining state that has absorbed `compressed_len` bytes
    /// (a multiple of 64) followed by `tail` (< 64 bytes, else it is absorbed normally).
    pub fn from_midstate(state: [u32; 8], compressed_len: u64, tail: &[u8]) -> Self {
        let mut s = Self {
            state,
            buf: [0u8; 64],
            buf_len: 0,
            total_len: compressed_len,
        };
        s.update(tail);
        s
    }

    /// Pads and returns the SHA-256 digest.
    pub fn finish(self) -> [u8; 32] {
        state_bytes(&self.finish_state())
    }

    /// Pads and returns the final chaining state.
    fn finish_state(mut self) -> [u32; 8] {
        let bit_len = self.total_len.wrapping_mul(8);
        self.buf[self.buf_len] = 0x80;
        self.buf[self.buf_len + 1..].fill(0);
        if self.buf_len >= 56 {
            compress_one(&mut self.state, &self.buf);
            self.buf = [0u8; 64];
        }
        self.buf[56..].copy_from_slice(&bit_len.to_be_bytes());
        compress_one(&mut self.state, &self.buf);
        self.state
    }

    /// Pads and returns SHA-256d (SHA-256 of the SHA-256 digest).
    pub fn finish_double(self) -> [u8; 32] {
        second_pass(&self.finish_state())
    }

    /// The blocks that absorbing `rest` and padding would compress, uncompressed: lets two
    /// streams of the same block count be hashed in lockstep with [`compress_x2`].
    pub(crate) fn padded_tail<'a>(&'a self, rest: [&'a [u8]; 3]) -> PaddedTail<'a> {
        let [r0, r1, r2] = rest;
        let len = self.buf_len + r0.len() + r1.len() + r2.len();
        let total = self
            .total_len
            .wrapping_add((r0.len() + r1.len() + r2.len()) as u64);
        PaddedTail {
            state: self.state,
            parts: [&self.buf[..self.buf_len], r0, r1, r2],
            len,
            bit_len: total.wrapping_mul(8),
        }
    }
}

/// The last blocks of a message, padding included, built one at a time on the stack.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PaddedTail<'a> {
    /// Chaining state before the first of these blocks.
    state: [u32; 8],
    /// The unhashed message bytes, in order, as borrowed pieces (no copy up front).
    parts: [&'a [u8]; 4],
    /// Total bytes in `parts`.
    len: usize,
    /// Whole-message length in bits for the padding's length field.
    bit_len: u64,
}

impl PaddedTail<'_> {
    /// Chaining state before the first block.
    pub(crate) fn state(&self) -> [u32; 8] {
        self.state
    }

    /// How many blocks remain: the bytes plus the 0x80 marker and the 8-byte length.
    pub(crate) fn blocks(&self) -> usize {
        (self.len + 9).div_ceil(64)
    }

    /// Block `index` (< [`Self::blocks`]) of `parts ‖ 0x80 ‖ zeros ‖ bit length`.
    pub(crate) fn block(&self, index: usize) -> [u8; 64] {
        let start = index * 64;
        let end = start + 64;
        let mut out = [0u8; 64];
        let mut offset = 0;
        for part in self.parts {
            let from = offset.max(start);
            let to = (offset + part.len()).min(end);
            if from < to {
                out[from - start..to - start].copy_from_slice(&part[from - offset..to - offset]);
            }
            offset += part.len();
        }
        if (start..end).contains(&self.len) {
            out[self.len - start] = 0x80;
        }
        if index + 1 == self.blocks() {
            // The last block always has room: blocks() reserved 9 bytes past the message.
            out[56..].copy_from_slice(&self.bit_len.to_be_bytes());
        }
        out
    }

    /// Compresses every block and returns the final chaining state (single stream).
    #[cfg(test)]
    fn finish_state(&self) -> [u32; 8] {
        let mut state = self.state;
        for i in 0..self.blocks() {
            compress_one(&mut state, &self.block(i));
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn reference_sha256d(data: &[u8]) -> [u8; 32] {
        Sha256::digest(Sha256::digest(data)).into()
    }

    #[test]
    fn fixed_shapes_match_the_generic_hasher() {
        let data64: [u8; 64] = core::array::from_fn(|i| i as u8 ^ 0x5a);
        assert_eq!(sha256d_64(&data64), reference_sha256d(&data64));
        let data80: [u8; 80] = core::array::from_fn(|i| (i * 7) as u8);
        assert_eq!(sha256d_80(&data80), reference_sha256d(&data80));
        let d: [u8; 32] = core::array::from_fn(|i| i as u8);
        assert_eq!(sha256_of_digest(&d), <[u8; 32]>::from(Sha256::digest(d)));
    }

    #[test]
    fn stream_matches_for_every_length_and_split() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 31 + 7) as u8).collect();
        for len in 0..data.len() {
            let msg = &data[..len];
            for split in [0, 1, 55, 56, 63, 64, 65, 128, len / 2, len] {
                let split = split.min(len);
                let mut s = Sha256Stream::new();
                s.update(&msg[..split]);
                s.update(&msg[split..]);
                assert_eq!(
                    s.finish_double(),
                    reference_sha256d(msg),
                    "len {len} split {split}"
                );
            }
        }
    }

    #[test]
    fn padded_tail_hashes_like_the_stream_for_every_split() {
        let data: Vec<u8> = (0..260u32).map(|i| (i * 13 + 1) as u8).collect();
        for head in [0, 1, 63, 64, 65, 100] {
            for len in head..data.len() {
                let mut s = Sha256Stream::new();
                s.update(&data[..head]);
                let rest = &data[head..len];
                let (r0, rest) = rest.split_at(rest.len() / 3);
                let (r1, r2) = rest.split_at(rest.len() / 2);
                let tail = s.padded_tail([r0, r1, r2]);
                let want = reference_sha256d(&data[..len]);
                assert_eq!(second_pass(&tail.finish_state()), want, "{head} {len}");
            }
        }
    }

    fn arb_state() -> impl Strategy<Value = [u32; 8]> {
        proptest::array::uniform8(any::<u32>())
    }

    fn arb_block() -> impl Strategy<Value = [u8; 64]> {
        proptest::collection::vec(any::<u8>(), 64).prop_map(|v| {
            let mut b = [0u8; 64];
            b.copy_from_slice(&v);
            b
        })
    }

    proptest! {
        #[test]
        fn interleaved_compression_equals_two_single_ones(
            a in arb_state(), ba in arb_block(), b in arb_state(), bb in arb_block()
        ) {
            let (mut want_a, mut want_b) = (a, b);
            compress(&mut want_a, &ba);
            compress(&mut want_b, &bb);
            let (mut got_a, mut got_b) = (a, b);
            compress_x2(&mut got_a, &ba, &mut got_b, &bb);
            prop_assert_eq!((got_a, got_b), (want_a, want_b));
            let (mut port_a, mut port_b) = (a, b);
            compress_x2_portable(&mut port_a, &ba, &mut port_b, &bb);
            prop_assert_eq!((port_a, port_b), (want_a, want_b));
        }

        #[test]
        fn pair_shapes_equal_single_shapes(a in arb_block(), b in arb_block(), tail in arb_block()) {
            let mut ha = [0u8; 80];
            ha[..64].copy_from_slice(&a);
            ha[64..].copy_from_slice(&tail[..16]);
            let mut hb = [0u8; 80];
            hb[..64].copy_from_slice(&b);
            hb[64..].copy_from_slice(&tail[48..]);
            prop_assert_eq!(sha256d_80_x2(&ha, &hb), [sha256d_80(&ha), sha256d_80(&hb)]);
            prop_assert_eq!(sha256d_64_x2(&a, &b), [sha256d_64(&a), sha256d_64(&b)]);
        }
    }

    #[test]
    fn the_kernel_runs_here_when_the_cpu_has_sha_ni() {
        // On x86-64 the dispatch must agree with the CPU; the proptests above then cover
        // the SHA-NI kernel itself, not only the fallback.
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            interleaved_sha_ni(),
            std::is_x86_feature_detected!("sha") && std::is_x86_feature_detected!("sse4.1")
        );
        #[cfg(not(target_arch = "x86_64"))]
        assert!(!interleaved_sha_ni());
    }

    #[test]
    fn midstate_resumes_where_it_stopped() {
        let data: Vec<u8> = (0..200u32).map(|i| (i ^ 0xa5) as u8).collect();
        let mut s = Sha256Stream::new();
        s.update(&data[..150]);
        let (state, tail) = s.midstate();
        let compressed = (150 - tail.len()) as u64;
        let mut resumed = Sha256Stream::from_midstate(state, compressed, tail);
        resumed.update(&data[150..]);
        assert_eq!(resumed.finish_double(), reference_sha256d(&data));
    }
}
