//! Process hygiene and daemon plumbing: memory locking, core dumps, signals, fork, ids,
//! umask, unmounting, resource limits.

#![allow(unsafe_code)]

use super::*;
use crate::error::{Error, Result};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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

/// This machine's host name (the kernel's, as `uname -n` prints it), or "" when unreadable.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
