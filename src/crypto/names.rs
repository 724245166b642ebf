//! Names: every file, directory and symlink name is sealed with AES-256-GCM-SIV under the zone's
//! name key with a fixed all-zero nonce and the parent directory's ID as associated data. The
//! result is deterministic (lookups are O(1): encrypt the name and open it) yet differs between
//! directories. GCM-SIV keeps this safe: repeating (key, nonce) only reveals equal names in the
//! same directory, which the directory listing reveals anyway.
//!
//! Encoded names longer than NAME_MAX are stored as `~<base64url(sha256(encoded))>` with the
//! full encoded name in a sibling record `~<hash>.name`. Pure: no I/O here.

use crate::crypto::secret::Key32;
use crate::crypto::{open_with, seal_with, Id, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use aes_gcm_siv::aead::{AeadInPlace, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The backing filesystem's name limit (and ours for plaintext names).
pub const NAME_MAX: usize = 255;
pub const LONG_PREFIX: &str = "~";
pub const LONG_SUFFIX: &str = ".name";
const SYMLINK_AAD: &[u8] = b"tutela/v1/symlink";
const XATTR_NAME_AAD: &[u8] = b"tutela/v1/xattr-name";
pub const XATTR_PREFIX: &str = "user.tutela.";

/// Where a sealed name lives in the backing directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The encoded name is the backing name.
    Short(String),
    /// The backing name is `hashed`; `full` goes into the record `hashed + ".name"`.
    Long { hashed: String, full: String },
}

impl Stored {
    pub fn backing_name(&self) -> &str {
        match self {
            Stored::Short(s) => s,
            Stored::Long { hashed, .. } => hashed,
        }
    }
}

pub fn long_hash_name(full: &str) -> String {
    let digest = Sha256::digest(full.as_bytes());
    format!("{LONG_PREFIX}{}", URL_SAFE_NO_PAD.encode(digest))
}

pub fn long_record_name(hashed: &str) -> String {
    format!("{hashed}{LONG_SUFFIX}")
}

/// Checks a plaintext name as the kernel would hand it to us.
pub fn validate_plain(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(Error::Invalid);
    }
    if name.len() > NAME_MAX {
        return Err(Error::NameTooLong);
    }
    Ok(())
}

/// The per-zone name cipher (also seals symlink targets and xattrs, under separate keys/AAD).
pub struct NameCipher {
    names: Aes256GcmSiv,
    xattrs: Aes256GcmSiv,
}

impl NameCipher {
    pub fn new(name_key: &Key32, xattr_key: &Key32) -> NameCipher {
        NameCipher {
            names: Aes256GcmSiv::new(name_key.as_bytes().into()),
            xattrs: Aes256GcmSiv::new(xattr_key.as_bytes().into()),
        }
    }

