//! The *at() syscalls on the backing directory: every name is resolved relative to a
//! directory descriptor and never through a symlink planted there.

#![allow(unsafe_code)]

use super::*;
use crate::error::{Error, Result};
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Opens `rel` (relative, no leading slash; "." for the root itself) beneath `root`, refusing
/// to cross any symlink or leave the tree (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS).
pub fn open_beneath(root: BorrowedFd<'_>, rel: &[u8], flags: i32, mode: u32) -> Result<OwnedFd> {
    // Encrypted names are longer than plaintext ones, so a plaintext path near PATH_MAX has a
    // longer backing path: walk it in pieces, each one still resolved beneath the last.
    const PIECE: usize = 2048;
    if rel.len() > PIECE {
        let mut cut = rel[..PIECE].iter().rposition(|&b| b == b'/').unwrap_or(0);
        if cut == 0 {
            cut = rel.iter().position(|&b| b == b'/').unwrap_or(rel.len());
        }
        if cut < rel.len() {
            let dir = open_beneath(root, &rel[..cut], libc::O_PATH | libc::O_DIRECTORY, 0)?;
            return open_beneath(std::os::fd::AsFd::as_fd(&dir), &rel[cut + 1..], flags, mode);
        }
    }
    let path = cstr(if rel.is_empty() { b"." } else { rel })?;
    // SAFETY: open_how is plain old data; all-zero is valid.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64;
    how.mode = if flags & libc::O_CREAT != 0 {
        mode as u64
    } else {
        0
    };
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `how` is a valid open_how of the size passed; path is NUL-terminated.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        // A symlink where a directory or file should be is damage (or an attack), not a path.
        return Err(if e == libc::ELOOP || e == libc::EXDEV {
            Error::PermissionDenied
        } else {
            Error::from_errno(e)
        });
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Opens a directory (any path, following symlinks) for use as a root.
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    let c = cstr(path.as_os_str().as_bytes())?;
    // SAFETY: NUL-terminated path.
    let fd = check(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn fstatat(dir: BorrowedFd<'_>, name: &OsStr) -> Result<libc::stat> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, NUL-terminated name, valid out pointer.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// Whether this process may access `name` in `dir` as `mode` (R_OK/W_OK/X_OK) asks.
pub fn faccessat(dir: BorrowedFd<'_>, name: &OsStr, mode: i32) -> Result<()> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: valid fd and NUL-terminated name.
    check(unsafe { libc::faccessat(dir.as_raw_fd(), c.as_ptr(), mode, libc::AT_SYMLINK_NOFOLLOW) })
        .map(|_| ())
}

pub fn fstat(fd: BorrowedFd<'_>) -> Result<libc::stat> {
    // SAFETY: as above.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// Opens `name` in `dir` without following a symlink.
pub fn openat(dir: BorrowedFd<'_>, name: &OsStr, flags: i32, mode: u32) -> Result<OwnedFd> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: valid fd and NUL-terminated name.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn mkdirat(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> Result<()> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: valid fd and NUL-terminated name.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) }).map(|_| ())
}

pub fn mknodat(dir: BorrowedFd<'_>, name: &OsStr, mode: u32, rdev: u64) -> Result<()> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: valid fd and NUL-terminated name.
    check(unsafe {
        libc::mknodat(
            dir.as_raw_fd(),
            c.as_ptr(),
            mode as libc::mode_t,
            rdev as libc::dev_t,
        )
    })
    .map(|_| ())
}

pub fn unlinkat(dir: BorrowedFd<'_>, name: &OsStr, is_dir: bool) -> Result<()> {
    let c = cstr(name.as_bytes())?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid fd and NUL-terminated name.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) }).map(|_| ())
}

pub fn renameat2(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    to_dir: BorrowedFd<'_>,
    to: &OsStr,
    flags: u32,
) -> Result<()> {
    let a = cstr(from.as_bytes())?;
    let b = cstr(to.as_bytes())?;
    // SAFETY: valid fds and NUL-terminated names.
    check(unsafe {
        libc::renameat2(
            from_dir.as_raw_fd(),
            a.as_ptr(),
            to_dir.as_raw_fd(),
            b.as_ptr(),
            flags,
        )
    })
    .map(|_| ())
}

pub fn linkat(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    to_dir: BorrowedFd<'_>,
    to: &OsStr,
) -> Result<()> {
    let a = cstr(from.as_bytes())?;
    let b = cstr(to.as_bytes())?;
    // SAFETY: valid fds and NUL-terminated names; flags 0 never follows a symlink.
    check(unsafe {
        libc::linkat(
            from_dir.as_raw_fd(),
            a.as_ptr(),
            to_dir.as_raw_fd(),
            b.as_ptr(),
            0,
        )
    })
    .map(|_| ())
}

pub fn symlinkat(target: &[u8], dir: BorrowedFd<'_>, name: &OsStr) -> Result<()> {
    let t = cstr(target)?;
    let c = cstr(name.as_bytes())?;
    // SAFETY: NUL-terminated strings, valid fd.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) }).map(|_| ())
}

pub fn readlinkat(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Vec<u8>> {
    let c = cstr(name.as_bytes())?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: buffer of the length passed.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
        )
    };
    if n < 0 {
        return Err(Error::last_os());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }).map(|_| ())
}

