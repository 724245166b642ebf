//! POSIX semantics through a real mount, as ordinary programs use them.

mod common;

use common::{cpath, errno_of, os, pattern, TestVault};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;

macro_rules! mounted {
    ($name:expr) => {{
        let Some(mut v) = TestVault::new($name) else {
            return;
        };
        v.mount();
        v
    }};
}

#[test]
fn files_of_every_boundary_size_read_back_after_remount() {
    let mut v = mounted!("boundary sizes");
    let sizes = [
        0usize,
        1,
        4095,
        4096,
        4097,
        8191,
        8192,
        8193,
        1 << 20,
        (1 << 20) + 17,
    ];
    for (i, n) in sizes.iter().enumerate() {
        fs::write(v.p(&format!("f{i}")), pattern(*n, i as u64)).unwrap();
    }
    v.remount();
    for (i, n) in sizes.iter().enumerate() {
        let got = fs::read(v.p(&format!("f{i}"))).unwrap();
        assert_eq!(got.len(), *n);
        assert_eq!(got, pattern(*n, i as u64), "size {n}");
        assert_eq!(
            fs::metadata(v.p(&format!("f{i}"))).unwrap().len(),
            *n as u64
        );
    }
}

#[test]
fn random_offset_reads_and_writes_match_a_model() {
    let v = mounted!("random offsets");
    let path = v.p("model");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let mut model = Vec::new();
    let mut seed = 7u64;
    for i in 0..400 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let off = (seed >> 33) % 40_000;
        let len = ((seed >> 12) % 9000) as usize + 1;
        let data = pattern(len, i);
        f.write_all_at(&data, off).unwrap();
        let end = off as usize + len;
        if model.len() < end {
            model.resize(end, 0);
        }
        model[off as usize..end].copy_from_slice(&data);
        if i % 7 == 0 {
            let roff = (seed >> 20) % (model.len() as u64);
            let mut buf = vec![0u8; 5000];
            let n = f.read_at(&mut buf, roff).unwrap();
            let want = &model[roff as usize..(roff as usize + 5000).min(model.len())];
            assert_eq!(&buf[..n], want, "read at {roff} after op {i}");
        }
    }
    let mut all = Vec::new();
    File::open(&path).unwrap().read_to_end(&mut all).unwrap();
    assert_eq!(all, model);
}

#[test]
fn open_flags_excl_trunc_append() {
    let v = mounted!("open flags");
    let p = v.p("f");
    fs::write(&p, b"0123456789").unwrap();
    let e = OpenOptions::new().write(true).create_new(true).open(&p);
    assert_eq!(errno_of(e), libc::EEXIST);
    {
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"AB").unwrap();
        let mut g = OpenOptions::new().append(true).open(&p).unwrap();
        g.write_all(b"CD").unwrap();
        f.write_all(b"EF").unwrap();
    }
    assert_eq!(fs::read(&p).unwrap(), b"0123456789ABCDEF");
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), 0);
    assert_eq!(fs::read(&p).unwrap(), b"");
}

#[test]
fn truncate_up_and_down_and_sparse_holes_read_zero() {
    let v = mounted!("truncate");
    let p = v.p("t");
    let data = pattern(10_000, 1);
    fs::write(&p, &data).unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    f.set_len(4097).unwrap();
    assert_eq!(fs::read(&p).unwrap(), data[..4097]);
    f.set_len(20_000).unwrap();
    let got = fs::read(&p).unwrap();
    assert_eq!(&got[..4097], &data[..4097]);
    assert!(got[4097..].iter().all(|&b| b == 0));
    // Write far past EOF: the gap reads as zeros.
    f.write_all_at(b"end", 1_000_000).unwrap();
    let got = fs::read(&p).unwrap();
    assert_eq!(got.len(), 1_000_003);
    assert!(got[20_000..1_000_000].iter().all(|&b| b == 0));
    assert_eq!(&got[1_000_000..], b"end");
}

#[test]
fn files_over_4_gib_work_sparse() {
    let v = mounted!("4 GiB");
    let p = v.p("big");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    let off = 5u64 << 30;
    f.write_all_at(b"beyond four gigabytes", off).unwrap();
    assert_eq!(f.metadata().unwrap().len(), off + 21);
    let mut buf = [0u8; 21];
    f.read_exact_at(&mut buf, off).unwrap();
    assert_eq!(&buf, b"beyond four gigabytes");
    let mut z = [1u8; 100];
    f.read_exact_at(&mut z, 3 << 30).unwrap();
    assert_eq!(z, [0u8; 100]);
}

