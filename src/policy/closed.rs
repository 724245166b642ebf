//! `tutela.closed`: which clients' matters are closed, sealed under the policy key, for the
//! mounts that cannot read the zone table. A full mount takes the closed clients from the
//! zone table (sealed under the zone-wrap key, authenticated with the config); a
//! client-scoped mount (`mount --client`) holds only its client's keys and the policy key,
//! so the list it enforces comes from here. Layout (FORMAT.md, "Closed clients"):
//!
//! ```text
//! magic "TUTCLOSD" [8] | version u16 LE = 1 | nonce [12] | ciphertext | tag [16]
//! plaintext: count u32 LE | count x (zone id [16] | closed at, ms since the epoch, u64 LE)
//! AES-256-GCM-SIV under the policy key, associated data "tutela/v1/closed" || vault id
//! ```
//!
//! It has the standing of the policy file on a scoped mount: whoever holds the policy key
//! and can write the backing directory can rewrite it (and the policy). A file that is there
//! but does not open is a verdict of "closed" for the mount that reads it (fail closed);
//! a missing one means no client is closed. Every change of a client's state writes it
//! (a close before the zone table, a reopen after it), and every full mount writes it again
//! from the zone table when the two differ.

use crate::crypto::secret::Key32;
use crate::crypto::{self, Id};
use crate::error::{Error, Result};
use crate::format::zones::ZoneRecord;
use std::path::Path;

pub const FILE_NAME: &str = "tutela.closed";
const MAGIC: &[u8; 8] = b"TUTCLOSD";
const VERSION: u16 = 1;
const AAD_LABEL: &[u8] = b"tutela/v1/closed";
/// Far above any real vault (24 bytes per closed client).
const MAX_LEN: u64 = 1 << 20;

/// The closed clients: zone id and when the matter closed.
pub type Closed = Vec<(Id, u64)>;

fn aad(vault_id: &Id) -> Vec<u8> {
    let mut a = AAD_LABEL.to_vec();
    a.extend_from_slice(vault_id);
    a
}

/// The closed clients of a zone table, in its order.
pub fn of_zones(zones: &[ZoneRecord]) -> Closed {
    zones
        .iter()
        .skip(1)
        .filter_map(|z| z.meta.closed_ms.map(|t| (z.id, t)))
        .collect()
}

/// The plaintext.
pub fn encode_plain(closed: &Closed) -> Vec<u8> {
    let mut p = Vec::with_capacity(4 + closed.len() * 24);
    p.extend_from_slice(&(closed.len() as u32).to_le_bytes());
    for (id, t) in closed {
        p.extend_from_slice(id);
        p.extend_from_slice(&t.to_le_bytes());
    }
    p
}

/// The plaintext's list; `None` unless it is exactly a list.
pub fn decode_plain(p: &[u8]) -> Option<Closed> {
    let mut r = crate::format::Reader::new(p);
    let n = r.u32("count").ok()? as usize;
    if p.len() != 4 + n.checked_mul(24)? {
        return None;
    }
    (0..n)
        .map(|_| {
            let id = r.array::<16>("zone id").ok()?;
            let t = u64::from_le_bytes(r.array::<8>("closed at").ok()?);
            Some((id, t))
        })
        .collect()
}

/// The file's bytes, with `sealed` (nonce | ciphertext | tag) made by the caller.
fn envelope(sealed: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(sealed);
    out
}

pub fn seal(key: &Key32, vault_id: &Id, closed: &Closed) -> Result<Vec<u8>> {
    Ok(envelope(&crypto::seal_random(
        key.as_bytes(),
        &aad(vault_id),
        &encode_plain(closed),
    )?))
}

