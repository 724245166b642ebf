//! The recovery key: the master key in a human-copyable form. 32 key bytes followed by the first
//! 4 bytes of SHA-256(key) as a typo check, as 72 lowercase hex digits in 9 dash-separated groups.

use crate::crypto::secret::Key32;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub fn encode(master: &Key32) -> Zeroizing<String> {
    let mut raw = Zeroizing::new(Vec::with_capacity(36));
    raw.extend_from_slice(master.as_bytes());
    raw.extend_from_slice(&Sha256::digest(master.as_bytes())[..4]);
    let mut out = Zeroizing::new(String::with_capacity(80));
    for (i, b) in raw.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Parses a recovery key, ignoring dashes, spaces and case. Errors say what is wrong.
pub fn decode(text: &str) -> Result<Key32, &'static str> {
    let digits: Zeroizing<Vec<u8>> = Zeroizing::new(
        text.bytes()
            .filter(|c| !matches!(c, b'-' | b' ' | b'\t' | b'\n' | b'\r'))
            .collect(),
    );
    if digits.len() != 72 {
        return Err("a recovery key has 72 hex digits");
    }
    let mut raw = Zeroizing::new([0u8; 36]);
    for (i, pair) in digits.chunks(2).enumerate() {
        let hi = (pair[0] as char)
            .to_digit(16)
            .ok_or("a recovery key has hex digits only")?;
        let lo = (pair[1] as char)
            .to_digit(16)
            .ok_or("a recovery key has hex digits only")?;
        raw[i] = (hi * 16 + lo) as u8;
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&raw[..32]);
    let k = Key32::from_bytes(key);
    if Sha256::digest(k.as_bytes())[..4] != raw[32..] {
        return Err("the recovery key's check digits do not match: look for a typo");
    }
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_typo_detection() {
        let k = Key32::from_bytes([0x42; 32]);
        let s = encode(&k);
        assert_eq!(s.split('-').count(), 9);
        assert_eq!(decode(&s).unwrap().as_bytes(), k.as_bytes());
        assert_eq!(decode(&s.to_uppercase()).unwrap().as_bytes(), k.as_bytes());
        let mut typo = s.to_string();
        typo.replace_range(0..1, "5");
        assert!(decode(&typo).is_err());
        assert!(decode("abc").is_err());
    }
}