#[test]
fn directories_rename_and_unlink_errors() {
    let v = mounted!("dirs and rename");
    fs::create_dir_all(v.p("a/b/c")).unwrap();
    fs::write(v.p("a/b/c/file"), b"deep").unwrap();
    // rmdir of a non-empty directory, unlink of a directory, rmdir of a file
    assert_eq!(errno_of(fs::remove_dir(v.p("a/b"))), libc::ENOTEMPTY);
    assert_eq!(errno_of(fs::remove_file(v.p("a/b"))), libc::EISDIR);
    assert_eq!(errno_of(fs::remove_dir(v.p("a/b/c/file"))), libc::ENOTDIR);
    assert_eq!(errno_of(fs::create_dir(v.p("a"))), libc::EEXIST);
    assert_eq!(errno_of(fs::read(v.p("missing"))), libc::ENOENT);
    // Rename a directory with contents across directories.
    fs::create_dir(v.p("z")).unwrap();
    fs::rename(v.p("a/b"), v.p("z/moved")).unwrap();
    assert_eq!(fs::read(v.p("z/moved/c/file")).unwrap(), b"deep");
    assert!(!v.p("a/b").exists());
    // Rename over an existing file replaces it.
    fs::write(v.p("x"), b"x").unwrap();
    fs::write(v.p("y"), b"y").unwrap();
    fs::rename(v.p("x"), v.p("y")).unwrap();
    assert_eq!(fs::read(v.p("y")).unwrap(), b"x");
    assert!(!v.p("x").exists());
    // Directory over a non-empty directory fails; over an empty one succeeds.
    fs::create_dir(v.p("empty")).unwrap();
    assert_eq!(
        errno_of(fs::rename(v.p("empty"), v.p("z"))),
        libc::ENOTEMPTY
    );
    fs::create_dir(v.p("empty2")).unwrap();
    fs::rename(v.p("z"), v.p("empty2")).unwrap();
    assert_eq!(fs::read(v.p("empty2/moved/c/file")).unwrap(), b"deep");
    // File over directory and directory over file.
    assert_eq!(errno_of(fs::rename(v.p("y"), v.p("empty"))), libc::EISDIR);
    assert_eq!(errno_of(fs::rename(v.p("empty"), v.p("y"))), libc::ENOTDIR);
    fs::remove_dir(v.p("empty")).unwrap();
}

fn renameat2(from: &std::path::Path, to: &std::path::Path, flags: u32) -> i32 {
    let a = cpath(from);
    let b = cpath(to);
    // SAFETY: valid C strings.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }
}

#[test]
fn rename_noreplace_and_exchange() {
    let v = mounted!("renameat2");
    fs::write(v.p("a"), b"A").unwrap();
    fs::write(v.p("b"), b"B").unwrap();
    assert_eq!(
        renameat2(&v.p("a"), &v.p("b"), libc::RENAME_NOREPLACE),
        libc::EEXIST
    );
    assert_eq!(renameat2(&v.p("a"), &v.p("c"), libc::RENAME_NOREPLACE), 0);
    assert_eq!(renameat2(&v.p("c"), &v.p("b"), libc::RENAME_EXCHANGE), 0);
    assert_eq!(fs::read(v.p("b")).unwrap(), b"A");
    assert_eq!(fs::read(v.p("c")).unwrap(), b"B");
}

#[test]
fn symlinks_and_hard_links() {
    let v = mounted!("links");
    fs::write(v.p("target"), b"content").unwrap();
    std::os::unix::fs::symlink("target", v.p("ln")).unwrap();
    assert_eq!(
        fs::read_link(v.p("ln")).unwrap().to_str().unwrap(),
        "target"
    );
    assert_eq!(fs::read(v.p("ln")).unwrap(), b"content");
    assert_eq!(fs::symlink_metadata(v.p("ln")).unwrap().len(), 6);
    std::os::unix::fs::symlink("/etc/../nowhere/dangling", v.p("dangling")).unwrap();
    assert_eq!(
        fs::read_link(v.p("dangling")).unwrap().to_str().unwrap(),
        "/etc/../nowhere/dangling"
    );
    fs::hard_link(v.p("target"), v.p("hard")).unwrap();
    let a = fs::metadata(v.p("target")).unwrap();
    let b = fs::metadata(v.p("hard")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.nlink(), 2);
    fs::write(v.p("hard"), b"changed through the link").unwrap();
    assert_eq!(
        fs::read(v.p("target")).unwrap(),
        b"changed through the link"
    );
    fs::remove_file(v.p("target")).unwrap();
    assert_eq!(fs::read(v.p("hard")).unwrap(), b"changed through the link");
    assert_eq!(fs::metadata(v.p("hard")).unwrap().nlink(), 1);
    assert_eq!(
        errno_of(fs::hard_link(v.p("nonexistent"), v.p("x"))),
        libc::ENOENT
    );
}