    fn seal_det(cipher: &Aes256GcmSiv, aad: &[u8], plain: &[u8]) -> Result<String> {
        let mut buf = plain.to_vec();
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&[0u8; NONCE_LEN]), aad, &mut buf)
            .map_err(|_| Error::Invalid)?;
        buf.extend_from_slice(&tag);
        Ok(URL_SAFE_NO_PAD.encode(&buf))
    }

    fn open_det(cipher: &Aes256GcmSiv, aad: &[u8], encoded: &[u8]) -> Result<Vec<u8>> {
        let mut buf = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| Error::Corrupt {
                what: "name (not base64url)",
            })?;
        if buf.len() <= TAG_LEN {
            return Err(Error::Corrupt {
                what: "name (short)",
            });
        }
        let tag = buf.split_off(buf.len() - TAG_LEN);
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&[0u8; NONCE_LEN]),
                aad,
                &mut buf,
                tag.as_slice().into(),
            )
            .map_err(|_| Error::AuthFailed { what: "name" })?;
        Ok(buf)
    }

    /// Seals a plaintext name for directory `dir_id`.
    pub fn encrypt(&self, dir_id: &Id, plain: &[u8]) -> Result<Stored> {
        validate_plain(plain)?;
        let full = Self::seal_det(&self.names, dir_id, plain)?;
        if full.len() <= NAME_MAX {
            Ok(Stored::Short(full))
        } else {
            Ok(Stored::Long {
                hashed: long_hash_name(&full),
                full,
            })
        }
    }

    /// Opens an encoded (full, not hashed) name of directory `dir_id`.
    pub fn decrypt(&self, dir_id: &Id, encoded: &[u8]) -> Result<Vec<u8>> {
        let plain = Self::open_det(&self.names, dir_id, encoded)?;
        validate_plain(&plain).map_err(|_| Error::Corrupt {
            what: "name (invalid plaintext)",
        })?;
        Ok(plain)
    }

    /// Seals a symlink target (random nonce: targets are not looked up).
    pub fn encrypt_symlink(&self, target: &[u8]) -> Result<String> {
        Ok(URL_SAFE_NO_PAD.encode(seal_with(&self.names, SYMLINK_AAD, target)?))
    }

    pub fn decrypt_symlink(&self, encoded: &[u8]) -> Result<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| Error::Corrupt {
                what: "symlink target (not base64url)",
            })?;
        open_with(&self.names, SYMLINK_AAD, &raw, "symlink target")
    }

    /// Backing xattr name for a plaintext `user.` attribute (the part after `user.`).
    pub fn encrypt_xattr_name(&self, plain: &[u8]) -> Result<String> {
        Ok(format!(
            "{XATTR_PREFIX}{}",
            Self::seal_det(&self.xattrs, XATTR_NAME_AAD, plain)?
        ))
    }

    pub fn decrypt_xattr_name(&self, backing: &[u8]) -> Result<Vec<u8>> {
        let enc = backing
            .strip_prefix(XATTR_PREFIX.as_bytes())
            .ok_or(Error::Corrupt { what: "xattr name" })?;
        Self::open_det(&self.xattrs, XATTR_NAME_AAD, enc)
    }

    /// Xattr values are bound to their (sealed) attribute name.
    pub fn encrypt_xattr_value(&self, backing_name: &str, value: &[u8]) -> Result<Vec<u8>> {
        seal_with(&self.xattrs, backing_name.as_bytes(), value)
    }

    pub fn decrypt_xattr_value(&self, backing_name: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        open_with(&self.xattrs, backing_name.as_bytes(), sealed, "xattr value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nc() -> NameCipher {
        NameCipher::new(&Key32::from_bytes([1; 32]), &Key32::from_bytes([2; 32]))
    }

    #[test]
    fn names_round_trip_and_depend_on_directory() {
        let c = nc();
        let a = c.encrypt(&[1; 16], b"report.pdf").unwrap();
        let b = c.encrypt(&[2; 16], b"report.pdf").unwrap();
        assert_ne!(a, b);
        assert_eq!(a, c.encrypt(&[1; 16], b"report.pdf").unwrap());
        assert_eq!(
            c.decrypt(&[1; 16], a.backing_name().as_bytes()).unwrap(),
            b"report.pdf"
        );
        assert!(c.decrypt(&[2; 16], a.backing_name().as_bytes()).is_err());
    }

    #[test]
    fn non_utf8_names_work() {
        let c = nc();
        let name = [0xff, 0xfe, b'a', 0x80];
        let s = c.encrypt(&[1; 16], &name).unwrap();
        assert_eq!(
            c.decrypt(&[1; 16], s.backing_name().as_bytes()).unwrap(),
            name
        );
    }

    #[test]
    fn long_names_switch_to_hashed_form_at_176_bytes() {
        let c = nc();
        let short = c.encrypt(&[1; 16], &[b'x'; 175]).unwrap();
        assert!(matches!(short, Stored::Short(ref s) if s.len() <= 255));
        let long = c.encrypt(&[1; 16], &[b'x'; 176]).unwrap();
        match long {
            Stored::Long { hashed, full } => {
                assert!(hashed.len() < 64 && hashed.starts_with('~'));
                assert_eq!(
                    c.decrypt(&[1; 16], full.as_bytes()).unwrap(),
                    vec![b'x'; 176]
                );
            }
            Stored::Short(_) => panic!("expected long form"),
        }
        let max = c.encrypt(&[1; 16], &[b'y'; 255]).unwrap();
        assert!(matches!(max, Stored::Long { .. }));
        assert!(matches!(
            c.encrypt(&[1; 16], &[b'y'; 256]),
            Err(Error::NameTooLong)
        ));
    }

    #[test]
    fn invalid_names_are_refused() {
        let c = nc();
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
            assert!(c.encrypt(&[1; 16], bad).is_err());
        }
        assert!(c.decrypt(&[1; 16], b"!!notbase64").is_err());
        assert!(c.decrypt(&[1; 16], b"AAAA").is_err());
    }

    #[test]
    fn symlinks_and_xattrs_round_trip() {
        let c = nc();
        let t = c.encrypt_symlink(b"../target/file").unwrap();
        assert_eq!(c.decrypt_symlink(t.as_bytes()).unwrap(), b"../target/file");
        let n = c.encrypt_xattr_name(b"color").unwrap();
        assert!(n.starts_with(XATTR_PREFIX));
        assert_eq!(c.decrypt_xattr_name(n.as_bytes()).unwrap(), b"color");
        let v = c.encrypt_xattr_value(&n, b"blue").unwrap();
        assert_eq!(c.decrypt_xattr_value(&n, &v).unwrap(), b"blue");
        assert!(c.decrypt_xattr_value("user.tutela.other", &v).is_err());
    }
}
