//! The mount root is the vault directory itself. On a shared mount that directory is closed
//! to group and others (they must go through the mount, where modes and the policy are
//! enforced, not around it in the backing tree), so the mode the mount root shows is kept
//! apart: in the xattr `user.tutela-root-mode` on the vault directory, as octal text.
//! Without it the mount root shows the vault directory's own mode.

use super::Fs;
use crate::error::Result;
use crate::sys;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;

/// Outside the `user.tutela.` prefix of sealed user xattrs, so listings and rekeys skip it.
const ROOT_MODE_XATTR: &str = "user.tutela-root-mode";

/// No mode kept apart (the vault directory's own applies).
const NONE: u32 = u32::MAX;

/// What the xattr holds, if it is there and well formed (anything else is ignored and the
/// vault directory's own mode shows).
pub(super) fn read(root: BorrowedFd<'_>) -> u32 {
    sys::fgetxattr(root, ROOT_MODE_XATTR)
        .ok()
        .and_then(|v| std::str::from_utf8(&v).ok().map(str::to_owned))
        .and_then(|s| u32::from_str_radix(&s, 8).ok())
        .filter(|m| *m <= 0o7777)
        .unwrap_or(NONE)
}

impl Fs {
    /// The mode the mount root shows in place of the vault directory's, if one is kept.
    pub(super) fn root_mode(&self) -> Option<u32> {
        Some(self.root_mode.load(Ordering::Relaxed)).filter(|m| *m != NONE)
    }

    fn keep_root_mode(&self, mode: u32) -> Result<()> {
        let mode = mode & 0o7777;
        sys::fsetxattr(
            self.root.as_fd(),
            ROOT_MODE_XATTR,
            format!("{mode:o}").as_bytes(),
            0,
        )?;
        self.root_mode.store(mode, Ordering::Relaxed);
        Ok(())
    }

    /// chmod of the mount root once its mode is kept apart: the vault directory stays shut.
    pub(super) fn set_root_mode(&self, mode: u32) -> Result<bool> {
        if self.root_mode().is_none() {
            return Ok(false);
        }
        self.keep_root_mode(mode)?;
        Ok(true)
    }

    /// Closes the vault directory to group and others, keeping the mode the mount root
    /// shows. Returns the mode it had when this changed it. The kept mode is written before
    /// the directory is closed, so a crash in between leaves nothing to repair.
    pub fn close_backing_root(&self) -> Result<Option<u32>> {
        let mode = sys::fstat(self.root.as_fd())?.st_mode & 0o7777;
        let open = mode & 0o077 != 0;
        if self.root_mode().is_none() && !self.opts.read_only {
            // Kept even for a directory that is closed already (say, restored from a backup
            // without xattrs), so that a chmod of the mount root never reopens it.
            match self.keep_root_mode(mode) {
                Ok(()) => {}
                Err(e) if open => return Err(e),
                Err(_) => return Ok(None),
            }
        }
        if !open {
            return Ok(None);
        }
        self.check_writable()?;
        sys::fchmod(self.root.as_fd(), mode & 0o700)?;
        Ok(Some(mode))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{new_fs, ME};
    use super::super::Ino;
    use super::*;
    use crate::error::Error;
    use crate::fs::SetAttr;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_closed_vault_directory_keeps_the_mode_the_mount_root_shows() {
        let (t, fs) = new_fs();
        let dir = t.path().join("vault");
        let real = || std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1775)).unwrap();
        match fs.close_backing_root() {
            Err(Error::NotSupported) | Err(Error::Io(_)) => {
                eprintln!("SKIP: backing filesystem has no user xattrs");
                return;
            }
            other => assert_eq!(other.unwrap(), Some(0o1775)),
        }
        assert_eq!(real(), 0o700);
        assert_eq!(fs.getattr(&ME, Ino::ROOT, None).unwrap().perm, 0o1775);
        // chmod through the mount changes what it shows, never the directory.
        let set = SetAttr {
            mode: Some(0o750),
            ..Default::default()
        };
        assert_eq!(fs.setattr(&ME, Ino::ROOT, &set, None).unwrap().perm, 0o750);
        assert_eq!(real(), 0o700);
        // Closing again is a no-op; the xattr is invisible as a user xattr.
        assert_eq!(fs.close_backing_root().unwrap(), None);
        assert_eq!(fs.listxattr(&ME, Ino::ROOT).unwrap(), Vec::<u8>::new());
        // Someone opens the directory again by hand: closing it keeps the mode shown.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(fs.close_backing_root().unwrap(), Some(0o755));
        assert_eq!(fs.getattr(&ME, Ino::ROOT, None).unwrap().perm, 0o750);
        assert_eq!(real(), 0o700);
    }

    #[test]
    fn a_directory_closed_already_still_keeps_the_mode_shown() {
        let (t, fs) = new_fs();
        let dir = t.path().join("vault");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(fs.close_backing_root().unwrap(), None);
        if fs.root_mode().is_none() {
            eprintln!("SKIP: backing filesystem has no user xattrs");
            return;
        }
        let set = SetAttr {
            mode: Some(0o755),
            ..Default::default()
        };
        assert_eq!(fs.setattr(&ME, Ino::ROOT, &set, None).unwrap().perm, 0o755);
        let real = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(
            real, 0o700,
            "a chmod of the mount root does not reopen the directory"
        );
    }

    #[test]
    fn a_damaged_kept_mode_is_ignored() {
        let (t, _fs) = new_fs();
        let fd = sys::open_dir(&t.path().join("vault")).unwrap();
        for bad in [&b"99999"[..], b"", b"rwx", b"77777"] {
            if sys::fsetxattr(fd.as_fd(), ROOT_MODE_XATTR, bad, 0).is_err() {
                eprintln!("SKIP: backing filesystem has no user xattrs");
                return;
            }
            assert_eq!(read(fd.as_fd()), NONE, "{bad:?}");
        }
    }
}
