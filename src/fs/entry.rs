//! Name operations that are not about directories' own contents: mknod, symlink, link,
//! unlink, rename.

use super::inode::{InodeTable, Kind};
use super::{lock, Attr, Fs, Subject};
use crate::error::{Error, Result};
use crate::sys;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

#[derive(Debug, Clone, Copy, Default)]
pub struct RenameFlags {
    pub noreplace: bool,
    pub exchange: bool,
}

impl Fs {
    /// Records in the inode table that the name (`parent`, `bname`) of the backing entry
    /// `st` (as it was before) was removed.
    fn name_gone(&self, st: &libc::stat, parent: u64, bname: &OsStr) {
        let mut t = lock(&self.inodes);
        Self::name_gone_in(&mut t, self.fuse_ino(st.st_ino), st, parent, bname);
    }

    fn name_gone_in(t: &mut InodeTable, ino: u64, st: &libc::stat, parent: u64, bname: &OsStr) {
        if Kind::from_mode(st.st_mode) != Kind::Dir && st.st_nlink > 1 {
            t.unlinked(ino, parent, bname);
        } else {
            t.removed(ino, parent, bname);
        }
    }

    pub(super) fn mknod_inner(
        &self,
        who: &Subject,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
    ) -> Result<Attr> {
        self.check_writable()?;
        let pd = self.dir_of(parent)?;
        let stored = self.seal_in(&pd, name)?;
        let dir = pd.1.fd;
        let (gid, _) = self.new_gid(&dir, who)?;
        let bname = OsStr::new(stored.backing_name());
        let fmt = mode & libc::S_IFMT;
        self.write_long_record(&dir, &stored)?;
        let made = if fmt == libc::S_IFREG || fmt == 0 {
            sys::openat(
                dir.as_fd(),
                bname,
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                mode & !umask & 0o7777,
            )
            .map(drop)
        } else {
            sys::mknodat(
                dir.as_fd(),
                bname,
                fmt | (mode & !umask & 0o7777),
                rdev as u64,
            )
        };
        if let Err(e) = made {
            if !matches!(e, Error::Exists) {
                self.remove_long_record(&dir, &stored);
            }
            return Err(e);
        }
        self.give_to(&dir, bname, who, gid)?;
        let requested = mode & !umask & 0o7777;
        let keep = self.kept_set_id(who, gid, requested);
        if self.opts.chown_new && keep != 0 {
            sys::fchmodat(dir.as_fd(), bname, (requested & 0o777) | keep)?;
        }
        self.lookup_inner(who, parent, name)
    }

    pub(super) fn symlink_inner(
        &self,
        who: &Subject,
        parent: u64,
        name: &OsStr,
        target: &[u8],
    ) -> Result<Attr> {
        self.check_writable()?;
        if target.is_empty() {
            return Err(Error::NotFound);
        }
        let pd = self.dir_of(parent)?;
        let stored = self.seal_in(&pd, name)?;
        // The target is sealed with the key generation of the name (they move together in
        // a rekey), unless the link would be a zone's top.
        let zone = self.child_zone(parent, name.as_bytes())?;
        let gen = if self.zone(pd.1.gen)?.family == zone {
            pd.1.gen
        } else {
            zone
        };
        let enc = self.zone(gen)?.names.encrypt_symlink(target)?;
        if enc.len() >= libc::PATH_MAX as usize {
            return Err(Error::NameTooLong);
        }
        let dir = pd.1.fd;
        let (gid, _) = self.new_gid(&dir, who)?;
        let bname = OsStr::new(stored.backing_name());
        self.write_long_record(&dir, &stored)?;
        if let Err(e) = sys::symlinkat(enc.as_bytes(), dir.as_fd(), bname) {
            if !matches!(e, Error::Exists) {
                self.remove_long_record(&dir, &stored);
            }
            return Err(e);
        }
        self.give_to(&dir, bname, who, gid)?;
        self.lookup_inner(who, parent, name)
    }

