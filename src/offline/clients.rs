//! Client zones: a client's folder becomes its own zone with its own random key, so that its
//! files can later be exported, rotated or crypto-erased on their own. These functions work
//! offline; a mounted vault is changed through its daemon (`live`), which shares the checks.

use crate::crypto;
use crate::crypto::secret::Key32;
use crate::error::{Error, Result};
use crate::format::zones::ZoneRecord;
use crate::fs::inode::Kind;
use crate::fs::{Fs, Ino, Options, Subject};
use crate::policy::{normalise, within};
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

/// The user running the command.
pub fn me() -> Subject {
    Subject {
        uid: crate::sys::getuid(),
        gid: crate::sys::getgid(),
        pid: std::process::id(),
    }
}

/// Longest client name (its length is one byte in the zone table).
pub const MAX_NAME: usize = 255;
/// Longest client path (no path inside the mount is longer).
pub const MAX_PATH: usize = libc::PATH_MAX as usize - 1;

/// Checks a new client's name and folder against the vault; returns the folder's
/// normalised path.
pub fn check_new(vault: &Vault, name: &str, path: &str) -> Result<String> {
    if name.is_empty()
        || name.chars().all(|c| c == '.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(Error::Usage(format!(
            "client name '{}' may use letters, digits, '.', '_' and '-' only (not dots alone)",
            crate::text::escape(name)
        )));
    }
    // The zone table stores the name's length in one byte.
    if name.len() > MAX_NAME {
        return Err(Error::Usage(format!(
            "a client name is at most {MAX_NAME} bytes (this one has {})",
            name.len()
        )));
    }
    let path = normalise(path).ok_or_else(|| {
        Error::Usage(format!(
            "'{}' is not an absolute path below / (e.g. /clients/{name})",
            crate::text::escape(path)
        ))
    })?;
    if path.len() > MAX_PATH {
        return Err(Error::Usage(format!(
            "a client path is at most {MAX_PATH} bytes (this one has {})",
            path.len()
        )));
    }
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
    if !vault.rekey_pending().is_empty() {
        return Err(Error::Usage(
            "a rekey is not finished: run `tutela rekey VAULT --resume` first".into(),
        ));
    }
    Ok(path)
}

/// The zone record of a new client, opened today. A folder that already holds files adopts them from
/// `from` (the zone they are in now: client folders do not nest, so the root zone): the
/// record keeps that zone's key as its retiring key until they are re-encrypted.
pub fn new_record(name: &str, path: &str, from: Option<&ZoneRecord>) -> Result<ZoneRecord> {
    Ok(ZoneRecord {
        id: crypto::random_id()?,
        key: Key32::random()?,
        name: name.to_string(),
        path: path.to_string(),
        retiring: from.map(|z| z.key.duplicate()),
        adopting: from.map(|z| z.id),
        // Taking a client on opens the matter: the date is recorded from the start (`client
        // set --opened` corrects it for a matter opened before the client came into tutela).
        meta: crate::format::zones::ClientMeta {
            opened_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis() as u64),
            ..Default::default()
        },
    })
}

/// What `add` did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Added {
    /// The folder held files, which were re-encrypted under the client's key.
    pub adopted: bool,
    pub stats: crate::fs::RekeyStats,
}

