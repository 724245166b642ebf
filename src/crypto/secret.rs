//! Secret-holding types. They zeroize on drop, print as `[redacted]`, and are not Clone/Copy:
//! a key is handed around by reference, and a second copy only exists where code asks for one
//! explicitly (`duplicate`), which is easy to find in review.

use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// A 256-bit key, heap-allocated so its address is stable (it is mlocked best effort).
pub struct Key32(Box<[u8; 32]>);

impl Key32 {
    pub fn from_bytes(bytes: [u8; 32]) -> Key32 {
        let mut b = Box::new(bytes);
        let mut src = bytes;
        src.zeroize();
        crate::sys::mlock_best_effort(b.as_mut_ptr(), 32);
        Key32(b)
    }

    /// A key that lives only while a cipher is built from it (a file's content key): not
    /// mlocked, which would cost a syscall per opened file while the cipher's round keys sit
    /// in ordinary memory anyway. Still zeroized on drop.
    pub fn short_lived(bytes: [u8; 32]) -> Key32 {
        let b = Box::new(bytes);
        let mut src = bytes;
        src.zeroize();
        Key32(b)
    }

    /// Fills a new key from the OS random generator.
    pub fn random() -> crate::error::Result<Key32> {
        let mut b = Box::new([0u8; 32]);
        getrandom::getrandom(&mut b[..]).map_err(|_| {
            crate::error::Error::Io(std::io::Error::other("the OS random generator failed"))
        })?;
        crate::sys::mlock_best_effort(b.as_mut_ptr(), 32);
        Ok(Key32(b))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// An explicit second copy, for the rare places that must own one.
    pub fn duplicate(&self) -> Key32 {
        Key32::from_bytes(*self.0)
    }
}

impl Drop for Key32 {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key32([redacted])")
    }
}

/// A passphrase as typed or read; bytes, since a passphrase need not be UTF-8.
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    pub fn new(bytes: Vec<u8>) -> Passphrase {
        Passphrase(Zeroizing::new(bytes))
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_key_bytes() {
        let k = Key32::from_bytes([0xAB; 32]);
        let s = format!("{k:?}");
        assert!(!s.contains("ab") && !s.contains("171"), "{s}");
        let p = Passphrase::new(b"hunter2".to_vec());
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
