//! The Whatsminer API v2 write envelope: md5-crypt key derivation and AES-256-ECB.
//!
//! Recipe (WhatsminerAPI V2.0.x, "API ciphertext"), from the `get_token` reply's
//! `time`, `salt` and `newsalt`:
//!
//! | step | value |
//! |---|---|
//! | key | hash part of md5-crypt(`password`, `salt`) (`$1$salt$<key>`) |
//! | AES key | SHA-256(`key`), the 32 raw bytes |
//! | sign (the token) | hash part of md5-crypt(`key` ‖ `time`, `newsalt`) |
//! | request | `{"enc":1,"data":base64(AES-256-ECB(zero-pad16(json with "token":sign)))}` |
//! | reply | `{"enc":base64(AES-256-ECB(json))}`, zero padding trimmed |
//!
//! ECB over zero padding is the firmware's choice, not ours: it is what the miner accepts.

use aes::Aes256;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::ApiError;

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// md5-crypt (`$1$`, as `openssl passwd -1`): returns `$1$<salt>$<22-char hash>`.
///
/// The salt is cut at 8 bytes or its first `$`, as crypt(3) does.
pub fn md5_crypt(password: &[u8], salt: &[u8]) -> String {
    let salt = salt.strip_prefix(b"$1$").unwrap_or(salt);
    let salt_len = salt.iter().take(8).take_while(|&&b| b != b'$').count();
    let salt = salt.get(..salt_len).unwrap_or_default();

    let mut alt = Md5::new();
    alt.update(password);
    alt.update(salt);
    alt.update(password);
    let alt = alt.finalize();

    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(b"$1$");
    ctx.update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(alt.get(..n).unwrap_or_default());
        left -= n;
    }
    let first = password.first().copied().unwrap_or(0);
    let mut bits = password.len();
    while bits != 0 {
        ctx.update([if bits & 1 != 0 { 0 } else { first }]);
        bits >>= 1;
    }
    let mut fin = ctx.finalize();

    // 1000 rounds: the deliberate slowness of md5-crypt.
    for round in 0..1000 {
        let mut ctx = Md5::new();
        if round & 1 != 0 {
            ctx.update(password);
        } else {
            ctx.update(fin);
        }
        if round % 3 != 0 {
            ctx.update(salt);
        }
        if round % 7 != 0 {
            ctx.update(password);
        }
        if round & 1 != 0 {
            ctx.update(fin);
        } else {
            ctx.update(password);
        }
        fin = ctx.finalize();
    }

    let b = |i: usize| u32::from(fin.get(i).copied().unwrap_or(0));
    let mut out = String::with_capacity(3 + salt.len() + 1 + 22);
    out.push_str("$1$");
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    for (x, y, z) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64(&mut out, (b(x) << 16) | (b(y) << 8) | b(z), 4);
    }
    to64(&mut out, b(11), 2);
    out
}

fn to64(out: &mut String, mut v: u32, n: usize) {
    for _ in 0..n {
        out.push(char::from(ITOA64[(v & 0x3f) as usize]));
        v >>= 6;
    }
}

/// The hash part (after the third `$`) of an md5-crypt string.
fn crypt_hash_part(crypted: &str) -> String {
    crypted.rsplit('$').next().unwrap_or_default().to_string()
}

/// TokenSession secrets derived from one `get_token` reply.
#[derive(Clone)]
pub struct TokenSession {
    /// AES-256 key for the envelope.
    aes_key: [u8; 32],
    /// The `token` field every encrypted command carries.
    pub sign: String,
}

impl std::fmt::Debug for TokenSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session { <secret> }")
    }
}

impl TokenSession {
    /// Derives the AES key and sign from the admin password and a `get_token` reply.
    pub fn derive(password: &str, salt: &str, time: &str, newsalt: &str) -> TokenSession {
        let key = crypt_hash_part(&md5_crypt(password.as_bytes(), salt.as_bytes()));
        let aes_key: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let sign = crypt_hash_part(&md5_crypt(
            format!("{key}{time}").as_bytes(),
            newsalt.as_bytes(),
        ));
        TokenSession { aes_key, sign }
    }

    /// Encrypts plaintext JSON into the base64 `data` of an envelope.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let cipher = Aes256::new(GenericArray::from_slice(&self.aes_key));
        let mut bytes = plaintext.as_bytes().to_vec();
        let padded = bytes.len().div_ceil(16).max(1) * 16;
        bytes.resize(padded, 0);
        for block in bytes.chunks_exact_mut(16) {
            cipher.encrypt_block(GenericArray::from_mut_slice(block));
        }
        STANDARD.encode(bytes)
    }

    /// Decrypts the base64 of an envelope into its plaintext (zero padding trimmed).
    ///
    /// # Errors
    /// [`ApiError::Protocol`] for bad base64, a length not a multiple of 16, or non-UTF-8
    /// plaintext (which is what a wrong key produces).
    pub fn decrypt(&self, data: &str) -> Result<String, ApiError> {
        let mut bytes = STANDARD
            .decode(data.trim())
            .map_err(|e| ApiError::Protocol(format!("envelope is not base64: {e}")))?;
        if bytes.is_empty() || bytes.len() % 16 != 0 {
            return Err(ApiError::Protocol(format!(
                "envelope of {} bytes is not whole AES blocks",
                bytes.len()
            )));
        }
        let cipher = Aes256::new(GenericArray::from_slice(&self.aes_key));
        for block in bytes.chunks_exact_mut(16) {
            cipher.decrypt_block(GenericArray::from_mut_slice(block));
        }
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        String::from_utf8(bytes)
            .map_err(|_| ApiError::Protocol("envelope does not decrypt to text".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_crypt_matches_openssl() {
        // `openssl passwd -1 -salt saltsalt password`
        assert_eq!(
            md5_crypt(b"password", b"saltsalt"),
            "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"
        );
        // salt cut at 8 bytes and at '$'
        assert_eq!(
            md5_crypt(b"password", b"saltsaltEXTRA"),
            md5_crypt(b"password", b"saltsalt")
        );
        assert_eq!(
            md5_crypt(b"password", b"$1$saltsalt$"),
            md5_crypt(b"password", b"saltsalt")
        );
    }

    #[test]
    fn envelope_round_trip() {
        let s = TokenSession::derive("admin", "BQ5hoXV9", "1234", "zUXm3Zk5");
        assert_eq!(s.sign.len(), 22);
        let plain = r#"{"cmd":"power_off","respbefore":"true","token":"x"}"#;
        let data = s.encrypt(plain);
        assert_eq!(s.decrypt(&data).unwrap(), plain);
        let other = TokenSession::derive("wrong", "BQ5hoXV9", "1234", "zUXm3Zk5");
        assert_ne!(other.sign, s.sign);
        assert!(other.decrypt(&data).map(|t| t != plain).unwrap_or(true));
        assert!(s.decrypt("!!!").is_err());
        assert!(s.decrypt("AAAA").is_err());
    }
}
