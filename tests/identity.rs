//! Node identity through a real mount: the backing filesystem (ext4 under the test's temp
//! dir) hands a removed entry's inode number to the next new one, often before the kernel has
//! told the daemon that it forgot the old one. Nothing may be sealed under the old
//! directory's ID, and the kernel must never take the new entry for the old, dead one.

mod common;

use common::churn::{churn, read_tree, Model};
use common::{run_ok, TestVault};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn mounted(test: &str, extra: &[&str]) -> Option<TestVault> {
    let mut v = TestVault::new(test)?;
    if extra.contains(&"--allow-other")
        && !common::is_root()
        && common::skip_unless(Some("--allow-other needs root here".into()), test)
    {
        return None;
    }
    v.mount_args(extra);
    Some(v)
}

fn fsck_clean(v: &TestVault) {
    let (code, out) = common::fsck(v, &[]);
    assert_eq!(code, 0, "fsck found problems:\n{out}");
}

/// `mkdir a; ls a; rmdir a; mkdir bN; echo x > bN/f`, many rounds: every file is there after
/// a remount, fsck is clean, and every directory can be removed again.
fn reused_numbers_lose_nothing(test: &str, extra: &[&str]) {
    let Some(mut v) = mounted(test, extra) else {
        return;
    };
    const ROUNDS: usize = 600;
    let mut reused = 0;
    for i in 0..ROUNDS {
        let a = v.p("a");
        fs::create_dir(&a).unwrap();
        let old = fs::metadata(&a).unwrap().ino();
        assert_eq!(fs::read_dir(&a).unwrap().count(), 0);
        fs::remove_dir(&a).unwrap();
        let b = v.p(&format!("b{i}"));
        fs::create_dir(&b).unwrap();
        reused += usize::from(fs::metadata(&b).unwrap().ino() == old);
        fs::write(b.join("f"), format!("x{i}")).unwrap();
    }
    eprintln!("{test}: inode numbers reused {reused} of {ROUNDS}");
    v.remount();
    for i in 0..ROUNDS {
        let b = v.p(&format!("b{i}"));
        assert_eq!(
            fs::read_to_string(b.join("f")).unwrap_or_default(),
            format!("x{i}"),
            "b{i}/f is lost"
        );
    }
    v.unmount();
    fsck_clean(&v);
    v.mount_args(extra);
    for i in 0..ROUNDS {
        fs::remove_dir_all(v.p(&format!("b{i}"))).unwrap();
    }
    assert_eq!(fs::read_dir(&v.mnt).unwrap().count(), 0);
}

#[test]
fn directories_given_removed_numbers_keep_their_files_private_mount() {
    reused_numbers_lose_nothing("reused numbers (private)", &[]);
}

#[test]
fn directories_given_removed_numbers_keep_their_files_shared_mount() {
    reused_numbers_lose_nothing("reused numbers (shared)", &["--allow-other"]);
}

/// Something (a shell's cwd, an open descriptor) still holds the removed directory when a
/// new one gets its number: creating in the new one must work.
fn held_old_directory_does_not_capture_the_new(test: &str, extra: &[&str]) {
    let Some(v) = mounted(test, extra) else {
        return;
    };
    let mut failures = Vec::new();
    let mut reused = 0;
    for i in 0..200 {
        let a = v.p("held");
        fs::create_dir(&a).unwrap();
        let old = fs::metadata(&a).unwrap().ino();
        let holder = fs::File::open(&a).unwrap();
        fs::remove_dir(&a).unwrap();
        let b = v.p(&format!("new{i}"));
        fs::create_dir(&b).unwrap();
        reused += usize::from(fs::metadata(&b).unwrap().ino() == old);
        if let Err(e) = fs::write(b.join("f"), b"x") {
            failures.push(format!("new{i}/f: {e}"));
        }
        drop(holder);
    }
    eprintln!("{test}: inode numbers reused {reused} of 200");
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    for i in 0..200 {
        assert_eq!(fs::read(v.p(&format!("new{i}/f"))).unwrap(), b"x");
    }
}

#[test]
fn a_new_directory_is_usable_while_a_removed_one_with_its_number_is_held_private() {
    held_old_directory_does_not_capture_the_new("held old directory (private)", &[]);
}

#[test]
fn a_new_directory_is_usable_while_a_removed_one_with_its_number_is_held_shared() {
    held_old_directory_does_not_capture_the_new("held old directory (shared)", &["--allow-other"]);
}

/// A file replaced the same way (unlink, then a new file gets the number) while the old one
/// is still open: both read their own contents.
#[test]
fn a_removed_files_number_reused_while_it_is_open_keeps_both_apart() {
    let Some(v) = mounted("reused file numbers", &[]) else {
        return;
    };
    for i in 0..100 {
        let a = v.p("old");
        fs::write(&a, format!("old{i}")).unwrap();
        let keep = fs::File::open(&a).unwrap();
        fs::remove_file(&a).unwrap();
        fs::write(v.p(&format!("n{i}")), format!("new{i}")).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut &keep, &mut s).unwrap();
        assert_eq!(s, format!("old{i}"));
        assert_eq!(keep.metadata().unwrap().len(), s.len() as u64);
    }
    for i in 0..100 {
        assert_eq!(
            fs::read_to_string(v.p(&format!("n{i}"))).unwrap(),
            format!("new{i}")
        );
    }
}

