//! What an erasure certificate will say, written into the vault before the zone key goes
//! (`tutela.erasing/<zone id hex>`), so that a crash between the erasure and the
//! certificate's file does not lose the certificate: the next `client shred`, `expire`,
//! `due` or `list` finds the draft, sees the key gone, and writes the certificate from it.
//! A draft whose zone is still in the zone table is an erasure that did not happen (or is
//! under way on a live mount): it is left alone, and the next shred of that client writes
//! it again; so is, for an hour, a draft whose command still runs (a live shred between
//! the daemon's erasure and the command's certificate; the hour bounds a reused pid).
//! Sealed (it names the client, its folder and matter) with AES-256-GCM-SIV under
//! HKDF-SHA256(master key, salt = vault id, info = `tutela/v1/erasing`), associated data
//! `tutela/v1/erasing` ‖ vault id ‖ zone id (FORMAT.md, "Erasures under way").

use crate::crypto::secret::Key32;
use crate::crypto::{self, Id};
use crate::error::{Error, Result};
use crate::format::zones::ClientMeta;
use crate::vault::Vault;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const DIR_NAME: &str = "tutela.erasing";
pub const LABEL: &[u8] = b"tutela/v1/erasing";
const MAX_LEN: u64 = 1 << 20;

/// An erasure's certificate before the erasure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Draft {
    pub client: String,
    pub zone_id: Id,
    pub folder: String,
    pub meta: ClientMeta,
    /// `shred` or `expire`.
    pub how: String,
    pub files: u64,
    pub bytes: u64,
    /// Where the certificate goes: a file, or a directory for the default name (absolute).
    pub to: PathBuf,
    pub oldest_backup: Option<u64>,
    /// Whether a mount daemon held the key (the certificate names its memory).
    pub live: bool,
    pub started_ms: u64,
    pub by_user: String,
    pub by_uid: u32,
    /// The erasing command's process: while it runs, its draft is its own to finish.
    #[serde(default)]
    pub pid: u32,
}

/// Whether the command that wrote a draft may still be at work on it: a process of its id
/// named `tutela` runs, and the draft is less than an hour old (past that, the id more
/// likely belongs to a later tutela process, a mount daemon say).
fn still_running(d: &Draft) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.as_millis() as u64);
    d.pid != 0
        && d.pid != std::process::id()
        && now.saturating_sub(d.started_ms) < 3_600_000
        && crate::sys::process_name(d.pid) == "tutela"
}

pub fn key(master: &Key32, vault_id: &Id) -> Key32 {
    crate::crypto::kdf::derive(master, vault_id, LABEL)
}

fn aad(vault_id: &Id, zone: &Id) -> Vec<u8> {
    let mut a = LABEL.to_vec();
    a.extend_from_slice(vault_id);
    a.extend_from_slice(zone);
    a
}

fn hex(id: &Id) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn seal(key: &Key32, vault_id: &Id, d: &Draft) -> Result<Vec<u8>> {
    let json = zeroize::Zeroizing::new(serde_json::to_vec(d).map_err(|_| Error::Invalid)?);
    crypto::seal_random(key.as_bytes(), &aad(vault_id, &d.zone_id), &json)
}

pub fn open(key: &Key32, vault_id: &Id, zone: &Id, bytes: &[u8]) -> Result<Draft> {
    let plain = crypto::open_random(key.as_bytes(), &aad(vault_id, zone), bytes, "erasure draft")?;
    let d: Draft = serde_json::from_slice(&plain).map_err(|_| Error::Corrupt {
        what: "erasure draft (tutela.erasing)",
    })?;
    if d.zone_id != *zone {
        return Err(Error::Corrupt {
            what: "erasure draft (tutela.erasing)",
        });
    }
    Ok(d)
}

/// Writes the draft (durably: it must be on disk before the key goes).
pub fn write(v: &Vault, d: &Draft) -> Result<()> {
    let dir = v.dir.join(DIR_NAME);
    // A file or link planted under the name refuses the erasure before anything goes.
    crate::sys::private_dir(&dir).map_err(|e| {
        Error::UnsafeFile(format!(
            "{}: {e}: not the directory tutela keeps erasure drafts in (planted?); remove it. \
             Nothing was erased",
            dir.display()
        ))
    })?;
    let bytes = seal(&key(v.master(), &v.config.vault_id), &v.config.vault_id, d)?;
    crate::sys::write_atomic(&dir, &hex(&d.zone_id), &bytes, 0o600)
}

