//! Property tests for targets, difficulty, compact nbits and share hashing.

use hashgate_protocol::work::{
    Difficulty, Hash256, Job, JobTemplate, ShareInput, SubmitPolicy, Target, validate,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// A 256-bit value with a random number of leading zero bits, so small and large
/// magnitudes are both common.
fn any_target() -> impl Strategy<Value = Target> {
    (any::<[u8; 32]>(), 0u32..=256).prop_map(|(bytes, zero_bits)| {
        let mut le = bytes;
        // Clear the top `zero_bits` bits (the top bytes are at the end in little-endian).
        for bit in 0..zero_bits {
            let pos = 255 - bit;
            le[(pos / 8) as usize] &= !(1 << (pos % 8));
        }
        Target::from_le_bytes(le)
    })
}

/// Difficulties from 1e-8 to 1e15, log-uniform.
fn any_difficulty() -> impl Strategy<Value = Difficulty> {
    (-8.0f64..15.0).prop_map(|e| Difficulty::new(10f64.powf(e)).unwrap())
}

fn reference_sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

proptest! {
    #[test]
    fn difficulty_target_round_trip(d in any_difficulty()) {
        let back = d.to_target().difficulty();
        let rel = (back - d.get()).abs() / d.get();
        prop_assert!(rel < 1e-12, "{} -> {} (rel {rel})", d.get(), back);
    }

    #[test]
    fn higher_difficulty_never_raises_the_target(a in any_difficulty(), b in any_difficulty()) {
        let (lo, hi) = if a.get() <= b.get() { (a, b) } else { (b, a) };
        prop_assert!(hi.to_target() <= lo.to_target());
    }

    #[test]
    fn achieved_difficulty_agrees_with_target_comparison(
        hash in any_target(),
        target in any_target(),
    ) {
        let h = Hash256::from_bytes(hash.to_le_bytes());
        if target.is_met_by(&h) {
            prop_assert!(h.difficulty() >= target.difficulty());
        } else {
            prop_assert!(h.difficulty() <= target.difficulty());
        }
    }

    #[test]
    fn share_at_its_difficulty_meets_the_target(hash in any_target(), d in any_difficulty()) {
        let h = Hash256::from_bytes(hash.to_le_bytes());
        let target = d.to_target();
        if h.difficulty() > d.get() * (1.0 + 1e-12) {
            prop_assert!(target.is_met_by(&h));
        }
        if h.difficulty() < d.get() * (1.0 - 1e-12) {
            prop_assert!(!target.is_met_by(&h));
        }
    }

    #[test]
    fn compact_encoding_round_trips(t in any_target()) {
        let c = t.to_compact();
        let back = Target::from_compact(c).expect("our own encoding decodes");
        prop_assert!(back <= t, "compact keeps the top bytes and truncates the rest");
        prop_assert_eq!(back.to_compact(), c);
        // At most the top 23 significant bits survive; the rest is the truncation.
        prop_assert!(t.to_f64() - back.to_f64() <= t.to_f64() * 2f64.powi(-15));
    }

    #[test]
    fn every_decodable_nbits_round_trips_its_value(c in any::<u32>()) {
        if let Ok(t) = Target::from_compact(c) {
            prop_assert_eq!(Target::from_compact(t.to_compact()), Ok(t));
        }
    }

    /// validate() agrees with a plain whole-message computation for any coinbase shape.
    #[test]
    fn validate_matches_a_plain_reference(
        coinb1 in proptest::collection::vec(any::<u8>(), 0..300),
        coinb2 in proptest::collection::vec(any::<u8>(), 0..300),
        en1 in proptest::collection::vec(any::<u8>(), 0..12),
        en2 in proptest::collection::vec(any::<u8>(), 0..12),
        branch in proptest::collection::vec(any::<[u8; 32]>(), 0..14),
        prevhash in any::<[u8; 32]>(),
        version in any::<u32>(),
        ntime in any::<u32>(),
        nonce in any::<u32>(),
        roll in any::<u32>(),
        suffix in proptest::collection::vec(any::<u8>(), 0..70),
    ) {
        let mask = 0x1fff_e000;
        let job = Job::new(JobTemplate {
            id: "p".into(),
            prevhash,
            coinb1: coinb1.clone(),
            coinb2: coinb2.clone(),
            merkle_branch: branch.clone(),
            version,
            nbits: 0x1d00_ffff,
            ntime: ntime / 2,
        clean_jobs: false,
        })
        .unwrap();
        // Exercise the derived miner-facing job too: coinb1 ‖ suffix.
        let job = job.with_coinb1_suffix(&suffix);
        let submit = ShareInput {
            extranonce1: &en1,
            extranonce2: &en2,
            ntime: ntime / 2,
            nonce,
            version_bits: Some(roll & mask),
        };
        let policy = SubmitPolicy {
            version_mask: mask,
            ..SubmitPolicy::new(en2.len(), Target::MAX)
        };
        let share = validate(&job, &submit, &policy).unwrap();

        let coinbase = [&coinb1[..], &suffix, &en1, &en2, &coinb2].concat();
        let mut root = reference_sha256d(&coinbase);
        for b in &branch {
            root = reference_sha256d(&[&root[..], b].concat());
        }
        let mut header = Vec::with_capacity(80);
        header.extend_from_slice(&((version & !mask) | (roll & mask)).to_le_bytes());
        for w in prevhash.chunks(4) {
            header.extend(w.iter().rev());
        }
        header.extend_from_slice(&root);
        header.extend_from_slice(&(ntime / 2).to_le_bytes());
        header.extend_from_slice(&0x1d00_ffffu32.to_le_bytes());
        header.extend_from_slice(&nonce.to_le_bytes());
        prop_assert_eq!(&share.header()[..], &header[..]);
        prop_assert_eq!(share.hash().as_bytes(), &reference_sha256d(&header));
    }
}
