//! A sync tool's conflict copy of `tutela.conf`: two machines changed the vault's config
//! between syncs (a passphrase added on each, a client added on one), and the tool kept one
//! config and renamed the other. Whatever the copy adds is merged in: key slots and clients
//! that only it has. What cannot be merged without choosing (a client rekeyed on one machine,
//! a config under another master key, a policy changed on both) is left in the copy and said.
//! Nothing is lost either way: the copy is removed only once everything in it is merged.

use super::{config, zone_aad, Vault, MAX_VAULT_FILE};
use crate::crypto;
use crate::error::Result;
use crate::format::config::Config;
use crate::format::zones;
use crate::sys;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::ffi::OsString;
use zeroize::Zeroizing;

/// Names in the vault's top directory that are a sync tool's copy of `tutela.conf`:
/// `tutela.sync-conflict-….conf`, `tutela (… conflicted copy …).conf`, `tutela-PC.conf`,
/// `tutela 2.conf`, `tutela_conflict-….conf` and the like.
pub(crate) fn config_copies(dir: &std::path::Path) -> Vec<OsString> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<OsString> = rd
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| {
            let b = n.as_encoded_bytes();
            b != config::FILE_NAME.as_bytes()
                && b.starts_with(b"tutela")
                && b.ends_with(b".conf")
                && b.len() <= 255
        })
        .collect();
    out.sort();
    out
}

/// Names in the vault's top directory that may hold a policy file: `tutela.policy` and a sync
/// tool's copies of it.
fn policy_files(dir: &std::path::Path) -> Vec<OsString> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.file_name())
        .filter(|n| {
            let b = n.as_encoded_bytes();
            b.starts_with(b"tutela") && b.ends_with(b".policy") && b.len() <= 255
        })
        .collect()
}

impl Vault {
    /// Makes the policy file whose bytes `theirs` names the one in force: the present
    /// `tutela.policy` is kept under another name (returned), the copy takes its place, and
    /// the config is bound to it. None when no policy file here has those bytes.
    fn adopt_policy(
        &mut self,
        theirs: &crate::format::config::PolicyBinding,
    ) -> Result<Option<String>> {
        let current = crate::policy::store::FILE_NAME;
        let found = policy_files(&self.dir).into_iter().find(|n| {
            sys::read_vault_file(&self.dir.join(n), MAX_VAULT_FILE, false)
                .is_ok_and(|b| crate::policy::store::digest(&b) == theirs.digest)
        });
        let from_file = match (found, theirs.expects_policy()) {
            (Some(n), true) => Some(n),
            (None, true) => return Ok(None),
            (_, false) => None,
        };
        let mine = self.config.policy.map_or(0, |p| p.generation);
        let mut kept = format!("tutela.policy.generation-{mine}");
        if from_file.as_deref() == Some(std::ffi::OsStr::new(current)) {
            kept = "the sync tool's copy of tutela.policy".into();
        } else {
            if self.dir.join(current).exists() {
                std::fs::rename(self.dir.join(current), self.dir.join(&kept))?;
            }
            if let Some(n) = &from_file {
                std::fs::rename(self.dir.join(n), self.dir.join(current))?;
            }
        }
        self.config.policy = Some(*theirs);
        Ok(Some(kept))
    }