    pub(super) fn link_inner(
        &self,
        who: &Subject,
        ino: u64,
        newparent: u64,
        newname: &OsStr,
    ) -> Result<Attr> {
        self.check_writable()?;
        let (src_dir, src_name) = self.parent_of(ino)?;
        let (_, kind, zone) = self.node_info(ino)?;
        if kind == Kind::Dir {
            return Err(Error::NotPermitted);
        }
        if self.child_zone(newparent, newname.as_bytes())? != self.zone(zone)?.family {
            return Err(Error::CrossDevice);
        }
        let pd = self.dir_of(newparent)?;
        let stored = self.seal_in(&pd, newname)?;
        let dir = pd.1.fd;
        self.write_long_record(&dir, &stored)?;
        if let Err(e) = sys::linkat(
            src_dir.as_fd(),
            &src_name,
            dir.as_fd(),
            OsStr::new(stored.backing_name()),
        ) {
            if !matches!(e, Error::Exists) {
                self.remove_long_record(&dir, &stored);
            }
            return Err(e);
        }
        self.lookup_inner(who, newparent, newname)
    }

    pub(super) fn unlink_inner(&self, _who: &Subject, parent: u64, name: &OsStr) -> Result<()> {
        self.check_writable()?;
        let pd = self.dir_of(parent)?;
        let stored = self.existing_in(parent, &pd, name)?;
        let dir = pd.1.fd;
        let bname = OsStr::new(stored.backing_name());
        let st = sys::fstatat(dir.as_fd(), bname)?;
        if Kind::from_mode(st.st_mode) == Kind::Dir {
            return Err(Error::IsDir);
        }
        sys::unlinkat(dir.as_fd(), bname, false)?;
        self.remove_long_record(&dir, &stored);
        self.name_gone(&st, parent, bname);
        Ok(())
    }