pub fn fchmodat(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    // fchmodat2 (Linux 6.6) takes AT_SYMLINK_NOFOLLOW in one syscall; older C libraries
    // emulate that flag with an O_PATH open, an fstat and a chmod through /proc (4 syscalls
    // for every chmod a tar extraction makes). Same number on every architecture.
    const SYS_FCHMODAT2: libc::c_long = 452;
    static NO_FCHMODAT2: AtomicBool = AtomicBool::new(false);
    let c = cstr(name.as_bytes())?;
    if !NO_FCHMODAT2.load(Ordering::Relaxed) {
        // SAFETY: valid fd and NUL-terminated name; the kernel only reads them.
        let rc = unsafe {
            libc::syscall(
                SYS_FCHMODAT2,
                dir.as_raw_fd(),
                c.as_ptr(),
                mode as libc::mode_t,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ENOSYS) => NO_FCHMODAT2.store(true, Ordering::Relaxed),
            // A container's seccomp filter may answer EPERM for a syscall it does not know:
            // let the C library's path give the real answer.
            Some(libc::EPERM) => {}
            e => return Err(Error::from_errno(e.unwrap_or(libc::EIO))),
        }
    }
    // SAFETY: valid fd and NUL-terminated name.
    check(unsafe {
        libc::fchmodat(
            dir.as_raw_fd(),
            c.as_ptr(),
            mode as libc::mode_t,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(|_| ())
}

pub fn fchownat(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<()> {
    let c = cstr(name.as_bytes())?;
    let u = uid.unwrap_or(u32::MAX);
    let g = gid.unwrap_or(u32::MAX);
    // SAFETY: valid fd and NUL-terminated name; -1 keeps an id unchanged.
    check(unsafe { libc::fchownat(dir.as_raw_fd(), c.as_ptr(), u, g, libc::AT_SYMLINK_NOFOLLOW) })
        .map(|_| ())
}

/// A timestamp for utimensat: `None` leaves it, `Some(None)` is now, `Some(Some(t))` sets it.
pub type TimeSpec = Option<Option<(i64, i64)>>;

pub fn utimensat(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    atime: TimeSpec,
    mtime: TimeSpec,
) -> Result<()> {
    let c = cstr(name.as_bytes())?;
    let ts = [timespec(atime), timespec(mtime)];
    // SAFETY: valid fd, NUL-terminated name and two valid timespecs.
    check(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(|_| ())
}

/// Sets the times of the open file `fd` itself.
pub fn futimens(fd: BorrowedFd<'_>, atime: TimeSpec, mtime: TimeSpec) -> Result<()> {
    let ts = [timespec(atime), timespec(mtime)];
    // SAFETY: valid fd and two valid timespecs.
    check(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) }).map(|_| ())
}

fn timespec(t: TimeSpec) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(None) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(Some((s, ns))) => libc::timespec {
            tv_sec: s,
            tv_nsec: ns,
        },
    }
}
