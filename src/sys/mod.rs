//! The only module with `unsafe`: thin wrappers over the system calls tutela needs, one file
//! per concern: the *at() syscalls (never following a symlink planted in the backing
//! directory), directory reading, xattrs, file I/O, the vault's own files, process hygiene and
//! daemon plumbing, users and groups. Every function returns a typed error; none panics.

#![allow(unsafe_code)]

use crate::error::{Error, Result};
use std::ffi::CString;

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

mod at;
mod dir;
mod files;
mod io;
mod process;
mod time;
mod users;
mod xattr;

pub use at::*;
pub use dir::*;
pub use files::*;
pub use io::*;
pub use process::*;
pub use time::*;
pub use users::*;
pub use xattr::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

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