    pub(super) fn rename_inner(
        &self,
        _who: &Subject,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        self.check_writable()?;
        let from_d = self.dir_of(parent)?;
        let to_d = self.dir_of(newparent)?;
        let from = self.existing_in(parent, &from_d, name)?;
        let to = self.seal_in(&to_d, newname)?;
        let from_zone = self.child_zone(parent, name.as_bytes())?;
        let to_zone = self.child_zone(newparent, newname.as_bytes())?;
        let (from_parent_zone, to_parent_zone) =
            (self.zone(from_d.0)?.family, self.zone(to_d.0)?.family);
        // A file belongs to exactly one zone: moving across zones (or moving a zone's top
        // directory) would need re-encryption. EXDEV makes `mv` copy instead.
        if from_zone != to_zone || from_parent_zone != to_parent_zone {
            return Err(Error::CrossDevice);
        }
        let (from_dir, to_dir) = (from_d.1.fd, to_d.1.fd);
        let fb = OsStr::new(from.backing_name());
        let tb = OsStr::new(to.backing_name());
        let src = sys::fstatat(from_dir.as_fd(), fb)?;
        let dst = sys::fstatat(to_dir.as_fd(), tb).ok();
        if let Some(d) = &dst {
            if d.st_ino == src.st_ino && !flags.exchange {
                return Ok(()); // same file: rename(2) does nothing
            }
            if flags.noreplace {
                return Err(Error::Exists);
            }
        } else if flags.exchange {
            return Err(Error::NotFound);
        }
        let src_dir_kind = Kind::from_mode(src.st_mode) == Kind::Dir;
        // The kernel's checks for replacing a directory, done here because the backing target
        // is never empty (it holds its ID file).
        if let (Some(d), false) = (&dst, flags.exchange) {
            let dst_dir = Kind::from_mode(d.st_mode) == Kind::Dir;
            match (src_dir_kind, dst_dir) {
                (true, false) => return Err(Error::NotDir),
                (false, true) => return Err(Error::IsDir),
                (true, true) => self.remove_backing_dir(&to_dir, tb)?,
                (false, false) => {}
            }
        }
        self.write_long_record(&to_dir, &to)?;
        let raw_flags = if flags.exchange {
            libc::RENAME_EXCHANGE
        } else {
            0
        };
        sys::renameat2(from_dir.as_fd(), fb, to_dir.as_fd(), tb, raw_flags)?;
        if !flags.exchange && from.backing_name() != to.backing_name() {
            self.remove_long_record(&from_dir, &from);
        } else if flags.exchange {
            self.write_long_record(&from_dir, &from)?;
        }
        let mut t = lock(&self.inodes);
        let src_ino = self.fuse_ino(src.st_ino);
        if let (Some(d), false) = (&dst, flags.exchange) {
            // The replaced entry is gone, or lives on under another hard-link name.
            Self::name_gone_in(&mut t, self.fuse_ino(d.st_ino), d, newparent, tb);
        }
        t.renamed(
            src_ino,
            (parent, fb),
            newparent,
            tb.to_os_string(),
            newname.as_bytes().to_vec(),
        );
        if flags.exchange {
            if let Some(d) = dst {
                t.moved(
                    self.fuse_ino(d.st_ino),
                    parent,
                    fb.to_os_string(),
                    name.as_bytes().to_vec(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{new_fs, ME};
    use super::super::Ino;
    use super::*;

    #[test]
    fn symlink_link_rename_unlink() {
        let (_t, fs) = new_fs();
        let s = fs
            .symlink(&ME, Ino::ROOT, OsStr::new("ln"), b"../some/target")
            .unwrap();
        assert_eq!(s.kind, Kind::Symlink);
        assert_eq!(s.size, 14);
        assert_eq!(fs.readlink(&ME, s.ino).unwrap(), b"../some/target");
        let (f, fh) = fs
            .create(&ME, Ino::ROOT, OsStr::new("a"), 0o644, 0, libc::O_RDWR)
            .unwrap();
        fs.write(fh, 0, b"hello", None).unwrap();
        fs.release(fh);
        let l = fs.link(&ME, f.ino, Ino::ROOT, OsStr::new("b")).unwrap();
        assert_eq!(l.ino, f.ino);
        assert_eq!(l.nlink, 2);
        let long = "L".repeat(240);
        fs.rename(
            &ME,
            Ino::ROOT,
            OsStr::new("b"),
            Ino::ROOT,
            OsStr::new(&long),
            RenameFlags::default(),
        )
        .unwrap();
        let got = fs.lookup(&ME, Ino::ROOT, OsStr::new(&long)).unwrap();
        assert_eq!(got.size, 5);
        assert!(matches!(
            fs.rename(
                &ME,
                Ino::ROOT,
                OsStr::new("a"),
                Ino::ROOT,
                OsStr::new("ln"),
                RenameFlags {
                    noreplace: true,
                    exchange: false
                }
            ),
            Err(Error::Exists)
        ));
        fs.unlink(&ME, Ino::ROOT, OsStr::new(&long)).unwrap();
        let names: std::collections::BTreeSet<std::ffi::OsString> = fs
            .list_dir(Ino::ROOT.0)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        let want: std::collections::BTreeSet<std::ffi::OsString> =
            [".", "..", "a", "ln"].into_iter().map(Into::into).collect();
        assert_eq!(names, want);
    }

    #[test]
    fn rename_directory_over_empty_directory() {
        let (_t, fs) = new_fs();
        let a = fs.mkdir(&ME, Ino::ROOT, OsStr::new("a"), 0o755, 0).unwrap();
        fs.mkdir(&ME, Ino::ROOT, OsStr::new("b"), 0o755, 0).unwrap();
        fs.mkdir(&ME, a.ino, OsStr::new("inner"), 0o755, 0).unwrap();
        fs.rename(
            &ME,
            Ino::ROOT,
            OsStr::new("a"),
            Ino::ROOT,
            OsStr::new("b"),
            RenameFlags::default(),
        )
        .unwrap();
        let b = fs.lookup(&ME, Ino::ROOT, OsStr::new("b")).unwrap();
        assert!(fs
            .list_dir(b.ino.0)
            .unwrap()
            .iter()
            .any(|e| e.name == "inner"));
        assert!(matches!(
            fs.lookup(&ME, Ino::ROOT, OsStr::new("a")),
            Err(Error::NotFound)
        ));
    }
}
