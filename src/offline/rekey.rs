//! Key rotation (`tutela rekey`): a client zone, or the whole vault, gets fresh keys and
//! its data is re-encrypted under them, resumably; the old keys are destroyed at the end.
//!
//! Order of a rotation, each step durable before the next:
//! 1. `--all` only: the policy and the audit log are re-sealed under the new master key
//!    into `tutela.policy.next` and `tutela.audit-next/`.
//! 2. The config (and key store) is saved with the new keys current and the old ones kept
//!    as "retiring": from here on the new keys are in force. This is the commit point.
//! 3. `--all` only: the re-sealed policy and log replace the old ones (`settle`; done again
//!    at the next unlock if a crash came first).
//! 4. Every zone with a retiring key is walked and re-encrypted (fs/rekey.rs). A crash
//!    leaves the vault readable (mounts are read-only meanwhile); running rekey again
//!    carries on where it stopped.
//! 5. The retiring keys are dropped from the config: the old keys no longer exist.

use crate::audit::{self, Record};
use crate::crypto::secret::{Key32, Passphrase};
use crate::error::{Error, Result};
use crate::faults;
use crate::fs::{Fs, Options, RekeyStats};
use crate::policy::store;
use crate::sys;
use crate::vault::{Unlock, Vault};
use std::path::Path;
use zeroize::Zeroizing;

/// A device slot with its device's secret, for re-wrapping under a new master key.
pub type DeviceSecret = (crate::format::hw_slot::DeviceSlot, Zeroizing<[u8; 32]>);

const POLICY_NEXT: &str = "tutela.policy.next";
const AUDIT_NEXT: &str = "tutela.audit-next";

pub enum Scope<'a> {
    /// One client zone.
    Client(&'a str),
    /// A new master key and new keys for every zone, the root zone included.
    All {
        label: &'a str,
        pass: &'a Passphrase,
        /// Device slots to wrap the new master key in again, with their devices' secrets
        /// (`Vault::device_slots_for_rekey`); the other device slots are dropped.
        devices: &'a [DeviceSecret],
    },
    /// Only finish a rotation that was interrupted.
    Resume,
}

#[derive(Debug, Default)]
pub struct Outcome {
    /// Zones re-encrypted (client names; "(vault root)" for the root zone).
    pub zones: Vec<String>,
    pub stats: RekeyStats,
    /// Set by --all: the new recovery key (the old one no longer opens anything current).
    pub recovery_key: Option<Zeroizing<String>>,
    /// Set by --all: passphrase labels that were dropped and must be added again.
    pub dropped_slots: Vec<String>,
    /// Device slots that wrap the new master key too (a TPM needing nobody).
    pub rewrapped_slots: Vec<String>,
    /// A rotation interrupted earlier was finished first.
    pub resumed: bool,
}

/// Unlocks a vault and settles what an interrupted `rekey --all` left between its commit
/// and its cleanup (see `offline::open_vault`, the name commands use).
pub(crate) fn unlock(dir: &Path, how: &Unlock, keystore: Option<&Path>) -> Result<Vault> {
    let mut v = Vault::unlock(dir, how, keystore)?;
    settle(&v)?;
    merge_sync_copies(&mut v)?;
    Ok(v)
}

/// Merges a sync tool's conflict copies of the config (`Vault::merge_config_copies`) while
/// no mount holds the vault, and records what was done in the audit log.
fn merge_sync_copies(v: &mut Vault) -> Result<()> {
    if crate::vault::config_copies(&v.dir).is_empty() {
        return Ok(());
    }
    let notes = {
        let Ok(_unmounted) = audit::lock(&v.dir) else {
            v.sync_notes.push(
                "a sync tool's copy of tutela.conf is merged when the vault is next opened \
                 unmounted"
                    .into(),
            );
            return Ok(());
        };
        v.merge_config_copies()?
    };
    let recs: Vec<audit::Record> = notes
        .iter()
        .map(|n| {
            let mut r = audit::Record::now("config-merge", "/");
            r.result = "ok".into();
            r.detail = Some(n.clone());
            r
        })
        .collect();
    if let Err(e) = audit::append_offline(&v.dir, v.audit_keys(), &recs) {
        log::warn!("the config merge is not in the audit log: {e}");
    }
    v.sync_notes.extend(notes);
    Ok(())
}

