//! Attributes: stat of the backing entry with sizes converted to plaintext; setattr
//! (chmod, chown, truncate, utimens); statfs; readlink.

use super::inode::{Kind, ROOT_INO};
use super::Ino;
use super::{Fs, Subject};
use crate::crypto::content;
use crate::error::{Error, Result};
use crate::sys::{self, TimeSpec};
use std::os::fd::AsFd;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    /// The entry's FUSE generation where it was just looked up or made (0 elsewhere: only
    /// entry replies carry it).
    pub generation: u64,
    pub size: u64,
    pub blocks: u64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
    pub kind: Kind,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: TimeSpec,
    pub mtime: TimeSpec,
    /// A truncate by a process that may not keep set-ID bits (see `file::drop_suid`).
    pub kill_suid: Option<super::Subject>,
}

#[derive(Debug, Clone, Copy)]
pub struct Statfs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}

impl Fs {
    /// Converts a backing stat into plaintext attributes. `symlink_len` is the plaintext
    /// target length for symlinks (the caller decrypts).
    pub(super) fn to_attr(&self, st: &libc::stat, symlink_len: Option<u64>) -> Attr {
        let kind = Kind::from_mode(st.st_mode);
        let size = match kind {
            // A damaged size (no valid file has it) shows as the largest plausible one, and
            // the read of the damaged tail fails with EIO.
            Kind::File => content::plain_size(st.st_size as u64).unwrap_or_else(|| {
                content::plain_size(
                    st.st_size as u64 / content::CT_BLOCK * content::CT_BLOCK + content::HEADER_LEN,
                )
                .unwrap_or(0)
            }),
            Kind::Symlink => symlink_len.unwrap_or(st.st_size as u64),
            _ => st.st_size as u64,
        };
        Attr {
            ino: Ino(self.fuse_ino(st.st_ino)),
            generation: 0,
            size,
            blocks: st.st_blocks as u64,
            atime: (st.st_atime, st.st_atime_nsec),
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
            kind,
            perm: (st.st_mode & 0o7777) as u16,
            nlink: st.st_nlink as u32,
            uid: st.st_uid,
            gid: st.st_gid,
            rdev: st.st_rdev as u32,
            blksize: content::BLOCK as u32,
        }
    }

    /// Attributes of an entry in an already-open parent directory.
    pub(super) fn attr_at(
        &self,
        dir: &std::os::fd::OwnedFd,
        name: &std::ffi::OsStr,
        zone: usize,
    ) -> Result<Attr> {
        let st = sys::fstatat(dir.as_fd(), name)?;
        let link_len = if Kind::from_mode(st.st_mode) == Kind::Symlink {
            let raw = sys::readlinkat(dir.as_fd(), name)?;
            self.open_symlink(zone, &raw).ok().map(|t| t.len() as u64)
        } else {
            None
        };
        Ok(self.to_attr(&st, link_len))
    }

    /// The kept descriptor of directory `ino` if it was removed (see `keep_removed_dir`).
    fn removed_dir_fd(&self, ino: u64) -> Option<std::sync::Arc<std::os::fd::OwnedFd>> {
        let t = super::lock(&self.inodes);
        let n = t.get(ino)?;
        (n.kind == Kind::Dir && n.life == super::inode::Life::Removed)
            .then(|| n.dir.as_ref().map(|d| d.fd.clone()))
            .flatten()
    }

    pub(super) fn getattr_inner(&self, ino: u64, fh: Option<u64>) -> Result<Attr> {
        if let Some(fh) = fh {
            if let Some(h) = self.files.handle(fh) {
                let st = sys::fstat(h.fd.as_fd())?;
                return Ok(self.to_attr(&st, None));
            }
        }
        if ino == ROOT_INO {
            let mut a = self.to_attr(&sys::fstat(self.root.as_fd())?, None);
            if let Some(m) = self.root_mode() {
                a.perm = m as u16;
            }
            return Ok(a);
        }
        let by_name = self.parent_of(ino).and_then(|(dir, name)| {
            let zone = self.node_info(ino)?.2;
            self.attr_at(&dir, &name, zone)
        });
        match by_name {
            Ok(a) if a.ino.0 == ino => Ok(a),
            // Unlinked while open (fstat of an open, deleted file), or the name now points at
            // another backing inode (replaced behind our back): an open handle still knows it.
            other => match self.files.any_handle_of(ino) {
                Some(h) => Ok(self.to_attr(&sys::fstat(h.fd.as_fd())?, None)),
                // A directory removed while open still has its descriptor.
                None => match self.removed_dir_fd(ino) {
                    Some(fd) => Ok(self.to_attr(&sys::fstat(fd.as_fd())?, None)),
                    None => Err(other.err().unwrap_or(Error::Stale)),
                },
            },
        }
    }

    pub(super) fn setattr_inner(
        &self,
        _who: &Subject,
        ino: u64,
        set: &SetAttr,
        fh: Option<u64>,
    ) -> Result<Attr> {
        self.check_writable()?;
        if let Some(size) = set.size {
            self.truncate(ino, fh, size)?;
        }
        let changes_more = set.mode.is_some()
            || set.uid.is_some()
            || set.gid.is_some()
            || set.atime.is_some()
            || set.mtime.is_some()
            || (set.kill_suid.is_some() && set.size.is_some());
        if changes_more {
            let target = self.setattr_target(ino)?;
            if let Some(mode) = set.mode {
                if !(ino == ROOT_INO && self.set_root_mode(mode)?) {
                    target.chmod(mode & 0o7777)?;
                }
            } else if let (Some(who), Some(_)) = (&set.kill_suid, set.size) {
                let st = target.stat()?;
                if st.st_mode & libc::S_IFMT == libc::S_IFREG {
                    if let Some(m) =
                        super::file::without_suid(st.st_mode, || self.in_group(who, st.st_gid))
                    {
                        target.chmod(m)?;
                    }
                }
            }
            if set.uid.is_some() || set.gid.is_some() {
                target.chown(set.uid, set.gid)?;
            }
            if set.atime.is_some() || set.mtime.is_some() {
                target.utimens(set.atime, set.mtime)?;
            }
        }
        self.getattr_inner(ino, fh)
    }