/// Several processes' worth of threads create, remove, rename and list in overlapping trees
/// for a bounded time; after a remount the tree is exactly the union of their models, fsck is
/// clean, and everything can be removed.
#[test]
fn directory_churn_in_overlapping_trees_matches_a_model_after_remount() {
    let Some(mut v) = mounted("directory churn", &[]) else {
        return;
    };
    for s in ["s0", "s1", "s2"] {
        fs::create_dir(v.p(s)).unwrap();
    }
    let secs = std::env::var("TUTELA_CHURN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let until = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let root = v.mnt.clone();
            std::thread::spawn(move || churn(root, w, until))
        })
        .collect();
    let mut want = Model::new();
    for s in ["s0", "s1", "s2"] {
        want.insert(s.to_string(), None);
    }
    for w in workers {
        want.extend(w.join().expect("a worker failed"));
    }
    v.remount();
    let mut got = Model::new();
    read_tree(&v.mnt, "", &mut got);
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, unexpected {extra:?}"
    );
    assert_eq!(got, want, "contents differ from the model");
    v.unmount();
    fsck_clean(&v);
    v.mount();
    for s in ["s0", "s1", "s2"] {
        fs::remove_dir_all(v.p(s)).unwrap();
    }
    assert_eq!(fs::read_dir(&v.mnt).unwrap().count(), 0);
}

/// The daemon clears set-user-ID when an unprivileged user writes (FUSE_HANDLE_KILLPRIV_V2):
/// the kernel must not go on showing the old mode from its cache (xfstests generic/355).
#[test]
fn set_id_bits_cleared_by_a_write_show_at_once() {
    if common::skip_unless(
        (!common::is_root()).then(|| "needs root (runs a write as another user)".into()),
        "set-ID bits cleared by a write",
    ) {
        return;
    }
    let Some(v) = mounted("set-ID bits cleared by a write", &["--allow-other"]) else {
        return;
    };
    let uid = common::ensure_user("tutela-suid");
    let f = v.p("prog");
    fs::write(&f, b"#!/bin/sh\n").unwrap();
    std::os::unix::fs::chown(&f, Some(uid), None).unwrap();
    // A direct write (as generic/355 does) and a buffered write through a descriptor opened
    // for reading and writing: after each, stat shows the bits cleared.
    let writes = [
        format!(
            "dd if=/dev/zero of='{}' bs=4096 count=1 oflag=direct conv=notrunc 2>/dev/null",
            f.display()
        ),
        format!("exec 3<>'{}'; echo more >&3", f.display()),
        // fallocate clears them too, as on ext4 (xfstests generic/683).
        format!("fallocate -l 16384 '{}'", f.display()),
    ];
    for w in writes {
        fs::set_permissions(&f, fs::Permissions::from_mode(0o6775)).unwrap();
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o6775);
        run_ok(
            std::process::Command::new("runuser")
                .args(["-u", "tutela-suid", "--", "sh", "-c"])
                .arg(&w),
        );
        // `stat -c %a` asks for the mode alone (statx with STATX_MODE), which the kernel
        // serves from its cache unless told the daemon changed it.
        let out = run_ok(
            std::process::Command::new("stat")
                .args(["-c", "%a"])
                .arg(&f),
        );
        let mode = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(mode, "775", "stat shows {mode} after `{w}`");
    }
}

/// The backing directory at the top of the vault holding a file of plaintext size `n`.
fn backing_dir_with(v: &TestVault, n: usize) -> PathBuf {
    let ct = tutela::crypto::content::cipher_size(n as u64);
    common::backing_dirs(&v.vault)
        .into_iter()
        .find(|d| {
            fs::read_dir(d)
                .unwrap()
                .any(|e| e.unwrap().metadata().unwrap().len() == ct)
        })
        .expect("backing directory")
}

fn backing_entry(dir: &Path, ct_len: Option<u64>) -> PathBuf {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| {
            let m = e.metadata().unwrap();
            !e.file_name().to_string_lossy().starts_with(".tutela")
                && match ct_len {
                    Some(l) => m.is_file() && m.len() == l,
                    None => m.is_dir(),
                }
        })
        .unwrap()
        .path()
}

