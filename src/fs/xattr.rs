//! Extended attributes in the `user.` namespace, stored encrypted as backing xattrs
//! `user.tutela.<sealed name>` with sealed values. Other namespaces (ACLs, SELinux labels,
//! capabilities) are not supported: reads and writes of them say EOPNOTSUPP, as a local
//! filesystem without them does. `cp -a` carries on, and `ls -l` then stops asking for the
//! rest of the mount instead of spending two round trips per file.

use super::inode::Kind;
use super::Fs;
use crate::error::{Error, Result};
use crate::sys;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

const USER: &[u8] = b"user.";

impl Fs {
    fn xattr_fd(&self, ino: u64) -> Result<(OwnedFd, usize)> {
        let (_, kind, zone) = self.node_info(ino)?;
        if !matches!(kind, Kind::File | Kind::Dir) {
            // Linux allows user xattrs on regular files and directories only.
            return Err(Error::NotPermitted);
        }
        Ok((self.open_ino(ino, libc::O_RDONLY | libc::O_NONBLOCK)?, zone))
    }

    fn sealed_name(&self, zone: usize, name: &OsStr) -> Result<Option<String>> {
        match name.as_bytes().strip_prefix(USER) {
            Some(rest) if !rest.is_empty() => {
                Ok(Some(self.zone(zone)?.names.encrypt_xattr_name(rest)?))
            }
            Some(_) => Err(Error::Invalid),
            None => Ok(None),
        }
    }

    pub(super) fn setxattr_inner(
        &self,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> Result<()> {
        self.check_writable()?;
        let (fd, zone) = self.xattr_fd(ino)?;
        // Always sealed with the zone's current key.
        let zone = self.zone(zone)?.family;
        let Some(bname) = self.sealed_name(zone, name)? else {
            return Err(Error::NotSupported);
        };
        if bname.len() > 255 {
            return Err(Error::Range);
        }
        let sealed = self.zone(zone)?.names.encrypt_xattr_value(&bname, value)?;
        sys::fsetxattr(fd.as_fd(), &bname, &sealed, flags)
    }

    pub(super) fn getxattr_inner(&self, ino: u64, name: &OsStr) -> Result<Vec<u8>> {
        // The kernel asks for `security.capability` before writes and chowns; other
        // namespaces are never stored, so that answer needs no backing file.
        if !name.as_bytes().starts_with(USER) {
            return Err(Error::NotSupported);
        }
        let (fd, zone) = self.xattr_fd(ino).map_err(|e| {
            if matches!(e, Error::NotPermitted) {
                Error::NoAttr
            } else {
                e
            }
        })?;
        let gens: Vec<usize> = self.generations(zone)?.collect();
        for g in gens.iter().copied() {
            let Some(bname) = self.sealed_name(g, name)? else {
                return Err(Error::NoAttr);
            };
            let sealed = match sys::fgetxattr(fd.as_fd(), &bname) {
                Err(Error::NoAttr) if g != *gens.last().unwrap_or(&g) => continue,
                other => other?,
            };
            return self
                .zone(g)?
                .names
                .decrypt_xattr_value(&bname, &sealed)
                .inspect_err(|_| {
                    log::warn!("inode {ino}: an xattr value does not authenticate");
                });
        }
        Err(Error::NoAttr)
    }

    pub(super) fn listxattr_inner(&self, ino: u64) -> Result<Vec<u8>> {
        let (fd, zone) = match self.xattr_fd(ino) {
            Ok(x) => x,
            Err(Error::NotPermitted) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let gens = self.generations(zone)?;
        let mut out = Vec::new();
        for raw in sys::flistxattr(fd.as_fd())? {
            for g in gens.clone() {
                if let Ok(plain) = self.zone(g)?.names.decrypt_xattr_name(&raw) {
                    out.extend_from_slice(USER);
                    out.extend_from_slice(&plain);
                    out.push(0);
                    break;
                }
            }
        }
        Ok(out)
    }

    pub(super) fn removexattr_inner(&self, ino: u64, name: &OsStr) -> Result<()> {
        self.check_writable()?;
        let (fd, zone) = self.xattr_fd(ino)?;
        // During a rekey it may still be sealed with the retiring key.
        let mut result = Err(Error::NoAttr);
        for g in self.generations(zone)? {
            let Some(bname) = self.sealed_name(g, name)? else {
                return Err(Error::NotSupported);
            };
            result = sys::fremovexattr(fd.as_fd(), &bname);
            if !matches!(result, Err(Error::NoAttr)) {
                break;
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{new_fs, ME};
    use super::super::Ino;
    use super::*;

    #[test]
    fn xattrs_round_trip_encrypted() {
        let (_t, fs) = new_fs();
        let (a, fh) = fs
            .create(&ME, Ino::ROOT, OsStr::new("f"), 0o644, 0, libc::O_RDWR)
            .unwrap();
        fs.release(fh);
        match fs.setxattr(&ME, a.ino, OsStr::new("user.color"), b"blue", 0) {
            Err(Error::NotSupported) | Err(Error::Io(_)) => {
                eprintln!("SKIP: backing filesystem has no user xattrs");
                return;
            }
            other => other.unwrap(),
        }
        assert_eq!(
            fs.getxattr(&ME, a.ino, OsStr::new("user.color")).unwrap(),
            b"blue"
        );
        assert_eq!(fs.listxattr(&ME, a.ino).unwrap(), b"user.color\0");
        assert!(matches!(
            fs.getxattr(&ME, a.ino, OsStr::new("security.selinux")),
            Err(Error::NotSupported)
        ));
        assert!(matches!(
            fs.setxattr(&ME, a.ino, OsStr::new("trusted.x"), b"1", 0),
            Err(Error::NotSupported)
        ));
        fs.removexattr(&ME, a.ino, OsStr::new("user.color"))
            .unwrap();
        assert!(matches!(
            fs.getxattr(&ME, a.ino, OsStr::new("user.color")),
            Err(Error::NoAttr)
        ));
    }
}