    /// What a setattr changes: the entry by name, or, for a file whose name is gone while it
    /// is open (fchmod of an unlinked file), the open file itself.
    fn setattr_target(&self, ino: u64) -> Result<Target> {
        if ino == ROOT_INO {
            let fd =
                sys::open_beneath(self.root.as_fd(), b"", libc::O_PATH | libc::O_DIRECTORY, 0)?;
            return Ok(Target::At(std::sync::Arc::new(fd), ".".into()));
        }
        match self.parent_of(ino) {
            Ok((dir, name)) => Ok(Target::At(dir, name)),
            Err(e @ (Error::NotFound | Error::Stale)) => match self.files.any_handle_of(ino) {
                Some(h) => Ok(Target::Open(h)),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    pub(super) fn access_inner(&self, ino: u64, mask: i32) -> Result<()> {
        if mask == libc::F_OK {
            return self.node_info(ino).map(|_| ());
        }
        if mask & libc::W_OK != 0 {
            self.check_writable()?;
        }
        if ino == ROOT_INO {
            return sys::faccessat(self.root.as_fd(), std::ffi::OsStr::new("."), mask);
        }
        let (dir, name) = self.parent_of(ino)?;
        sys::faccessat(dir.as_fd(), &name, mask)
    }

    /// A symlink's target, under whichever key generation of its zone sealed it.
    fn open_symlink(&self, zone: usize, raw: &[u8]) -> Result<Vec<u8>> {
        let mut last = Err(Error::Invalid);
        for g in self.generations(zone)? {
            last = self.zone(g)?.names.decrypt_symlink(raw);
            if last.is_ok() {
                break;
            }
        }
        last
    }

    pub(super) fn readlink_inner(&self, ino: u64) -> Result<Vec<u8>> {
        let (dir, name) = self.parent_of(ino)?;
        let zone = self.node_info(ino)?.2;
        let raw = sys::readlinkat(dir.as_fd(), &name)?;
        self.open_symlink(zone, &raw).inspect_err(|_| {
            log::warn!("inode {ino}: symlink target does not authenticate");
        })
    }

    /// The backing filesystem's numbers, with its block counts scaled to what they hold as
    /// plaintext: every 4096 bytes of content take a 4124-byte block on disk, so `df` and a
    /// program that fills "the free space" (xfstests generic/103) see what fits.
    pub fn statfs(&self) -> Result<Statfs> {
        let s = sys::fstatvfs(self.root.as_fd())?;
        let plain = |n: u64| {
            (u128::from(n) * u128::from(content::BLOCK) / u128::from(content::CT_BLOCK)) as u64
        };
        Ok(Statfs {
            blocks: plain(s.f_blocks),
            bfree: plain(s.f_bfree),
            bavail: plain(s.f_bavail),
            files: s.f_files,
            ffree: s.f_ffree,
            bsize: s.f_bsize as u32,
            namelen: crate::crypto::names::NAME_MAX as u32,
            frsize: s.f_frsize as u32,
        })
    }
}

/// The object a setattr changes (see `Fs::setattr_target`).
enum Target {
    At(std::sync::Arc<std::os::fd::OwnedFd>, std::ffi::OsString),
    Open(std::sync::Arc<super::file::Handle>),
}

impl Target {
    fn stat(&self) -> Result<libc::stat> {
        match self {
            Target::At(dir, name) => sys::fstatat(dir.as_fd(), name),
            Target::Open(h) => sys::fstat(h.fd.as_fd()),
        }
    }

    fn chmod(&self, mode: u32) -> Result<()> {
        match self {
            Target::At(dir, name) => sys::fchmodat(dir.as_fd(), name, mode),
            Target::Open(h) => sys::fchmod(h.fd.as_fd(), mode),
        }
    }

    fn chown(&self, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
        match self {
            Target::At(dir, name) => sys::fchownat(dir.as_fd(), name, uid, gid),
            Target::Open(h) => sys::fchown(
                h.fd.as_fd(),
                uid.unwrap_or(u32::MAX),
                gid.unwrap_or(u32::MAX),
            ),
        }
    }

    fn utimens(&self, atime: sys::TimeSpec, mtime: sys::TimeSpec) -> Result<()> {
        match self {
            Target::At(dir, name) => sys::utimensat(dir.as_fd(), name, atime, mtime),
            Target::Open(h) => sys::futimens(h.fd.as_fd(), atime, mtime),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::new_fs;
    use std::os::fd::AsFd;

    /// `df` on a mount shows what fits as plaintext (a 4096-byte block takes 4124 on disk).
    #[test]
    fn statfs_counts_what_fits_as_plaintext() {
        let (_t, fs) = new_fs();
        let s = fs.statfs().unwrap();
        let backing = crate::sys::fstatvfs(fs.root.as_fd()).unwrap();
        assert_eq!(s.blocks, backing.f_blocks * 4096 / 4124);
        assert!(s.bavail <= backing.f_bavail);
    }
}
