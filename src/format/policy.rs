//! `tutela.policy`'s envelope (FORMAT.md, "The policy file"): magic "TUTELAPL" | version u16
//! (1) | sealed policy text (nonce, ciphertext, tag; sealed by the policy module).

pub const MAGIC: &[u8; 8] = b"TUTELAPL";
pub const VERSION: u16 = 1;

#[derive(Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    NotPolicy,
    Version(u16),
}

/// The file's bytes around a sealed policy.
pub fn wrap(sealed: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(sealed);
    out
}

/// The sealed policy inside a file's bytes.
pub fn unwrap(bytes: &[u8]) -> Result<&[u8], EnvelopeError> {
    let mut r = super::Reader::new(bytes);
    let not = |_| EnvelopeError::NotPolicy;
    if r.take(MAGIC.len(), "magic").map_err(not)? != MAGIC {
        return Err(EnvelopeError::NotPolicy);
    }
    let version = r.u16("version").map_err(not)?;
    if version != VERSION {
        return Err(EnvelopeError::Version(version));
    }
    Ok(&bytes[MAGIC.len() + 2..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_round_trips_and_refuses_what_it_does_not_know() {
        let b = wrap(b"sealed");
        assert_eq!(unwrap(&b), Ok(&b"sealed"[..]));
        assert_eq!(unwrap(b"TUTELAP"), Err(EnvelopeError::NotPolicy));
        assert_eq!(unwrap(b"TUTELAXX\x01\x00"), Err(EnvelopeError::NotPolicy));
        assert_eq!(
            unwrap(b"TUTELAPL\x02\x00abc"),
            Err(EnvelopeError::Version(2))
        );
    }
}
