//! Which chains the audit log holds, and which one this machine writes.
//!
//! A vault kept in a sync folder is mounted on several machines, each from its own copy. One
//! shared chain would fork (both machines write segment 7, the sync tool keeps one and renames
//! the other), so every copy writes a chain of its own, a *replica*, in its own directory
//! `tutela.audit/r-<16 hex>/`, whose identity is bound into the chain's first MAC. Logs written
//! before replicas existed stay in `tutela.audit/` itself (the original chain) and are read,
//! never continued. Layout in FORMAT.md ("Audit log replicas").

use super::DIR_NAME;
use crate::crypto::Id;
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A replica's identity: 8 bytes, written as 16 lowercase hex digits.
pub type ReplicaId = [u8; 8];

const REPLICA_PREFIX: &str = "r-";
const REPLICA_LABEL: &[u8] = b"tutela/v1/audit-replica";

/// One hash chain of records, in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub dir: PathBuf,
    /// `None` for the original chain in `tutela.audit/` itself.
    pub replica: Option<ReplicaId>,
}

impl Chain {
    /// The original chain of vault `vault`.
    pub fn original(vault: &Path) -> Chain {
        Chain {
            dir: vault.join(DIR_NAME),
            replica: None,
        }
    }

    /// Replica `id`'s chain in vault `vault`.
    pub fn replica(vault: &Path, id: ReplicaId) -> Chain {
        Chain {
            dir: vault.join(DIR_NAME).join(dir_name(&id)),
            replica: Some(id),
        }
    }

    /// The chain copy `self` would be in another vault directory (a re-seal's staging one).
    pub fn moved_to(&self, vault: &Path) -> Chain {
        match self.replica {
            Some(id) => Chain::replica(vault, id),
            None => Chain::original(vault),
        }
    }

    /// How people and messages name it: its directory inside the vault.
    pub fn label(&self) -> String {
        match &self.replica {
            Some(id) => format!("{DIR_NAME}/{}", dir_name(id)),
            None => DIR_NAME.to_string(),
        }
    }
}

/// `r-` and the id in hex.
pub fn dir_name(id: &ReplicaId) -> String {
    format!("{REPLICA_PREFIX}{}", hex(id))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The id in a replica directory's name, if it is exactly one tutela writes.
pub fn parse_dir_name(name: &str) -> Option<ReplicaId> {
    let h = name.strip_prefix(REPLICA_PREFIX)?;
    if h.len() != 16
        || !h
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut id = [0u8; 8];
    for (i, d) in id.iter_mut().enumerate() {
        *d = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

/// Replica id for vault `vault_id` kept at `path` on the machine `machine`: SHA-256 of the
/// label, the vault id, and the two strings each preceded by its length (u32 LE), first 8
/// bytes. Nothing here is stored: the same copy on the same machine always gets the same id,
/// and a copy the sync tool makes elsewhere always gets another. No key goes in, so a rekey
/// does not move the chain.
pub fn replica_id(vault_id: &Id, machine: &[u8], path: &[u8]) -> ReplicaId {
    hashed_id(&[REPLICA_LABEL, vault_id], machine, path)
}

/// SHA-256 of `fixed` as they are, then `machine` and `path` each preceded by its length (u32
/// LE): the first 8 bytes.
fn hashed_id(fixed: &[&[u8]], machine: &[u8], path: &[u8]) -> ReplicaId {
    let mut h = Sha256::new();
    for f in fixed {
        h.update(f);
    }
    for part in [machine, path] {
        h.update((part.len() as u32).to_le_bytes());
        h.update(part);
    }
    let d = h.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    id
}

/// The replica id of a client-scoped mount of zone `zone_id` from the same copy: another
/// chain than the full mounts' (it is written with other keys). SHA-256 of
/// `tutela/v1/audit-replica-client`, the vault id, the zone id and the two length-prefixed
/// strings, first 8 bytes.
pub fn scoped_replica_id(vault_id: &Id, zone_id: &Id, machine: &[u8], path: &[u8]) -> ReplicaId {
    hashed_id(
        &[b"tutela/v1/audit-replica-client", vault_id, zone_id],
        machine,
        path,
    )
}

/// The chain a client-scoped mount of zone `zone_id` writes for the vault at `vault`.
pub fn local_scoped(vault: &Path, vault_id: &Id, zone_id: &Id) -> Chain {
    use std::os::unix::ffi::OsStrExt;
    let path = std::fs::canonicalize(vault).unwrap_or_else(|_| vault.to_path_buf());
    Chain::replica(
        vault,
        scoped_replica_id(vault_id, zone_id, &machine(), path.as_os_str().as_bytes()),
    )
}

/// This machine's identity: systemd's machine id, else D-Bus's, else the host name. Cloned
/// machines that share a machine id and keep the vault at the same path share a replica: say
/// so where it matters (README, "Vault in a sync folder").
fn machine() -> Vec<u8> {
    for f in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        if let Ok(s) = std::fs::read_to_string(f) {
            let s = s.trim();
            if !s.is_empty() {
                return s.as_bytes().to_vec();
            }
        }
    }
    crate::sys::host_name().into_bytes()
}

/// The chain this machine writes for the vault at `vault`.
pub fn local(vault: &Path, vault_id: &Id) -> Chain {
    use std::os::unix::ffi::OsStrExt;
    let path = std::fs::canonicalize(vault).unwrap_or_else(|_| vault.to_path_buf());
    Chain::replica(
        vault,
        replica_id(vault_id, &machine(), path.as_os_str().as_bytes()),
    )
}

/// Every chain in the vault's log, the original one first, then replicas by id. The original
/// chain counts only if it holds a segment or a pruning checkpoint.
pub fn all(vault: &Path) -> Result<Vec<Chain>> {
    let dir = vault.join(DIR_NAME);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::Io(e)),
    };
    let mut replicas = Vec::new();
    let mut original = false;
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = parse_dir_name(&name) {
            // A planted symlink would lead the reader (and a writer) out of the vault.
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                replicas.push(id);
            }
        } else if name == super::prune::FILE_NAME || is_segment_name(&name) {
            original = true;
        }
    }
    replicas.sort();
    let mut out = Vec::new();
    if original {
        out.push(Chain::original(vault));
    }
    out.extend(replicas.into_iter().map(|id| Chain::replica(vault, id)));
    Ok(out)
}

