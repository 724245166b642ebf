//! The only module with `unsafe`: thin wrappers over the *at() syscalls (never following a
//! symlink planted in the backing directory), directory reading, xattrs, mlock, process
//! hygiene and daemon plumbing. Every function returns a typed error; none panics.

#![allow(unsafe_code)]

use crate::error::{Error, Result};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

fn cstr(b: &[u8]) -> Result<CString> {
    CString::new(b).map_err(|_| Error::Invalid)
}

fn check(rc: libc::c_int) -> Result<libc::c_int> {
    if rc < 0 {
        Err(Error::last_os())
    } else {
        Ok(rc)
    }
}

/// Locks a secret's pages in memory (out of swap), best effort: failure is only logged once.
pub fn mlock_best_effort(ptr: *mut u8, len: usize) {
    // SAFETY: mlock only pins pages; ptr/len describe memory owned by the caller.
    let rc = unsafe { libc::mlock(ptr as *const libc::c_void, len) };
    if rc != 0 {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            log::debug!("mlock failed; keys may be swapped out (raise RLIMIT_MEMLOCK)")
        });
    }
}

/// Keeps key material out of core dumps and away from ptrace by other users.
pub fn disable_core_dumps() {
    // SAFETY: plain syscalls with constant arguments.
    unsafe {
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

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

/// One entry of a backing directory.
pub struct DirEntry {
    pub name: OsString,
    pub ino: u64,
    pub dtype: u8,
}

/// Reads all entries of an open directory (the fd is duplicated, the caller keeps its own).
pub fn read_dir(dir: BorrowedFd<'_>) -> Result<Vec<DirEntry>> {
    let mut out = Vec::new();
    read_dir_from(dir, 0, |e, _| {
        if e.name != "." && e.name != ".." {
            out.push(e);
        }
        true
    })?;
    Ok(out)
}

/// Reads directory `dir` (the fd is duplicated) from position `cookie` (0: the start, else a
/// `next` this function handed out), "." and ".." included, calling `f(entry, next)` until it
/// returns false; `next` is the backing filesystem's own position after the entry, so a later
/// call resumes right after it however the directory changed in between.
pub fn read_dir_from(
    dir: BorrowedFd<'_>,
    cookie: u64,
    mut f: impl FnMut(DirEntry, u64) -> bool,
) -> Result<()> {
    let pos = libc::c_long::try_from(cookie).map_err(|_| Error::Invalid)?;
    // SAFETY: dup of a valid fd; fdopendir takes ownership of the duplicate.
    let dup = check(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: dup is a valid directory fd that fdopendir now owns.
    let dp = unsafe { libc::fdopendir(dup) };
    if dp.is_null() {
        let e = Error::last_os();
        // SAFETY: fdopendir failed, so we still own dup.
        unsafe { libc::close(dup) };
        return Err(e);
    }
    // SAFETY: dp is a valid DIR*; the position is one readdir64 reported (or 0).
    unsafe { libc::seekdir(dp, pos) };
    loop {
        // SAFETY: dp is a valid DIR*; the returned entry is valid until the next readdir.
        let ent = unsafe { libc::readdir64(dp) };
        if ent.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated within the entry.
        let (name, ino, dtype, next) = unsafe {
            let e = &*ent;
            (
                CStr::from_ptr(e.d_name.as_ptr()).to_bytes().to_vec(),
                e.d_ino,
                e.d_type,
                e.d_off as u64,
            )
        };
        let entry = DirEntry {
            name: OsString::from_vec(name),
            ino,
            dtype,
        };
        if !f(entry, next) {
            break;
        }
    }
    // SAFETY: dp is valid and closed once.
    unsafe { libc::closedir(dp) };
    Ok(())
}

pub fn fgetxattr(fd: BorrowedFd<'_>, name: &str) -> Result<Vec<u8>> {
    let c = cstr(name.as_bytes())?;
    let mut buf = vec![0u8; 65536];
    // SAFETY: buffer of the length passed.
    let n = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
        )
    };
    if n < 0 {
        return Err(Error::last_os());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

pub fn fsetxattr(fd: BorrowedFd<'_>, name: &str, value: &[u8], flags: i32) -> Result<()> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: value slice valid for its length.
    check(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            c.as_ptr(),
            value.as_ptr() as *const libc::c_void,
            value.len(),
            flags,
        )
    })
    .map(|_| ())
}

pub fn fremovexattr(fd: BorrowedFd<'_>, name: &str) -> Result<()> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: valid fd and NUL-terminated name.
    check(unsafe { libc::fremovexattr(fd.as_raw_fd(), c.as_ptr()) }).map(|_| ())
}

pub fn flistxattr(fd: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 65536];
    // SAFETY: buffer of the length passed.
    let n = unsafe {
        libc::flistxattr(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
        )
    };
    if n < 0 {
        return Err(Error::last_os());
    }
    buf.truncate(n as usize);
    Ok(buf
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| s.to_vec())
        .collect())
}

