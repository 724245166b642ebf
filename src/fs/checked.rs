//! The filesystem's public operations: each checks the access policy on the plaintext path
//! (refusals are audited in `allow`), runs the unchecked operation, and audits the outcome
//! where the operation is one the audit log records (not lookups, stats or plain reads).

use super::dir::DirEntryOut;
use super::inode::Kind;
use super::op::Op;
use super::{Attr, Fh, Fs, Ino, RenameFlags, SetAttr, Subject};
use crate::error::{Error, Result};
use crate::policy::Access::{Read, Write};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

fn open_mode(flags: i32) -> &'static str {
    match flags & libc::O_ACCMODE {
        libc::O_WRONLY => "w",
        libc::O_RDWR => "rw",
        _ => "r",
    }
}

impl Fs {
    /// Checks the policy for `access` to `path`, runs `f`, and audits the outcome.
    fn checked<T>(
        &self,
        who: &Subject,
        op: Op,
        path: &str,
        access: crate::policy::Access,
        detail: Option<String>,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let client = self.allow(who, op, path, access)?;
        let r = f();
        self.audited(who, op, path, None, client.as_deref(), detail, r)
    }

    /// Policy check for an operation that is audited only when refused.
    fn gate(
        &self,
        who: &Subject,
        op: Op,
        path: impl FnOnce() -> Result<String>,
        access: crate::policy::Access,
    ) -> Result<()> {
        if self.policy_active() || (access == Write && self.any_closed()) {
            self.allow(who, op, &path()?, access)?;
        }
        Ok(())
    }

    /// A directory that holds clients' top directories shows a link count of 1 while a
    /// policy is in force (as btrfs shows for every directory, and as `find` reads as
    /// "unknown"): the real count, 2 plus its subdirectories, would tell a refused user how
    /// many clients are hidden from the listing. The kernel caches attributes for everyone,
    /// so the count is the same for every caller.
    fn veil(&self, mut a: Attr) -> Attr {
        if a.kind == Kind::Dir && a.nlink > 1 {
            if let Some(p) = self.guard_policy() {
                if self
                    .path_of(a.ino.0)
                    .is_ok_and(|path| p.is_above_client(&path))
                {
                    a.nlink = 1;
                }
            }
        }
        a
    }

    pub fn lookup(&self, who: &Subject, parent: Ino, name: &OsStr) -> Result<Attr> {
        let parent = parent.0;
        self.gate(who, Op::Lookup, || self.child_path(parent, name), Read)?;
        self.lookup_inner(who, parent, name).map(|a| self.veil(a))
    }

    pub fn getattr(&self, who: &Subject, ino: Ino, fh: Option<Fh>) -> Result<Attr> {
        let ino = ino.0;
        let fh = fh.map(|f| f.0);
        if fh.is_none() {
            self.gate(who, Op::Stat, || self.path_of(ino), Read)?;
        }
        self.getattr_inner(ino, fh).map(|a| self.veil(a))
    }

    /// access(2) on a mount without kernel permission checks (single-user mounts): the
    /// backing file carries the same modes and the daemon runs as that user (or root), so
    /// the backing filesystem gives the answer a local disk would.
    pub fn access(&self, who: &Subject, ino: Ino, mask: i32) -> Result<()> {
        let ino = ino.0;
        self.gate(who, Op::Access, || self.path_of(ino), Read)?;
        self.access_inner(ino, mask)
    }

    pub fn readlink(&self, who: &Subject, ino: Ino) -> Result<Vec<u8>> {
        let ino = ino.0;
        self.gate(who, Op::Readlink, || self.path_of(ino), Read)?;
        self.readlink_inner(ino)
    }

    pub fn setattr(&self, who: &Subject, ino: Ino, set: &SetAttr, fh: Option<Fh>) -> Result<Attr> {
        let ino = ino.0;
        let fh = fh.map(|f| f.0);
        let path = self.path_of(ino)?;
        let client = self.allow(who, Op::Setattr, &path, Write)?;
        let mut what = Vec::new();
        if let Some(m) = set.mode {
            what.push(format!("mode {:o}", m & 0o7777));
        }
        if set.uid.is_some() || set.gid.is_some() {
            what.push(format!("owner {:?}:{:?}", set.uid, set.gid));
        }
        if let Some(s) = set.size {
            what.push(format!("size {s}"));
        }
        if set.atime.is_some() || set.mtime.is_some() {
            what.push("times".into());
        }
        let r = self.setattr_inner(who, ino, set, fh).map(|a| self.veil(a));
        self.audited(
            who,
            Op::Setattr,
            &path,
            None,
            client.as_deref(),
            Some(what.join(", ")),
            r,
        )
    }