/// `NNNNNNNNNNNNNNNN.seg`, as tutela writes it.
pub fn is_segment_name(name: &str) -> bool {
    name.len() == 20
        && name.ends_with(".seg")
        && name.as_bytes()[..16].iter().all(u8::is_ascii_digit)
}

/// Names beside a chain's segments that start as a segment's name and are not one: a sync
/// tool's conflict copy (`0000000000000002.sync-conflict-20261204-101112-ABCDEF7.seg`), with
/// the chain's label in front.
pub fn segment_copies(vault: &Path) -> Vec<String> {
    let mut dirs = vec![(DIR_NAME.to_string(), vault.join(DIR_NAME))];
    if let Ok(chains) = all(vault) {
        dirs.extend(
            chains
                .into_iter()
                .filter(|c| c.replica.is_some())
                .map(|c| (c.label(), c.dir)),
        );
    }
    let mut out = Vec::new();
    for (label, dir) in dirs {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        out.extend(
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    n.len() > 16
                        && n.as_bytes()[..16].iter().all(u8::is_ascii_digit)
                        && !is_segment_name(n)
                })
                .map(|n| format!("{label}/{n}")),
        );
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_ids_match_their_test_vector() {
        let id = replica_id(
            &[3; 16],
            b"0123456789abcdef0123456789abcdef",
            b"/home/ann/Sync/vault",
        );
        assert_eq!(hex(&id), crate::format::vectors::REPLICA_ID_VECTOR);
        assert_ne!(
            id,
            replica_id(
                &[3; 16],
                b"0123456789abcdef0123456789abcdef",
                b"/home/ann/vault"
            )
        );
        // Length prefixes keep "ab"+"c" and "a"+"bc" apart.
        assert_ne!(
            replica_id(&[3; 16], b"ab", b"c"),
            replica_id(&[3; 16], b"a", b"bc")
        );
    }

    #[test]
    fn only_exact_replica_directory_names_count() {
        let id = [0xab, 0, 1, 2, 3, 4, 5, 0xff];
        assert_eq!(parse_dir_name(&dir_name(&id)), Some(id));
        for bad in [
            "r-ab0001020304050",
            "r-AB000102030405FF",
            "r-ab000102030405ffx",
            "x-ab000102030405ff",
        ] {
            assert_eq!(parse_dir_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_symlink_named_like_a_replica_is_not_a_chain() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join(DIR_NAME);
        std::fs::create_dir_all(d.join("r-0000000000000001")).unwrap();
        std::os::unix::fs::symlink("/etc", d.join("r-0000000000000002")).unwrap();
        let chains = all(t.path()).unwrap();
        assert_eq!(chains.len(), 1);
        assert_eq!(chains[0].replica, Some([0, 0, 0, 0, 0, 0, 0, 1]));
    }
}