pub fn fstatvfs(fd: BorrowedFd<'_>) -> Result<libc::statvfs> {
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    check(unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

pub fn fallocate(fd: BorrowedFd<'_>, mode: i32, offset: u64, len: u64) -> Result<()> {
    // SAFETY: plain syscall on a valid fd.
    check(unsafe {
        libc::fallocate(
            fd.as_raw_fd(),
            mode,
            offset as libc::off_t,
            len as libc::off_t,
        )
    })
    .map(|_| ())
}

pub fn fsync(fd: BorrowedFd<'_>, datasync: bool) -> Result<()> {
    // SAFETY: plain syscalls on a valid fd.
    check(unsafe {
        if datasync {
            libc::fdatasync(fd.as_raw_fd())
        } else {
            libc::fsync(fd.as_raw_fd())
        }
    })
    .map(|_| ())
}

/// Starts writeback of a range without waiting for it (a hint: errors show up at fsync).
pub fn start_writeback(fd: BorrowedFd<'_>, offset: u64, len: u64) {
    // SAFETY: plain syscall on a valid fd; no memory is passed.
    unsafe {
        libc::sync_file_range(
            fd.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Asks the kernel to drop a range from the page cache (only clean pages go; a hint).
pub fn drop_cached(fd: BorrowedFd<'_>, offset: u64, len: u64) {
    // SAFETY: plain syscall on a valid fd; no memory is passed.
    unsafe {
        libc::posix_fadvise(
            fd.as_raw_fd(),
            offset as libc::off_t,
            len as libc::off_t,
            libc::POSIX_FADV_DONTNEED,
        );
    }
}

/// Asks the kernel to read a range into the page cache (a hint; returns once queued).
pub fn prefetch(fd: BorrowedFd<'_>, offset: u64, len: u64) {
    // The kernel caps one WILLNEED at the device's readahead window (128 KiB by default),
    // so a long range is asked for a window at a time.
    const STEP: u64 = 128 << 10;
    let end = offset.saturating_add(len);
    let mut at = offset;
    while at < end {
        let n = STEP.min(end - at);
        // SAFETY: plain syscall on a valid fd; no memory is passed.
        let r = unsafe {
            libc::posix_fadvise(
                fd.as_raw_fd(),
                at as libc::off_t,
                n as libc::off_t,
                libc::POSIX_FADV_WILLNEED,
            )
        };
        if r != 0 {
            return;
        }
        at += n;
    }
}

/// Physical memory of the machine, in bytes.
pub fn total_memory() -> Option<u64> {
    // SAFETY: sysconf only reads configuration values.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages > 0 && size > 0).then(|| pages as u64 * size as u64)
}

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

/// Blocks SIGINT/SIGTERM/SIGHUP in this thread (and the threads it spawns later) so that one
/// dedicated thread can wait for them with `wait_for_signal`.
pub fn block_termination_signals() {
    // SAFETY: sigset manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Waits for SIGINT/SIGTERM/SIGHUP (which must be blocked) and returns its number.
pub fn wait_for_signal() -> i32 {
    // SAFETY: sigwait on a local, initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
        sig
    }
}

/// Sends a signal to this process (used to wake the signal thread for a clean shutdown).
pub fn raise_self(sig: i32) {
    // SAFETY: kill on our own pid.
    unsafe { libc::kill(libc::getpid(), sig) };
}

/// What `fork` returned.
pub enum Forked {
    Parent { child: i32 },
    Child,
}

/// Forks. Must be called while the process has one thread only.
pub fn fork() -> Result<Forked> {
    // SAFETY: the caller guarantees a single-threaded process.
    let pid = unsafe { libc::fork() };
    match pid {
        p if p < 0 => Err(Error::last_os()),
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent { child: p }),
    }
}

/// Detaches the child from the terminal: new session, stdio to /dev/null.
pub fn detach_stdio() {
    // SAFETY: setsid and dup2 onto the standard descriptors.
    unsafe {
        libc::setsid();
        let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if devnull >= 0 {
            libc::dup2(devnull, 0);
            libc::dup2(devnull, 1);
            libc::dup2(devnull, 2);
            if devnull > 2 {
                libc::close(devnull);
            }
        }
    }
}

/// A pipe whose ends are plain Files (used to report readiness from a forked daemon).
pub fn pipe() -> Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: fresh descriptors we own.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

pub fn getuid() -> u32 {
    // SAFETY: always succeeds.
    unsafe { libc::getuid() }
}

pub fn getgid() -> u32 {
    // SAFETY: always succeeds.
    unsafe { libc::getgid() }
}

/// Unmounts `path` directly (root only); returns the errno on failure.
pub fn umount(path: &Path, lazy: bool) -> std::result::Result<(), i32> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| libc::EINVAL)?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: NUL-terminated path.
    let rc = unsafe { libc::umount2(c.as_ptr(), flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    }
}

/// The open-file table of a borrowed fd as a File without taking ownership.
pub fn borrow_file<R>(fd: BorrowedFd<'_>, f: impl FnOnce(&File) -> R) -> R {
    // SAFETY: the File is wrapped in ManuallyDrop, so the fd is never closed here.
    let file = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd.as_raw_fd()) });
    f(&file)
}

