//! Re-encrypting a zone under its new key, in place and resumably, on the backing
//! directory: offline (the caller holds the vault lock) or inside the mount daemon while
//! the mount serves reads and writes.
//!
//! A pass walks the zone top-down. Each directory is one step, taken with the request gate
//! held exclusively (no request is in flight): its xattrs are re-sealed and every child
//! still named under the retiring key is renamed to its current-key name (a symlink is
//! rebuilt, its target being sealed too). So the names in one directory are never mixed,
//! and the mount tells which key a directory's names use by looking at one of them. Each
//! regular file whose content is still under the retiring key is then converted in its own
//! step, in place, keeping its inode (open handles, hard links and inode numbers survive):
//! - the re-encrypted copy is built as `tutela.rekey/<ino>-<file id>.part` and renamed to
//!   `.new` when durable;
//! - the file is hard-linked as `.target` (so a crash leaves a way to it), the copy is
//!   written over it, its times and mode are put back, and both staging names go.
//!
//! A crash leaves every file whole under one key, or a `.new`/`.target` pair that is
//! written over again before anything else (`finish_copybacks`); a directory whose renames
//! were interrupted is finished by the next pass. Passes repeat until one finds nothing
//! left under the retiring key (files renamed into converted directories meanwhile
//! included), and only then may the caller destroy that key.

use super::dir::{full_encoded, is_internal, read_dir_id};
use super::inode::{Kind, ROOT_INO};
use super::{lock, Fs, Subject, Zone};
use crate::crypto::content::{self, FileCipher, BLOCK, CT_BLOCK, HEADER_LEN, OVERHEAD};
use crate::crypto::names;
use crate::crypto::{kdf, Id};
use crate::error::{Error, Result};
use crate::faults;
use crate::sys;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Where re-encrypted copies are built (at the vault's top, hidden like all `tutela.*`).
pub const STAGING: &str = "tutela.rekey";

#[derive(Debug, Default, Clone, Copy)]
pub struct RekeyStats {
    pub entries: u64,
    pub bytes: u64,
}

struct Walk<'a> {
    fs: &'a Fs,
    cur: Arc<Zone>,
    old: Arc<Zone>,
    family: usize,
    staging: OwnedFd,
    stats: RekeyStats,
    /// Entries converted in this pass (a pass that converts nothing ends the walk).
    converted: u64,
    tick: &'a mut dyn FnMut(RekeyStats),
}

/// A child found in a directory, for the steps after its names were converted.
struct Child {
    name: OsString,
    path: Vec<u8>,
    kind: Kind,
}

impl Fs {
    /// Re-encrypts whatever of zone `family` still uses its retiring key. Idempotent: run it
    /// again after an interruption and it carries on.
    pub fn rekey_zone(
        &self,
        family: usize,
        tick: &mut dyn FnMut(RekeyStats),
    ) -> Result<RekeyStats> {
        let cur = self.zone(family)?;
        let Some(old_idx) = cur.retiring else {
            return Ok(RekeyStats::default());
        };
        let old = self.zone(old_idx)?;
        let staging = self.open_staging()?;
        self.finish_copybacks(&staging)?;
        let mut w = Walk {
            fs: self,
            cur: cur.clone(),
            old,
            family,
            staging,
            stats: RekeyStats::default(),
            converted: 0,
            tick,
        };
        loop {
            w.converted = 0;
            // The zone's top directory (which may have been deleted: then nothing is left).
            let Some(top) = self.backing_dir_at(&cur.path)? else {
                break;
            };
            let id = if top.1 == ROOT_INO {
                self.dir_of(ROOT_INO)?.1.id
            } else {
                read_dir_id(top.0.as_fd(), true)?
            };
            w.pass(&top.0, id, cur.path.clone(), top.1 == ROOT_INO)?;
            if w.converted == 0 {
                break;
            }
        }
        // Every file is converted: what is left in staging belongs to nothing.
        for e in sys::read_dir(w.staging.as_fd())? {
            let _ = sys::unlinkat(w.staging.as_fd(), &e.name, false);
        }
        Ok(w.stats)
    }

