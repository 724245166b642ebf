//! Directories: directory IDs, lookup, listing, mkdir and rmdir.

use super::inode::{DirRef, Kind, ROOT_INO};
use super::{conflicts, lock, Attr, Fs, Ino, Subject};
use crate::crypto::names::{self, Stored};
use crate::crypto::Id;
use crate::error::{Error, Result};
use crate::format::dirfile;
use crate::sys;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

#[derive(Debug, Clone)]
pub struct DirEntryOut {
    pub ino: Ino,
    pub kind: Kind,
    pub name: OsString,
}

/// The two copies of a directory's ID: (`.tutela.dir`, xattr), each if present and valid.
pub(crate) fn dir_id_copies(dir: BorrowedFd<'_>) -> (Option<Id>, Option<Id>) {
    let file = sys::openat(dir, OsStr::new(dirfile::FILE_NAME), libc::O_RDONLY, 0)
        .ok()
        .and_then(|fd| {
            let mut buf = Vec::new();
            std::fs::File::from(fd)
                .take(64)
                .read_to_end(&mut buf)
                .ok()?;
            dirfile::parse(&buf)
        });
    let xattr = sys::fgetxattr(dir, dirfile::XATTR_NAME)
        .ok()
        .and_then(|b| dirfile::parse(&b));
    (file, xattr)
}

/// The full encoded name behind a backing name (reads and checks the long-name record if the
/// entry is in the hashed long form).
pub(crate) fn full_encoded(dir: BorrowedFd<'_>, backing: &[u8]) -> Result<Vec<u8>> {
    if !backing.starts_with(names::LONG_PREFIX.as_bytes()) {
        return Ok(backing.to_vec());
    }
    let hashed = std::str::from_utf8(backing).map_err(|_| Error::Corrupt {
        what: "long name entry",
    })?;
    let fd = sys::openat(
        dir,
        OsStr::new(&names::long_record_name(hashed)),
        libc::O_RDONLY,
        0,
    )
    .map_err(|_| Error::Corrupt {
        what: "long name record missing",
    })?;
    let mut full = Vec::new();
    std::fs::File::from(fd).take(4096).read_to_end(&mut full)?;
    let s = std::str::from_utf8(&full).map_err(|_| Error::Corrupt {
        what: "long name record",
    })?;
    if names::long_hash_name(s).as_bytes() != backing {
        return Err(Error::Corrupt {
            what: "long name record does not match its entry",
        });
    }
    Ok(full)
}

/// Reads a directory's ID from `.tutela.dir`, falling back to the xattr copy; when one copy is
/// missing and `heal` is set, restores it from the other.
pub(super) fn read_dir_id(dir: BorrowedFd<'_>, heal: bool) -> Result<Id> {
    read_dir_ids(dir, heal).map(|(id, _)| id)
}

/// `read_dir_id`, and the xattr copy's ID when it differs: after a sync tool merged a
/// directory made on two machines, `.tutela.dir` came from the other machine while the xattr
/// (which sync tools do not copy) still names the ID this machine sealed its names under.
pub(super) fn read_dir_ids(dir: BorrowedFd<'_>, heal: bool) -> Result<(Id, Option<Id>)> {
    let (from_file, from_xattr) = dir_id_copies(dir);
    match (from_file, from_xattr) {
        (Some(a), Some(b)) if a == b => Ok((a, None)),
        (Some(a), Some(b)) => {
            // Two different IDs: the file is what names are written with from now on; names
            // sealed under the other still open (`Fs::alt_ids`).
            log::warn!(
                "directory ID copies disagree; using .tutela.dir, and the other for older names"
            );
            Ok((a, Some(b)))
        }
        (Some(a), None) => {
            if heal {
                let _ = sys::fsetxattr(dir, dirfile::XATTR_NAME, &dirfile::encode(&a), 0);
            }
            Ok((a, None))
        }
        (None, Some(b)) => {
            log::warn!("directory ID file missing or damaged; restored from its xattr copy");
            if heal {
                let _ = write_dir_id_file(dir, &b);
            }
            Ok((b, None))
        }
        (None, None) => Err(Error::Corrupt {
            what: "directory ID (both copies lost)",
        }),
    }
}