pub fn geteuid() -> u32 {
    // SAFETY: always succeeds.
    unsafe { libc::geteuid() }
}

pub fn getegid() -> u32 {
    // SAFETY: always succeeds.
    unsafe { libc::getegid() }
}

pub fn set_umask(mask: u32) {
    // SAFETY: always succeeds.
    unsafe { libc::umask(mask as libc::mode_t) };
}

pub fn syncfs(f: &File) -> Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::syncfs(f.as_raw_fd()) }).map(|_| ())
}

/// Looks up a user by name: `Some(uid)` when it exists.
pub fn user_by_name(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: zeroed passwd is a valid out-parameter; buffers are of the lengths passed.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: as above.
    let rc =
        unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut res) };
    (rc == 0 && !res.is_null()).then_some(pw.pw_uid)
}

/// Looks up a group by name: `Some(gid)` when it exists.
pub fn group_by_name(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 65536];
    // SAFETY: zeroed group is a valid out-parameter; buffers are of the lengths passed.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as above.
    let rc =
        unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut res) };
    (rc == 0 && !res.is_null()).then_some(gr.gr_gid)
}

/// The name of user `uid`, if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: as in user_by_name.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: as above.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut res) };
    if rc != 0 || res.is_null() {
        return None;
    }
    // SAFETY: pw_name points into buf, NUL-terminated.
    Some(
        unsafe { CStr::from_ptr(pw.pw_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Supplementary groups of the task `pid` that sent a request as (`uid`, `gid`), from
/// /proc/PID/status. Empty when that task is gone or no longer has that filesystem identity
/// (it changed credentials since, or the pid now names another task): a stale answer must
/// never grant a group the caller does not hold.
pub fn caller_groups(pid: u32, uid: u32, gid: u32) -> Vec<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    parse_caller_groups(&text, uid, gid).unwrap_or_default()
}

fn parse_caller_groups(status: &str, uid: u32, gid: u32) -> Option<Vec<u32>> {
    // "Uid:\treal\teffective\tsaved\tfilesystem": requests carry the filesystem ids.
    let fs_id = |key: &str| -> Option<u32> {
        let line = status.lines().find_map(|l| l.strip_prefix(key))?;
        line.split_whitespace().nth(3)?.parse().ok()
    };
    if fs_id("Uid:")? != uid || fs_id("Gid:")? != gid {
        return None;
    }
    let groups = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    Some(
        groups
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect(),
    )
}

/// The command name of a process (empty if it is gone).
pub fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Takes an exclusive advisory lock on `f` without waiting; false when someone holds it.
/// The uid, gid and pid of the process at the other end of a Unix socket, from the kernel.
pub fn peer_cred(s: &std::os::unix::net::UnixStream) -> Result<(u32, u32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: valid socket fd; `cred` and `len` describe a writable ucred.
    check(unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok((cred.uid, cred.gid, cred.pid.max(0) as u32))
}

/// chmod by path (for a socket, which cannot be opened).
pub fn chmod_path(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(Error::Io)
}

/// A daemon started from a shell with `ulimit -f` would inherit that file size limit and be
/// killed by SIGXFSZ when a backing file grows past it (xfstests 394, 564): the limit is the
/// caller's, not the filesystem's. Lifts it (root), or raises the soft limit to the hard one,
/// and ignores SIGXFSZ (a write past a remaining limit then fails with EFBIG instead).
pub fn lift_file_size_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to an rlimit; setrlimit with a value from getrlimit.
    unsafe {
        let unlimited = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // Root may lift the hard limit too; anyone may raise the soft one to it.
        if libc::setrlimit(libc::RLIMIT_FSIZE, &unlimited) != 0
            && libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim) == 0
        {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
        }
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Waits for an exclusive flock on `f` (released when `f` is closed).
pub fn lock_exclusive(f: &File) -> Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }).map(|_| ())
}

