//! Retention: removing the oldest whole segments of the audit log while what is left still
//! verifies. A sealed checkpoint, `pruned` in each chain's directory, says where that chain now
//! starts (the first kept segment, its first sequence number and the chain value it continues
//! from). Each chain is pruned on its own.
//! Without a checkpoint a missing segment is tampering, as before; a checkpoint cannot be
//! forged, and an older one put back names a starting point whose segments are gone, so
//! pruning never becomes a way to cut evidence unnoticed. Bytes in FORMAT.md ("Pruning").

use super::chain::{self, Chain, ReplicaId};
use super::{read_chain, segments, Keys, SegmentSpan};
use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

pub const FILE_NAME: &str = "pruned";
/// Keeps a checkpoint's MAC apart from every chain MAC made with the same key.
const LABEL: &[u8] = b"tutela/v1/audit-pruned";
/// A replica's checkpoint also names the replica, so none passes for another chain's.
const REPLICA_LABEL: &[u8] = b"tutela/v1/audit-pruned-replica";
use crate::format::prune::CheckpointError;
pub use crate::format::prune::{Checkpoint, LEN};

fn mac(keys: &Keys, replica: Option<&ReplicaId>, body: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(keys.mac.as_bytes())
        .unwrap_or_else(|_| unreachable!());
    match replica {
        None => m.update(LABEL),
        Some(id) => {
            m.update(REPLICA_LABEL);
            m.update(id);
        }
    }
    m.update(body);
    m.finalize().into_bytes().into()
}

impl Checkpoint {
    /// The checkpoint's bytes for the chain of `replica` (`None`: the original chain).
    pub fn encode(&self, keys: &Keys, replica: Option<&ReplicaId>) -> Vec<u8> {
        let mut b = self.body();
        let m = mac(keys, replica, &b);
        b.extend_from_slice(&m);
        b
    }

    /// Parses and authenticates; anything wrong with the bytes is `AuditTampered` (the
    /// file is written atomically, so a crash cannot leave it half written).
    pub fn decode(b: &[u8], keys: &Keys, c: &Chain) -> Result<Checkpoint> {
        let bad = |why: &str| Error::AuditTampered(format!("{}/{FILE_NAME}: {why}", c.label()));
        let (cp, body, m) = Checkpoint::parse(b).map_err(|e| match e {
            CheckpointError::NotCheckpoint => bad("not a pruning checkpoint"),
            CheckpointError::Length => bad("wrong length"),
            CheckpointError::Version(found) => Error::UnsupportedVersion {
                found,
                supported: crate::format::prune::VERSION,
            },
        })?;
        if mac(keys, c.replica.as_ref(), body) != m {
            return Err(bad("does not authenticate (changed or forged)"));
        }
        Ok(cp)
    }