    pub fn mknod(
        &self,
        who: &Subject,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
    ) -> Result<Attr> {
        let parent = parent.0;
        let path = self.child_path(parent, name)?;
        self.checked(
            who,
            Op::Create,
            &path,
            Write,
            Some(format!("mknod {:o}", mode)),
            || self.mknod_inner(who, parent, name, mode, umask, rdev),
        )
    }

    pub fn mkdir(
        &self,
        who: &Subject,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        umask: u32,
    ) -> Result<Attr> {
        let parent = parent.0;
        let path = self.child_path(parent, name)?;
        self.checked(who, Op::Mkdir, &path, Write, None, || {
            self.mkdir_inner(who, parent, name, mode, umask)
                .map(|a| self.veil(a))
        })
    }

    pub fn symlink(&self, who: &Subject, parent: Ino, name: &OsStr, target: &[u8]) -> Result<Attr> {
        let parent = parent.0;
        let path = self.child_path(parent, name)?;
        self.checked(who, Op::Symlink, &path, Write, None, || {
            self.symlink_inner(who, parent, name, target)
        })
    }

    /// Refuses removing or moving a client's top directory (or one above it) unless admin.
    fn protect_tops(&self, who: &Subject, path: &str) -> Result<()> {
        if let Some(p) = self.guard_policy() {
            let top = p.is_above_client(path) || p.clients.iter().any(|c| c.path == path);
            if top && !self.is_admin(who) {
                return Err(Error::PermissionDenied);
            }
        }
        Ok(())
    }

    pub fn unlink(&self, who: &Subject, parent: Ino, name: &OsStr) -> Result<()> {
        let parent = parent.0;
        let path = self.child_path(parent, name)?;
        self.checked(who, Op::Unlink, &path, Write, None, || {
            self.unlink_inner(who, parent, name)
        })
    }

    pub fn rmdir(&self, who: &Subject, parent: Ino, name: &OsStr) -> Result<()> {
        let parent = parent.0;
        let path = self.child_path(parent, name)?;
        let client = self.allow(who, Op::Rmdir, &path, Write)?;
        let r = self
            .protect_tops(who, &path)
            .and_then(|()| self.rmdir_inner(who, parent, name));
        self.audited(who, Op::Rmdir, &path, None, client.as_deref(), None, r)
    }

    pub fn link(&self, who: &Subject, ino: Ino, newparent: Ino, newname: &OsStr) -> Result<Attr> {
        let ino = ino.0;
        let newparent = newparent.0;
        let from = self.path_of(ino)?;
        let to = self.child_path(newparent, newname)?;
        self.allow(who, Op::Link, &from, Read)?;
        let client = self.allow(who, Op::Link, &to, Write)?;
        let r = self
            .check_move(&from, &to)
            .and_then(|()| self.link_inner(who, ino, newparent, newname));
        self.audited(who, Op::Link, &from, Some(&to), client.as_deref(), None, r)
    }