#[test]
fn chmod_chown_utimens_statfs_fsync() {
    let v = mounted!("attributes");
    let p = v.p("f");
    fs::write(&p, b"x").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
    if common::is_root() {
        std::os::unix::fs::chown(&p, Some(1234), Some(5678)).unwrap();
        let m = fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678));
    }
    let c = cpath(&p);
    let ts = [
        libc::timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 123_456_789,
        },
        libc::timespec {
            tv_sec: 1_200_000_000,
            tv_nsec: 987_654_321,
        },
    ];
    // SAFETY: valid path and timespecs.
    assert_eq!(
        unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), 0) },
        0
    );
    let m = fs::metadata(&p).unwrap();
    assert_eq!((m.atime(), m.atime_nsec()), (1_000_000_000, 123_456_789));
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_200_000_000, 987_654_321));
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.sync_all().unwrap();
    f.sync_data().unwrap();
    File::open(&v.mnt).unwrap().sync_all().unwrap();
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let mc = cpath(&v.mnt);
    // SAFETY: valid path and out pointer.
    assert_eq!(unsafe { libc::statvfs(mc.as_ptr(), &mut st) }, 0);
    assert!(st.f_blocks > 0);
    assert_eq!(st.f_namemax, 255);
}

#[test]
fn fallocate_mode_zero_extends() {
    let v = mounted!("fallocate");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(v.p("fa"))
        .unwrap();
    f.write_all_at(b"abc", 0).unwrap();
    // SAFETY: valid fd.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 100_000) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    assert_eq!(f.metadata().unwrap().len(), 100_000);
    let mut buf = vec![0u8; 100_000];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf[..3], b"abc");
    assert!(buf[3..].iter().all(|&b| b == 0));
}

#[test]
fn shared_writable_mmap_round_trips() {
    let mut v = mounted!("mmap");
    let p = v.p("mapped");
    let len = 3 * 4096 + 100;
    {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        f.set_len(len as u64).unwrap();
        // SAFETY: mapping a file we own, length within its size.
        unsafe {
            let m = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(m, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
            let s = std::slice::from_raw_parts_mut(m as *mut u8, len);
            s.copy_from_slice(&pattern(len, 99));
            assert_eq!(libc::msync(m, len, libc::MS_SYNC), 0);
            libc::munmap(m, len);
        }
    }
    assert_eq!(fs::read(&p).unwrap(), pattern(len, 99));
    v.remount();
    assert_eq!(fs::read(&p).unwrap(), pattern(len, 99));
}

#[test]
fn xattrs_in_user_namespace() {
    let v = mounted!("xattrs");
    let p = v.p("f");
    fs::write(&p, b"x").unwrap();
    let c = cpath(&p);
    let name = std::ffi::CString::new("user.client").unwrap();
    // SAFETY: valid strings and buffers.
    let rc = unsafe {
        libc::setxattr(
            c.as_ptr(),
            name.as_ptr(),
            b"acme".as_ptr() as *const _,
            4,
            0,
        )
    };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EOPNOTSUPP) {
        eprintln!("SKIP xattrs: backing filesystem has no user xattrs");
        return;
    }
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    let mut buf = [0u8; 64];
    // SAFETY: as above.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr() as *mut _,
            buf.len(),
        )
    };
    assert_eq!(&buf[..n as usize], b"acme");
    // SAFETY: as above.
    let n = unsafe { libc::listxattr(c.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len()) };
    assert_eq!(&buf[..n as usize], b"user.client\0");
    // The value is not stored in plaintext.
    v.assert_no_plaintext(&[b"acme", b"client"]);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::removexattr(c.as_ptr(), name.as_ptr()) }, 0);
}

