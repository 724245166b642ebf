//! Extended attributes of open backing files.

#![allow(unsafe_code)]

use super::*;
use crate::error::{Error, Result};
use std::os::fd::{AsRawFd, BorrowedFd};

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