/// A vault damaged as the old bug damaged it (entries sealed under another directory's ID,
/// and under the ID of a directory that was removed since) shows the symptoms the users saw,
/// and `fsck --repair` brings every file back: re-sealed where the ID is known, into
/// `lost+found` with its contents where it is not.
#[test]
fn fsck_repair_recovers_entries_sealed_under_the_wrong_directory_id() {
    let Some(mut v) = mounted("fsck repairs misplaced entries", &[]) else {
        return;
    };
    let (a, b, c) = (
        common::pattern(100, 1),
        common::pattern(200, 2),
        common::pattern(300, 3),
    );
    let s = common::pattern(400, 4);
    for d in ["A", "B", "C", "C/sub"] {
        fs::create_dir(v.p(d)).unwrap();
    }
    fs::write(v.p("A/a"), &a).unwrap();
    fs::write(v.p("B/b"), &b).unwrap();
    fs::write(v.p("C/c"), &c).unwrap();
    fs::write(v.p("C/sub/s"), &s).unwrap();
    v.unmount();
    let ct = |n: u64| tutela::crypto::content::cipher_size(n);
    let (da, db, dc) = (
        backing_dir_with(&v, 100),
        backing_dir_with(&v, 200),
        backing_dir_with(&v, 300),
    );
    // A's file moves into B (sealed under A's ID, which still exists); C's file and
    // subdirectory move into B and C is removed (its ID is gone with it).
    let fa = backing_entry(&da, Some(ct(100)));
    fs::rename(&fa, db.join(fa.file_name().unwrap())).unwrap();
    let fc = backing_entry(&dc, Some(ct(300)));
    fs::rename(&fc, db.join(fc.file_name().unwrap())).unwrap();
    let sub = backing_entry(&dc, None);
    fs::rename(&sub, db.join(sub.file_name().unwrap())).unwrap();
    fs::remove_dir_all(&dc).unwrap();

    // What users saw: B lists only b, and cannot be removed once b is gone.
    v.mount();
    let names: Vec<_> = fs::read_dir(v.p("B"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["b"]);
    v.unmount();

    let (code, out) = common::fsck(&v, &[]);
    assert_eq!(code, tutela::error::exit::FSCK_PROBLEMS, "{out}");
    assert!(
        out.contains("/B/a") && out.contains("another directory's ID"),
        "{out}"
    );
    assert!(out.contains("removed directory's ID"), "{out}");
    let (code, out) = common::fsck(&v, &["--repair"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("re-sealed") && out.contains("/lost+found/recovered-"),
        "{out}"
    );
    let (code, out) = common::fsck(&v, &[]);
    assert_eq!(code, 0, "fsck after the repair: {out}");

    v.mount();
    assert_eq!(fs::read(v.p("B/a")).unwrap(), a);
    assert_eq!(fs::read(v.p("B/b")).unwrap(), b);
    let mut got_c = false;
    let mut got_s = false;
    for e in fs::read_dir(v.p("lost+found")).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            got_s = fs::read(p.join("s")).unwrap() == s;
        } else {
            got_c = fs::read(&p).unwrap() == c;
        }
    }
    assert!(got_c && got_s, "lost+found holds C's file and subdirectory");
    fs::remove_dir_all(v.p("B")).unwrap();
    fs::remove_dir_all(v.p("lost+found")).unwrap();
    fs::remove_dir_all(v.p("A")).unwrap();
    assert_eq!(fs::read_dir(&v.mnt).unwrap().count(), 0);
}

/// A file made with set-group-ID and group-execute in a set-group-ID directory takes the
/// directory's group and keeps the bit when its creator is root or in that group, and loses
/// it otherwise, as on ext4 (xfstests generic/633). The daemon's chown to the creator used to
/// clear it for everyone.
#[test]
fn set_group_id_of_new_files_in_set_group_id_directories_follows_ext4() {
    if common::skip_unless(
        (!common::is_root()).then(|| "needs root (users and groups)".into()),
        "setgid directories",
    ) {
        return;
    }
    let Some(v) = mounted("setgid directories", &["--allow-other"]) else {
        return;
    };
    let _ = std::process::Command::new("groupadd")
        .arg("tutela_sgid")
        .output();
    common::ensure_user("tutela-outsider");
    common::ensure_user("tutela-member");
    run_ok(std::process::Command::new("usermod").args([
        "-a",
        "-G",
        "tutela_sgid",
        "tutela-member",
    ]));
    let gid: u32 = String::from_utf8_lossy(
        &run_ok(std::process::Command::new("getent").args(["group", "tutela_sgid"])).stdout,
    )
    .split(':')
    .nth(2)
    .unwrap()
    .parse()
    .unwrap();
    let d = v.p("shared");
    fs::create_dir(&d).unwrap();
    std::os::unix::fs::chown(&d, None, Some(gid)).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o2777)).unwrap();
    let make = |user: Option<&str>, name: &str| -> (u32, u32) {
        let path = d.join(name);
        let script = format!(
            "import os\nos.umask(0o022)\nos.mknod('{}', 0o100000 | 0o2755)\n",
            path.display()
        );
        let mut c = match user {
            Some(u) => {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", u, "--", "python3", "-c", &script]);
                c
            }
            None => {
                let mut c = std::process::Command::new("python3");
                c.args(["-c", &script]);
                c
            }
        };
        run_ok(&mut c);
        let m = fs::metadata(&path).unwrap();
        (m.mode() & 0o7777, m.gid())
    };
    assert_eq!(
        make(None, "by-root"),
        (0o2755, gid),
        "root keeps set-group-ID"
    );
    assert_eq!(make(Some("tutela-member"), "by-member"), (0o2755, gid));
    assert_eq!(
        make(Some("tutela-outsider"), "by-outsider"),
        (0o0755, gid),
        "a creator outside the group loses it"
    );
}
