//! `tutela fsck`: reads and authenticates everything in a vault without mounting it: every
//! name, directory ID, long-name record, block of every file, symlink target, the policy file
//! and the audit chain (the config and key slots were authenticated by unlocking). Reports each
//! problem with the plaintext path where it can be recovered, and with `repair` fixes what needs
//! no guessing: a lost directory-ID copy, orphaned long-name records, leftover temp dirs, and
//! entries sealed under another directory's ID (`recover`: re-sealed where the ID is found,
//! else moved to the zone's `lost+found`).

mod recover;

use crate::crypto::content::{self, FileCipher, CT_BLOCK, HEADER_LEN};
use crate::crypto::names::{self, NameCipher};
use crate::crypto::{kdf, Id};
use crate::error::Result;
use crate::format::dirfile;
use crate::sys;
use crate::vault::Vault;
use serde::Serialize;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Plaintext path inside the vault, when it could be recovered.
    pub path: Option<String>,
    /// Path of the backing (ciphertext) object, relative to the vault.
    pub backing: String,
    pub problem: String,
    pub data_lost: bool,
    pub repaired: bool,
}

/// What `fsck --repair` does with a sync tool's conflict copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keep {
    /// Both versions stay (nothing is removed).
    #[default]
    Both,
    /// The newer of the file and its copy (by modification time) stays under the file's name.
    Newest,
}

impl std::str::FromStr for Keep {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Keep, String> {
        match s {
            "both" => Ok(Keep::Both),
            "newest" => Ok(Keep::Newest),
            _ => Err(format!("'{s}': say both or newest")),
        }
    }
}

/// A sync tool's conflict copy: not damage, two versions of one file.
#[derive(Debug, Serialize)]
pub struct Conflict {
    /// The plaintext path of the file it is a copy of.
    pub of: String,
    /// The plaintext path it is shown under on a mount.
    pub shown: String,
    pub tool: &'static str,
    pub backing: String,
    /// What `--repair --keep newest` did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub directories: u64,
    pub files: u64,
    pub bytes: u64,
    pub audit_records: u64,
    pub problems: Vec<Problem>,
    pub conflicts: Vec<Conflict>,
    /// Folders made on two machines and merged by a sync tool (names under two IDs).
    pub merged: Vec<String>,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.problems.iter().all(|p| p.repaired)
    }
}

/// Called now and then with (files checked, plaintext bytes checked).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

struct Ctx<'p> {
    progress: Progress<'p>,
    repair: bool,
    keep: Keep,
    report: Report,
    zones: Vec<(String, NameCipher, crate::crypto::secret::Key32)>,
    /// Every directory ID in the vault, read when a name first fails to open: names sealed
    /// under the wrong one are opened with these.
    known_ids: Option<Vec<Id>>,
    root: std::os::fd::OwnedFd,
    root_id: Id,
    /// Each zone's top directory seen in the walk: (backing path, directory ID).
    tops: std::collections::HashMap<usize, (std::path::PathBuf, Id)>,
    /// Entries that belong to the vault but whose name opens under no known ID.
    orphans: Vec<recover::Orphan>,
}

impl Ctx<'_> {
    fn problem(
        &mut self,
        path: Option<&str>,
        backing: &Path,
        what: impl Into<String>,
        lost: bool,
        repaired: bool,
    ) {
        self.report.problems.push(Problem {
            path: path.map(str::to_string),
            backing: backing.display().to_string(),
            problem: what.into(),
            data_lost: lost,
            repaired,
        });
    }

    fn zone_for(&self, plain: &str, parent_zone: usize) -> usize {
        self.zones
            .iter()
            .position(|(p, _, _)| p == plain)
            .unwrap_or(parent_zone)
    }
}

pub fn check(vault: &Vault, repair: bool, progress: Progress<'_>) -> Result<Report> {
    check_keeping(vault, repair, Keep::Both, progress)
}

