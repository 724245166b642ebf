//! Who is who: users and groups by name, a caller's groups and program, a socket peer.

#![allow(unsafe_code)]

use super::*;
use crate::error::{Error, Result};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

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

/// The name of group `gid` in `/etc/group`, if it is there.
pub fn group_name(gid: u32) -> Option<String> {
    let gid_s = gid.to_string();
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[2] == gid_s).then(|| f[0].to_string())
        })
}

/// The members of group `gid` as the local files list them: the users named in its
/// `/etc/group` line and those whose primary group it is in `/etc/passwd` (for an access
/// review; users known only to a directory service are not enumerated).
pub fn group_members(gid: u32) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let gid_s = gid.to_string();
    if let Ok(g) = std::fs::read_to_string("/etc/group") {
        for l in g.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 4 && f[2] == gid_s {
                out.extend(
                    f[3].split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_string),
                );
            }
        }
    }
    if let Ok(p) = std::fs::read_to_string("/etc/passwd") {
        for l in p.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 4 && f[3] == gid_s {
                out.push(f[0].to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
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

pub(super) fn parse_caller_groups(status: &str, uid: u32, gid: u32) -> Option<Vec<u32>> {
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