/// Removes the draft of zone `zone` (its certificate is written).
pub fn remove(v: &Vault, zone: &Id) -> Result<()> {
    let dir = v.dir.join(DIR_NAME);
    match std::fs::remove_file(dir.join(hex(zone))) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    // The directory goes with its last draft (it shows an erasure under way).
    let _ = std::fs::remove_dir(&dir);
    Ok(())
}

/// Drafts whose zone is no longer in the zone table: erasures that finished without their
/// certificate. Drafts that do not open (another master key since, damage) are named in
/// the second list and left in place.
pub fn finished(v: &Vault) -> (Vec<Draft>, Vec<String>) {
    let (mut done, mut bad) = (Vec::new(), Vec::new());
    let Ok(rd) = std::fs::read_dir(v.dir.join(DIR_NAME)) else {
        return (done, bad);
    };
    let key = key(v.master(), &v.config.vault_id);
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(zone) = unhex16(&name) else {
            continue;
        };
        if v.zones.iter().any(|z| z.id == zone) {
            continue;
        }
        match crate::sys::read_vault_file(&e.path(), MAX_LEN, false)
            .and_then(|b| open(&key, &v.config.vault_id, &zone, &b))
        {
            Ok(d) if still_running(&d) => {}
            Ok(d) => done.push(d),
            Err(err) => bad.push(format!("{DIR_NAME}/{name}: {err}")),
        }
    }
    done.sort_by_key(|d| d.started_ms);
    (done, bad)
}

fn unhex16(s: &str) -> Option<Id> {
    crate::offline::lifecycle::unhex::<16>(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Draft {
        Draft {
            client: "acme".into(),
            zone_id: [5; 16],
            folder: "/clients/acme".into(),
            meta: ClientMeta::default(),
            how: "shred".into(),
            files: 3,
            bytes: 40,
            to: "/tmp/x".into(),
            oldest_backup: None,
            live: false,
            started_ms: 1,
            by_user: "root".into(),
            by_uid: 0,
            pid: 1,
        }
    }

    #[test]
    fn a_draft_opens_only_for_its_vault_and_zone() {
        let k = Key32::from_bytes([1; 32]);
        let b = seal(&k, &[2; 16], &draft()).unwrap();
        assert_eq!(open(&k, &[2; 16], &[5; 16], &b).unwrap(), draft());
        assert!(open(&k, &[3; 16], &[5; 16], &b).is_err(), "another vault");
        assert!(
            open(&k, &[2; 16], &[6; 16], &b).is_err(),
            "renamed to another zone"
        );
        let mut t = b.clone();
        t[20] ^= 1;
        assert!(open(&k, &[2; 16], &[5; 16], &t).is_err());
        assert_eq!(unhex16(&hex(&[0xab; 16])), Some([0xab; 16]));
        // A draft's own process is never "another one still at work", nor no process.
        let mut d = draft();
        d.pid = std::process::id();
        assert!(!still_running(&d));
        d.pid = 0;
        assert!(!still_running(&d));
        // Another process named tutela (a `sleep` under that name) with a fresh draft: its
        // own; with a draft over an hour old: not (a reused pid).
        let t = tempfile::tempdir().unwrap();
        let fake = t.path().join("tutela");
        std::fs::copy("/bin/sleep", &fake).unwrap();
        let mut child = std::process::Command::new(&fake).arg("30").spawn().unwrap();
        d.pid = child.id();
        // Until its exec, the child still bears the test's name.
        for _ in 0..200 {
            if crate::sys::process_name(d.pid) == "tutela" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        d.started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let running = still_running(&d);
        d.started_ms -= 3_700_000;
        let stale = still_running(&d);
        let _ = child.kill();
        let _ = child.wait();
        assert!(running && !stale);
        assert!(!still_running(&Draft {
            started_ms: d.started_ms + 3_700_000,
            ..d
        }));
        assert_eq!(unhex16("zz"), None);
    }
}