pub fn try_lock_exclusive(f: &File) -> bool {
    // SAFETY: valid fd.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn caller_groups_are_given_only_to_the_identity_they_were_read_for() {
        let status =
            "Name:\tsmbd\nUid:\t0\t1001\t0\t1001\nGid:\t0\t1001\t0\t1001\nGroups:\t2001 2002 \n";
        assert_eq!(
            parse_caller_groups(status, 1001, 1001),
            Some(vec![2001, 2002])
        );
        // The task switched to another user, or the pid was taken by another one.
        assert_eq!(parse_caller_groups(status, 1002, 1002), None);
        assert_eq!(parse_caller_groups(status, 1001, 1002), None);
        assert_eq!(parse_caller_groups("", 0, 0), None);
        let me = std::process::id();
        assert_eq!(
            caller_groups(me, geteuid(), getegid()).len(),
            std::fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("Groups:"))
                .unwrap()
                .split_whitespace()
                .count()
        );
        assert!(caller_groups(me, geteuid().wrapping_add(1), getegid()).is_empty());
    }

    #[test]
    fn a_private_dir_is_made_closed_tightened_and_never_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let fresh = t.path().join("a/b");
        assert_eq!(private_dir(&fresh).unwrap(), geteuid());
        assert_eq!(mode(&fresh), 0o700);
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o777)).unwrap();
        private_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700, "an open one is tightened");
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        assert!(private_dir(&link).is_err(), "a planted symlink is refused");
        let file = t.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(private_dir(&file).is_err());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
    }
}
