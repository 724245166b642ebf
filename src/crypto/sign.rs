//! Signatures on what tutela hands out of the vault (`audit report`, erasure certificates):
//! Ed25519 (RFC 8032, ed25519-dalek), with a key whose seed derives from the master key
//! (`kdf::report_sign_seed`), so every holder of the vault's keys makes the same public key
//! and nothing extra is stored. A recipient checks a signature offline with the public key
//! alone. Messages are prefixed with a domain label, so a signature on one kind of document
//! never passes for another.

use crate::crypto::secret::Key32;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

pub const PUBLIC_LEN: usize = 32;
pub const SIGNATURE_LEN: usize = 64;

/// The public half of the signing key made from `seed`.
pub fn public(seed: &Key32) -> [u8; PUBLIC_LEN] {
    SigningKey::from_bytes(seed.as_bytes())
        .verifying_key()
        .to_bytes()
}

fn message(domain: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + 1 + body.len());
    m.extend_from_slice(domain);
    m.push(0);
    m.extend_from_slice(body);
    m
}

/// Signs `domain` ‖ 0 ‖ `body`.
pub fn sign(seed: &Key32, domain: &[u8], body: &[u8]) -> [u8; SIGNATURE_LEN] {
    SigningKey::from_bytes(seed.as_bytes())
        .sign(&message(domain, body))
        .to_bytes()
}

/// Whether `sig` is `public`'s signature of `domain` ‖ 0 ‖ `body`.
pub fn verify(
    public: &[u8; PUBLIC_LEN],
    domain: &[u8],
    body: &[u8],
    sig: &[u8; SIGNATURE_LEN],
) -> bool {
    let Ok(k) = VerifyingKey::from_bytes(public) else {
        return false;
    };
    k.verify_strict(&message(domain, body), &Signature::from_bytes(sig))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_checks_and_any_change_breaks_it() {
        let seed = Key32::from_bytes([7; 32]);
        let pk = public(&seed);
        let sig = sign(&seed, b"tutela/v1/report", b"body");
        assert!(verify(&pk, b"tutela/v1/report", b"body", &sig));
        assert!(!verify(&pk, b"tutela/v1/report", b"bodY", &sig));
        assert!(!verify(&pk, b"tutela/v1/certificate", b"body", &sig));
        let other = public(&Key32::from_bytes([8; 32]));
        assert!(!verify(&other, b"tutela/v1/report", b"body", &sig));
        let mut bad = sig;
        bad[0] ^= 1;
        assert!(!verify(&pk, b"tutela/v1/report", b"body", &bad));
    }

    /// RFC 8032, section 7.1, test 1 (empty message): the library is the standard one.
    #[test]
    fn rfc8032_test_vector() {
        let seed: [u8; 32] = [
            0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
            0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
            0x1c, 0xae, 0x7f, 0x60,
        ];
        let pk = public(&Key32::from_bytes(seed));
        let hex: String = pk.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }
}