/// `check`, resolving conflict copies as `keep` says when repairing.
pub fn check_keeping(
    vault: &Vault,
    repair: bool,
    keep: Keep,
    progress: Progress<'_>,
) -> Result<Report> {
    let zones = vault
        .zones
        .iter()
        .map(|z| {
            let n = NameCipher::new(
                &kdf::name_key(&z.key, &z.id),
                &kdf::xattr_key(&z.key, &z.id),
            );
            (z.path.clone(), n, z.key.duplicate())
        })
        .collect();
    let root = sys::open_dir(&vault.dir)?;
    let mut cx = Ctx {
        progress,
        repair,
        keep,
        report: Report::default(),
        zones,
        known_ids: None,
        root: root.try_clone()?,
        root_id: vault.config.root_dir_id,
        tops: std::collections::HashMap::from([(
            0,
            (std::path::PathBuf::new(), vault.config.root_dir_id),
        )]),
        orphans: Vec::new(),
    };
    walk_dir(
        &mut cx,
        root.as_fd(),
        Path::new(""),
        "/",
        vault.config.root_dir_id,
        0,
    )?;
    recover::place_orphans(&mut cx, root.as_fd());
    // The policy file and the audit chain.
    let pf = vault.dir.join(crate::policy::store::FILE_NAME);
    if pf.exists() {
        if let Err(e) = vault.read_policy() {
            cx.problem(
                None,
                Path::new(crate::policy::store::FILE_NAME),
                format!("policy file: {e}"),
                false,
                false,
            );
        }
    }
    // The closed clients as scoped mounts read them must be the zone table's.
    {
        use crate::policy::closed;
        let want = closed::of_zones(&vault.zones);
        let key = vault.policy_key();
        let found = closed::read(&vault.dir, &key, &vault.config.vault_id);
        let wrong = match &found {
            Ok(Some(list)) => (*list != want)
                .then(|| "does not list the closed clients the zone table does".to_string()),
            Ok(None) => {
                (!want.is_empty()).then(|| "is missing, but some clients are closed".to_string())
            }
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = wrong {
            let repaired =
                cx.repair && closed::write(&vault.dir, &key, &vault.config.vault_id, &want).is_ok();
            cx.problem(
                None,
                Path::new(closed::FILE_NAME),
                format!(
                    "closed-clients list {why} (client-scoped mounts enforce it; a full mount \
                     or fsck --repair writes it again)"
                ),
                false,
                repaired,
            );
        }
    }
    let rep = crate::audit::read_all(&vault.dir, &vault.audit_keys(), |_| {})?;
    cx.report.audit_records = rep.records();
    if let Some(bad) = rep.bad {
        cx.problem(
            None,
            Path::new(crate::audit::DIR_NAME),
            format!("audit log: {bad}"),
            true,
            false,
        );
    }
    Ok(cx.report)
}

fn join_plain(parent: &str, name: &[u8]) -> String {
    let n = String::from_utf8_lossy(name);
    if parent == "/" {
        format!("/{n}")
    } else {
        format!("{parent}/{n}")
    }
}

fn walk_dir(
    cx: &mut Ctx<'_>,
    dir: BorrowedFd<'_>,
    rel: &Path,
    plain: &str,
    dir_id: Id,
    zone: usize,
) -> Result<()> {
    cx.report.directories += 1;
    let entries = sys::read_dir(dir)?;
    let in_root = rel.as_os_str().is_empty();
    let present: std::collections::HashSet<Vec<u8>> =
        entries.iter().map(|e| e.name.as_bytes().to_vec()).collect();
    let mut alts: Option<Vec<Id>> = None;
    for e in &entries {
        let b = e.name.as_bytes();
        let brel = rel.join(&e.name);
        if b == dirfile::FILE_NAME.as_bytes()
            || (in_root && b.starts_with(b"tutela."))
            || (in_root && b.starts_with(b".tutela.conf"))
            // A sync tool's own files, and its copies of a directory ID file (read below).
            || crate::fs::sync_tool_file(b)
            || (b.starts_with(b".tutela") && b.ends_with(b".dir"))
        {
            continue;
        }
        if b.starts_with(b".tutela.tmp.") {
            let fixed = cx.repair && remove_tree(dir, &e.name).is_ok();
            cx.problem(
                None,
                &brel,
                "directory left half-made by a crash during mkdir (empty, no data)",
                false,
                fixed,
            );
            continue;
        }
        if b.starts_with(names::LONG_PREFIX.as_bytes())
            && b.ends_with(names::LONG_SUFFIX.as_bytes())
        {
            let entry = &b[..b.len() - names::LONG_SUFFIX.len()];
            if !present.contains(entry) {
                let fixed = cx.repair && sys::unlinkat(dir, &e.name, false).is_ok();
                cx.problem(
                    None,
                    &brel,
                    "orphaned long-name record (its entry is gone)",
                    false,
                    fixed,
                );
            }
            continue;
        }
        // A name that does not open may be a sync tool's copy of one that does.
        let opens = crate::fs::full_encoded(dir, b)
            .is_ok_and(|f| cx.zones[zone].1.decrypt(&dir_id, &f).is_ok());
        if let Some((of, shown, tool)) = (!opens)
            .then(|| crate::fs::identify_conflict(&cx.zones[zone].1, dir, &dir_id, b))
            .flatten()
        {
            let resolved = if cx.repair && cx.keep == Keep::Newest {
                Some(keep_newest(cx, dir, zone, &dir_id, &e.name, &of)?)
            } else {
                None
            };
            cx.report.conflicts.push(Conflict {
                of: join_plain(plain, &of),
                shown: join_plain(plain, &shown),
                tool,
                backing: rel.join(&e.name).display().to_string(),
                resolved,
            });
            continue;
        }
        let full = if b.starts_with(names::LONG_PREFIX.as_bytes()) {
            match crate::fs::full_encoded(dir, b).ok() {
                Some(f) => f,
                None => {
                    cx.problem(
                        None,
                        &brel,
                        "long name record missing or damaged: the name is lost",
                        true,
                        false,
                    );
                    continue;
                }
            }
        } else {
            b.to_vec()
        };
        // Names sealed under the directory's other ID (made on two machines, then synced).
        let decrypted = cx.zones[zone].1.decrypt(&dir_id, &full).or_else(|e| {
            let alts = alts.get_or_insert_with(|| crate::fs::alternate_dir_ids(dir, &dir_id));
            alts.iter()
                .find_map(|id| cx.zones[zone].1.decrypt(id, &full).ok())
                .ok_or(e)
        });
        let (name, backing) = match decrypted {
            Ok(n) => (n, e.name.clone()),
            Err(crate::error::Error::AuthFailed { .. }) => {
                // A well-formed name that opens under another key or directory ID.
                match recover::misplaced(cx, dir, &brel, plain, dir_id, zone, &e.name, &full) {
                    Some(found) => found,
                    None => continue,
                }
            }
            Err(_) => {
                cx.problem(
                    None,
                    &brel,
                    "name does not decrypt: a stray file (sync conflict copy, temp file) or damage",
                    false,
                    false,
                );
                continue;
            }
        };
        let brel = rel.join(&backing);
        let p = join_plain(plain, &name);
        let st = match sys::fstatat(dir, &backing) {
            Ok(s) => s,
            Err(err) => {
                cx.problem(Some(&p), &brel, format!("cannot stat: {err}"), false, false);
                continue;
            }
        };
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                let sub = sys::openat(dir, &backing, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                let child_zone = cx.zone_for(&p, zone);
                match dir_id_of(cx, sub.as_fd(), &p, &brel, child_zone) {
                    Some(id) => {
                        if child_zone != zone {
                            cx.tops.insert(child_zone, (brel.clone(), id));
                        }
                        walk_dir(cx, sub.as_fd(), &brel, &p, id, child_zone)?
                    }
                    None => cx.problem(Some(&p), &brel, "both copies of the directory ID are lost: the names inside cannot be recovered", true, false),
                }
            }
            libc::S_IFREG => check_file(cx, dir, &backing, &p, &brel, zone, st.st_size as u64),
            libc::S_IFLNK => {
                let ok = sys::readlinkat(dir, &backing)
                    .ok()
                    .and_then(|t| cx.zones[zone].1.decrypt_symlink(&t).ok())
                    .is_some();
                if !ok {
                    cx.problem(
                        Some(&p),
                        &brel,
                        "symlink target does not authenticate",
                        true,
                        false,
                    );
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Keeps the newer of a file and its conflict copy `copy` under the file's name; says which.
fn keep_newest(
    cx: &Ctx<'_>,
    dir: BorrowedFd<'_>,
    zone: usize,
    dir_id: &Id,
    copy: &OsStr,
    of: &[u8],
) -> Result<String> {
    let stored = cx.zones[zone].1.encrypt(dir_id, of)?;
    let original = OsStr::new(stored.backing_name());
    let c = sys::fstatat(dir, copy)?;
    if c.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Ok("a folder: both kept".into());
    }
    let newer = |a: &libc::stat, b: &libc::stat| {
        (a.st_mtime, a.st_mtime_nsec) > (b.st_mtime, b.st_mtime_nsec)
    };
    match sys::fstatat(dir, original) {
        Ok(o) if !newer(&c, &o) => {
            sys::unlinkat(dir, copy, false)?;
            Ok("the file was newer: the copy was removed".into())
        }
        Ok(_) | Err(crate::error::Error::NotFound) => {
            sys::renameat2(dir, copy, dir, original, 0)?;
            Ok("the copy was newer: it replaced the file".into())
        }
        Err(e) => Err(e),
    }
}

/// Whether some name in `dir` opens under directory ID `id`.
fn sealed_under(cx: &Ctx<'_>, dir: BorrowedFd<'_>, zone: usize, id: &Id) -> bool {
    sys::read_dir(dir).is_ok_and(|entries| {
        entries.iter().any(|e| {
            crate::fs::full_encoded(dir, e.name.as_bytes())
                .is_ok_and(|f| cx.zones[zone].1.decrypt(id, &f).is_ok())
        })
    })
}

/// A directory's ID from either copy; a missing or disagreeing copy is reported (and restored).
fn dir_id_of(
    cx: &mut Ctx<'_>,
    dir: BorrowedFd<'_>,
    plain: &str,
    brel: &Path,
    zone: usize,
) -> Option<Id> {
    let (file, xattr) = crate::fs::dir_id_copies(dir);
    match (file, xattr) {
        (Some(a), Some(b)) if a != b && sealed_under(cx, dir, zone, &b) => {
            // A folder made on two machines and merged by a sync tool: this machine's names
            // are under the xattr's ID, the other's under the file's. Both are read.
            cx.report.merged.push(plain.to_string());
            Some(a)
        }
        (Some(a), Some(b)) if a != b => {
            cx.problem(
                Some(plain),
                brel,
                "the two directory ID copies disagree (.tutela.dir is used)",
                false,
                false,
            );
            Some(a)
        }
        (Some(a), _) => {
            if xattr.is_none() && xattrs_supported(dir) {
                let fixed = cx.repair
                    && sys::fsetxattr(dir, dirfile::XATTR_NAME, &dirfile::encode(&a), 0).is_ok();
                cx.problem(
                    Some(plain),
                    brel,
                    "directory ID xattr copy missing (no data lost)",
                    false,
                    fixed,
                );
            }
            Some(a)
        }
        (None, Some(b)) => {
            let fixed = cx.repair && crate::fs::write_dir_id_file(dir, &b).is_ok();
            cx.problem(Some(plain), brel, "directory ID file .tutela.dir lost or damaged; its xattr copy holds the ID (no data lost)", false, fixed);
            Some(b)
        }
        (None, None) => None,
    }
}

fn xattrs_supported(dir: BorrowedFd<'_>) -> bool {
    !matches!(
        sys::fgetxattr(dir, "user.tutela.probe"),
        Err(crate::error::Error::NotSupported)
    ) && !matches!(sys::fgetxattr(dir, "user.tutela.probe"), Err(crate::error::Error::Io(ref e)) if e.raw_os_error() == Some(libc::EOPNOTSUPP))
}

fn remove_tree(dir: BorrowedFd<'_>, name: &OsStr) -> Result<()> {
    let sub = sys::openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    for e in sys::read_dir(sub.as_fd())? {
        sys::unlinkat(sub.as_fd(), &e.name, false)?;
    }
    sys::unlinkat(dir, name, true)
}

fn check_file(
    cx: &mut Ctx<'_>,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    plain: &str,
    brel: &Path,
    zone: usize,
    size: u64,
) {
    cx.report.files += 1;
    (cx.progress)(cx.report.files, cx.report.bytes);
    if size == 0 {
        return;
    }
    let Some(psize) = content::plain_size(size) else {
        cx.problem(
            Some(plain),
            brel,
            format!("ciphertext size {size} is impossible: the file was cut short inside a block"),
            true,
            false,
        );
        return;
    };
    cx.report.bytes += psize;
    let fd = match sys::openat(dir, name, libc::O_RDONLY, 0) {
        Ok(fd) => fd,
        Err(e) => {
            cx.problem(Some(plain), brel, format!("cannot open: {e}"), false, false);
            return;
        }
    };
    let mut f = std::fs::File::from(fd);
    let mut hdr = [0u8; HEADER_LEN as usize];
    if f.read_exact(&mut hdr).is_err() {
        cx.problem(Some(plain), brel, "file header missing", true, false);
        return;
    }
    let id = match content::decode_header(&hdr) {
        Ok(id) => id,
        Err(_) => {
            cx.problem(
                Some(plain),
                brel,
                "file header damaged: the whole file is lost",
                true,
                false,
            );
            return;
        }
    };
    let cipher = FileCipher::new(&kdf::content_key(&cx.zones[zone].2, &id), id);
    // Read in large chunks (I/O-bound), authenticate block by block.
    let chunk_blocks = 256u64;
    let mut buf = vec![0u8; (chunk_blocks * CT_BLOCK) as usize];
    let mut out = vec![0u8; CT_BLOCK as usize];
    let mut blk = 0u64;
    let mut bad: Vec<u64> = Vec::new();
    loop {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(_) => break,
            }
        }
        if n == 0 {
            break;
        }
        for c in buf[..n].chunks(CT_BLOCK as usize) {
            let plain_len = c.len() - content::OVERHEAD as usize;
            if cipher.open_block(blk, c, &mut out[..plain_len]).is_err() {
                bad.push(blk);
            }
            blk += 1;
        }
        if n < buf.len() {
            break;
        }
    }
    if !bad.is_empty() {
        let shown: Vec<String> = bad.iter().take(8).map(|b| b.to_string()).collect();
        let more = if bad.len() > 8 {
            format!(" and {} more", bad.len() - 8)
        } else {
            String::new()
        };
        cx.problem(
            Some(plain),
            brel,
            format!(
                "{} block(s) do not authenticate (4 KiB blocks {}{more}): those bytes read as EIO",
                bad.len(),
                shown.join(", ")
            ),
            true,
            false,
        );
    }
}

/// The plaintext of a report, one line per problem.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    for m in &r.merged {
        s.push_str(&format!(
            "{}: a folder made on two machines before they synced; the files of both are \
             shown (not damage)\n",
            crate::text::escape(m)
        ));
    }
    for c in &r.conflicts {
        match &c.resolved {
            Some(what) => s.push_str(&format!(
                "{}: a {} conflict copy of {}: {what}\n",
                crate::text::escape(&c.shown),
                c.tool,
                crate::text::escape(&c.of)
            )),
            None => s.push_str(&format!(
                "{}: a {} conflict copy of {}, shown beside it (not damage: keep one by \
                 deleting the other through the mount, or rename it to keep both; fsck --repair \
                 --keep newest keeps the newer)\n",
                crate::text::escape(&c.shown),
                c.tool,
                crate::text::escape(&c.of)
            )),
        }
    }
    for p in &r.problems {
        // Plaintext paths and backing names come from the vault: escaped for the terminal.
        let backing = crate::text::escape(&p.backing);
        let loc = p
            .path
            .as_deref()
            .map(|x| format!("{} ({backing})", crate::text::escape(x)))
            .unwrap_or_else(|| backing.to_string());
        let lost = if p.data_lost {
            "data lost"
        } else {
            "no data lost"
        };
        let rep = if p.repaired { "; repaired" } else { "" };
        s.push_str(&format!(
            "{loc}: {}; {lost}{rep}\n",
            crate::text::escape(&p.problem)
        ));
    }
    s
}
