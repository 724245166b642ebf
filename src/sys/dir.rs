//! Reading backing directories by the backing filesystem's own positions.

#![allow(unsafe_code)]

use super::*;
use crate::error::{Error, Result};
use std::ffi::{CStr, OsString};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStringExt;

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
