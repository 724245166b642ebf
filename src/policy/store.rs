//! `tutela.policy`: the access policy's TOML text, sealed under a master-key-derived key so
//! that whoever holds the backing directory can neither read the client list nor change what
//! is enforced. The envelope's layout is `format/policy.rs`; the sealed text inside it is
//! nonce [12] | ciphertext | tag [16], associated data = vault id.

use crate::crypto::secret::Key32;
use crate::crypto::{self, Id};
use crate::error::{Error, Result};
use crate::format::config::PolicyBinding;
use sha2::{Digest, Sha256};
use std::path::Path;

pub const FILE_NAME: &str = "tutela.policy";
use crate::format::policy::{self as envelope, EnvelopeError};

pub fn seal(key: &Key32, vault_id: &Id, text: &str) -> Result<Vec<u8>> {
    Ok(envelope::wrap(&crypto::seal_random(
        key.as_bytes(),
        vault_id,
        text.as_bytes(),
    )?))
}

pub fn open(key: &Key32, vault_id: &Id, bytes: &[u8]) -> Result<String> {
    let sealed = envelope::unwrap(bytes).map_err(|e| match e {
        EnvelopeError::NotPolicy => Error::Corrupt {
            what: "policy file (not a tutela policy)",
        },
        EnvelopeError::Version(found) => Error::UnsupportedVersion {
            found,
            supported: envelope::VERSION,
        },
    })?;
    let plain = crypto::open_random(key.as_bytes(), vault_id, sealed, "policy file")?;
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

/// What the config's policy binding records of a policy file's bytes.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The stored policy text as the vault's authenticated config expects it (`binding`; `None`
/// for a version 1 config, which records nothing). Fails closed: a policy file that is
/// missing while one is expected, or is not the one last set (an older copy, another vault's,
/// changed), is an error, never "no policy".
pub fn read_bound(
    vault: &Path,
    key: &Key32,
    vault_id: &Id,
    binding: Option<PolicyBinding>,
) -> Result<Option<String>> {
    let Some(b) = binding else {
        return read(vault, key, vault_id);
    };
    let bytes = match crate::sys::read_vault_file(&vault.join(FILE_NAME), MAX_LEN, false) {
        Ok(bytes) => Some(bytes),
        Err(Error::NotFound) => None,
        Err(e) => return Err(e),
    };
    let generation = b.generation;
    match bytes {
        None if !b.expects_policy() => Ok(None),
        None => Err(Error::PolicyInvalid(format!(
            "{FILE_NAME} is missing, but the vault expects the policy set at generation \
             {generation}: deleting it does not lift the fence. Restore it from a backup, \
             or have an admin run `tutela policy set` or `tutela policy clear`"
        ))),
        Some(_) if !b.expects_policy() => Err(Error::PolicyInvalid(format!(
            "{FILE_NAME} is present, but the vault's policy was cleared (generation \
             {generation}): an old copy? Remove it, or run `tutela policy set`"
        ))),
        Some(bytes) if digest(&bytes) != b.digest => Err(Error::PolicyInvalid(format!(
            "{FILE_NAME} is not the policy set at generation {generation} (an older copy, \
             another vault's, or changed): restore it from a backup, or run `tutela policy \
             set`"
        ))),
        Some(bytes) => open(key, vault_id, &bytes).map(Some),
    }
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
