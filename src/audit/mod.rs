//! The audit log: encrypted, hash-chained, append-only records in segment files under
//! `VAULT/tutela.audit/`. Separate from the debug log (which never holds paths); this one holds
//! plaintext paths, so every record is sealed, and every record carries an HMAC over the
//! previous record's MAC, so changing, deleting, inserting or reordering a record breaks the
//! chain at a place `verify` names. Each copy of a vault (one per machine when the vault lives
//! in a sync folder) writes a chain of its own (`chain.rs`); readers merge them. Layout in
//! FORMAT.md ("Audit log").

use crate::crypto::secret::Key32;
use crate::crypto::Id;
use crate::error::Result;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

pub const DIR_NAME: &str = "tutela.audit";
pub use crate::format::audit::{MAGIC, VERSION};
/// A new segment starts past this size (and at every mount).
const SEGMENT_MAX: u64 = 16 * 1024 * 1024;

/// A segment's bytes; a segment never grows far past SEGMENT_MAX (one record more), so
/// anything much larger (a sparse file, a link to a device) is refused, not read.
fn read_segment(path: &Path) -> Result<Vec<u8>> {
    crate::sys::read_vault_file(path, 4 * SEGMENT_MAX, false)
}

pub mod anchor;
pub mod chain;
pub mod forward;
pub mod prune;
mod read;
mod write;

pub use chain::{Chain, ReplicaId};
use read::segments;
pub use read::{
    read_all, read_all_anchored, read_chain, ChainReport, LogReport, Report, SegmentSpan,
};
pub use write::{append_offline, append_to_chain, lock, Sealer, Sink};

/// The op of the record a replica writes when it starts writing and other chains are in the
/// vault: their heads as it saw them, as anchors. `verify` checks that each chain still
/// reaches what another replica saw, so a replica's records cannot be cut off its end, nor
/// its whole chain removed, unnoticed once another machine has mounted since.
pub const REPLICA_HEADS: &str = "replica-heads";
/// What a rekey's re-seal renames those records to: the chains are numbered afresh, so the
/// heads they name no longer exist to compare with.
pub const REPLICA_HEADS_RESEALED: &str = "replica-heads-before-rekey";

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub uid: u32,
    pub user: String,
    pub pid: u32,
    pub program: String,
    pub op: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// "ok", "denied", or an error name such as "ENOENT".
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The chain the record was read from (`tutela.audit/r-…`), filled in by readers; writers
    /// leave it out, so it is never in the sealed bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

impl Record {
    /// A record made by this process now.
    pub fn now(op: &str, path: &str) -> Record {
        Record::by(op, path, crate::sys::getuid(), std::process::id())
    }

    /// A record of something process `pid` of user `uid` did now.
    pub fn by(op: &str, path: &str, uid: u32, pid: u32) -> Record {
        Record {
            time_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            uid,
            user: String::new(),
            pid,
            program: "tutela".into(),
            op: op.into(),
            path: path.into(),
            path2: None,
            client: None,
            result: "ok".into(),
            detail: None,
            replica: None,
        }
    }
}

/// The audit keys, derived from the master key at unlock and kept by the daemon: the
/// record and MAC keys of chains the vault's own mounts write, and the seed of the key pair
/// that sealed segments (a client-scoped mount's) are opened with.
pub struct Keys {
    pub enc: Key32,
    pub mac: Key32,
    pub seal: Key32,
    pub vault_id: Id,
}

/// HMAC-SHA256 under `key` of `prev` and `parts`: one link of a chain.
fn hmac_chain(key: &Key32, prev: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut m =
        <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!());
    m.update(prev);
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Where a chain of sealed segments starts: public (its writer holds no vault key), and
/// bound to the vault and the replica.
fn sealed_genesis(vault_id: &Id, replica: &ReplicaId) -> [u8; 32] {
    use sha2::Digest;
    let mut h = Sha256::new();
    h.update(b"tutela/v1/audit-sealed-genesis");
    h.update(vault_id);
    h.update(replica);
    h.finalize().into()
}

/// What a sealed segment's keys are bound to: its vault, chain and number.
fn sealed_info(vault_id: &Id, replica: &ReplicaId, segment: u64) -> Vec<u8> {
    let mut i = b"tutela/v1/audit-sealed-segment".to_vec();
    i.extend_from_slice(vault_id);
    i.extend_from_slice(replica);
    i.extend_from_slice(&segment.to_le_bytes());
    i
}

impl Keys {
    /// The audit log's keys for vault `vault_id` (labels: FORMAT.md, "Key derivation").
    /// Derived here, where they are used; the vault only lends its master key.
    pub fn derive(master: &Key32, vault_id: &Id) -> Keys {
        Keys {
            enc: crate::crypto::kdf::audit_enc_key(master, vault_id),
            mac: crate::crypto::kdf::audit_mac_key(master, vault_id),
            seal: crate::crypto::kdf::audit_seal_seed(master, vault_id),
            vault_id: *vault_id,
        }
    }

    pub fn duplicate(&self) -> Keys {
        Keys {
            enc: self.enc.duplicate(),
            mac: self.mac.duplicate(),
            seal: self.seal.duplicate(),
            vault_id: self.vault_id,
        }
    }

    /// The public key sealed segments' keys are sealed to (what a client key carries).
    pub fn public(&self) -> [u8; 32] {
        crate::crypto::sealed::audit_public(&self.seal)
    }

    fn chain(&self, prev: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
        hmac_chain(&self.mac, prev, parts)
    }

    /// Where chain `c` starts: the original chain from the vault id, a replica's also from its
    /// id, so no replica's segments pass for another's.
    fn genesis(&self, c: &Chain) -> [u8; 32] {
        match &c.replica {
            None => self.chain(&[0u8; 32], &[b"tutela/v1/audit-genesis", &self.vault_id]),
            Some(id) => self.chain(
                &[0u8; 32],
                &[b"tutela/v1/audit-replica-genesis", &self.vault_id, id],
            ),
        }
    }
}

#[cfg(test)]
mod tests;

/// The audit keys every audit test uses.
#[cfg(test)]
pub(crate) fn test_keys() -> Keys {
    Keys {
        enc: Key32::from_bytes([1; 32]),
        mac: Key32::from_bytes([2; 32]),
        seal: Key32::from_bytes([4; 32]),
        vault_id: [3; 16],
    }
}

/// What a sync tool does to the log between two copies of a vault: every file of `from`'s log
/// that `to` lacks or holds shorter is copied over (segments only grow).
#[cfg(test)]
pub(crate) fn sync_log_for_tests(from: &Path, to: &Path) {
    fn walk(from: &Path, to: &Path) {
        let Ok(rd) = std::fs::read_dir(from) else {
            return;
        };
        std::fs::create_dir_all(to).unwrap();
        for e in rd.flatten() {
            let (src, dst) = (e.path(), to.join(e.file_name()));
            if e.file_type().unwrap().is_dir() {
                walk(&src, &dst);
            } else if e.file_name() != "lock" {
                let newer =
                    std::fs::metadata(&dst).map_or(true, |m| m.len() < e.metadata().unwrap().len());
                if newer {
                    std::fs::copy(&src, &dst).unwrap();
                }
            }
        }
    }
    walk(&from.join(DIR_NAME), &to.join(DIR_NAME));
}
