//! File contents: an 18-byte header (version, file ID) followed by blocks. Each plaintext block
//! of up to `BLOCK` bytes becomes `nonce(12) || ciphertext || tag(16)`, sealed with
//! AES-256-GCM-SIV under the per-file key, with associated data `file_id || block_no (u64 BE)`
//! so a block cannot be moved to another offset or another file undetected. Pure: no I/O.

use crate::crypto::{Id, ID_LEN, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use aes_gcm_siv::aead::{AeadInPlace, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};

pub const HEADER_VERSION: u16 = 1;
pub const HEADER_LEN: u64 = 2 + ID_LEN as u64;
/// Plaintext block size.
pub const BLOCK: u64 = 4096;
pub const OVERHEAD: u64 = (NONCE_LEN + TAG_LEN) as u64;
/// Ciphertext block size of a full block.
pub const CT_BLOCK: u64 = BLOCK + OVERHEAD;

pub fn encode_header(file_id: &Id) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..2].copy_from_slice(&HEADER_VERSION.to_be_bytes());
    h[2..].copy_from_slice(file_id);
    h
}

pub fn decode_header(bytes: &[u8]) -> Result<Id> {
    if bytes.len() < HEADER_LEN as usize {
        return Err(Error::Corrupt {
            what: "file header (short)",
        });
    }
    let version = u16::from_be_bytes([bytes[0], bytes[1]]);
    if version != HEADER_VERSION {
        return Err(Error::Corrupt {
            what: "file header (unknown version)",
        });
    }
    let mut id = [0u8; ID_LEN];
    id.copy_from_slice(&bytes[2..HEADER_LEN as usize]);
    if id == [0u8; ID_LEN] {
        return Err(Error::Corrupt {
            what: "file header (zero file id)",
        });
    }
    Ok(id)
}

/// Plaintext size for a ciphertext file size. `None` when no valid file has that size.
pub fn plain_size(ct_size: u64) -> Option<u64> {
    if ct_size == 0 {
        return Some(0);
    }
    let body = ct_size.checked_sub(HEADER_LEN)?;
    let full = body / CT_BLOCK;
    let rem = body % CT_BLOCK;
    if rem == 0 {
        Some(full * BLOCK)
    } else if rem <= OVERHEAD {
        None
    } else {
        Some(full * BLOCK + rem - OVERHEAD)
    }
}

/// Ciphertext size for a plaintext size (0 stays 0: an empty file has no header).
pub fn cipher_size(plain: u64) -> u64 {
    if plain == 0 {
        return 0;
    }
    let full = plain / BLOCK;
    let rem = plain % BLOCK;
    HEADER_LEN + full * CT_BLOCK + if rem > 0 { rem + OVERHEAD } else { 0 }
}

/// Offset of block `n`'s ciphertext in the backing file.
pub fn block_offset(n: u64) -> u64 {
    HEADER_LEN + n * CT_BLOCK
}

fn aad(file_id: &Id, block_no: u64) -> [u8; ID_LEN + 8] {
    let mut a = [0u8; ID_LEN + 8];
    a[..ID_LEN].copy_from_slice(file_id);
    a[ID_LEN..].copy_from_slice(&block_no.to_be_bytes());
    a
}

/// The per-file cipher: created once per open inode, not per request.
pub struct FileCipher {
    cipher: Aes256GcmSiv,
    file_id: Id,
}

impl FileCipher {
    pub fn new(key: &crate::crypto::secret::Key32, file_id: Id) -> FileCipher {
        FileCipher {
            cipher: Aes256GcmSiv::new(key.as_bytes().into()),
            file_id,
        }
    }

    pub fn file_id(&self) -> &Id {
        &self.file_id
    }

    /// Seals `plain` (at most BLOCK bytes) as block `block_no` into `out`, which must be
    /// exactly `plain.len() + OVERHEAD` bytes.
    pub fn seal_block(&self, block_no: u64, plain: &[u8], out: &mut [u8]) -> Result<()> {
        let mut nonce = [0u8; NONCE_LEN];
        crate::crypto::random_bytes(&mut nonce)?;
        self.seal_with_nonce(block_no, &nonce, plain, out)
    }

    /// Seals consecutive blocks `first..` from `plains` (each at most BLOCK bytes) into `out`,
    /// which is exactly their sealed size. Same output as `seal_block` per block, but the
    /// random nonces of up to 64 blocks come from one call to the OS generator.
    pub fn seal_blocks(&self, first: u64, plains: &[&[u8]], out: &mut [u8]) -> Result<()> {
        const BATCH: usize = 64;
        let mut nonces = [0u8; BATCH * NONCE_LEN];
        let mut pos = 0;
        for (k, group) in plains.chunks(BATCH).enumerate() {
            let nonces = &mut nonces[..group.len() * NONCE_LEN];
            crate::crypto::random_bytes(nonces)?;
            for (i, (p, nonce)) in group.iter().zip(nonces.chunks(NONCE_LEN)).enumerate() {
                let len = p.len() + OVERHEAD as usize;
                let dst = out.get_mut(pos..pos + len).ok_or(Error::Invalid)?;
                self.seal_with_nonce((k * BATCH + i) as u64 + first, nonce, p, dst)?;
                pos += len;
            }
        }
        if pos != out.len() {
            return Err(Error::Invalid);
        }
        Ok(())
    }