#[test]
fn non_utf8_and_long_names() {
    let mut v = mounted!("names");
    let weird = os(&[b'n', 0xff, 0xfe, b'.', b't', b'x', b't']);
    fs::write(v.mnt.join(weird), b"bytes").unwrap();
    let long: String = "l".repeat(255);
    fs::write(v.p(&long), b"long name").unwrap();
    fs::create_dir(v.p(&format!("{}d", "D".repeat(200)))).unwrap();
    let too_long = "x".repeat(256);
    assert_eq!(errno_of(fs::write(v.p(&too_long), b"")), libc::ENAMETOOLONG);
    v.remount();
    assert_eq!(fs::read(v.mnt.join(weird)).unwrap(), b"bytes");
    assert_eq!(fs::read(v.p(&long)).unwrap(), b"long name");
    let mut names: Vec<_> = fs::read_dir(&v.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3);
    fs::rename(v.p(&long), v.p("short")).unwrap();
    fs::rename(v.p("short"), v.p(&"m".repeat(250))).unwrap();
    fs::remove_file(v.p(&"m".repeat(250))).unwrap();
    // No long-name records are left behind.
    let backing: Vec<_> = fs::read_dir(&v.vault)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let records = backing
        .iter()
        .filter(|n| n.to_string_lossy().ends_with(".name"))
        .count();
    assert_eq!(
        records, 1,
        "only the long directory's record remains: {backing:?}"
    );
}

#[test]
fn concurrent_writers_and_readers_see_consistent_data() {
    let v = mounted!("concurrency");
    let p = v.p("shared");
    fs::write(&p, vec![0u8; 64 * 4096]).unwrap();
    // Each thread owns a stripe of 4 KiB blocks at unaligned offsets; readers check that
    // every stripe always reads as one of the values its writer wrote.
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
                for round in 0..50u8 {
                    let off = (t as u64 * 16 * 4096) + 1000;
                    let val = vec![t * 50 + round; 30_000];
                    f.write_all_at(&val, off).unwrap();
                    let mut back = vec![0u8; 30_000];
                    f.read_exact_at(&mut back, off).unwrap();
                    assert!(
                        back.iter().all(|&b| b == t * 50 + round),
                        "torn read in stripe {t}"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let all = fs::read(&p).unwrap();
    for t in 0..4u8 {
        let off = t as usize * 16 * 4096 + 1000;
        assert!(all[off..off + 30_000].iter().all(|&b| b == t * 50 + 49));
    }
}

#[test]
fn mknod_fifo_works() {
    let v = mounted!("fifo");
    let c = cpath(&v.p("pipe"));
    // SAFETY: valid path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "{}",
        std::io::Error::last_os_error()
    );
    let m = fs::symlink_metadata(v.p("pipe")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()));
}

#[test]
fn seek_and_read_past_eof() {
    let v = mounted!("seek");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(v.p("s"))
        .unwrap();
    f.write_all(b"hello").unwrap();
    f.seek(SeekFrom::Start(100)).unwrap();
    let mut buf = [0u8; 10];
    assert_eq!(f.read(&mut buf).unwrap(), 0);
    f.seek(SeekFrom::Start(2)).unwrap();
    assert_eq!(f.read(&mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], b"llo");
}

/// A private mount leaves mode checks to the backing filesystem (no default_permissions):
/// access(2) still answers as on a local disk, for root too.
#[test]
fn access_on_a_private_mount_answers_as_a_local_disk() {
    let Some(v) = TestVault::new("access") else {
        return;
    };
    let access = |p: &std::path::Path, mode: i32| {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: NUL-terminated path.
        unsafe { libc::access(c.as_ptr(), mode) == 0 }
    };
    fs::write(v.p("data"), b"x").unwrap();
    fs::write(v.p("tool"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(v.p("data"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(v.p("tool"), fs::Permissions::from_mode(0o755)).unwrap();
    assert!(access(&v.p("data"), libc::F_OK));
    assert!(access(&v.p("data"), libc::R_OK | libc::W_OK));
    assert!(access(&v.p("tool"), libc::X_OK));
    assert!(!access(&v.p("missing"), libc::F_OK));
    if common::is_root() {
        // Root may read and write anything but executes only what has an x bit.
        fs::set_permissions(v.p("data"), fs::Permissions::from_mode(0o000)).unwrap();
        assert!(access(&v.p("data"), libc::R_OK | libc::W_OK));
        assert!(!access(&v.p("data"), libc::X_OK));
        assert_eq!(fs::read(v.p("data")).unwrap(), b"x");
    }
}