    pub fn rename(
        &self,
        who: &Subject,
        parent: Ino,
        name: &OsStr,
        newparent: Ino,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<()> {
        let parent = parent.0;
        let newparent = newparent.0;
        let from = self.child_path(parent, name)?;
        let to = self.child_path(newparent, newname)?;
        let client = self.allow(who, Op::Rename, &from, Write)?;
        self.allow(who, Op::Rename, &to, Write)?;
        let r = self
            .check_move(&from, &to)
            .and_then(|()| self.rename_inner(who, parent, name, newparent, newname, flags));
        self.audited(
            who,
            Op::Rename,
            &from,
            Some(&to),
            client.as_deref(),
            None,
            r,
        )
    }

    pub fn open(&self, who: &Subject, ino: Ino, flags: i32) -> Result<Fh> {
        let ino = ino.0;
        let path = self.path_of(ino)?;
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        let client = self.allow(who, Op::Open, &path, if write { Write } else { Read })?;
        let r = self.open_inner(who, ino, flags).map(Fh);
        self.audited(
            who,
            Op::Open,
            &path,
            None,
            client.as_deref(),
            Some(open_mode(flags).into()),
            r,
        )
    }

    pub fn create(
        &self,
        who: &Subject,
        parent: Ino,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(Attr, Fh)> {
        let parent = parent.0;
        let path = self.child_path(parent, name)?;
        self.checked(
            who,
            Op::Create,
            &path,
            Write,
            Some(open_mode(flags).into()),
            || {
                self.create_inner(who, parent, name, mode, umask, flags)
                    .map(|(a, fh)| (a, Fh(fh)))
            },
        )
    }

    /// Checks and audits the opening of directory `ino` for listing (shared mounts, where
    /// every open reaches the daemon and the kernel may then serve the listing from its
    /// cache; `readdir_at` is then called with `audit` false).
    pub fn open_listing(&self, who: &Subject, ino: Ino) -> Result<()> {
        let ino = ino.0;
        let path = self.path_of(ino)?;
        let client = self.allow(who, Op::List, &path, Read)?;
        self.audited(who, Op::List, &path, None, client.as_deref(), None, Ok(()))
    }

    /// Lists a directory from `cookie` (see `list_dir_at`); entries the caller may not read
    /// (other clients) are left out. The policy is asked on every call; with `audit`, the log
    /// gets one Op::List record per listing (the call that starts it).
    pub fn readdir_at(
        &self,
        who: &Subject,
        ino: Ino,
        cookie: u64,
        audit: bool,
        mut emit: impl FnMut(DirEntryOut, u64) -> bool,
    ) -> Result<()> {
        let ino = ino.0;
        let path = self.path_of(ino)?;
        let client = self.allow(who, Op::List, &path, Read)?;
        let policy = self.guard_policy();
        let c = policy.as_ref().map(|_| self.creds_of(who));
        let r = self.list_dir_at(ino, cookie, |e, next| {
            if let (Some(p), Some(c)) = (&policy, &c) {
                if e.name != "." && e.name != ".." {
                    let mut child = path.clone();
                    if child != "/" {
                        child.push('/');
                    }
                    child.push_str(&String::from_utf8_lossy(e.name.as_bytes()));
                    if !self.visible(c, p, &child) {
                        return true;
                    }
                }
            }
            emit(e, next)
        });
        if cookie == 0 && audit {
            return self.audited(who, Op::List, &path, None, client.as_deref(), None, r);
        }
        r
    }

    /// Every entry of a directory the caller may see, "." and ".." included, unaudited (for
    /// work on the vault itself: export, counting a client's files).
    pub fn readdir(&self, who: &Subject, ino: Ino) -> Result<Vec<DirEntryOut>> {
        let ino = ino.0;
        let mut out = Vec::new();
        self.readdir_at(who, Ino(ino), 0, false, |e, _| {
            out.push(e);
            true
        })?;
        Ok(out)
    }

    pub fn setxattr(
        &self,
        who: &Subject,
        ino: Ino,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<()> {
        let ino = ino.0;
        let path = self.path_of(ino)?;
        self.checked(who, Op::Setxattr, &path, Write, None, || {
            self.setxattr_inner(ino, name, value, flags)
        })
    }

    pub fn removexattr(&self, who: &Subject, ino: Ino, name: &OsStr) -> Result<()> {
        let ino = ino.0;
        let path = self.path_of(ino)?;
        self.checked(who, Op::Removexattr, &path, Write, None, || {
            self.removexattr_inner(ino, name)
        })
    }

    pub fn getxattr(&self, who: &Subject, ino: Ino, name: &OsStr) -> Result<Vec<u8>> {
        let ino = ino.0;
        self.gate(who, Op::Getxattr, || self.path_of(ino), Read)?;
        self.getxattr_inner(ino, name)
    }

    pub fn listxattr(&self, who: &Subject, ino: Ino) -> Result<Vec<u8>> {
        let ino = ino.0;
        self.gate(who, Op::Listxattr, || self.path_of(ino), Read)?;
        self.listxattr_inner(ino)
    }
}