    fn seal_with_nonce(
        &self,
        block_no: u64,
        nonce: &[u8],
        plain: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        if plain.len() as u64 > BLOCK || out.len() != plain.len() + OVERHEAD as usize {
            return Err(Error::Invalid);
        }
        let (n, rest) = out.split_at_mut(NONCE_LEN);
        n.copy_from_slice(nonce);
        let (body, tag_out) = rest.split_at_mut(plain.len());
        body.copy_from_slice(plain);
        let tag = self
            .cipher
            .encrypt_in_place_detached(
                Nonce::from_slice(nonce),
                &aad(&self.file_id, block_no),
                body,
            )
            .map_err(|_| Error::Invalid)?;
        tag_out.copy_from_slice(&tag);
        Ok(())
    }

    /// Opens one ciphertext block into `out` (which must be `sealed.len() - OVERHEAD` bytes).
    /// An all-zero ciphertext block is a hole left by truncate/seek past EOF and reads as
    /// zeros (see docs/threat-model.md for what that means).
    pub fn open_block(&self, block_no: u64, sealed: &[u8], out: &mut [u8]) -> Result<()> {
        if sealed.len() as u64 <= OVERHEAD || out.len() != sealed.len() - OVERHEAD as usize {
            return Err(Error::Corrupt {
                what: "content block (short)",
            });
        }
        if sealed.iter().all(|&b| b == 0) {
            out.fill(0);
            return Ok(());
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        out.copy_from_slice(body);
        self.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                &aad(&self.file_id, block_no),
                out,
                tag.into(),
            )
            .map_err(|_| Error::AuthFailed {
                what: "content block",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::secret::Key32;

    #[test]
    fn sizes_at_block_boundaries() {
        // (plaintext, ciphertext) pairs listed in FORMAT.md "Worked sizes".
        let table = [
            (0u64, 0u64),
            (1, 18 + 1 + 28),
            (4095, 18 + 4095 + 28),
            (4096, 18 + 4124),
            (4097, 18 + 4124 + 1 + 28),
            (5000, 18 + 4124 + 904 + 28),
            (8192, 18 + 2 * 4124),
        ];
        for (p, c) in table {
            assert_eq!(cipher_size(p), c, "cipher_size({p})");
            assert_eq!(plain_size(c), Some(p), "plain_size({c})");
        }
        for p in 0..20_000u64 {
            assert_eq!(plain_size(cipher_size(p)), Some(p));
        }
        assert_eq!(plain_size(5), None);
        assert_eq!(plain_size(18 + 28), None);
        assert_eq!(plain_size(u64::MAX), plain_size(u64::MAX)); // no overflow panic
    }

    #[test]
    fn block_round_trip_and_binding() {
        let c = FileCipher::new(&Key32::from_bytes([3; 32]), [9; 16]);
        let plain = vec![0x5a; 4096];
        let mut sealed = vec![0; 4096 + 28];
        c.seal_block(7, &plain, &mut sealed).unwrap();
        let mut out = vec![0; 4096];
        c.open_block(7, &sealed, &mut out).unwrap();
        assert_eq!(out, plain);
        // Another block number or another file ID fails.
        assert!(c.open_block(8, &sealed, &mut out).is_err());
        let other = FileCipher::new(&Key32::from_bytes([3; 32]), [8; 16]);
        assert!(other.open_block(7, &sealed, &mut out).is_err());
        // A flipped bit fails.
        sealed[100] ^= 1;
        assert!(matches!(
            c.open_block(7, &sealed, &mut out),
            Err(Error::AuthFailed { .. })
        ));
    }

    /// Batch sealing crosses its 64-nonce batches, ends in a short block, gives each block
    /// its own nonce and binds each to its number, exactly as one-at-a-time sealing does.
    #[test]
    fn sealing_many_blocks_at_once_matches_one_at_a_time() {
        let c = FileCipher::new(&Key32::from_bytes([3; 32]), [9; 16]);
        let blocks: Vec<Vec<u8>> = (0..130u32)
            .map(|i| vec![i as u8; if i == 129 { 100 } else { 4096 }])
            .collect();
        let plains: Vec<&[u8]> = blocks.iter().map(|b| b.as_slice()).collect();
        let total: usize = plains.iter().map(|p| p.len() + OVERHEAD as usize).sum();
        let mut sealed = vec![0; total];
        c.seal_blocks(40, &plains, &mut sealed).unwrap();
        let mut nonces = std::collections::HashSet::new();
        let mut pos = 0;
        for (i, p) in plains.iter().enumerate() {
            let ct = &sealed[pos..pos + p.len() + OVERHEAD as usize];
            assert!(nonces.insert(ct[..NONCE_LEN].to_vec()), "nonce reused");
            let mut out = vec![0; p.len()];
            c.open_block(40 + i as u64, ct, &mut out).unwrap();
            assert_eq!(&out, p);
            assert!(c.open_block(41 + i as u64, ct, &mut out).is_err());
            pos += ct.len();
        }
        assert!(
            c.seal_blocks(0, &plains, &mut sealed[1..]).is_err(),
            "wrong size refused"
        );
    }

    #[test]
    fn zero_block_reads_as_hole() {
        let c = FileCipher::new(&Key32::from_bytes([3; 32]), [9; 16]);
        let mut out = vec![1; 100];
        c.open_block(0, &[0u8; 128], &mut out).unwrap();
        assert!(out.iter().all(|&b| b == 0));
    }

    #[test]
    fn header_round_trip_and_rejects() {
        let h = encode_header(&[4; 16]);
        assert_eq!(decode_header(&h).unwrap(), [4; 16]);
        assert!(decode_header(&h[..10]).is_err());
        let mut bad = h;
        bad[1] = 9;
        assert!(decode_header(&bad).is_err());
    }
}