    /// Chain `c`'s checkpoint, if it was ever pruned.
    pub fn read(c: &Chain, keys: &Keys) -> Result<Option<Checkpoint>> {
        match crate::sys::read_vault_file(&c.dir.join(FILE_NAME), 1 << 20, false) {
            Ok(b) => Checkpoint::decode(&b, keys, c).map(Some),
            Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One line for people and for the audit record of a prune.
    pub fn describe(&self) -> String {
        format!(
            "records before sequence {} (older than {}) removed; {} removed in all",
            self.first_seq,
            stamp(self.cutoff_ms),
            self.records_pruned
        )
    }
}

/// A time as people read it in tutela's output (UTC, seconds).
pub fn stamp(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// What a prune removes (or would), over every chain.
#[derive(Debug, Default)]
pub struct Plan {
    /// Segments pruned now and their records.
    pub segments: u64,
    pub records: u64,
    /// Oldest and newest time among those records.
    pub oldest_ms: Option<u64>,
    pub newest_ms: Option<u64>,
    /// Records that stay, and the time the oldest kept one was written.
    pub kept_records: u64,
    pub kept_from_ms: Option<u64>,
    /// Per chain: the checkpoint to write and the files to delete.
    pub parts: Vec<ChainPlan>,
}

/// What a prune does to one chain.
#[derive(Debug)]
pub struct ChainPlan {
    pub chain: Chain,
    /// The checkpoint to write; `None` when nothing of this chain is pruned.
    pub next: Option<Checkpoint>,
    /// Files to delete: the pruned segments, and any an interrupted prune left behind.
    remove: Vec<PathBuf>,
}

impl Plan {
    /// Whether anything is pruned.
    pub fn prunes(&self) -> bool {
        self.parts.iter().any(|p| p.next.is_some())
    }

    /// One line for people and for the audit record of a prune.
    pub fn describe(&self) -> String {
        let several = self.parts.len() > 1;
        let parts: Vec<String> = self
            .parts
            .iter()
            .filter_map(|p| {
                let cp = p.next.as_ref()?;
                Some(if several {
                    format!("{}: {}", p.chain.label(), cp.describe())
                } else {
                    cp.describe()
                })
            })
            .collect();
        parts.join("; ")
    }
}

/// Works out, chain by chain, which segments hold only records older than `cutoff_ms`, from
/// the oldest on. A chain's newest segment always stays (a live mount may be writing it). A
/// log that does not verify is not pruned: that would destroy the evidence of what happened.
pub fn plan(vault: &Path, keys: &Keys, cutoff_ms: u64, uid: u32, now_ms: u64) -> Result<Plan> {
    let mut plan = Plan::default();
    for c in chain::all(vault)? {
        plan_chain(&mut plan, c, keys, cutoff_ms, uid, now_ms)?;
    }
    Ok(plan)
}

fn plan_chain(
    plan: &mut Plan,
    c: Chain,
    keys: &Keys,
    cutoff_ms: u64,
    uid: u32,
    now_ms: u64,
) -> Result<()> {
    // Every record's time, in log order: the pruned ones are a prefix.
    let mut times: Vec<u64> = Vec::new();
    let rep = read_chain(&c, keys, &[], |r| times.push(r.time_ms))?;
    if let Some(bad) = rep.bad {
        return Err(Error::AuditTampered(format!(
            "{}: {bad}; prune will not remove records from a log that does not verify (see tutela audit verify)",
            c.label()
        )));
    }
    let spans: &[SegmentSpan] = &rep.spans;
    let mut k = 0;
    while k + 1 < spans.len() && spans[k].newest_ms.is_none_or(|t| t < cutoff_ms) {
        k += 1;
    }
    let pruned_records: u64 = spans[..k].iter().map(|s| s.records).sum();
    let (gone, kept) = times.split_at(pruned_records as usize);
    let min = |a: Option<u64>, b: Option<u64>| a.min(b).or(a).or(b);
    plan.oldest_ms = min(plan.oldest_ms, gone.iter().copied().min());
    plan.newest_ms = plan.newest_ms.max(gone.iter().copied().max());
    plan.kept_records += kept.len() as u64;
    plan.kept_from_ms = min(plan.kept_from_ms, kept.iter().copied().min());
    let first_kept = spans.get(k).map_or(0, |s| s.number);
    let remove = segments(&c.dir)?
        .into_iter()
        .filter(|(n, _)| *n < first_kept)
        .map(|(_, p)| p)
        .collect();
    let next = (k > 0).then(|| {
        let last = &spans[k - 1];
        Checkpoint {
            first_segment: first_kept,
            first_seq: last.end_seq,
            prev: last.end_mac,
            cutoff_ms,
            pruned_at_ms: now_ms,
            records_pruned: rep.pruned.map_or(0, |c| c.records_pruned) + pruned_records,
            uid,
        }
    });
    if k > 0 {
        plan.segments += k as u64;
        plan.records += pruned_records;
    }
    plan.parts.push(ChainPlan {
        chain: c,
        next,
        remove,
    });
    Ok(())
}

/// Writes each chain's new checkpoint, then deletes its pruned segments. A crash between the
/// two leaves segments older than the checkpoint, which readers skip and the next prune
/// deletes; a crash before the checkpoint is written changes nothing.
pub fn execute(keys: &Keys, plan: &Plan) -> Result<()> {
    for part in &plan.parts {
        let dir = &part.chain.dir;
        if let Some(cp) = &part.next {
            let bytes = cp.encode(keys, part.chain.replica.as_ref());
            crate::sys::write_atomic(dir, FILE_NAME, &bytes, 0o600)?;
        }
        for p in &part.remove {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::Io(e)),
                _ => {}
            }
        }
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// One prune at a time: two at once could each delete what the other's checkpoint keeps.
/// A live mount's writer is not in the way (it only appends to its chain's newest segment).
/// The lock is a flock on the vault directory (which config writes also take, briefly), so
/// no lock file is left for a sync tool to copy between machines. Prunes on two machines of a
/// synced vault are not kept apart by it: run the prune (and its timer) on one machine.
pub fn lock(vault: &Path) -> Result<std::fs::File> {
    super::write::flock_dir(
        vault,
        Duration::ZERO,
        "another prune of this audit log is running",
    )
}

#[cfg(test)]
mod tests;
