//! Re-encrypting a zone under its new key, in place and resumably. Works on the backing
//! directory while the vault is not mounted (the caller holds the vault lock).
//!
//! Every entry still named under the retiring key is replaced by one under the current key:
//! - a directory keeps its inode; its xattrs are re-sealed, then it is renamed (atomic);
//! - anything else is rebuilt as a new inode in `tutela.rekey/<old inode>.part`, completed
//!   by a rename to `tutela.rekey/<old inode>`, hard-linked under its new name, and only then
//!   is the old name removed. Further hard links of the same old inode link to the same new
//!   one, so links survive.
//!
//! A crash at any point leaves each entry under its old name, its new name, or (for a
//! moment) both with identical contents; the mount reads either (the new one wins), and
//! running the walk again finishes the job. Nothing is deleted before its replacement is
//! durable.

use super::dir::{full_encoded, is_internal, read_dir_id};
use super::inode::{Kind, ROOT_INO};
use super::{Fs, Subject, Zone};
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

/// Where replacement inodes are built (at the vault's top, hidden like all `tutela.*`).
pub const STAGING: &str = "tutela.rekey";

#[derive(Debug, Default, Clone, Copy)]
pub struct RekeyStats {
    pub entries: u64,
    pub bytes: u64,
}

struct Walk<'a> {
    fs: &'a Fs,
    cur: &'a Zone,
    old: &'a Zone,
    family: usize,
    staging: OwnedFd,
    stats: RekeyStats,
    tick: &'a mut dyn FnMut(RekeyStats),
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
        let me = Subject {
            uid: sys::getuid(),
            gid: sys::getgid(),
            pid: std::process::id(),
        };
        // The zone's top directory (which may have been deleted: then nothing is left to do).
        let mut ino = ROOT_INO;
        for part in cur.path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            match self.lookup_inner(&me, ino, OsStr::from_bytes(part)) {
                Ok(a) if a.kind == Kind::Dir => ino = a.ino,
                Ok(_) | Err(Error::NotFound) => return Ok(RekeyStats::default()),
                Err(e) => return Err(e),
            }
        }
        let top = self.open_ino(ino, libc::O_RDONLY | libc::O_DIRECTORY)?;
        match sys::mkdirat(self.root.as_fd(), OsStr::new(STAGING), 0o700) {
            Ok(()) | Err(Error::Exists) => {}
            Err(e) => return Err(e),
        }
        let staging = sys::openat(
            self.root.as_fd(),
            OsStr::new(STAGING),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
        let mut w = Walk {
            fs: self,
            cur,
            old,
            family,
            staging,
            stats: RekeyStats::default(),
            tick,
        };
        w.convert_xattrs(top.as_fd())?;
        // The root's directory ID lives in the config, every other one in its directory.
        let top_id = self.dir_of(ino)?.1.id;
        w.walk(&top, top_id, cur.path.clone(), ino == ROOT_INO)?;
        // Every old inode has been replaced: the staging links are no longer needed.
        for e in sys::read_dir(w.staging.as_fd())? {
            sys::unlinkat(w.staging.as_fd(), &e.name, false)?;
        }
        Ok(w.stats)
    }

    /// Removes the staging directory once no zone is being rekeyed.
    pub fn rekey_cleanup(&self) -> Result<()> {
        match sys::unlinkat(self.root.as_fd(), OsStr::new(STAGING), true) {
            Ok(()) | Err(Error::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
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
        (self.tick)(self.stats);
        faults::point("rekey-step");
    }

    /// Is `path` the top of another zone (its contents are that zone's business)?
    fn other_zone_top(&self, path: &[u8]) -> bool {
        self.fs
            .zones
            .iter()
            .any(|z| z.family != self.family && z.path == path)
    }

    fn walk(&mut self, dir: &OwnedFd, dir_id: Id, path: Vec<u8>, is_root: bool) -> Result<()> {
        for e in sys::read_dir(dir.as_fd())? {
            let b = e.name.as_bytes();
            if is_internal(b, is_root) {
                continue;
            }
            let Ok(full) = full_encoded(dir.as_fd(), b) else {
                log::warn!("rekey: skipping {:?}: damaged long-name record", e.name);
                continue;
            };
            if let Ok(p) = self.cur.names.decrypt(&dir_id, &full) {
                let cp = child_path(&path, &p);
                let st = sys::fstatat(dir.as_fd(), &e.name)?;
                if Kind::from_mode(st.st_mode) == Kind::Dir && !self.other_zone_top(&cp) {
                    let sub = sys::openat(
                        dir.as_fd(),
                        &e.name,
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        0,
                    )?;
                    let id = read_dir_id(sub.as_fd(), true)?;
                    self.walk(&sub, id, cp, false)?;
                }
                continue;
            }
            match self.old.names.decrypt(&dir_id, &full) {
                Ok(p) => self.convert(dir, &dir_id, &e.name, &p, &path)?,
                Err(_) => log::warn!(
                    "rekey: skipping {:?}: name decrypts under neither key",
                    e.name
                ),
            }
        }
        Ok(())
    }

    fn convert(
        &mut self,
        dir: &OwnedFd,
        dir_id: &Id,
        old_name: &OsStr,
        plain: &[u8],
        parent_path: &[u8],
    ) -> Result<()> {
        let st = sys::fstatat(dir.as_fd(), old_name)?;
        let kind = Kind::from_mode(st.st_mode);
        let stored = self.cur.names.encrypt(dir_id, plain)?;
        let new_name = OsString::from(stored.backing_name());
        let cp = child_path(parent_path, plain);
        self.fs.write_long_record(dir, &stored)?;
        if kind == Kind::Dir {
            let nested = self.other_zone_top(&cp);
            if !nested {
                let sub = sys::openat(
                    dir.as_fd(),
                    old_name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )?;
                self.convert_xattrs(sub.as_fd())?;
            }
            sys::renameat2(
                dir.as_fd(),
                old_name,
                dir.as_fd(),
                &new_name,
                libc::RENAME_NOREPLACE,
            )?;
            remove_old_record(dir, old_name);
            self.step();
            if !nested {
                let sub = sys::openat(
                    dir.as_fd(),
                    &new_name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )?;
                let id = read_dir_id(sub.as_fd(), true)?;
                self.walk(&sub, id, cp, false)?;
            }
            return Ok(());
        }
        let built = OsString::from(st.st_ino.to_string());
        if sys::fstatat(self.staging.as_fd(), &built).is_err() {
            self.build(dir, old_name, &st, kind)?;
        }
        match sys::linkat(self.staging.as_fd(), &built, dir.as_fd(), &new_name) {
            Ok(()) | Err(Error::Exists) => {}
            Err(e) => return Err(e),
        }
        faults::point("rekey-linked");
        sys::unlinkat(dir.as_fd(), old_name, false)?;
        remove_old_record(dir, old_name);
        if st.st_nlink <= 1 {
            sys::unlinkat(self.staging.as_fd(), &built, false)?;
        }
        self.step();
        Ok(())
    }

    /// Builds the re-encrypted replacement of a non-directory in the staging directory.
    fn build(
        &mut self,
        dir: &OwnedFd,
        old_name: &OsStr,
        st: &libc::stat,
        kind: Kind,
    ) -> Result<()> {
        let mut bytes = 0;
        let sdir = self.staging.as_fd();
        let part = OsString::from(format!("{}.part", st.st_ino));
        let _ = sys::unlinkat(sdir, &part, false);
        match kind {
            Kind::File => {
                let src = sys::openat(dir.as_fd(), old_name, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
                let dst = sys::openat(
                    sdir,
                    &part,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    st.st_mode & 0o7777,
                )?;
                let n = self.copy_content(&src, &dst)?;
                bytes += n;
                self.copy_xattrs(src.as_fd(), dst.as_fd())?;
                sys::fsync(dst.as_fd(), false)?;
            }
            Kind::Symlink => {
                let raw = sys::readlinkat(dir.as_fd(), old_name)?;
                let target = self.old.names.decrypt_symlink(&raw)?;
                let sealed = self.cur.names.encrypt_symlink(&target)?;
                sys::symlinkat(sealed.as_bytes(), sdir, &part)?;
            }
            _ => sys::mknodat(sdir, &part, st.st_mode, st.st_rdev)?,
        }
        ignore_eperm(sys::fchownat(sdir, &part, Some(st.st_uid), Some(st.st_gid)))?;
        if kind != Kind::Symlink {
            // chown clears set-id bits; put the mode back.
            let _ = sys::fchmodat(sdir, &part, st.st_mode & 0o7777);
        }
        sys::utimensat(
            sdir,
            &part,
            Some(Some((st.st_atime, st.st_atime_nsec))),
            Some(Some((st.st_mtime, st.st_mtime_nsec))),
        )?;
        faults::point("rekey-built");
        let done = OsString::from(st.st_ino.to_string());
        sys::renameat2(sdir, &part, sdir, &done, 0)?;
        self.stats.bytes += bytes;
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

    fn copy_xattrs(&self, src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<()> {
        for raw in sys::flistxattr(src).unwrap_or_default() {
            let Ok(bname) = std::str::from_utf8(&raw) else {
                continue;
            };
            if let Some((name, value)) = self.reseal_xattr(src, bname)? {
                sys::fsetxattr(dst, &name, &value, 0)?;
            }
        }
        Ok(())
    }

    /// Re-seals a directory's xattrs in place (new one set before the old one goes).
    fn convert_xattrs(&self, fd: BorrowedFd<'_>) -> Result<()> {
        for raw in sys::flistxattr(fd).unwrap_or_default() {
            let Ok(bname) = std::str::from_utf8(&raw) else {
                continue;
            };
            if let Some((name, value)) = self.reseal_xattr(fd, bname)? {
                sys::fsetxattr(fd, &name, &value, 0)?;
                sys::fremovexattr(fd, bname)?;
            }
        }
        Ok(())
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
            ino = self.lookup_inner(who, ino, OsStr::new(part))?.ino;
        }
        let (parent, name) = self.parent_of(ino)?;
        let dest_dir = sys::open_dir(dest.parent().ok_or(Error::Invalid)?)?;
        let dest_name = dest.file_name().ok_or(Error::Invalid)?;
        sys::renameat2(parent.as_fd(), &name, dest_dir.as_fd(), dest_name, 0)?;
        remove_old_record(&parent, &name);
        Ok(())
    }
}
