//! Two SHA-256 compressions in lockstep on the x86-64 SHA extensions (SHA-NI).
//!
//! One compression is a chain of 32 `sha256rnds2` instructions, each waiting on the one
//! before; a single stream leaves most of the SHA unit idle. Two independent streams
//! issued round by round fill those gaps, so two compressions cost little more than one.
//! Written from the instruction semantics in Intel's SHA extensions documentation.
//!
//! The SHA-NI register layout splits the eight working words across two vectors:
//!
//! | vector | lane 3 | lane 2 | lane 1 | lane 0 |
//! |---|---|---|---|---|
//! | `abef` | a | b | e | f |
//! | `cdgh` | c | d | g | h |
//!
//! This is the only file in the crate with `unsafe`: the caller in `sha256d` checks the
//! CPU features once before any kernel runs.

use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_loadu_si128, _mm_set_epi64x,
    _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32, _mm_shuffle_epi8,
    _mm_shuffle_epi32, _mm_storeu_si128,
};

/// SHA-256 round constants (FIPS 180-4 §4.2.2), four per 16-byte load.
static K: [u32; 64] = [
    0x428a_2f98,
    0x7137_4491,
    0xb5c0_fbcf,
    0xe9b5_dba5,
    0x3956_c25b,
    0x59f1_11f1,
    0x923f_82a4,
    0xab1c_5ed5,
    0xd807_aa98,
    0x1283_5b01,
    0x2431_85be,
    0x550c_7dc3,
    0x72be_5d74,
    0x80de_b1fe,
    0x9bdc_06a7,
    0xc19b_f174,
    0xe49b_69c1,
    0xefbe_4786,
    0x0fc1_9dc6,
    0x240c_a1cc,
    0x2de9_2c6f,
    0x4a74_84aa,
    0x5cb0_a9dc,
    0x76f9_88da,
    0x983e_5152,
    0xa831_c66d,
    0xb003_27c8,
    0xbf59_7fc7,
    0xc6e0_0bf3,
    0xd5a7_9147,
    0x06ca_6351,
    0x1429_2967,
    0x27b7_0a85,
    0x2e1b_2138,
    0x4d2c_6dfc,
    0x5338_0d13,
    0x650a_7354,
    0x766a_0abb,
    0x81c2_c92e,
    0x9272_2c85,
    0xa2bf_e8a1,
    0xa81a_664b,
    0xc24b_8b70,
    0xc76c_51a3,
    0xd192_e819,
    0xd699_0624,
    0xf40e_3585,
    0x106a_a070,
    0x19a4_c116,
    0x1e37_6c08,
    0x2748_774c,
    0x34b0_bcb5,
    0x391c_0cb3,
    0x4ed8_aa4a,
    0x5b9c_ca4f,
    0x682e_6ff3,
    0x748f_82ee,
    0x78a5_636f,
    0x84c8_7814,
    0x8cc7_0208,
    0x90be_fffa,
    0xa450_6ceb,
    0xbef9_a3f7,
    0xc671_78f2,
];

/// Whether this CPU can run [`compress_x2`]; the caller caches the answer.
pub(super) fn supported() -> bool {
    std::is_x86_feature_detected!("sha")
        && std::is_x86_feature_detected!("sse2")
        && std::is_x86_feature_detected!("ssse3")
        && std::is_x86_feature_detected!("sse4.1")
}

/// Loads a state into the (`abef`, `cdgh`) register pair.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn load_state(state: &[u32; 8]) -> (__m128i, __m128i) {
    // SAFETY: `state` is 32 readable bytes; `loadu` has no alignment requirement.
    let (abcd, efgh) = unsafe {
        (
            _mm_loadu_si128(state.as_ptr().cast()),
            _mm_loadu_si128(state.as_ptr().add(4).cast()),
        )
    };
    let badc = _mm_shuffle_epi32::<0xb1>(abcd);
    let hgfe = _mm_shuffle_epi32::<0x1b>(efgh);
    let abef = _mm_alignr_epi8::<8>(badc, hgfe);
    let cdgh = _mm_blend_epi16::<0xf0>(hgfe, badc);
    (abef, cdgh)
}

/// Stores the (`abef`, `cdgh`) register pair back as a state.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn store_state(state: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
    let feba = _mm_shuffle_epi32::<0x1b>(abef);
    let dchg = _mm_shuffle_epi32::<0xb1>(cdgh);
    let abcd = _mm_blend_epi16::<0xf0>(feba, dchg);
    let efgh = _mm_alignr_epi8::<8>(dchg, feba);
    // SAFETY: `state` is 32 writable bytes; `storeu` has no alignment requirement.
    unsafe {
        _mm_storeu_si128(state.as_mut_ptr().cast(), abcd);
        _mm_storeu_si128(state.as_mut_ptr().add(4).cast(), efgh);
    }
}