/// Makes `path` the zone of client `name` (offline). A new or empty folder is simply
/// marked; a folder that holds files is adopted: the record is saved with the root zone's
/// key as retiring (the commit point), the files are re-encrypted in place, and the
/// retiring key is dropped. A crash in between is finished by `rekey --resume`.
pub fn add(
    vault: &mut Vault,
    name: &str,
    path: &str,
    tick: &mut dyn FnMut(crate::fs::RekeyStats),
) -> Result<Added> {
    let path = check_new(vault, name, path)?;
    let _lock = crate::audit::lock(&vault.dir)?;
    let fs = Fs::new(vault, Options::default())?;
    let held = fs.exclusive();
    let holds_files = fs
        .folder_at(&held, &path, true)?
        .is_some_and(|(_, full, _)| full);
    drop(held);
    drop(fs);
    if !holds_files {
        vault.zones.push(new_record(name, &path, None)?);
        vault.save()?;
        return Ok(Added::default());
    }
    let rec = new_record(name, &path, Some(&vault.zones[0]))?;
    let id = rec.id;
    vault.zones.push(rec);
    vault.save()?;
    crate::faults::point("adopt-committed");
    let fs = Fs::new(vault, Options::default())?;
    let k = fs
        .family_of(&id)
        .ok_or(Error::Corrupt { what: "zone index" })?;
    let stats = fs.rekey_zone(k, tick)?;
    for z in vault.zones.iter_mut().filter(|z| z.id == id) {
        z.retiring = None;
        z.adopting = None;
    }
    vault.save()?;
    fs.rekey_cleanup()?;
    Ok(Added {
        adopted: true,
        stats,
    })
}

/// The zone record of client `name`, or a usage error naming the command that lists them.
pub fn zone_named<'a>(vault: &'a Vault, name: &str) -> Result<&'a ZoneRecord> {
    Ok(&vault.zones[zone_index(vault, name)?])
}

/// Where client `name` is in the zone table (never 0, the root zone).
pub fn zone_index(vault: &Vault, name: &str) -> Result<usize> {
    vault
        .zones
        .iter()
        .skip(1)
        .position(|z| z.name == name)
        .map(|i| i + 1)
        .ok_or_else(|| {
            Error::Usage(format!(
                "no client named '{}' (see tutela client list)",
                crate::text::escape(name)
            ))
        })
}

