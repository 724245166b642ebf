//! The crypto core: keys and their derivation, content blocks, names. Pure functions over
//! bytes; it knows nothing of FUSE or of the filesystem (no `std::fs` here).

pub mod content;
pub mod kdf;
pub mod kek;
pub mod names;
pub mod sealed;
pub mod secret;
pub mod sign;

use crate::error::{Error, Result};
use aes_gcm_siv::aead::{AeadInPlace, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Random 128-bit identifiers: vault, zone, directory and file IDs.
pub const ID_LEN: usize = 16;
pub type Id = [u8; ID_LEN];

/// Fills `buf` from the OS random generator.
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::getrandom(buf)
        .map_err(|_| Error::Io(std::io::Error::other("the OS random generator failed")))
}

pub fn random_id() -> Result<Id> {
    let mut id = [0u8; ID_LEN];
    random_bytes(&mut id)?;
    Ok(id)
}

/// AES-256-GCM-SIV with a fresh random nonce: returns `nonce || ciphertext || tag`.
pub fn seal_random(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let cipher = Aes256GcmSiv::new(key.into());
    seal_with(&cipher, aad, plaintext)
}

pub fn seal_with(cipher: &Aes256GcmSiv, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut out = vec![0u8; NONCE_LEN + plaintext.len() + TAG_LEN];
    let (nonce, rest) = out.split_at_mut(NONCE_LEN);
    random_bytes(nonce)?;
    let (body, tag_out) = rest.split_at_mut(plaintext.len());
    body.copy_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, body)
        .map_err(|_| Error::Invalid)?;
    tag_out.copy_from_slice(&tag);
    Ok(out)
}

/// Opens `nonce || ciphertext || tag`; `what` names the object for the error.
pub fn open_with(
    cipher: &Aes256GcmSiv,
    aad: &[u8],
    sealed: &[u8],
    what: &'static str,
) -> Result<Vec<u8>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(Error::Corrupt { what });
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut out = body.to_vec();
    cipher
        .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, &mut out, tag.into())
        .map_err(|_| Error::AuthFailed { what })?;
    Ok(out)
}

pub fn open_random(
    key: &[u8; 32],
    aad: &[u8],
    sealed: &[u8],
    what: &'static str,
) -> Result<Vec<u8>> {
    let cipher = Aes256GcmSiv::new(key.into());
    open_with(&cipher, aad, sealed, what)
}
