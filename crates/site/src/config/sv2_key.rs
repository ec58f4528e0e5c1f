//! A Stratum V2 pool's authority public key, as pools publish it: base58check of a 2-byte
//! little-endian key version (1) followed by the 32-byte x-only secp256k1 key.
//!
//! Only the text form is checked here (alphabet, checksum, version, length); whether the
//! 32 bytes are a point on the curve is found by the Noise handshake, which refuses a pool
//! whose certificate that key did not sign.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The key version every SV2 authority key carries today.
const KEY_VERSION: u16 = 1;

const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// A pool's authority public key (x-only, 32 bytes) and the text it was written as.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorityKey {
    key: [u8; 32],
    text: String,
}

impl AuthorityKey {
    /// The x-only key bytes, as the Noise initiator takes them.
    pub fn bytes(&self) -> [u8; 32] {
        self.key
    }
}

impl fmt::Display for AuthorityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for AuthorityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorityKey({})", self.text)
    }
}

impl FromStr for AuthorityKey {
    type Err = String;

    fn from_str(text: &str) -> Result<AuthorityKey, String> {
        let raw = base58_decode(text)?;
        let Some((payload, checksum)) = raw.split_last_chunk::<4>() else {
            return Err(format!("{text:?} is too short to be a base58check key"));
        };
        let digest = Sha256::digest(Sha256::digest(payload));
        if digest[..4] != checksum[..] {
            return Err(format!(
                "{text:?} fails its base58check checksum (a typo, or not a key)"
            ));
        }
        let [lo, hi, key @ ..] = payload else {
            return Err(format!("{text:?} is too short to be an authority key"));
        };
        let version = u16::from_le_bytes([*lo, *hi]);
        if version != KEY_VERSION {
            return Err(format!(
                "{text:?} has key version {version}; SV2 authority keys have version {KEY_VERSION}"
            ));
        }
        let key: [u8; 32] = key.try_into().map_err(|_| {
            format!(
                "{text:?} holds {} key bytes; an SV2 authority key has 32",
                key.len()
            )
        })?;
        Ok(AuthorityKey {
            key,
            text: text.to_owned(),
        })
    }
}

/// Base58 (Bitcoin alphabet) to bytes; leading `1`s are leading zero bytes.
fn base58_decode(text: &str) -> Result<Vec<u8>, String> {
    if text.is_empty() {
        return Err("the key is empty".to_owned());
    }
    // Keys are ~50 characters; anything far longer is not one, and the quadratic
    // conversion below should not run on it.
    if text.len() > 128 {
        return Err(format!("{} characters is too long for a key", text.len()));
    }
    // Big-endian base-256 digits, grown as the base-58 digits are folded in.
    let mut bytes: Vec<u8> = Vec::with_capacity(text.len());
    for c in text.bytes() {
        let Some(digit) = ALPHABET.iter().position(|&a| a == c) else {
            return Err(format!(
                "{:?} is not a base58 character (0, O, I and l are not used)",
                char::from(c)
            ));
        };
        let mut carry = digit as u32;
        for byte in bytes.iter_mut().rev() {
            carry += u32::from(*byte) * 58;
            *byte = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = text.bytes().take_while(|&c| c == b'1').count();
    let mut out = vec![0u8; zeros];
    out.extend(bytes);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SRI's published example authority key (the one `pool_sv2`'s examples use).
    const SRI_EXAMPLE: &str = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";

    #[test]
    fn the_sri_example_key_decodes_to_its_x_only_bytes() {
        let key: AuthorityKey = SRI_EXAMPLE.parse().expect("valid key");
        assert_eq!(
            hex::encode(key.bytes()),
            "24ee3c3804a1aaa4c03b80ea19f7a5863c916e8994b7db94a3bad7ee092b6ce7"
        );
        assert_eq!(key.to_string(), SRI_EXAMPLE);
    }

    #[test]
    fn a_mistyped_key_is_refused_by_its_checksum_or_alphabet() {
        let typo = SRI_EXAMPLE.replace('9', "8");
        let err = typo.parse::<AuthorityKey>().expect_err("typo");
        assert!(err.contains("checksum"), "{err}");
        let err = "9auqWEzQDVyd2oe1JVGFL0LHZ"
            .parse::<AuthorityKey>()
            .expect_err("0 is not base58");
        assert!(err.contains("not a base58 character"), "{err}");
        let err = "".parse::<AuthorityKey>().expect_err("empty");
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn leading_ones_are_zero_bytes() {
        assert_eq!(base58_decode("11").expect("ok"), vec![0, 0]);
        assert_eq!(base58_decode("1z").expect("ok"), vec![0, 57]);
        assert_eq!(base58_decode("21").expect("ok"), vec![58]);
    }
}
