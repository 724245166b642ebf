//! `tutela.policy`: the access policy's TOML text, sealed under a master-key-derived key so
//! that whoever holds the backing directory can neither read the client list nor change what
//! is enforced. Layout: magic "TUTELAPL" | version u16 LE (1) | nonce [12] | ciphertext | tag
//! [16], associated data = vault id.

use crate::crypto::{self, Id};
use crate::error::{Error, Result};
use crate::secret::Key32;
use std::path::Path;

pub const FILE_NAME: &str = "tutela.policy";
const MAGIC: &[u8; 8] = b"TUTELAPL";
const VERSION: u16 = 1;

pub fn seal(key: &Key32, vault_id: &Id, text: &str) -> Result<Vec<u8>> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&crypto::seal_random(
        key.as_bytes(),
        vault_id,
        text.as_bytes(),
    )?);
    Ok(out)
}

pub fn open(key: &Key32, vault_id: &Id, bytes: &[u8]) -> Result<String> {
    if bytes.len() < 10 || &bytes[..8] != MAGIC {
        return Err(Error::Corrupt {
            what: "policy file (not a tutela policy)",
        });
    }
    if u16::from_le_bytes([bytes[8], bytes[9]]) != VERSION {
        return Err(Error::Corrupt {
            what: "policy file (unknown version)",
        });
    }
    let plain = crypto::open_random(key.as_bytes(), vault_id, &bytes[10..], "policy file")?;
    String::from_utf8(plain).map_err(|_| Error::Corrupt {
        what: "policy file (not UTF-8)",
    })
}

/// Far above any real policy (a few KiB).
const MAX_LEN: u64 = 4 << 20;

/// The stored policy text, if the vault has one.
pub fn read(vault: &Path, key: &Key32, vault_id: &Id) -> Result<Option<String>> {
    match crate::sys::read_vault_file(&vault.join(FILE_NAME), MAX_LEN, false) {
        Ok(b) => open(key, vault_id, &b).map(Some),
        Err(Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn write(vault: &Path, key: &Key32, vault_id: &Id, text: &str) -> Result<()> {
    crate::sys::write_atomic(vault, FILE_NAME, &seal(key, vault_id, text)?, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let k = Key32::from_bytes([9; 32]);
        let b = seal(&k, &[1; 16], "admins = []\n").unwrap();
        assert_eq!(open(&k, &[1; 16], &b).unwrap(), "admins = []\n");
        assert!(open(&k, &[2; 16], &b).is_err());
        let mut t = b.clone();
        let n = t.len();
        t[n - 1] ^= 1;
        assert!(matches!(
            open(&k, &[1; 16], &t),
            Err(Error::AuthFailed { .. })
        ));
    }
}
