//! Client zones: a client's folder becomes its own zone with its own random key, so that its
//! files can later be exported, rotated or crypto-erased on their own. Works offline (the
//! vault must not be mounted: the daemon reads the zone table once, at mount).

use crate::crypto;
use crate::error::{Error, Result};
use crate::format::zones::ZoneRecord;
use crate::fs::inode::{Kind, ROOT_INO};
use crate::fs::{Fs, Options, Subject};
use crate::policy::{normalise, within};
use crate::secret::Key32;
use crate::vault::Vault;
use serde::Serialize;
use std::ffi::OsStr;

#[derive(Debug, Clone, Serialize)]
pub struct ClientInfo {
    pub name: String,
    pub path: String,
    pub files: u64,
    pub bytes: u64,
}

fn me() -> Subject {
    Subject {
        uid: crate::sys::getuid(),
        gid: crate::sys::getgid(),
        pid: std::process::id(),
    }
}

/// Makes `path` (new or an empty folder) the zone of client `name`.
pub fn add(vault: &mut Vault, name: &str, path: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(Error::Usage(format!(
            "client name '{name}' may use letters, digits, '.', '_' and '-' only"
        )));
    }
    let path = normalise(path).ok_or_else(|| {
        Error::Usage(format!(
            "'{path}' is not an absolute path below / (e.g. /clients/{name})"
        ))
    })?;
    for z in vault.zones.iter().skip(1) {
        if z.name == name {
            return Err(Error::Usage(format!(
                "a client named '{name}' exists already"
            )));
        }
        if within(&path, &z.path) || within(&z.path, &path) {
            return Err(Error::Usage(format!(
                "{path} overlaps client '{}' at {}: a file belongs to one client",
                z.name, z.path
            )));
        }
    }
    let _lock = crate::audit::lock(&vault.dir)?;
    let fs = Fs::new(vault, Options::default())?;
    let who = me();
    let mut ino = ROOT_INO;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        ino = match fs.lookup(&who, ino, OsStr::new(part)) {
            Ok(a) if a.kind != Kind::Dir => {
                return Err(Error::Usage(format!("{path}: '{part}' is not a directory")))
            }
            Ok(a) => {
                if last && fs.list_dir(a.ino)?.len() > 2 {
                    return Err(Error::Usage(format!(
                        "{path} already holds files: a client zone is made from a new or empty folder \
                         (move the files in after `client add`; in-place re-encryption is planned)"
                    )));
                }
                a.ino
            }
            Err(Error::NotFound) => fs.mkdir(&who, ino, OsStr::new(part), 0o755, 0)?.ino,
            Err(e) => return Err(e),
        };
    }
    drop(fs);
    vault.zones.push(ZoneRecord {
        id: crypto::random_id()?,
        key: Key32::random()?,
        name: name.to_string(),
        path,
    });
    vault.save()
}

/// Every client with its path and how much it holds.
pub fn list(vault: &Vault) -> Result<Vec<ClientInfo>> {
    let fs = Fs::new(
        vault,
        Options {
            read_only: true,
            chown_new: false,
        },
    )?;
    let who = me();
    let mut out = Vec::new();
    for z in vault.zones.iter().skip(1) {
        let mut info = ClientInfo {
            name: z.name.clone(),
            path: z.path.clone(),
            files: 0,
            bytes: 0,
        };
        let mut ino = Some(ROOT_INO);
        for part in z.path.split('/').filter(|p| !p.is_empty()) {
            ino = ino.and_then(|i| fs.lookup(&who, i, OsStr::new(part)).ok().map(|a| a.ino));
        }
        if let Some(top) = ino {
            count(&fs, &who, top, &mut info)?;
        }
        out.push(info);
    }
    Ok(out)
}

fn count(fs: &Fs, who: &Subject, dir: u64, info: &mut ClientInfo) -> Result<()> {
    for e in fs.list_dir(dir)? {
        if e.name == "." || e.name == ".." {
            continue;
        }
        let a = fs.lookup(who, dir, &e.name)?;
        match a.kind {
            Kind::Dir => count(fs, who, a.ino, info)?,
            _ => {
                info.files += 1;
                info.bytes += a.size;
            }
        }
    }
    Ok(())
}
