//! The vault's own files and directories: read without trusting the directory, written
//! atomically, kept private.

#![allow(unsafe_code)]

use super::*;
use crate::error::{Error, Result};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

/// Creates `dir` if missing (with `mode`, less the umask) and checks that it is an empty
/// directory.
pub fn ensure_empty_dir(dir: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::VaultDirNotEmpty {
                path: dir.display().to_string(),
            })
        }
        Err(e) => return Err(Error::Io(e)),
    }
    let mut it = std::fs::read_dir(dir)?;
    if it.next().is_some() {
        return Err(Error::VaultDirNotEmpty {
            path: dir.display().to_string(),
        });
    }
    Ok(())
}

/// Makes `dir` (and missing parents) a directory only its owner may enter: created 0700, or
/// tightened to that if it exists with group or other bits (the daemon runs with umask 0, and
/// earlier versions left such directories open). A symlink or non-directory is refused, so a
/// name planted by another user is never followed. Returns the directory's owner.
pub fn private_dir(dir: &Path) -> Result<u32> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.file_type().is_dir() {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} is not a directory", dir.display()),
        )));
    }
    if meta.mode() & 0o077 != 0 && meta.uid() == geteuid() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(meta.mode() & 0o700))?;
    }
    Ok(meta.uid())
}

/// Takes group and other access off a regular file an earlier version created while the
/// daemon's umask was 0 (a symlink or anything else is left alone).
pub fn private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_file() && meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode() & 0o600))?;
    }
    Ok(())
}

/// Writes `name` in `dir` atomically: temp file, fsync, rename over, fsync the directory.
/// Reads a file of the vault's own (config, policy, key store, audit segment, checkpoint)
/// without trusting whoever could write the vault directory: never through a symlink at the
/// last component (unless `follow`, for a path the user named), never blocking on a FIFO or
/// device, and never more than `max` bytes, which is far above anything tutela writes there.
/// Anything else is refused with a message naming the file.
pub fn read_vault_file(path: &Path, max: u64, follow: bool) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) && !follow => {
            return Err(Error::UnsafeFile(format!(
                "{} is a symbolic link: refusing to follow it",
                path.display()
            )))
        }
        Err(e) => return Err(Error::from_errno(e.raw_os_error().unwrap_or(libc::EIO))),
    };
    let st = fstat(f.as_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Error::UnsafeFile(format!(
            "{} is not a regular file (a FIFO, device or directory): refusing to read it",
            path.display()
        )));
    }
    if st.st_size as u64 > max {
        return Err(Error::UnsafeFile(format!(
            "{} is {} bytes, more than tutela ever writes there ({max}): refusing to read it",
            path.display(),
            st.st_size
        )));
    }
    let mut buf = Vec::with_capacity(st.st_size as usize);
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(Error::UnsafeFile(format!(
            "{} grew past {max} bytes while it was read",
            path.display()
        )));
    }
    Ok(buf)
}

pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    // Whoever can write the directory (a sync agent, the vault's owner when root writes it, a
    // restored copy) may plant symlinks there: the temporary file is made afresh (O_EXCL, no
    // symlink followed) under an unguessable name relative to the directory's descriptor,
    // and a target that is a symlink is refused rather than replaced or written through.
    let d = open_dir(dir)?;
    let target = OsStr::new(name);
    if let Ok(st) = fstatat(d.as_fd(), target) {
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(Error::UnsafeFile(format!(
                "{} is a symbolic link: refusing to replace it",
                dir.join(name).display()
            )));
        }
    }
    let mut rnd = [0u8; 8];
    crate::crypto::random_bytes(&mut rnd)?;
    let tmp = OsString::from(format!(".{name}.tmp.{:016x}", u64::from_le_bytes(rnd)));
    let fd = openat(
        d.as_fd(),
        &tmp,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        mode,
    )?;
    let written = (|| {
        let mut f = File::from(fd);
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        crate::faults::point("atomic-write");
        renameat2(d.as_fd(), &tmp, d.as_fd(), target, 0)
    })();
    if let Err(e) = written {
        let _ = unlinkat(d.as_fd(), &tmp, false);
        return Err(e);
    }
    fsync(d.as_fd(), false)?;
    crate::faults::point("atomic-renamed");
    Ok(())
}