pub fn open(key: &Key32, vault_id: &Id, bytes: &[u8]) -> Result<Closed> {
    let corrupt = || Error::Corrupt {
        what: "closed-clients file (tutela.closed)",
    };
    if bytes.len() < 10 || &bytes[..8] != MAGIC {
        return Err(corrupt());
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != VERSION {
        return Err(Error::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    let plain = crypto::open_random(
        key.as_bytes(),
        &aad(vault_id),
        &bytes[10..],
        "closed-clients file",
    )?;
    decode_plain(&plain).ok_or_else(corrupt)
}

/// The stored list; `Ok(None)` when there is no file (no client was ever closed since it
/// existed).
pub fn read(vault: &Path, key: &Key32, vault_id: &Id) -> Result<Option<Closed>> {
    match crate::sys::read_vault_file(&vault.join(FILE_NAME), MAX_LEN, false) {
        Ok(b) => open(key, vault_id, &b).map(Some),
        Err(Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `closed` (atomically) unless the file says so already; with nobody closed and no
/// file, writes nothing (a vault that never closed a client keeps no such file).
pub fn write(vault: &Path, key: &Key32, vault_id: &Id, closed: &Closed) -> Result<()> {
    match read(vault, key, vault_id) {
        Ok(Some(now)) if now == *closed => return Ok(()),
        Ok(None) if closed.is_empty() => return Ok(()),
        _ => {}
    }
    let bytes = seal(key, vault_id, closed)?;
    crate::sys::write_atomic(vault, FILE_NAME, &bytes, 0o600)
}

/// Saves a change of the zone table's closed clients (`save`, from `before` to `after`)
/// with `tutela.closed` kept on the safe side of it: the union of both lists is written
/// before the save and the new list after it, so a crash in between leaves a scoped mount
/// stricter than the zone table, never looser.
pub fn save_around(
    vault: &Path,
    key: &Key32,
    vault_id: &Id,
    (before, after): (&Closed, &Closed),
    save: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let mut both = before.clone();
    both.extend(
        after
            .iter()
            .filter(|(id, _)| !before.iter().any(|(b, _)| b == id)),
    );
    write(vault, key, vault_id, &both)?;
    save()?;
    write(vault, key, vault_id, after)
}

/// Whether zone `zone` is closed by the stored list, as a scoped mount decides it: a file
/// that is there but does not open (changed, another vault's, sealed under a key this
/// mount does not hold) counts as closed (fail closed), with the reason.
pub fn is_closed(vault: &Path, key: &Key32, vault_id: &Id, zone: &Id) -> (bool, Option<Error>) {
    match read(vault, key, vault_id) {
        Ok(None) => (false, None),
        Ok(Some(list)) => (list.iter().any(|(id, _)| id == zone), None),
        Err(e) => (true, Some(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_tamper_and_other_vaults() {
        let k = Key32::from_bytes([7; 32]);
        let list = vec![([1; 16], 1_700_000_000_000), ([2; 16], 5)];
        let b = seal(&k, &[9; 16], &list).unwrap();
        assert_eq!(open(&k, &[9; 16], &b).unwrap(), list);
        assert!(open(&k, &[8; 16], &b).is_err());
        assert!(open(&Key32::from_bytes([6; 32]), &[9; 16], &b).is_err());
        for i in 0..b.len() {
            let mut t = b.clone();
            t[i] ^= 1;
            assert!(open(&k, &[9; 16], &t).is_err(), "byte {i}");
        }
        for n in 0..b.len() {
            assert!(open(&k, &[9; 16], &b[..n]).is_err(), "cut at {n}");
        }
        let mut v2 = b.clone();
        v2[8] = 2;
        assert!(matches!(
            open(&k, &[9; 16], &v2),
            Err(Error::UnsupportedVersion { found: 2, .. })
        ));
    }

    #[test]
    fn the_plaintext_is_exact() {
        assert_eq!(decode_plain(&encode_plain(&vec![])), Some(vec![]));
        let mut p = encode_plain(&vec![([3; 16], 1)]);
        assert_eq!(p.len(), 28);
        p.push(0);
        assert_eq!(decode_plain(&p), None);
        // A count larger than what follows.
        assert_eq!(decode_plain(&[2, 0, 0, 0]), None);
        assert_eq!(decode_plain(&[0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn a_scoped_mount_fails_closed_on_a_file_it_cannot_open() {
        let t = tempfile::tempdir().unwrap();
        let k = Key32::from_bytes([7; 32]);
        let (vid, zone) = ([9; 16], [1; 16]);
        assert!(!is_closed(t.path(), &k, &vid, &zone).0);
        write(t.path(), &k, &vid, &vec![]).unwrap();
        assert!(
            !t.path().join(FILE_NAME).exists(),
            "nothing closed, no file"
        );
        write(t.path(), &k, &vid, &vec![([2; 16], 1)]).unwrap();
        assert!(!is_closed(t.path(), &k, &vid, &zone).0);
        write(t.path(), &k, &vid, &vec![(zone, 1)]).unwrap();
        assert!(is_closed(t.path(), &k, &vid, &zone).0);
        // Reopened: the file stays, saying nobody is closed.
        write(t.path(), &k, &vid, &vec![]).unwrap();
        assert!(!is_closed(t.path(), &k, &vid, &zone).0);
        std::fs::write(t.path().join(FILE_NAME), b"TUTCLOSD\x01\x00garbage").unwrap();
        let (closed, why) = is_closed(t.path(), &k, &vid, &zone);
        assert!(closed && why.is_some());
    }
}
