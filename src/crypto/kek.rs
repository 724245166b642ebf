//! Passphrase -> key-encryption key: Argon2id with the parameters a key slot records.

use crate::crypto::secret::{Key32, Passphrase};
use crate::error::{Error, Result};
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub lanes: u32,
}

/// Production Argon2id parameters (FORMAT.md): 128 MiB, 3 passes, 4 lanes.
pub const KDF_DEFAULT: KdfParams = KdfParams {
    m_cost_kib: 128 * 1024,
    t_cost: 3,
    lanes: 4,
};
/// Test-only parameters; never chosen unless TUTELA_TEST_INSECURE_KDF=1 at init.
pub const KDF_TEST: KdfParams = KdfParams {
    m_cost_kib: 256,
    t_cost: 1,
    lanes: 1,
};

/// Argon2id, passphrase -> key-encryption key.
pub fn passphrase_kek(pass: &Passphrase, salt: &[u8], p: KdfParams) -> Result<Key32> {
    use argon2::{Algorithm, Argon2, Params, Version};
    let params = Params::new(p.m_cost_kib, p.t_cost, p.lanes, Some(32)).map_err(|_| {
        Error::ConfigCorrupt {
            why: "invalid KDF parameters".into(),
        }
    })?;
    let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    a.hash_password_into(pass.as_bytes(), salt, &mut out[..])
        .map_err(|_| Error::ConfigCorrupt {
            why: "KDF failed".into(),
        })?;
    Ok(Key32::from_bytes(*out))
}