/// Loads a block as four vectors of message words (big-endian bytes to native words).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn load_block(block: &[u8; 64]) -> [__m128i; 4] {
    let swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
    // SAFETY: `block` is 64 readable bytes, read as four unaligned 16-byte loads.
    unsafe {
        let p = block.as_ptr();
        [
            _mm_shuffle_epi8(_mm_loadu_si128(p.cast()), swap),
            _mm_shuffle_epi8(_mm_loadu_si128(p.add(16).cast()), swap),
            _mm_shuffle_epi8(_mm_loadu_si128(p.add(32).cast()), swap),
            _mm_shuffle_epi8(_mm_loadu_si128(p.add(48).cast()), swap),
        ]
    }
}

/// Four rounds on one stream with message words `w` (constants not yet added).
macro_rules! four_rounds {
    ($abef:ident, $cdgh:ident, $w:expr, $k:expr) => {{
        let wk = _mm_add_epi32($w, $k);
        // rnds2 runs two rounds from the low two lanes; the old abef becomes the new cdgh.
        $cdgh = _mm_sha256rnds2_epu32($cdgh, $abef, wk);
        $abef = _mm_sha256rnds2_epu32($abef, $cdgh, _mm_shuffle_epi32::<0x0e>(wk));
    }};
}

/// The four schedule words of group `g` from the previous sixteen, which `w` holds at
/// `(g - 4) % 4` .. `(g - 1) % 4`.
macro_rules! schedule {
    ($w:ident, $g:expr) => {
        _mm_sha256msg2_epu32(
            _mm_add_epi32(
                _mm_sha256msg1_epu32($w[$g % 4], $w[($g + 1) % 4]),
                _mm_alignr_epi8::<4>($w[($g + 3) % 4], $w[($g + 2) % 4]),
            ),
            $w[($g + 3) % 4],
        )
    };
}

/// Compresses `block_a` into `a` and `block_b` into `b`, round by round in lockstep.
///
/// # Safety
/// The CPU must support SHA, SSE2, SSSE3 and SSE4.1 ([`supported`]).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(super) unsafe fn compress_x2(
    a: &mut [u32; 8],
    block_a: &[u8; 64],
    b: &mut [u32; 8],
    block_b: &[u8; 64],
) {
    let (a_abef0, a_cdgh0) = load_state(a);
    let (b_abef0, b_cdgh0) = load_state(b);
    let (mut a_abef, mut a_cdgh) = (a_abef0, a_cdgh0);
    let (mut b_abef, mut b_cdgh) = (b_abef0, b_cdgh0);
    let mut wa = load_block(block_a);
    let mut wb = load_block(block_b);
    let k = |g: usize| {
        // SAFETY: `g < 16`, so `K[4g .. 4g + 4]` is inside the 64-word table.
        unsafe { _mm_loadu_si128(K.as_ptr().add(4 * g).cast()) }
    };
    // Written out group by group: with constant indices `wa`/`wb` stay in registers (a
    // `for` loop over the twelve scheduled groups was left rolled, spilling them).
    macro_rules! group {
        ($g:literal) => {{
            let kg = k($g);
            four_rounds!(a_abef, a_cdgh, wa[$g], kg);
            four_rounds!(b_abef, b_cdgh, wb[$g], kg);
        }};
        (scheduled $($g:literal)*) => {$({
            let kg = k($g);
            let next_a = schedule!(wa, $g);
            let next_b = schedule!(wb, $g);
            four_rounds!(a_abef, a_cdgh, next_a, kg);
            four_rounds!(b_abef, b_cdgh, next_b, kg);
            wa[$g % 4] = next_a;
            wb[$g % 4] = next_b;
        })*};
        (last $g:literal) => {{
            let kg = k($g);
            four_rounds!(a_abef, a_cdgh, schedule!(wa, $g), kg);
            four_rounds!(b_abef, b_cdgh, schedule!(wb, $g), kg);
        }};
    }
    group!(0);
    group!(1);
    group!(2);
    group!(3);
    group!(scheduled 4 5 6 7 8 9 10 11 12 13 14);
    group!(last 15);
    store_state(
        a,
        _mm_add_epi32(a_abef, a_abef0),
        _mm_add_epi32(a_cdgh, a_cdgh0),
    );
    store_state(
        b,
        _mm_add_epi32(b_abef, b_abef0),
        _mm_add_epi32(b_cdgh, b_cdgh0),
    );
}