    /// Merges every conflict copy of the config into this one (see the module's comment);
    /// one line per copy saying what was done. The caller holds the vault unmounted.
    pub(crate) fn merge_config_copies(&mut self) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        for name in config_copies(&self.dir) {
            let shown = crate::text::escape(&name.to_string_lossy()).into_owned();
            let path = self.dir.join(&name);
            let Ok(bytes) = sys::read_vault_file(&path, MAX_VAULT_FILE, false) else {
                notes.push(format!("{shown}: cannot be read; left alone"));
                continue;
            };
            let Ok((other, unsigned, mac)) = Config::parse(&bytes) else {
                notes.push(format!("{shown}: not a tutela config; left alone"));
                continue;
            };
            let mut m = Hmac::<Sha256>::new_from_slice(self.config_mac_key.as_bytes())
                .map_err(|_| crate::error::Error::Invalid)?;
            m.update(unsigned);
            if other.vault_id != self.config.vault_id || m.verify_slice(&mac).is_err() {
                notes.push(format!(
                    "{shown}: a config of this vault under another master key (a rekey --all \
                     on one machine?) or of another vault: not merged; kept"
                ));
                continue;
            }
            let mut added = Vec::new();
            let mut left = Vec::new();
            for s in &other.slots {
                if self
                    .config
                    .slots
                    .iter()
                    .any(|m| m.salt == s.salt && m.wrapped == s.wrapped)
                {
                    continue;
                }
                if self.config.slots.len() >= config::MAX_SLOTS {
                    left.push(format!(
                        "key '{}' (no free slot)",
                        String::from_utf8_lossy(&s.label)
                    ));
                    continue;
                }
                let mut s = s.clone();
                while self.config.slots.iter().any(|m| m.label == s.label) {
                    s.label.extend_from_slice(b" (2)");
                }
                added.push(format!("key '{}'", String::from_utf8_lossy(&s.label)));
                self.config.slots.push(s);
            }
            // Client keys (a contractor's) added on the other machine, and slots of kinds a
            // later tutela wrote there: the same rule, by label.
            for s in &other.client_slots {
                if self.config.client_slots.contains(s) {
                    continue;
                }
                let label = String::from_utf8_lossy(&s.label).into_owned();
                if self.check_new_label(&label).is_err() {
                    left.push(format!("client key '{label}'"));
                    continue;
                }
                added.push(format!("client key '{label}'"));
                self.config.client_slots.push(s.clone());
            }
            for s in &other.other_slots {
                if !self.config.other_slots.contains(s) {
                    added.push(format!("a key slot of kind {}", s.kind));
                    self.config.other_slots.push(s.clone());
                }
            }
            let keystores = other.flags & config::FLAG_KEYSTORE != 0
                || self.config.flags & config::FLAG_KEYSTORE != 0;
            if keystores {
                if other.zone_blob != self.config.zone_blob {
                    left.push("clients (the vault keeps its keys in a key store)".into());
                }
            } else {
                let plain = Zeroizing::new(
                    crypto::open_random(
                        self.zone_wrap.as_bytes(),
                        &zone_aad(&self.config.vault_id),
                        &other.zone_blob,
                        "zone table",
                    )
                    .unwrap_or_default(),
                );
                match zones::parse(&plain) {
                    Err(_) => left.push("clients (its zone table does not open)".into()),
                    Ok(theirs) => {
                        for z in theirs {
                            match self.zones.iter().find(|m| m.id == z.id) {
                                Some(m) if m.key.as_bytes() == z.key.as_bytes() => {}
                                Some(m) => left
                                    .push(format!("client '{}' (rekeyed on one machine)", m.name)),
                                None if z.retiring.is_some()
                                    || z.adopting.is_some()
                                    || self
                                        .zones
                                        .iter()
                                        .any(|m| m.name == z.name || m.path == z.path) =>
                                {
                                    left.push(format!("client '{}'", z.name))
                                }
                                None => {
                                    added.push(format!("client '{}'", z.name));
                                    self.zones.push(z);
                                }
                            }
                        }
                    }
                }
            }
            // The policy: the newer generation wins; the other policy file is kept.
            let mine = self.config.policy.map_or(0, |p| p.generation);
            match other.policy {
                Some(theirs) if theirs.generation > mine => match self.adopt_policy(&theirs)? {
                    Some(kept) => added.push(format!(
                        "the newer policy (generation {}; the older one is kept as {kept})",
                        theirs.generation
                    )),
                    None => left.push(format!(
                        "a newer policy (generation {}) whose file is not here",
                        theirs.generation
                    )),
                },
                Some(theirs) if theirs.generation == mine && Some(theirs) != self.config.policy => {
                    notes.push(format!(
                        "{shown}: the policy was changed on both machines (generation {mine}): \
                         this machine's is in force; set the one you want again"
                    ));
                }
                _ => {}
            }
            if !added.is_empty() {
                self.save()?;
            }
            if left.is_empty() {
                std::fs::remove_file(&path)?;
                notes.push(format!(
                    "{shown}: merged{}, and removed",
                    if added.is_empty() {
                        " (nothing new)".to_string()
                    } else {
                        format!(": {}", added.join(", "))
                    }
                ));
            } else {
                notes.push(format!(
                    "{shown}: {}not merged: {}; the copy is kept",
                    if added.is_empty() {
                        String::new()
                    } else {
                        format!("merged {}; ", added.join(", "))
                    },
                    left.join(", ")
                ));
            }
        }
        Ok(notes)
    }
}