/// A read-only filesystem core over the vault, for offline commands.
pub fn read_only_fs(vault: &Vault) -> Result<Fs> {
    Fs::new(
        vault,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
}

/// Every client with its path and how much it holds.
pub fn list(vault: &Vault) -> Result<Vec<ClientInfo>> {
    let fs = read_only_fs(vault)?;
    let who = me();
    let mut out = Vec::new();
    for z in vault.zones.iter().skip(1) {
        let mut info = ClientInfo {
            name: z.name.clone(),
            path: z.path.clone(),
            files: 0,
            bytes: 0,
        };
        if let Some(top) = resolve(&fs, &who, &z.path)? {
            count(&fs, &who, top, &mut info)?;
        }
        out.push(info);
    }
    Ok(out)
}

fn count(fs: &Fs, who: &Subject, dir: Ino, info: &mut ClientInfo) -> Result<()> {
    for e in fs.readdir(who, dir)? {
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

/// The inode of the directory at plaintext `path`, if it exists.
pub fn resolve(fs: &Fs, who: &Subject, path: &str) -> Result<Option<Ino>> {
    let mut ino = Ino::ROOT;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        match fs.lookup(who, ino, OsStr::new(part)) {
            Ok(a) if a.kind == Kind::Dir => ino = a.ino,
            Ok(_) | Err(Error::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(ino))
}

/// The id of client `name`'s top directory (where a client-scoped mount starts), looked up
/// through the vault's own names.
pub fn top_dir_id(vault: &Vault, name: &str) -> Result<crate::crypto::Id> {
    let path = zone_named(vault, name)?.path.clone();
    let fs = read_only_fs(vault)?;
    let ino = resolve(&fs, &me(), &path)?.ok_or_else(|| {
        Error::Usage(format!(
            "client '{name}': its folder {path} is missing (see tutela fsck)"
        ))
    })?;
    fs.dir_id(ino)
}

/// What `shred` removed.
#[derive(Debug, Clone, Serialize)]
pub struct Shredded {
    pub name: String,
    pub path: String,
    pub files: u64,
    pub bytes: u64,
}

/// Crypto-erases client `name`: its zone key is destroyed in every copy the vault controls
/// (config or key store) and its ciphertext is deleted. Crash-safe in three steps: the
/// zone's folder is moved out of the tree, the key is dropped from the config, the moved
/// ciphertext is deleted; running shred again after a crash finishes the job.
pub fn shred(vault: &mut Vault, name: &str) -> Result<Shredded> {
    let Some(i) = vault.zones.iter().skip(1).position(|z| z.name == name) else {
        return Err(Error::Usage(format!(
            "no client named '{name}' (see tutela client list)"
        )));
    };
    let i = i + 1;
    crate::offline::lifecycle::check_not_held(&vault.zones[i].meta, name)?;
    if !vault.rekey_pending().is_empty() {
        return Err(Error::Usage(
            "a rekey is not finished: run `tutela rekey VAULT --resume` first".into(),
        ));
    }
    let info = list(vault)?
        .into_iter()
        .find(|c| c.name == name)
        .map(|c| (c.files, c.bytes))
        .unwrap_or((0, 0));
    let _lock = crate::audit::lock(&vault.dir)?;
    let graveyard = vault.dir.join(GRAVEYARD);
    {
        let fs = Fs::new(vault, Options::default())?;
        let who = me();
        if resolve(&fs, &who, &vault.zones[i].path)?.is_some() {
            std::fs::create_dir_all(&graveyard)?;
            let hex: String = vault.zones[i]
                .id
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            fs.detach_dir(&who, &vault.zones[i].path, &graveyard.join(hex))?;
        }
    }
    crate::faults::point("shred-detached");
    let z = vault.zones.remove(i);
    vault.drop_client_slots_of(&z.id);
    vault.save()?;
    crate::faults::point("shred-key-destroyed");
    remove_graveyard(&graveyard)?;
    Ok(Shredded {
        name: z.name.clone(),
        path: z.path.clone(),
        files: info.0,
        bytes: info.1,
    })
}

/// Where a shredded zone's ciphertext waits for deletion (hidden like all `tutela.*`).
pub const GRAVEYARD: &str = "tutela.shred";

/// Deletes everything in the graveyard, making read-only folders writable as it goes.
pub fn remove_graveyard(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fn rm(p: &std::path::Path) -> std::io::Result<()> {
        let md = std::fs::symlink_metadata(p)?;
        if md.is_dir() {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))?;
            for e in std::fs::read_dir(p)? {
                rm(&e?.path())?;
            }
            std::fs::remove_dir(p)
        } else {
            std::fs::remove_file(p)
        }
    }
    match rm(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io(e)),
    }
}

/// Opens one client's keys for a client-scoped mount (`mount --client NAME`): with a client
/// key of that client, or with a vault passphrase (or the recovery key), from which only the
/// client's keys are kept and everything else is dropped at once. Also returns the config as
/// read (it cannot be authenticated with a client key; a scoped mount uses only its vault id
/// and policy binding).
pub fn unlock_client(
    dir: &std::path::Path,
    how: &crate::vault::Unlock,
    client: &str,
    keystore: Option<&std::path::Path>,
) -> Result<(
    crate::format::config::Config,
    crate::vault::client_slots::ClientKeys,
)> {
    use crate::vault::client_slots::{open_any, ClientKeys};
    let (config, _) = Vault::read_config(dir)?;
    if let crate::vault::Unlock::Passphrase(p) = how {
        if let Some(k) = open_any(&config, p)? {
            if k.name != client {
                return Err(Error::ClientKeyOnly {
                    label: k.label,
                    client: k.name,
                });
            }
            return Ok((config, k));
        }
    }
    let v = crate::offline::open_vault(dir, how, keystore)?;
    let z = zone_named(&v, client)?;
    let keys = ClientKeys {
        label: String::new(),
        zone_id: z.id,
        zone_key: z.key.duplicate(),
        policy_key: v.policy_key(),
        audit_public: v.audit_keys().public(),
        top_dir_id: top_dir_id(&v, client)?,
        name: z.name.clone(),
        path: z.path.clone(),
    };
    // Every other key of the vault goes here, zeroized.
    drop(v);
    Ok((config, keys))
}
