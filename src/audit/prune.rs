//! Retention: removing the oldest whole segments of the audit log while what is left still
//! verifies. A sealed checkpoint, `tutela.audit/pruned`, says where the log now starts (the
//! first kept segment, its first sequence number and the chain value it continues from).
//! Without a checkpoint a missing segment is tampering, as before; a checkpoint cannot be
//! forged, and an older one put back names a starting point whose segments are gone, so
//! pruning never becomes a way to cut evidence unnoticed. Bytes in FORMAT.md ("Pruning").

use super::{read_all, segments, Keys, SegmentSpan, DIR_NAME};
use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

pub const FILE_NAME: &str = "pruned";
const LOCK_NAME: &str = "prune.lock";
/// Keeps a checkpoint's MAC apart from every chain MAC made with the same key.
const LABEL: &[u8] = b"tutela/v1/audit-pruned";
use crate::format::prune::CheckpointError;
pub use crate::format::prune::{Checkpoint, LEN};

fn mac(keys: &Keys, body: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(keys.mac.as_bytes())
        .unwrap_or_else(|_| unreachable!());
    m.update(LABEL);
    m.update(body);
    m.finalize().into_bytes().into()
}

impl Checkpoint {
    pub fn encode(&self, keys: &Keys) -> Vec<u8> {
        let mut b = self.body();
        let m = mac(keys, &b);
        b.extend_from_slice(&m);
        b
    }

    /// Parses and authenticates; anything wrong with the bytes is `AuditTampered` (the
    /// file is written atomically, so a crash cannot leave it half written).
    pub fn decode(b: &[u8], keys: &Keys) -> Result<Checkpoint> {
        let bad = |why: &str| Error::AuditTampered(format!("{DIR_NAME}/{FILE_NAME}: {why}"));
        let (cp, body, m) = Checkpoint::parse(b).map_err(|e| match e {
            CheckpointError::NotCheckpoint => bad("not a pruning checkpoint"),
            CheckpointError::Length => bad("wrong length"),
            CheckpointError::Version(found) => Error::UnsupportedVersion {
                found,
                supported: crate::format::prune::VERSION,
            },
        })?;
        if mac(keys, body) != m {
            return Err(bad("does not authenticate (changed or forged)"));
        }
        Ok(cp)
    }

    /// The checkpoint in log directory `dir`, if the log was ever pruned.
    pub fn read(dir: &Path, keys: &Keys) -> Result<Option<Checkpoint>> {
        match crate::sys::read_vault_file(&dir.join(FILE_NAME), 1 << 20, false) {
            Ok(b) => Checkpoint::decode(&b, keys).map(Some),
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

/// What a prune removes (or would).
#[derive(Debug, Default)]
pub struct Plan {
    /// Segments pruned now and their records.
    pub segments: u64,
    pub records: u64,
    /// Oldest and newest time among those records.
    pub oldest_ms: Option<u64>,
    pub newest_ms: Option<u64>,
    /// Records that stay, and the time the oldest kept segment starts at.
    pub kept_records: u64,
    pub kept_from_ms: Option<u64>,
    /// The checkpoint to write; `None` when nothing is pruned.
    pub next: Option<Checkpoint>,
    /// Files to delete: the pruned segments, and any an interrupted prune left behind.
    remove: Vec<PathBuf>,
}

/// Works out which segments hold only records older than `cutoff_ms`, from the oldest on.
/// The newest segment always stays (a live mount may be writing it). A log that does not
/// verify is not pruned: that would destroy the evidence of what happened to it.
pub fn plan(vault: &Path, keys: &Keys, cutoff_ms: u64, uid: u32, now_ms: u64) -> Result<Plan> {
    // Every record's time, in log order: the pruned ones are a prefix.
    let mut times: Vec<u64> = Vec::new();
    let rep = read_all(vault, keys, |r| times.push(r.time_ms))?;
    if let Some(bad) = rep.bad {
        return Err(Error::AuditTampered(format!(
            "{bad}; prune will not remove records from a log that does not verify (see tutela audit verify)"
        )));
    }
    let spans: &[SegmentSpan] = &rep.spans;
    let mut k = 0;
    while k + 1 < spans.len() && spans[k].newest_ms.is_none_or(|t| t < cutoff_ms) {
        k += 1;
    }
    let mut plan = Plan::default();
    let pruned_records: u64 = spans[..k].iter().map(|s| s.records).sum();
    let (gone, kept) = times.split_at(pruned_records as usize);
    plan.oldest_ms = gone.iter().copied().min();
    plan.newest_ms = gone.iter().copied().max();
    plan.kept_records = kept.len() as u64;
    plan.kept_from_ms = kept.iter().copied().min();
    let first_kept = spans.get(k).map_or(0, |s| s.number);
    plan.remove = segments(&vault.join(DIR_NAME))?
        .into_iter()
        .filter(|(n, _)| *n < first_kept)
        .map(|(_, p)| p)
        .collect();
    if k == 0 {
        return Ok(plan);
    }
    let last = &spans[k - 1];
    plan.segments = k as u64;
    plan.records = pruned_records;
    plan.next = Some(Checkpoint {
        first_segment: first_kept,
        first_seq: last.end_seq,
        prev: last.end_mac,
        cutoff_ms,
        pruned_at_ms: now_ms,
        records_pruned: rep.pruned.map_or(0, |c| c.records_pruned) + pruned_records,
        uid,
    });
    Ok(plan)
}

/// Writes the new checkpoint, then deletes the pruned segments. A crash between the two
/// leaves segments older than the checkpoint, which `read_all` skips and the next prune
/// deletes; a crash before the checkpoint is written changes nothing.
pub fn execute(vault: &Path, keys: &Keys, plan: &Plan) -> Result<()> {
    let dir = vault.join(DIR_NAME);
    if let Some(cp) = &plan.next {
        crate::sys::write_atomic(&dir, FILE_NAME, &cp.encode(keys), 0o600)?;
    }
    for p in &plan.remove {
        match std::fs::remove_file(p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::Io(e)),
            _ => {}
        }
    }
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(())
}

/// One prune at a time: two at once could each delete what the other's checkpoint keeps.
/// A live mount's writer is not in the way (it only appends to the newest segment).
pub fn lock(vault: &Path) -> Result<std::fs::File> {
    super::take_named_lock(
        vault,
        LOCK_NAME,
        Duration::ZERO,
        "another prune of this audit log is running",
    )
}

#[cfg(test)]
mod tests;
