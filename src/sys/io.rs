//! File-level I/O: space, sync, page-cache hints.

#![allow(unsafe_code)]

use super::*;
use crate::error::Result;
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd};

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

/// The open-file table of a borrowed fd as a File without taking ownership.
pub fn borrow_file<R>(fd: BorrowedFd<'_>, f: impl FnOnce(&File) -> R) -> R {
    // SAFETY: the File is wrapped in ManuallyDrop, so the fd is never closed here.
    let file = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd.as_raw_fd()) });
    f(&file)
}

pub fn syncfs(f: &File) -> Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::syncfs(f.as_raw_fd()) }).map(|_| ())
}