/// IDs in a sync tool's conflict copies of `.tutela.dir` in this directory
/// (`.tutela.sync-conflict-….dir`, `.tutela (LAPTOP's conflicted copy ….dir`, …) other than
/// `main`: the same directory was made on two machines, each sealing its names under its own
/// ID, and the tool kept one ID file and renamed the other.
pub(crate) fn alternate_dir_ids(dir: BorrowedFd<'_>, main: &Id) -> Vec<Id> {
    let mut out = Vec::new();
    // The xattr copy, which sync tools do not carry, keeps this machine's own ID.
    if let (_, Some(x)) = dir_id_copies(dir) {
        if x != *main {
            out.push(x);
        }
    }
    let Ok(entries) = sys::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let b = e.name.as_bytes();
        if b == dirfile::FILE_NAME.as_bytes() || !b.starts_with(b".tutela") || !b.ends_with(b".dir")
        {
            continue;
        }
        // Never through a symlink, never blocking on a FIFO, and a regular file only.
        let Ok(fd) = sys::openat(dir, &e.name, libc::O_RDONLY | libc::O_NONBLOCK, 0) else {
            continue;
        };
        if !sys::fstat(fd.as_fd()).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG) {
            continue;
        }
        let mut buf = Vec::new();
        if std::fs::File::from(fd)
            .take(64)
            .read_to_end(&mut buf)
            .is_err()
        {
            continue;
        }
        if let Some(id) = dirfile::parse(&buf) {
            if id != *main && !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

pub(crate) fn write_dir_id_file(dir: BorrowedFd<'_>, id: &Id) -> Result<()> {
    write_dir_id_file_with(dir, id, true)
}

/// `durable`: fsync the file before returning. Not needed where the xattr copy was just set:
/// that is journalled metadata, on disk no later than the rename that publishes the
/// directory, and `read_dir_id` restores the file from it after a crash.
fn write_dir_id_file_with(dir: BorrowedFd<'_>, id: &Id, durable: bool) -> Result<()> {
    let name = OsStr::new(dirfile::FILE_NAME);
    let _ = sys::unlinkat(dir, name, false);
    let fd = sys::openat(
        dir,
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        0o444,
    )?;
    let mut f = std::fs::File::from(fd);
    f.write_all(&dirfile::encode(id))?;
    if durable {
        f.sync_all()?;
    }
    Ok(())
}

/// Writes the long-name record for a hashed entry (before the entry itself exists).
pub(crate) fn write_long_record(dir: BorrowedFd<'_>, stored: &Stored) -> Result<()> {
    if let Stored::Long { hashed, full } = stored {
        let rec = names::long_record_name(hashed);
        let fd = sys::openat(
            dir,
            OsStr::new(&rec),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            0o444,
        )?;
        std::fs::File::from(fd).write_all(full.as_bytes())?;
    }
    Ok(())
}

/// Names in a backing directory that are tutela's own, never shown.
pub(super) fn is_internal(name: &[u8], in_root: bool) -> bool {
    name == dirfile::FILE_NAME.as_bytes()
        || (name.starts_with(b"~") && name.ends_with(names::LONG_SUFFIX.as_bytes()))
        || (name.starts_with(b".tutela.") && !name.starts_with(b"~"))
        // The vault's own files at the top: tutela.conf, tutela.policy, tutela.audit/ (no
        // encrypted name contains a '.', so these can never hide a user's entry).
        || (in_root && name.starts_with(b"tutela."))
}

impl Fs {
    /// Writes the long-name record for a hashed entry (before the entry itself exists).
    pub(super) fn write_long_record(&self, dir: &OwnedFd, stored: &Stored) -> Result<()> {
        write_long_record(dir.as_fd(), stored)
    }

    pub(super) fn remove_long_record(&self, dir: &OwnedFd, stored: &Stored) {
        if let Stored::Long { hashed, .. } = stored {
            let _ = sys::unlinkat(
                dir.as_fd(),
                OsStr::new(&names::long_record_name(hashed)),
                false,
            );
        }
    }

    pub(super) fn lookup_inner(&self, _who: &Subject, parent: u64, name: &OsStr) -> Result<Attr> {
        let (pzone, d) = self.dir_of(parent)?;
        let (dir, dir_id) = (d.fd, d.id);
        let top = self.child_zone(parent, name.as_bytes())?;
        let mut found = Err(Error::NotFound);
        for g in self.generations(pzone)? {
            let stored = self.zone(g)?.names.encrypt(&dir_id, name.as_bytes())?;
            let backing = stored.backing_name().to_string();
            // A zone's top has its own zone; anything else has its name's key generation.
            let zone = if self.zone(top)?.family != self.zone(pzone)?.family {
                top
            } else {
                g
            };
            match self.attr_at(&dir, OsStr::new(&backing), zone) {
                Err(Error::NotFound) => continue,
                other => {
                    found = other.map(|a| (a, backing, zone));
                    break;
                }
            }
        }
        if matches!(found, Err(Error::NotFound)) {
            'alts: for alt in self.alt_ids_of(parent) {
                for g in self.generations(pzone)? {
                    let stored = self.zone(g)?.names.encrypt(&alt, name.as_bytes())?;
                    let backing = stored.backing_name().to_string();
                    if let Ok(a) = self.attr_at(&dir, OsStr::new(&backing), g) {
                        found = Ok((a, backing, g));
                        break 'alts;
                    }
                }
            }
        }
        if matches!(found, Err(Error::NotFound)) {
            if let Some((backing, g)) =
                self.find_conflict(pzone, dir.as_fd(), &dir_id, name.as_bytes())?
            {
                found = self
                    .attr_at(&dir, &backing, g)
                    .map(|a| (a, backing.to_string_lossy().into_owned(), g));
            }
        }
        let (mut attr, backing, zone) = found?;
        let backing = OsStr::new(&backing);
        attr.generation = lock(&self.inodes).remember(
            attr.ino.0,
            parent,
            backing.to_os_string(),
            name.as_bytes().to_vec(),
            attr.kind,
            zone,
            true,
        );
        Ok(attr)
    }

    pub fn forget(&self, ino: Ino, n: u64) {
        lock(&self.inodes).forget(ino.0, n);
    }

    /// Lists directory `ino` from `cookie` (0: the start, else the `next` of an entry handed
    /// out before), giving each plaintext entry and the cookie after it to `emit` until it
    /// returns false. Stateless, so the kernel needs no OPENDIR/RELEASEDIR round trips, and
    /// the cookies are the backing filesystem's: a reader never skips or repeats an entry that
    /// stays while others change the directory. Undecryptable entries (stray files from sync
    /// tools, damage) are skipped with a warning that names only the backing name.
    pub(super) fn list_dir_at(
        &self,
        ino: u64,
        cookie: u64,
        mut emit: impl FnMut(DirEntryOut, u64) -> bool,
    ) -> Result<()> {
        let (zone, d) = self.dir_of(ino)?;
        let dir_id = d.id;
        // Read through the descriptor the ID came with: the same directory object.
        let fd = sys::openat(
            d.fd.as_fd(),
            OsStr::new("."),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )?;
        let parent_ino = if ino == ROOT_INO {
            ROOT_INO
        } else {
            lock(&self.inodes)
                .get(ino)
                .map(|n| n.parent)
                .unwrap_or(ROOT_INO)
        };
        let gens: Vec<usize> = self.generations(zone)?.collect();
        let alts = std::cell::OnceCell::new();
        let mut failed = None;
        sys::read_dir_from(fd.as_fd(), cookie, |e, next| {
            let b = e.name.as_bytes();
            let out = match b {
                b"." => Some(DirEntryOut {
                    ino: Ino(ino),
                    kind: Kind::Dir,
                    name: ".".into(),
                }),
                b".." => Some(DirEntryOut {
                    ino: Ino(parent_ino),
                    kind: Kind::Dir,
                    name: "..".into(),
                }),
                _ if is_internal(b, ino == ROOT_INO) => None,
                _ => match self.decrypt_entry(fd.as_fd(), (ino, &dir_id, &alts), &gens, &e) {
                    Ok(found) => found,
                    Err(err) => {
                        failed = Some(err);
                        return false;
                    }
                },
            };
            match out {
                Some(out) => emit(out, next),
                None => true,
            }
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// The plaintext entry for backing entry `e`, or None when it is skipped: undecryptable
    /// (warned), or under a retiring key while its re-encrypted twin exists (an interrupted
    /// rekey; the re-encrypted one wins). A sync tool's conflict copy of an entry is shown
    /// under a name that says so (`conflicts`).
    fn decrypt_entry(
        &self,
        dir: BorrowedFd<'_>,
        (ino, dir_id, alts): (u64, &Id, &std::cell::OnceCell<Vec<Id>>),
        gens: &[usize],
        e: &sys::DirEntry,
    ) -> Result<Option<DirEntryOut>> {
        let entry = |name: Vec<u8>| DirEntryOut {
            ino: Ino(self.fuse_ino(e.ino)),
            kind: Kind::from_dtype(e.dtype).unwrap_or(Kind::File),
            name: OsString::from_vec(name),
        };
        if let Ok(full) = full_encoded(dir, e.name.as_bytes()) {
            for (n, g) in gens.iter().enumerate() {
                let Ok(p) = self.zone(*g)?.names.decrypt(dir_id, &full) else {
                    continue;
                };
                if n > 0 {
                    let current = self.zone(gens[0])?.names.encrypt(dir_id, &p)?;
                    if sys::fstatat(dir, OsStr::new(current.backing_name())).is_ok() {
                        return Ok(None);
                    }
                }
                return Ok(Some(entry(p)));
            }
        }
        // Sealed under another ID of this directory (made on two machines, then synced):
        // looked for once per listing, and only when a name does not open.
        let alts = alts.get_or_init(|| {
            let mut a = self.alt_ids_of(ino);
            for id in alternate_dir_ids(dir, dir_id) {
                if !a.contains(&id) {
                    a.push(id);
                }
            }
            self.remember_alt_ids(ino, a.clone());
            a
        });
        if !alts.is_empty() {
            if let Ok(full) = full_encoded(dir, e.name.as_bytes()) {
                for alt in alts {
                    for g in gens {
                        if let Ok(p) = self.zone(*g)?.names.decrypt(alt, &full) {
                            return Ok(Some(entry(p)));
                        }
                    }
                }
            }
        }
        if let Some((shown, _)) = self.conflict_copy(dir, dir_id, gens, e.name.as_bytes())? {
            return Ok(Some(entry(shown)));
        }
        if conflicts::sync_tool_file(e.name.as_bytes()) {
            return Ok(None);
        }
        if self.note_stray(ino, &e.name) {
            log::warn!(
                "skipping backing entry {:?}: its name does not decrypt (stray file or damage; \
                 tutela fsck lists it)",
                e.name
            );
        }
        Ok(None)
    }

    /// When backing name `name` is a sync tool's conflict copy of an entry of this directory:
    /// the name to show it under, and the key generation of the entry it copies.
    fn conflict_copy(
        &self,
        dir: BorrowedFd<'_>,
        dir_id: &Id,
        gens: &[usize],
        name: &[u8],
    ) -> Result<Option<(Vec<u8>, usize)>> {
        let Ok(name) = std::str::from_utf8(name) else {
            return Ok(None);
        };
        for (base, decoration) in conflicts::candidates(name) {
            let Ok(full) = full_encoded(dir, base.as_bytes()) else {
                continue;
            };
            for g in gens {
                if let Ok(p) = self.zone(*g)?.names.decrypt(dir_id, &full) {
                    if let Some(shown) = conflicts::display(&p, &decoration) {
                        return Ok(Some((shown, *g)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The backing name of the conflict copy shown as `name` in directory `d`, and its key
    /// generation (a directory scan: only for names that look like one and are not an
    /// ordinary entry).
    pub(super) fn find_conflict(
        &self,
        zone: usize,
        dir: BorrowedFd<'_>,
        dir_id: &Id,
        name: &[u8],
    ) -> Result<Option<(std::ffi::OsString, usize)>> {
        if !conflicts::may_be_display(name) {
            return Ok(None);
        }
        let gens: Vec<usize> = self.generations(zone)?.collect();
        let fd = sys::openat(dir, OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        let mut found = None;
        let mut failed = None;
        sys::read_dir_from(fd.as_fd(), 0, |e, _| {
            let b = e.name.as_bytes();
            if b == b"." || b == b".." || is_internal(b, false) {
                return true;
            }
            match self.conflict_copy(fd.as_fd(), dir_id, &gens, b) {
                Ok(Some((shown, g))) if shown == name => {
                    found = Some((e.name.clone(), g));
                    false
                }
                Ok(_) => true,
                Err(err) => {
                    failed = Some(err);
                    false
                }
            }
        })?;
        failed.map_or(Ok(found), Err)
    }

    /// Every plaintext entry of a directory, "." and ".." included (see `list_dir_at`).
    pub(super) fn list_dir(&self, ino: u64) -> Result<Vec<DirEntryOut>> {
        let mut out = Vec::new();
        self.list_dir_at(ino, 0, |e, _| {
            out.push(e);
            true
        })?;
        Ok(out)
    }

    pub(super) fn mkdir_inner(
        &self,
        who: &Subject,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
    ) -> Result<Attr> {
        self.check_writable()?;
        let pd = self.dir_of(parent)?;
        let stored = self.seal_in(&pd, name)?;
        let dir = pd.1.fd;
        let (gid, sgid) = self.new_gid(&dir, who)?;
        let mode = (mode & !umask & 0o7777) | if sgid { libc::S_ISGID } else { 0 };
        // Build the directory under a temporary name with its ID inside, then rename it into
        // place: a crash never leaves a directory without an ID.
        let mut rnd = [0u8; 8];
        crate::crypto::random_bytes(&mut rnd)?;
        let tmp = OsString::from(format!(".tutela.tmp.{}", u64::from_le_bytes(rnd)));
        sys::mkdirat(dir.as_fd(), &tmp, 0o700)?;
        let result = (|| {
            let sub = sys::openat(dir.as_fd(), &tmp, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            let id = crate::crypto::random_id()?;
            let in_xattr =
                sys::fsetxattr(sub.as_fd(), dirfile::XATTR_NAME, &dirfile::encode(&id), 0).is_ok();
            write_dir_id_file_with(sub.as_fd(), &id, !in_xattr)?;
            sys::fchmodat(dir.as_fd(), &tmp, mode)?;
            self.give_to(&dir, &tmp, who, gid)?;
            self.write_long_record(&dir, &stored)?;
            sys::renameat2(
                dir.as_fd(),
                &tmp,
                dir.as_fd(),
                OsStr::new(stored.backing_name()),
                libc::RENAME_NOREPLACE,
            )?;
            Ok((id, sub))
        })();
        let (id, sub) = match result {
            Ok(made) => made,
            Err(e) => {
                let _ = sys::openat(dir.as_fd(), &tmp, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .and_then(|sub| {
                        sys::unlinkat(sub.as_fd(), OsStr::new(dirfile::FILE_NAME), false)
                    });
                let _ = sys::unlinkat(dir.as_fd(), &tmp, true);
                return Err(e);
            }
        };
        let attr = self.lookup_inner(who, parent, name)?;
        // Its children's names are sealed with this ID, kept with the descriptor of the
        // directory that holds it (no need to read it back), unless the name now stands for
        // another entry (replaced meanwhile).
        if self.fuse_ino(sys::fstat(sub.as_fd())?.st_ino) == attr.ino.0 {
            let d = DirRef {
                fd: std::sync::Arc::new(sub),
                id,
                gen: self.child_zone(parent, name.as_bytes())?,
            };
            let max = super::MAX_CACHED_DIR_FDS;
            lock(&self.inodes).cache_dir(attr.ino.0, attr.generation, &d, max);
        }
        Ok(attr)
    }

    pub(super) fn rmdir_inner(&self, _who: &Subject, parent: u64, name: &OsStr) -> Result<()> {
        self.check_writable()?;
        let pd = self.dir_of(parent)?;
        let stored = self.existing_in(parent, &pd, name)?;
        let dir = pd.1.fd;
        let bname = OsStr::new(stored.backing_name());
        let st = sys::fstatat(dir.as_fd(), bname)?;
        if Kind::from_mode(st.st_mode) != Kind::Dir {
            return Err(Error::NotDir);
        }
        self.remove_backing_dir(&dir, bname)?;
        self.remove_long_record(&dir, &stored);
        lock(&self.inodes).removed(self.fuse_ino(st.st_ino), parent, bname);
        Ok(())
    }

    /// Removes an (apparently) empty backing directory: only its ID file may remain.
    pub(super) fn remove_backing_dir(&self, dir: &OwnedFd, bname: &OsStr) -> Result<()> {
        let sub = sys::openat(dir.as_fd(), bname, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        if sys::read_dir(sub.as_fd())?
            .iter()
            .any(|e| e.name.as_bytes() != dirfile::FILE_NAME.as_bytes())
        {
            return Err(Error::NotEmpty);
        }
        let saved = read_dir_id(sub.as_fd(), false).ok();
        let _ = sys::unlinkat(sub.as_fd(), OsStr::new(dirfile::FILE_NAME), false);
        if let Err(e) = sys::unlinkat(dir.as_fd(), bname, true) {
            if let Some(id) = saved {
                let _ = write_dir_id_file(sub.as_fd(), &id);
            }
            return Err(e);
        }
        // A process may still hold the directory open and fstat it (xfstests 035): the node
        // keeps a descriptor of the removed directory until the kernel forgets it.
        if let Ok(st) = sys::fstat(sub.as_fd()) {
            lock(&self.inodes).keep_removed_dir(self.fuse_ino(st.st_ino), sub);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{new_fs, ME};
    use super::*;

    /// The same folder made on two machines before they synced: the sync tool merged the
    /// two backing directories, kept one `.tutela.dir` and renamed the other. Names sealed
    /// under the other ID still show, open, rename (adopted under the kept ID) and delete; on
    /// the machine whose ID file lost, its xattr copy names the other ID even before a listing.
    #[test]
    fn names_under_a_synced_directorys_other_id_stay_visible() {
        let (t, fs) = new_fs();
        let docs = fs
            .mkdir(&ME, Ino::ROOT, OsStr::new("docs"), 0o755, 0)
            .unwrap();
        let (_, fh) = fs
            .create(&ME, docs.ino, OsStr::new("a.txt"), 0o644, 0, libc::O_RDWR)
            .unwrap();
        fs.write(fh, 0, b"from the laptop", None).unwrap();
        fs.release(fh);
        let backing = std::fs::read_dir(t.path().join("vault"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.is_dir()
                    && !p
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("tutela.")
            })
            .unwrap();
        let a_backing = std::fs::read_dir(&backing)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .unwrap();
        // The other machine's ID, its conflict-renamed ID file, and a name sealed under it.
        let other: Id = [7; 16];
        std::fs::write(
            backing.join(".tutela.sync-conflict-20261204-101112-ABCDEF7.dir"),
            dirfile::encode(&other),
        )
        .unwrap();
        let b = fs.zone(0).unwrap().names.encrypt(&other, b"b.txt").unwrap();
        std::fs::copy(&a_backing, backing.join(b.backing_name())).unwrap();
        let names = |fs: &Fs| {
            let mut v: Vec<String> = fs
                .list_dir(docs.ino.0)
                .unwrap()
                .into_iter()
                .map(|e| e.name.to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&fs), [".", "..", "a.txt", "b.txt"]);
        let bt = fs.lookup(&ME, docs.ino, OsStr::new("b.txt")).unwrap();
        let fh = fs.open(&ME, bt.ino, libc::O_RDONLY).unwrap();
        assert_eq!(fs.read(fh, 0, 100).unwrap(), b"from the laptop");
        fs.release(fh);
        fs.rename(
            &ME,
            docs.ino,
            OsStr::new("b.txt"),
            docs.ino,
            OsStr::new("c.txt"),
            super::super::RenameFlags::default(),
        )
        .unwrap();
        assert_eq!(names(&fs), [".", "..", "a.txt", "c.txt"]);
        // On the machine whose ID file lost: the xattr copy keeps its own ID. A new mount
        // finds a name under it by lookup alone.
        let d = fs.zone(0).unwrap().names.encrypt(&other, b"d.txt").unwrap();
        std::fs::copy(&a_backing, backing.join(d.backing_name())).unwrap();
        drop(fs);
        let v = super::super::testutil::reopen(&t);
        std::fs::remove_file(backing.join(".tutela.sync-conflict-20261204-101112-ABCDEF7.dir"))
            .unwrap();
        let dir = std::fs::File::open(&backing).unwrap();
        sys::fsetxattr(
            dir.as_fd(),
            dirfile::XATTR_NAME,
            &dirfile::encode(&other),
            0,
        )
        .unwrap();
        let fs = Fs::new(&v, super::super::Options::default()).unwrap();
        let docs = fs.lookup(&ME, Ino::ROOT, OsStr::new("docs")).unwrap();
        assert!(fs.lookup(&ME, docs.ino, OsStr::new("d.txt")).is_ok());
        fs.unlink(&ME, docs.ino, OsStr::new("d.txt")).unwrap();
        assert!(fs.lookup(&ME, docs.ino, OsStr::new("d.txt")).is_err());
    }

    #[test]
    fn mkdir_lookup_list_rmdir() {
        let (_t, fs) = new_fs();
        let a = fs
            .mkdir(&ME, Ino::ROOT, OsStr::new("clients"), 0o755, 0o022)
            .unwrap();
        assert_eq!(a.kind, Kind::Dir);
        assert_eq!(a.perm, 0o755);
        let sub = fs.mkdir(&ME, a.ino, OsStr::new("acme"), 0o700, 0).unwrap();
        let l = fs.list_dir(a.ino.0).unwrap();
        assert!(l.iter().any(|e| e.name == "acme" && e.ino == sub.ino));
        assert!(matches!(
            fs.rmdir(&ME, Ino::ROOT, OsStr::new("clients")),
            Err(Error::NotEmpty)
        ));
        fs.rmdir(&ME, a.ino, OsStr::new("acme")).unwrap();
        fs.rmdir(&ME, Ino::ROOT, OsStr::new("clients")).unwrap();
        assert!(matches!(
            fs.lookup(&ME, Ino::ROOT, OsStr::new("clients")),
            Err(Error::NotFound)
        ));
    }

    #[test]
    fn lost_dir_id_file_is_restored_from_xattr() {
        let (t, fs) = new_fs();
        let a = fs.mkdir(&ME, Ino::ROOT, OsStr::new("d"), 0o755, 0).unwrap();
        fs.mkdir(&ME, a.ino, OsStr::new("inner"), 0o755, 0).unwrap();
        let vault = t.path().join("vault");
        let backing_dir = std::fs::read_dir(&vault)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.is_dir())
            .unwrap();
        if xattrs_unsupported(&backing_dir) {
            eprintln!("SKIP: backing filesystem has no user xattrs");
            return;
        }
        std::fs::remove_file(backing_dir.join(".tutela.dir")).unwrap();
        // A fresh Fs has no cached ID.
        let v = crate::vault::Vault::unlock(
            &vault,
            &crate::vault::Unlock::Passphrase(crate::crypto::secret::Passphrase::new(
                b"pw".to_vec(),
            )),
            None,
        )
        .unwrap();
        let fs2 = Fs::new(&v, Default::default()).unwrap();
        let d = fs2.lookup(&ME, Ino::ROOT, OsStr::new("d")).unwrap();
        assert!(fs2
            .list_dir(d.ino.0)
            .unwrap()
            .iter()
            .any(|e| e.name == "inner"));
        assert!(
            backing_dir.join(".tutela.dir").exists(),
            "the file copy is restored"
        );
    }

    /// The backing filesystem (ext4 here) hands a removed directory's inode number to the next
    /// new one; the kernel's FORGET of the old one may not have arrived yet (here: never).
    #[test]
    fn a_directory_given_a_removed_ones_number_seals_names_under_its_own_id() {
        let (t, fs) = new_fs();
        let mut reused = 0;
        for i in 0..200 {
            let a = fs.mkdir(&ME, Ino::ROOT, OsStr::new("a"), 0o755, 0).unwrap();
            fs.list_dir(a.ino.0).unwrap();
            fs.rmdir(&ME, Ino::ROOT, OsStr::new("a")).unwrap();
            let b = fs
                .mkdir(&ME, Ino::ROOT, OsStr::new(&format!("b{i}")), 0o755, 0)
                .unwrap();
            reused += usize::from(b.ino == a.ino);
            let (_, fh) = fs
                .create(&ME, b.ino, OsStr::new("f"), 0o644, 0, libc::O_RDWR)
                .unwrap();
            fs.write(fh, 0, b"x", None).unwrap();
            fs.release(fh);
        }
        eprintln!("inode numbers reused: {reused} of 200");
        let v = super::super::testutil::reopen(&t);
        let fresh = Fs::new(&v, Default::default()).unwrap();
        for i in 0..200 {
            let b = fresh
                .lookup(&ME, Ino::ROOT, OsStr::new(&format!("b{i}")))
                .unwrap();
            let names: Vec<OsString> = fresh
                .list_dir(b.ino.0)
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect();
            assert!(names.iter().any(|n| n == "f"), "b{i}/f is lost: {names:?}");
        }
    }

    fn xattrs_unsupported(p: &std::path::Path) -> bool {
        let fd = sys::open_dir(p).unwrap();
        sys::fgetxattr(fd.as_fd(), dirfile::XATTR_NAME).is_err()
    }
}