/// Promotes a re-sealed policy and audit log if the config has committed to the key they
/// are sealed under, and discards them otherwise. No-op while the vault is mounted.
pub fn settle(v: &Vault) -> Result<()> {
    let policy_next = v.dir.join(POLICY_NEXT);
    let audit_next = v.dir.join(AUDIT_NEXT);
    if !policy_next.exists() && !audit_next.exists() {
        return Ok(());
    }
    let Ok(_lock) = audit::lock(&v.dir) else {
        return Ok(());
    };
    if let Ok(bytes) = sys::read_vault_file(&policy_next, 4 << 20, false) {
        if store::open(&v.policy_key(), &v.config.vault_id, &bytes).is_ok() {
            std::fs::rename(&policy_next, v.dir.join(store::FILE_NAME))?;
        } else {
            std::fs::remove_file(&policy_next)?;
        }
    }
    if audit_next.exists() {
        let committed = audit::read_all(&audit_next, &v.audit_keys(), |_| {})
            .map(|r| r.bad.is_none() && r.records() > 0)
            .unwrap_or(false);
        if committed {
            let cur = v.dir.join(audit::DIR_NAME);
            let root = sys::open_dir(&v.dir)?;
            let next = sys::open_dir(&audit_next)?;
            use std::os::fd::AsFd;
            sys::renameat2(
                next.as_fd(),
                std::ffi::OsStr::new(audit::DIR_NAME),
                root.as_fd(),
                std::ffi::OsStr::new(audit::DIR_NAME),
                libc::RENAME_EXCHANGE,
            )
            .or_else(|e| {
                // No current log at all: a plain move will do.
                if cur.exists() {
                    Err(e)
                } else {
                    std::fs::rename(audit_next.join(audit::DIR_NAME), &cur).map_err(Error::Io)
                }
            })?;
        }
        std::fs::remove_dir_all(&audit_next)?;
    }
    Ok(())
}

/// Runs a rotation. The vault must not be mounted. `tick` sees progress.
pub fn run(v: &mut Vault, scope: Scope<'_>, tick: &mut dyn FnMut(RekeyStats)) -> Result<Outcome> {
    let lock = audit::lock(&v.dir)?;
    let mut out = Outcome::default();
    if !v.rekey_pending().is_empty() {
        out.resumed = true;
        finish(v, tick, &mut out)?;
    }
    match scope {
        Scope::Resume => {
            if !out.resumed {
                return Err(Error::Usage(
                    "no rekey to resume: the vault's keys are all current".into(),
                ));
            }
        }
        Scope::Client(name) => {
            let z = v
                .zones
                .iter_mut()
                .skip(1)
                .find(|z| z.name == name)
                .ok_or_else(|| {
                    Error::Usage(format!("no client named '{name}' (see tutela client list)"))
                })?;
            let old = std::mem::replace(&mut z.key, Key32::random()?);
            z.retiring = Some(old);
            let id = z.id;
            // A contractor's key to this client holds the old key: it goes now.
            out.dropped_slots.extend(v.drop_client_slots_of(&id));
            v.save()?;
            finish(v, tick, &mut out)?;
        }
        Scope::All {
            label,
            pass,
            devices,
        } => {
            let old_audit = v.audit_keys();
            let policy = v.read_policy()?;
            let records = read_log_for_reseal(&v.dir, &old_audit)?;
            out.dropped_slots = v
                .all_slots()
                .into_iter()
                .map(|s| s.label)
                .filter(|l| l != label)
                .collect();
            retire_all_zone_keys(v)?;
            let rk = v.rotate_master(label, pass)?;
            out.rewrapped_slots = v.rewrap_device_slots(devices)?;
            out.dropped_slots
                .retain(|l| !out.rewrapped_slots.contains(l));
            let mut rec = Record::now("rekey-all", "/");
            rec.user = sys::user_name(rec.uid).unwrap_or_default();
            commit_all(v, policy.as_deref(), records, rec)?;
            out.recovery_key = Some(rk);
            drop(lock);
            // Step 3.
            settle(v)?;
            let _lock = audit::lock(&v.dir)?;
            finish(v, tick, &mut out)?;
            return Ok(out);
        }
    }
    drop(lock);
    Ok(out)
}