    fn open_staging(&self) -> Result<OwnedFd> {
        match sys::mkdirat(self.root.as_fd(), OsStr::new(STAGING), 0o700) {
            Ok(()) | Err(Error::Exists) => {}
            Err(e) => return Err(e),
        }
        sys::openat(
            self.root.as_fd(),
            OsStr::new(STAGING),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
    }

    /// The readable backing directory at plaintext `path` and its inode number, walking
    /// the backing tree (names in any generation), or None if it is not there.
    fn backing_dir_at(&self, path: &[u8]) -> Result<Option<(OwnedFd, u64)>> {
        let me = Subject {
            uid: sys::getuid(),
            gid: sys::getgid(),
            pid: std::process::id(),
        };
        let mut ino = ROOT_INO;
        for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            match self.lookup_inner(&me, ino, OsStr::from_bytes(part)) {
                Ok(a) if a.kind == Kind::Dir => ino = a.ino.0,
                Ok(_) | Err(Error::NotFound) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some((
            self.open_ino(ino, libc::O_RDONLY | libc::O_DIRECTORY)?,
            ino,
        )))
    }

    /// Completes the in-place conversions a crash interrupted (a `.new` copy with its
    /// `.target` link), and drops staging names that lead nowhere.
    pub fn finish_copybacks(&self, staging: &OwnedFd) -> Result<()> {
        let names: Vec<OsString> = sys::read_dir(staging.as_fd())?
            .into_iter()
            .map(|e| e.name)
            .collect();
        for n in &names {
            if let Some(stem) = n.as_bytes().strip_suffix(b".new") {
                let target = OsString::from(OsStr::from_bytes(&[stem, b".target"].concat()));
                if names.contains(&target) {
                    copy_back(staging, OsStr::from_bytes(stem))?;
                }
            }
        }
        for n in &names {
            let b = n.as_bytes();
            if b.ends_with(b".new") || b.ends_with(b".part") || b.ends_with(b".target") {
                match sys::unlinkat(staging.as_fd(), n, false) {
                    Ok(()) | Err(Error::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// At mount: finishes in-place conversions a crash interrupted, if any.
    pub fn recover_rekey_staging(&self) -> Result<()> {
        match sys::openat(
            self.root.as_fd(),
            OsStr::new(STAGING),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(staging) => self.finish_copybacks(&staging),
            Err(Error::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes the staging directory once no zone is being rekeyed.
    pub fn rekey_cleanup(&self) -> Result<()> {
        match sys::unlinkat(self.root.as_fd(), OsStr::new(STAGING), true) {
            Ok(()) | Err(Error::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Writes staging `<stem>.new` over the file linked as `<stem>.target`, in place, then
/// removes both names. Restores the target's mode and times (the write changed them).
fn copy_back(staging: &OwnedFd, stem: &OsStr) -> Result<()> {
    let name = |suffix: &str| {
        let mut n = stem.to_os_string();
        n.push(suffix);
        n
    };
    let (new, target) = (name(".new"), name(".target"));
    let st = sys::fstatat(staging.as_fd(), &target)?;
    let src = sys::openat(staging.as_fd(), &new, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
    let dst = match sys::openat(
        staging.as_fd(),
        &target,
        libc::O_WRONLY | libc::O_NOFOLLOW,
        0,
    ) {
        // A read-only file of the daemon's own: made writable for the copy, mode restored.
        Err(Error::PermissionDenied) => {
            sys::fchmodat(staging.as_fd(), &target, (st.st_mode & 0o7777) | 0o200)?;
            sys::openat(
                staging.as_fd(),
                &target,
                libc::O_WRONLY | libc::O_NOFOLLOW,
                0,
            )?
        }
        other => other?,
    };
    let (s, d) = (
        std::fs::File::from(src.try_clone()?),
        std::fs::File::from(dst.try_clone()?),
    );
    let len = s.metadata()?.len();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < len {
        let n = ((len - off) as usize).min(buf.len());
        s.read_exact_at(&mut buf[..n], off)?;
        d.write_all_at(&buf[..n], off)?;
        off += n as u64;
    }
    d.set_len(len)?;
    faults::point("rekey-copied");
    // Writing may have cleared set-ID bits, and the content did not change for its reader.
    sys::fchmod(dst.as_fd(), st.st_mode & 0o7777)?;
    sys::futimens(
        dst.as_fd(),
        Some(Some((st.st_atime, st.st_atime_nsec))),
        Some(Some((st.st_mtime, st.st_mtime_nsec))),
    )?;
    sys::fsync(dst.as_fd(), false)?;
    sys::unlinkat(staging.as_fd(), &new, false)?;
    sys::unlinkat(staging.as_fd(), &target, false)?;
    Ok(())
}

fn child_path(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = parent.to_vec();
    if p != b"/" {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn ignore_eperm(r: Result<()>) -> Result<()> {
    match r {
        Err(Error::NotPermitted) => Ok(()),
        other => other,
    }
}

impl Walk<'_> {
    fn step(&mut self) {
        self.stats.entries += 1;
        self.converted += 1;
        (self.tick)(self.stats);
        faults::point("rekey-step");
    }

    /// Is `path` the top of another zone (its contents are that zone's business)?
    fn other_zone_top(&self, path: &[u8]) -> bool {
        self.fs
            .zones_now()
            .iter()
            .enumerate()
            .any(|(i, z)| z.family == i && i != self.family && !z.erased && z.path == path)
    }

    fn pass(&mut self, dir: &OwnedFd, dir_id: Id, path: Vec<u8>, is_root: bool) -> Result<()> {
        let children = self.convert_names(dir, &dir_id, &path, is_root)?;
        for c in children.iter().filter(|c| c.kind == Kind::File) {
            // Only this file waits meanwhile (see `convert_content`), not the mount.
            match self.convert_content(dir, &c.name) {
                Err(Error::NotFound) => {} // removed or renamed meanwhile: a later pass sees
                other => other?,
            }
        }
        for c in children.iter().filter(|c| c.kind == Kind::Dir) {
            if self.other_zone_top(&c.path) {
                continue;
            }
            let sub = match sys::openat(
                dir.as_fd(),
                &c.name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            ) {
                Ok(s) => s,
                Err(Error::NotFound) => continue,
                Err(e) => return Err(e),
            };
            let id = read_dir_id(sub.as_fd(), true)?;
            self.pass(&sub, id, c.path.clone(), false)?;
        }
        Ok(())
    }

    /// One step: the directory's xattrs and every child's name move to the current key.
    fn convert_names(
        &mut self,
        dir: &OwnedFd,
        dir_id: &Id,
        path: &[u8],
        is_root: bool,
    ) -> Result<Vec<Child>> {
        let mut children = Vec::new();
        let mut gone: Vec<(u64, Vec<u8>)> = Vec::new();
        {
            let _gate = self.fs.exclusive();
            let d_ino = self.fs.fuse_ino(sys::fstat(dir.as_fd())?.st_ino);
            if self.convert_xattrs(dir.as_fd())? {
                self.step();
            }
            for e in sys::read_dir(dir.as_fd())? {
                let b = e.name.as_bytes();
                if is_internal(b, is_root) {
                    continue;
                }
                let Ok(full) = full_encoded(dir.as_fd(), b) else {
                    log::warn!("rekey: skipping {:?}: damaged long-name record", e.name);
                    continue;
                };
                let st = match sys::fstatat(dir.as_fd(), &e.name) {
                    Ok(st) => st,
                    Err(Error::NotFound) => continue,
                    Err(err) => return Err(err),
                };
                let kind = Kind::from_mode(st.st_mode);
                if let Ok(p) = self.cur.names.decrypt(dir_id, &full) {
                    children.push(Child {
                        name: e.name.clone(),
                        path: child_path(path, &p),
                        kind,
                    });
                    continue;
                }
                let Ok(p) = self.old.names.decrypt(dir_id, &full) else {
                    log::warn!(
                        "rekey: skipping {:?}: name decrypts under neither key",
                        e.name
                    );
                    continue;
                };
                let new_name = self.rename_child(dir, d_ino, dir_id, &e.name, &p, &st)?;
                if kind == Kind::Symlink {
                    gone.push((d_ino, p.clone()));
                }
                if let Some(n) = new_name {
                    children.push(Child {
                        name: n,
                        path: child_path(path, &p),
                        kind,
                    });
                }
                self.step();
            }
            let mut t = lock(&self.fs.inodes);
            if d_ino == ROOT_INO {
                t.set_dir_gen(ROOT_INO, self.family);
            } else {
                t.uncache_dir(d_ino);
            }
        }
        // The kernel forgets replaced symlinks (outside the gate: it may wait on requests).
        for (parent, name) in gone {
            self.fs.entry_changed(parent, &name);
        }
        Ok(children)
    }

    /// Gives child `old_name` (plaintext `plain`) its current-key name; returns the new
    /// backing name, or None if an identical current-key twin already stood there (left by
    /// an older version's interrupted rekey) and the old name was dropped.
    fn rename_child(
        &mut self,
        dir: &OwnedFd,
        d_ino: u64,
        dir_id: &Id,
        old_name: &OsStr,
        plain: &[u8],
        st: &libc::stat,
    ) -> Result<Option<OsString>> {
        let stored = self.cur.names.encrypt(dir_id, plain)?;
        let new_name = OsString::from(stored.backing_name());
        self.fs.write_long_record(dir, &stored)?;
        let kind = Kind::from_mode(st.st_mode);
        if kind == Kind::Symlink {
            let raw = sys::readlinkat(dir.as_fd(), old_name)?;
            let target = match self.old.names.decrypt_symlink(&raw) {
                Ok(t) => t,
                Err(_) => self.cur.names.decrypt_symlink(&raw)?,
            };
            let sealed = self.cur.names.encrypt_symlink(&target)?;
            match sys::symlinkat(sealed.as_bytes(), dir.as_fd(), &new_name) {
                Ok(()) => {
                    ignore_eperm(sys::fchownat(
                        dir.as_fd(),
                        &new_name,
                        Some(st.st_uid),
                        Some(st.st_gid),
                    ))?;
                    sys::utimensat(
                        dir.as_fd(),
                        &new_name,
                        Some(Some((st.st_atime, st.st_atime_nsec))),
                        Some(Some((st.st_mtime, st.st_mtime_nsec))),
                    )?;
                }
                Err(Error::Exists) => {}
                Err(e) => return Err(e),
            }
            sys::unlinkat(dir.as_fd(), old_name, false)?;
            remove_old_record(dir, old_name);
            lock(&self.fs.inodes).removed(self.fs.fuse_ino(st.st_ino), d_ino, old_name);
            return Ok(None);
        }
        match sys::renameat2(
            dir.as_fd(),
            old_name,
            dir.as_fd(),
            &new_name,
            libc::RENAME_NOREPLACE,
        ) {
            Ok(()) => {}
            Err(Error::Exists) if kind != Kind::Dir => {
                sys::unlinkat(dir.as_fd(), old_name, false)?;
                remove_old_record(dir, old_name);
                lock(&self.fs.inodes).unlinked(self.fs.fuse_ino(st.st_ino), d_ino, old_name);
                return Ok(Some(new_name));
            }
            Err(e) => return Err(e),
        }
        remove_old_record(dir, old_name);
        lock(&self.fs.inodes).renamed(
            self.fs.fuse_ino(st.st_ino),
            (d_ino, old_name),
            d_ino,
            new_name.clone(),
            plain.to_vec(),
        );
        Ok(Some(new_name))
    }

    /// One step: a regular file's content and xattrs move to the current key, in place.
    /// The file's node (shared by every handle of it) is pinned and its content lock held
    /// for the step: reads and writes of this file wait, and an open in the meantime joins
    /// the same node; the rest of the mount is served.
    fn convert_content(&mut self, dir: &OwnedFd, name: &OsStr) -> Result<()> {
        let src = sys::openat(dir.as_fd(), name, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
        let st = sys::fstat(src.as_fd())?;
        if Kind::from_mode(st.st_mode) != Kind::File {
            return Ok(());
        }
        let ino = self.fs.fuse_ino(st.st_ino);
        let node = self.fs.pin_node(ino, self.family, &src)?;
        let r = {
            let mut content = node.content.write().unwrap_or_else(|p| p.into_inner());
            self.convert_pinned(dir, name, &src, &st, &mut content, &node)
        };
        self.fs.unpin_node(ino);
        r
    }

    fn convert_pinned(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        src: &OwnedFd,
        st: &libc::stat,
        content: &mut super::file::Content,
        node: &super::file::FileNode,
    ) -> Result<()> {
        let xattrs = self.convert_xattrs(src.as_fd())?;
        let s = std::fs::File::from(src.try_clone()?);
        // The size under the lock: writes before it are in.
        let len = sys::fstat(src.as_fd())?.st_size as u64;
        let mut hdr = [0u8; HEADER_LEN as usize];
        if len < HEADER_LEN {
            if xattrs {
                self.step();
            }
            return Ok(());
        }
        s.read_exact_at(&mut hdr, 0)?;
        let Ok(id) = content::decode_header(&hdr) else {
            log::warn!("rekey: skipping a file whose header does not parse (run tutela fsck)");
            return Ok(());
        };
        let old = FileCipher::new(&kdf::content_key(&self.old.key, &id), id);
        if !sealed_by(&s, &old, len)? {
            if xattrs {
                self.step();
            }
            return Ok(());
        }
        let stem: String = format!(
            "{}-{}",
            st.st_ino,
            id.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let sdir = self.staging.as_fd();
        let part = OsString::from(format!("{stem}.part"));
        let _ = sys::unlinkat(sdir, &part, false);
        let dst = sys::openat(
            sdir,
            &part,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o600,
        )?;
        let bytes = self.copy_content(src, &dst)?;
        sys::fsync(dst.as_fd(), false)?;
        let new = OsString::from(format!("{stem}.new"));
        sys::renameat2(sdir, &part, sdir, &new, 0)?;
        faults::point("rekey-built");
        let target = OsString::from(format!("{stem}.target"));
        match sys::linkat(dir.as_fd(), name, sdir, &target) {
            Ok(()) | Err(Error::Exists) => {}
            Err(e) => return Err(e),
        }
        // The name may have been renamed over meanwhile (only this file is held): the link
        // must be to the file converted, or nothing is written back now.
        if sys::fstatat(sdir, &target).map(|t| t.st_ino).ok() != Some(st.st_ino) {
            let _ = sys::unlinkat(sdir, &target, false);
            let _ = sys::unlinkat(sdir, &new, false);
            self.converted += 1; // look again in another pass
            return Ok(());
        }
        faults::point("rekey-linked");
        copy_back(&self.staging, OsStr::new(&stem))?;
        // Handles open on the file read and write on with the new key.
        *content = super::file::Content::Ready(Box::new(FileCipher::new(
            &kdf::content_key(&self.cur.key, &id),
            id,
        )));
        node.zone.store(self.family, Ordering::Relaxed);
        self.stats.bytes += bytes;
        self.step();
        Ok(())
    }

    /// Re-encrypts a file's blocks under the current zone key (same file ID, fresh key).
    /// Holes stay holes; a block that does not authenticate stops the rekey (run fsck).
    fn copy_content(&self, src: &OwnedFd, dst: &OwnedFd) -> Result<u64> {
        let (s, d) = (
            std::fs::File::from(src.try_clone()?),
            std::fs::File::from(dst.try_clone()?),
        );
        let len = s.metadata()?.len();
        if len == 0 {
            return Ok(0);
        }
        let mut hdr = [0u8; HEADER_LEN as usize];
        s.read_exact_at(&mut hdr, 0)?;
        let id = content::decode_header(&hdr)?;
        let old = FileCipher::new(&kdf::content_key(&self.old.key, &id), id);
        let new = FileCipher::new(&kdf::content_key(&self.cur.key, &id), id);
        d.write_all_at(&hdr, 0)?;
        let mut ct = vec![0u8; CT_BLOCK as usize];
        let mut plain = vec![0u8; BLOCK as usize];
        let mut blk = 0u64;
        loop {
            let off = content::block_offset(blk);
            if off >= len {
                break;
            }
            let n = ((len - off).min(CT_BLOCK)) as usize;
            s.read_exact_at(&mut ct[..n], off)?;
            if n as u64 <= OVERHEAD {
                return Err(Error::Corrupt {
                    what: "content block (truncated): run tutela fsck",
                });
            }
            if ct[..n].iter().any(|&b| b != 0) {
                let p = &mut plain[..n - OVERHEAD as usize];
                old.open_block(blk, &ct[..n], p)?;
                let mut out = vec![0u8; n];
                new.seal_block(blk, p, &mut out)?;
                d.write_all_at(&out, off)?;
            }
            blk += 1;
        }
        d.set_len(len)?;
        Ok(content::plain_size(len).unwrap_or(0))
    }

    /// Re-seals an entry's xattrs in place (the new one is set before the old one goes; a
    /// current-key xattr of the same name set meanwhile is newer and wins). Returns whether
    /// any changed.
    fn convert_xattrs(&self, fd: BorrowedFd<'_>) -> Result<bool> {
        let mut changed = false;
        for raw in sys::flistxattr(fd).unwrap_or_default() {
            let Ok(bname) = std::str::from_utf8(&raw) else {
                continue;
            };
            if let Some((name, value)) = self.reseal_xattr(fd, bname)? {
                match sys::fsetxattr(fd, &name, &value, libc::XATTR_CREATE) {
                    Ok(()) | Err(Error::Exists) => {}
                    Err(e) => return Err(e),
                }
                sys::fremovexattr(fd, bname)?;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// The current-key form of one backing xattr, if it is a user xattr under the old key.
    fn reseal_xattr(&self, fd: BorrowedFd<'_>, bname: &str) -> Result<Option<(String, Vec<u8>)>> {
        if !bname.starts_with(names::XATTR_PREFIX) {
            return Ok(None);
        }
        let Ok(plain_name) = self.old.names.decrypt_xattr_name(bname.as_bytes()) else {
            return Ok(None);
        };
        let sealed = sys::fgetxattr(fd, bname)?;
        let value = self.old.names.decrypt_xattr_value(bname, &sealed)?;
        let name = self.cur.names.encrypt_xattr_name(&plain_name)?;
        let value = self.cur.names.encrypt_xattr_value(&name, &value)?;
        Ok(Some((name, value)))
    }
}

/// Whether the file's content is sealed with `c`: its first block that is not a hole says.
fn sealed_by(f: &std::fs::File, c: &FileCipher, len: u64) -> Result<bool> {
    let mut ct = vec![0u8; CT_BLOCK as usize];
    let mut plain = vec![0u8; BLOCK as usize];
    let mut blk = 0u64;
    loop {
        let off = content::block_offset(blk);
        if off >= len {
            return Ok(false);
        }
        let n = ((len - off).min(CT_BLOCK)) as usize;
        f.read_exact_at(&mut ct[..n], off)?;
        if n as u64 > OVERHEAD && ct[..n].iter().any(|&b| b != 0) {
            return Ok(c
                .open_block(blk, &ct[..n], &mut plain[..n - OVERHEAD as usize])
                .is_ok());
        }
        blk += 1;
    }
}

fn remove_old_record(dir: &OwnedFd, old_name: &OsStr) {
    if let Some(hashed) = old_name
        .to_str()
        .filter(|n| n.starts_with(names::LONG_PREFIX))
    {
        let _ = sys::unlinkat(
            dir.as_fd(),
            OsStr::new(&names::long_record_name(hashed)),
            false,
        );
    }
}

impl Fs {
    /// Moves the backing directory of plaintext `path` out of the tree to `dest` (an absolute
    /// path on the same filesystem), with its long-name record if it has one. For shred.
    pub fn detach_dir(&self, who: &Subject, path: &str, dest: &std::path::Path) -> Result<()> {
        let mut ino = ROOT_INO;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            ino = self.lookup_inner(who, ino, OsStr::new(part))?.ino.0;
        }
        let (parent, name) = self.parent_of(ino)?;
        let parent_ino = lock(&self.inodes).get(ino).map_or(ROOT_INO, |n| n.parent);
        let dest_dir = sys::open_dir(dest.parent().ok_or(Error::Invalid)?)?;
        let dest_name = dest.file_name().ok_or(Error::Invalid)?;
        sys::renameat2(parent.as_fd(), &name, dest_dir.as_fd(), dest_name, 0)?;
        remove_old_record(&parent, &name);
        // Nothing cached for it is used again (a live shred).
        lock(&self.inodes).removed(ino, parent_ino, &name);
        Ok(())
    }
}