/// The log to re-seal: each chain's records, for the same chain of the new log, and what the
/// rotation's record says of the chains as they were (`Superseded`).
pub struct ChainRecords {
    pub chains: Vec<(audit::Chain, Vec<Record>)>,
    pub superseded: Vec<Superseded>,
}

/// A chain's head before `rekey --all` re-sealed it. Anchors kept outside the vault from
/// before the rotation were made under the replaced key and cannot be compared with the
/// re-sealed log; the rotation's own record lists these heads so that `audit verify` can
/// tell such anchors from a cut log, and can check that each re-sealed chain still reaches
/// its old head. `renumbered`: the chain had been pruned, so its records are numbered from
/// 0 again (only this exact head is then recognised).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superseded {
    pub head: audit::anchor::Anchor,
    pub renumbered: bool,
}

/// What the rotation's record says before the heads it supersedes.
pub const SUPERSEDED: &str = "superseded heads:";

/// The heads a `rekey-all` record lists (`HEAD` or `HEAD~` for a renumbered chain).
pub fn superseded_in(detail: &str) -> Vec<Superseded> {
    detail
        .split_once(SUPERSEDED)
        .map(|(_, list)| {
            list.split_whitespace()
                .filter_map(|t| {
                    let (a, renumbered) = match t.strip_suffix('~') {
                        Some(a) => (a, true),
                        None => (t, false),
                    };
                    let head = audit::anchor::Anchor::parse(a).ok()?;
                    Some(Superseded { head, renumbered })
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Superseded {
    /// Whether `a` was kept from before this rotation (made under the replaced key).
    pub fn covers(&self, a: &audit::anchor::Anchor) -> bool {
        if self.renumbered {
            *a == self.head
        } else {
            a.chain == self.head.chain && a.seq <= self.head.seq
        }
    }
}

/// The audit log's records, chain by chain, to be carried over under a new master key: a
/// damaged log is not carried over (it would be sealed as if intact). The heads replicas
/// recorded of each other's chains are kept under another name: the re-sealed chains are
/// numbered afresh, so there is nothing left for them to match.
pub fn read_log_for_reseal(dir: &Path, old: &audit::Keys) -> Result<ChainRecords> {
    let rep = audit::read_all(dir, old, |_| {})?;
    if let Some(bad) = rep.bad {
        return Err(Error::AuditTampered(format!(
            "{bad}; rekey --all re-seals the log and will not carry a damaged one over (see tutela audit verify)"
        )));
    }
    let superseded = rep
        .chains
        .iter()
        .filter_map(|c| {
            Some(Superseded {
                head: c.report.head?,
                renumbered: c.report.first_seq > 0,
            })
        })
        .collect();
    let mut superseded: Vec<Superseded> = superseded;
    let mut out = Vec::new();
    for c in rep.chains {
        let mut records = Vec::new();
        audit::read_chain(&c.chain, old, &[], |mut r| {
            // What earlier rotations superseded is carried on, as exact heads only (their
            // numbering is not the re-sealed log's), so that a prune of the records naming
            // them does not turn the oldest anchors into alarms.
            if r.op == "rekey-all" && r.result == "ok" {
                for mut e in r.detail.as_deref().map(superseded_in).unwrap_or_default() {
                    e.renumbered = true;
                    if !superseded.contains(&e) {
                        superseded.push(e);
                    }
                }
            }
            r.replica = None;
            if r.op == audit::REPLICA_HEADS {
                r.op = audit::REPLICA_HEADS_RESEALED.into();
            }
            records.push(r);
        })?;
        out.push((c.chain, records));
    }
    Ok(ChainRecords {
        chains: out,
        superseded,
    })
}

/// Gives every zone a fresh key, keeping the old one as retiring (the walk uses it).
pub fn retire_all_zone_keys(v: &mut Vault) -> Result<()> {
    for z in v.zones.iter_mut() {
        let old = std::mem::replace(&mut z.key, Key32::random()?);
        z.retiring = Some(old);
    }
    Ok(())
}

/// Steps 1 and 2 of `--all`, for a vault that already holds the new master key: the policy
/// text and the log's `records` (plus `rec`, the rotation's own) are sealed under it beside
/// the old ones, and the config is saved (the commit point). `settle` then puts them in place.
pub fn commit_all(
    v: &mut Vault,
    policy: Option<&str>,
    records: ChainRecords,
    mut rec: Record,
) -> Result<()> {
    let _ = std::fs::remove_dir_all(v.dir.join(AUDIT_NEXT));
    if let Some(text) = policy {
        let sealed = store::seal(&v.policy_key(), &v.config.vault_id, text)?;
        sys::write_atomic(&v.dir, POLICY_NEXT, &sealed, 0o600)?;
        // The commit below binds the config to the re-sealed file, which `settle` puts in
        // place.
        v.bind_policy(Some(store::digest(&sealed)));
    }
    let total: usize = records.chains.iter().map(|(_, r)| r.len()).sum();
    let heads: Vec<String> = records
        .superseded
        .iter()
        .map(|s| format!("{}{}", s.head, if s.renumbered { "~" } else { "" }))
        .collect();
    rec.detail = Some(format!(
        "new master key; {total} earlier records re-sealed, in {} chains; {SUPERSEDED} {}",
        records.chains.len(),
        heads.join(" ")
    ));
    let next = v.dir.join(AUDIT_NEXT);
    std::fs::create_dir_all(&next)?;
    for (c, recs) in &records.chains {
        audit::append_to_chain(&next, &c.moved_to(&next), v.audit_keys(), recs)?;
    }
    // The rotation's own record goes where this copy writes.
    let mine = audit::chain::local(&v.dir, &v.config.vault_id).moved_to(&next);
    audit::append_to_chain(&next, &mine, v.audit_keys(), &[rec])?;
    faults::point("rekey-all-resealed");
    v.save()?;
    faults::point("rekey-all-committed");
    // Client key slots made from now on hold the new policy key: the closed list they read
    // is sealed under it (a crash before this leaves it to the next full mount).
    if let Err(e) = crate::policy::closed::write(
        &v.dir,
        &v.policy_key(),
        &v.config.vault_id,
        &crate::policy::closed::of_zones(&v.zones),
    ) {
        log::warn!(
            "{}: {e} (the next full mount writes it)",
            crate::policy::closed::FILE_NAME
        );
    }
    Ok(())
}

/// Steps 4 and 5: re-encrypt every zone with a retiring key, then destroy those keys.
fn finish(v: &mut Vault, tick: &mut dyn FnMut(RekeyStats), out: &mut Outcome) -> Result<()> {
    out.zones.extend(v.rekey_pending());
    let fs = Fs::new(v, Options::default())?;
    let mut total = out.stats;
    for i in 0..v.zones.len() {
        if v.zones[i].retiring.is_none() {
            continue;
        }
        let base = total;
        let s = fs.rekey_zone(i, &mut |s| {
            tick(RekeyStats {
                entries: base.entries + s.entries,
                bytes: base.bytes + s.bytes,
            })
        })?;
        total.entries += s.entries;
        total.bytes += s.bytes;
    }
    faults::point("rekey-walked");
    for z in v.zones.iter_mut() {
        z.retiring = None;
        z.adopting = None;
    }
    v.save()?;
    fs.rekey_cleanup()?;
    out.stats = total;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::anchor::Anchor;

    #[test]
    fn the_rotation_record_names_the_heads_it_supersedes() {
        let kept = Anchor::of(None, 41, &[7; 32]);
        let pruned = Anchor::of(Some([3; 8]), 900, &[8; 32]);
        let detail = format!("new master key; 2 earlier records re-sealed, in 2 chains; {SUPERSEDED} {kept} {pruned}~");
        let s = superseded_in(&detail);
        assert_eq!(
            s,
            vec![
                Superseded {
                    head: kept,
                    renumbered: false
                },
                Superseded {
                    head: pruned,
                    renumbered: true
                }
            ]
        );
        // A chain numbered as before: every anchor up to its old head is from before.
        assert!(s[0].covers(&Anchor::of(None, 3, &[1; 32])));
        assert!(s[0].covers(&kept));
        assert!(!s[0].covers(&Anchor::of(None, 42, &[1; 32])));
        assert!(!s[0].covers(&Anchor::of(Some([3; 8]), 3, &[1; 32])));
        // A renumbered one: only its exact old head.
        assert!(s[1].covers(&pruned));
        assert!(!s[1].covers(&Anchor::of(Some([3; 8]), 899, &[8; 32])));
        assert!(
            superseded_in("new master key; 5 earlier records re-sealed, in 1 chains").is_empty()
        );
    }
}
